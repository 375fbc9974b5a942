//! The event bus: owns each user's event ids, keeps their recent events for resuming, and
//! delivers them to that user's open streams on every server instance.
//!
//! Two implementations sit behind [`EventBus`]:
//! - [`Hub`] (`memory`), in-process (one server): ids `(epoch << 40) | n` with the
//!   epoch counted by the durable store at each start;
//! - [`RedisBus`] (`--redis-url`, several instances): a per-user log in Redis written by one
//!   Lua script (dedupe, next id, append, notify), Pub/Sub on a few partitioned channels that
//!   each instance subscribes to once, and local fan-out to its streams.
//!
//! A stream subscribes first and reads the log after its client's id second, so nothing falls
//! between the replay and the live feed; the stream itself skips what it already sent.

pub mod memory;
pub mod redis;

use std::{pin::Pin, sync::Arc, time::Duration};

use bytes::Bytes;

use farm_chat_protocol::{EventId, StreamEvent, TaskId, UserId, stream::ResetReason};
use futures_util::Stream;
use tokio::sync::broadcast;

pub use self::{memory::Hub, redis::RedisBus};
pub use crate::store::async_trait;

/// How much a bus keeps for resuming, per user, and how far a stream may fall behind.
#[derive(Clone, Copy, Debug)]
pub struct HubLimits {
    /// Events kept per user regardless of age.
    pub backlog_min_events: usize,
    /// Events younger than this are kept too…
    pub backlog_max_age: Duration,
    /// …up to this many per user, so memory stays bounded.
    pub backlog_hard_cap: usize,
    /// And at most this many bytes of event data per user (a task's result can be a table of
    /// kilobytes): beyond, the oldest go, and a client that missed them refetches history.
    pub backlog_max_bytes: usize,
    /// Events a stream may fall behind its live feed before it must catch up from the
    /// backlog (each user with an open stream holds this many slots).
    pub live_buffer: usize,
}

impl Default for HubLimits {
    fn default() -> Self {
        Self {
            backlog_min_events: 200,
            backlog_max_age: Duration::from_secs(600),
            backlog_hard_cap: 10_000,
            backlog_max_bytes: 512 * 1024,
            live_buffer: 16,
        }
    }
}

/// One event of one user, as every stream that sends it shares it: one allocation, encoded
/// as an SSE frame once, however many streams send it (a clone is a reference count).
#[derive(Clone, Debug)]
pub struct Entry(Arc<EntryData>);

/// What an [`Entry`] holds.
#[derive(Debug)]
pub struct EntryData {
    /// Its id (for a live-only event: the user's newest id, which it does not advance).
    pub id: EventId,
    /// The SSE `event:` name.
    pub name: &'static str,
    /// Sent to the streams open now and nowhere else (`typing`): not kept, never replayed.
    pub live_only: bool,
    /// The whole SSE frame: `id:` (not for a live-only event), `event:`, `data:`.
    frame: Bytes,
    /// Its `data:` text (JSON), a view into `frame` when it fits on one line.
    data: Bytes,
}

impl std::ops::Deref for Entry {
    type Target = EntryData;

    fn deref(&self) -> &EntryData {
        &self.0
    }
}

impl Entry {
    /// `event` with `id`.
    pub fn new(id: EventId, event: &StreamEvent, live_only: bool) -> Self {
        Self::from_parts(id, event.name(), &event.data(), live_only)
    }

    /// An event whose data is already serialized (read back from Redis).
    pub fn from_parts(id: EventId, name: &'static str, data: &str, live_only: bool) -> Self {
        let (frame, at) = sse_frame((!live_only).then_some(id), name, data, None);
        let frame = Bytes::from(frame);
        let data = match at {
            Some(at) => frame.slice(at..at + data.len()),
            None => Bytes::copy_from_slice(data.as_bytes()),
        };
        Self(Arc::new(EntryData {
            id,
            name,
            live_only,
            frame,
            data,
        }))
    }

    /// The same event under another id (a live-only event carries the newest id).
    pub fn with_id(&self, id: EventId) -> Self {
        Self::from_parts(id, self.name, self.data(), self.live_only)
    }

    /// The known event name equal to `name` (events read back from Redis).
    pub fn known_name(name: &str) -> Option<&'static str> {
        StreamEvent::NAMES.iter().find(|n| **n == name).copied()
    }
}

impl EntryData {
    /// Its `data:` text.
    pub fn data(&self) -> &str {
        // Built from a `&str` (or a view of one) in `from_parts`.
        std::str::from_utf8(&self.data).unwrap_or_default()
    }

    /// The SSE frame every stream writes as is.
    pub fn frame(&self) -> Bytes {
        self.frame.clone()
    }
}

/// An SSE frame: `id:`, `event:`, one `data:` line per line of `data` and `retry:`, then the
/// blank line. Also where `data` starts in it, when it is one line (JSON always is).
pub fn sse_frame(
    id: Option<EventId>,
    name: &str,
    data: &str,
    retry: Option<std::time::Duration>,
) -> (Vec<u8>, Option<usize>) {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(data.len() + name.len() + 40);
    if let Some(id) = id {
        let _ = writeln!(out, "id: {id}");
    }
    let _ = writeln!(out, "event: {name}");
    let mut at = None;
    if data.contains(['\n', '\r']) {
        for line in data.replace("\r\n", "\n").split(['\n', '\r']) {
            let _ = writeln!(out, "data: {line}");
        }
    } else {
        out.push_str("data: ");
        at = Some(out.len());
        out.push_str(data);
        out.push('\n');
    }
    if let Some(retry) = retry {
        let _ = writeln!(out, "retry: {}", retry.as_millis());
    }
    out.push('\n');
    (out.into_bytes(), at)
}

/// Where a new stream starts.
#[derive(Debug)]
pub enum Resume {
    /// Replay these, then go live.
    Replay(Vec<Entry>),
    /// The log can't fill the gap: the client must refetch history.
    Reset(ResetReason),
}

/// Why a client's last id `after` can't be resumed from, for a user whose newest id is
/// `(epoch, last_n)`: an older epoch (the log was lost: `restarted`), or an id never given
/// (`unknown`). `None`: the log may fill the gap (if it still holds it).
pub fn unresumable(after: EventId, epoch: u32, last_n: u64) -> Option<ResetReason> {
    if after.epoch() < epoch {
        Some(ResetReason::Restarted)
    } else if after.epoch() > epoch || after.n() > last_n {
        Some(ResetReason::Unknown)
    } else {
        None
    }
}

/// What a stream's live feed yields.
#[derive(Debug)]
pub enum Live {
    /// The next event (the stream skips ids it already sent).
    Event(Entry),
    /// The stream fell too far behind and missed events: it must end, and its client resumes
    /// from its last id.
    Lagged(u64),
}

/// The live part of a subscription: a plain stream; it ends when the bus wants the stream to
/// end (its client then resumes from its last id, on any instance).
pub type LiveStream = Pin<Box<dyn Stream<Item = Live> + Send>>;

/// A new stream's start.
pub struct Subscription {
    /// The user's newest id when subscribing.
    pub latest: EventId,
    /// What to send before the live events.
    pub resume: Resume,
    /// The live events (those up to `latest` may come again: skip them).
    pub live: LiveStream,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("latest", &self.latest)
            .field("resume", &self.resume)
            .finish_non_exhaustive()
    }
}

/// A signal every instance acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    /// The session signed out: its streams close on every instance.
    SignedOut(String),
    /// Test mode: every open stream ends, as if the network had cut them.
    DropStreams,
    /// Cancel this task: the instance running it does (a cancel may arrive at any instance).
    CancelTask(TaskId),
    /// Close this stream (`<opened ms>|<instance>|<id>|<session>`) of this user: a newer one
    /// on another instance took its place under the per-user caps.
    CloseStream(UserId, String),
}

/// The bus could not do it now (Redis out of reach); the caller answers 503 or retries.
#[derive(Debug, thiserror::Error)]
#[error("event bus unavailable: {0}")]
pub struct BusError(pub String);

/// What bus operations return.
pub type BusResult<T> = Result<T, BusError>;

/// See the [module](self).
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// The epoch this instance publishes under now (for logs).
    fn epoch(&self) -> u32;

    /// Answers when the bus does (readiness: `GET /api/health/ready`).
    async fn ping(&self) -> BusResult<()>;

    /// Gives `event` the user's next id, keeps it for resuming and delivers it to the user's
    /// open streams on every instance. With a `dedupe` key already published for this user
    /// (within the resume window) nothing new happens and the earlier id is returned: a
    /// republish after a crash is harmless.
    async fn publish(
        &self,
        user: &UserId,
        event: &StreamEvent,
        dedupe: Option<&str>,
    ) -> BusResult<EventId>;

    /// [`publish`](Self::publish) to each of `users` (everyone in a conversation), as one batch
    /// where the engine can: a support conversation may have thousands of participants.
    async fn publish_many(
        &self,
        users: &[UserId],
        event: &StreamEvent,
        dedupe: Option<&str>,
    ) -> Vec<BusResult<EventId>> {
        let mut out = Vec::with_capacity(users.len());
        for user in users {
            out.push(self.publish(user, event, dedupe).await);
        }
        out
    }

    /// Delivers `event` to the user's streams open now, on every instance; no id, not kept
    /// (`typing`). Best effort: a failure is logged, not returned.
    async fn notify(&self, user: &UserId, event: &StreamEvent);

    /// A stream of the user's events after `after` (or from now, for `None`).
    async fn subscribe(&self, user: &UserId, after: Option<EventId>) -> BusResult<Subscription>;

    /// Sends `signal` to every instance, this one included.
    async fn signal(&self, signal: Signal) -> BusResult<()>;

    /// The signals of every instance.
    fn signals(&self) -> broadcast::Receiver<Signal>;

    /// Lets go of aged events held in this process; returns how many.
    fn sweep(&self) -> usize;

    /// Events held in this process for resuming, and their data's bytes.
    fn held(&self) -> (usize, usize);
}

/// A receiver and what must happen after it is gone, in that order: a guard that frees the
/// user's feed when no receiver is left must see this one dropped.
struct Held<G> {
    receiver: Option<broadcast::Receiver<Entry>>,
    _guard: G,
}

impl<G> Drop for Held<G> {
    fn drop(&mut self) {
        drop(self.receiver.take());
    }
}

/// The live feed of a broadcast receiver, as a plain stream; `guard` is dropped just after
/// the receiver.
pub(crate) fn live_stream<G: Send + 'static>(
    receiver: broadcast::Receiver<Entry>,
    guard: G,
) -> LiveStream {
    let held = Held {
        receiver: Some(receiver),
        _guard: guard,
    };
    Box::pin(futures_util::stream::unfold(
        (held, false),
        |(mut held, ended)| async move {
            let receiver = held.receiver.as_mut()?;
            if ended {
                return None;
            }
            match receiver.recv().await {
                Ok(entry) => Some((Live::Event(entry), (held, false))),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    Some((Live::Lagged(missed), (held, true)))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        },
    ))
}
