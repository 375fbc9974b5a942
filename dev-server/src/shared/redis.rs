//! [`RedisShared`]: what several instances share, in Redis (`--redis-url`). Every key goes
//! under the deployment's prefix; tickets, leases and hot tasks expire by themselves, so an
//! instance that dies leaves nothing behind for long.

use std::time::Duration;

use redis::{AsyncCommands, aio::ConnectionManager};

use farm_chat_protocol::{MessageId, TaskId, UserId};

use super::{STREAM_STALE, Shared};
use crate::{
    auth::TicketOwner,
    bus::{BusError, BusResult, async_trait},
    ids::random_id,
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

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// See the [module](self).
#[derive(Clone)]
pub struct RedisShared {
    conn: ConnectionManager,
    prefix: String,
    token: redis::Script,
}

impl std::fmt::Debug for RedisShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisShared")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: &redis::RedisError) -> BusError {
    BusError(e.to_string())
}

impl RedisShared {
    /// Connects to Redis at `url`; keys go under `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> BusResult<Self> {
        Self::connect_client(crate::bus::redis::client(url, None)?, prefix).await
    }

    /// As [`RedisShared::connect`], over a client made by [`crate::bus::redis::client`].
    pub async fn connect_client(client: redis::Client, prefix: &str) -> BusResult<Self> {
        Ok(Self {
            conn: crate::bus::redis::connection(client)
                .await
                .map_err(|e| unavailable(&e))?,
            prefix: prefix.to_owned(),
            token: redis::Script::new(TOKEN_LUA),
        })
    }
}

#[async_trait]
impl Shared for RedisShared {
    fn spans_instances(&self) -> bool {
        true
    }

    async fn issue_ticket(&self, owner: &TicketOwner, ttl: Duration) -> BusResult<String> {
        let ticket = random_id();
        let key = format!("{}:ticket:{ticket}", self.prefix);
        let _: () = self
            .conn
            .clone()
            .set_ex(key, owner.encode(), ttl.as_secs().max(1))
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(ticket)
    }

    async fn redeem_ticket(&self, ticket: &str) -> BusResult<Option<TicketOwner>> {
        let key = format!("{}:ticket:{ticket}", self.prefix);
        let text: Option<String> = self
            .conn
            .clone()
            .get_del(key)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(text.and_then(|text| TicketOwner::decode(&text)))
    }

    async fn hold_lease(&self, task: &str, ttl: Duration) -> BusResult<()> {
        let key = format!("{}:lease:{task}", self.prefix);
        let _: () = self
            .conn
            .clone()
            .set_ex(key, "1", ttl.as_secs().max(1))
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(())
    }

    async fn has_lease(&self, task: &str) -> BusResult<bool> {
        let key = format!("{}:lease:{task}", self.prefix);
        self.conn
            .clone()
            .exists(key)
            .await
            .map_err(|e| unavailable(&e))
    }

    async fn put_task(&self, task: &TaskRecord, ttl: Duration) -> BusResult<bool> {
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
        Ok(true)
    }

    async fn tasks(&self, ids: &[TaskId]) -> BusResult<Vec<Option<TaskRecord>>> {
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

    async fn open_stream(&self, user: &UserId, member: &str) -> BusResult<Option<Vec<String>>> {
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
        Ok(Some(members))
    }

    async fn renew_streams(&self, streams: &[(UserId, String)]) -> BusResult<()> {
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

    async fn close_stream(&self, user: &UserId, member: &str) -> BusResult<()> {
        let key = format!("{}:{{u:{user}}}:streams", self.prefix);
        self.conn
            .clone()
            .zrem(key, member)
            .await
            .map_err(|e| unavailable(&e))
    }

    async fn take_token(
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

/// A hot task as [`RedisShared::put_task`](Shared::put_task) wrote it.
fn task_of(json: &str) -> Option<TaskRecord> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    Some(TaskRecord {
        snapshot: serde_json::from_value(value["snapshot"].clone()).ok()?,
        owner: UserId(value["owner"].as_str()?.to_owned()),
        source_message_id: MessageId(value["source"].as_str()?.to_owned()),
        version: value["version"].as_u64()?,
    })
}
