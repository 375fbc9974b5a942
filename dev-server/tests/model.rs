//! The assistant on a model, end to end on real ports: the dev-server talks to the scripted
//! model server (`farm_chat_testenv::model`), which speaks OpenAI's SSE chunks and Bedrock's
//! event-stream frames. Tool call → result → streamed answer; an unknown cow or tool goes
//! back to the model; each provider failure as a task error; stop aborts the provider's
//! request; resume mid-answer by `Last-Event-ID`; concurrent answers and the per-user limit;
//! SigV4 and the container credential endpoint; the metrics.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

mod common;

use std::{sync::Arc, sync::atomic::Ordering, time::Duration};

use common::{Sse, SseEvent, TestApp, TestServer, call, login, metrics, send};
use farm_chat_dev_server::{
    assistant::model::{Model, bedrock::Bedrock, openai::OpenAi},
    config::{Engine, ModelConfig},
};
use farm_chat_testenv::model::{GREETING, HEALTH_ANSWER, ModelServer, Wire};
use serde_json::Value;

const ASSISTANT: &str = "c-u-farmer-assistant";

static KEYS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn model_config(model: &ModelServer, wire: Wire) -> ModelConfig {
    ModelConfig {
        engine: match wire {
            Wire::OpenAi => Engine::Openai,
            Wire::Bedrock => Engine::Bedrock,
        },
        model_base_url: Some(model.openai_base()),
        model: Some(match wire {
            Wire::OpenAi => "farm-test-model".into(),
            Wire::Bedrock => "anthropic.claude-3-5-haiku-20241022-v1:0".into(),
        }),
        bedrock_endpoint_url: Some(model.endpoint()),
        model_idle_timeout: Duration::from_secs(10),
        model_flush_interval: Duration::from_millis(20),
        ..ModelConfig::default()
    }
}

/// The engine for `wire` over the scripted server, with static test credentials for Bedrock.
fn engine(model: &ModelServer, wire: Wire, edit: impl FnOnce(&mut ModelConfig)) -> Model {
    let mut config = model_config(model, wire);
    edit(&mut config);
    let metrics = Arc::default();
    match wire {
        Wire::OpenAi => {
            let provider = OpenAi::new(&config, Some("sk-test-key".into())).unwrap();
            Model::with_provider(&config, Box::new(provider), metrics).unwrap()
        }
        Wire::Bedrock => {
            let env = |k: &str| {
                match k {
                    "AWS_REGION" => Some("ap-northeast-1"),
                    "AWS_ACCESS_KEY_ID" => Some("AKIDTESTKEY"),
                    "AWS_SECRET_ACCESS_KEY" => Some("test-secret"),
                    "AWS_SESSION_TOKEN" => Some("test-session-token"),
                    _ => None,
                }
                .map(str::to_owned)
            };
            let provider = Bedrock::with_env(&config, Box::new(env)).unwrap();
            Model::with_provider(&config, Box::new(provider), metrics).unwrap()
        }
    }
}

/// A dev-server whose assistant is the model behind `model`.
async fn server(
    model: &ModelServer,
    wire: Wire,
    edit: impl FnOnce(&mut ModelConfig),
) -> TestServer {
    let mut config = model_config(model, wire);
    let engine = Arc::new(engine(model, wire, |c| {
        edit(c);
        config = c.clone();
    }));
    // The engine is put in place below; the limits and the flush interval come from here.
    config.engine = Engine::Farm;
    TestApp::new()
        .config(move |c| c.model = config)
        .tune(move |s| s.common.assistant = engine)
        .serve()
        .await
}

/// Every event after `ready` up to and including `task.done` of `task`.
async fn until_done(sse: &mut Sse, task: &str) -> Vec<SseEvent> {
    let mut events = Vec::new();
    loop {
        let event = sse
            .next_within(Duration::from_secs(30))
            .await
            .expect("the stream stays open until the task is done");
        if event.event == "ping" {
            continue;
        }
        let done = event.event == "task.done" && event.json()["taskId"] == task;
        events.push(event);
        if done {
            return events;
        }
    }
}

async fn ask_on(s: &TestServer, sse: &mut Sse, token: &str, text: &str, key: &str) -> String {
    let reply = send(s.addr, token, ASSISTANT, text, key).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let task = reply.json()["taskId"].as_str().unwrap().to_owned();
    let _ = sse;
    task
}

/// Asks `text`; returns the task id and its events.
async fn ask(s: &TestServer, token: &str, text: &str) -> (String, Vec<SseEvent>) {
    let mut sse = Sse::open_as(s.addr, token, "").await;
    assert_eq!(sse.next().await.unwrap().event, "ready");
    let key = format!("k-{}", KEYS.fetch_add(1, Ordering::SeqCst));
    let task = ask_on(s, &mut sse, token, text, &key).await;
    let events = until_done(&mut sse, &task).await;
    (task, events)
}

/// The text the deltas make, checking each starts where the last ended.
fn streamed_text(events: &[SseEvent]) -> String {
    let mut text = String::new();
    for e in events.iter().filter(|e| e.event == "task.text") {
        let d = e.json();
        assert_eq!(
            d["offset"].as_u64().unwrap(),
            text.len() as u64,
            "contiguous deltas"
        );
        text.push_str(d["text"].as_str().unwrap());
    }
    text
}

async fn snapshot(s: &TestServer, token: &str, task: &str) -> Value {
    let r = call(
        s.addr,
        "GET",
        &format!("/api/tasks/{task}"),
        &[("Authorization", &format!("Bearer {token}"))],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn snapshot_text(snap: &Value) -> String {
    snap["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "text")
        .map(|p| {
            assert_eq!(p["offset"], 0, "a snapshot's text is whole");
            p["text"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn done_state(events: &[SseEvent]) -> String {
    events.last().unwrap().json()["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn tool_call_then_streamed_answer(wire: Wire) {
    let model = ModelServer::start(wire).unwrap();
    let s = server(&model, wire, |_| {}).await;
    let token = login(s.addr, "u-farmer").await;
    let (task, events) = ask(&s, &token, "14番の様子を教えて").await;
    let names: Vec<&str> = events
        .iter()
        .map(|e| e.event.as_str())
        .filter(|n| n.starts_with("task.") && *n != "task.text")
        .collect();
    assert_eq!(
        names,
        ["task.status", "task.result", "task.done"],
        "{wire:?}"
    );
    assert_eq!(done_state(&events), "succeeded");
    let result = events
        .iter()
        .find(|e| e.event == "task.result")
        .unwrap()
        .json();
    assert_eq!(
        (result["kind"].as_str(), result["data"]["tag"].as_u64()),
        (Some("health_report"), Some(14))
    );
    assert_eq!(streamed_text(&events), HEALTH_ANSWER, "{wire:?}");
    assert!(
        events.iter().filter(|e| e.event == "task.text").count() >= 2,
        "the answer streams in several deltas"
    );
    let snap = snapshot(&s, &token, &task).await;
    assert_eq!(snap["kind"], "answer");
    assert_eq!(snapshot_text(&snap), HEALTH_ANSWER);
    // The model got the tool's result back under the call's id, as compact JSON.
    let requests = model.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    let second = &requests[1];
    match wire {
        Wire::OpenAi => {
            assert!(second.contains("\"tool_call_id\":\"call_1\""), "{second}");
            assert!(second.contains("authorization: Bearer sk-test-key"));
        }
        Wire::Bedrock => {
            assert!(second.contains("\"toolUseId\":\"tooluse_1\""), "{second}");
            assert!(
                second.starts_with(
                    "POST /model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream"
                ),
                "{second}"
            );
            assert!(
                second.contains("authorization: AWS4-HMAC-SHA256 Credential=AKIDTESTKEY/"),
                "{second}"
            );
            assert!(
                second.contains("/ap-northeast-1/bedrock/aws4_request"),
                "{second}"
            );
            assert!(second.contains("x-amz-security-token: test-session-token"));
        }
    }
    assert!(
        second.contains("health_report"),
        "the result went back: {second}"
    );
    // After a reload, history alone shows the answer.
    let history = call(
        s.addr,
        "GET",
        &format!("/api/chat/history?conversationId={ASSISTANT}"),
        &[("Authorization", &format!("Bearer {token}"))],
        None,
    )
    .await
    .json();
    let reply = history["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(snapshot_text(&reply["task"]), HEALTH_ANSWER);
}

#[tokio::test]
async fn openai_tool_call_then_a_streamed_markdown_answer() {
    tool_call_then_streamed_answer(Wire::OpenAi).await;
}

#[tokio::test]
async fn bedrock_tool_use_then_a_streamed_markdown_answer() {
    tool_call_then_streamed_answer(Wire::Bedrock).await;
}

#[tokio::test]
async fn an_unknown_cow_or_tool_goes_back_to_the_model_and_the_answer_goes_on() {
    for wire in [Wire::OpenAi, Wire::Bedrock] {
        let model = ModelServer::start(wire).unwrap();
        let s = server(&model, wire, |_| {}).await;
        let token = login(s.addr, "u-farmer").await;
        let (_, events) = ask(&s, &token, "999番の牛は？").await;
        assert_eq!(done_state(&events), "succeeded");
        assert!(
            events
                .iter()
                .all(|e| e.event != "task.result" && e.event != "task.error")
        );
        assert!(streamed_text(&events).contains("999番の牛はこの牧場にいない"));
        let second = model.requests.lock().unwrap()[1].clone();
        assert!(second.contains("no cow 999"), "{second}");
        let (_, events) = ask(&s, &token, "unknown-tool please").await;
        assert_eq!(done_state(&events), "succeeded", "{wire:?}");
        let third = model.requests.lock().unwrap()[3].clone();
        assert!(third.contains("there is no tool delete_herd"), "{third}");
    }
}

#[tokio::test]
async fn the_model_offers_a_person_as_a_support_offer() {
    let model = ModelServer::start(Wire::OpenAi).unwrap();
    let s = server(&model, Wire::OpenAi, |_| {}).await;
    let token = login(s.addr, "u-farmer").await;
    let (_, events) = ask(&s, &token, "talk-to-person お願いします").await;
    let result = events
        .iter()
        .find(|e| e.event == "task.result")
        .unwrap()
        .json();
    assert_eq!(result["kind"], "support_offer");
    assert!(
        result["data"]["summary"]
            .as_str()
            .unwrap()
            .contains("14番の咳")
    );
}

/// Asks `text` and answers the task's error part and the text kept in its snapshot.
async fn failure(s: &TestServer, token: &str, text: &str) -> (Value, String) {
    let (task, events) = ask(s, token, text).await;
    assert_eq!(done_state(&events), "failed", "{text}");
    let error = events
        .iter()
        .find(|e| e.event == "task.error")
        .expect("an error part")
        .json();
    let snap = snapshot(s, token, &task).await;
    assert_eq!(snap["state"], "failed");
    (error, snapshot_text(&snap))
}

#[tokio::test]
async fn each_provider_failure_is_a_task_error_and_the_text_so_far_stays() {
    for wire in [Wire::OpenAi, Wire::Bedrock] {
        let model = ModelServer::start(wire).unwrap();
        let s = server(&model, wire, |c| {
            c.model_idle_timeout = Duration::from_millis(500)
        })
        .await;
        let token = login(s.addr, "u-farmer").await;
        let (e, _) = failure(&s, &token, "rate-limit の場合").await;
        assert_eq!(e["code"], "model_rate_limited", "{wire:?}");
        assert!(e["text"].as_str().unwrap().contains("混み合って"));
        let (e, _) = failure(&s, &token, "unavailable の場合").await;
        assert_eq!(e["code"], "model_unavailable", "{wire:?}");
        assert!(e["text"].as_str().unwrap().contains("接続できません"));
        let (e, kept) = failure(&s, &token, "stall の場合").await;
        assert_eq!(e["code"], "model_timeout", "{wire:?}");
        assert_eq!(kept, "考えています", "the text before the stall is kept");
        let (e, _) = failure(&s, &token, "garbage in English").await;
        assert_eq!(e["code"], "model_bad_output", "{wire:?}");
        assert!(e["text"].as_str().unwrap().contains("could not be read"));
    }
    // Nobody listening at the endpoint.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let model = ModelServer::start(Wire::OpenAi).unwrap();
    let s = server(&model, Wire::OpenAi, |c| {
        c.model_base_url = Some(format!("http://{closed}/v1"))
    })
    .await;
    let token = login(s.addr, "u-farmer").await;
    let (e, _) = failure(&s, &token, "hello").await;
    assert_eq!(e["code"], "model_unavailable");
}

/// Stops a task; it must have been running.
async fn cancel(s: &TestServer, token: &str, task: &str) {
    let r = call(
        s.addr,
        "POST",
        &format!("/api/tasks/{task}/cancel"),
        &[("Authorization", &format!("Bearer {token}"))],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A stream resumed after event `last_id`.
async fn resume(s: &TestServer, token: &str, last_id: &str) -> Sse {
    Sse::open(
        s.addr,
        "/api/chat/stream",
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Last-Event-ID", last_id),
        ],
    )
    .await
}

/// Waits (generously; not a speed check) until `done()` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} never happened");
}

#[tokio::test]
async fn stop_mid_answer_aborts_the_providers_request_and_keeps_the_text() {
    for wire in [Wire::OpenAi, Wire::Bedrock] {
        let model = ModelServer::start(wire).unwrap();
        let s = server(&model, wire, |_| {}).await;
        let token = login(s.addr, "u-farmer").await;
        let mut sse = Sse::open_as(s.addr, &token, "").await;
        assert_eq!(sse.next().await.unwrap().event, "ready");
        let task = ask_on(&s, &mut sse, &token, "slow answer please", "k-slow").await;
        loop {
            let e = sse.next_non_ping().await.unwrap();
            if e.event == "task.text" {
                break;
            }
        }
        assert_eq!(model.streaming.load(Ordering::SeqCst), 1);
        cancel(&s, &token, &task).await;
        eventually("the provider saw the request end", || {
            model.aborted.load(Ordering::SeqCst) == 1
        })
        .await;
        let events = until_done(&mut sse, &task).await;
        assert_eq!(done_state(&events), "cancelled");
        let snap = snapshot(&s, &token, &task).await;
        let kept = snapshot_text(&snap);
        assert!(kept.starts_with("0。"), "the text so far stays: {kept:?}");
    }
}

#[tokio::test]
async fn a_stream_resumed_mid_answer_gets_the_rest_of_the_text_once() {
    let model = ModelServer::start(Wire::OpenAi).unwrap();
    let s = server(&model, Wire::OpenAi, |_| {}).await;
    let token = login(s.addr, "u-farmer").await;
    let mut sse = Sse::open_as(s.addr, &token, "").await;
    assert_eq!(sse.next().await.unwrap().event, "ready");
    let task = ask_on(&s, &mut sse, &token, "slow answer please", "k-resume").await;
    let mut text = String::new();
    let mut last_id = String::new();
    while text.len() < 30 {
        let e = sse.next_non_ping().await.unwrap();
        if let Some(id) = &e.id {
            last_id = id.clone();
        }
        if e.event == "task.text" {
            assert!(e.id.is_none(), "text deltas are live only");
            assert!(
                common::apply_text(&mut text, &e),
                "contiguous on one stream"
            );
        }
    }
    drop(sse);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut resumed = resume(&s, &token, &last_id).await;
    assert_eq!(resumed.next().await.unwrap().event, "ready");
    // The deltas sent while it was away are not replayed: the first one after shows a gap,
    // and the snapshot fills it. Nothing is doubled, nothing lost.
    let mut gaps = 0;
    while text.len() < 120 {
        let e = resumed.next_non_ping().await.unwrap();
        if e.event == "task.text" && !common::apply_text(&mut text, &e) {
            gaps += 1;
            let snap = snapshot_text(&snapshot(&s, &token, &task).await);
            assert!(
                snap.starts_with(&text),
                "the snapshot extends what was held"
            );
            text = snap;
            assert!(
                common::apply_text(&mut text, &e),
                "the delta applies after the snapshot"
            );
        }
    }
    assert_eq!(gaps, 1, "one refetch after the cut");
    cancel(&s, &token, &task).await;
    let events = until_done(&mut resumed, &task).await;
    for e in events.iter().filter(|e| e.event == "task.text") {
        assert!(common::apply_text(&mut text, e));
    }
    let snap = snapshot(&s, &token, &task).await;
    assert_eq!(
        snapshot_text(&snap),
        text,
        "the snapshot is exactly the text the client holds"
    );
    assert!(
        text.starts_with("0。1。2。3。4。5。6。7。8。9。0。"),
        "{text}"
    );
}

#[tokio::test]
async fn five_answers_run_at_once_and_a_sixth_waits_its_turn() {
    let model = ModelServer::start(Wire::OpenAi).unwrap();
    let s = server(&model, Wire::OpenAi, |_| {}).await;
    let token = login(s.addr, "u-farmer").await;
    let mut sse = Sse::open_as(s.addr, &token, "").await;
    assert_eq!(sse.next().await.unwrap().event, "ready");
    // Five quick answers at once, each whole.
    let mut handles = Vec::new();
    for i in 0..5 {
        let token = token.clone();
        let addr = s.addr;
        handles.push(tokio::spawn(async move {
            let r = send(
                addr,
                &token,
                ASSISTANT,
                &format!("hello {i}"),
                &format!("q-{i}"),
            )
            .await;
            assert_eq!(r.status, 201, "{}", r.body);
            r.json()["taskId"].as_str().unwrap().to_owned()
        }));
    }
    let mut quick = Vec::new();
    for h in handles {
        quick.push(h.await.unwrap());
    }
    let mut done = 0;
    let mut texts: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    while done < 5 {
        let e = sse.next_within(Duration::from_secs(30)).await.unwrap();
        let id = e.json()["taskId"].as_str().unwrap_or("").to_owned();
        if !quick.contains(&id) {
            continue;
        }
        match e.event.as_str() {
            "task.text" => {
                let held = texts.entry(id).or_default();
                assert_eq!(e.json()["offset"].as_u64().unwrap(), held.len() as u64);
                held.push_str(e.json()["text"].as_str().unwrap());
            }
            "task.done" => done += 1,
            _ => {}
        }
    }
    assert_eq!(texts.len(), 5);
    assert!(texts.values().all(|t| t == GREETING), "{texts:?}");
    // Then five long ones: a sixth is refused until one ends.
    let mut tasks = Vec::new();
    for i in 0..5 {
        tasks.push(
            ask_on(
                &s,
                &mut sse,
                &token,
                &format!("slow {i}"),
                &format!("k-{i}"),
            )
            .await,
        );
    }
    let sixth = send(s.addr, &token, ASSISTANT, "slow 6", "k-6").await;
    assert_eq!(sixth.status, 429, "{}", sixth.body);
    assert_eq!(sixth.json()["error"]["code"], "too_many_answers");
    for task in &tasks {
        cancel(&s, &token, task).await;
    }
}

#[tokio::test]
async fn model_metrics_count_answers_tokens_first_tokens_and_tools() {
    let model = ModelServer::start(Wire::OpenAi).unwrap();
    let m = model_config(&model, Wire::OpenAi);
    // Through `--assistant openai` itself, as an operator starts it.
    let s = TestApp::new().config(move |c| c.model = m).serve().await;
    let token = login(s.addr, "u-farmer").await;
    let _ = ask(&s, &token, "14番の様子を教えて").await;
    let text = metrics(s.addr).await.body;
    for line in [
        "farm_chat_model_requests_total{engine=\"openai\",outcome=\"ok\"} 1",
        "farm_chat_model_tool_calls_total{tool=\"cow_health\"} 1",
        "farm_chat_model_tokens_total{engine=\"openai\",direction=\"input\"} 642",
        "farm_chat_model_tokens_total{engine=\"openai\",direction=\"output\"} 84",
        "farm_chat_model_first_token_seconds_count{engine=\"openai\"} 1",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
}

#[tokio::test]
async fn bedrock_takes_credentials_from_the_container_endpoint() {
    // An ECS-style credential endpoint that wants its authorization token.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let creds_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = vec![0; 4096];
            let n = conn.read(&mut buf).await.unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).to_lowercase();
            let body = r#"{"AccessKeyId":"ASIACONTAINER","SecretAccessKey":"s","Token":"container-token","Expiration":"2099-01-01T00:00:00Z"}"#;
            let reply = if request.contains("authorization: pod-secret") {
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_owned()
            };
            conn.write_all(reply.as_bytes()).await.unwrap();
        }
    });
    let model = ModelServer::start(Wire::Bedrock).unwrap();
    let config = model_config(&model, Wire::Bedrock);
    let full_uri = format!("http://{creds_addr}/v1/credentials");
    let env = move |k: &str| match k {
        "AWS_REGION" => Some("us-west-2".to_owned()),
        "AWS_CONTAINER_CREDENTIALS_FULL_URI" => Some(full_uri.clone()),
        "AWS_CONTAINER_AUTHORIZATION_TOKEN" => Some("pod-secret".to_owned()),
        _ => None,
    };
    let provider = Bedrock::with_env(&config, Box::new(env)).unwrap();
    let engine =
        Arc::new(Model::with_provider(&config, Box::new(provider), Arc::default()).unwrap());
    let config = ModelConfig {
        engine: Engine::Farm,
        ..config
    };
    let s = TestApp::new()
        .config(move |c| c.model = config)
        .tune(move |s| s.common.assistant = engine)
        .serve()
        .await;
    let token = login(s.addr, "u-farmer").await;
    let (_, events) = ask(&s, &token, "hello").await;
    assert_eq!(done_state(&events), "succeeded");
    assert_eq!(streamed_text(&events), GREETING);
    let first = model.requests.lock().unwrap()[0].clone();
    assert!(first.contains("Credential=ASIACONTAINER/"), "{first}");
    assert!(first.contains("x-amz-security-token: container-token"));
}

#[tokio::test]
async fn a_model_engine_without_its_settings_is_a_start_up_error() {
    for (engine, want) in [
        (Engine::Openai, "--model-base-url"),
        (Engine::Bedrock, "AWS_REGION"),
    ] {
        let config = ModelConfig {
            engine,
            ..ModelConfig::default()
        };
        let err =
            farm_chat_dev_server::assistant::from_config(&config, Duration::ZERO, Arc::default())
                .unwrap_err();
        if engine == Engine::Bedrock && std::env::var("AWS_REGION").is_ok() {
            assert!(err.contains("--model"), "{err}");
        } else {
            assert!(err.contains(want), "{err}");
        }
    }
}

#[tokio::test]
async fn an_answers_deltas_never_push_other_events_out_of_the_resume_log() {
    let model = ModelServer::start(Wire::OpenAi).unwrap();
    let mut config = model_config(&model, Wire::OpenAi);
    let engine = Arc::new(engine(&model, Wire::OpenAi, |_| {}));
    config.engine = Engine::Farm;
    // A log that holds 20 events at most.
    let s = TestApp::new()
        .limits(farm_chat_dev_server::bus::HubLimits {
            backlog_min_events: 10,
            backlog_hard_cap: 20,
            backlog_max_age: Duration::from_secs(1),
            ..Default::default()
        })
        .config(move |c| c.model = config)
        .tune(move |s| s.common.assistant = engine)
        .serve()
        .await;
    let token = login(s.addr, "u-farmer").await;
    let mut sse = Sse::open_as(s.addr, &token, "").await;
    let ready = sse.next().await.unwrap();
    let before = ready.json()["lastEventId"].as_str().unwrap().to_owned();
    let task = ask_on(&s, &mut sse, &token, "slow answer please", "k-log").await;
    let mut deltas = 0;
    while deltas < 60 {
        if sse.next_non_ping().await.unwrap().event == "task.text" {
            deltas += 1;
        }
    }
    // Sixty deltas later, a client that was away since before the question still resumes.
    let mut resumed = resume(&s, &token, &before).await;
    assert_eq!(resumed.next().await.unwrap().event, "ready");
    let replayed = resumed.next_non_ping().await.unwrap();
    assert_eq!(
        replayed.event, "message.created",
        "not a reset: {replayed:?}"
    );
    cancel(&s, &token, &task).await;
}

#[tokio::test]
async fn a_streaming_answer_is_written_to_the_store_as_it_goes() {
    let model = ModelServer::start(Wire::OpenAi).unwrap();
    let s = server(&model, Wire::OpenAi, |_| {}).await;
    let token = login(s.addr, "u-farmer").await;
    let mut sse = Sse::open_as(s.addr, &token, "").await;
    assert_eq!(sse.next().await.unwrap().event, "ready");
    let task = ask_on(&s, &mut sse, &token, "slow answer please", "k-durable").await;
    let mut deltas = 0;
    while deltas < 50 {
        if sse.next_non_ping().await.unwrap().event == "task.text" {
            deltas += 1;
        }
    }
    // Two and a half seconds of text: what a process killed now would leave is in the store
    // (it is written at least every second while the text grows).
    let stored = s
        .state
        .common
        .store
        .task(&farm_chat_protocol::TaskId(task.clone()))
        .await
        .unwrap()
        .unwrap();
    let text = stored.snapshot.text(0);
    assert!(text.len() >= 20, "stored so far: {text:?}");
    cancel(&s, &token, &task).await;
}
