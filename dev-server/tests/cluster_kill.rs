//! Three dev-server processes on one PostgreSQL and Redis; one is killed with SIGKILL in the
//! middle of a send loop. Every send the client saw acknowledged is in history, and a client
//! whose stream was on the killed instance resumes on another and hears of each exactly once.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

mod common;

use farm_chat_protocol::paths;
use std::{collections::HashMap, net::SocketAddr, time::Duration};

use common::{Process, Sse, bearer, call_as, login, send};
use farm_chat_testenv::{Postgres, Redis};

const SUPPORT: &str = "c-u-farmer-support";

/// An instance on the shared PostgreSQL and Redis, assistant at `speed`.
fn instance(database_url: &str, redis_url: &str, speed: &str) -> Process {
    Process::start(&[
        "--test-mode",
        "--database-url",
        database_url,
        "--redis-url",
        redis_url,
        "--assistant-speed",
        speed,
    ])
}

/// Sends with the widget's retry: on a network error or a 5xx, the same key again on the next
/// instance; on 429, after `Retry-After`. `Some(messageId)` once acknowledged.
async fn send_with_retry(
    addrs: &[SocketAddr],
    first: usize,
    token: &str,
    i: usize,
) -> Option<String> {
    let key = format!("kill-{i}");
    for attempt in 0..10 {
        let addr = addrs[(first + attempt) % addrs.len()];
        let reply = tokio::time::timeout(
            Duration::from_secs(5),
            try_send(addr, token, &format!("送信 {i}"), &key),
        )
        .await;
        match reply {
            Ok(Some(reply)) if reply.status == 200 || reply.status == 201 => {
                return Some(reply.json()["messageId"].as_str().unwrap().to_owned());
            }
            Ok(Some(reply)) if reply.status == 429 => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    None
}

/// One send; `None` when the connection failed (the instance is gone).
async fn try_send(addr: SocketAddr, token: &str, text: &str, key: &str) -> Option<common::Reply> {
    let connected = tokio::net::TcpStream::connect(addr).await.ok()?;
    drop(connected);
    let sent = tokio::spawn({
        let (token, text, key) = (token.to_owned(), text.to_owned(), key.to_owned());
        async move { send(addr, &token, SUPPORT, &text, &key).await }
    });
    sent.await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_loses_no_acknowledged_send_and_announces_each_once() {
    let database_url = Postgres::shared()
        .expect("a throwaway PostgreSQL")
        .fresh_database("kill")
        .unwrap();
    let redis = Redis::start().expect("a throwaway Redis");
    let mut a = instance(&database_url, &redis.url(0), "fast");
    let b = instance(&database_url, &redis.url(0), "fast");
    let c = instance(&database_url, &redis.url(0), "fast");
    let farmer = login(b.addr, "u-farmer").await;
    let support = login(c.addr, "u-support").await;

    // Support listens on A, the instance that will die.
    let mut stream = Sse::open_as(a.addr, &support, "").await;
    assert_eq!(stream.next().await.unwrap().event, "ready");

    let addrs = [a.addr, b.addr, c.addr];
    let mut sends = Vec::new();
    // 45 sends over about 2.5 s: within the send limit (a burst of 30, then 5 a second).
    for i in 0..45 {
        let token = farmer.clone();
        sends.push(tokio::spawn(async move {
            send_with_retry(&addrs, i % 3, &token, i).await
        }));
        if i == 20 {
            // Mid-loop, with sends in flight on A.
            a.kill();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut acknowledged = Vec::new();
    for send in sends {
        if let Some(id) = send.await.unwrap() {
            acknowledged.push(id);
        }
    }
    assert_eq!(
        acknowledged.len(),
        45,
        "every send gets through, retried elsewhere"
    );

    // The support client's stream died with A: it resumes on C from its last id, and keeps
    // reading until every acknowledged message was announced (the outbox covers those A
    // committed but never published, within about 5 s).
    let mut heard: HashMap<String, usize> = HashMap::new();
    let mut last_id = None;
    while let Some(event) = stream.next_within(Duration::from_secs(5)).await {
        if let Some(id) = &event.id {
            last_id = Some(id.clone());
        }
        if event.event == "message.created" {
            *heard
                .entry(event.json()["messageId"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let last = last_id.unwrap();
    let mut resumed = Sse::open(
        c.addr,
        paths::api::STREAM,
        &[
            ("Authorization", &bearer(&support)),
            ("Last-Event-ID", &last),
        ],
    )
    .await;
    assert_eq!(resumed.next().await.unwrap().event, "ready");
    while acknowledged.iter().any(|id| !heard.contains_key(id))
        && tokio::time::Instant::now() < deadline
    {
        let Ok(event) = tokio::time::timeout(Duration::from_secs(8), resumed.next_non_ping()).await
        else {
            break;
        };
        let event = event.expect("the resumed stream stays open");
        assert_ne!(event.event, "reset", "the log covers the gap");
        if event.event == "message.created" {
            *heard
                .entry(event.json()["messageId"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    for id in &acknowledged {
        assert_eq!(heard.get(id), Some(&1), "{id} announced exactly once");
    }

    // History holds every acknowledged send, once.
    let page = call_as(
        b.addr,
        "GET",
        &format!("/api/chat/history?conversationId={SUPPORT}&limit=100"),
        &support,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let stored: Vec<String> = page.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["messageId"].as_str().unwrap().to_owned())
        .collect();
    let mut unique = stored.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), stored.len(), "no message stored twice");
    for id in &acknowledged {
        assert!(stored.contains(id), "{id} acknowledged but not in history");
    }
    drop((b, c, redis));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_instance_died_is_interrupted_once_its_lease_runs_out() {
    let database_url = Postgres::shared()
        .expect("a throwaway PostgreSQL")
        .fresh_database("lease")
        .unwrap();
    let redis = Redis::start().expect("a throwaway Redis");
    let mut a = instance(&database_url, &redis.url(0), "realtime");
    let b = instance(&database_url, &redis.url(0), "realtime");
    let farmer = login(a.addr, "u-farmer").await;
    let mut on_b = Sse::open_as(b.addr, &farmer, "").await;
    assert_eq!(on_b.next().await.unwrap().event, "ready");
    let asked = send_to(
        a.addr,
        &farmer,
        "c-u-farmer-assistant",
        "14番の牛の健康状態を分析して",
    )
    .await;
    let task = asked.json()["taskId"].as_str().unwrap().to_owned();
    // Its first part, then its instance dies.
    loop {
        let event = on_b.next_non_ping().await.unwrap();
        if event.event.starts_with("task.") {
            break;
        }
    }
    a.kill();
    // Running, as far as B knows, until the lease runs out (9 s); then interrupted, and told.
    let done = loop {
        let event = on_b
            .next_within(Duration::from_secs(30))
            .await
            .expect("the stream on B stays open");
        if event.event == "task.done" {
            break event;
        }
    };
    assert_eq!(done.json()["taskId"], task.as_str());
    assert_eq!(done.json()["state"], "failed");
    let seen = call_as(b.addr, "GET", &format!("/api/tasks/{task}"), &farmer).await;
    assert_eq!(seen.json()["state"], "failed");
    let last = seen.json()["parts"]
        .as_array()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    assert_eq!(last["code"], "interrupted", "{last}");
    drop((b, redis));
}

async fn send_to(addr: SocketAddr, token: &str, conversation: &str, text: &str) -> common::Reply {
    let reply = send(addr, token, conversation, text, "lease-1").await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply
}
