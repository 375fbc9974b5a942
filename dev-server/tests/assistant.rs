//! The farm assistant end to end on a real port: each flow's events in order, with values
//! computed here from the demo herd; history restoring a reply; tasks listed, fetched and
//! cancelled; idempotent retries; tasks interrupted by a restart; tenant isolation.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

mod common;

use farm_chat_protocol::paths;
use std::{sync::Arc, time::Duration};

use common::{Sse, SseEvent, TestApp, TestServer, bearer, call, call_as, login, send};
use farm_chat_dev_server::{
    herd::{Date, herd},
    store::SqliteStore,
};
use serde_json::Value;

const ASSISTANT: &str = "c-u-farmer-assistant";

async fn server() -> TestServer {
    TestApp::new().serve().await
}

/// Every event after `ready` up to and including `task.done`.
async fn until_done(sse: &mut Sse) -> Vec<SseEvent> {
    let mut events = Vec::new();
    loop {
        let event = sse
            .next_non_ping()
            .await
            .expect("the stream stays open until the task is done");
        let done = event.event == "task.done";
        events.push(event);
        if done {
            return events;
        }
    }
}

/// Sends `text` to the assistant; returns (taskId, the events it produced).
async fn ask(s: &TestServer, token: &str, text: &str, key: &str) -> (String, Vec<SseEvent>) {
    let mut sse = Sse::open_as(s.addr, token, "").await;
    assert_eq!(sse.next().await.unwrap().event, "ready");
    let reply = send(s.addr, token, ASSISTANT, text, key).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let task_id = reply.json()["taskId"]
        .as_str()
        .expect("an assistant send starts a task")
        .to_owned();
    (task_id, until_done(&mut sse).await)
}

fn names(events: &[SseEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event.as_str()).collect()
}

fn texts(events: &[SseEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event == "task.status" || e.event == "task.intermediate")
        .map(|e| e.json()["text"].as_str().unwrap().to_owned())
        .collect()
}

fn today_herd() -> farm_chat_dev_server::herd::Herd {
    herd("demo-farm", Date::today())
}

#[tokio::test]
async fn estrus_flow_streams_the_design_sequence_with_counts_from_the_herd() {
    let s = server().await;
    let token = login(s.addr, "u-farmer").await;
    let (task_id, events) = ask(&s, &token, "発情予定の牛のリストを作って", "e1").await;

    let h = today_herd();
    let due: Vec<u32> = h
        .cows
        .iter()
        .filter(|c| {
            !c.pregnant
                && c.last_insemination
                    .is_some_and(|d| h.today.days_since(d) >= 21)
        })
        .map(|c| c.tag)
        .collect();
    let n = due.len();

    assert_eq!(
        &names(&events)[..2],
        ["message.created", "message.created"],
        "the question, then the reply"
    );
    assert_eq!(events[0].json()["seq"], 1);
    assert_eq!(events[1].json()["seq"], 2);
    let reply_id = events[1].json()["messageId"].clone();
    assert_eq!(
        texts(&events),
        [
            "発情予定の牛を検索中...",
            "検索条件: 最終種付日から21日以上経過",
            &format!("該当個体: {n}頭見つかりました")
        ]
    );
    let task_events: Vec<&SseEvent> = events
        .iter()
        .filter(|e| e.event.starts_with("task."))
        .collect();
    for e in &task_events {
        assert_eq!(e.json()["taskId"], task_id.as_str());
        assert_eq!(
            e.json()["messageId"],
            reply_id,
            "parts belong to the reply message"
        );
    }
    let progress: Vec<Value> = events
        .iter()
        .filter(|e| e.event == "task.progress")
        .map(SseEvent::json)
        .collect();
    assert!(!progress.is_empty());
    assert!(
        progress.iter().all(|p| p["part"] == progress[0]["part"]),
        "progress updates replace one part"
    );
    let last = progress.last().unwrap();
    assert_eq!(
        (
            last["current"].as_u64(),
            last["total"].as_u64(),
            last["percentage"].as_u64()
        ),
        (Some(n as u64), Some(n as u64), Some(100))
    );
    let result = events
        .iter()
        .find(|e| e.event == "task.result")
        .unwrap()
        .json();
    assert_eq!(result["kind"], "cow_list");
    let mut tags: Vec<u32> = result["data"]["cows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["tag"].as_u64().unwrap() as u32)
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, due);
    let done = events.last().unwrap().json();
    assert_eq!(done["state"], "succeeded");
    // Ids keep increasing across the whole flow; the text deltas alone have none (live only).
    let ids: Vec<u64> = events
        .iter()
        .filter(|e| e.event != "task.text")
        .map(SseEvent::id_u64)
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert!(
        events
            .iter()
            .filter(|e| e.event == "task.text")
            .all(|e| e.id.is_none())
    );
}

#[tokio::test]
async fn health_flow_for_cow_14_with_its_own_milk_figures() {
    let s = server().await;
    let token = login(s.addr, "u-farmer").await;
    let (_, events) = ask(&s, &token, "14番の牛の健康状態を分析して", "h1").await;
    let h = today_herd();
    let cow = h.cow(14).unwrap();
    let avg = |m: &[f64]| (m.iter().sum::<f64>() / m.len() as f64 * 10.0).round() / 10.0;
    let lines = texts(&events);
    assert_eq!(lines[0], "14番の牛のデータを取得中...");
    assert_eq!(lines[1], "過去30日間のデータを分析中...");
    assert_eq!(
        lines[2],
        format!(
            "乳量: 平均{}kg/日 (基準値: {}kg/日)",
            avg(&cow.milk[30..]),
            avg(&cow.milk[..30])
        )
    );
    assert!(lines[3].starts_with("活動量: "), "{}", lines[3]);
    assert!(lines[4].starts_with("健康リスク: "), "{}", lines[4]);
    let task_names: Vec<&str> = names(&events)
        .into_iter()
        .filter(|n| n.starts_with("task.") && *n != "task.text")
        .collect();
    assert_eq!(
        task_names,
        [
            "task.status",
            "task.status",
            "task.progress",
            "task.intermediate",
            "task.progress",
            "task.intermediate",
            "task.progress",
            "task.intermediate",
            "task.result",
            "task.done"
        ]
    );
    // After the result, its explanation streams as text deltas, contiguous by byte offset,
    // before `task.done`.
    let all: Vec<&str> = names(&events)
        .into_iter()
        .filter(|n| n.starts_with("task."))
        .collect();
    let result_at = all.iter().position(|n| *n == "task.result").unwrap();
    assert!(
        all[result_at + 1..all.len() - 1]
            .iter()
            .all(|n| *n == "task.text")
    );
    let mut text = String::new();
    for e in events.iter().filter(|e| e.event == "task.text") {
        let d = e.json();
        assert_eq!(
            d["offset"].as_u64().unwrap(),
            text.len() as u64,
            "contiguous"
        );
        text.push_str(d["text"].as_str().unwrap());
    }
    assert!(
        text.starts_with(&format!("14番（{}）のリスクは**", cow.name)),
        "{text}"
    );
    let result = events
        .iter()
        .find(|e| e.event == "task.result")
        .unwrap()
        .json();
    assert_eq!(result["kind"], "health_report");
    assert_eq!(result["data"]["tag"], 14);
    assert_eq!(result["data"]["name"], cow.name.as_str());
    assert!(["low", "medium", "high"].contains(&result["data"]["risk"].as_str().unwrap()));
    assert!(
        !result["data"]["recommendedActions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn report_flow_adds_up_this_months_shipments() {
    let s = server().await;
    let token = login(s.addr, "u-farmer").await;
    let (_, events) = ask(&s, &token, "今月の出荷報告書を作成して", "r1").await;
    let h = today_herd();
    let head: u32 = h.shipments.iter().map(|x| x.head).sum();
    let lines = texts(&events);
    assert_eq!(lines[0], "出荷データを収集中...");
    assert!(lines[1].starts_with("データ期間: "), "{}", lines[1]);
    assert_eq!(lines[2], format!("出荷頭数: {head}頭"));
    assert!(lines[3].starts_with("総出荷量: ") && lines[3].ends_with("kg"));
    assert_eq!(lines[4], "報告書テンプレートを適用中...");
    let result = events
        .iter()
        .find(|e| e.event == "task.result")
        .unwrap()
        .json();
    assert_eq!(result["kind"], "shipment_report");
    assert_eq!(result["data"]["head"], head);
    let (y, m, _) = h.today.ymd();
    assert_eq!(
        result["data"]["pdfUrl"],
        format!("/api/reports/shipments-{y:04}-{m:02}.pdf")
    );
}

#[tokio::test]
async fn english_in_english_out_and_help_for_anything_else() {
    let s = server().await;
    let token = login(s.addr, "u-farmer").await;
    let (_, events) = ask(&s, &token, "Which cows are due for estrus?", "en1").await;
    assert_eq!(texts(&events)[0], "Searching for cows due for estrus...");
    let (_, events) = ask(&s, &token, "hello there", "en2").await;
    let result = events
        .iter()
        .find(|e| e.event == "task.result")
        .unwrap()
        .json();
    assert_eq!(result["kind"], "help");
    assert_eq!(result["data"]["examples"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn an_unknown_cow_ends_in_a_clear_task_error() {
    let s = server().await;
    let token = login(s.addr, "u-farmer").await;
    let (_, events) = ask(&s, &token, "999番の牛の健康状態", "u1").await;
    let error = events
        .iter()
        .find(|e| e.event == "task.error")
        .unwrap()
        .json();
    assert_eq!(error["code"], "unknown_cow");
    assert!(error["text"].as_str().unwrap().contains("999番"));
    assert_eq!(events.last().unwrap().json()["state"], "failed");
}

#[tokio::test]
async fn history_alone_restores_a_finished_reply() {
    let s = server().await;
    let token = login(s.addr, "u-farmer").await;
    let (task_id, events) = ask(&s, &token, "発情予定の牛は？", "hist").await;
    let history = call_as(
        s.addr,
        "GET",
        &format!("/api/chat/history?conversationId={ASSISTANT}"),
        &token,
    )
    .await;
    let messages = history.json()["messages"].as_array().unwrap().clone();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["sender"]["kind"], "user");
    assert!(messages[0].get("task").is_none());
    let reply = &messages[1];
    assert_eq!(reply["sender"]["kind"], "assistant");
    assert_eq!(reply["sender"]["displayName"], "牧場アシスタント");
    assert_eq!(reply["task"]["taskId"], task_id.as_str());
    assert_eq!(reply["task"]["state"], "succeeded");
    assert_eq!(reply["task"]["progress"]["percentage"], 100);
    let streamed_parts: std::collections::BTreeSet<u64> = events
        .iter()
        .filter(|e| e.event.starts_with("task.") && e.event != "task.done")
        .map(|e| e.json()["part"].as_u64().unwrap())
        .collect();
    let stored_parts: Vec<u64> = reply["task"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["part"].as_u64().unwrap())
        .collect();
    assert_eq!(
        stored_parts,
        streamed_parts.into_iter().collect::<Vec<_>>(),
        "one entry per part, in order"
    );
    let parts = reply["task"]["parts"].as_array().unwrap();
    assert_eq!(parts[parts.len() - 2]["type"], "result");
    // The explanation, whole: what the deltas made.
    let text = &parts[parts.len() - 1];
    assert_eq!(
        (text["type"].as_str(), text["offset"].as_u64()),
        (Some("text"), Some(0))
    );
    let streamed: String = events
        .iter()
        .filter(|e| e.event == "task.text")
        .map(|e| e.json()["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text["text"].as_str().unwrap(), streamed);
}

#[tokio::test]
async fn a_running_task_is_listed_fetched_and_cancelled_keeping_its_parts() {
    let s = TestApp::new()
        .tune(|s| {
            s.common.assistant =
                farm_chat_dev_server::assistant::farm::Farm::paced(Duration::from_millis(300))
        })
        .serve()
        .await;
    let token = login(s.addr, "u-farmer").await;
    let auth = [("Authorization", bearer(&token))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut sse = Sse::open_as(s.addr, &token, "").await;
    sse.next().await.unwrap();
    let reply = send(
        s.addr,
        &token,
        ASSISTANT,
        "14番の牛の健康状態を分析して",
        "c1",
    )
    .await;
    let task_id = reply.json()["taskId"].as_str().unwrap().to_owned();
    // Wait for the first part, then look at the running task.
    loop {
        if sse.next_non_ping().await.unwrap().event == "task.status" {
            break;
        }
    }
    let running = call(s.addr, "GET", "/api/tasks?state=running", &auth, None).await;
    let listed = running.json()["tasks"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["taskId"], task_id.as_str());
    assert_eq!(listed[0]["state"], "running");
    assert_eq!(listed[0]["kind"], "health_report");
    let one = call(s.addr, "GET", &format!("/api/tasks/{task_id}"), &auth, None).await;
    assert_eq!(one.status, 200);
    assert!(!one.json()["parts"].as_array().unwrap().is_empty());

    let cancelled = call(
        s.addr,
        "POST",
        &format!("/api/tasks/{task_id}/cancel"),
        &auth,
        None,
    )
    .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    let snapshot = cancelled.json();
    assert_eq!(snapshot["state"], "cancelled");
    let parts = snapshot["parts"].as_array().unwrap();
    assert_eq!(parts[0]["type"], "status", "the parts so far are kept");
    assert_eq!(parts.last().unwrap()["type"], "error");
    assert_eq!(parts.last().unwrap()["code"], "cancelled");

    let rest = until_done(&mut sse).await;
    let error_at = rest.iter().position(|e| e.event == "task.error").unwrap();
    assert_eq!(rest[error_at].json()["code"], "cancelled");
    assert_eq!(
        error_at,
        rest.len() - 2,
        "task.error then task.done, nothing in between"
    );
    assert_eq!(rest.last().unwrap().json()["state"], "cancelled");
    // Nothing more for this task after done, even though its runner had steps left.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        send(s.addr, &token, "c-u-farmer-support", "次", "after")
            .await
            .status,
        201
    );
    assert_eq!(sse.next_non_ping().await.unwrap().event, "message.created");

    let again = call(
        s.addr,
        "POST",
        &format!("/api/tasks/{task_id}/cancel"),
        &auth,
        None,
    )
    .await;
    assert_eq!(
        (again.status, again.json()["error"]["code"].as_str()),
        (409, Some("task_not_running"))
    );
    assert_eq!(
        call(s.addr, "GET", "/api/tasks?state=running", &auth, None)
            .await
            .json()["tasks"],
        serde_json::json!([])
    );
    let cancelled_list = call(s.addr, "GET", "/api/tasks?state=cancelled", &auth, None).await;
    assert_eq!(
        cancelled_list.json()["tasks"][0]["taskId"],
        task_id.as_str()
    );
    assert_eq!(
        call(s.addr, "GET", "/api/tasks?state=bogus", &auth, None)
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn a_retried_assistant_send_does_not_start_a_second_task() {
    let s = server().await;
    let token = login(s.addr, "u-farmer").await;
    let first = send(s.addr, &token, ASSISTANT, "発情予定の牛", "same").await;
    let retry = send(s.addr, &token, ASSISTANT, "発情予定の牛", "same").await;
    assert_eq!((first.status, retry.status), (201, 200));
    assert_eq!(first.json()["taskId"], retry.json()["taskId"]);
    let all = call_as(s.addr, "GET", paths::api::TASKS, &token).await;
    assert_eq!(all.json()["tasks"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn other_users_cannot_see_or_cancel_a_task() {
    let s = server().await;
    let farmer = login(s.addr, "u-farmer").await;
    let reply = send(s.addr, &farmer, ASSISTANT, "発情", "iso").await;
    let task_id = reply.json()["taskId"].as_str().unwrap().to_owned();
    for user in ["u-other", "u-support"] {
        let token = login(s.addr, user).await;
        let seen = call_as(s.addr, "GET", &format!("/api/tasks/{task_id}"), &token).await;
        assert_eq!(seen.status, 404, "{user}");
        let cancel = call_as(
            s.addr,
            "POST",
            &format!("/api/tasks/{task_id}/cancel"),
            &token,
        )
        .await;
        assert_eq!(cancel.status, 404, "{user}");
    }
    let bad = call_as(s.addr, "GET", "/api/tasks/t%0Ax", &farmer).await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn a_task_cut_short_by_a_restart_is_marked_interrupted() {
    let store: Arc<SqliteStore> = Arc::new(SqliteStore::in_memory().unwrap());
    let first = TestApp::new()
        .store(store.clone())
        .tune(|s| {
            s.common.assistant =
                farm_chat_dev_server::assistant::farm::Farm::paced(Duration::from_secs(60))
        })
        .serve()
        .await;
    let token = login(first.addr, "u-farmer").await;
    let reply = send(first.addr, &token, ASSISTANT, "発情予定の牛", "restart").await;
    let task_id = reply.json()["taskId"].as_str().unwrap().to_owned();
    first.stop().await;

    let second = TestApp::new().store(store).serve().await;
    let task = call_as(second.addr, "GET", &format!("/api/tasks/{task_id}"), &token).await;
    let task = task.json();
    assert_eq!(task["state"], "failed");
    assert_eq!(
        task["parts"].as_array().unwrap().last().unwrap()["code"],
        "interrupted"
    );
}

/// The assistant answers in the widget's language when the send says which, whatever the
/// text's own characters suggest; without it, the text decides.
#[tokio::test]
async fn replies_follow_the_widgets_language() {
    let s = server().await;
    let token = login(s.addr, "u-farmer").await;
    let ask_in = |text: &str, key: &str, locale: Option<&str>| {
        let mut body =
            serde_json::json!({"conversationId": ASSISTANT, "text": text, "idempotencyKey": key});
        if let Some(locale) = locale {
            body["locale"] = locale.into();
        }
        let (addr, token) = (s.addr, token.clone());
        async move {
            call(
                addr,
                "POST",
                paths::api::SEND,
                &[("Authorization", &bearer(&token))],
                Some(&body.to_string()),
            )
            .await
        }
    };
    for (text, key, locale, name) in [
        ("<img src=x>", "l1", Some("ja"), "牧場アシスタント"),
        ("HX-200", "l2", Some("ja"), "牧場アシスタント"),
        ("14番の牛の健康", "l3", Some("en"), "Farm assistant"),
        ("<img src=x>", "l4", None, "Farm assistant"),
        ("こんにちは", "l5", None, "牧場アシスタント"),
    ] {
        let sent = ask_in(text, key, locale).await;
        assert_eq!(sent.status, 201, "{}", sent.body);
        let seq = sent.json()["seq"].as_u64().unwrap();
        let page = call_as(
            s.addr,
            "GET",
            &format!("/api/chat/history?conversationId={ASSISTANT}&after={seq}&limit=1"),
            &token,
        )
        .await;
        let reply = &page.json()["messages"][0];
        assert_eq!(reply["sender"]["displayName"], name, "{text} {locale:?}");
        let title = reply["text"].as_str().unwrap();
        let japanese = title
            .chars()
            .any(|c| ('\u{3040}'..='\u{9fff}').contains(&c));
        assert_eq!(
            japanese,
            name == "牧場アシスタント",
            "{text} {locale:?}: {title}"
        );
    }
    let unknown = ask_in("hello", "l6", Some("fr")).await;
    assert_eq!(
        unknown.status, 400,
        "an unknown language fails loudly: {}",
        unknown.body
    );
}
