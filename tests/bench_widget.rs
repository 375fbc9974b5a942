//! Widget benchmarks in headless Chromium, run by `cargo xtask bench` (not by the test
//! command): each prints one `BENCH {json}` line that xtask collects. They assert nothing about
//! speed; they only check that what they measured was really applied.
//!
//! - `widget_apply`: 5,000 stream events (1,000 messages, i.e. 500 user messages and their
//!   500 assistant replies, plus 4,000 task parts and progress updates) applied one by one to a
//!   mounted ChatWidget, each timed from delivery through the render to a forced layout.
//! - `widget_history`: a history page of 2,000 messages applied to a fresh widget: time to the
//!   first render (laid out), then to scroll to the oldest held message and back.

#![cfg(target_arch = "wasm32")]
#![expect(
    clippy::unwrap_used,
    reason = "a benchmark that cannot run should stop loudly"
)]

use farm_chat::{Locale, store::PageKind, widget::bench::Harness};
use farm_chat_protocol::{ConversationId, StreamEvent, chat::HistoryPage};
use leptos::task::tick;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};
use web_sys::HtmlElement;

wasm_bindgen_test_configure!(run_in_browser);

const CONVERSATION: &str = "c-bench-assistant";

fn now() -> f64 {
    web_sys::window().unwrap().performance().unwrap().now()
}

fn root_with_styles() -> HtmlElement {
    let document = web_sys::window().unwrap().document().unwrap();
    let root: HtmlElement = document.create_element("div").unwrap().unchecked_into();
    let style = document.create_element("style").unwrap();
    style.set_text_content(Some(farm_chat::mount::STYLESHEET));
    root.append_child(&style).unwrap();
    document.body().unwrap().append_child(&root).unwrap();
    root
}

fn message_json(seq: u64, assistant: bool) -> String {
    let id = format!("m-{seq}");
    if assistant {
        format!(
            r#"{{"messageId":"{id}","conversationId":"{CONVERSATION}","seq":{seq},"sender":{{"id":"assistant","kind":"assistant","displayName":"牧場アシスタント"}},"text":"発情予定の牛の検索","createdAt":"2026-11-22T00:00:00Z","task":{{"taskId":"t-{seq}","conversationId":"{CONVERSATION}","messageId":"{id}","kind":"cow_list","state":"running","progress":null,"parts":[],"createdAt":"2026-11-22T00:00:00Z","updatedAt":"2026-11-22T00:00:00Z"}}}}"#
        )
    } else {
        format!(
            r#"{{"messageId":"{id}","conversationId":"{CONVERSATION}","seq":{seq},"sender":{{"id":"u-farmer","kind":"user","displayName":"山田 太郎"}},"text":"発情予定の牛のリストを作って #{seq}","createdAt":"2026-11-22T00:00:00Z"}}"#
        )
    }
}

fn page(messages: &[String], has_more: bool) -> HistoryPage {
    serde_json::from_str(&format!(
        r#"{{"messages":[{}],"hasMore":{has_more}}}"#,
        messages.join(",")
    ))
    .unwrap_or_else(|e| panic!("history page: {e}"))
}

fn event(name: &str, data: &str) -> StreamEvent {
    StreamEvent::decode(name, data).unwrap()
}

/// The 8 part events of one assistant reply (`seq` is its message).
fn parts(seq: u64) -> Vec<StreamEvent> {
    let head =
        format!(r#""taskId":"t-{seq}","messageId":"m-{seq}","conversationId":"{CONVERSATION}""#);
    let mut out = vec![
        event(
            "task.status",
            &format!(r#"{{{head},"part":0,"type":"status","text":"発情予定の牛を検索中..."}}"#),
        ),
        event(
            "task.intermediate",
            &format!(
                r#"{{{head},"part":1,"type":"intermediate","text":"該当個体: 30頭見つかりました"}}"#
            ),
        ),
    ];
    for (i, current) in [6, 12, 18, 24, 30].iter().enumerate() {
        out.push(event(
            "task.progress",
            &format!(
                r#"{{{head},"part":2,"type":"progress","current":{current},"total":30,"percentage":{},"text":"個体データを確認中 ({i})"}}"#,
                current * 100 / 30
            ),
        ));
    }
    out.push(event(
        "task.done",
        &format!(r#"{{{head},"state":"succeeded"}}"#),
    ));
    out
}

fn memory() -> (f64, f64) {
    let perf = web_sys::window().unwrap().performance().unwrap();
    let js = js_sys::Reflect::get(&perf, &"memory".into())
        .ok()
        .and_then(|m| js_sys::Reflect::get(&m, &"usedJSHeapSize".into()).ok())
        .and_then(|v| v.as_f64())
        .unwrap_or(f64::NAN);
    let wasm = wasm_bindgen::memory()
        .unchecked_into::<js_sys::WebAssembly::Memory>()
        .buffer()
        .unchecked_into::<js_sys::ArrayBuffer>()
        .byte_length() as f64;
    (js, wasm)
}

/// Mounts a harness widget into `root` for the rest of the page's life.
fn mount(root: &HtmlElement, conversation: ConversationId) -> Harness {
    let slot = std::rc::Rc::new(std::cell::RefCell::new(None));
    let fill = slot.clone();
    leptos::mount::mount_to(root.clone(), move || {
        let (harness, view) = Harness::view(conversation, Locale::Ja);
        *fill.borrow_mut() = Some(harness);
        view
    })
    .forget();
    slot.take().unwrap()
}

/// A fresh root with the stylesheet, a harness widget in it, and its message list.
async fn mounted() -> (HtmlElement, Harness, HtmlElement) {
    let root = root_with_styles();
    let harness = mount(&root, ConversationId(CONVERSATION.into()));
    tick().await;
    let list = root
        .query_selector("[data-testid='message-list']")
        .unwrap()
        .unwrap()
        .unchecked_into::<HtmlElement>();
    (root, harness, list)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let at = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[at - 1]
}

#[wasm_bindgen_test]
async fn widget_apply() {
    let (root, harness, list) = mounted().await;

    let mut times = Vec::with_capacity(5_000);
    let mut dom_only = Vec::with_capacity(5_000);
    let started = now();
    let mut timed = async |apply: &dyn Fn()| {
        let t0 = now();
        apply();
        // Two turns of the executor: the store's effect wakes the changed bubbles, whose
        // render effects then run.
        tick().await;
        tick().await;
        dom_only.push(now() - t0); // store, reactive graph, DOM changes
        let _ = list.offset_height(); // and the browser's style and layout
        times.push(now() - t0);
    };
    for turn in 0..500u64 {
        for (seq, assistant) in [(2 * turn + 1, false), (2 * turn + 2, true)] {
            // What the widget does on `message.created` past what it holds: fetch that page.
            let created = event(
                "message.created",
                &format!(
                    r#"{{"conversationId":"{CONVERSATION}","messageId":"m-{seq}","seq":{seq}}}"#
                ),
            );
            let page = page(&[message_json(seq, assistant)], false);
            timed(&|| {
                harness.event(created.clone());
                harness.history(page.clone(), PageKind::Newer);
            })
            .await;
        }
        for part in parts(2 * turn + 2) {
            timed(&|| harness.event(part.clone())).await;
        }
    }
    let total = now() - started;
    let (js, wasm) = memory();
    let bubbles = root
        .query_selector_all("[data-testid='bubble']")
        .unwrap()
        .length();
    let bars = root
        .query_selector_all("[role='progressbar']")
        .unwrap()
        .length();
    assert!(bubbles > 0 && bars > 0, "the events were rendered");
    times.sort_by(f64::total_cmp);
    dom_only.sort_by(f64::total_cmp);
    console_log!(
        "BENCH {}",
        serde_json::json!({
            "scenario": "widget_apply",
            "params": {"events": times.len(), "messages": 1000, "parts_and_progress": 4000},
            "figures": {
                "total_ms": total,
                "per_event_p50_ms": percentile(&times, 0.5),
                "per_event_p99_ms": percentile(&times, 0.99),
                "per_event_max_ms": percentile(&times, 1.0),
                "without_layout_p50_ms": percentile(&dom_only, 0.5),
                "without_layout_p99_ms": percentile(&dom_only, 0.99),
                "bubbles_held": bubbles, "progress_bars": bars,
                "js_heap_bytes": js, "wasm_memory_bytes": wasm,
            },
        })
    );
}

#[wasm_bindgen_test]
async fn widget_history() {
    let messages: Vec<String> = (1..=2_000u64).map(|seq| message_json(seq, false)).collect();
    let page = page(&messages, false);
    let (root, harness, list) = mounted().await;
    let t0 = now();
    harness.history(page, PageKind::Latest);
    tick().await;
    let height = list.scroll_height(); // forces layout
    let first_render = now() - t0;
    let t1 = now();
    list.set_scroll_top(0);
    let _ = list.offset_height();
    list.set_scroll_top(height);
    let _ = list.offset_height();
    let scroll = now() - t1;
    let bubbles = root
        .query_selector_all("[data-testid='bubble']")
        .unwrap()
        .length();
    assert!(bubbles > 0 && height > 0, "the history was rendered");
    let (js, wasm) = memory();
    console_log!(
        "BENCH {}",
        serde_json::json!({
            "scenario": "widget_history",
            "params": {"history_messages": 2000},
            "figures": {
                "first_render_ms": first_render, "scroll_top_and_back_ms": scroll,
                "bubbles_rendered": bubbles,
                "js_heap_bytes": js, "wasm_memory_bytes": wasm,
            },
        })
    );
}
