//! [`PostgresStore`]: the store several server instances share (`--database-url`).
//!
//! Safe under concurrency from many instances without application locks:
//! - a conversation's `seq` comes from its counter row (`UPDATE … RETURNING`), whose row lock
//!   orders concurrent sends to one conversation;
//! - an idempotency key is claimed by `INSERT … ON CONFLICT DO NOTHING` before anything else,
//!   so a retry racing the original on another instance waits for it and then replays it;
//! - the epoch is a counter row, the signing key is inserted once (`ON CONFLICT DO NOTHING`)
//!   and read back, so every instance signs with the same key;
//! - the schema's migrations are embedded and applied at start-up under an advisory lock.
//!
//! Connections use TLS as the URL's `sslmode` says ([`tls`]).

pub mod tls;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use farm_chat_protocol::{
    ConversationId, MessageId, TaskId, TenantId, UserId,
    chat::{ConversationKind, Message, Sender},
    task::{TaskSnapshot, TaskState},
};
use tokio_postgres::{Row, error::SqlState, types::FromSql};

use super::{
    Appended, ConversationRecord, Cursor, Idempotency, NewMessage, Overview, Reply, SessionRecord,
    Store, StoreError, StoreResult, TaskRecord, Unannounced, async_trait,
};

/// The schema, one step per version; a database is brought up to the last at start-up. Never
/// edit a step that has shipped: add one.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL);
CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE sessions (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, expires_at BIGINT NOT NULL);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE TABLE conversations (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, kind TEXT NOT NULL, title TEXT NOT NULL,
    owner TEXT NOT NULL, last_seq BIGINT NOT NULL DEFAULT 0, ord BIGSERIAL NOT NULL);
CREATE TABLE participants (
    conversation_id TEXT NOT NULL REFERENCES conversations (id), user_id TEXT NOT NULL,
    PRIMARY KEY (conversation_id, user_id));
CREATE INDEX participants_by_user ON participants (user_id);
CREATE TABLE messages (
    conversation_id TEXT NOT NULL REFERENCES conversations (id), seq BIGINT NOT NULL,
    message_id TEXT NOT NULL UNIQUE, sender_id TEXT NOT NULL, sender_kind TEXT NOT NULL,
    sender_name TEXT NOT NULL, text TEXT NOT NULL, created_at TEXT NOT NULL, task_id TEXT,
    PRIMARY KEY (conversation_id, seq));
CREATE TABLE idempotency (
    user_id TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
    message_id TEXT NOT NULL, PRIMARY KEY (user_id, key));
CREATE INDEX idempotency_by_message ON idempotency (message_id);
CREATE TABLE reads (
    conversation_id TEXT NOT NULL, user_id TEXT NOT NULL, seq BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, user_id));
CREATE TABLE tasks (
    task_id TEXT PRIMARY KEY, owner TEXT NOT NULL, source_message_id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL, version BIGINT NOT NULL, snapshot TEXT NOT NULL,
    created_at TEXT NOT NULL, ord BIGSERIAL NOT NULL);
CREATE INDEX tasks_by_owner ON tasks (owner, state, ord);
CREATE INDEX tasks_running ON tasks (state) WHERE state = 'running';
",
    "
ALTER TABLE messages ADD COLUMN announced BOOLEAN NOT NULL DEFAULT true;
ALTER TABLE messages ALTER COLUMN announced SET DEFAULT false;
CREATE INDEX messages_unannounced ON messages (created_at) WHERE NOT announced;
",
];

/// Serialises start-ups that migrate the same database (any number that is ours alone).
const MIGRATION_LOCK: i64 = 0x6661_726d_6368_6174;

/// Connections per instance: enough to keep sends, history and streams' reads going while one
/// transaction waits on a row lock.
const POOL_SIZE: usize = 16;

/// PostgreSQL through a pool of connections.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        let text = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            // The driver's own words are terse ("error performing TLS handshake"): the
            // causes under them say what happened.
            None => {
                let mut text = e.to_string();
                let mut cause = std::error::Error::source(&e);
                while let Some(c) = cause {
                    text.push_str(": ");
                    text.push_str(&c.to_string());
                    cause = c.source();
                }
                text
            }
        };
        match e.code() {
            Some(code) if *code == SqlState::UNIQUE_VIOLATION => Self::Conflict(text),
            // Connection problems, resources, an operator restarting the server, a
            // serialisation failure or deadlock: the same call may work in a moment.
            Some(code) if ["08", "53", "57", "40"].contains(&&code.code()[..2]) => {
                Self::Unavailable(text)
            }
            Some(_) => Self::Failed(text),
            // No SQL state: the connection itself failed (closed, I/O, timeout).
            None => Self::Unavailable(text),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => Self::Unavailable(format!("connection pool: {other}")),
        }
    }
}

/// Column `idx` of `row`; a value of the wrong type is corrupt data.
fn get<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> StoreResult<T> {
    row.try_get(idx)
        .map_err(|e| StoreError::Corrupt(format!("column {idx}: {e}")))
}

/// A stored wire spelling read back: an unknown one is corrupt data, never a guess.
fn parse<T: std::str::FromStr>(row: &Row, idx: usize) -> StoreResult<T>
where
    T::Err: std::fmt::Display,
{
    let text: &str = get(row, idx)?;
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("column {idx}: {e}")))
}

fn u64_of(row: &Row, idx: usize) -> StoreResult<u64> {
    u64::try_from(get::<i64>(row, idx)?)
        .map_err(|_| StoreError::Corrupt(format!("column {idx} is negative")))
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn snapshot_json(snapshot: &TaskSnapshot) -> StoreResult<String> {
    serde_json::to_string(snapshot).map_err(|e| StoreError::Failed(format!("task to JSON: {e}")))
}

fn snapshot_of(json: &str) -> StoreResult<TaskSnapshot> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("task snapshot: {e}")))
}

/// Messages with their task's stored snapshot and the sender's idempotency key (columns 0–9).
const MESSAGE_SELECT: &str = "SELECT m.message_id, m.conversation_id, m.seq, m.sender_id, \
     m.sender_kind, m.sender_name, m.text, m.created_at, t.snapshot, i.key FROM messages m \
     LEFT JOIN tasks t ON t.task_id = m.task_id LEFT JOIN idempotency i ON i.message_id = m.message_id";

/// A message from columns `at..at + 10` (as [`MESSAGE_SELECT`] gives them).
fn message_at(row: &Row, at: usize) -> StoreResult<Message> {
    Ok(Message {
        message_id: MessageId(get(row, at)?),
        conversation_id: ConversationId(get(row, at + 1)?),
        seq: u64_of(row, at + 2)?,
        sender: Sender {
            id: UserId(get(row, at + 3)?),
            kind: parse(row, at + 4)?,
            display_name: get(row, at + 5)?,
        },
        text: get(row, at + 6)?,
        created_at: get(row, at + 7)?,
        task: get::<Option<&str>>(row, at + 8)?
            .map(snapshot_of)
            .transpose()?,
        idempotency_key: get(row, at + 9)?,
    })
}

const TASK_COLUMNS: &str = "snapshot, owner, source_message_id, version";

fn task_row(row: &Row) -> StoreResult<TaskRecord> {
    Ok(TaskRecord {
        snapshot: snapshot_of(get(row, 0)?)?,
        owner: UserId(get(row, 1)?),
        source_message_id: MessageId(get(row, 2)?),
        version: u64_of(row, 3)?,
    })
}

/// A conversation from columns 0–5: id, tenant, kind, title, owner, participants (array).
fn conversation_row(row: &Row) -> StoreResult<ConversationRecord> {
    Ok(ConversationRecord {
        id: ConversationId(get(row, 0)?),
        tenant_id: TenantId(get(row, 1)?),
        kind: parse(row, 2)?,
        title: get(row, 3)?,
        owner: UserId(get(row, 4)?),
        participants: get::<Vec<String>>(row, 5)?
            .into_iter()
            .map(UserId)
            .collect(),
    })
}

const CONVERSATION_COLUMNS: &str = "c.id, c.tenant_id, c.kind, c.title, c.owner, \
     ARRAY(SELECT user_id FROM participants WHERE conversation_id = c.id ORDER BY user_id)";

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host/db`, or `postgres:///db?host=/socket/dir`),
    /// over TLS as its `sslmode` says ([`tls`]), and brings its schema up to date.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let (url, settings) =
            tls::split(url).map_err(|e| StoreError::Failed(format!("--database-url: {e}")))?;
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Failed(format!("--database-url: {e}")))?;
        config.ssl_mode(tls::driver_mode(settings.mode));
        // A server that never answers must not hang start-up (or a request) for long.
        config.connect_timeout(std::time::Duration::from_secs(5));
        let connector = tls::connector(&settings)
            .map_err(|e| StoreError::Failed(format!("--database-url: {e}")))?;
        let manager = Manager::from_config(
            config,
            connector,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(std::time::Duration::from_secs(5)))
            .create_timeout(Some(std::time::Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError::Failed(format!("connection pool: {e}")))?;
        let store = Self { pool };
        store.migrate().await.map_err(|e| match e {
            StoreError::Unavailable(text) => {
                StoreError::Unavailable(tls::explain(&text, settings.mode))
            }
            StoreError::Failed(text) => StoreError::Failed(tls::explain(&text, settings.mode)),
            other => other,
        })?;
        Ok(store)
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INT PRIMARY KEY)")
            .await?;
        let at: i32 = get(
            &tx.query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await?,
            0,
        )?;
        let known = MIGRATIONS.len() as i32;
        if at > known {
            return Err(StoreError::Failed(format!(
                "the database was migrated by a newer farm-chat (schema {at}, this one knows \
                 {known}); refusing to touch it"
            )));
        }
        for (version, sql) in (1..).zip(MIGRATIONS).skip(at as usize) {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[&version],
            )
            .await?;
            tracing::info!(version, "database schema migrated");
        }
        tx.commit().await?;
        Ok(())
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }
}

/// Moves `user`'s read mark of `conversation` up to `seq` (never back, never past the newest
/// message) and returns it.
async fn mark_read(
    client: &impl deadpool_postgres::GenericClient,
    conversation: &str,
    user: &str,
    seq: u64,
) -> StoreResult<u64> {
    let row = client
        .query_one(
            "INSERT INTO reads (conversation_id, user_id, seq) VALUES ($1, $2, \
             LEAST($3, COALESCE((SELECT last_seq FROM conversations WHERE id = $1), 0))) \
             ON CONFLICT (conversation_id, user_id) DO UPDATE \
             SET seq = GREATEST(reads.seq, EXCLUDED.seq) RETURNING seq",
            &[&conversation, &user, &i64_of(seq)],
        )
        .await?;
    u64_of(&row, 0)
}

/// Inserts `m` with the next `seq` of its conversation and returns that seq.
async fn insert_message(
    client: &impl deadpool_postgres::GenericClient,
    m: &NewMessage,
) -> StoreResult<u64> {
    let Some(row) = client
        .query_opt(
            "UPDATE conversations SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq",
            &[&m.conversation_id.as_str()],
        )
        .await?
    else {
        return Err(StoreError::Failed(format!(
            "no conversation {}",
            m.conversation_id
        )));
    };
    let seq: i64 = get(&row, 0)?;
    client
        .execute(
            "INSERT INTO messages (message_id, conversation_id, seq, sender_id, sender_kind, \
             sender_name, text, created_at, task_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &m.message_id.as_str(),
                &m.conversation_id.as_str(),
                &seq,
                &m.sender.id.as_str(),
                &m.sender.kind.as_str(),
                &m.sender.display_name,
                &m.text,
                &m.created_at,
                &m.task_id.as_ref().map(TaskId::as_str),
            ],
        )
        .await?;
    Ok(seq as u64)
}

async fn message_by_id(
    client: &impl deadpool_postgres::GenericClient,
    id: &str,
) -> StoreResult<Option<Message>> {
    client
        .query_opt(&format!("{MESSAGE_SELECT} WHERE m.message_id = $1"), &[&id])
        .await?
        .map(|row| message_at(&row, 0))
        .transpose()
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        self.client().await?.simple_query("SELECT 1").await?;
        Ok(())
    }

    async fn next_epoch(&self) -> StoreResult<u32> {
        let row = self
            .client()
            .await?
            .query_one(
                "INSERT INTO counters (name, value) VALUES ('epoch', 1) ON CONFLICT (name) \
                 DO UPDATE SET value = counters.value + 1 RETURNING value",
                &[],
            )
            .await?;
        u32::try_from(get::<i64>(&row, 0)?)
            .map_err(|_| StoreError::Corrupt("the epoch counter is out of range".into()))
    }

    async fn signing_key(&self) -> StoreResult<Vec<u8>> {
        let mut fresh = vec![0u8; 32];
        getrandom::fill(&mut fresh).map_err(|e| StoreError::Failed(format!("random: {e}")))?;
        let client = self.client().await?;
        // Instances starting together race here: the first key stored is everyone's.
        client
            .execute(
                "INSERT INTO meta (key, value) VALUES ('signing_key', $1) ON CONFLICT DO NOTHING",
                &[&fresh],
            )
            .await?;
        let key: Vec<u8> = get(
            &client
                .query_one("SELECT value FROM meta WHERE key = 'signing_key'", &[])
                .await?,
            0,
        )?;
        if key.len() != 32 {
            return Err(StoreError::Corrupt(format!(
                "the stored signing key has {} bytes, not 32",
                key.len()
            )));
        }
        Ok(key)
    }

    async fn create_session(&self, s: &SessionRecord) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO sessions (id, user_id, expires_at) VALUES ($1, $2, $3)",
                &[&s.id, &s.user_id.as_str(), &i64_of(s.expires_at)],
            )
            .await?;
        Ok(())
    }

    async fn session(&self, id: &str) -> StoreResult<Option<SessionRecord>> {
        self.client()
            .await?
            .query_opt(
                "SELECT id, user_id, expires_at FROM sessions WHERE id = $1",
                &[&id],
            )
            .await?
            .map(|row| {
                Ok(SessionRecord {
                    id: get(&row, 0)?,
                    user_id: UserId(get(&row, 1)?),
                    expires_at: u64_of(&row, 2)?,
                })
            })
            .transpose()
    }

    async fn delete_session(&self, id: &str) -> StoreResult<bool> {
        let n = self
            .client()
            .await?
            .execute("DELETE FROM sessions WHERE id = $1", &[&id])
            .await?;
        Ok(n > 0)
    }

    async fn purge_expired_sessions(&self, now: u64) -> StoreResult<usize> {
        let n = self
            .client()
            .await?
            .execute(
                "DELETE FROM sessions WHERE expires_at <= $1",
                &[&i64_of(now)],
            )
            .await?;
        Ok(n as usize)
    }

    /// Two statements for any number of conversations (a tenant's first request ensures every
    /// farmer's: thousands of rows, not thousands of round trips).
    async fn ensure_conversations(&self, conversations: &[ConversationRecord]) -> StoreResult<()> {
        let column = |f: fn(&ConversationRecord) -> &str| -> Vec<&str> {
            conversations.iter().map(f).collect()
        };
        let ids = column(|c| c.id.as_str());
        let tenants = column(|c| c.tenant_id.as_str());
        let kinds = column(|c| c.kind.as_str());
        let titles = column(|c| c.title.as_str());
        let owners = column(|c| c.owner.as_str());
        let (mut member_of, mut members) = (Vec::new(), Vec::new());
        for c in conversations {
            for user in &c.participants {
                member_of.push(c.id.as_str());
                members.push(user.as_str());
            }
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO conversations (id, tenant_id, kind, title, owner) \
             SELECT id, tenant_id, kind, title, owner FROM unnest($1::text[], $2::text[], \
             $3::text[], $4::text[], $5::text[]) WITH ORDINALITY \
             AS c (id, tenant_id, kind, title, owner, n) ORDER BY n ON CONFLICT DO NOTHING",
            &[&ids, &tenants, &kinds, &titles, &owners],
        )
        .await?;
        tx.execute(
            "INSERT INTO participants (conversation_id, user_id) \
             SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
            &[&member_of, &members],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn join_support_conversations(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO participants (conversation_id, user_id) \
                 SELECT id, $2 FROM conversations WHERE tenant_id = $1 AND kind = 'support' \
                 ON CONFLICT DO NOTHING",
                &[&tenant.as_str(), &user.as_str()],
            )
            .await?;
        Ok(())
    }

    async fn conversation(
        &self,
        tenant: &TenantId,
        id: &ConversationId,
    ) -> StoreResult<Option<ConversationRecord>> {
        self.client()
            .await?
            .query_opt(
                &format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations c \
                     WHERE c.id = $1 AND c.tenant_id = $2"
                ),
                &[&id.as_str(), &tenant.as_str()],
            )
            .await?
            .map(|row| conversation_row(&row))
            .transpose()
    }

    async fn overviews(
        &self,
        tenant: &TenantId,
        user: &UserId,
        kind: Option<ConversationKind>,
    ) -> StoreResult<Vec<Overview>> {
        // One round trip: each conversation with its participants, the user's unread count,
        // everyone's read marks and (columns 9–18) its newest message.
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {CONVERSATION_COLUMNS}, \
                     (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id \
                       AND m.sender_id <> $2 AND m.seq > COALESCE((SELECT seq FROM reads r \
                       WHERE r.conversation_id = c.id AND r.user_id = $2), 0)), \
                     ARRAY(SELECT user_id FROM reads WHERE conversation_id = c.id ORDER BY user_id), \
                     ARRAY(SELECT seq FROM reads WHERE conversation_id = c.id ORDER BY user_id), \
                     last.* \
                     FROM conversations c \
                     JOIN participants p ON p.conversation_id = c.id AND p.user_id = $2 \
                     LEFT JOIN LATERAL ({MESSAGE_SELECT} WHERE m.conversation_id = c.id \
                       ORDER BY m.seq DESC LIMIT 1) last ON true \
                     WHERE c.tenant_id = $1 AND ($3::text IS NULL OR c.kind = $3) \
                     ORDER BY c.ord"
                ),
                &[
                    &tenant.as_str(),
                    &user.as_str(),
                    &kind.map(ConversationKind::as_str),
                ],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let readers: Vec<String> = get(row, 7)?;
                let seqs: Vec<i64> = get(row, 8)?;
                let last_message = match get::<Option<&str>>(row, 9)? {
                    Some(_) => Some(message_at(row, 9)?),
                    None => None,
                };
                Ok(Overview {
                    conversation: conversation_row(row)?,
                    last_message,
                    unread: u32::try_from(get::<i64>(row, 6)?).unwrap_or(u32::MAX),
                    read_marks: readers
                        .into_iter()
                        .map(UserId)
                        .zip(seqs.into_iter().map(|s| s.max(0) as u64))
                        .collect(),
                })
            })
            .collect()
    }

    async fn append_message(
        &self,
        m: &NewMessage,
        idem: Option<&Idempotency>,
        reply: Option<&Reply>,
    ) -> StoreResult<Appended> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some(idem) = idem {
            // Claim the key first. A concurrent claim (a retry on another instance) makes this
            // wait until that transaction ends; then the key is seen below.
            let claimed = tx
                .execute(
                    "INSERT INTO idempotency (user_id, key, fingerprint, message_id) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[
                        &idem.user_id.as_str(),
                        &idem.key,
                        &idem.fingerprint,
                        &m.message_id.as_str(),
                    ],
                )
                .await?;
            if claimed == 0 {
                let row = tx
                    .query_one(
                        "SELECT fingerprint, message_id FROM idempotency \
                         WHERE user_id = $1 AND key = $2",
                        &[&idem.user_id.as_str(), &idem.key],
                    )
                    .await?;
                let (fingerprint, message_id): (&str, &str) = (get(&row, 0)?, get(&row, 1)?);
                if fingerprint != idem.fingerprint {
                    return Ok(Appended::Conflict);
                }
                let message = message_by_id(&tx, message_id).await?.ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "idempotency key of a missing message {message_id}"
                    ))
                })?;
                let task_id = tx
                    .query_opt(
                        "SELECT task_id FROM tasks WHERE source_message_id = $1",
                        &[&message_id],
                    )
                    .await?
                    .map(|row| get(&row, 0).map(TaskId))
                    .transpose()?;
                return Ok(Appended::Replayed { message, task_id });
            }
        }
        let seq = insert_message(&tx, m).await?;
        if let Some(reply) = reply {
            let task = &reply.task;
            let s = &task.snapshot;
            tx.execute(
                "INSERT INTO tasks (task_id, owner, source_message_id, state, version, snapshot, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &s.task_id.as_str(),
                    &task.owner.as_str(),
                    &task.source_message_id.as_str(),
                    &s.state.as_str(),
                    &i64_of(task.version),
                    &snapshot_json(s)?,
                    &s.created_at,
                ],
            )
            .await?;
            insert_message(&tx, &reply.message).await?;
        }
        mark_read(&tx, m.conversation_id.as_str(), m.sender.id.as_str(), seq).await?;
        let message = message_by_id(&tx, m.message_id.as_str())
            .await?
            .ok_or_else(|| StoreError::Failed("the message just stored is missing".into()))?;
        let reply = match reply {
            Some(r) => message_by_id(&tx, r.message.message_id.as_str()).await?,
            None => None,
        };
        tx.commit().await?;
        Ok(Appended::Created { message, reply })
    }

    async fn history(
        &self,
        conversation: &ConversationId,
        cursor: Cursor,
        limit: u32,
    ) -> StoreResult<(Vec<Message>, bool)> {
        let (sql, bound) = match cursor {
            Cursor::Latest => ("m.seq >= $2 ORDER BY m.seq DESC", 0),
            Cursor::Before(seq) => ("m.seq < $2 ORDER BY m.seq DESC", i64_of(seq)),
            Cursor::After(seq) => ("m.seq > $2 ORDER BY m.seq ASC", i64_of(seq)),
        };
        // One extra row tells whether there is more beyond the page.
        let fetch = i64::from(limit) + 1;
        let rows = self
            .client()
            .await?
            .query(
                &format!("{MESSAGE_SELECT} WHERE m.conversation_id = $1 AND {sql} LIMIT $3"),
                &[&conversation.as_str(), &bound, &fetch],
            )
            .await?;
        let has_more = rows.len() as i64 > i64::from(limit);
        let mut messages = rows
            .iter()
            .take(limit as usize)
            .map(|row| message_at(row, 0))
            .collect::<StoreResult<Vec<_>>>()?;
        messages.sort_by_key(|m| m.seq);
        Ok((messages, has_more))
    }

    async fn mark_read(
        &self,
        conversation: &ConversationId,
        user: &UserId,
        seq: u64,
    ) -> StoreResult<u64> {
        mark_read(
            &self.client().await?,
            conversation.as_str(),
            user.as_str(),
            seq,
        )
        .await
    }

    async fn mark_announced(&self, messages: &[MessageId]) -> StoreResult<()> {
        let ids: Vec<&str> = messages.iter().map(MessageId::as_str).collect();
        self.client()
            .await?
            .execute(
                "UPDATE messages SET announced = true WHERE message_id = ANY($1) AND NOT announced",
                &[&ids],
            )
            .await?;
        Ok(())
    }

    async fn unannounced(&self, before: &str, limit: u32) -> StoreResult<Vec<Unannounced>> {
        self.client()
            .await?
            .query(
                "SELECT m.message_id, m.conversation_id, m.seq, ARRAY(SELECT user_id FROM \
                 participants p WHERE p.conversation_id = m.conversation_id ORDER BY user_id) \
                 FROM messages m WHERE NOT m.announced AND m.created_at < $1 \
                 ORDER BY m.created_at LIMIT $2",
                &[&before, &i64::from(limit)],
            )
            .await?
            .iter()
            .map(|row| {
                Ok(Unannounced {
                    message_id: MessageId(get(row, 0)?),
                    conversation_id: ConversationId(get(row, 1)?),
                    seq: u64_of(row, 2)?,
                    participants: get::<Vec<String>>(row, 3)?
                        .into_iter()
                        .map(UserId)
                        .collect(),
                })
            })
            .collect()
    }

    async fn save_task(&self, task: &TaskRecord) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "UPDATE tasks SET state = $2, version = $3, snapshot = $4 \
                 WHERE task_id = $1 AND version < $3",
                &[
                    &task.snapshot.task_id.as_str(),
                    &task.snapshot.state.as_str(),
                    &i64_of(task.version),
                    &snapshot_json(&task.snapshot)?,
                ],
            )
            .await?;
        Ok(())
    }

    async fn task(&self, id: &TaskId) -> StoreResult<Option<TaskRecord>> {
        self.client()
            .await?
            .query_opt(
                &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = $1"),
                &[&id.as_str()],
            )
            .await?
            .map(|row| task_row(&row))
            .transpose()
    }

    async fn tasks_of(
        &self,
        owner: &UserId,
        state: Option<TaskState>,
    ) -> StoreResult<Vec<TaskRecord>> {
        self.client()
            .await?
            .query(
                &format!(
                    "SELECT {TASK_COLUMNS} FROM tasks WHERE owner = $1 \
                     AND ($2::text IS NULL OR state = $2) ORDER BY ord DESC LIMIT 100"
                ),
                &[&owner.as_str(), &state.map(TaskState::as_str)],
            )
            .await?
            .iter()
            .map(task_row)
            .collect()
    }

    async fn running_tasks(&self) -> StoreResult<Vec<TaskRecord>> {
        self.client()
            .await?
            .query(
                &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE state = 'running'"),
                &[],
            )
            .await?
            .iter()
            .map(task_row)
            .collect()
    }
}
