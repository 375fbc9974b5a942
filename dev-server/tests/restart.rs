//! The real binary, killed with SIGKILL and started again on the same SQLite file: every
//! acknowledged message is still there, sessions still work, and a stream resumed from before
//! the restart gets `reset` (never a silent gap) while new event ids keep increasing.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

mod common;

use farm_chat_protocol::paths;
use std::path::Path;

use common::{Process, Sse, call_as, login, send};

fn start(db: &Path) -> Process {
    Process::start(&["--db", db.to_str().unwrap()])
}

#[tokio::test]
async fn acknowledged_messages_survive_kill_9_and_resume_says_reset() {
    let dir = std::env::temp_dir().join(format!("farm-chat-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = dir.join("nested").join("chat.sqlite");

    let mut first = start(&db);
    let token = login(first.addr, "u-farmer").await;
    let mut sse = Sse::open_as(first.addr, &token, "").await;
    assert_eq!(sse.next().await.unwrap().event, "ready");
    let mut acknowledged = Vec::new();
    for i in 0..3 {
        let reply = send(
            first.addr,
            &token,
            "c-u-farmer-support",
            &format!("再起動前 {i}"),
            &format!("pre{i}"),
        )
        .await;
        assert_eq!(reply.status, 201);
        acknowledged.push(reply.json()["messageId"].as_str().unwrap().to_owned());
    }
    let mut last_id = 0;
    for _ in 0..3 {
        last_id = sse.next_non_ping().await.unwrap().id_u64();
    }
    first.kill(); // SIGKILL: no shutdown, no flush
    drop(first);

    let second = start(&db);
    // The session (and the key that signed it) survived.
    let me = call_as(second.addr, "GET", paths::api::SESSION, &token).await;
    assert_eq!(me.status, 200, "{}", me.body);
    // Every acknowledged message is in history, in order.
    let history = call_as(
        second.addr,
        "GET",
        "/api/chat/history?conversationId=c-u-farmer-support",
        &token,
    )
    .await;
    let ids: Vec<String> = history.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["messageId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, acknowledged);
    // A retry of an acknowledged send is still recognised after the restart.
    let retry = send(
        second.addr,
        &token,
        "c-u-farmer-support",
        "再起動前 0",
        "pre0",
    )
    .await;
    assert_eq!(
        (retry.status, retry.json()["messageId"].as_str().unwrap()),
        (200, acknowledged[0].as_str())
    );

    // Resuming from before the restart: reset, then new ids above the old ones.
    let mut sse = Sse::open_as(second.addr, &token, &format!("?lastEventId={last_id}")).await;
    assert_eq!(sse.next().await.unwrap().event, "ready");
    let reset = sse.next_non_ping().await.unwrap();
    assert_eq!(
        (reset.event.as_str(), reset.json()["reason"].as_str()),
        ("reset", Some("restarted"))
    );
    assert_eq!(
        send(
            second.addr,
            &token,
            "c-u-farmer-support",
            "再起動後",
            "post"
        )
        .await
        .status,
        201
    );
    let after = sse.next_non_ping().await.unwrap();
    assert_eq!(after.json()["seq"], 4);
    assert!(
        after.id_u64() > last_id,
        "event ids keep increasing across the restart"
    );
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}
