//! The open streams of this instance, per user: the caps (per user, per session), and
//! everything that closes a stream from outside it (caps, sign-out, the test switch,
//! shutdown and the drain), so a stream waits on one channel instead of watching every signal
//! itself. The handler that writes a stream is [`crate::api::stream`].

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use farm_chat_protocol::UserId;

use crate::{metrics::Metrics, shared::Shared};

/// At most this many open streams per user (tabs, devices). A new stream beyond closes one
/// (see [`StreamCounts::acquire`]); it is never refused.
pub const MAX_STREAMS_PER_USER: usize = 10;

/// At most this many open streams per session (one browser shares one session; its tabs
/// elect one leader, so more than a few are leftovers of reloads).
pub const MAX_STREAMS_PER_SESSION: usize = 4;

/// How often `ping` is sent.
pub const PING_EVERY: Duration = Duration::from_secs(15);

/// Why a stream is closed from outside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// A newer stream of the user took its place (the caps).
    Evicted,
    /// Its session signed out.
    SignedOut,
    /// The test-mode switch, or signals were missed (one may have been a sign-out).
    Dropped,
    /// The server is stopping now.
    Shutdown,
    /// The server is draining: say when to come back (to another instance), then end.
    Drain,
}

/// One open stream, as [`StreamCounts`] knows it.
#[derive(Debug)]
pub struct OpenStream {
    id: u64,
    session: String,
    /// Its entry in the instances' shared registry, if there is one.
    member: Option<String>,
    /// Sending on it closes the stream; the client reconnects and resumes.
    close: tokio::sync::oneshot::Sender<Close>,
}

/// The open streams per user; a [`StreamSlot`] gives its place back when dropped. Everything
/// that closes a stream from outside (caps, sign-out, the test switch, shutdown) goes through
/// here, so a stream waits on one channel instead of watching every signal itself.
#[derive(Debug, Default)]
pub struct StreamCounts {
    open: Mutex<HashMap<UserId, Vec<OpenStream>>>,
    next_id: std::sync::atomic::AtomicU64,
    /// Set once the server drains: a stream opened after that closes at once.
    draining: std::sync::atomic::AtomicBool,
}

/// One open stream's place in [`StreamCounts`].
#[derive(Debug)]
pub struct StreamSlot {
    counts: Arc<StreamCounts>,
    user: UserId,
    id: u64,
    metrics: Arc<Metrics>,
    /// The shared registry and this stream's entry there, to remove when it closes.
    shared: Option<(Arc<dyn Shared>, String)>,
}

/// Which open stream gives way to a new one of `session`, if the caps call for it: the oldest
/// of the session when the session is at its cap, else, when the user is at theirs, the oldest
/// of the session holding the most streams. So whoever opens streams in bulk (a leaky page, or
/// a stranger signed in as this user) loses their own first, and nobody can lock a user out.
pub fn evictee(open: &[&str], session: &str, per_session: usize, per_user: usize) -> Option<usize> {
    let of_session = |s: &str| open.iter().filter(|o| **o == s).count();
    if of_session(session) >= per_session {
        return open.iter().position(|o| *o == session);
    }
    if open.len() < per_user {
        return None;
    }
    let most = open.iter().map(|o| of_session(o)).max()?;
    // `open` is in opening order, so the first match is the oldest.
    open.iter().position(|o| of_session(o) == most)
}

/// A stream as the instances' shared registry names it: `<opened ms>|<instance>|<id>|<session>`.
pub fn member(instance: &str, id: u64, session: &str) -> String {
    let opened = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{opened}|{instance}|{id}|{session}")
}

/// (instance, id, session) of a registry member.
pub fn parse_member(member: &str) -> Option<(&str, u64, &str)> {
    let mut fields = member.splitn(4, '|');
    let _opened = fields.next()?;
    let instance = fields.next()?;
    let id = fields.next()?.parse().ok()?;
    Some((instance, id, fields.next()?))
}

impl StreamCounts {
    /// A place for a new stream of `session`, closing an older stream if a cap is reached; the
    /// receiver resolves when this stream must close in turn.
    pub fn acquire(
        self: &Arc<Self>,
        user: &UserId,
        session: &str,
        metrics: &Arc<Metrics>,
    ) -> (StreamSlot, tokio::sync::oneshot::Receiver<Close>) {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (close, closed) = tokio::sync::oneshot::channel();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let streams = open.entry(user.clone()).or_default();
        let sessions: Vec<&str> = streams.iter().map(|o| o.session.as_str()).collect();
        if let Some(at) = evictee(
            &sessions,
            session,
            MAX_STREAMS_PER_SESSION,
            MAX_STREAMS_PER_USER,
        ) {
            let old = streams.remove(at);
            tracing::info!(userId = %user, "stream limit reached: the oldest stream gives way");
            let _ = old.close.send(Close::Evicted);
        }
        if self.draining.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = close.send(Close::Drain);
        } else {
            streams.push(OpenStream {
                id,
                session: session.to_owned(),
                member: None,
                close,
            });
        }
        metrics.open_streams.add(1);
        metrics.streams_opened.inc();
        let slot = StreamSlot {
            counts: self.clone(),
            user: user.clone(),
            id,
            metrics: metrics.clone(),
            shared: None,
        };
        (slot, closed)
    }

    /// Closes stream `id` of `user` here (it gave way to a newer one elsewhere).
    pub fn close(&self, user: &UserId, id: u64) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(streams) = open.get_mut(user)
            && let Some(at) = streams.iter().position(|o| o.id == id)
        {
            let old = streams.remove(at);
            let _ = old.close.send(Close::Evicted);
        }
    }

    /// Closes every open stream `which` picks, for `why`.
    pub fn close_where(&self, which: impl Fn(&OpenStream) -> bool, why: Close) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        for streams in open.values_mut() {
            let mut i = 0;
            while i < streams.len() {
                if which(&streams[i]) {
                    let _ = streams.remove(i).close.send(why);
                } else {
                    i += 1;
                }
            }
        }
        open.retain(|_, streams| !streams.is_empty());
    }

    /// Closes every stream, each at a random moment within `window` (at once for zero), and
    /// any stream opened meanwhile at once.
    pub async fn drain(&self, window: Duration) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let all: Vec<OpenStream> = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            open.drain().flat_map(|(_, streams)| streams).collect()
        };
        let window_ms = window.as_millis() as u64;
        if window_ms == 0 {
            tracing::info!(
                streams = all.len(),
                "closing every stream: server shutting down"
            );
            for stream in all {
                let _ = stream.close.send(Close::Shutdown);
            }
            return;
        }
        tracing::info!(streams = all.len(), ?window, "draining the streams");
        let mut closing: Vec<(u64, OpenStream)> =
            all.into_iter().map(|o| (jitter(window_ms), o)).collect();
        closing.sort_by_key(|(at, _)| *at);
        let start = tokio::time::Instant::now();
        for (at, stream) in closing {
            tokio::time::sleep_until(start + Duration::from_millis(at)).await;
            let _ = stream.close.send(Close::Drain);
        }
    }

    /// Notes stream `id`'s entry in the shared registry (renewed while it is open).
    pub fn set_member(&self, user: &UserId, id: u64, member: &str) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(stream) = open
            .get_mut(user)
            .and_then(|streams| streams.iter_mut().find(|o| o.id == id))
        {
            stream.member = Some(member.to_owned());
        }
    }

    /// Every open stream's registry entry.
    pub fn members(&self) -> Vec<(UserId, String)> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.iter()
            .flat_map(|(user, streams)| {
                streams
                    .iter()
                    .filter_map(|o| Some((user.clone(), o.member.clone()?)))
            })
            .collect()
    }
}

impl OpenStream {
    /// The session it belongs to.
    pub fn session(&self) -> &str {
        &self.session
    }
}

impl StreamSlot {
    /// This stream's id among the instance's streams.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Remembers the stream's `member` of the shared registry, to remove when it closes.
    pub fn registered(&mut self, shared: Arc<dyn Shared>, member: String) {
        self.shared = Some((shared, member));
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(streams) = open.get_mut(&self.user) {
            streams.retain(|o| o.id != self.id);
            if streams.is_empty() {
                open.remove(&self.user);
            }
        }
        self.metrics.open_streams.add(-1);
        if let Some((shared, member)) = self.shared.take() {
            let user = self.user.clone();
            tokio::spawn(async move {
                let _ = shared.close_stream(&user, &member).await;
            });
        }
    }
}

/// A random number in `0..=max` (for spreading reconnects; not for secrets).
pub fn jitter(max: u64) -> u64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes) % (max + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streams<'a>(sessions: &[&'a str]) -> Vec<&'a str> {
        sessions.to_vec()
    }

    #[test]
    fn a_registry_member_names_its_instance_stream_and_session() {
        let m = member("i-1", 42, "s|x");
        assert_eq!(parse_member(&m), Some(("i-1", 42, "s|x")));
        assert_eq!(parse_member("garbage"), None);
    }

    #[test]
    fn below_the_caps_nothing_gives_way() {
        assert_eq!(evictee(&streams(&["a", "b", "a"]), "a", 4, 10), None);
    }

    #[test]
    fn a_session_at_its_cap_gives_up_its_own_oldest() {
        let open = streams(&["b", "a", "a", "b", "a", "a"]);
        assert_eq!(evictee(&open, "a", 4, 10), Some(1));
    }

    #[test]
    fn a_user_at_the_cap_loses_the_oldest_of_the_biggest_session() {
        // The farmer's own tab ("me", oldest) keeps its stream; the hoarder's oldest goes.
        let open = streams(&["me", "x", "x", "y", "x", "y"]);
        assert_eq!(evictee(&open, "me", 4, 6), Some(1));
        assert_eq!(evictee(&open, "new", 4, 6), Some(1));
    }
}
