//! `GET /api/chat/stream` on a real port: order, resume, reset, ping, fan-out to every
//! connection, slow consumers, sign-out, shutdown, limits, tickets and restarts.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

mod common;

use farm_chat_protocol::paths;
use std::time::Duration;

use common::{Sse, TestApp, TestServer, bearer, call, call_as, login, send};
use farm_chat_dev_server::bus::HubLimits;
use farm_chat_protocol::{EventId, StreamEvent, UserId, stream::MessageCreated};

const SUPPORT: &str = "c-u-farmer-support";

async fn server() -> TestServer {
    TestApp::new().serve().await
}

/// Publishes a `message.created` with `seq` straight to `user`'s streams through the bus.
async fn publish_created(s: &TestServer, user: &str, seq: u64) -> EventId {
    s.state
        .common
        .bus
        .publish(
            &UserId(user.into()),
            &StreamEvent::MessageCreated(MessageCreated {
                conversation_id: SUPPORT.into(),
                message_id: "m-0123456789abcdef0123456789abcdef".into(),
                seq,
            }),
            None,
        )
        .await
        .unwrap()
}

/// A server whose event bus keeps to `limits`.
async fn server_with(limits: HubLimits) -> TestServer {
    TestApp::new().limits(limits).serve().await
}

/// Opens a stream and checks the `ready` that starts it; returns the stream and ready's id.
async fn open_ready(s: &TestServer, token: &str, query: &str) -> (Sse, u64) {
    let mut sse = Sse::open_as(s.addr, token, query).await;
    assert_eq!(sse.status, 200, "{}", sse.head);
    let ready = sse.next().await.unwrap();
    assert_eq!(ready.event, "ready");
    (sse, ready.id_u64())
}

#[tokio::test]
async fn the_stream_starts_with_ready_and_retry_and_the_right_headers() {
    let s = server().await;
    let token = login(s.addr, "u-farmer").await;
    let mut sse = Sse::open_as(s.addr, &token, "").await;
    assert_eq!(sse.status, 200);
    let head = sse.head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("cache-control: no-cache, no-store"), "{head}");
    assert!(head.contains("x-accel-buffering: no"), "{head}");
    assert!(!head.contains("content-encoding"), "{head}");
    let ready = sse.next().await.unwrap();
    assert_eq!(ready.event, "ready");
    assert_eq!(ready.retry.as_deref(), Some("1000"));
    assert!(ready.json()["serverTime"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        ready.json()["lastEventId"].as_str().unwrap(),
        ready.id.as_deref().unwrap(),
        "a string, so JavaScript keeps every digit"
    );
}

#[tokio::test]
async fn sends_arrive_in_order_with_increasing_ids() {
    let s = server().await;
    let token = login(s.addr, "u-farmer").await;
    let (mut sse, ready_id) = open_ready(&s, &token, "").await;
    let mut sent = Vec::new();
    for i in 0..5 {
        let reply = send(
            s.addr,
            &token,
            SUPPORT,
            &format!("メッセージ {i}"),
            &format!("k{i}"),
        )
        .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        sent.push(reply.json()["messageId"].as_str().unwrap().to_owned());
    }
    let mut last_id = ready_id;
    for (i, message_id) in sent.iter().enumerate() {
        let event = sse.next_non_ping().await.unwrap();
        assert_eq!(event.event, "message.created");
        let data = event.json();
        assert_eq!(data["messageId"].as_str().unwrap(), message_id);
        assert_eq!(data["conversationId"], SUPPORT);
        assert_eq!(data["seq"].as_u64().unwrap(), i as u64 + 1);
        assert!(event.id_u64() > last_id, "ids increase");
        last_id = event.id_u64();
    }
}

/// Sends `n` messages and returns the ids of the events they produced on `sse`.
async fn send_and_collect(
    s: &TestServer,
    token: &str,
    sse: &mut Sse,
    n: usize,
    tag: &str,
) -> Vec<u64> {
    for i in 0..n {
        assert_eq!(
            send(s.addr, token, SUPPORT, "x", &format!("{tag}{i}"))
                .await
                .status,
            201
        );
    }
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(sse.next_non_ping().await.unwrap().id_u64());
    }
    ids
}

#[tokio::test]
async fn resume_by_header_or_query_replays_exactly_the_missed_events() {
    let s = server().await;
    let token = login(s.addr, "u-farmer").await;
    let (mut first, _) = open_ready(&s, &token, "").await;
    let ids = send_and_collect(&s, &token, &mut first, 4, "r").await;
    drop(first);

    // By query.
    let (mut sse, ready_id) = open_ready(&s, &token, &format!("?lastEventId={}", ids[1])).await;
    assert_eq!(ready_id, ids[1], "ready stands where the client resumes");
    assert_eq!(sse.next_non_ping().await.unwrap().id_u64(), ids[2]);
    assert_eq!(sse.next_non_ping().await.unwrap().id_u64(), ids[3]);

    // By header, which wins over the query.
    let path = format!("/api/chat/stream?lastEventId={}", ids[0]);
    let last = ids[2].to_string();
    let mut sse = Sse::open(
        s.addr,
        &path,
        &[("Authorization", &bearer(&token)), ("Last-Event-ID", &last)],
    )
    .await;
    assert_eq!(sse.next().await.unwrap().event, "ready");
    let replayed = sse.next_non_ping().await.unwrap();
    assert_eq!(
        replayed.id_u64(),
        ids[3],
        "only what came after the header's id"
    );

    // Caught up: the next event is live, not a repeat.
    assert_eq!(
        send(s.addr, &token, SUPPORT, "live", "live").await.status,
        201
    );
    let live = sse.next_non_ping().await.unwrap();
    assert!(live.id_u64() > ids[3]);
    assert_eq!(live.json()["seq"], 5);
}

#[tokio::test]
async fn reset_when_the_gap_cannot_be_filled() {
    let limits = HubLimits {
        backlog_min_events: 2,
        backlog_hard_cap: 2,
        ..HubLimits::default()
    };
    let s = server_with(limits).await;
    let token = login(s.addr, "u-farmer").await;
    let (mut sse, _) = open_ready(&s, &token, "").await;
    let ids = send_and_collect(&s, &token, &mut sse, 5, "g").await;

    let reason = |query: String| {
        let (addr, token) = (s.addr, token.clone());
        async move {
            let mut sse = Sse::open_as(addr, &token, &query).await;
            assert_eq!(sse.next().await.unwrap().event, "ready");
            let next = sse.next_non_ping().await.unwrap();
            assert_eq!(next.event, "reset", "{next:?}");
            next.json()["reason"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(reason(format!("?lastEventId={}", ids[0])).await, "too_old");
    let epoch = EventId(ids[0]).epoch();
    assert_eq!(
        reason(format!("?lastEventId={}", EventId::new(epoch - 1, 3))).await,
        "restarted"
    );
    assert_eq!(
        reason(format!("?lastEventId={}", ids[4] + 10)).await,
        "unknown"
    );
    assert_eq!(reason("?lastEventId=abc".into()).await, "unknown");
}

#[tokio::test]
async fn ping_is_a_named_event_carrying_the_streams_position() {
    let s = TestApp::new()
        .tune(|s| s.ping_every = Duration::from_millis(50))
        .serve()
        .await;
    let token = login(s.addr, "u-farmer").await;
    let (mut sse, ready_id) = open_ready(&s, &token, "").await;
    let ping = sse.next().await.unwrap();
    assert_eq!(ping.event, "ping");
    assert_eq!(
        ping.id_u64(),
        ready_id,
        "a ping never moves the resume point ahead"
    );
    assert!(ping.json()["serverTime"].is_string());
}

#[tokio::test]
async fn every_connection_of_a_user_gets_every_event() {
    let s = server().await;
    let token = login(s.addr, "u-farmer").await;
    let support = login(s.addr, "u-support").await;
    let (mut tab_a, _) = open_ready(&s, &token, "").await;
    let (mut tab_b, _) = open_ready(&s, &token, "").await;
    let (mut staff, _) = open_ready(&s, &support, "").await;
    let reply = send(s.addr, &token, SUPPORT, "二つのタブ", "two-tabs").await;
    let message_id = reply.json()["messageId"].clone();
    for sse in [&mut tab_a, &mut tab_b, &mut staff] {
        let event = sse.next_non_ping().await.unwrap();
        assert_eq!(event.json()["messageId"], message_id);
    }
    let metrics = common::metrics(s.addr).await.body;
    assert!(
        metrics.contains("\nfarm_chat_open_streams 3\n")
            && metrics.contains("\nfarm_chat_streams_opened_total 3\n"),
        "{metrics}"
    );
    drop(tab_a);
    let _reopened = open_ready(&s, &token, "").await;
    let metrics = common::metrics(s.addr).await.body;
    assert!(
        metrics.contains("\nfarm_chat_streams_opened_total 4\n"),
        "a reconnect counts: {metrics}"
    );
}

#[tokio::test]
async fn a_stalled_consumer_is_cut_off_while_a_reading_one_gets_everything() {
    let limits = HubLimits {
        live_buffer: 1024,
        backlog_hard_cap: 100,
        backlog_min_events: 100,
        ..HubLimits::default()
    };
    let s = server_with(limits).await;
    let token = login(s.addr, "u-farmer").await;
    let (stalled, _) = open_ready(&s, &token, "").await;
    let (mut reading, _) = open_ready(&s, &token, "").await;
    // Far more than socket buffers hold (~9 MB of events; about 3 MB fit in them here).
    const PUBLISHED: u64 = 60_000;
    let reader = tokio::spawn(async move {
        let mut received = 0u64;
        while received < PUBLISHED {
            let event = reading
                .next_within(Duration::from_secs(30))
                .await
                .expect("the reading stream stays open");
            if event.event == "ping" {
                continue;
            }
            assert_eq!(
                event.json()["seq"].as_u64(),
                Some(received + 1),
                "in order, none missing"
            );
            received += 1;
        }
        received
    });
    for seq in 1..=PUBLISHED {
        publish_created(&s, "u-farmer", seq).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(
        reader.await.unwrap(),
        PUBLISHED,
        "a consumer that reads keeps up"
    );

    // Only now does the stalled client read: it was cut off part-way, not buffered forever.
    let mut stalled = stalled;
    let (mut received, mut last_id) = (0u64, 0u64);
    while let Some(event) = stalled.next_within(Duration::from_secs(30)).await {
        if event.event != "ping" {
            received += 1;
            last_id = event.id_u64();
        }
    }
    eprintln!("the stalled stream got {received} of {PUBLISHED} events before it was cut off");
    assert!(
        received > 0 && received < PUBLISHED,
        "cut off after {received} of {PUBLISHED}"
    );
    // It resumes from the last event it got; that fell out of the 100-event backlog: reset.
    let (mut again, _) = open_ready(&s, &token, &format!("?lastEventId={last_id}")).await;
    let next = again.next_non_ping().await.unwrap();
    assert_eq!(
        (next.event.as_str(), next.json()["reason"].as_str()),
        ("reset", Some("too_old"))
    );
}

/// A burst bigger than the live feed's few slots: the stream catches up from the backlog and
/// stays open, instead of ending and making its client reconnect.
#[tokio::test]
async fn a_stream_behind_its_live_feed_catches_up_from_the_backlog_and_stays_open() {
    let limits = HubLimits {
        live_buffer: 2,
        ..HubLimits::default()
    };
    let s = server_with(limits).await;
    let token = login(s.addr, "u-farmer").await;
    let (mut sse, _) = open_ready(&s, &token, "").await;
    // This test's runtime has one thread: the stream's task runs only after the whole burst.
    for seq in 1..=50 {
        publish_created(&s, "u-farmer", seq).await;
    }
    for seq in 1..=50 {
        let event = sse.next_non_ping().await.expect("the stream stays open");
        assert_eq!(
            event.json()["seq"].as_u64(),
            Some(seq),
            "in order, none missing"
        );
    }
    publish_created(&s, "u-farmer", 51).await;
    let event = sse
        .next_non_ping()
        .await
        .expect("still live after catching up");
    assert_eq!(event.json()["seq"].as_u64(), Some(51));
    let metrics = common::metrics(s.addr).await.body;
    assert!(
        !metrics.contains("\nfarm_chat_streams_caught_up_total 0\n"),
        "it fell behind and caught up: {metrics}"
    );
}

#[tokio::test]
async fn signing_out_closes_that_sessions_streams() {
    let s = server().await;
    let token = login(s.addr, "u-farmer").await;
    let other_session = login(s.addr, "u-farmer").await;
    let (mut sse, _) = open_ready(&s, &token, "").await;
    let (mut other, _) = open_ready(&s, &other_session, "").await;
    let reply = call_as(s.addr, "DELETE", paths::api::SESSION, &token).await;
    assert_eq!(reply.status, 204);
    assert_eq!(
        sse.next_non_ping().await,
        None,
        "the signed-out stream ends"
    );
    assert_eq!(
        call_as(s.addr, "GET", paths::api::SESSION, &token)
            .await
            .status,
        401
    );
    assert_eq!(Sse::open_as(s.addr, &token, "").await.status, 401);
    // The user's other session is untouched.
    assert_eq!(
        send(s.addr, &other_session, SUPPORT, "まだ", "still")
            .await
            .status,
        201
    );
    assert_eq!(
        other.next_non_ping().await.unwrap().event,
        "message.created"
    );
}

#[tokio::test]
async fn graceful_shutdown_ends_open_streams() {
    let s = server().await;
    let token = login(s.addr, "u-farmer").await;
    let (mut sse, _) = open_ready(&s, &token, "").await;
    s.stop().await;
    assert_eq!(sse.next_non_ping().await, None);
}

#[tokio::test]
async fn nobody_can_lock_a_user_out_of_streaming() {
    let s = server().await;
    let mine = login(s.addr, "u-farmer").await;
    let (mut my_stream, _) = open_ready(&s, &mine, "").await;

    // A stranger who can sign in as the same user opens streams in bulk, in three sessions.
    let (x, y, z) = (
        login(s.addr, "u-farmer").await,
        login(s.addr, "u-farmer").await,
        login(s.addr, "u-farmer").await,
    );
    let mut xs = Vec::new();
    for _ in 0..4 {
        xs.push(open_ready(&s, &x, "").await.0);
    }
    // A fifth stream of one session: that session's oldest gives way (4 per session).
    let (_x5, _) = open_ready(&s, &x, "").await;
    assert_eq!(xs[0].next_non_ping().await, None, "x's oldest closed");
    let mut ys = Vec::new();
    for _ in 0..4 {
        ys.push(open_ready(&s, &y, "").await.0);
    }
    let (_z1, _) = open_ready(&s, &z, "").await;
    // Now 10 streams: the user's cap. One more closes the oldest of a biggest session (x's
    // second), never the farmer's own, and is never refused.
    let (_z2, _) = open_ready(&s, &z, "").await;
    assert_eq!(xs[1].next_non_ping().await, None, "x's next oldest closed");
    let (_mine2, _) = open_ready(&s, &mine, "").await;
    assert_eq!(ys[0].next_non_ping().await, None, "then y's oldest");

    // The farmer's first stream is still live.
    assert_eq!(
        send(s.addr, &mine, SUPPORT, "まだ届く", "alive")
            .await
            .status,
        201
    );
    let event = my_stream.next_non_ping().await.unwrap();
    assert_eq!(event.event, "message.created");
    // Another user is not affected.
    assert_eq!(
        open_ready(&s, &login(s.addr, "u-support").await, "")
            .await
            .0
            .status,
        200
    );
}

#[tokio::test]
async fn a_stream_ticket_works_once_and_without_the_token() {
    let s = server().await;
    let token = login(s.addr, "u-farmer").await;
    let reply = call_as(s.addr, "POST", paths::api::STREAM_TICKET, &token).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["expiresIn"], 30);
    let ticket = reply.json()["ticket"].as_str().unwrap().to_owned();
    let mut sse = Sse::open(s.addr, &format!("/api/chat/stream?ticket={ticket}"), &[]).await;
    assert_eq!(sse.status, 200);
    assert_eq!(sse.next().await.unwrap().event, "ready");
    let again = Sse::open(s.addr, &format!("/api/chat/stream?ticket={ticket}"), &[]).await;
    assert_eq!(again.status, 401, "a ticket is single-use");
    assert_eq!(Sse::open(s.addr, paths::api::STREAM, &[]).await.status, 401);
}

#[tokio::test]
async fn streams_are_per_user_and_tenant() {
    let s = server().await;
    let farmer = login(s.addr, "u-farmer").await;
    let other = login(s.addr, "u-other").await;
    let (mut other_sse, _) = open_ready(&s, &other, "").await;
    assert_eq!(
        send(s.addr, &farmer, SUPPORT, "秘密", "secret")
            .await
            .status,
        201
    );
    // u-other's own message is the first thing its stream shows: the farmer's never arrives.
    assert_eq!(
        send(s.addr, &other, "c-u-other-support", "自分の", "own")
            .await
            .status,
        201
    );
    let event = other_sse.next_non_ping().await.unwrap();
    assert_eq!(event.json()["conversationId"], "c-u-other-support");
}

#[tokio::test]
async fn the_test_mode_switch_drops_streams_and_clients_resume_losslessly() {
    let s = server().await;
    let token = login(s.addr, "u-farmer").await;
    let (mut sse, _) = open_ready(&s, &token, "").await;
    let ids = send_and_collect(&s, &token, &mut sse, 1, "d").await;
    let stranger = call(s.addr, "POST", paths::api::DROP_STREAMS, &[], None).await;
    assert_eq!(
        stranger.status, 401,
        "only a signed-in user: {}",
        stranger.body
    );
    let reply = call_as(s.addr, "POST", paths::api::DROP_STREAMS, &token).await;
    assert_eq!(reply.status, 204);
    assert_eq!(sse.next_non_ping().await, None, "the stream was cut");
    assert_eq!(
        send(s.addr, &token, SUPPORT, "切断中", "during")
            .await
            .status,
        201
    );
    let (mut again, _) = open_ready(&s, &token, &format!("?lastEventId={}", ids[0])).await;
    assert_eq!(
        again.next_non_ping().await.unwrap().json()["seq"],
        2,
        "the message sent meanwhile is replayed"
    );
}

#[tokio::test]
async fn the_test_switch_does_not_exist_outside_test_mode() {
    let s = TestApp::new().config(|c| c.test_mode = false).serve().await;
    let reply = call(s.addr, "POST", paths::api::DROP_STREAMS, &[], None).await;
    assert_eq!(reply.status, 404);
}

#[tokio::test]
async fn typing_reaches_the_others_live_only_and_reads_are_announced_to_everyone() {
    let s = server().await;
    let farmer = login(s.addr, "u-farmer").await;
    let support = login(s.addr, "u-support").await;
    let (mut staff, ready_id) = open_ready(&s, &support, "").await;
    let (mut own, _) = open_ready(&s, &farmer, "").await;
    let typing = call(
        s.addr,
        "POST",
        paths::api::TYPING,
        &[("Authorization", &bearer(&farmer))],
        Some(&format!(r#"{{"conversationId":"{SUPPORT}"}}"#)),
    )
    .await;
    assert_eq!(typing.status, 204, "{}", typing.body);
    let hint = staff.next_non_ping().await.unwrap();
    assert_eq!(hint.event, "typing");
    assert_eq!(hint.id, None, "no id: the client's position stays put");
    assert_eq!(hint.json()["userId"], "u-farmer");
    assert_eq!(hint.json()["displayName"], "山田 太郎");

    let sent = send(s.addr, &farmer, SUPPORT, "見てください", "k-t1").await;
    assert_eq!(sent.status, 201);
    let created = staff.next_non_ping().await.unwrap();
    assert_eq!(created.event, "message.created");
    let read = call(
        s.addr,
        "POST",
        paths::api::READ,
        &[("Authorization", &bearer(&support))],
        Some(&format!(r#"{{"conversationId":"{SUPPORT}","seq":1}}"#)),
    )
    .await;
    assert_eq!(read.status, 200, "{}", read.body);
    // The farmer sees 既読; support's own stream (its other tabs) hears it too.
    for stream in [&mut own, &mut staff] {
        let mut event = stream.next_non_ping().await.unwrap();
        if event.event == "message.created" {
            event = stream.next_non_ping().await.unwrap();
        }
        assert_eq!(event.event, "conversation.read");
        assert_eq!(event.json()["userId"], "u-support");
        assert_eq!(event.json()["seq"], 1);
        assert!(event.id.is_some(), "kept for resuming, unlike typing");
    }

    // A resume replays the message and the read mark, never the typing hint.
    // (A replayed hint would come second, before the message it preceded.)
    let mut resumed = Sse::open_as(s.addr, &support, &format!("?lastEventId={ready_id}")).await;
    let mut names = Vec::new();
    for _ in 0..3 {
        names.push(resumed.next_non_ping().await.unwrap().event);
    }
    assert_eq!(names, ["ready", "message.created", "conversation.read"]);
}
