//! `GET /api/chat/stream`: one SSE stream per user for all their conversations.
//!
//! The stream starts with `ready` (and `retry: 1000`), then replays the user's events after
//! the client's last id (`Last-Event-ID` header, else `?lastEventId=`) or sends `reset` when
//! the backlog can't fill the gap, then goes live. `ping` every 15 s. It ends when the client
//! goes away, falls too far behind (it will resume), its session ends, or the server stops.

use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, Method, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use farm_chat_protocol::{
    EventId, StreamEvent, UserId,
    stream::{Ping, Ready, Reset},
};
use futures_util::stream::{Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast;

use crate::{
    auth::{self, AuthUser},
    bus::{EventBus, Live, LiveStream, Resume, Signal, sse_frame},
    error::ApiError,
    error::ApiQuery,
    state::AppState,
};

/// At most this many open streams per user (tabs, devices). A new stream beyond closes one
/// (see [`StreamCounts::acquire`]); it is never refused.
pub const MAX_STREAMS_PER_USER: usize = 10;
/// At most this many open streams per session (one browser shares one session; its tabs
/// elect one leader, so more than a few are leftovers of reloads).
pub const MAX_STREAMS_PER_SESSION: usize = 4;

/// Query of the stream route.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamQuery {
    last_event_id: Option<String>,
    ticket: Option<String>,
}

/// Why a stream is closed from outside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Close {
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
struct OpenStream {
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
    metrics: Arc<crate::metrics::Metrics>,
    /// The shared registry and this stream's entry there, to remove when it closes.
    shared: Option<(Arc<dyn crate::shared::Shared>, String)>,
}

/// Which open stream gives way to a new one of `session`, if the caps call for it: the oldest
/// of the session when the session is at its cap, else, when the user is at theirs, the oldest
/// of the session holding the most streams. So whoever opens streams in bulk (a leaky page, or
/// a stranger signed in as this user) loses their own first, and nobody can lock a user out.
fn evictee(open: &[&str], session: &str, per_session: usize, per_user: usize) -> Option<usize> {
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
fn member(instance: &str, id: u64, session: &str) -> String {
    let opened = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{opened}|{instance}|{id}|{session}")
}

/// (instance, id, session) of a registry member.
fn parse_member(member: &str) -> Option<(&str, u64, &str)> {
    let mut fields = member.splitn(4, '|');
    let _opened = fields.next()?;
    let instance = fields.next()?;
    let id = fields.next()?.parse().ok()?;
    Some((instance, id, fields.next()?))
}

/// The caps hold across instances: the new stream joins the user's shared registry (alone,
/// this instance's counts are all of it), and when that puts the user over a cap, the stream that gives way closes
/// wherever it is (here, or by a signal to its instance).
async fn cap_across_instances(
    state: &AppState,
    user: &UserId,
    session: &str,
    slot: &mut StreamSlot,
) {
    let shared = state.common.shared.clone();
    let mine = member(&state.local.instance, slot.id, session);
    let members = match shared.open_stream(user, &mine).await {
        Ok(members) => members,
        Err(e) => {
            tracing::warn!(error = %e, "stream registry unavailable; this instance's caps apply");
            return;
        }
    };
    slot.shared = Some((shared.clone(), mine.clone()));
    state.local.stream_counts.set_member(user, slot.id, &mine);
    let others: Vec<&String> = members.iter().filter(|m| **m != mine).collect();
    let sessions: Vec<&str> = others
        .iter()
        .map(|m| parse_member(m).map_or("", |(_, _, s)| s))
        .collect();
    let Some(at) = evictee(
        &sessions,
        session,
        MAX_STREAMS_PER_SESSION,
        MAX_STREAMS_PER_USER,
    ) else {
        return;
    };
    let old = others[at].clone();
    tracing::info!(userId = %user, "stream limit reached across instances: the oldest stream gives way");
    let _ = shared.close_stream(user, &old).await;
    match parse_member(&old) {
        Some((instance, id, _)) if instance == &*state.local.instance => {
            state.local.stream_counts.close(user, id);
        }
        Some(_) => {
            if let Err(e) = state
                .common
                .bus
                .signal(Signal::CloseStream(user.clone(), old))
                .await
            {
                tracing::warn!(error = %e, "could not close a stream on another instance");
            }
        }
        None => {}
    }
}

/// Closes the streams that signals end (another instance's cap, a sign-out, the test switch),
/// renews this instance's entries in the shared registry, and drains the streams when the
/// server stops: each closes at a random moment within the drain window, telling its client
/// when to come back, so they return spread out (to the other instances).
pub async fn follow_signals(state: AppState) {
    let shared = state.common.shared.clone();
    let counts = state.local.stream_counts.clone();
    let mut signals = state.common.bus.signals();
    let mut shutdown = state.shutdown.clone();
    let mut renew = tokio::time::interval(crate::shared::STREAM_STALE / 3);
    loop {
        tokio::select! {
            signal = signals.recv() => match signal {
                Ok(Signal::CloseStream(user, member)) => {
                    if let Some((instance, id, _)) = parse_member(&member)
                        && instance == &*state.local.instance
                    {
                        counts.close(&user, id);
                    }
                }
                Ok(Signal::SignedOut(session)) => {
                    counts.close_where(|o| o.session == session, Close::SignedOut);
                }
                Ok(Signal::DropStreams) => counts.close_where(|_| true, Close::Dropped),
                Ok(Signal::CancelTask(_)) => {}
                // Missed signals may have held a sign-out: every stream ends, and each
                // client's reconnect checks its session again.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    counts.close_where(|_| true, Close::Dropped);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = renew.tick() => {
                let open = counts.members();
                if let Err(e) = shared.renew_streams(&open).await {
                    tracing::warn!(error = %e, "could not renew this instance's streams");
                }
            }
            () = async { let _ = shutdown.wait_for(|stop| *stop).await; } => {
                counts.drain(state.config.drain_window).await;
                return;
            }
        }
    }
}

impl StreamCounts {
    /// A place for a new stream of `session`, closing an older stream if a cap is reached; the
    /// receiver resolves when this stream must close in turn.
    fn acquire(
        self: &Arc<Self>,
        user: &UserId,
        session: &str,
        metrics: &Arc<crate::metrics::Metrics>,
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
    fn close(&self, user: &UserId, id: u64) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(streams) = open.get_mut(user)
            && let Some(at) = streams.iter().position(|o| o.id == id)
        {
            let old = streams.remove(at);
            let _ = old.close.send(Close::Evicted);
        }
    }

    /// Closes every open stream `which` picks, for `why`.
    fn close_where(&self, which: impl Fn(&OpenStream) -> bool, why: Close) {
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
    async fn drain(&self, window: Duration) {
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

    fn set_member(&self, user: &UserId, id: u64, member: &str) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(stream) = open
            .get_mut(user)
            .and_then(|streams| streams.iter_mut().find(|o| o.id == id))
        {
            stream.member = Some(member.to_owned());
        }
    }

    /// Every open stream's registry entry.
    fn members(&self) -> Vec<(UserId, String)> {
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

/// How often `ping` is sent.
pub const PING_EVERY: Duration = Duration::from_secs(15);

/// `GET /api/chat/stream`.
pub async fn stream(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<StreamQuery>,
) -> Result<Response, ApiError> {
    let auth = match &query.ticket {
        Some(ticket) => auth::authenticate_ticket(&state, ticket).await?,
        None => auth::authenticate(&state, &method, &headers).await?,
    };
    // The header wins over the query: it is what EventSource itself sends on reconnect.
    let asked = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(query.last_event_id);
    let after = match asked.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => match text.parse::<EventId>() {
            Ok(id) => Some(id),
            Err(_) => {
                // Not an id we wrote: resume is impossible, so the client gets `reset`.
                tracing::warn!(
                    userId = auth.user.id,
                    "unparseable Last-Event-ID; sending reset"
                );
                Some(EventId(u64::MAX))
            }
        },
    };
    let user = auth.user_id();
    let (mut slot, evicted) =
        state
            .local
            .stream_counts
            .acquire(&user, &auth.session_id, &state.local.metrics);
    cap_across_instances(&state, &user, &auth.session_id, &mut slot).await;
    let subscription = state
        .common
        .bus
        .subscribe(&user, after)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    tracing::info!(userId = auth.user.id, after = ?after.map(|a| a.0), "stream opened");

    // `ready` carries the id the client stands at, so EventSource keeps a correct lastEventId.
    let start = match (&subscription.resume, after) {
        (Resume::Replay(_), Some(after)) => after,
        _ => subscription.latest,
    };
    let mut pending = VecDeque::new();
    let ready = StreamEvent::Ready(Ready {
        last_event_id: subscription.latest,
        server_time: crate::ids::now_rfc3339(),
    });
    pending.push_back(Bytes::from(
        sse_frame(
            Some(start),
            ready.name(),
            &ready.data(),
            Some(Duration::from_millis(1000)),
        )
        .0,
    ));
    let mut last_sent = start;
    match subscription.resume {
        Resume::Replay(entries) => {
            for entry in entries {
                last_sent = entry.id;
                pending.push_back(entry.frame());
            }
        }
        Resume::Reset(reason) => {
            tracing::info!(userId = auth.user.id, ?reason, "stream reset");
            pending.push_back(sse_event(start, &StreamEvent::Reset(Reset { reason })));
        }
    }
    let every = state.ping_every;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let session_end = Box::pin(tokio::time::sleep(Duration::from_secs(
        auth.expires_at.saturating_sub(crate::ids::unix_now()),
    )));
    let conn = Conn {
        pending,
        live: subscription.live,
        bus: state.common.bus.clone(),
        user,
        last_sent,
        ping,
        session_end,
        auth,
        metrics: state.local.metrics.clone(),
        closed: evicted,
        ended: false,
        _slot: slot,
    };
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, no-store"),
        ),
        (
            header::HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        ),
    ];
    Ok((headers, Body::from_stream(events(conn))).into_response())
}

/// An event of this stream alone (`ready`, `reset`, `ping`).
fn sse_event(id: EventId, event: &StreamEvent) -> Bytes {
    Bytes::from(sse_frame(Some(id), event.name(), &event.data(), None).0)
}

/// One open stream's state.
struct Conn {
    /// Frames to write before anything else; a bus event's frame is shared with every other
    /// stream that sends it.
    pending: VecDeque<Bytes>,
    live: LiveStream,
    /// To catch up from the backlog when the live feed ran ahead of this stream.
    bus: Arc<dyn EventBus>,
    user: UserId,
    last_sent: EventId,
    ping: tokio::time::Interval,
    /// When the session expires (one timer for the stream's life, not one per event).
    session_end: Pin<Box<tokio::time::Sleep>>,
    auth: AuthUser,
    metrics: Arc<crate::metrics::Metrics>,
    /// Resolves when something outside closes this stream ([`StreamCounts`]).
    closed: tokio::sync::oneshot::Receiver<Close>,
    /// The last event was written: end.
    ended: bool,
    _slot: StreamSlot,
}

fn events(conn: Conn) -> impl Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::unfold(conn, |mut conn| async move {
        let event = next_event(&mut conn).await?;
        conn.metrics.events_sent.inc();
        Some((Ok(event), conn))
    })
}

/// The next event to write, or `None` to end the stream.
async fn next_event(conn: &mut Conn) -> Option<Bytes> {
    if let Some(event) = conn.pending.pop_front() {
        return Some(event);
    }
    if conn.ended {
        return None;
    }
    let user = conn.auth.user.id;
    loop {
        tokio::select! {
            biased;
            why = &mut conn.closed => {
                conn.ended = true;
                match why {
                    // The last word: come back after a random moment (to another instance).
                    Ok(Close::Drain) => {
                        tracing::info!(userId = user, "stream closed: server draining");
                        let retry = 500 + jitter(2500);
                        return Some(Bytes::from(format!(": draining\nretry: {retry}\n\n")));
                    }
                    Ok(why) => tracing::info!(userId = user, ?why, "stream closed"),
                    Err(_) => tracing::info!(userId = user, "stream closed"),
                }
                return None;
            }
            () = &mut conn.session_end => {
                tracing::info!(userId = user, "stream closed: session expired");
                return None;
            }
            live = conn.live.next() => match live {
                // No id line: the client's last id stays where it is.
                Some(Live::Event(entry)) if entry.live_only => return Some(entry.frame()),
                // Already sent as part of the replay (or by another instance's repair).
                Some(Live::Event(entry)) if entry.id <= conn.last_sent => continue,
                // Another epoch: the events between are gone (the bus lost its data). End; the
                // client's resume gets `reset` and refetches.
                Some(Live::Event(entry)) if entry.id.epoch() != conn.last_sent.epoch() => {
                    tracing::warn!(userId = user, "stream closed: the event log moved to a new epoch");
                    return None;
                }
                Some(Live::Event(entry)) => {
                    conn.last_sent = entry.id;
                    return Some(entry.frame());
                }
                // The live feed ran ahead (a burst, or a slow link): catch up from the backlog
                // and go on, as a resuming client would.
                Some(Live::Lagged(missed)) => {
                    if !catch_up(conn).await {
                        tracing::warn!(userId = user, missed, "stream closed: too far behind to catch up; it will resume");
                        return None;
                    }
                    if let Some(frame) = conn.pending.pop_front() {
                        return Some(frame);
                    }
                }
                None => {
                    tracing::info!(userId = user, "stream closed: the event bus ended it; it will resume");
                    return None;
                }
            },
            _ = conn.ping.tick() => {
                return Some(sse_event(conn.last_sent, &StreamEvent::Ping(Ping { server_time: crate::ids::now_rfc3339() })));
            }
        }
    }
}

/// After the live feed lagged: a new feed, and the backlog after the last event sent queued
/// up. `false` when the backlog no longer holds the gap (the stream ends; the client's resume
/// gets `reset`).
async fn catch_up(conn: &mut Conn) -> bool {
    let Ok(subscription) = conn.bus.subscribe(&conn.user, Some(conn.last_sent)).await else {
        return false;
    };
    let Resume::Replay(entries) = subscription.resume else {
        return false;
    };
    conn.live = subscription.live;
    for entry in entries {
        if entry.id > conn.last_sent {
            conn.last_sent = entry.id;
            conn.pending.push_back(entry.frame());
        }
    }
    conn.metrics.streams_caught_up.inc();
    true
}

/// A random number in `0..=max` (for spreading reconnects; not for secrets).
fn jitter(max: u64) -> u64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes) % (max + 1)
}

/// `POST /api/test/drop-streams` (only with `--test-mode`, and only for a signed-in user):
/// ends every open stream, so tests can prove that clients reconnect and lose nothing.
pub async fn drop_streams(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<axum::http::StatusCode, ApiError> {
    state
        .common
        .bus
        .signal(Signal::DropStreams)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    tracing::warn!(
        userId = auth.user.id,
        "test mode: every open stream dropped"
    );
    Ok(axum::http::StatusCode::NO_CONTENT)
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
