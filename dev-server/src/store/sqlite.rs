//! [`SqliteStore`]: the embedded default store.

use std::{path::Path, sync::Mutex};

use farm_chat_protocol::{
    ConversationId, MessageId, TaskId, TenantId, UserId,
    chat::{ConversationKind, Message, Sender, SenderKind},
    task::{TaskSnapshot, TaskState},
};
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Appended, ConversationRecord, Cursor, Idempotency, NewMessage, Reply, SessionRecord, Store,
    StoreError, StoreResult, TaskRecord,
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

/// SQLite behind one connection. Every operation is one transaction under the mutex, which
/// also serialises concurrent sends with the same idempotency key.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`; `:memory:` gives an in-memory store.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let conn = if path.as_os_str() == ":memory:" {
            Connection::open_in_memory()?
        } else {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError(format!("create {}: {e}", dir.display())))?;
            }
            Connection::open(path)?
        };
        // WAL: a committed transaction is in the log file before the send is acknowledged, so
        // it survives the process being killed; NORMAL sync is enough for that.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > 1 {
            return Err(StoreError(format!(
                "{} was written by a newer farm-chat (schema {version}); refusing to touch it",
                path.display()
            )));
        }
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", 1)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// An in-memory store (tests).
    pub fn in_memory() -> StoreResult<Self> {
        Self::open(Path::new(":memory:"))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| StoreError("connection mutex poisoned".into()))?;
        Ok(f(&mut conn)?)
    }
}

fn kind_str(kind: ConversationKind) -> &'static str {
    match kind {
        ConversationKind::Assistant => "assistant",
        ConversationKind::Support => "support",
    }
}

fn kind_from(s: &str) -> ConversationKind {
    if s == "assistant" {
        ConversationKind::Assistant
    } else {
        ConversationKind::Support
    }
}

fn sender_kind_str(kind: SenderKind) -> &'static str {
    match kind {
        SenderKind::User => "user",
        SenderKind::Assistant => "assistant",
        SenderKind::Support => "support",
    }
}

fn sender_kind_from(s: &str) -> SenderKind {
    match s {
        "assistant" => SenderKind::Assistant,
        "support" => SenderKind::Support,
        _ => SenderKind::User,
    }
}

fn state_str(state: TaskState) -> &'static str {
    match state {
        TaskState::Running => "running",
        TaskState::Succeeded => "succeeded",
        TaskState::Failed => "failed",
        TaskState::Cancelled => "cancelled",
    }
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
            kind: sender_kind_from(&row.get::<_, String>(4)?),
            display_name: row.get(5)?,
        },
        text: row.get(6)?,
        created_at: row.get(7)?,
        task: row
            .get::<_, Option<String>>(8)?
            .and_then(|json| serde_json::from_str::<TaskSnapshot>(&json).ok()),
        // The sender's key; the server shows it only to the sender.
        idempotency_key: row.get(9)?,
    })
}

fn message_by_id(conn: &Connection, id: &str) -> rusqlite::Result<Option<Message>> {
    conn.query_row(
        &format!("{MESSAGE_SELECT} WHERE m.message_id = ?1"),
        [id],
        message_row,
    )
    .optional()
}

/// Inserts with the next `seq` of the conversation.
fn insert_message(conn: &Connection, m: &NewMessage) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO messages (message_id, conversation_id, seq, sender_id, sender_kind, sender_name, text, \
         created_at, task_id) VALUES (?1, ?2, \
         (SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE conversation_id = ?2), ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            m.message_id.as_str(),
            m.conversation_id.as_str(),
            m.sender.id.as_str(),
            sender_kind_str(m.sender.kind),
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

fn insert_task(conn: &Connection, task: &TaskRecord) -> rusqlite::Result<()> {
    let s = &task.snapshot;
    conn.execute(
        "INSERT INTO tasks (task_id, owner, source_message_id, state, version, snapshot, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            s.task_id.as_str(),
            task.owner.as_str(),
            task.source_message_id.as_str(),
            state_str(s.state),
            task.version as i64,
            to_json(s)?,
            s.created_at,
        ],
    )
    .map(drop)
}

const TASK_COLUMNS: &str = "snapshot, owner, source_message_id, version";

fn task_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TaskRecord> {
    let json: String = row.get(0)?;
    let snapshot = serde_json::from_str(&json).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(TaskRecord {
        snapshot,
        owner: UserId(row.get(1)?),
        source_message_id: MessageId(row.get(2)?),
        version: row.get::<_, i64>(3)? as u64,
    })
}

fn load_conversation(conn: &Connection, id: &str) -> rusqlite::Result<Option<ConversationRecord>> {
    let Some((tenant, kind, title, owner)) = conn
        .query_row(
            "SELECT tenant_id, kind, title, owner FROM conversations WHERE id = ?1",
            [id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            },
        )
        .optional()?
    else {
        return Ok(None);
    };
    let mut stmt = conn
        .prepare("SELECT user_id FROM participants WHERE conversation_id = ?1 ORDER BY user_id")?;
    let participants = stmt
        .query_map([id], |r| Ok(UserId(r.get(0)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(ConversationRecord {
        id: ConversationId(id.to_owned()),
        tenant_id: TenantId(tenant),
        kind: kind_from(&kind),
        title,
        owner: UserId(owner),
        participants,
    }))
}

impl Store for SqliteStore {
    fn next_epoch(&self) -> StoreResult<u32> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            let epoch: i64 = tx
                .query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |r| {
                    r.get(0)
                })
                .optional()?
                .unwrap_or(0)
                + 1;
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('epoch', ?1)",
                [epoch],
            )?;
            tx.commit()?;
            Ok(epoch as u32)
        })
    }

    fn signing_key(&self) -> StoreResult<Vec<u8>> {
        let existing: Option<Vec<u8>> = self.with(|conn| {
            conn.query_row(
                "SELECT value FROM meta WHERE key = 'signing_key'",
                [],
                |r| r.get(0),
            )
            .optional()
        })?;
        if let Some(key) = existing.filter(|k| k.len() == 32) {
            return Ok(key);
        }
        let mut key = vec![0u8; 32];
        getrandom::fill(&mut key).map_err(|e| StoreError(format!("random: {e}")))?;
        self.with(|conn| {
            // Another start may have raced us: keep whichever key was stored first.
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('signing_key', ?1)",
                [&key],
            )?;
            conn.query_row(
                "SELECT value FROM meta WHERE key = 'signing_key'",
                [],
                |r| r.get(0),
            )
        })
    }

    fn create_session(&self, s: &SessionRecord) -> StoreResult<()> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO sessions (id, user_id, expires_at) VALUES (?1, ?2, ?3)",
                params![s.id, s.user_id.as_str(), s.expires_at as i64],
            )
            .map(drop)
        })
    }

    fn session(&self, id: &str) -> StoreResult<Option<SessionRecord>> {
        self.with(|conn| {
            conn.query_row(
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
    }

    fn delete_session(&self, id: &str) -> StoreResult<bool> {
        self.with(|conn| Ok(conn.execute("DELETE FROM sessions WHERE id = ?1", [id])? > 0))
    }

    fn purge_expired_sessions(&self, now: u64) -> StoreResult<usize> {
        self.with(|conn| {
            conn.execute(
                "DELETE FROM sessions WHERE expires_at <= ?1",
                [i64::try_from(now).unwrap_or(i64::MAX)],
            )
        })
    }

    fn ensure_conversation(&self, c: &ConversationRecord) -> StoreResult<ConversationRecord> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT OR IGNORE INTO conversations (id, tenant_id, kind, title, owner) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![c.id.as_str(), c.tenant_id.as_str(), kind_str(c.kind), c.title, c.owner.as_str()],
            )?;
            for user in &c.participants {
                tx.execute(
                    "INSERT OR IGNORE INTO participants (conversation_id, user_id) VALUES (?1, ?2)",
                    params![c.id.as_str(), user.as_str()],
                )?;
            }
            let stored = load_conversation(&tx, c.id.as_str())?;
            tx.commit()?;
            stored.ok_or(rusqlite::Error::QueryReturnedNoRows)
        })
    }

    fn join_support_conversations(&self, tenant: &TenantId, user: &UserId) -> StoreResult<()> {
        self.with(|conn| {
            conn.execute(
                "INSERT OR IGNORE INTO participants (conversation_id, user_id) \
                 SELECT id, ?2 FROM conversations WHERE tenant_id = ?1 AND kind = 'support'",
                params![tenant.as_str(), user.as_str()],
            )
            .map(drop)
        })
    }

    fn conversation(
        &self,
        tenant: &TenantId,
        id: &ConversationId,
    ) -> StoreResult<Option<ConversationRecord>> {
        let found = self.with(|conn| load_conversation(conn, id.as_str()))?;
        Ok(found.filter(|c| &c.tenant_id == tenant))
    }

    fn conversations_of(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<Vec<ConversationRecord>> {
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT c.id FROM conversations c JOIN participants p ON p.conversation_id = c.id \
                 WHERE c.tenant_id = ?1 AND p.user_id = ?2 ORDER BY c.rowid",
            )?;
            let ids = stmt
                .query_map([tenant.as_str(), user.as_str()], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(c) = load_conversation(conn, &id)? {
                    out.push(c);
                }
            }
            Ok(out)
        })
    }

    fn append_message(
        &self,
        m: &NewMessage,
        idem: Option<&Idempotency>,
        reply: Option<&Reply>,
    ) -> StoreResult<Appended> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            if let Some(idem) = idem {
                let seen: Option<(String, String)> = tx
                    .query_row(
                        "SELECT fingerprint, message_id FROM idempotency WHERE user_id = ?1 AND key = ?2",
                        [idem.user_id.as_str(), idem.key.as_str()],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                if let Some((fingerprint, message_id)) = seen {
                    if fingerprint != idem.fingerprint {
                        return Ok(Appended::Conflict);
                    }
                    let message = message_by_id(&tx, &message_id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
                    let task_id = tx
                        .query_row("SELECT task_id FROM tasks WHERE source_message_id = ?1", [&message_id], |r| {
                            r.get::<_, String>(0)
                        })
                        .optional()?
                        .map(TaskId);
                    return Ok(Appended::Replayed { message, task_id });
                }
            }
            insert_message(&tx, m)?;
            if let Some(idem) = idem {
                tx.execute(
                    "INSERT INTO idempotency (user_id, key, fingerprint, message_id) VALUES (?1, ?2, ?3, ?4)",
                    params![idem.user_id.as_str(), idem.key, idem.fingerprint, m.message_id.as_str()],
                )?;
            }
            if let Some(reply) = reply {
                insert_task(&tx, &reply.task)?;
                insert_message(&tx, &reply.message)?;
            }
            let message = message_by_id(&tx, m.message_id.as_str())?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            let reply = match reply {
                Some(r) => message_by_id(&tx, r.message.message_id.as_str())?,
                None => None,
            };
            tx.commit()?;
            Ok(Appended::Created { message, reply })
        })
    }

    fn history(
        &self,
        conversation: &ConversationId,
        cursor: Cursor,
        limit: u32,
    ) -> StoreResult<(Vec<Message>, bool)> {
        let id = conversation.as_str();
        // One extra row tells whether there is more beyond the page.
        let fetch = i64::from(limit) + 1;
        self.with(|conn| {
            let (sql, bound) = match cursor {
                Cursor::Latest => ("m.seq >= ?2 ORDER BY m.seq DESC", 0),
                Cursor::Before(seq) => ("m.seq < ?2 ORDER BY m.seq DESC", seq as i64),
                Cursor::After(seq) => ("m.seq > ?2 ORDER BY m.seq ASC", seq as i64),
            };
            let mut stmt = conn.prepare(&format!(
                "{MESSAGE_SELECT} WHERE m.conversation_id = ?1 AND {sql} LIMIT ?3"
            ))?;
            let mut rows = stmt
                .query_map(params![id, bound, fetch], message_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let has_more = rows.len() as i64 > i64::from(limit);
            rows.truncate(limit as usize);
            rows.sort_by_key(|m| m.seq);
            Ok((rows, has_more))
        })
    }

    fn last_message(&self, conversation: &ConversationId) -> StoreResult<Option<Message>> {
        self.with(|conn| {
            conn.query_row(
                &format!(
                    "{MESSAGE_SELECT} WHERE m.conversation_id = ?1 ORDER BY m.seq DESC LIMIT 1"
                ),
                [conversation.as_str()],
                message_row,
            )
            .optional()
        })
    }

    fn mark_read(
        &self,
        conversation: &ConversationId,
        user: &UserId,
        seq: u64,
    ) -> StoreResult<u64> {
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        self.with(|conn| {
            conn.query_row(
                "INSERT INTO reads (conversation_id, user_id, seq) VALUES (?1, ?2, \
                 MIN(?3, (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = ?1))) \
                 ON CONFLICT (conversation_id, user_id) DO UPDATE SET seq = MAX(seq, excluded.seq) \
                 RETURNING seq",
                params![conversation.as_str(), user.as_str(), seq],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
        })
    }

    fn read_marks(&self, conversation: &ConversationId) -> StoreResult<Vec<(UserId, u64)>> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT user_id, seq FROM reads WHERE conversation_id = ?1 ORDER BY user_id",
            )?;
            let rows = stmt.query_map([conversation.as_str()], |r| {
                Ok((UserId(r.get(0)?), r.get::<_, i64>(1)? as u64))
            })?;
            rows.collect()
        })
    }

    fn unread(&self, conversation: &ConversationId, user: &UserId) -> StoreResult<u32> {
        self.with(|conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM messages WHERE conversation_id = ?1 AND sender_id != ?2 \
                 AND seq > COALESCE((SELECT seq FROM reads WHERE conversation_id = ?1 AND user_id = ?2), 0)",
                [conversation.as_str(), user.as_str()],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u32)
        })
    }

    fn save_task(&self, task: &TaskRecord) -> StoreResult<()> {
        self.with(|conn| {
            conn.execute(
                "UPDATE tasks SET state = ?2, version = ?3, snapshot = ?4 WHERE task_id = ?1 AND version < ?3",
                params![
                    task.snapshot.task_id.as_str(),
                    state_str(task.snapshot.state),
                    task.version as i64,
                    to_json(&task.snapshot)?
                ],
            )
            .map(drop)
        })
    }

    fn task(&self, id: &TaskId) -> StoreResult<Option<TaskRecord>> {
        self.with(|conn| {
            conn.query_row(
                &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = ?1"),
                [id.as_str()],
                task_row,
            )
            .optional()
        })
    }

    fn tasks_of(&self, owner: &UserId, state: Option<TaskState>) -> StoreResult<Vec<TaskRecord>> {
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE owner = ?1 AND (?2 IS NULL OR state = ?2) \
                 ORDER BY rowid DESC LIMIT 100"
            ))?;
            stmt.query_map(params![owner.as_str(), state.map(state_str)], task_row)?
                .collect()
        })
    }

    fn running_tasks(&self) -> StoreResult<Vec<TaskRecord>> {
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE state = 'running'"
            ))?;
            stmt.query_map([], task_row)?.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation(id: &str) -> ConversationRecord {
        ConversationRecord {
            id: ConversationId(id.into()),
            tenant_id: TenantId("demo-farm".into()),
            kind: ConversationKind::Support,
            title: "サポート".into(),
            owner: UserId("u-farmer".into()),
            participants: vec![UserId("u-farmer".into()), UserId("u-support".into())],
        }
    }

    fn new_message(id: &str, conv: &str, text: &str) -> NewMessage {
        NewMessage {
            message_id: MessageId(id.into()),
            conversation_id: ConversationId(conv.into()),
            sender: Sender {
                id: UserId("u-farmer".into()),
                kind: SenderKind::User,
                display_name: "山田 太郎".into(),
            },
            text: text.into(),
            created_at: "2026-11-22T00:00:00Z".into(),
            task_id: None,
        }
    }

    fn idem(key: &str, fingerprint: &str) -> Idempotency {
        Idempotency {
            user_id: UserId("u-farmer".into()),
            key: key.into(),
            fingerprint: fingerprint.into(),
        }
    }

    #[test]
    fn seq_counts_per_conversation() {
        let store = SqliteStore::in_memory().unwrap();
        store.ensure_conversation(&conversation("c-a")).unwrap();
        store.ensure_conversation(&conversation("c-b")).unwrap();
        let seqs: Vec<u64> = [("m1", "c-a"), ("m2", "c-a"), ("m3", "c-b"), ("m4", "c-a")]
            .iter()
            .map(|(m, c)| {
                match store
                    .append_message(&new_message(m, c, "x"), None, None)
                    .unwrap()
                {
                    Appended::Created { message, .. } => message.seq,
                    other => panic!("{other:?}"),
                }
            })
            .collect();
        assert_eq!(seqs, [1, 2, 1, 3]);
    }

    #[test]
    fn an_idempotency_key_stores_once_and_conflicts_on_another_body() {
        let store = SqliteStore::in_memory().unwrap();
        store.ensure_conversation(&conversation("c-a")).unwrap();
        let first = store
            .append_message(
                &new_message("m1", "c-a", "hi"),
                Some(&idem("k", "c-a|hi")),
                None,
            )
            .unwrap();
        let Appended::Created { message: first, .. } = first else {
            panic!("{first:?}")
        };
        let again = store
            .append_message(
                &new_message("m2", "c-a", "hi"),
                Some(&idem("k", "c-a|hi")),
                None,
            )
            .unwrap();
        assert_eq!(
            again,
            Appended::Replayed {
                message: first,
                task_id: None
            }
        );
        let other = store
            .append_message(
                &new_message("m3", "c-a", "bye"),
                Some(&idem("k", "c-a|bye")),
                None,
            )
            .unwrap();
        assert_eq!(other, Appended::Conflict);
        assert_eq!(
            store
                .history(&ConversationId("c-a".into()), Cursor::Latest, 50)
                .unwrap()
                .0
                .len(),
            1
        );
    }

    #[test]
    fn history_pages_both_ways_in_seq_order() {
        let store = SqliteStore::in_memory().unwrap();
        store.ensure_conversation(&conversation("c-a")).unwrap();
        for i in 1..=7 {
            store
                .append_message(&new_message(&format!("m{i}"), "c-a", "x"), None, None)
                .unwrap();
        }
        let c = ConversationId("c-a".into());
        let seqs = |(msgs, more): (Vec<Message>, bool)| {
            (msgs.iter().map(|m| m.seq).collect::<Vec<_>>(), more)
        };
        assert_eq!(
            seqs(store.history(&c, Cursor::Latest, 3).unwrap()),
            (vec![5, 6, 7], true)
        );
        assert_eq!(
            seqs(store.history(&c, Cursor::Before(5), 3).unwrap()),
            (vec![2, 3, 4], true)
        );
        assert_eq!(
            seqs(store.history(&c, Cursor::Before(2), 3).unwrap()),
            (vec![1], false)
        );
        assert_eq!(
            seqs(store.history(&c, Cursor::After(4), 2).unwrap()),
            (vec![5, 6], true)
        );
        assert_eq!(
            seqs(store.history(&c, Cursor::After(5), 5).unwrap()),
            (vec![6, 7], false)
        );
    }

    #[test]
    fn epochs_and_keys_survive_reopening_the_file() {
        let path =
            std::env::temp_dir().join(format!("farm-chat-store-{}.sqlite", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let (key, epoch) = {
            let store = SqliteStore::open(&path).unwrap();
            store.ensure_conversation(&conversation("c-a")).unwrap();
            store
                .append_message(&new_message("m1", "c-a", "残る"), None, None)
                .unwrap();
            (store.signing_key().unwrap(), store.next_epoch().unwrap())
        };
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.signing_key().unwrap(), key);
        assert_eq!(store.next_epoch().unwrap(), epoch + 1);
        let (msgs, _) = store
            .history(&ConversationId("c-a".into()), Cursor::Latest, 10)
            .unwrap();
        assert_eq!(msgs[0].text, "残る");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    #[test]
    fn unread_counts_others_after_the_read_mark() {
        let store = SqliteStore::in_memory().unwrap();
        store.ensure_conversation(&conversation("c-a")).unwrap();
        let mut m = new_message("m1", "c-a", "x");
        m.sender.id = UserId("u-support".into());
        store.append_message(&m, None, None).unwrap();
        m.message_id = MessageId("m2".into());
        store.append_message(&m, None, None).unwrap();
        let (c, farmer) = (ConversationId("c-a".into()), UserId("u-farmer".into()));
        assert_eq!(store.unread(&c, &farmer).unwrap(), 2);
        store.mark_read(&c, &farmer, 1).unwrap();
        assert_eq!(store.unread(&c, &farmer).unwrap(), 1);
        store.mark_read(&c, &farmer, 0).unwrap();
        assert_eq!(
            store.unread(&c, &farmer).unwrap(),
            1,
            "the mark never moves back"
        );
        assert_eq!(
            store.mark_read(&c, &farmer, 99).unwrap(),
            2,
            "a mark past the newest message stops at it"
        );
        store.mark_read(&c, &UserId("u-support".into()), 1).unwrap();
        assert_eq!(
            store.read_marks(&c).unwrap(),
            vec![(farmer, 2), (UserId("u-support".into()), 1)]
        );
    }
}
