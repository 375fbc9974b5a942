//! Every rule seen failing: the dev-server behind a layer that breaks one thing at a time (it
//! compresses the stream, repeats ids, forgets idempotency, leaks streams across users, …).
//! For each fault the rules that guard against it must fail, so no rule can pass vacuously;
//! and every rule is guarded by some fault here.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

use farm_chat_protocol::paths;
use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use farm_chat_conformance::{
    client::Target,
    rules::{self, Credentials, Options, Outcome},
};
use farm_chat_dev_server::{AppState, Config, app, serve};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use serde_json::Value;

/// One way to break the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    NoSignIn,
    AnonymousSession,
    UntitledConversations,
    PlainErrors,
    NoSeq,
    SeqGaps,
    ForgetIdempotency,
    ReverseHistory,
    IgnoreCursors,
    StripKeys,
    CompressStream,
    DropReady,
    NoRetry,
    FatEvents,
    RepeatIds,
    LeakStreams,
    NoResume,
    ReuseTickets,
    NoPing,
    ProgressBackwards,
    EmptySnapshots,
    IgnoreCancel,
    CorsForEveryone,
    DropOrigin,
    IgnoreReads,
    DropTyping,
    TextGaps,
    TruncatedText,
}

/// The rules a fault must make fail.
fn guarded_by(fault: Fault) -> &'static [&'static str] {
    match fault {
        Fault::NoSignIn => &["session.sign_in"],
        Fault::AnonymousSession => &["session.current"],
        Fault::UntitledConversations => &["conversations.list"],
        Fault::PlainErrors => &[
            "errors.shape",
            "errors.malformed_json",
            "errors.oversized_body",
            "errors.unknown_conversation",
            "errors.foreign_tenant",
            "errors.unauthenticated",
        ],
        Fault::NoSeq => &["send.created"],
        Fault::SeqGaps => &["send.seq_gapless"],
        Fault::ForgetIdempotency => &["send.idempotent_retry", "send.idempotency_conflict"],
        Fault::ReverseHistory => &["history.order"],
        Fault::IgnoreCursors => &["history.paging"],
        Fault::StripKeys => &["history.own_keys"],
        Fault::CompressStream => &["stream.headers"],
        Fault::DropReady => &["stream.ready_first"],
        Fault::NoRetry => &["stream.retry"],
        Fault::FatEvents => &["stream.created_ids_only"],
        Fault::RepeatIds => &["stream.ids_increase"],
        Fault::LeakStreams => &["stream.fanout"],
        Fault::NoResume => &[
            "resume.last_event_id",
            "resume.query",
            "resume.unknown_resets",
        ],
        Fault::ReuseTickets => &["stream.ticket_single_use"],
        Fault::NoPing => &["stream.ping"],
        Fault::ProgressBackwards => &["assistant.task_events"],
        Fault::EmptySnapshots => &["assistant.task_snapshot"],
        Fault::IgnoreCancel => &["assistant.cancel"],
        Fault::CorsForEveryone => &["cors.allowed_only"],
        Fault::DropOrigin => &["cors.foreign_cookie_post"],
        Fault::IgnoreReads => &["read.marks"],
        Fault::DropTyping => &["typing.live_only"],
        Fault::TextGaps => &["assistant.task_events"],
        Fault::TruncatedText => &["assistant.task_snapshot"],
    }
}

const ALL: [Fault; 28] = [
    Fault::NoSignIn,
    Fault::AnonymousSession,
    Fault::UntitledConversations,
    Fault::PlainErrors,
    Fault::NoSeq,
    Fault::SeqGaps,
    Fault::ForgetIdempotency,
    Fault::ReverseHistory,
    Fault::IgnoreCursors,
    Fault::StripKeys,
    Fault::CompressStream,
    Fault::DropReady,
    Fault::NoRetry,
    Fault::FatEvents,
    Fault::RepeatIds,
    Fault::LeakStreams,
    Fault::NoResume,
    Fault::ReuseTickets,
    Fault::NoPing,
    Fault::ProgressBackwards,
    Fault::EmptySnapshots,
    Fault::IgnoreCancel,
    Fault::CorsForEveryone,
    Fault::DropOrigin,
    Fault::IgnoreReads,
    Fault::DropTyping,
    Fault::TextGaps,
    Fault::TruncatedText,
];

#[derive(Clone)]
struct Broken {
    fault: Fault,
    /// The first stream's credentials (LeakStreams); tickets and their owners (ReuseTickets).
    memory: Arc<Mutex<Vec<(String, String)>>>,
}

async fn json_body(response: Response) -> (axum::http::response::Parts, Option<Value>) {
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (parts, serde_json::from_slice(&bytes).ok())
}

fn rebuild(mut parts: axum::http::response::Parts, value: &Value) -> Response {
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(value.to_string()))
}

/// Rewrites each SSE frame of the answer with `edit`.
fn map_stream(response: Response, edit: impl Fn(String) -> String + Send + 'static) -> Response {
    let (parts, body) = response.into_parts();
    let stream = body.into_data_stream().map(move |frame| {
        frame.map(|b| Bytes::from(edit(String::from_utf8_lossy(&b).into_owned())))
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

fn remove_query_param(req: &mut Request, name: &str) {
    let uri = req.uri().clone();
    let Some(query) = uri.query() else { return };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.starts_with(&format!("{name}=")))
        .collect();
    let path = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    if let Ok(new) = path.parse() {
        *req.uri_mut() = new;
    }
}

async fn breaker(State(b): State<Broken>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let stream = path == paths::api::STREAM;
    // What is broken on the way in.
    match b.fault {
        Fault::NoSignIn if path == paths::api::SESSION && method == Method::POST => {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        // Stubs that answer without doing anything.
        Fault::IgnoreReads if path == paths::api::READ => {
            return StatusCode::NO_CONTENT.into_response();
        }
        Fault::DropTyping if path == paths::api::TYPING => {
            return StatusCode::NO_CONTENT.into_response();
        }
        Fault::ForgetIdempotency if path == paths::api::SEND => {
            let (parts, body) = req.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let mut value: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            if let Some(key) = value["idempotencyKey"].as_str() {
                value["idempotencyKey"] = format!("{key}-{}", rand_suffix()).into();
            }
            req = Request::from_parts(parts, Body::from(value.to_string()));
            req.headers_mut().remove(header::CONTENT_LENGTH);
        }
        Fault::IgnoreCursors if path == paths::api::HISTORY => {
            remove_query_param(&mut req, "before");
            remove_query_param(&mut req, "after");
        }
        Fault::NoResume if stream => {
            req.headers_mut().remove("last-event-id");
            remove_query_param(&mut req, "lastEventId");
        }
        Fault::LeakStreams if stream => {
            let auth = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if let Some(auth) = auth {
                let mut memory = b.memory.lock().unwrap();
                if memory.is_empty() {
                    memory.push(("first".into(), auth));
                }
                let first = memory[0].1.clone();
                req.headers_mut().insert(
                    header::AUTHORIZATION,
                    HeaderValue::from_str(&first).unwrap(),
                );
            }
        }
        Fault::ReuseTickets if stream => {
            let ticket = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("ticket=")))
                .map(str::to_owned);
            if let Some(ticket) = ticket {
                let owner = b
                    .memory
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|(t, _)| *t == ticket)
                    .map(|(_, a)| a.clone());
                if let Some(owner) = owner {
                    remove_query_param(&mut req, "ticket");
                    req.headers_mut().insert(
                        header::AUTHORIZATION,
                        HeaderValue::from_str(&owner).unwrap(),
                    );
                }
            }
        }
        Fault::IgnoreCancel if path.ends_with("/cancel") => {
            return (StatusCode::OK, axum::Json(serde_json::json!({}))).into_response();
        }
        Fault::DropOrigin => {
            req.headers_mut().remove(header::ORIGIN);
        }
        _ => {}
    }
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = next.run(req).await;
    // What is broken on the way out.
    match b.fault {
        Fault::AnonymousSession if path == paths::api::SESSION && method == Method::GET => {
            let (parts, _) = json_body(response).await;
            rebuild(parts, &serde_json::json!({}))
        }
        Fault::UntitledConversations if path == paths::api::CONVERSATIONS => {
            let (parts, value) = json_body(response).await;
            let mut value = value.unwrap_or_default();
            if let Some(list) = value["conversations"].as_array_mut() {
                for c in list {
                    c.as_object_mut().map(|o| o.remove("title"));
                }
            }
            rebuild(parts, &value)
        }
        Fault::PlainErrors if response.status().is_client_error() && !stream => {
            let status = response.status();
            (status, format!("error {status}")).into_response()
        }
        Fault::NoSeq | Fault::SeqGaps if path == paths::api::SEND => {
            let (parts, value) = json_body(response).await;
            let mut value = value.unwrap_or_default();
            if b.fault == Fault::NoSeq {
                value.as_object_mut().map(|o| o.remove("seq"));
            } else if let Some(seq) = value["seq"].as_u64() {
                value["seq"] = (seq * 2).into();
            }
            rebuild(parts, &value)
        }
        Fault::ReverseHistory | Fault::StripKeys if path == paths::api::HISTORY => {
            let (parts, value) = json_body(response).await;
            let mut value = value.unwrap_or_default();
            if let Some(list) = value["messages"].as_array_mut() {
                if b.fault == Fault::ReverseHistory {
                    list.reverse();
                } else {
                    for m in list {
                        m.as_object_mut().map(|o| o.remove("idempotencyKey"));
                    }
                }
            }
            rebuild(parts, &value)
        }
        Fault::ReuseTickets if path == paths::api::STREAM_TICKET => {
            let (parts, value) = json_body(response).await;
            let value = value.unwrap_or_default();
            if let (Some(ticket), Some(auth)) = (value["ticket"].as_str(), auth) {
                b.memory.lock().unwrap().push((ticket.to_owned(), auth));
            }
            rebuild(parts, &value)
        }
        Fault::EmptySnapshots if path.starts_with("/api/tasks/") => {
            let (parts, value) = json_body(response).await;
            let mut value = value.unwrap_or_default();
            value["parts"] = Value::Array(Vec::new());
            rebuild(parts, &value)
        }
        Fault::TruncatedText if path.starts_with("/api/tasks/") => {
            let (parts, value) = json_body(response).await;
            let mut value = value.unwrap_or_default();
            for p in value["parts"].as_array_mut().into_iter().flatten() {
                if p["type"] == "text" {
                    let cut: String = p["text"].as_str().unwrap_or("").chars().skip(1).collect();
                    p["text"] = cut.into();
                }
            }
            rebuild(parts, &value)
        }
        Fault::CorsForEveryone => {
            let mut response = response;
            response.headers_mut().insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
            response
        }
        Fault::CompressStream if stream => {
            let mut response = response;
            response
                .headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            response
        }
        Fault::DropReady if stream => map_stream(response, |frame| {
            if frame.contains("event: ready") {
                String::new()
            } else {
                frame
            }
        }),
        Fault::NoRetry if stream => map_stream(response, |frame| {
            frame
                .lines()
                .filter(|l| !l.starts_with("retry:"))
                .map(|l| format!("{l}\n"))
                .collect()
        }),
        Fault::FatEvents if stream => map_stream(response, |frame| {
            frame.replace("\"messageId\":", "\"text\":\"秘密\",\"messageId\":")
        }),
        Fault::RepeatIds if stream => map_stream(response, |frame| {
            frame
                .lines()
                .map(|l| {
                    if l.starts_with("id:") {
                        "id: 1\n".to_owned()
                    } else {
                        format!("{l}\n")
                    }
                })
                .collect()
        }),
        Fault::TextGaps if stream => map_stream(response, |frame| {
            if frame.contains("event: task.text") {
                frame.replace("\"offset\":", "\"offset\":9")
            } else {
                frame
            }
        }),
        Fault::ProgressBackwards if stream => map_stream(response, |frame| {
            if frame.contains("event: task.progress") {
                frame.replace("\"percentage\":", "\"percentage\":-")
            } else {
                frame
            }
        }),
        _ => response,
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

async fn broken_server(fault: Fault) -> (String, AppState) {
    let mut state = AppState::new(Config::for_tests()).await.unwrap();
    state.ping_every = if fault == Fault::NoPing {
        Duration::from_secs(3600)
    } else {
        Duration::from_secs(1)
    };
    state.common.assistant =
        farm_chat_dev_server::assistant::farm::Farm::paced(Duration::from_millis(150));
    let broken = Broken {
        fault,
        memory: Arc::default(),
    };
    let router = app(state.clone()).layer(axum::middleware::from_fn_with_state(broken, breaker));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = state.config.conn_limits();
    tokio::spawn(serve::serve(
        listener,
        router,
        limits,
        state.shutdown.clone(),
    ));
    (format!("http://{addr}"), state)
}

async fn failed_under(fault: Fault) -> BTreeSet<&'static str> {
    let (url, state) = broken_server(fault).await;
    let target = Target::resolve(&url).await.unwrap();
    let options = Options {
        ping_within: Duration::from_secs(3),
        allowed_origin: None,
        ..Options::default()
    };
    let credentials = Credentials::Demo {
        a: "u-farmer".into(),
        b: "u-support".into(),
        other: "u-other".into(),
    };
    let results = rules::run(target, credentials, options).await;
    state.begin_shutdown();
    results
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Fail(_)))
        .map(|c| c.rule.id)
        .collect()
}

#[test]
fn every_rule_is_guarded_by_a_fault() {
    let guarded: BTreeSet<&str> = ALL.iter().flat_map(|f| guarded_by(*f)).copied().collect();
    let all: BTreeSet<&str> = rules::RULES.iter().map(|r| r.id).collect();
    assert_eq!(guarded, all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_makes_its_rules_fail() {
    // All faults at once: each run waits on its own timeouts, not on the others.
    let runs = ALL.map(|fault| tokio::spawn(async move { (fault, failed_under(fault).await) }));
    let mut missed = Vec::new();
    for run in runs {
        let (fault, failed) = run.await.unwrap();
        for rule in guarded_by(fault) {
            if !failed.contains(rule) {
                missed.push(format!(
                    "{fault:?} left {rule} passing (failed: {failed:?})"
                ));
            }
        }
    }
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}
