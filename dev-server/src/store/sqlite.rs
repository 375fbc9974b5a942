//! [`SqliteStore`]: the embedded default store. Every call runs off the async threads (on
//! Tokio's blocking pool, or the writer thread), so a slow disk never stalls the threads that
//! serve streams.
//!
//! - **One writing connection** behind a mutex: every write is one `IMMEDIATE` transaction.
//! - **Group commit** for sends: a writer thread takes every send queued while the previous
//!   batch committed and stores them in one transaction, each in its own savepoint (one
//!   failing send fails alone); each is acknowledged once its batch has committed.
//! - **Reading connections** (on a file): WAL lets them read beside the writer, so a session
//!   lookup or a history page never queues behind a batch of sends.

use std::{
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
};

use farm_chat_protocol::{
    ConversationId, MessageId, TaskId, TenantId, UserId,
    chat::{ConversationKind, Message, Sender},
    task::{TaskSnapshot, TaskState},
};
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::{
    Appended, ConversationRecord, Cursor, Idempotency, NewMessage, Overview, Reply, SessionRecord,
    Store, StoreError, StoreResult, TaskRecord, Unannounced, async_trait,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, user_id TEXT NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, kind TEXT NOT NULL, title TEXT NOT NULL,
    owner TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS participants (
    conversation_id TEXT NOT NULL REFERENCES conversations(id), user_id TEXT NOT NULL,
    PRIMARY KEY (conversation_id, user_id));
CREATE INDEX IF NOT EXISTS participants_by_user ON participants(user_id);
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions(expires_at);
CREATE TABLE IF NOT EXISTS messages (
    conversation_id TEXT NOT NULL REFERENCES conversations(id), seq INTEGER NOT NULL,
    message_id TEXT NOT NULL UNIQUE, sender_id TEXT NOT NULL, sender_kind TEXT NOT NULL,
    sender_name TEXT NOT NULL, text TEXT NOT NULL, created_at TEXT NOT NULL, task_id TEXT,
    PRIMARY KEY (conversation_id, seq));
CREATE TABLE IF NOT EXISTS idempotency (
    user_id TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
    message_id TEXT NOT NULL, PRIMARY KEY (user_id, key));
CREATE INDEX IF NOT EXISTS idempotency_by_message ON idempotency(message_id);
CREATE TABLE IF NOT EXISTS reads (
    conversation_id TEXT NOT NULL, user_id TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, user_id));
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY, owner TEXT NOT NULL, source_message_id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL, version INTEGER NOT NULL, snapshot TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tasks_by_owner ON tasks(owner, state);
";

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::Error as E;
        let text = e.to_string();
        match &e {
            E::SqliteFailure(f, _) => match f.code {
                ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::OutOfMemory => Self::Unavailable(text),
                ErrorCode::ConstraintViolation => Self::Conflict(text),
                ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => Self::Corrupt(text),
                _ => Self::Failed(text),
            },
            E::FromSqlConversionFailure(..)
            | E::InvalidColumnType(..)
            | E::IntegralValueOutOfRange(..) => Self::Corrupt(text),
            _ => Self::Failed(text),
        }
    }
}

/// SQLite behind one connection. Every operation is one transaction under the mutex, which
/// also serialises concurrent sends with the same idempotency key. Writing transactions
/// start `IMMEDIATE`, so two processes on one file (a restart overlapping the old process)
/// wait for each other instead of failing on a lock upgrade.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// Dropped with the last handle: the checkpoint thread then ends.
    _checkpoints: Option<Arc<mpsc::Sender<()>>>,
    /// Connections that only read (none for an in-memory database: each connection would be
    /// a database of its own).
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: Arc<AtomicUsize>,
    /// The writer thread's queue of sends and announcement marks.
    jobs: mpsc::Sender<Job>,
}

/// Reading connections on a file database.
const READERS: usize = 2;

/// Prepared statements each connection keeps (every statement of the hot paths).
const STATEMENT_CACHE: usize = 64;

/// Most sends stored in one transaction.
const MAX_BATCH: usize = 256;

/// Work for the writer thread; each answers on its own channel after the batch commits.
#[expect(
    clippy::large_enum_variant,
    reason = "jobs live briefly in a queue and a batch; boxing each send costs more"
)]
enum Job {
    Append {
        m: NewMessage,
        idem: Option<Idempotency>,
        reply: Option<Reply>,
        done: tokio::sync::oneshot::Sender<StoreResult<Appended>>,
    },
    Announced {
        ids: Vec<MessageId>,
        done: tokio::sync::oneshot::Sender<StoreResult<()>>,
    },
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`; `:memory:` gives an in-memory store.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let in_memory = path.as_os_str() == ":memory:";
        let mut _stop = None;
        let conn = if in_memory {
            Connection::open_in_memory()?
        } else {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::Failed(format!("create {}: {e}", dir.display())))?;
            }
            Connection::open(path)?
        };
        // WAL: a committed transaction is in the log file before the send is acknowledged, so
        // it survives the process being killed; NORMAL sync is enough for that.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > 2 {
            return Err(StoreError::Failed(format!(
                "{} was written by a newer farm-chat (schema {version}); refusing to touch it",
                path.display()
            )));
        }
        conn.execute_batch(SCHEMA)?;
        if version < 2 {
            // Messages stored before there was an outbox were announced then.
            conn.execute_batch(
                "ALTER TABLE messages ADD COLUMN announced INTEGER NOT NULL DEFAULT 1;
                 CREATE INDEX messages_unannounced ON messages (created_at) WHERE announced = 0;",
            )?;
        }
        conn.pragma_update(None, "user_version", 2)?;
        let mut readers = Vec::new();
        if !in_memory {
            for _ in 0..READERS {
                let reader = Connection::open(path)?;
                reader.pragma_update(None, "query_only", "ON")?;
                reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                reader.busy_timeout(std::time::Duration::from_secs(5))?;
                readers.push(Mutex::new(reader));
            }
        }
        if !in_memory {
            // Commits never stop to copy the log into the database (with an fsync): a thread
            // of its own does that, beside the writer.
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
            conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
            let checkpointer = Connection::open(path)?;
            checkpointer.busy_timeout(std::time::Duration::from_secs(5))?;
            let (stop, stopped) = mpsc::channel::<()>();
            std::thread::Builder::new()
                .name("sqlite-checkpoint".into())
                .spawn(move || checkpoints(&checkpointer, &stopped))
                .map_err(|e| StoreError::Failed(format!("start the checkpoint thread: {e}")))?;
            _stop = Some(stop);
        }
        let conn = Arc::new(Mutex::new(conn));
        let (jobs, queue) = mpsc::channel();
        let writer = conn.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_batches(&writer, &queue))
            .map_err(|e| StoreError::Failed(format!("start the writer thread: {e}")))?;
        Ok(Self {
            conn,
            _checkpoints: _stop.map(Arc::new),
            readers: Arc::new(readers),
            next_reader: Arc::default(),
            jobs,
        })
    }

    /// An in-memory store (tests).
    pub fn in_memory() -> StoreResult<Self> {
        Self::open(Path::new(":memory:"))
    }

    /// Runs `op` on the writing connection, on the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn
                .lock()
                .map_err(|_| StoreError::Failed("connection mutex poisoned".into()))?;
            Ok(op(&mut conn)?)
        })
        .await
        .map_err(|e| StoreError::Failed(format!("store task failed: {e}")))?
    }

    /// Runs `op`, which only reads, on a reading connection (a free one if there is one),
    /// on the blocking pool; on the writing connection when there are none.
    async fn read<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        if self.readers.is_empty() {
            return self.run(op).await;
        }
        let (readers, start) = (
            self.readers.clone(),
            self.next_reader.fetch_add(1, Ordering::Relaxed),
        );
        tokio::task::spawn_blocking(move || {
            let n = readers.len();
            let free = (0..n).find_map(|i| readers[(start + i) % n].try_lock().ok());
            let mut conn = match free {
                Some(conn) => conn,
                None => readers[start % n]
                    .lock()
                    .map_err(|_| StoreError::Failed("connection mutex poisoned".into()))?,
            };
            Ok(op(&mut conn)?)
        })
        .await
        .map_err(|e| StoreError::Failed(format!("store task failed: {e}")))?
    }

    /// Queues `job` for the writer thread and waits for its answer.
    async fn write<T>(
        &self,
        job: impl FnOnce(tokio::sync::oneshot::Sender<StoreResult<T>>) -> Job,
    ) -> StoreResult<T> {
        let (done, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send(job(done))
            .map_err(|_| StoreError::Failed("the writer thread has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Failed("the writer thread dropped a send".into()))?
    }
}

/// The writer thread: waits for a job, takes every job queued behind it too (up to
/// [`MAX_BATCH`]) and runs them in one transaction, each in a savepoint; answers them all once
/// it has committed. Ends when the store is dropped.
fn write_batches(conn: &Mutex<Connection>, queue: &mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(next) = queue.try_recv()
        {
            batch.push(next);
        }
        let Ok(mut conn) = conn.lock() else {
            return;
        };
        let outcome = run_batch(&mut conn, &batch);
        drop(conn);
        answer_batch(batch, outcome);
    }
}

/// Copies the write-ahead log into the database every 100 ms (`PASSIVE`: beside the writer,
/// never blocking it), until the store is dropped.
fn checkpoints(conn: &Connection, stopped: &mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) =
        stopped.recv_timeout(std::time::Duration::from_millis(100))
    {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "checkpoint failed; the next one retries");
        }
    }
}

/// What one job of a batch came to, before the commit.
#[expect(
    clippy::large_enum_variant,
    reason = "one per job of a batch, answered at once"
)]
enum Outcome {
    Appended(Appended),
    Announced,
    Failed(StoreError),
}

/// Runs `batch` in one transaction; `Err` when the transaction itself failed (then nothing of
/// it is stored).
fn run_batch(conn: &mut Connection, batch: &[Job]) -> rusqlite::Result<Vec<Outcome>> {
    let mut tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for job in batch {
        let savepoint = tx.savepoint()?;
        let result = match job {
            Job::Append { m, idem, reply, .. } => {
                append(&savepoint, m, idem.as_ref(), reply.as_ref()).map(Outcome::Appended)
            }
            Job::Announced { ids, .. } => {
                mark_announced(&savepoint, ids).map(|()| Outcome::Announced)
            }
        };
        outcomes.push(match result {
            Ok(outcome) => {
                savepoint.commit()?;
                outcome
            }
            // Dropping the savepoint rolls this job back; the others go on.
            Err(e) => Outcome::Failed(e.into()),
        });
    }
    tx.commit()?;
    Ok(outcomes)
}

fn answer_batch(batch: Vec<Job>, outcome: rusqlite::Result<Vec<Outcome>>) {
    let outcomes: Vec<Outcome> = match outcome {
        Ok(outcomes) => outcomes,
        Err(e) => {
            let e = StoreError::from(e);
            tracing::warn!(error = %e, jobs = batch.len(), "a batch of sends failed to commit");
            batch.iter().map(|_| Outcome::Failed(e.clone())).collect()
        }
    };
    for (job, outcome) in batch.into_iter().zip(outcomes) {
        match job {
            Job::Append { done, .. } => {
                let _ = done.send(match outcome {
                    Outcome::Appended(appended) => Ok(appended),
                    Outcome::Failed(e) => Err(e),
                    Outcome::Announced => {
                        Err(StoreError::Failed("a send got a mark's answer".into()))
                    }
                });
            }
            Job::Announced { done, .. } => {
                let _ = done.send(match outcome {
                    Outcome::Announced => Ok(()),
                    Outcome::Failed(e) => Err(e),
                    Outcome::Appended(_) => {
                        Err(StoreError::Failed("a mark got a send's answer".into()))
                    }
                });
            }
        }
    }
}

/// Stores one send (and the assistant's reply and task) on `conn`, inside a transaction.
fn append(
    conn: &Connection,
    m: &NewMessage,
    idem: Option<&Idempotency>,
    reply: Option<&Reply>,
) -> rusqlite::Result<Appended> {
    if let Some(idem) = idem {
        let seen: Option<(String, String)> = query_row_cached(
            conn,
            "SELECT fingerprint, message_id FROM idempotency WHERE user_id = ?1 AND key = ?2",
            [idem.user_id.as_str(), idem.key.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
        if let Some((fingerprint, message_id)) = seen {
            if fingerprint != idem.fingerprint {
                return Ok(Appended::Conflict);
            }
            let message =
                message_by_id(conn, &message_id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            let task_id = query_row_cached(
                conn,
                "SELECT task_id FROM tasks WHERE source_message_id = ?1",
                [&message_id],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .map(TaskId);
            return Ok(Appended::Replayed { message, task_id });
        }
    }
    insert_message(conn, m)?;
    if let Some(idem) = idem {
        execute_cached(
            conn,
            "INSERT INTO idempotency (user_id, key, fingerprint, message_id) VALUES (?1, ?2, ?3, ?4)",
            params![
                idem.user_id.as_str(),
                idem.key,
                idem.fingerprint,
                m.message_id.as_str()
            ],
        )?;
    }
    if let Some(reply) = reply {
        insert_task(conn, &reply.task)?;
        insert_message(conn, &reply.message)?;
    }
    let message =
        message_by_id(conn, m.message_id.as_str())?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    mark_read(
        conn,
        m.conversation_id.as_str(),
        m.sender.id.as_str(),
        message.seq,
    )?;
    let reply = match reply {
        Some(r) => message_by_id(conn, r.message.message_id.as_str())?,
        None => None,
    };
    Ok(Appended::Created { message, reply })
}

fn mark_announced(conn: &Connection, ids: &[MessageId]) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "UPDATE messages SET announced = 1 WHERE message_id = ?1 AND announced = 0",
    )?;
    for id in ids {
        stmt.execute([id.as_str()])?;
    }
    Ok(())
}

/// `query_row` through the connection's statement cache: SQL is parsed once per connection,
/// not on every send.
fn query_row_cached<T, P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, row)
}

/// `execute` through the connection's statement cache.
fn execute_cached<P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// A stored wire spelling read back: an unknown one is corrupt data, never a guess.
fn parse<T: std::str::FromStr>(column: usize, text: &str) -> rusqlite::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    text.parse().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Messages with their task's stored snapshot.
const MESSAGE_SELECT: &str = "SELECT m.message_id, m.conversation_id, m.seq, m.sender_id, m.sender_kind, \
     m.sender_name, m.text, m.created_at, t.snapshot, i.key FROM messages m \
     LEFT JOIN tasks t ON t.task_id = m.task_id LEFT JOIN idempotency i ON i.message_id = m.message_id";

fn message_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        message_id: MessageId(row.get(0)?),
        conversation_id: ConversationId(row.get(1)?),
        seq: row.get::<_, i64>(2)? as u64,
        sender: Sender {
            id: UserId(row.get(3)?),
            kind: parse(4, &row.get::<_, String>(4)?)?,
            display_name: row.get(5)?,
        },
        text: row.get(6)?,
        created_at: row.get(7)?,
        task: row
            .get::<_, Option<String>>(8)?
            .map(|json| from_json(8, &json))
            .transpose()?,
        // The sender's key; the server shows it only to the sender.
        idempotency_key: row.get(9)?,
    })
}

fn message_by_id(conn: &Connection, id: &str) -> rusqlite::Result<Option<Message>> {
    query_row_cached(
        conn,
        &format!("{MESSAGE_SELECT} WHERE m.message_id = ?1"),
        [id],
        message_row,
    )
    .optional()
}

/// Inserts with the next `seq` of the conversation.
fn insert_message(conn: &Connection, m: &NewMessage) -> rusqlite::Result<()> {
    execute_cached(conn,
        "INSERT INTO messages (message_id, conversation_id, seq, sender_id, sender_kind, sender_name, text, \
         created_at, task_id, announced) VALUES (?1, ?2, \
         (SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE conversation_id = ?2), ?3, ?4, ?5, ?6, ?7, ?8, 0)",
        params![
            m.message_id.as_str(),
            m.conversation_id.as_str(),
            m.sender.id.as_str(),
            m.sender.kind.as_str(),
            m.sender.display_name,
            m.text,
            m.created_at,
            m.task_id.as_ref().map(TaskId::as_str),
        ],
    )
    .map(drop)
}

fn to_json(snapshot: &TaskSnapshot) -> rusqlite::Result<String> {
    serde_json::to_string(snapshot)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn from_json(column: usize, json: &str) -> rusqlite::Result<TaskSnapshot> {
    serde_json::from_str(json).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn insert_task(conn: &Connection, task: &TaskRecord) -> rusqlite::Result<()> {
    let s = &task.snapshot;
    execute_cached(conn,
        "INSERT INTO tasks (task_id, owner, source_message_id, state, version, snapshot, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            s.task_id.as_str(),
            task.owner.as_str(),
            task.source_message_id.as_str(),
            s.state.as_str(),
            task.version as i64,
            to_json(s)?,
            s.created_at,
        ],
    )
    .map(drop)
}

const TASK_COLUMNS: &str = "snapshot, owner, source_message_id, version";

fn task_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TaskRecord> {
    Ok(TaskRecord {
        snapshot: from_json(0, &row.get::<_, String>(0)?)?,
        owner: UserId(row.get(1)?),
        source_message_id: MessageId(row.get(2)?),
        version: row.get::<_, i64>(3)? as u64,
    })
}

fn load_conversation(conn: &Connection, id: &str) -> rusqlite::Result<Option<ConversationRecord>> {
    let Some((tenant, kind, title, owner)) = query_row_cached(
        conn,
        "SELECT tenant_id, kind, title, owner FROM conversations WHERE id = ?1",
        [id],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                parse::<ConversationKind>(1, &r.get::<_, String>(1)?)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        },
    )
    .optional()?
    else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT user_id FROM participants WHERE conversation_id = ?1 ORDER BY user_id",
    )?;
    let participants = stmt
        .query_map([id], |r| Ok(UserId(r.get(0)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(ConversationRecord {
        id: ConversationId(id.to_owned()),
        tenant_id: TenantId(tenant),
        kind,
        title,
        owner: UserId(owner),
        participants,
    }))
}

/// Moves `user`'s read mark of `conversation` up to `seq` (never back, never past the newest
/// message) and returns it.
fn mark_read(conn: &Connection, conversation: &str, user: &str, seq: u64) -> rusqlite::Result<u64> {
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    query_row_cached(
        conn,
        "INSERT INTO reads (conversation_id, user_id, seq) VALUES (?1, ?2, \
         MIN(?3, (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = ?1))) \
         ON CONFLICT (conversation_id, user_id) DO UPDATE SET seq = MAX(seq, excluded.seq) \
         RETURNING seq",
        params![conversation, user, seq],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
}

fn overview(conn: &Connection, c: ConversationRecord, user: &str) -> rusqlite::Result<Overview> {
    let id = c.id.as_str();
    let last_message = query_row_cached(
        conn,
        &format!("{MESSAGE_SELECT} WHERE m.conversation_id = ?1 ORDER BY m.seq DESC LIMIT 1"),
        [id],
        message_row,
    )
    .optional()?;
    let unread = query_row_cached(
        conn,
        "SELECT COUNT(*) FROM messages WHERE conversation_id = ?1 AND sender_id != ?2 \
         AND seq > COALESCE((SELECT seq FROM reads WHERE conversation_id = ?1 AND user_id = ?2), 0)",
        [id, user],
        |r| r.get::<_, i64>(0),
    )? as u32;
    let mut stmt = conn.prepare_cached(
        "SELECT user_id, seq FROM reads WHERE conversation_id = ?1 ORDER BY user_id",
    )?;
    let read_marks = stmt
        .query_map([id], |r| {
            Ok((UserId(r.get(0)?), r.get::<_, i64>(1)? as u64))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Overview {
        conversation: c,
        last_message,
        unread,
        read_marks,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read(|conn| conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
            .await
            .map(drop)
    }

    async fn next_epoch(&self) -> StoreResult<u32> {
        self.run(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let epoch: i64 =
                query_row_cached(&tx, "SELECT value FROM meta WHERE key = 'epoch'", [], |r| {
                    r.get(0)
                })
                .optional()?
                .unwrap_or(0)
                    + 1;
            execute_cached(
                &tx,
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('epoch', ?1)",
                [epoch],
            )?;
            tx.commit()?;
            Ok(epoch as u32)
        })
        .await
    }

    async fn signing_key(&self) -> StoreResult<Vec<u8>> {
        let mut fresh = vec![0u8; 32];
        getrandom::fill(&mut fresh).map_err(|e| StoreError::Failed(format!("random: {e}")))?;
        let key: Vec<u8> = self
            .run(move |conn| {
                // Another start may have raced us: keep whichever key was stored first.
                execute_cached(
                    conn,
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('signing_key', ?1)",
                    [&fresh],
                )?;
                query_row_cached(
                    conn,
                    "SELECT value FROM meta WHERE key = 'signing_key'",
                    [],
                    |r| r.get(0),
                )
            })
            .await?;
        if key.len() != 32 {
            return Err(StoreError::Corrupt(format!(
                "the stored signing key has {} bytes, not 32",
                key.len()
            )));
        }
        Ok(key)
    }

    async fn create_session(&self, s: &SessionRecord) -> StoreResult<()> {
        let s = s.clone();
        self.run(move |conn| {
            execute_cached(
                conn,
                "INSERT INTO sessions (id, user_id, expires_at) VALUES (?1, ?2, ?3)",
                params![s.id, s.user_id.as_str(), s.expires_at as i64],
            )
            .map(drop)
        })
        .await
    }

    async fn session(&self, id: &str) -> StoreResult<Option<SessionRecord>> {
        let id = id.to_owned();
        self.read(move |conn| {
            query_row_cached(
                conn,
                "SELECT id, user_id, expires_at FROM sessions WHERE id = ?1",
                [id],
                |r| {
                    Ok(SessionRecord {
                        id: r.get(0)?,
                        user_id: UserId(r.get(1)?),
                        expires_at: r.get::<_, i64>(2)? as u64,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn delete_session(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.run(move |conn| {
            Ok(execute_cached(conn, "DELETE FROM sessions WHERE id = ?1", [id])? > 0)
        })
        .await
    }

    async fn purge_expired_sessions(&self, now: u64) -> StoreResult<usize> {
        self.run(move |conn| {
            execute_cached(
                conn,
                "DELETE FROM sessions WHERE expires_at <= ?1",
                [i64::try_from(now).unwrap_or(i64::MAX)],
            )
        })
        .await
    }

    async fn ensure_conversations(&self, conversations: &[ConversationRecord]) -> StoreResult<()> {
        let conversations = conversations.to_vec();
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for c in &conversations {
                execute_cached(&tx,
                    "INSERT OR IGNORE INTO conversations (id, tenant_id, kind, title, owner) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        c.id.as_str(),
                        c.tenant_id.as_str(),
                        c.kind.as_str(),
                        c.title,
                        c.owner.as_str()
                    ],
                )?;
                for user in &c.participants {
                    execute_cached(&tx,
                        "INSERT OR IGNORE INTO participants (conversation_id, user_id) VALUES (?1, ?2)",
                        params![c.id.as_str(), user.as_str()],
                    )?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn join_support_conversations(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<()> {
        let (tenant, user) = (tenant.clone(), user.clone());
        self.run(move |conn| {
            execute_cached(
                conn,
                "INSERT OR IGNORE INTO participants (conversation_id, user_id) \
                 SELECT id, ?2 FROM conversations WHERE tenant_id = ?1 AND kind = 'support'",
                params![tenant.as_str(), user.as_str()],
            )
            .map(drop)
        })
        .await
    }

    async fn conversation(
        &self,
        tenant: &TenantId,
        id: &ConversationId,
    ) -> StoreResult<Option<ConversationRecord>> {
        let id = id.clone();
        let found = self
            .read(move |conn| load_conversation(conn, id.as_str()))
            .await?;
        Ok(found.filter(|c| &c.tenant_id == tenant))
    }

    async fn overviews(
        &self,
        tenant: &TenantId,
        user: &UserId,
        kind: Option<ConversationKind>,
    ) -> StoreResult<Vec<Overview>> {
        let (tenant, user) = (tenant.clone(), user.clone());
        self.read(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)?;
            let ids = {
                let mut stmt = tx.prepare_cached(
                    "SELECT c.id FROM conversations c JOIN participants p ON p.conversation_id = c.id \
                     WHERE c.tenant_id = ?1 AND p.user_id = ?2 AND (?3 IS NULL OR c.kind = ?3) \
                     ORDER BY c.rowid",
                )?;
                stmt.query_map(
                    params![tenant.as_str(), user.as_str(), kind.map(ConversationKind::as_str)],
                    |r| r.get::<_, String>(0),
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?
            };
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(c) = load_conversation(&tx, &id)? {
                    out.push(overview(&tx, c, user.as_str())?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn append_message(
        &self,
        m: &NewMessage,
        idem: Option<&Idempotency>,
        reply: Option<&Reply>,
    ) -> StoreResult<Appended> {
        let (m, idem, reply) = (m.clone(), idem.cloned(), reply.cloned());
        self.write(|done| Job::Append {
            m,
            idem,
            reply,
            done,
        })
        .await
    }

    async fn history(
        &self,
        conversation: &ConversationId,
        cursor: Cursor,
        limit: u32,
    ) -> StoreResult<(Vec<Message>, bool)> {
        let id = conversation.clone();
        // One extra row tells whether there is more beyond the page.
        let fetch = i64::from(limit) + 1;
        self.read(move |conn| {
            let (sql, bound) = match cursor {
                Cursor::Latest => ("m.seq >= ?2 ORDER BY m.seq DESC", 0),
                Cursor::Before(seq) => ("m.seq < ?2 ORDER BY m.seq DESC", seq as i64),
                Cursor::After(seq) => ("m.seq > ?2 ORDER BY m.seq ASC", seq as i64),
            };
            let mut stmt = conn.prepare_cached(&format!(
                "{MESSAGE_SELECT} WHERE m.conversation_id = ?1 AND {sql} LIMIT ?3"
            ))?;
            let mut rows = stmt
                .query_map(params![id.as_str(), bound, fetch], message_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let has_more = rows.len() as i64 > i64::from(limit);
            rows.truncate(limit as usize);
            rows.sort_by_key(|m| m.seq);
            Ok((rows, has_more))
        })
        .await
    }

    async fn mark_read(
        &self,
        conversation: &ConversationId,
        user: &UserId,
        seq: u64,
    ) -> StoreResult<u64> {
        let (conversation, user) = (conversation.clone(), user.clone());
        self.run(move |conn| mark_read(conn, conversation.as_str(), user.as_str(), seq))
            .await
    }

    async fn mark_announced(&self, messages: &[MessageId]) -> StoreResult<()> {
        let ids = messages.to_vec();
        self.write(|done| Job::Announced { ids, done }).await
    }

    async fn unannounced(&self, before: &str, limit: u32) -> StoreResult<Vec<Unannounced>> {
        let before = before.to_owned();
        self.read(move |conn| {
            let rows = {
                let mut stmt = conn.prepare_cached(
                    "SELECT message_id, conversation_id, seq FROM messages \
                     WHERE announced = 0 AND created_at < ?1 ORDER BY created_at LIMIT ?2",
                )?;
                stmt.query_map(params![before, limit], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
            };
            let mut out = Vec::with_capacity(rows.len());
            let mut stmt = conn.prepare_cached(
                "SELECT user_id FROM participants WHERE conversation_id = ?1 ORDER BY user_id",
            )?;
            for (message_id, conversation_id, seq) in rows {
                let participants = stmt
                    .query_map([&conversation_id], |r| Ok(UserId(r.get(0)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                out.push(Unannounced {
                    message_id: MessageId(message_id),
                    conversation_id: ConversationId(conversation_id),
                    seq: seq as u64,
                    participants,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn save_task(&self, task: &TaskRecord) -> StoreResult<()> {
        let task = task.clone();
        self.run(move |conn| {
            execute_cached(conn,
                "UPDATE tasks SET state = ?2, version = ?3, snapshot = ?4 WHERE task_id = ?1 AND version < ?3",
                params![
                    task.snapshot.task_id.as_str(),
                    task.snapshot.state.as_str(),
                    task.version as i64,
                    to_json(&task.snapshot)?
                ],
            )
            .map(drop)
        })
        .await
    }

    async fn task(&self, id: &TaskId) -> StoreResult<Option<TaskRecord>> {
        let id = id.clone();
        self.read(move |conn| {
            query_row_cached(
                conn,
                &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = ?1"),
                [id.as_str()],
                task_row,
            )
            .optional()
        })
        .await
    }

    async fn tasks_of(
        &self,
        owner: &UserId,
        state: Option<TaskState>,
    ) -> StoreResult<Vec<TaskRecord>> {
        let owner = owner.clone();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE owner = ?1 AND (?2 IS NULL OR state = ?2) \
                 ORDER BY rowid DESC LIMIT 100"
            ))?;
            stmt.query_map(
                params![owner.as_str(), state.map(TaskState::as_str)],
                task_row,
            )?
            .collect()
        })
        .await
    }

    async fn running_tasks(&self) -> StoreResult<Vec<TaskRecord>> {
        self.run(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE state = 'running'"
            ))?;
            stmt.query_map([], task_row)?.collect()
        })
        .await
    }
}
