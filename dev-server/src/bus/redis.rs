//! [`RedisBus`]: the event bus several instances share.
//!
//! Keys, under a prefix (`--redis-prefix`, default `fc`, so deployments can share one Redis;
//! the `{…}` hash tag keeps one user's keys in one slot):
//! - `fc:epoch`: the epoch of every id in Redis now. It is allocated by the durable store
//!   when Redis has none (first start, or Redis lost its data), so it is never reused and ids
//!   only grow: `(epoch << 40) | n`.
//! - `fc:{u:<user>}:n`: the user's last `n`; `fc:{u:<user>}:log`: their recent events (a
//!   stream with ids `0-<n>`, about [`LOG_LEN`] kept, gone [`LOG_TTL_S`] after the last one);
//!   `fc:{u:<user>}:dd`: dedupe keys already published, with their `n`.
//!
//! [`PUBLISH_LUA`] does a publish in one atomic step: dedupe, next id, append, notify on the
//! user's partition channel `fc:ev:<0..PARTITIONS>`. Each instance subscribes to every
//! partition on one connection and fans the events out to its own streams. A gap in a user's
//! ids (a lost Pub/Sub message) is read back from the log; after the Pub/Sub connection comes
//! back, every user with open streams here is repaired the same way. When the epoch moved
//! (Redis lost its data), the user's streams here end: their clients resume and get `reset`.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use farm_chat_protocol::{EventId, StreamEvent, TaskId, UserId, stream::ResetReason};
use futures_util::StreamExt;
use redis::{AsyncCommands, aio::ConnectionManager};
use tokio::sync::{broadcast, watch};

use super::{
    BusError, BusResult, Entry, EventBus, HubLimits, Resume, Signal, Subscription, async_trait,
    live_stream,
};
use crate::store::Store;

/// Events kept per user (at least; Redis trims whole nodes).
pub const LOG_LEN: u32 = 1000;
/// A user's log (and dedupe keys) expire this long after their last event.
pub const LOG_TTL_S: u32 = 600;
/// Channels the users are spread over.
pub const PARTITIONS: u32 = 16;
/// Separates the fields of a Pub/Sub payload (JSON never contains it raw).
const SEP: char = '\u{1f}';

/// KEYS: epoch, counter, log, dedupe. ARGV: dedupe key ('' for none), name, data, log length,
/// TTL, channel, user. Returns {epoch, n}; an error `NOEPOCH` when Redis has no epoch.
const PUBLISH_LUA: &str = r"
local epoch = redis.call('GET', KEYS[1])
if not epoch then return redis.error_reply('NOEPOCH Redis has no epoch') end
if ARGV[1] ~= '' then
  local seen = redis.call('HGET', KEYS[4], ARGV[1])
  if seen then return {tonumber(epoch), tonumber(seen)} end
end
local n = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '0-' .. n, 'e', ARGV[2], 'd', ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[5])
if ARGV[1] ~= '' then
  redis.call('HSET', KEYS[4], ARGV[1], n)
  redis.call('EXPIRE', KEYS[4], ARGV[5])
end
local sep = string.char(31)
redis.call('PUBLISH', ARGV[6], ARGV[7] .. sep .. epoch .. sep .. n .. sep .. 'e' .. sep .. ARGV[2] .. sep .. ARGV[3])
return {tonumber(epoch), n}
";

/// Key and channel names under one prefix.
#[derive(Debug, Clone)]
struct Names {
    prefix: String,
}

impl Names {
    fn epoch(&self) -> String {
        format!("{}:epoch", self.prefix)
    }

    fn signals(&self) -> String {
        format!("{}:signal", self.prefix)
    }

    fn counter(&self, user: &UserId) -> String {
        format!("{}:{{u:{user}}}:n", self.prefix)
    }

    fn log(&self, user: &UserId) -> String {
        format!("{}:{{u:{user}}}:log", self.prefix)
    }

    fn dedupe(&self, user: &UserId) -> String {
        format!("{}:{{u:{user}}}:dd", self.prefix)
    }

    fn partition(&self, p: u32) -> String {
        format!("{}:ev:{p}", self.prefix)
    }

    /// The partition channel of a user (FNV-1a of the id).
    fn channel(&self, user: &UserId) -> String {
        let hash = user.as_str().bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        self.partition(hash % PARTITIONS)
    }
}

/// A connection to Redis that reconnects by itself, but fails a call within about a second
/// while Redis is out of reach (a send must answer, not hang; the outbox and the stream's
/// repair catch up afterwards).
pub(crate) async fn connection(client: redis::Client) -> redis::RedisResult<ConnectionManager> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(200))
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    ConnectionManager::new_with_config(client, config).await
}

fn unavailable(e: &redis::RedisError) -> BusError {
    let text = e.to_string();
    if ["WRONGPASS", "NOAUTH", "NOPERM", "AuthenticationFailed"]
        .iter()
        .any(|m| text.contains(m))
    {
        BusError(format!(
            "{text} — Redis refused the user name or password of the URL \
             (redis://user:password@host:port, rediss:// for TLS)"
        ))
    } else {
        BusError(text)
    }
}

/// A client for `url`: `redis://` (plain), `rediss://` (TLS, trusting the public roots, or only
/// the CAs of `ca_cert`, a PEM file, for a private CA), or `redis+unix://`. A user name and
/// password ride in the URL (`rediss://user:password@host:6379`: ElastiCache's RBAC).
pub fn client(url: &str, ca_cert: Option<&std::path::Path>) -> BusResult<redis::Client> {
    crate::tls::install_default_provider();
    let tls = url.starts_with("rediss://");
    match ca_cert {
        None => redis::Client::open(url).map_err(|e| unavailable(&e)),
        Some(path) if !tls => Err(BusError(format!(
            "--redis-ca-cert {} needs a rediss:// URL (TLS)",
            path.display()
        ))),
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| BusError(format!("--redis-ca-cert {}: {e}", path.display())))?;
            redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )
            .map_err(|e| BusError(format!("--redis-ca-cert {}: {e}", path.display())))
        }
    }
}

/// The streams of one user open on this instance.
#[derive(Debug)]
struct LocalUser {
    live: broadcast::Sender<Entry>,
    /// The newest id fanned out here (or read by a subscribe): a later id more than one ahead
    /// means a Pub/Sub message was lost, and the gap is read from the log.
    delivered: EventId,
}

struct Inner {
    names: Names,
    conn: ConnectionManager,
    store: Arc<dyn Store>,
    epoch: AtomicU32,
    live_buffer: usize,
    local: Mutex<HashMap<UserId, LocalUser>>,
    signals: broadcast::Sender<Signal>,
    script: redis::Script,
    /// Dropped with the bus: the Pub/Sub task sees it and ends.
    _alive: watch::Sender<()>,
}

/// See the [module](self).
#[derive(Clone)]
pub struct RedisBus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("epoch", &self.inner.epoch)
            .finish_non_exhaustive()
    }
}

/// Removes a user's local entry when their last stream here ends.
struct LocalGuard {
    inner: Weak<Inner>,
    user: UserId,
}

impl Drop for LocalGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            let mut local = inner.local.lock().unwrap_or_else(|p| p.into_inner());
            if local
                .get(&self.user)
                .is_some_and(|u| u.live.receiver_count() == 0)
            {
                local.remove(&self.user);
            }
        }
    }
}

/// An entry of a user's log (`0-<n>` with fields `e` and `d`).
fn log_entry(epoch: u32, id: &redis::streams::StreamId) -> Option<Entry> {
    let n = id.id.split_once('-')?.1.parse().ok()?;
    let text = |field: &str| match id.map.get(field)? {
        redis::Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        _ => None,
    };
    Some(Entry::from_parts(
        EventId::new(epoch, n),
        Entry::known_name(&text("e")?)?,
        &text("d")?,
        false,
    ))
}

impl RedisBus {
    /// Connects to Redis at `url`, subscribes to every partition channel and returns once
    /// that subscription is in place (so no event published afterwards is missed here).
    pub async fn connect(
        url: &str,
        prefix: &str,
        store: Arc<dyn Store>,
        limits: HubLimits,
    ) -> BusResult<Self> {
        if prefix.is_empty()
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(BusError(format!(
                "--redis-prefix {prefix:?}: letters, digits, '-', '_' and '.' only"
            )));
        }
        Self::connect_client(client(url, None)?, prefix, store, limits).await
    }

    /// As [`RedisBus::connect`], over a client made by [`client`] (TLS, a private CA).
    pub async fn connect_client(
        client: redis::Client,
        prefix: &str,
        store: Arc<dyn Store>,
        limits: HubLimits,
    ) -> BusResult<Self> {
        let conn = connection(client.clone())
            .await
            .map_err(|e| unavailable(&e))?;
        let (alive, stopped) = watch::channel(());
        let bus = Self {
            inner: Arc::new(Inner {
                names: Names {
                    prefix: prefix.to_owned(),
                },
                conn,
                store,
                epoch: AtomicU32::new(0),
                live_buffer: limits.live_buffer.max(1),
                local: Mutex::new(HashMap::new()),
                signals: broadcast::channel(256).0,
                script: redis::Script::new(PUBLISH_LUA),
                _alive: alive,
            }),
        };
        bus.ensure_epoch().await?;
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        tokio::spawn(subscriber(
            Arc::downgrade(&bus.inner),
            bus.inner.names.clone(),
            client,
            stopped,
            ready_tx,
        ));
        ready
            .await
            .map_err(|_| BusError("the Pub/Sub task ended before subscribing".into()))?
            .map_err(|e| unavailable(&e))?;
        Ok(bus)
    }

    /// The epoch in Redis, allocating a new one from the durable store when Redis has none.
    async fn ensure_epoch(&self) -> BusResult<u32> {
        let mut conn = self.inner.conn.clone();
        let epoch_key = self.inner.names.epoch();
        let current: Option<u32> = conn.get(&epoch_key).await.map_err(|e| unavailable(&e))?;
        let epoch = match current {
            Some(epoch) => epoch,
            None => {
                let fresh = self
                    .inner
                    .store
                    .next_epoch()
                    .await
                    .map_err(|e| BusError(format!("allocating an epoch: {e}")))?;
                // Another instance may have set one meanwhile: theirs wins.
                let _: Option<String> = redis::cmd("SET")
                    .arg(&epoch_key)
                    .arg(fresh)
                    .arg("NX")
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| unavailable(&e))?;
                let epoch: u32 = conn.get(&epoch_key).await.map_err(|e| unavailable(&e))?;
                tracing::warn!(epoch, "Redis had no event epoch; a new one began");
                epoch
            }
        };
        self.inner.epoch.store(epoch, Ordering::Relaxed);
        Ok(epoch)
    }

    /// The user's log after `after_n` (`n` of the current epoch), oldest first.
    async fn read_log(&self, user: &UserId, epoch: u32, after_n: u64) -> BusResult<Vec<Entry>> {
        read_log(&self.inner, user, epoch, after_n).await
    }
}

async fn read_log(inner: &Inner, user: &UserId, epoch: u32, after_n: u64) -> BusResult<Vec<Entry>> {
    let reply: redis::streams::StreamRangeReply = inner
        .conn
        .clone()
        .xrange(inner.names.log(user), format!("(0-{after_n}"), "+")
        .await
        .map_err(|e| unavailable(&e))?;
    Ok(reply
        .ids
        .iter()
        .filter_map(|id| {
            let entry = log_entry(epoch, id);
            if entry.is_none() {
                tracing::error!(userId = %user, id = id.id, "unreadable event in the Redis log; skipped");
            }
            entry
        })
        .collect())
}

#[async_trait]
impl EventBus for RedisBus {
    fn epoch(&self) -> u32 {
        self.inner.epoch.load(Ordering::Relaxed)
    }

    async fn ping(&self) -> BusResult<()> {
        let mut conn = self.inner.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(|e| unavailable(&e))
    }

    async fn publish(
        &self,
        user: &UserId,
        event: &StreamEvent,
        dedupe: Option<&str>,
    ) -> BusResult<EventId> {
        let data = event.data();
        let mut conn = self.inner.conn.clone();
        for _ in 0..2 {
            let answer: redis::RedisResult<(u32, u64)> = self
                .inner
                .script
                .key(self.inner.names.epoch())
                .key(self.inner.names.counter(user))
                .key(self.inner.names.log(user))
                .key(self.inner.names.dedupe(user))
                .arg(dedupe.unwrap_or(""))
                .arg(event.name())
                .arg(&data)
                .arg(LOG_LEN)
                .arg(LOG_TTL_S)
                .arg(self.inner.names.channel(user))
                .arg(user.as_str())
                .invoke_async(&mut conn)
                .await;
            match answer {
                Ok((epoch, n)) => return Ok(EventId::new(epoch, n)),
                Err(e) if e.code() == Some("NOEPOCH") => {
                    self.ensure_epoch().await?;
                }
                Err(e) => return Err(unavailable(&e)),
            }
        }
        Err(BusError("Redis lost its epoch twice in a row".into()))
    }

    /// One pipeline of the publish script for every user: one round trip, not one per user.
    async fn publish_many(
        &self,
        users: &[UserId],
        event: &StreamEvent,
        dedupe: Option<&str>,
    ) -> Vec<BusResult<EventId>> {
        let data = event.data();
        let names = &self.inner.names;
        let mut conn = self.inner.conn.clone();
        for attempt in 0..3 {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for user in users {
                pipe.cmd("EVALSHA")
                    .arg(self.inner.script.get_hash())
                    .arg(4)
                    .arg(names.epoch())
                    .arg(names.counter(user))
                    .arg(names.log(user))
                    .arg(names.dedupe(user))
                    .arg(dedupe.unwrap_or(""))
                    .arg(event.name())
                    .arg(&data)
                    .arg(LOG_LEN)
                    .arg(LOG_TTL_S)
                    .arg(names.channel(user))
                    .arg(user.as_str());
            }
            let answers: Vec<redis::Value> = match pipe.query_async(&mut conn).await {
                Ok(answers) => answers,
                Err(e) => return users.iter().map(|_| Err(unavailable(&e))).collect(),
            };
            let code = |v: &redis::Value| match v {
                redis::Value::ServerError(e) => Some(e.code().to_owned()),
                _ => None,
            };
            let missing_script = answers
                .iter()
                .any(|v| code(v).as_deref() == Some("NOSCRIPT"));
            let missing_epoch = answers
                .iter()
                .any(|v| code(v).as_deref() == Some("NOEPOCH"));
            if (missing_script || missing_epoch) && attempt < 2 {
                // Redis restarted: the script and the epoch are gone for every call alike, and
                // none of them ran. Load, allocate, and send the batch again.
                if missing_script {
                    let loaded: redis::RedisResult<String> = redis::cmd("SCRIPT")
                        .arg("LOAD")
                        .arg(PUBLISH_LUA)
                        .query_async(&mut conn)
                        .await;
                    if let Err(e) = loaded {
                        return users.iter().map(|_| Err(unavailable(&e))).collect();
                    }
                }
                if missing_epoch && let Err(e) = self.ensure_epoch().await {
                    return users.iter().map(|_| Err(BusError(e.0.clone()))).collect();
                }
                continue;
            }
            return answers
                .into_iter()
                .map(|v| match redis::from_redis_value::<(u32, u64)>(v) {
                    Ok((epoch, n)) => Ok(EventId::new(epoch, n)),
                    Err(e) => Err(BusError(e.to_string())),
                })
                .collect();
        }
        users
            .iter()
            .map(|_| Err(BusError("Redis lost its script or epoch again".into())))
            .collect()
    }

    async fn notify(&self, user: &UserId, event: &StreamEvent) {
        let payload = format!(
            "{user}{SEP}0{SEP}0{SEP}l{SEP}{}{SEP}{}",
            event.name(),
            event.data()
        );
        let sent: redis::RedisResult<i64> = self
            .inner
            .conn
            .clone()
            .publish(self.inner.names.channel(user), payload)
            .await;
        if let Err(e) = sent {
            tracing::warn!(userId = %user, error = %e, "live-only event not sent");
        }
    }

    async fn subscribe(&self, user: &UserId, after: Option<EventId>) -> BusResult<Subscription> {
        // Live first: whatever is published from here on reaches this receiver, so reading the
        // log afterwards leaves no hole between the two.
        let receiver = {
            let mut local = self.inner.local.lock().unwrap_or_else(|p| p.into_inner());
            local
                .entry(user.clone())
                .or_insert_with(|| LocalUser {
                    live: broadcast::channel(self.inner.live_buffer).0,
                    delivered: EventId(0),
                })
                .live
                .subscribe()
        };
        let guard = LocalGuard {
            inner: Arc::downgrade(&self.inner),
            user: user.clone(),
        };
        let mut conn = self.inner.conn.clone();
        let (epoch, n): (Option<u32>, Option<u64>) = redis::pipe()
            .atomic()
            .get(self.inner.names.epoch())
            .get(self.inner.names.counter(user))
            .query_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        let epoch = match epoch {
            Some(epoch) => {
                self.inner.epoch.store(epoch, Ordering::Relaxed);
                epoch
            }
            None => self.ensure_epoch().await?,
        };
        let n = n.unwrap_or(0);
        let latest = EventId::new(epoch, n);
        let resume = match after {
            None => Resume::Replay(Vec::new()),
            Some(id) if let Some(reason) = super::unresumable(id, epoch, n) => {
                Resume::Reset(reason)
            }
            Some(id) if id.n() == n => Resume::Replay(Vec::new()),
            Some(id) => {
                let entries = self.read_log(user, epoch, id.n()).await?;
                if entries.first().is_none_or(|e| e.id.n() != id.n() + 1) {
                    Resume::Reset(ResetReason::TooOld)
                } else {
                    Resume::Replay(entries)
                }
            }
        };
        let newest = match &resume {
            Resume::Replay(entries) => entries.last().map_or(latest, |e| e.id.max(latest)),
            Resume::Reset(_) => latest,
        };
        if let Some(local) = self
            .inner
            .local
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(user)
        {
            local.delivered = local.delivered.max(newest);
        }
        Ok(Subscription {
            latest,
            resume,
            live: live_stream(receiver, guard),
        })
    }

    async fn signal(&self, signal: Signal) -> BusResult<()> {
        let payload = match &signal {
            Signal::SignedOut(session) => format!("o{SEP}{session}"),
            Signal::DropStreams => "d".to_owned(),
            Signal::CancelTask(task) => format!("c{SEP}{task}"),
            Signal::CloseStream(user, member) => format!("x{SEP}{user}{SEP}{member}"),
        };
        let _: i64 = self
            .inner
            .conn
            .clone()
            .publish(self.inner.names.signals(), payload)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(())
    }

    fn signals(&self) -> broadcast::Receiver<Signal> {
        self.inner.signals.subscribe()
    }

    /// Nothing is held here: the log lives in Redis, trimmed and expired there.
    fn sweep(&self) -> usize {
        0
    }

    fn held(&self) -> (usize, usize) {
        (0, 0)
    }
}

/// One Pub/Sub payload of an event channel.
struct Published {
    user: UserId,
    entry: Entry,
}

fn parse_published(payload: &str) -> Option<Published> {
    let mut fields = payload.splitn(6, SEP);
    let user = UserId(fields.next()?.to_owned());
    let epoch: u32 = fields.next()?.parse().ok()?;
    let n: u64 = fields.next()?.parse().ok()?;
    let live_only = fields.next()? == "l";
    let name = Entry::known_name(fields.next()?)?;
    let data = fields.next()?;
    Some(Published {
        user,
        entry: Entry::from_parts(EventId::new(epoch, n), name, data, live_only),
    })
}

/// Subscribes to every channel on one connection and fans what arrives out to this
/// instance's streams; reconnects (repairing the open streams' gaps) until the bus is dropped.
async fn subscriber(
    inner: Weak<Inner>,
    names: Names,
    client: redis::Client,
    mut stopped: watch::Receiver<()>,
    ready: tokio::sync::oneshot::Sender<redis::RedisResult<()>>,
) {
    let mut ready = Some(ready);
    let mut backoff = Duration::from_millis(100);
    loop {
        let connected = async {
            let mut pubsub = client.get_async_pubsub().await?;
            for p in 0..PARTITIONS {
                pubsub.subscribe(names.partition(p)).await?;
            }
            pubsub.subscribe(names.signals()).await?;
            Ok::<_, redis::RedisError>(pubsub)
        }
        .await;
        let pubsub = match connected {
            Ok(pubsub) => pubsub,
            Err(e) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(e));
                    return;
                }
                tracing::warn!(error = %e, "Redis Pub/Sub unreachable; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stopped.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        match ready.take() {
            Some(ready) => {
                let _ = ready.send(Ok(()));
            }
            None => {
                tracing::info!("Redis Pub/Sub reconnected; repairing the open streams");
                let Some(inner) = inner.upgrade() else { return };
                repair_all(&inner).await;
            }
        }
        let mut messages = pubsub.into_on_message();
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                _ = stopped.changed() => return,
            };
            let Some(message) = message else { break };
            let Some(inner) = inner.upgrade() else { return };
            let Ok(payload) = std::str::from_utf8(message.get_payload_bytes()) else {
                continue;
            };
            if message.get_channel_name() == names.signals() {
                let signal = match payload.split_once(SEP) {
                    Some(("o", session)) => Signal::SignedOut(session.to_owned()),
                    Some(("c", task)) => Signal::CancelTask(TaskId(task.to_owned())),
                    Some(("x", rest)) => match rest.split_once(SEP) {
                        Some((user, member)) => {
                            Signal::CloseStream(UserId(user.to_owned()), member.to_owned())
                        }
                        None => continue,
                    },
                    _ if payload == "d" => Signal::DropStreams,
                    _ => continue,
                };
                let _ = inner.signals.send(signal);
                continue;
            }
            match parse_published(payload) {
                Some(published) => deliver(&inner, published).await,
                None => tracing::error!(payload, "unreadable event on Redis Pub/Sub; skipped"),
            }
        }
        tracing::warn!("Redis Pub/Sub connection lost; reconnecting");
    }
}

/// Sends a published event to the user's streams here, first reading any gap before it.
async fn deliver(inner: &Inner, published: Published) {
    let Published { user, entry } = published;
    let delivered = {
        let mut local = inner.local.lock().unwrap_or_else(|p| p.into_inner());
        let Some(streams) = local.get(&user) else {
            return;
        };
        if entry.live_only {
            let _ = streams.live.send(entry.with_id(streams.delivered));
            return;
        }
        if streams.delivered.0 != 0 && entry.id.epoch() != streams.delivered.epoch() {
            // Redis lost its data: what came between is gone. Closing the user's streams here
            // makes their clients resume, get `reset` and refetch.
            local.remove(&user);
            return;
        }
        streams.delivered
    };
    let mut gap = Vec::new();
    if delivered.0 != 0 && entry.id.n() > delivered.n() + 1 {
        match read_log(inner, &user, entry.id.epoch(), delivered.n()).await {
            Ok(entries) => gap = entries.into_iter().filter(|e| e.id < entry.id).collect(),
            Err(e) => tracing::warn!(userId = %user, error = %e, "could not read a gap"),
        }
    }
    let mut local = inner.local.lock().unwrap_or_else(|p| p.into_inner());
    let Some(streams) = local.get_mut(&user) else {
        return;
    };
    for e in gap.into_iter().chain(std::iter::once(entry)) {
        streams.delivered = streams.delivered.max(e.id);
        if streams.live.send(e).is_err() {
            local.remove(&user);
            return;
        }
    }
}

/// After the Pub/Sub connection was lost: every user with streams here gets what they
/// missed from the log, or, when the log can't tell (a new epoch), their streams end.
async fn repair_all(inner: &Inner) {
    let users: Vec<(UserId, EventId)> = inner
        .local
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(u, l)| (u.clone(), l.delivered))
        .collect();
    let mut conn = inner.conn.clone();
    let epoch: Option<u32> = conn.get(inner.names.epoch()).await.ok().flatten();
    for (user, delivered) in users {
        let entries = match epoch {
            Some(epoch) if epoch == delivered.epoch() => {
                read_log(inner, &user, epoch, delivered.n()).await.ok()
            }
            _ => None,
        };
        let mut local = inner.local.lock().unwrap_or_else(|p| p.into_inner());
        match entries {
            Some(entries) => {
                if let Some(streams) = local.get_mut(&user) {
                    for e in entries {
                        streams.delivered = streams.delivered.max(e.id);
                        let _ = streams.live.send(e);
                    }
                }
            }
            None => {
                local.remove(&user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_round_trips_and_garbage_is_refused() {
        let payload =
            format!("u-farmer{SEP}3{SEP}17{SEP}e{SEP}message.created{SEP}{{\"a\":\"x\u{1e}y\"}}");
        let p = parse_published(&payload).unwrap();
        assert_eq!(p.user.as_str(), "u-farmer");
        assert_eq!(p.entry.id, EventId::new(3, 17));
        assert_eq!(p.entry.name, "message.created");
        assert!(!p.entry.live_only);
        assert!(parse_published("u{SEP}x").is_none());
        let unknown = format!("u{SEP}1{SEP}1{SEP}e{SEP}no.such.event{SEP}{{}}");
        assert!(
            parse_published(&unknown).is_none(),
            "unknown names fail loudly"
        );
    }

    #[test]
    fn users_spread_over_the_partitions() {
        let names = Names {
            prefix: "fc".into(),
        };
        let used: std::collections::HashSet<String> = (0..200)
            .map(|i| names.channel(&UserId(format!("u-{i}"))))
            .collect();
        assert_eq!(used.len(), PARTITIONS as usize);
        assert_eq!(
            names.channel(&UserId("u-a".into())),
            names.channel(&UserId("u-a".into()))
        );
    }
}
