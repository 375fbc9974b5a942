//! Three instances of the server on one PostgreSQL and one Redis (throwaway, under
//! `target/`), in one test process, each on its own port: what one instance does, the others
//! see. A stream on A receives a send made on B; a client resumes on C with its last id and
//! gets exactly the gap; tickets, sign-out, cancel and rate limits hold across instances.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

mod common;

use farm_chat_protocol::paths;
use std::time::Duration;

use common::{Sse, TestApp, TestServer, bearer, call, call_as, login, send};
use farm_chat_dev_server::AppState;
use farm_chat_testenv::{Postgres, Redis};

const SUPPORT: &str = "c-u-farmer-support";
const ASSISTANT: &str = "c-u-farmer-assistant";

/// `n` instances sharing a fresh database and a fresh Redis key prefix.
async fn cluster(n: usize, tune: impl Fn(&mut AppState)) -> Vec<TestServer> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let k = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let database_url = Postgres::shared()
        .expect("a throwaway PostgreSQL")
        .fresh_database("cluster")
        .unwrap();
    let mut servers = Vec::new();
    for _ in 0..n {
        let mut state = TestApp::new()
            .database_url(database_url.clone())
            .redis(&format!("cl{}-{k}", std::process::id()))
            .state()
            .await;
        tune(&mut state);
        servers.push(TestServer::start(state).await);
    }
    servers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_on_one_instance_reaches_a_stream_on_another_and_a_resume_on_a_third() {
    let s = cluster(3, |_| {}).await;
    let (a, b, c) = (s[0].addr, s[1].addr, s[2].addr);
    let farmer = login(b, "u-farmer").await;
    let support = login(a, "u-support").await;

    let mut on_a = Sse::open_as(a, &support, "").await;
    assert_eq!(on_a.next().await.unwrap().event, "ready");
    let sent = send(b, &farmer, SUPPORT, "B から送信", "k-1").await;
    assert_eq!(sent.status, 201, "{}", sent.body);
    let event = on_a.next_non_ping().await.expect("announced on A");
    assert_eq!(event.event, "message.created");
    assert_eq!(event.json()["seq"], 1);
    let last = event.id.clone().unwrap();
    drop(on_a);

    // While support is away, three more arrive through two instances.
    for (i, at) in [(2, a), (3, c), (4, b)] {
        let sent = send(
            at,
            &farmer,
            SUPPORT,
            &format!("{i} 通目"),
            &format!("k-{i}"),
        )
        .await;
        assert_eq!(sent.status, 201, "{}", sent.body);
    }
    let mut on_c = Sse::open(
        c,
        paths::api::STREAM,
        &[
            ("Authorization", &bearer(&support)),
            ("Last-Event-ID", &last),
        ],
    )
    .await;
    assert_eq!(on_c.next().await.unwrap().event, "ready");
    let mut seqs = Vec::new();
    for _ in 0..3 {
        let event = on_c.next_non_ping().await.expect("the gap is replayed");
        assert_eq!(event.event, "message.created");
        seqs.push(event.json()["seq"].as_u64().unwrap());
    }
    assert_eq!(seqs, [2, 3, 4], "exactly the gap, in order");
    // And then live, with nothing repeated.
    let sent = send(a, &farmer, SUPPORT, "5 通目", "k-5").await;
    assert_eq!(sent.status, 201);
    let event = on_c.next_non_ping().await.unwrap();
    assert_eq!(event.json()["seq"], 5);

    // History is one: every instance reads the same database.
    let history = call_as(
        b,
        "GET",
        &format!("/api/chat/history?conversationId={SUPPORT}"),
        &support,
    )
    .await;
    assert_eq!(history.json()["messages"].as_array().unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_on_another_instance_stores_and_announces_once() {
    let s = cluster(2, |_| {}).await;
    let (a, b) = (s[0].addr, s[1].addr);
    let farmer = login(a, "u-farmer").await;
    let support = login(b, "u-support").await;
    let mut theirs = Sse::open_as(b, &support, "").await;
    assert_eq!(theirs.next().await.unwrap().event, "ready");
    let first = send(a, &farmer, SUPPORT, "一度だけ", "same-key").await;
    let again = send(b, &farmer, SUPPORT, "一度だけ", "same-key").await;
    assert_eq!(first.status, 201);
    assert_eq!(again.status, 200, "the retry answers the stored message");
    assert_eq!(first.json()["messageId"], again.json()["messageId"]);
    let event = theirs.next_non_ping().await.unwrap();
    assert_eq!(event.json()["seq"], 1);
    // Nothing more within half a second (a ping would be every 15 s).
    let next = tokio::time::timeout(Duration::from_millis(500), theirs.next()).await;
    assert!(next.is_err(), "announced once: {next:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_from_one_instance_opens_a_stream_on_another_once() {
    let s = cluster(2, |_| {}).await;
    let (a, b) = (s[0].addr, s[1].addr);
    let farmer = login(a, "u-farmer").await;
    let ticket = call_as(a, "POST", paths::api::STREAM_TICKET, &farmer).await;
    assert_eq!(ticket.status, 200, "{}", ticket.body);
    let ticket = ticket.json()["ticket"].as_str().unwrap().to_owned();
    let mut on_b = Sse::open(b, &format!("/api/chat/stream?ticket={ticket}"), &[]).await;
    assert_eq!(on_b.status, 200);
    assert_eq!(on_b.next().await.unwrap().event, "ready");
    let reused = Sse::open(a, &format!("/api/chat/stream?ticket={ticket}"), &[]).await;
    assert_eq!(reused.status, 401, "single use, on every instance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_on_one_instance_closes_the_sessions_streams_on_every_instance() {
    let s = cluster(2, |_| {}).await;
    let (a, b) = (s[0].addr, s[1].addr);
    let farmer = login(a, "u-farmer").await;
    let mut on_b = Sse::open_as(b, &farmer, "").await;
    assert_eq!(on_b.next().await.unwrap().event, "ready");
    let out = call(
        a,
        "DELETE",
        paths::api::SESSION,
        &[("Authorization", &bearer(&farmer))],
        None,
    )
    .await;
    assert_eq!(out.status, 204, "{}", out.body);
    let mut ended = false;
    for _ in 0..10 {
        match on_b.next_within(Duration::from_secs(5)).await {
            None => {
                ended = true;
                break;
            }
            Some(e) => assert_eq!(e.event, "ping", "nothing else comes: {e:?}"),
        }
    }
    assert!(ended, "the stream on B closed");
    let refused = Sse::open_as(b, &farmer, "").await;
    assert_eq!(refused.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_on_any_instance_reaches_the_instance_running_the_task() {
    // Slow steps, so the task is still running when the cancel comes.
    let s = cluster(3, |state| {
        state.common.assistant =
            farm_chat_dev_server::assistant::farm::Farm::paced(Duration::from_millis(400))
    })
    .await;
    let (a, b, c) = (s[0].addr, s[1].addr, s[2].addr);
    let farmer = login(a, "u-farmer").await;
    let mut on_c = Sse::open_as(c, &farmer, "").await;
    assert_eq!(on_c.next().await.unwrap().event, "ready");
    let asked = send(
        a,
        &farmer,
        ASSISTANT,
        "発情予定の牛のリストを作って",
        "ask-1",
    )
    .await;
    assert_eq!(asked.status, 201, "{}", asked.body);
    let task = asked.json()["taskId"].as_str().unwrap().to_owned();
    let cancelled = call_as(b, "POST", &format!("/api/tasks/{task}/cancel"), &farmer).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(cancelled.json()["state"], "cancelled");
    let mut done = None;
    while done.is_none() {
        let event = on_c
            .next_non_ping()
            .await
            .expect("the task's events reach C");
        if event.event == "task.done" {
            done = Some(event);
        }
    }
    assert_eq!(done.unwrap().json()["state"], "cancelled");
    let again = call_as(c, "POST", &format!("/api/tasks/{task}/cancel"), &farmer).await;
    assert_eq!(again.status, 409, "{}", again.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_holds_across_instances() {
    let s = cluster(3, |_| {}).await;
    let farmer = login(s[0].addr, "u-farmer").await;
    let body = format!(r#"{{"conversationId":"{SUPPORT}"}}"#);
    // Typing calls: a burst of 20, then 2 a second per user. 45 at once, spread over three
    // instances: each instance alone would let its 15 through; together they may not.
    let mut calls = Vec::new();
    for i in 0..45 {
        let (addr, farmer, body) = (s[i % 3].addr, farmer.clone(), body.clone());
        calls.push(tokio::spawn(async move {
            call(
                addr,
                "POST",
                paths::api::TYPING,
                &[("Authorization", &bearer(&farmer))],
                Some(&body),
            )
            .await
            .status
        }));
    }
    let mut statuses = Vec::new();
    for c in calls {
        statuses.push(c.await.unwrap());
    }
    let passed = statuses.iter().filter(|s| **s == 204).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(passed + limited, 45, "{statuses:?}");
    // The burst, plus what refills while the calls are made (a few seconds at most).
    assert!((20..=30).contains(&passed), "{passed} passed: {statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_committed_but_never_announced_is_announced_once_by_another_instance() {
    let s = cluster(2, |state| {
        state.outbox_after = Duration::from_millis(300);
    })
    .await;
    let (a, b) = (&s[0], &s[1]);
    let support = login(b.addr, "u-support").await;
    let farmer = login(a.addr, "u-farmer").await;
    let mut theirs = Sse::open_as(b.addr, &support, "").await;
    assert_eq!(theirs.next().await.unwrap().event, "ready");
    // The conversations exist once someone used them.
    let first = send(a.addr, &farmer, SUPPORT, "最初", "k-first").await;
    assert_eq!(first.status, 201);
    assert_eq!(theirs.next_non_ping().await.unwrap().json()["seq"], 1);
    // An instance commits a message and dies before it publishes: only the store has it.
    let stored = a
        .state
        .common
        .store
        .append_message(
            &farm_chat_dev_server::store::NewMessage {
                message_id: farm_chat_protocol::MessageId("m-orphan".into()),
                conversation_id: farm_chat_protocol::ConversationId(SUPPORT.into()),
                sender: farm_chat_protocol::chat::Sender {
                    id: farm_chat_protocol::UserId("u-farmer".into()),
                    kind: farm_chat_protocol::chat::SenderKind::User,
                    display_name: "山田 太郎".into(),
                },
                text: "落ちる直前".into(),
                created_at: farm_chat_dev_server::ids::now_rfc3339(),
                task_id: None,
            },
            None,
            None,
        )
        .await
        .unwrap();
    assert!(matches!(
        stored,
        farm_chat_dev_server::store::Appended::Created { .. }
    ));
    let event = theirs
        .next_non_ping()
        .await
        .expect("the outbox announces it");
    assert_eq!(event.event, "message.created");
    assert_eq!(event.json()["messageId"], "m-orphan");
    assert_eq!(event.json()["seq"], 2);
    // Both instances sweep the outbox; the client still hears of it once.
    let next = tokio::time::timeout(Duration::from_secs(1), theirs.next()).await;
    assert!(next.is_err(), "announced once: {next:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_postgres_is_down_sends_answer_503_and_the_retry_stores_once() {
    let postgres = Postgres::start().expect("a throwaway PostgreSQL");
    let s = TestApp::new()
        .database_url(postgres.fresh_database("outage").unwrap())
        .redis(&format!("outage{}", std::process::id()))
        .serve()
        .await;
    let farmer = login(s.addr, "u-farmer").await;
    let first = send(s.addr, &farmer, SUPPORT, "前", "k-before").await;
    assert_eq!(first.status, 201, "{}", first.body);

    postgres.stop().unwrap();
    let down = send(s.addr, &farmer, SUPPORT, "停止中", "k-during").await;
    assert_eq!(down.status, 503, "{}", down.body);
    assert_eq!(down.json()["error"]["code"], "unavailable");
    assert_eq!(down.header("retry-after").as_deref(), Some("2"));
    assert!(
        !down.body.contains("postgres") && !down.body.contains("connection"),
        "no internals in the answer: {}",
        down.body
    );

    postgres.restart().unwrap();
    let mut retried = None;
    for _ in 0..50 {
        let reply = send(s.addr, &farmer, SUPPORT, "停止中", "k-during").await;
        if reply.status != 503 {
            retried = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let retried = retried.expect("the database came back");
    assert_eq!(retried.status, 201, "{}", retried.body);
    let again = send(s.addr, &farmer, SUPPORT, "停止中", "k-during").await;
    assert_eq!(again.status, 200, "a further retry replays");
    let history = call_as(
        s.addr,
        "GET",
        &format!("/api/chat/history?conversationId={SUPPORT}"),
        &farmer,
    )
    .await;
    let json = history.json();
    let texts: Vec<&str> = json["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["前", "停止中"], "stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_instance_closes_its_streams_spread_over_the_window_with_a_retry() {
    let s = TestApp::new()
        .config(|c| c.drain_window = Duration::from_millis(1500))
        .serve()
        .await;
    let addr = s.addr;
    let farmer = login(addr, "u-farmer").await;
    let mut streams = Vec::new();
    for _ in 0..4 {
        let mut sse = Sse::open_as(addr, &farmer, "").await;
        assert_eq!(sse.next().await.unwrap().event, "ready");
        streams.push(sse);
    }
    let stopping = tokio::spawn(s.stop());
    for mut sse in streams {
        let end = sse.next_within(Duration::from_secs(5)).await;
        assert!(end.is_none(), "nothing but the end: {end:?}");
        let retry: u64 = sse
            .last_retry
            .as_deref()
            .expect("a retry: before the end")
            .parse()
            .unwrap();
        assert!((500..=3000).contains(&retry), "{retry} ms");
    }
    stopping.await.unwrap();
    // New connections are refused at once: the balancer sends clients elsewhere.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_unique_across_instances_and_an_incoming_one_is_kept() {
    let s = cluster(2, |_| {}).await;
    let id_of = |reply: &common::Reply| reply.header("x-request-id").unwrap();
    let a1 = id_of(&call(s[0].addr, "GET", paths::api::HEALTH, &[], None).await);
    let a2 = id_of(&call(s[0].addr, "GET", paths::api::HEALTH, &[], None).await);
    let b1 = id_of(&call(s[1].addr, "GET", paths::api::HEALTH, &[], None).await);
    assert_ne!(a1, a2);
    let prefix = |id: &str| id.rsplit_once('-').unwrap().0.to_owned();
    assert_eq!(prefix(&a1), prefix(&a2), "one instance, one prefix");
    assert_ne!(prefix(&a1), prefix(&b1), "each instance its own: {a1} {b1}");
    let kept = call(
        s[1].addr,
        "GET",
        paths::api::HEALTH,
        &[("X-Request-Id", "lb-7f3a9c")],
        None,
    )
    .await;
    assert_eq!(id_of(&kept), "lb-7f3a9c");
    let odd = call(
        s[1].addr,
        "GET",
        paths::api::HEALTH,
        &[("X-Request-Id", "a b\"c")],
        None,
    )
    .await;
    assert_ne!(id_of(&odd), "a b\"c", "an unsafe one is replaced");
    let metrics = common::metrics(s[0].addr).await;
    assert!(
        metrics.body.contains(&format!(
            "farm_chat_instance_info{{instance=\"{}\",bus=\"redis\",store=\"postgres\"}} 1",
            prefix(&a1)
        )),
        "{}",
        metrics.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_sends_are_stored_and_clients_refetch_once_it_is_back() {
    let redis = Redis::start().expect("a throwaway Redis");
    let database_url = Postgres::shared()
        .unwrap()
        .fresh_database("redis_down")
        .unwrap();
    let mut servers = Vec::new();
    for _ in 0..2 {
        let redis_url = redis.url(0);
        let server = TestApp::new()
            .database_url(database_url.clone())
            .config(|c| c.redis_url = Some(redis_url))
            .tune(|s| s.outbox_after = Duration::from_millis(300))
            .serve()
            .await;
        servers.push(server);
    }
    let (a, b) = (servers[0].addr, servers[1].addr);
    let farmer = login(a, "u-farmer").await;
    let support = login(b, "u-support").await;
    let mut theirs = Sse::open_as(b, &support, "").await;
    assert_eq!(theirs.next().await.unwrap().event, "ready");
    assert_eq!(send(a, &farmer, SUPPORT, "前", "k-0").await.status, 201);
    let before = theirs.next_non_ping().await.unwrap();
    assert_eq!(before.json()["seq"], 1);

    redis.kill();
    let during = send(a, &farmer, SUPPORT, "Redis 停止中", "k-1").await;
    assert_eq!(during.status, 201, "stored: {}", during.body);
    let refused = Sse::open_as(b, &support, "").await;
    assert_eq!(refused.status, 503, "no new stream without the bus");
    drop(refused);

    // Redis comes back empty: the open stream ends rather than skip what Redis lost…
    redis.restart_empty().unwrap();
    let mut ended = false;
    for _ in 0..10 {
        match tokio::time::timeout(Duration::from_secs(2), theirs.next()).await {
            Ok(None) => {
                ended = true;
                break;
            }
            Ok(Some(e)) => assert_eq!(e.event, "ping", "{e:?}"),
            Err(_) => {}
        }
    }
    assert!(ended, "the stream from before the outage ended");
    // …and its client's resume gets `reset`, so it refetches and finds the message.
    let last = before.id.unwrap();
    let mut resumed = None;
    for _ in 0..50 {
        let sse = Sse::open(
            b,
            paths::api::STREAM,
            &[
                ("Authorization", &bearer(&support)),
                ("Last-Event-ID", &last),
            ],
        )
        .await;
        if sse.status == 200 {
            resumed = Some(sse);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut resumed = resumed.expect("streams open again");
    assert_eq!(resumed.next().await.unwrap().event, "ready");
    let reset = resumed.next_non_ping().await.unwrap();
    assert_eq!(reset.event, "reset");
    assert_eq!(reset.json()["reason"], "restarted");
    let history = call_as(
        b,
        "GET",
        &format!("/api/chat/history?conversationId={SUPPORT}"),
        &support,
    )
    .await;
    assert_eq!(history.json()["messages"][1]["text"], "Redis 停止中");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_task_reads_the_same_on_every_instance() {
    let s = cluster(2, |state| {
        state.common.assistant =
            farm_chat_dev_server::assistant::farm::Farm::paced(Duration::from_millis(300))
    })
    .await;
    let (a, b) = (s[0].addr, s[1].addr);
    let farmer = login(a, "u-farmer").await;
    let mut on_a = Sse::open_as(a, &farmer, "").await;
    assert_eq!(on_a.next().await.unwrap().event, "ready");
    let asked = send(
        a,
        &farmer,
        ASSISTANT,
        "14番の牛の健康状態を分析して",
        "ask-hot",
    )
    .await;
    assert_eq!(asked.status, 201, "{}", asked.body);
    let task = asked.json()["taskId"].as_str().unwrap().to_owned();
    // After the runner's second part, B (which does not run it) shows at least two parts.
    let mut parts = 0;
    while parts < 2 {
        let event = on_a.next_non_ping().await.unwrap();
        if event.event.starts_with("task.") && event.event != "task.done" {
            parts += 1;
        }
    }
    let seen = call_as(b, "GET", &format!("/api/tasks/{task}"), &farmer).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert!(
        seen.json()["parts"].as_array().unwrap().len() >= 2,
        "{}",
        seen.body
    );
    let history = call_as(
        b,
        "GET",
        &format!("/api/chat/history?conversationId={ASSISTANT}"),
        &farmer,
    )
    .await;
    let reply = &history.json()["messages"][1];
    assert!(
        reply["task"]["parts"].as_array().unwrap().len() >= 2,
        "{reply}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_task_snapshot_never_goes_back_to_an_older_version() {
    use farm_chat_dev_server::{
        shared::{RedisShared, Shared},
        store::TaskRecord,
    };
    use farm_chat_protocol::{
        ConversationId, MessageId, TaskId, UserId,
        task::{TaskKind, TaskSnapshot, TaskState},
    };
    let shared = RedisShared::connect(
        &Redis::shared().unwrap().url(0),
        &format!("hot{}", std::process::id()),
    )
    .await
    .unwrap();
    let record = |version: u64, state: TaskState| TaskRecord {
        snapshot: TaskSnapshot {
            task_id: TaskId("t-hot".into()),
            conversation_id: ConversationId("c".into()),
            message_id: MessageId("m".into()),
            kind: TaskKind::HealthReport,
            state,
            progress: None,
            parts: Vec::new(),
            created_at: "2026-12-01T00:00:00.000Z".into(),
            updated_at: "2026-12-01T00:00:00.000Z".into(),
        },
        owner: UserId("u-farmer".into()),
        source_message_id: MessageId("m-ask".into()),
        version,
    };
    let ttl = Duration::from_secs(60);
    shared
        .put_task(&record(3, TaskState::Succeeded), ttl)
        .await
        .unwrap();
    shared
        .put_task(&record(2, TaskState::Running), ttl)
        .await
        .unwrap();
    let got = shared
        .tasks(&[TaskId("t-hot".into()), TaskId("t-none".into())])
        .await
        .unwrap();
    assert_eq!(got[0], Some(record(3, TaskState::Succeeded)));
    assert_eq!(got[1], None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_caps_hold_across_instances() {
    let s = cluster(2, |_| {}).await;
    let (a, b) = (s[0].addr, s[1].addr);
    let farmer = login(a, "u-farmer").await;
    // A session may hold 4 streams: spread over two instances, still 4.
    let mut streams = Vec::new();
    for i in 0..4 {
        let mut sse = Sse::open_as([a, b][i % 2], &farmer, "").await;
        assert_eq!(sse.next().await.unwrap().event, "ready");
        streams.push(sse);
    }
    let mut fifth = Sse::open_as(b, &farmer, "").await;
    assert_eq!(fifth.next().await.unwrap().event, "ready");
    let oldest = &mut streams[0];
    let ended = tokio::time::timeout(Duration::from_secs(5), oldest.next()).await;
    assert!(
        matches!(ended, Ok(None)),
        "the oldest stream, on the other instance, gave way: {ended:?}"
    );
    // The others stay: a send reaches them.
    let sent = send(a, &farmer, SUPPORT, "届く", "cap-1").await;
    assert_eq!(sent.status, 201);
    for sse in streams
        .iter_mut()
        .skip(1)
        .chain(std::iter::once(&mut fifth))
    {
        assert_eq!(sse.next_non_ping().await.unwrap().event, "message.created");
    }
}

/// The text part of a task's snapshot, as instance `at` answers it.
async fn snapshot_text(at: std::net::SocketAddr, token: &str, task: &str) -> (String, String) {
    let r = call_as(at, "GET", &format!("/api/tasks/{task}"), token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let json = r.json();
    let text = json["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "text")
        .map(|p| p["text"].as_str().unwrap().to_owned())
        .collect();
    (text, json["state"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_streaming_on_one_instance_resumes_on_another_with_its_text_once() {
    use farm_chat_dev_server::{
        assistant::model::{Model, openai::OpenAi},
        config::ModelConfig,
    };
    use farm_chat_testenv::model::{ModelServer, Wire};
    let model = ModelServer::start(Wire::OpenAi).unwrap();
    let config = ModelConfig {
        model_base_url: Some(model.openai_base()),
        model: Some("farm-test-model".into()),
        ..ModelConfig::default()
    };
    let s = cluster(2, |state| {
        let provider = OpenAi::new(&config, None).unwrap();
        state.common.assistant = std::sync::Arc::new(
            Model::with_provider(&config, Box::new(provider), std::sync::Arc::default()).unwrap(),
        );
    })
    .await;
    let (a, b) = (s[0].addr, s[1].addr);
    let farmer = login(a, "u-farmer").await;
    let mut on_a = Sse::open_as(a, &farmer, "").await;
    assert_eq!(on_a.next().await.unwrap().event, "ready");
    let asked = send(a, &farmer, ASSISTANT, "slow answer please", "slow-1").await;
    assert_eq!(asked.status, 201, "{}", asked.body);
    let task = asked.json()["taskId"].as_str().unwrap().to_owned();
    let mut text = String::new();
    let mut last_id = String::new();
    while text.len() < 30 {
        let e = on_a.next_non_ping().await.unwrap();
        if let Some(id) = &e.id {
            last_id = id.clone();
        }
        if e.event == "task.text" {
            assert!(
                common::apply_text(&mut text, &e),
                "contiguous on one stream"
            );
        }
    }
    drop(on_a);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The client comes back on B: the deltas A runs reach it through Redis, and the text
    // written while it was away comes from the hot snapshot in Redis.
    let mut on_b = Sse::open(
        b,
        "/api/chat/stream",
        &[
            ("Authorization", &bearer(&farmer)),
            ("Last-Event-ID", &last_id),
        ],
    )
    .await;
    assert_eq!(on_b.next().await.unwrap().event, "ready");
    let mut gaps = 0;
    while text.len() < 120 {
        let e = on_b.next_non_ping().await.unwrap();
        if e.event == "task.text" && !common::apply_text(&mut text, &e) {
            gaps += 1;
            let (held, state) = snapshot_text(b, &farmer, &task).await;
            assert_eq!(state, "running");
            assert!(
                held.starts_with(&text),
                "B's snapshot extends what the client held"
            );
            text = held;
            assert!(common::apply_text(&mut text, &e));
        }
    }
    assert_eq!(gaps, 1, "one refetch after moving instance");
    // Stopped from B: A, which runs it, ends it.
    let cancelled = call_as(b, "POST", &format!("/api/tasks/{task}/cancel"), &farmer).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    loop {
        let e = on_b.next_non_ping().await.unwrap();
        if e.event == "task.text" {
            assert!(common::apply_text(&mut text, &e));
        }
        if e.event == "task.done" {
            break;
        }
    }
    let (stored, state) = snapshot_text(b, &farmer, &task).await;
    assert_eq!(state, "cancelled");
    assert_eq!(stored, text, "the client holds exactly the answer's text");
    // And A dropped the model's request.
    for _ in 0..200 {
        if model.aborted.load(std::sync::atomic::Ordering::SeqCst) >= 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the model's request was never dropped");
}
