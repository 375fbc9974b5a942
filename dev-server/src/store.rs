//! Durable storage behind an async [`Store`] trait with typed errors.
//!
//! Two engines implement it: [`SqliteStore`] (the embedded default: a SQLite file in WAL mode,
//! so a message whose send was acknowledged survives `kill -9`, or `:memory:`), which runs its
//! blocking calls on its own pool, and [`PostgresStore`] (`--database-url`), which several
//! server instances share. Every operation is one call, one transaction: handlers never chain
//! calls that another instance could interleave with. One conformance suite
//! (`tests/store.rs`) runs against both.

pub mod postgres;
mod sqlite;

pub use async_trait::async_trait;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use farm_chat_protocol::{
    ConversationId, MessageId, TaskId, TenantId, UserId,
    chat::{ConversationKind, Message},
    task::{TaskSnapshot, TaskState},
};

/// A storage failure. Clients see only its class: [`StoreError::Unavailable`] answers 503 with
/// `Retry-After` (the client retries); the rest answer 500 and their details are logged.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// A write collided with another one (a uniqueness rule the operation does not resolve
    /// itself).
    #[error("store conflict: {0}")]
    Conflict(String),
    /// The engine can't be reached, or is too busy, right now; the same call may succeed in a
    /// moment.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data that can't be read back: a bug, or a database edited by hand.
    #[error("corrupt data in the store: {0}")]
    Corrupt(String),
    /// Anything else the engine reported (a bad query, a refused configuration).
    #[error("store: {0}")]
    Failed(String),
}

/// What store operations return.
pub type StoreResult<T> = Result<T, StoreError>;

/// A signed-in session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// Random, 128 bits, hex.
    pub id: String,
    /// Who.
    pub user_id: UserId,
    /// Seconds since the Unix epoch after which the session is no longer valid.
    pub expires_at: u64,
}

/// A conversation and who takes part in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationRecord {
    /// Its id.
    pub id: ConversationId,
    /// The farm it belongs to.
    pub tenant_id: TenantId,
    /// Assistant or support.
    pub kind: ConversationKind,
    /// Its title.
    pub title: String,
    /// The farmer it was made for.
    pub owner: UserId,
    /// Who may read, send and receive its events.
    pub participants: Vec<UserId>,
}

/// A message to store.
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// Assigned by the server before storing.
    pub message_id: MessageId,
    /// Where.
    pub conversation_id: ConversationId,
    /// Author.
    pub sender: farm_chat_protocol::chat::Sender,
    /// Text, trimmed.
    pub text: String,
    /// RFC 3339.
    pub created_at: String,
    /// The task whose reply this message is (assistant messages).
    pub task_id: Option<TaskId>,
}

/// A task as stored: its snapshot, whose it is, and a version that only grows, so a late
/// write of an older snapshot never overwrites a newer one.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRecord {
    /// Everything the clients see.
    pub snapshot: TaskSnapshot,
    /// The farmer who asked.
    pub owner: UserId,
    /// The farmer's message that started it.
    pub source_message_id: MessageId,
    /// Bumped on every change.
    pub version: u64,
}

/// The assistant's reply stored together with the message that asked for it.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The assistant message (its `task_id` set).
    pub message: NewMessage,
    /// The task, running, no parts yet.
    pub task: TaskRecord,
}

/// The idempotency record of a send: the user's key and a fingerprint of the body.
#[derive(Clone, Debug)]
pub struct Idempotency {
    /// The sender.
    pub user_id: UserId,
    /// The client's key.
    pub key: String,
    /// Conversation and text as sent: the same key with a different body is a conflict.
    pub fingerprint: String,
}

/// What appending a message did.
#[derive(Clone, Debug, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one short-lived value per send; boxing buys nothing"
)]
pub enum Appended {
    /// Stored now (with the assistant's reply message, if one was given): notify.
    Created {
        /// The message.
        message: Message,
        /// The reply message, stored right after it.
        reply: Option<Message>,
    },
    /// The key was seen with the same body: the message stored then (nothing new to notify),
    /// and the task it started, if any.
    Replayed {
        /// The message stored the first time.
        message: Message,
        /// The task it started.
        task_id: Option<TaskId>,
    },
    /// The key was seen with a different body.
    Conflict,
}

/// Which page of history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// The newest messages.
    Latest,
    /// Messages with `seq` below this one (scrolling up).
    Before(u64),
    /// Messages with `seq` above this one (catching up after a reconnect).
    After(u64),
}

/// A conversation as one participant's list shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Overview {
    /// The conversation.
    pub conversation: ConversationRecord,
    /// Its newest message.
    pub last_message: Option<Message>,
    /// Messages by others after the participant's read mark.
    pub unread: u32,
    /// Every participant's read mark (only those who have one), by user id.
    pub read_marks: Vec<(UserId, u64)>,
}

/// A message stored but not yet announced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unannounced {
    /// The message.
    pub message_id: MessageId,
    /// Its conversation.
    pub conversation_id: ConversationId,
    /// Its place there.
    pub seq: u64,
    /// Who gets `message.created`.
    pub participants: Vec<UserId>,
}

/// The operations the server needs. Each is one transaction.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Answers when the database does (readiness: `GET /api/health/ready`).
    async fn ping(&self) -> StoreResult<()>;

    /// Counts a server start and returns its number (1, 2, …), never the same twice, also
    /// when several instances start at once: the epoch of event ids.
    async fn next_epoch(&self) -> StoreResult<u32>;
    /// The key sessions are signed with, created on first use and kept across restarts; every
    /// instance gets the same one.
    async fn signing_key(&self) -> StoreResult<Vec<u8>>;

    /// Stores a new session.
    async fn create_session(&self, session: &SessionRecord) -> StoreResult<()>;
    /// The session with this id, if it exists (expired ones included; the caller checks).
    async fn session(&self, id: &str) -> StoreResult<Option<SessionRecord>>;
    /// Ends a session. Returns whether it existed.
    async fn delete_session(&self, id: &str) -> StoreResult<bool>;
    /// Deletes the sessions that expired at or before `now` (seconds since the Unix epoch);
    /// returns how many.
    async fn purge_expired_sessions(&self, now: u64) -> StoreResult<usize>;

    /// Stores each conversation unless one with its id exists, and adds its participants
    /// (none is ever removed).
    async fn ensure_conversations(&self, conversations: &[ConversationRecord]) -> StoreResult<()>;
    /// Makes a support user a participant of every support conversation of their tenant
    /// (support staff provisioned from a platform token after the farmers' chats were made).
    async fn join_support_conversations(&self, tenant: &TenantId, user: &UserId)
    -> StoreResult<()>;
    /// A conversation of a tenant.
    async fn conversation(
        &self,
        tenant: &TenantId,
        id: &ConversationId,
    ) -> StoreResult<Option<ConversationRecord>>;
    /// The conversations of a tenant in which the user takes part (optionally of one kind),
    /// each with its newest message, the user's unread count and everyone's read marks;
    /// in the order they were created.
    async fn overviews(
        &self,
        tenant: &TenantId,
        user: &UserId,
        kind: Option<ConversationKind>,
    ) -> StoreResult<Vec<Overview>>;

    /// Appends a message with the next `seq` of its conversation, at most once per
    /// idempotency key, and with it (same transaction) the assistant's reply and its task.
    /// The sender has read their conversation up to their own message.
    async fn append_message(
        &self,
        message: &NewMessage,
        idempotency: Option<&Idempotency>,
        reply: Option<&Reply>,
    ) -> StoreResult<Appended>;
    /// A page of history in `seq` order, and whether more exist beyond it.
    async fn history(
        &self,
        conversation: &ConversationId,
        cursor: Cursor,
        limit: u32,
    ) -> StoreResult<(Vec<Message>, bool)>;
    /// Notes that the user has seen the conversation up to `seq` (never moves backwards, never
    /// past the newest message); returns the user's mark after the call.
    async fn mark_read(
        &self,
        conversation: &ConversationId,
        user: &UserId,
        seq: u64,
    ) -> StoreResult<u64>;

    /// Notes that these messages were announced on the event bus.
    async fn mark_announced(&self, messages: &[MessageId]) -> StoreResult<()>;
    /// Messages stored before `before` (RFC 3339) but never announced (the instance that
    /// stored them died first), oldest first, at most `limit`, each with who takes part in its
    /// conversation.
    async fn unannounced(&self, before: &str, limit: u32) -> StoreResult<Vec<Unannounced>>;

    /// Stores a task's snapshot unless a newer version is stored already.
    async fn save_task(&self, task: &TaskRecord) -> StoreResult<()>;
    /// A task.
    async fn task(&self, id: &TaskId) -> StoreResult<Option<TaskRecord>>;
    /// A user's tasks, newest first (at most 100), optionally in one state.
    async fn tasks_of(
        &self,
        owner: &UserId,
        state: Option<TaskState>,
    ) -> StoreResult<Vec<TaskRecord>>;
    /// Every task still marked running (after a restart: interrupted).
    async fn running_tasks(&self) -> StoreResult<Vec<TaskRecord>>;
}
