//! The documents describe what the server really does: real answers validated against
//! `/api/openapi.json`'s schemas for their route and status, and the event catalogue
//! (`/api/asyncapi.json`) checked to refuse an event that breaks it (every event the other
//! test suites read is validated against it as they read it: `common::check_against_catalogue`).

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

mod common;

use common::{SseEvent, TestApp, call, call_as, login, send};
use farm_chat_protocol::paths;
use serde_json::{Value, json};

/// Validates `reply`'s body against the document's schema for `method path` and its status.
fn valid(spec: &Value, method: &str, path: &str, reply: &common::Reply) {
    let status = reply.status.to_string();
    let response = &spec["paths"][path][method]["responses"][&status];
    assert!(
        response.is_object(),
        "{method} {path} answered {status}, which the document does not list: {}",
        reply.body
    );
    let schema = &response["content"]["application/json"]["schema"];
    let Some(reference) = schema["$ref"].as_str() else {
        panic!("{method} {path} {status} has no JSON schema");
    };
    let root = json!({"$ref": reference, "components": spec["components"]});
    let validator = jsonschema::validator_for(&root).unwrap();
    let body: Value = serde_json::from_str(&reply.body)
        .unwrap_or_else(|e| panic!("{method} {path} {status}: not JSON ({e}): {}", reply.body));
    if let Err(e) = validator.validate(&body) {
        panic!(
            "{method} {path} {status} does not match {reference}: {e} at {}: {}",
            e.instance_path(),
            reply.body
        );
    }
}

/// `GET /api/tasks/{task}` once the task no longer runs (4 s at most).
async fn finished(addr: std::net::SocketAddr, token: &str, task: &str) -> common::Reply {
    for _ in 0..200 {
        let t = call_as(addr, "GET", &format!("/api/tasks/{task}"), token).await;
        if t.json()["state"] != "running" {
            return t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("task {task} still runs after 4 s");
}

#[tokio::test]
async fn real_answers_match_the_openapi_document() {
    let s = TestApp::new().serve().await;
    let spec: Value = call(s.addr, "GET", paths::api::OPENAPI, &[], None)
        .await
        .json();
    let health = call(s.addr, "GET", paths::api::HEALTH, &[], None).await;
    valid(&spec, "get", paths::api::HEALTH, &health);
    let signed_in = call(
        s.addr,
        "POST",
        paths::api::SESSION,
        &[],
        Some(r#"{"userId":"u-farmer"}"#),
    )
    .await;
    valid(&spec, "post", paths::api::SESSION, &signed_in);
    let unknown = call(
        s.addr,
        "POST",
        paths::api::SESSION,
        &[],
        Some(r#"{"userId":"u-x"}"#),
    )
    .await;
    valid(&spec, "post", paths::api::SESSION, &unknown);
    let token = login(s.addr, "u-farmer").await;
    let support = login(s.addr, "u-support").await;
    valid(
        &spec,
        "get",
        paths::api::SESSION,
        &call_as(s.addr, "GET", paths::api::SESSION, &token).await,
    );
    valid(
        &spec,
        "get",
        paths::api::SESSION,
        &call(s.addr, "GET", paths::api::SESSION, &[], None).await,
    );
    valid(
        &spec,
        "get",
        paths::api::CONVERSATIONS,
        &call_as(s.addr, "GET", paths::api::CONVERSATIONS, &token).await,
    );
    let created = send(s.addr, &token, "c-u-farmer-support", "スキーマ", "s1").await;
    valid(&spec, "post", paths::api::SEND, &created);
    let retried = send(s.addr, &token, "c-u-farmer-support", "スキーマ", "s1").await;
    valid(&spec, "post", paths::api::SEND, &retried);
    let conflict = send(s.addr, &token, "c-u-farmer-support", "別", "s1").await;
    valid(&spec, "post", paths::api::SEND, &conflict);
    let empty = send(s.addr, &token, "c-u-farmer-support", "  ", "s2").await;
    valid(&spec, "post", paths::api::SEND, &empty);
    let asked = send(
        s.addr,
        &token,
        "c-u-farmer-assistant",
        "14番の牛の健康",
        "s3",
    )
    .await;
    valid(&spec, "post", paths::api::SEND, &asked);
    let task = asked.json()["taskId"].as_str().unwrap().to_owned();
    // Let the task finish, so its result parts are in what the history and task answers hold.
    finished(s.addr, &token, &task).await;
    for (who, conversation) in [
        (&token, "c-u-farmer-support"),
        (&support, "c-u-farmer-support"),
        (&token, "c-u-farmer-assistant"),
    ] {
        let page = call_as(
            s.addr,
            "GET",
            &format!("/api/chat/history?conversationId={conversation}&limit=50"),
            who,
        )
        .await;
        valid(&spec, "get", paths::api::HISTORY, &page);
    }
    let bad_query = call_as(s.addr, "GET", "/api/chat/history?limit=0", &token).await;
    valid(&spec, "get", paths::api::HISTORY, &bad_query);
    valid(
        &spec,
        "get",
        paths::api::TASKS,
        &call_as(s.addr, "GET", paths::api::TASKS, &token).await,
    );
    valid(
        &spec,
        "get",
        "/api/tasks/{taskId}",
        &call_as(s.addr, "GET", &format!("/api/tasks/{task}"), &token).await,
    );
    valid(
        &spec,
        "get",
        "/api/tasks/{taskId}",
        &call_as(s.addr, "GET", "/api/tasks/t-none", &token).await,
    );
    valid(
        &spec,
        "post",
        "/api/tasks/{taskId}/cancel",
        &call_as(s.addr, "POST", &format!("/api/tasks/{task}/cancel"), &token).await,
    );
    valid(
        &spec,
        "post",
        paths::api::STREAM_TICKET,
        &call_as(s.addr, "POST", paths::api::STREAM_TICKET, &token).await,
    );
    // Every report kind's result data, through history, was checked above for the health
    // report; the other two kinds too:
    for (n, text) in [
        "発情予定の牛のリストを作って",
        "今月の出荷報告を作って",
        "こんにちは",
    ]
    .iter()
    .enumerate()
    {
        let asked = send(
            s.addr,
            &token,
            "c-u-farmer-assistant",
            text,
            &format!("k{n}"),
        )
        .await;
        let task = asked.json()["taskId"].as_str().unwrap().to_owned();
        let done = finished(s.addr, &token, &task).await;
        valid(&spec, "get", "/api/tasks/{taskId}", &done);
    }
    s.stop().await;
}

#[test]
fn the_catalogue_refuses_an_event_that_breaks_it() {
    let good = SseEvent {
        id: Some("4294967297".into()),
        event: "message.created".into(),
        data: r#"{"conversationId":"c-1","messageId":"m-1","seq":3}"#.into(),
        retry: None,
    };
    common::check_against_catalogue(&good);
    for (event, data) in [
        (
            "message.created",
            r#"{"conversationId":"c-1","messageId":"m-1","seq":"3"}"#,
        ),
        ("message.created", r#"{"conversationId":"c-1","seq":3}"#),
        ("ready", r#"{"lastEventId":7}"#),
        ("cow.mooed", "{}"),
    ] {
        let bad = SseEvent {
            event: event.into(),
            data: data.into(),
            ..good.clone()
        };
        let caught = std::panic::catch_unwind(|| common::check_against_catalogue(&bad));
        assert!(caught.is_err(), "{event} {data} passed the catalogue");
    }
}
