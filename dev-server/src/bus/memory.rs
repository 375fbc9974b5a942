//! The in-process [`EventBus`]: every event for a user gets the next [`EventId`], goes into
//! that user's bounded backlog (for resuming) and out to every open stream of that user.
//!
//! Subscribing takes the backlog slice and the live receiver under one lock, so a resuming
//! stream sees each event exactly once: nothing between the replay and the live feed is lost or
//! repeated. A stream that falls more than [`HubLimits::live_buffer`] events behind is lagged
//! by the broadcast channel; the stream then ends and the client resumes from its last id.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, Weak},
    time::Instant,
};

use farm_chat_protocol::{EventId, StreamEvent, UserId, stream::ResetReason};
use tokio::sync::broadcast;

use super::{
    BusResult, Entry, EventBus, HubLimits, Resume, Signal, Subscription, async_trait, live_stream,
    unresumable,
};

/// A kept event: when, and the dedupe key it was published with.
#[derive(Debug)]
struct Kept {
    entry: Entry,
    at: Instant,
    dedupe: Option<Box<str>>,
}

#[derive(Debug)]
struct UserLog {
    last_n: u64,
    backlog: VecDeque<Kept>,
    /// The backlog's event data in bytes.
    bytes: usize,
    /// The live feed, only while the user has a stream open here.
    live: Option<broadcast::Sender<Entry>>,
}

impl UserLog {
    /// Drops the oldest events beyond the limits; the newest always stays.
    fn trim(&mut self, limits: &HubLimits, now: Instant) {
        while self.backlog.len() > 1
            && (self.backlog.len() > limits.backlog_hard_cap
                || self.bytes > limits.backlog_max_bytes
                || (self.backlog.len() > limits.backlog_min_events
                    && self
                        .backlog
                        .front()
                        .is_some_and(|e| now.duration_since(e.at) > limits.backlog_max_age)))
        {
            if let Some(old) = self.backlog.pop_front() {
                self.bytes -= old.entry.data().len();
            }
        }
    }
}

type Users = Mutex<HashMap<UserId, UserLog>>;

/// Lets go of a user's live feed when their last stream here ends.
struct LiveGuard {
    users: Weak<Users>,
    user: UserId,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let Some(users) = self.users.upgrade() else {
            return;
        };
        let mut users = users.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(log) = users.get_mut(&self.user)
            // This guard's receiver is already gone (see `live_stream`).
            && log.live.as_ref().is_some_and(|l| l.receiver_count() == 0)
        {
            log.live = None;
            // A user who never got an event has nothing worth keeping.
            if log.last_n == 0 {
                users.remove(&self.user);
            }
        }
    }
}

/// All users' event logs of this server start (`epoch`).
#[derive(Debug)]
pub struct Hub {
    epoch: u32,
    limits: HubLimits,
    users: Arc<Users>,
    signals: broadcast::Sender<Signal>,
}

impl Hub {
    /// An empty hub for server start `epoch`.
    pub fn new(epoch: u32, limits: HubLimits) -> Self {
        Self {
            epoch,
            limits,
            users: Arc::default(),
            signals: broadcast::channel(64).0,
        }
    }

    fn log<'a>(users: &'a mut HashMap<UserId, UserLog>, user: &UserId) -> &'a mut UserLog {
        // Look up first: a publish to thousands of known users allocates no key.
        if users.contains_key(user) {
            return users.get_mut(user).expect("just checked");
        }
        users.entry(user.clone()).or_insert_with(|| UserLog {
            last_n: 0,
            backlog: VecDeque::new(),
            bytes: 0,
            live: None,
        })
    }

    /// Gives `event` the user's next id, keeps it for resuming and sends it to their streams
    /// (the same event with a `dedupe` key still kept gives its id again and nothing else).
    pub fn publish_now(&self, user: &UserId, event: &StreamEvent, dedupe: Option<&str>) -> EventId {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        self.publish_locked(&mut users, user, event.name(), &event.data(), dedupe)
    }

    /// [`publish_now`](Self::publish_now) for each of `users` (a conversation's participants,
    /// up to thousands): the event is serialized once, and the lock taken once.
    pub fn publish_many_now(
        &self,
        users: &[UserId],
        event: &StreamEvent,
        dedupe: Option<&str>,
    ) -> Vec<EventId> {
        let (name, data) = (event.name(), event.data());
        let mut map = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users
            .iter()
            .map(|user| self.publish_locked(&mut map, user, name, &data, dedupe))
            .collect()
    }

    fn publish_locked(
        &self,
        users: &mut HashMap<UserId, UserLog>,
        user: &UserId,
        name: &'static str,
        data: &str,
        dedupe: Option<&str>,
    ) -> EventId {
        let limits = self.limits;
        let log = Self::log(users, user);
        if let Some(key) = dedupe
            && let Some(seen) = log
                .backlog
                .iter()
                .rev()
                .find(|k| k.dedupe.as_deref() == Some(key))
        {
            return seen.entry.id;
        }
        log.last_n += 1;
        let now = Instant::now();
        let entry = Entry::from_parts(EventId::new(self.epoch, log.last_n), name, data, false);
        log.bytes += entry.data().len();
        log.backlog.push_back(Kept {
            entry: entry.clone(),
            at: now,
            dedupe: dedupe.map(Into::into),
        });
        log.trim(&limits, now);
        // No open stream is not an error: the event waits in the backlog.
        let id = entry.id;
        if let Some(live) = &log.live {
            let _ = live.send(entry);
        }
        id
    }

    /// Sends `event` to the user's open streams only: no id, not kept, never replayed (a
    /// `typing` hint is stale a few seconds later). A user without streams costs nothing.
    pub fn notify_now(&self, user: &UserId, event: &StreamEvent) {
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let Some(live) = users.get(user).and_then(|log| log.live.as_ref()) else {
            return;
        };
        let _ = live.send(Entry::new(
            EventId::new(self.epoch, users[user].last_n),
            event,
            true,
        ));
    }

    /// A stream of `user`'s events after `after` (or from now, for `None`).
    pub fn subscribe_now(&self, user: &UserId, after: Option<EventId>) -> Subscription {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let epoch = self.epoch;
        let log = Self::log(&mut users, user);
        let latest = EventId::new(epoch, log.last_n);
        let resume = match after {
            None => Resume::Replay(Vec::new()),
            Some(id) if let Some(reason) = unresumable(id, epoch, log.last_n) => {
                Resume::Reset(reason)
            }
            Some(id) => {
                // The backlog holds ids oldest_n..=last_n; resuming needs everything after id.
                let oldest_n = log
                    .backlog
                    .front()
                    .map_or(log.last_n + 1, |e| e.entry.id.n());
                if id.n() + 1 < oldest_n {
                    Resume::Reset(ResetReason::TooOld)
                } else {
                    Resume::Replay(
                        log.backlog
                            .iter()
                            .filter(|k| k.entry.id > id)
                            .map(|k| k.entry.clone())
                            .collect(),
                    )
                }
            }
        };
        let capacity = self.limits.live_buffer.max(1);
        let receiver = log
            .live
            .get_or_insert_with(|| broadcast::channel(capacity).0)
            .subscribe();
        let guard = LiveGuard {
            users: Arc::downgrade(&self.users),
            user: user.clone(),
        };
        Subscription {
            latest,
            resume,
            live: live_stream(receiver, guard),
        }
    }
}

#[async_trait]
impl EventBus for Hub {
    fn epoch(&self) -> u32 {
        self.epoch
    }

    /// In this process: it answers whenever the process does.
    async fn ping(&self) -> BusResult<()> {
        Ok(())
    }

    async fn publish(
        &self,
        user: &UserId,
        event: &StreamEvent,
        dedupe: Option<&str>,
    ) -> BusResult<EventId> {
        Ok(self.publish_now(user, event, dedupe))
    }

    async fn publish_many(
        &self,
        users: &[UserId],
        event: &StreamEvent,
        dedupe: Option<&str>,
    ) -> Vec<BusResult<EventId>> {
        self.publish_many_now(users, event, dedupe)
            .into_iter()
            .map(Ok)
            .collect()
    }

    async fn notify(&self, user: &UserId, event: &StreamEvent) {
        self.notify_now(user, event);
    }

    async fn subscribe(&self, user: &UserId, after: Option<EventId>) -> BusResult<Subscription> {
        Ok(self.subscribe_now(user, after))
    }

    async fn signal(&self, signal: Signal) -> BusResult<()> {
        let _ = self.signals.send(signal);
        Ok(())
    }

    fn signals(&self) -> broadcast::Receiver<Signal> {
        self.signals.subscribe()
    }

    /// Applies the age limit to every user's backlog now (publishing applies it only to the
    /// user it publishes for, so a user who went quiet would keep old events forever) and
    /// gives back the room of trimmed backlogs.
    fn sweep(&self) -> usize {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let mut dropped = 0;
        for log in users.values_mut() {
            let before = log.backlog.len();
            log.trim(&self.limits, now);
            dropped += before - log.backlog.len();
            if log.backlog.capacity() > 2 * log.backlog.len() + 16 {
                log.backlog.shrink_to_fit();
            }
        }
        dropped
    }

    fn held(&self) -> (usize, usize) {
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users
            .values()
            .fold((0, 0), |(n, b), log| (n + log.backlog.len(), b + log.bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Live;
    use farm_chat_protocol::stream::{MessageCreated, StreamEvent};
    use futures_util::{FutureExt, StreamExt};
    use std::time::Duration;

    /// The next live entry, if one is ready now.
    fn try_next(sub: &mut Subscription) -> Option<Entry> {
        match sub.live.next().now_or_never().flatten() {
            Some(Live::Event(entry)) => Some(entry),
            _ => None,
        }
    }

    fn created(seq: u64) -> StreamEvent {
        StreamEvent::MessageCreated(MessageCreated {
            conversation_id: "c".into(),
            message_id: format!("m{seq}").as_str().into(),
            seq,
        })
    }

    fn ids(resume: &Resume) -> Vec<u64> {
        match resume {
            Resume::Replay(entries) => entries.iter().map(|e| e.id.n()).collect(),
            Resume::Reset(r) => panic!("reset {r:?}"),
        }
    }

    #[test]
    fn ids_are_monotonic_per_user() {
        let hub = Hub::new(3, HubLimits::default());
        let (a, b) = (UserId("a".into()), UserId("b".into()));
        assert_eq!(hub.publish_now(&a, &created(1), None), EventId::new(3, 1));
        assert_eq!(hub.publish_now(&a, &created(2), None), EventId::new(3, 2));
        assert_eq!(hub.publish_now(&b, &created(1), None), EventId::new(3, 1));
    }

    #[test]
    fn resume_replays_exactly_what_came_after() {
        let hub = Hub::new(1, HubLimits::default());
        let u = UserId("u".into());
        for i in 1..=5 {
            hub.publish_now(&u, &created(i), None);
        }
        assert_eq!(
            ids(&hub.subscribe_now(&u, Some(EventId::new(1, 2))).resume),
            [3, 4, 5]
        );
        assert_eq!(
            ids(&hub.subscribe_now(&u, Some(EventId::new(1, 5))).resume),
            Vec::<u64>::new()
        );
        assert_eq!(
            ids(&hub.subscribe_now(&u, Some(EventId::new(1, 0))).resume),
            [1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn resets_for_old_other_epoch_and_future_ids() {
        let limits = HubLimits {
            backlog_min_events: 3,
            backlog_hard_cap: 3,
            ..HubLimits::default()
        };
        let hub = Hub::new(2, limits);
        let u = UserId("u".into());
        for i in 1..=10 {
            hub.publish_now(&u, &created(i), None);
        }
        let reset = |after| match hub.subscribe_now(&u, Some(after)).resume {
            Resume::Reset(r) => Some(r),
            Resume::Replay(_) => None,
        };
        assert_eq!(reset(EventId::new(2, 7)), None, "8, 9, 10 are still kept");
        assert_eq!(reset(EventId::new(2, 6)), Some(ResetReason::TooOld));
        assert_eq!(reset(EventId::new(1, 10)), Some(ResetReason::Restarted));
        assert_eq!(reset(EventId::new(2, 11)), Some(ResetReason::Unknown));
        assert_eq!(reset(EventId::new(3, 1)), Some(ResetReason::Unknown));
    }

    #[test]
    fn a_live_only_event_reaches_open_streams_but_is_never_replayed() {
        let hub = Hub::new(1, HubLimits::default());
        let u = UserId("u".into());
        hub.notify_now(&u, &created(0)); // no stream: nothing kept, nothing created
        assert_eq!(hub.held(), (0, 0));
        let first = hub.publish_now(&u, &created(1), None);
        let mut sub = hub.subscribe_now(&u, None);
        hub.notify_now(&u, &created(2));
        let third = hub.publish_now(&u, &created(3), None);
        let live = try_next(&mut sub).unwrap();
        assert!(live.live_only);
        assert_eq!(
            live.id, first,
            "it carries the newest id, not one of its own"
        );
        assert_eq!(try_next(&mut sub).unwrap().id, third);
        assert_eq!(third.n(), 2, "ids skip nothing for it");
        let resumed = hub.subscribe_now(&u, Some(first));
        assert_eq!(ids(&resumed.resume), vec![third.n()]);
    }

    #[test]
    fn live_receivers_get_events_published_after_subscribing() {
        let hub = Hub::new(1, HubLimits::default());
        let u = UserId("u".into());
        hub.publish_now(&u, &created(1), None);
        let mut sub = hub.subscribe_now(&u, None);
        assert_eq!(sub.latest, EventId::new(1, 1));
        hub.publish_now(&u, &created(2), None);
        assert_eq!(try_next(&mut sub).map(|e| e.id.n()), Some(2));
    }

    #[test]
    fn the_backlog_is_bounded_in_bytes_too_and_keeps_the_newest() {
        let limits = HubLimits {
            backlog_max_bytes: 1000,
            ..HubLimits::default()
        };
        let hub = Hub::new(1, limits);
        let u = UserId("u".into());
        for i in 1..=100 {
            hub.publish_now(&u, &created(i), None);
        }
        let (events, bytes) = hub.held();
        assert!(bytes <= 1000 && events < 100, "{events} events, {bytes} B");
        let mut huge = created(101);
        if let StreamEvent::MessageCreated(m) = &mut huge {
            m.conversation_id = "c".repeat(5000).as_str().into();
        }
        hub.publish_now(&u, &huge, None);
        assert_eq!(hub.held().0, 1, "only the newest, however big");
    }

    #[test]
    fn a_sweep_drops_aged_events_of_users_who_went_quiet() {
        let limits = HubLimits {
            backlog_min_events: 2,
            backlog_max_age: Duration::from_millis(20),
            ..HubLimits::default()
        };
        let hub = Hub::new(1, limits);
        let (quiet, busy) = (UserId("quiet".into()), UserId("busy".into()));
        for i in 1..=50 {
            hub.publish_now(&quiet, &created(i), None);
        }
        std::thread::sleep(Duration::from_millis(40));
        hub.publish_now(&busy, &created(1), None);
        assert_eq!(hub.held().0, 51, "publishing trims only its own user");
        assert_eq!(hub.sweep(), 48);
        assert_eq!(hub.held().0, 3, "the quiet user keeps the newest two");
        // Ids go on from where they were.
        assert_eq!(
            hub.publish_now(&quiet, &created(51), None),
            EventId::new(1, 51)
        );
    }

    #[test]
    fn a_users_live_feed_is_freed_with_their_last_stream_and_their_ids_go_on() {
        let hub = Hub::new(1, HubLimits::default());
        let (u, quiet) = (UserId("u".into()), UserId("quiet".into()));
        let live = |hub: &Hub, user: &UserId| {
            hub.users
                .lock()
                .unwrap()
                .get(user)
                .map(|l| l.live.is_some())
        };
        let first = hub.subscribe_now(&u, None);
        let second = hub.subscribe_now(&u, None);
        hub.publish_now(&u, &created(1), None);
        drop(first);
        assert_eq!(live(&hub, &u), Some(true), "one stream is still open");
        drop(second);
        assert_eq!(
            live(&hub, &u),
            Some(false),
            "the last stream took the feed with it"
        );
        assert_eq!(
            hub.publish_now(&u, &created(2), None),
            EventId::new(1, 2),
            "the backlog and the ids stay"
        );
        // A user who never got an event leaves nothing behind.
        drop(hub.subscribe_now(&quiet, None));
        assert_eq!(live(&hub, &quiet), None);
    }

    #[test]
    fn an_entry_is_one_sse_frame_shared_by_every_stream() {
        let entry = Entry::new(EventId::new(1, 7), &created(7), false);
        let frame = entry.frame();
        let text = std::str::from_utf8(&frame).unwrap();
        assert_eq!(
            text,
            format!(
                "id: {}\nevent: message.created\ndata: {}\n\n",
                EventId::new(1, 7),
                created(7).data()
            )
        );
        assert_eq!(entry.data(), created(7).data());
        assert_eq!(
            entry.clone().frame().as_ptr(),
            frame.as_ptr(),
            "a clone shares the bytes"
        );
        let live_only = Entry::new(EventId::new(1, 7), &created(7), true);
        assert!(
            !std::str::from_utf8(&live_only.frame())
                .unwrap()
                .contains("id:")
        );
        // Data on several lines (never JSON) still makes one event.
        let (frame, at) =
            crate::bus::sse_frame(None, "x", "a\r\nb\rc\nd", Some(Duration::from_millis(5)));
        assert_eq!(at, None);
        assert_eq!(
            String::from_utf8(frame).unwrap(),
            "event: x\ndata: a\ndata: b\ndata: c\ndata: d\nretry: 5\n\n"
        );
    }

    #[test]
    fn the_backlog_is_bounded() {
        let limits = HubLimits {
            backlog_min_events: 10,
            backlog_hard_cap: 50,
            ..HubLimits::default()
        };
        let hub = Hub::new(1, limits);
        let u = UserId("u".into());
        for i in 1..=500 {
            hub.publish_now(&u, &created(i), None);
        }
        let users = hub.users.lock().unwrap();
        assert_eq!(users[&u].backlog.len(), 50);
    }
}
