//! The proxy between a client and the in-process dev-server: it passes traffic through
//! untouched when no fault is set, and each fault does what it says (and is counted).

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

use farm_chat_protocol::paths;
use std::{sync::Arc, time::Duration};

use farm_chat_bench::http::{Client, Event, Stream, Target, login};
use farm_chat_chaos::{Chaos, Faults};
use farm_chat_dev_server::{AppState, Config};

struct Setup {
    proxy: Target,
    chaos: Arc<Chaos>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn setup(seed: u64) -> Setup {
    let state = AppState::new(Config::for_tests()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(farm_chat_dev_server::run(listener, state, async {
        let _ = stopped.await;
    }));
    let chaos = Chaos::new(upstream, seed);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = Target::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(farm_chat_chaos::serve(listener, chaos.clone()));
    Setup {
        proxy,
        chaos,
        _stop: stop,
    }
}

async fn send(s: &Setup, token: &str, key: &str) -> String {
    let body = serde_json::json!({"conversationId": "c-u-farmer-support", "text": key, "idempotencyKey": key});
    let reply = Client::new(&s.proxy)
        .call(
            "POST",
            paths::api::SEND,
            Some(token),
            Some(&body.to_string()),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()["messageId"].as_str().unwrap().to_owned()
}

async fn next_named(stream: &mut Stream, skip: &[&str]) -> Event {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap();
        if !skip.contains(&event.name.as_str()) {
            return event;
        }
    }
}

#[tokio::test]
async fn without_faults_everything_passes_through_once() {
    let s = setup(1).await;
    let token = login(&mut Client::new(&s.proxy), "u-farmer").await.unwrap();
    let mut stream = Stream::open(&s.proxy, &token, None).await.unwrap();
    assert_eq!(next_named(&mut stream, &[]).await.name, "ready");
    let id = send(&s, &token, "through").await;
    let event = next_named(&mut stream, &["ping"]).await;
    assert_eq!(event.name, "message.created");
    assert!(event.data.contains(&id));
    let stats = s.chaos.stats();
    assert_eq!(stats.requests[paths::api::SEND], 1);
    assert_eq!(stats.requests[paths::api::STREAM], 1);
    assert_eq!((stats.cuts, stats.duplicates, stats.swaps), (0, 0, 0));
}

#[tokio::test]
async fn duplicated_events_arrive_twice_and_cuts_end_the_stream() {
    let s = setup(2).await;
    let token = login(&mut Client::new(&s.proxy), "u-farmer").await.unwrap();
    s.chaos.set_faults(Faults {
        duplicate: 1.0,
        cut_after: Some((2, 2)),
        ..Faults::default()
    });
    let mut stream = Stream::open(&s.proxy, &token, None).await.unwrap();
    assert_eq!(next_named(&mut stream, &[]).await.name, "ready");
    assert_eq!(
        next_named(&mut stream, &[]).await.name,
        "ready",
        "sent twice"
    );
    let id = send(&s, &token, "twice").await;
    let first = next_named(&mut stream, &["ping"]).await;
    let second = next_named(&mut stream, &["ping"]).await;
    assert!(first.data.contains(&id) && first == second);
    // The second event was the last before the cut.
    let end = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap();
    assert!(end.is_err(), "the stream was cut: {end:?}");
    assert_eq!(s.chaos.stats().cuts, 1);
    assert_eq!(s.chaos.stats().duplicates, 2);
}

#[tokio::test]
async fn refused_streams_bad_input_and_offline() {
    let s = setup(3).await;
    let token = login(&mut Client::new(&s.proxy), "u-farmer").await.unwrap();
    for status in [204u16, 500] {
        s.chaos.set_faults(Faults {
            stream_status: Some(status),
            ..Faults::default()
        });
        let error = Stream::open(&s.proxy, &token, None).await.err().unwrap();
        assert!(
            error.to_string().contains(&format!("HTTP {status}")),
            "{error}"
        );
    }
    s.chaos.set_faults(Faults {
        inject: Some("unknown_event".into()),
        ..Faults::default()
    });
    let mut stream = Stream::open(&s.proxy, &token, None).await.unwrap();
    assert_eq!(next_named(&mut stream, &[]).await.name, "ready");
    assert_eq!(next_named(&mut stream, &[]).await.name, "cow.mooed");
    s.chaos.set_faults(Faults {
        offline: true,
        ..Faults::default()
    });
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if stream.next().await.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(end.is_ok(), "going offline cuts the open stream");
    assert!(
        Client::new(&s.proxy)
            .call("GET", paths::api::HEALTH, None, None)
            .await
            .is_err()
    );
    let stats = s.chaos.stats();
    // The client tries twice (it reconnects once on a dropped keep-alive connection).
    assert_eq!(
        (stats.refused_streams, stats.injected, stats.offline_drops),
        (2, 1, 2)
    );
}

#[tokio::test]
async fn a_dropped_answer_is_a_network_error_after_the_server_acted() {
    let s = setup(5).await;
    let token = login(&mut Client::new(&s.proxy), "u-farmer").await.unwrap();
    s.chaos.set_faults(Faults {
        drop_answers: 1.0,
        ..Faults::default()
    });
    let body = serde_json::json!({"conversationId": "c-u-farmer-support", "text": "unanswered", "idempotencyKey": "k-unanswered"});
    let unanswered = Client::new(&s.proxy)
        .call(
            "POST",
            paths::api::SEND,
            Some(&token),
            Some(&body.to_string()),
        )
        .await;
    assert!(unanswered.is_err(), "no answer");
    s.chaos.set_faults(Faults::default());
    // The retry with the same key finds the message the server stored.
    let retry = Client::new(&s.proxy)
        .call(
            "POST",
            paths::api::SEND,
            Some(&token),
            Some(&body.to_string()),
        )
        .await
        .unwrap();
    assert_eq!(retry.status, 200, "{}", retry.body);
    // The client tries twice (it reconnects once on a dropped keep-alive connection).
    assert_eq!(s.chaos.stats().dropped_answers, 2);
}

#[tokio::test]
async fn swapped_events_keep_every_event() {
    let s = setup(4).await;
    let token = login(&mut Client::new(&s.proxy), "u-farmer").await.unwrap();
    let mut stream = Stream::open(&s.proxy, &token, None).await.unwrap();
    assert_eq!(next_named(&mut stream, &[]).await.name, "ready");
    s.chaos.set_faults(Faults {
        swap: 1.0,
        ..Faults::default()
    });
    // Faults are read when a stream opens: reopen to get swapping.
    drop(stream);
    let mut stream = Stream::open(&s.proxy, &token, None).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(send(&s, &token, &format!("swap-{i}")).await);
    }
    let mut seen = Vec::new();
    while seen.len() < 5 {
        seen.push(next_named(&mut stream, &["ping"]).await);
    }
    for id in &ids {
        assert_eq!(
            seen.iter().filter(|e| e.data.contains(id.as_str())).count(),
            1,
            "{id}"
        );
    }
    assert!(s.chaos.stats().swaps >= 1);
}

#[tokio::test]
async fn the_control_endpoint_sets_faults_cuts_and_reports() {
    let s = setup(5).await;
    let token = login(&mut Client::new(&s.proxy), "u-farmer").await.unwrap();
    let mut control = Client::new(&s.proxy);
    let bad = control
        .call(
            "POST",
            "/__chaos/faults",
            None,
            Some(r#"{"duplicate":"lots"}"#),
        )
        .await
        .unwrap();
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(bad.json()["error"]["code"], "bad_faults");
    let set = control
        .call(
            "POST",
            "/__chaos/faults",
            None,
            Some(r#"{"injectx":1,"delayMs":1}"#),
        )
        .await
        .unwrap();
    assert_eq!(set.status, 200, "unknown fields are ignored: {}", set.body);
    let mut stream = Stream::open(&s.proxy, &token, None).await.unwrap();
    assert_eq!(next_named(&mut stream, &[]).await.name, "ready");
    let cut = control
        .call("POST", "/__chaos/cut", None, None)
        .await
        .unwrap();
    assert_eq!(cut.status, 200);
    let end = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap();
    assert!(end.is_err(), "cut: {end:?}");
    let stats = control
        .call("GET", "/__chaos/stats", None, None)
        .await
        .unwrap();
    assert_eq!(stats.json()["cuts"], 1, "{}", stats.body);
    assert!(stats.json()["delays"].as_u64().unwrap() >= 1);
    assert_eq!(
        control
            .call("GET", "/__chaos/nope", None, None)
            .await
            .unwrap()
            .status,
        404
    );
}

/// A one-line HTTP server that answers every request with `name`, until dropped.
async fn named_upstream(name: &'static str) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf).await;
            let _ = conn
                .write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
                        name.len()
                    )
                    .as_bytes(),
                )
                .await;
        }
    });
    (addr, task)
}

#[tokio::test]
async fn as_a_balancer_it_takes_turns_and_skips_an_instance_that_is_down() {
    let (a, _a) = named_upstream("A").await;
    let (b, b_task) = named_upstream("B").await;
    let chaos = Chaos::balancing(vec![a, b], farm_chat_chaos::Balance::RoundRobin, 1);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = Target::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(farm_chat_chaos::serve(listener, chaos));
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(
            Client::new(&proxy)
                .call("GET", paths::api::HEALTH, None, None)
                .await
                .unwrap()
                .body,
        );
    }
    assert_eq!(answers, ["A", "B", "A", "B"]);
    b_task.abort();
    let _ = b_task.await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..4 {
        let reply = Client::new(&proxy)
            .call("GET", paths::api::HEALTH, None, None)
            .await
            .unwrap();
        assert_eq!(reply.body, "A", "B is down: everything goes to A");
    }
}
