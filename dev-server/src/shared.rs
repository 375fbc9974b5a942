//! [`Shared`]: short-lived state that every instance must agree on when several serve one
//! deployment (`--redis-url`): single-use stream tickets (issued by one instance, redeemed by
//! another) and the rate-limit buckets (a user spreading requests over instances gets no more
//! than on one). Without Redis there is one instance, and these stay in its memory
//! ([`crate::auth::Tickets`], [`crate::limits::RateLimiter`]).
//!
//! It also holds the **hot task cache** (seed 004): each running task's latest snapshot, which
//! every instance reads, kept until a while after the task ends; PostgreSQL gets it written
//! behind.

use std::time::Duration;

use redis::{AsyncCommands, aio::ConnectionManager};

use farm_chat_protocol::{MessageId, TaskId, UserId};

use crate::{
    bus::{BusError, BusResult},
    store::TaskRecord,
};

/// KEYS: the bucket. ARGV: burst, tokens per second. Takes one token by Redis's own clock (one
/// clock for every instance); returns {1, 0} or {0, seconds to wait}.
const TOKEN_LUA: &str = r"
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) / 1000 * rate)
local ok, wait = 0, 0
if tokens >= 1 then
  tokens = tokens - 1
  ok = 1
else
  wait = math.max(1, math.ceil((1 - tokens) / rate))
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {ok, wait}
";

/// An open stream not renewed for this long belongs to an instance that died.
pub const STREAM_STALE: Duration = Duration::from_secs(90);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// See the [module](self).
#[derive(Clone)]
pub struct Shared {
    conn: ConnectionManager,
    prefix: String,
    token: redis::Script,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: &redis::RedisError) -> BusError {
    BusError(e.to_string())
}

impl Shared {
    /// Connects to Redis at `url`; keys go under `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> BusResult<Self> {
        let client = redis::Client::open(url).map_err(|e| unavailable(&e))?;
        Ok(Self {
            conn: crate::bus::redis::connection(client)
                .await
                .map_err(|e| unavailable(&e))?,
            prefix: prefix.to_owned(),
            token: redis::Script::new(TOKEN_LUA),
        })
    }

    /// Keeps `value` under ticket `ticket` for `ttl`.
    pub async fn put_ticket(&self, ticket: &str, value: &str, ttl: Duration) -> BusResult<()> {
        let key = format!("{}:ticket:{ticket}", self.prefix);
        let ttl = ttl.as_secs().max(1);
        let _: () = self
            .conn
            .clone()
            .set_ex(key, value, ttl)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(())
    }

    /// Takes the value of a ticket: the first call anywhere gets it, later ones `None`.
    pub async fn take_ticket(&self, ticket: &str) -> BusResult<Option<String>> {
        let key = format!("{}:ticket:{ticket}", self.prefix);
        self.conn
            .clone()
            .get_del(key)
            .await
            .map_err(|e| unavailable(&e))
    }

    /// Holds the lease of task `task` for `ttl` more (its runner renews it while it runs).
    pub async fn hold_lease(&self, task: &str, ttl: Duration) -> BusResult<()> {
        let key = format!("{}:lease:{task}", self.prefix);
        let _: () = self
            .conn
            .clone()
            .set_ex(key, "1", ttl.as_secs().max(1))
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(())
    }

    /// Whether some instance holds the lease of task `task`.
    pub async fn has_lease(&self, task: &str) -> BusResult<bool> {
        let key = format!("{}:lease:{task}", self.prefix);
        self.conn
            .clone()
            .exists(key)
            .await
            .map_err(|e| unavailable(&e))
    }

    /// Keeps a task's latest snapshot hot for `ttl`; an older version never replaces a newer.
    pub async fn put_task(&self, task: &TaskRecord, ttl: Duration) -> BusResult<()> {
        let json = serde_json::json!({
            "snapshot": task.snapshot,
            "owner": task.owner,
            "source": task.source_message_id,
            "version": task.version,
        })
        .to_string();
        let _: i64 = redis::Script::new(
            r"
local old = redis.call('GET', KEYS[1])
if old and cjson.decode(old).version > tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
",
        )
        .key(format!("{}:task:{}", self.prefix, task.snapshot.task_id))
        .arg(json)
        .arg(task.version)
        .arg(ttl.as_secs().max(1))
        .invoke_async(&mut self.conn.clone())
        .await
        .map_err(|e| unavailable(&e))?;
        Ok(())
    }

    /// The hot snapshots of these tasks (`None` for one not hot).
    pub async fn tasks(&self, ids: &[TaskId]) -> BusResult<Vec<Option<TaskRecord>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids
            .iter()
            .map(|id| format!("{}:task:{id}", self.prefix))
            .collect();
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(keys)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(values
            .into_iter()
            .map(|v| v.and_then(|json| task_of(&json)))
            .collect())
    }

    /// Registers an open stream of `user` (`member`: `<opened ms>|<instance>|<id>|<session>`)
    /// and returns every stream of theirs open on any instance, oldest first. Entries an
    /// instance stopped renewing (it died) are dropped on the way.
    pub async fn open_stream(&self, user: &UserId, member: &str) -> BusResult<Vec<String>> {
        let key = format!("{}:{{u:{user}}}:streams", self.prefix);
        let now = now_ms();
        let (mut members,): (Vec<String>,) = redis::pipe()
            .atomic()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(now.saturating_sub(STREAM_STALE.as_millis() as u64))
            .ignore()
            .zadd(&key, member, now)
            .ignore()
            .expire(&key, STREAM_STALE.as_secs() as i64 * 2)
            .ignore()
            .zrange(&key, 0, -1)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| unavailable(&e))?;
        members.sort_by_key(|m| {
            m.split('|')
                .next()
                .and_then(|ms| ms.parse::<u64>().ok())
                .unwrap_or(0)
        });
        Ok(members)
    }

    /// Renews these open streams of this instance (every [`STREAM_STALE`] / 3).
    pub async fn renew_streams(&self, streams: &[(UserId, String)]) -> BusResult<()> {
        if streams.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut pipe = redis::pipe();
        for (user, member) in streams {
            let key = format!("{}:{{u:{user}}}:streams", self.prefix);
            pipe.cmd("ZADD")
                .arg(&key)
                .arg("XX")
                .arg(now)
                .arg(member)
                .ignore();
            pipe.expire(&key, STREAM_STALE.as_secs() as i64 * 2)
                .ignore();
        }
        pipe.query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(|e| unavailable(&e))
    }

    /// Forgets a closed stream.
    pub async fn close_stream(&self, user: &UserId, member: &str) -> BusResult<()> {
        let key = format!("{}:{{u:{user}}}:streams", self.prefix);
        self.conn
            .clone()
            .zrem(key, member)
            .await
            .map_err(|e| unavailable(&e))
    }

    /// Takes a token from bucket `bucket` of `key` (`burst` at once, refilled at
    /// `per_second`), or says after how many whole seconds one is available.
    pub async fn take_token(
        &self,
        bucket: &str,
        key: &str,
        burst: u32,
        per_second: f64,
    ) -> BusResult<Result<(), u64>> {
        let (ok, wait): (i64, u64) = self
            .token
            .key(format!("{}:rate:{bucket}:{key}", self.prefix))
            .arg(burst)
            .arg(per_second)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(if ok == 1 { Ok(()) } else { Err(wait) })
    }
}

/// A hot task as [`Shared::put_task`] wrote it.
fn task_of(json: &str) -> Option<TaskRecord> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    Some(TaskRecord {
        snapshot: serde_json::from_value(value["snapshot"].clone()).ok()?,
        owner: UserId(value["owner"].as_str()?.to_owned()),
        source_message_id: MessageId(value["source"].as_str()?.to_owned()),
        version: value["version"].as_u64()?,
    })
}
