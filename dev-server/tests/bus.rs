//! The event bus conformance suite: one set of cases, run against the in-process [`Hub`] and
//! the [`RedisBus`] (a throwaway Redis under `target/`, each case under its own key prefix).
//! "Instances" are several bus handles on one Redis; the in-process bus has only one.
//! Then the Redis-only cases: Redis restarted empty, and the Pub/Sub connection cut.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

use std::{sync::Arc, time::Duration};

use farm_chat_dev_server::{
    bus::{Entry, EventBus, Hub, HubLimits, Live, RedisBus, Resume, Signal, Subscription},
    store::SqliteStore,
};
use farm_chat_protocol::{
    EventId, StreamEvent, UserId,
    stream::{MessageCreated, ResetReason, Typing},
};
use farm_chat_testenv::{Certs, Redis};
use futures_util::StreamExt;

/// The limits both engines keep to: about a thousand events per user, and a live feed long
/// enough that these tests, which read it only after a burst, never lag (a stream that lags
/// catches up from the backlog: `tests/stream.rs`).
fn limits() -> HubLimits {
    HubLimits {
        backlog_min_events: 1000,
        backlog_hard_cap: 1000,
        live_buffer: 1024,
        ..HubLimits::default()
    }
}

enum Fixture {
    Memory(Arc<Hub>),
    Redis {
        url: String,
        prefix: String,
        ca: Option<std::path::PathBuf>,
    },
}

/// One TLS Redis per test binary, like ElastiCache with in-transit encryption and an RBAC
/// user.
fn tls_redis() -> &'static (Certs, Redis) {
    static SERVER: std::sync::OnceLock<(Certs, Redis)> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| {
        let certs = Certs::make("redis", &["localhost"]).expect("openssl makes the test CA");
        let server =
            Redis::start_tls(&certs, "farm-chat", "s3cret-pass").expect("a throwaway TLS Redis");
        (certs, server)
    })
}

impl Fixture {
    fn memory() -> Self {
        Self::Memory(Arc::new(Hub::new(1, limits())))
    }

    fn redis() -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self::Redis {
            url: Redis::shared().expect("a throwaway Redis").url(0),
            prefix: format!("t{}-{n}", std::process::id()),
            ca: None,
        }
    }

    fn redis_tls() -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (certs, server) = tls_redis();
        Self::Redis {
            url: server.tls_url(0).unwrap(),
            prefix: format!("s{}-{n}", std::process::id()),
            ca: Some(certs.ca.clone()),
        }
    }

    /// A handle: another instance on Redis, the same bus in-process.
    async fn open(&self) -> Arc<dyn EventBus> {
        match self {
            Self::Memory(hub) => hub.clone(),
            Self::Redis { url, prefix, ca } => Arc::new(
                RedisBus::connect_client(
                    farm_chat_dev_server::bus::redis::client(url, ca.as_deref()).unwrap(),
                    prefix,
                    Arc::new(SqliteStore::in_memory().unwrap()),
                    limits(),
                )
                .await
                .unwrap(),
            ),
        }
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Fixture::memory()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Fixture::redis()).await;
                }
            )*
        }
        mod redis_tls {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Fixture::redis_tls()).await;
                }
            )*
        }
    };
}

conformance!(
    ids_grow_per_user_and_a_resume_replays_exactly_the_gap,
    a_stream_gets_what_another_instance_publishes_after_it_subscribed,
    a_dedupe_key_publishes_once,
    a_live_only_event_reaches_open_streams_and_is_never_replayed,
    ids_the_log_cannot_account_for_reset,
    a_resume_beyond_the_log_resets_too_old,
    signals_reach_every_instance,
    instances_publishing_at_once_never_share_an_id,
    nothing_falls_between_the_replay_and_the_live_feed,
    a_batch_publish_gives_each_user_their_next_id_and_dedupes,
);

async fn a_batch_publish_gives_each_user_their_next_id_and_dedupes(fx: Fixture) {
    let (a, b) = (fx.open().await, fx.open().await);
    let users: Vec<UserId> = (0..50).map(|i| user(&format!("u-batch-{i}"))).collect();
    let first = b.publish(&users[7], &created(0), None).await.unwrap();
    let mut sub = a.subscribe(&users[7], None).await.unwrap();
    let ids: Vec<EventId> = b
        .publish_many(&users, &created(1), Some("m:batch"))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ids.len(), 50);
    assert_eq!(ids[7].n(), first.n() + 1, "after that user's own last id");
    assert!(ids.iter().enumerate().all(|(i, id)| i == 7 || id.n() == 1));
    assert_eq!(next(&mut sub).await.map(|e| e.id), Some(ids[7]));
    let again: Vec<EventId> = b
        .publish_many(&users, &created(1), Some("m:batch"))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(again, ids, "a republished batch is the same events");
}

fn user(name: &str) -> UserId {
    UserId(name.into())
}

fn created(seq: u64) -> StreamEvent {
    StreamEvent::MessageCreated(MessageCreated {
        conversation_id: "c-1".into(),
        message_id: format!("m-{seq}").as_str().into(),
        seq,
    })
}

fn replayed(sub: &Subscription) -> Vec<u64> {
    match &sub.resume {
        Resume::Replay(entries) => entries.iter().map(|e| e.id.n()).collect(),
        Resume::Reset(r) => panic!("reset {r:?}"),
    }
}

fn reset(sub: &Subscription) -> Option<ResetReason> {
    match sub.resume {
        Resume::Reset(r) => Some(r),
        Resume::Replay(_) => None,
    }
}

/// The next live event after what the subscription started at (the live feed may repeat
/// those; a stream skips them too), waiting at most 5 s.
async fn next(sub: &mut Subscription) -> Option<Entry> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), sub.live.next()).await {
            Ok(Some(Live::Event(entry))) if !entry.live_only && entry.id <= sub.latest => {}
            Ok(Some(Live::Event(entry))) => return Some(entry),
            Ok(Some(Live::Lagged(n))) => panic!("lagged by {n}"),
            Ok(None) | Err(_) => return None,
        }
    }
}

async fn ids_grow_per_user_and_a_resume_replays_exactly_the_gap(fx: Fixture) {
    let bus = fx.open().await;
    let (a, b) = (user("u-a"), user("u-b"));
    let mut ids = Vec::new();
    for i in 1..=5 {
        ids.push(bus.publish(&a, &created(i), None).await.unwrap());
    }
    let other = bus.publish(&b, &created(1), None).await.unwrap();
    assert!(ids.windows(2).all(|w| w[1].n() == w[0].n() + 1), "{ids:?}");
    assert_eq!(other.n(), 1, "each user counts on their own");
    let sub = bus.subscribe(&a, Some(ids[1])).await.unwrap();
    assert_eq!(replayed(&sub), [ids[2].n(), ids[3].n(), ids[4].n()]);
    assert_eq!(sub.latest, ids[4]);
    let caught_up = bus.subscribe(&a, Some(ids[4])).await.unwrap();
    assert_eq!(replayed(&caught_up), Vec::<u64>::new());
    let fresh = bus.subscribe(&a, None).await.unwrap();
    assert_eq!(replayed(&fresh), Vec::<u64>::new());
    assert_eq!(fresh.latest, ids[4]);
}

async fn a_stream_gets_what_another_instance_publishes_after_it_subscribed(fx: Fixture) {
    let (here, there) = (fx.open().await, fx.open().await);
    let u = user("u-live");
    there.publish(&u, &created(1), None).await.unwrap();
    let mut sub = here.subscribe(&u, None).await.unwrap();
    let second = there.publish(&u, &created(2), None).await.unwrap();
    let got = next(&mut sub).await.expect("delivered");
    assert_eq!(got.id, second);
    assert_eq!(got.name, "message.created");
    assert_eq!(got.data(), created(2).data());
    assert!(!got.live_only);
}

async fn a_dedupe_key_publishes_once(fx: Fixture) {
    let (a, b) = (fx.open().await, fx.open().await);
    let u = user("u-dd");
    let mut sub = a.subscribe(&u, None).await.unwrap();
    let first = a.publish(&u, &created(1), Some("m:1")).await.unwrap();
    let again = b.publish(&u, &created(1), Some("m:1")).await.unwrap();
    assert_eq!(again, first, "a republish is the same event");
    let next_one = b.publish(&u, &created(2), Some("m:2")).await.unwrap();
    assert_eq!(next_one.n(), first.n() + 1);
    assert_eq!(next(&mut sub).await.map(|e| e.id), Some(first));
    assert_eq!(
        next(&mut sub).await.map(|e| e.id),
        Some(next_one),
        "and it was delivered once"
    );
}

async fn a_live_only_event_reaches_open_streams_and_is_never_replayed(fx: Fixture) {
    let (a, b) = (fx.open().await, fx.open().await);
    let u = user("u-typing");
    let before = a.publish(&u, &created(1), None).await.unwrap();
    let mut sub = a.subscribe(&u, None).await.unwrap();
    let typing = StreamEvent::Typing(Typing {
        conversation_id: "c-1".into(),
        user_id: user("u-other"),
        display_name: "佐藤".into(),
    });
    b.notify(&u, &typing).await;
    let live = next(&mut sub).await.expect("delivered");
    assert!(live.live_only);
    assert_eq!(live.name, "typing");
    let after = b.publish(&u, &created(2), None).await.unwrap();
    assert_eq!(after.n(), before.n() + 1, "it took no id");
    assert_eq!(next(&mut sub).await.map(|e| e.id), Some(after));
    let resumed = a.subscribe(&u, Some(before)).await.unwrap();
    assert_eq!(replayed(&resumed), [after.n()]);
}

async fn ids_the_log_cannot_account_for_reset(fx: Fixture) {
    let bus = fx.open().await;
    let u = user("u-reset");
    let id = bus.publish(&u, &created(1), None).await.unwrap();
    let at = |epoch: u32, n: u64| EventId::new(epoch, n);
    let sub = bus.subscribe(&u, Some(at(id.epoch(), 2))).await.unwrap();
    assert_eq!(
        reset(&sub),
        Some(ResetReason::Unknown),
        "an id not given yet"
    );
    let sub = bus
        .subscribe(&u, Some(at(id.epoch() + 1, 1)))
        .await
        .unwrap();
    assert_eq!(reset(&sub), Some(ResetReason::Unknown), "a future epoch");
    if id.epoch() > 0 {
        let sub = bus
            .subscribe(&u, Some(at(id.epoch() - 1, 9)))
            .await
            .unwrap();
        assert_eq!(reset(&sub), Some(ResetReason::Restarted), "an older epoch");
    }
    let sub = bus.subscribe(&u, Some(id)).await.unwrap();
    assert_eq!(reset(&sub), None);
}

async fn a_resume_beyond_the_log_resets_too_old(fx: Fixture) {
    let bus = fx.open().await;
    let u = user("u-old");
    let first = bus.publish(&u, &created(0), None).await.unwrap();
    let mut last = first;
    for i in 1..=1500 {
        last = bus.publish(&u, &created(i), None).await.unwrap();
    }
    let sub = bus.subscribe(&u, Some(first)).await.unwrap();
    assert_eq!(reset(&sub), Some(ResetReason::TooOld));
    let recent = EventId::new(last.epoch(), last.n() - 10);
    let sub = bus.subscribe(&u, Some(recent)).await.unwrap();
    assert_eq!(
        replayed(&sub),
        ((last.n() - 9)..=last.n()).collect::<Vec<_>>()
    );
}

async fn signals_reach_every_instance(fx: Fixture) {
    let (a, b) = (fx.open().await, fx.open().await);
    let mut on_a = a.signals();
    let mut on_b = b.signals();
    b.signal(Signal::SignedOut("s-1".into())).await.unwrap();
    a.signal(Signal::DropStreams).await.unwrap();
    for signals in [&mut on_a, &mut on_b] {
        let mut got = Vec::new();
        while got.len() < 2 {
            got.push(
                tokio::time::timeout(Duration::from_secs(5), signals.recv())
                    .await
                    .expect("in time")
                    .unwrap(),
            );
        }
        got.sort_by_key(|s| format!("{s:?}"));
        assert_eq!(got, [Signal::DropStreams, Signal::SignedOut("s-1".into())]);
    }
}

async fn instances_publishing_at_once_never_share_an_id(fx: Fixture) {
    let (a, b) = (fx.open().await, fx.open().await);
    let u = user("u-race");
    let mut publishes = Vec::new();
    for i in 0..60 {
        let (bus, u) = (if i % 2 == 0 { a.clone() } else { b.clone() }, u.clone());
        publishes.push(tokio::spawn(async move {
            bus.publish(&u, &created(i), None).await.unwrap()
        }));
    }
    let mut ns = Vec::new();
    for p in publishes {
        ns.push(p.await.unwrap().n());
    }
    ns.sort_unstable();
    assert_eq!(ns, (1..=60).collect::<Vec<_>>());
}

async fn nothing_falls_between_the_replay_and_the_live_feed(fx: Fixture) {
    let (a, b) = (fx.open().await, fx.open().await);
    let u = user("u-gapless");
    let start = b.publish(&u, &created(0), None).await.unwrap();
    // Keep publishing from another instance while a stream resumes.
    let publisher = {
        let (b, u) = (b.clone(), u.clone());
        tokio::spawn(async move {
            let mut last = start;
            for i in 1..=200 {
                last = b.publish(&u, &created(i), None).await.unwrap();
            }
            last
        })
    };
    tokio::time::sleep(Duration::from_millis(2)).await;
    let mut sub = a.subscribe(&u, Some(start)).await.unwrap();
    let mut seen = replayed(&sub);
    let last = publisher.await.unwrap();
    while seen.last().copied().unwrap_or(start.n()) < last.n() {
        let entry = next(&mut sub).await.expect("the live feed goes on");
        // The stream skips what it already sent; so does this.
        if entry.id.n() > seen.last().copied().unwrap_or(start.n()) {
            seen.push(entry.id.n());
        }
    }
    assert_eq!(seen, ((start.n() + 1)..=last.n()).collect::<Vec<_>>());
}

/// Redis restarted with its data gone: ids move to a new, higher epoch; a client resuming
/// with an old id gets `reset` (restarted); streams open across the restart end, so their
/// clients resume and refetch instead of silently skipping what was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_moves_to_a_new_epoch_and_resets() {
    let redis = Redis::start().expect("a throwaway Redis");
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let bus = RedisBus::connect(&redis.url(0), "fc", store, limits())
        .await
        .unwrap();
    let u = user("u-restart");
    let old = bus.publish(&u, &created(1), None).await.unwrap();
    let mut open = bus.subscribe(&u, Some(old)).await.unwrap();
    redis.restart_empty().unwrap();
    // The open stream ends once the bus sees the new epoch (repair after Pub/Sub reconnects).
    let mut published = None;
    for _ in 0..100 {
        if let Ok(id) = bus.publish(&u, &created(2), None).await {
            published = Some(id);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let new = published.expect("publishing works again");
    // A batch after the scripts were flushed loads its script again and stays in the epoch.
    let client = ::redis::Client::open(redis.url(0).as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = ::redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    let batch = bus
        .publish_many(&[u.clone(), user("u-other")], &created(3), None)
        .await;
    assert!(
        batch
            .iter()
            .all(|r| r.as_ref().is_ok_and(|id| id.epoch() == new.epoch())),
        "{batch:?}"
    );
    assert!(new.epoch() > old.epoch(), "{new:?} after {old:?}");
    assert!(new > old, "ids only grow");
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match open.live.next().await {
                None => return true,
                Some(Live::Event(e)) if e.id.epoch() == old.epoch() => continue,
                Some(_) => return false,
            }
        }
    })
    .await
    .expect("the open stream ends");
    assert!(ended, "no event of the new epoch reached the old stream");
    let resumed = bus.subscribe(&u, Some(old)).await.unwrap();
    assert_eq!(reset(&resumed), Some(ResetReason::Restarted));
}

/// The instance's Pub/Sub connection is cut while events are published: when it comes back,
/// the open stream gets every missed event, in order (skipping what it already has, as a
/// stream does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_pubsub_connection_is_repaired_from_the_log() {
    // Its own Redis: cutting every Pub/Sub connection must not disturb the other tests.
    let redis = Redis::start().expect("a throwaway Redis");
    let fx = Fixture::Redis {
        url: redis.url(0),
        prefix: "fc".into(),
        ca: None,
    };
    let url = redis.url(0);
    let (here, there) = (fx.open().await, fx.open().await);
    let u = user("u-cut");
    let first = there.publish(&u, &created(0), None).await.unwrap();
    let mut sub = here.subscribe(&u, Some(first)).await.unwrap();
    let client = ::redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: ::redis::Value = ::redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut last = first;
    for i in 1..=20 {
        last = there.publish(&u, &created(i), None).await.unwrap();
    }
    let mut seen = Vec::new();
    while seen.last().copied().unwrap_or(first.n()) < last.n() {
        let entry = next(&mut sub).await.expect("repaired");
        if entry.id.n() > seen.last().copied().unwrap_or(first.n()) {
            seen.push(entry.id.n());
        }
    }
    assert_eq!(seen, ((first.n() + 1)..=last.n()).collect::<Vec<_>>());
}

/// Over TLS, a wrong password and a missing CA are each a clear start-up error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls_refuses_a_wrong_password_and_an_unknown_ca_clearly() {
    let (certs, server) = tls_redis();
    let url = server.tls_url(0).unwrap();
    let open = |url: String, ca: Option<std::path::PathBuf>| async move {
        let client = farm_chat_dev_server::bus::redis::client(&url, ca.as_deref())?;
        RedisBus::connect_client(
            client,
            "wrong",
            Arc::new(SqliteStore::in_memory().unwrap()),
            limits(),
        )
        .await
    };
    let wrong = open(url.replace("s3cret-pass", "nope"), Some(certs.ca.clone()))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        wrong.contains("refused the user name or password"),
        "{wrong}"
    );
    assert!(
        !wrong.contains("nope"),
        "no password in the message: {wrong}"
    );
    // The public roots do not know the test CA.
    let unknown = open(url.clone(), None).await.err().unwrap().to_string();
    assert!(!unknown.is_empty());
    // And a CA file needs a TLS URL.
    let plain = open(Redis::shared().unwrap().url(0), Some(certs.ca.clone()))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(plain.contains("needs a rediss:// URL"), "{plain}");
    // The right CA and password work.
    let bus = open(url, Some(certs.ca.clone())).await.unwrap();
    bus.ping().await.unwrap();
}
