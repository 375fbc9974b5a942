//! Widget benchmarks in headless Chromium, run by `cargo xtask bench` (not by the test
//! command): each prints one `BENCH {json}` line that xtask collects. They assert nothing about
//! speed; they only check that what they measured was really applied.
//!
//! - `widget_apply`: 5,000 stream events (1,000 messages, i.e. 500 user messages and their
//!   500 assistant replies, plus 4,000 task parts and progress updates) applied one by one to a
//!   mounted ChatWidget, each timed from delivery through the render to a forced layout.
//! - `widget_history`: a history page of 2,000 messages applied to a fresh widget: time to the
//!   first render (laid out), then to scroll to the oldest held message and back.
//! - `widget_answer`: a 4,000-token markdown answer (paragraphs, lists, tables) streamed as 400
//!   `task.text` deltas at 100 a second into a conversation of 500 bubbles: each delta timed
//!   through the render without layout and with it, and the animation frames measured while
//!   it streams.

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

/// A markdown answer of about `tokens` tokens (two characters each), as a model writes one:
/// paragraphs, now and then a list or a table.
fn long_answer(tokens: usize) -> Vec<String> {
    let words = [
        "乳量", "は平", "均よ", "り少", "し低", "めで", "す。", "活動", "量は", "正常", "、体",
        "温も", "安定", "。",
    ];
    let mut out: Vec<String> = Vec::new();
    let mut n = 0;
    let mut block = 0;
    while n < tokens {
        block += 1;
        let mut text = String::new();
        if block % 10 == 0 {
            text.push_str("| 牛 | 乳量 | 活動 |\n|---|--:|--:|\n");
            for r in 0..4 {
                text.push_str(&format!(
                    "| {}番 | {}.5 | {} |\n",
                    block + r,
                    20 + r,
                    90 + r
                ));
                n += 6;
            }
        } else if block % 5 == 0 {
            for i in 0..3 {
                text.push_str(&format!(
                    "- **確認{i}**: {}{}{}\n",
                    words[i],
                    words[i + 3],
                    words[i + 6]
                ));
                n += 5;
            }
        } else {
            for i in 0..50 {
                text.push_str(words[(i + block) % words.len()]);
            }
            text.push('\n');
            n += 50;
        }
        // A blank line between blocks.
        text.push('\n');
        // Split into tokens: two characters each.
        let chars: Vec<char> = text.chars().collect();
        for c in chars.chunks(2) {
            out.push(c.iter().collect());
        }
    }
    out
}

#[wasm_bindgen_test]
async fn widget_answer() {
    let (root, harness, list) = mounted().await;
    // 500 bubbles: 250 questions and their finished replies.
    let mut messages: Vec<String> = Vec::new();
    for seq in 1..=500u64 {
        messages.push(message_json(seq, seq % 2 == 0));
    }
    harness.history(page(&messages, false), PageKind::Latest);
    tick().await;
    let seq = 502u64;
    let created = |s: u64| {
        event(
            "message.created",
            &format!(r#"{{"conversationId":"{CONVERSATION}","messageId":"m-{s}","seq":{s}}}"#),
        )
    };
    let answer_message = message_json(seq, true).replace("\"cow_list\"", "\"answer\"");
    harness.event(created(seq - 1));
    harness.event(created(seq));
    harness.history(
        page(&[message_json(seq - 1, false), answer_message], false),
        PageKind::Newer,
    );
    tick().await;
    let tokens = long_answer(4_000);
    // 400 deltas of 10 tokens, as the server coalesces them.
    let deltas: Vec<String> = tokens.chunks(10).map(|c| c.concat()).collect();
    let head = format!(
        r#""taskId":"t-{seq}","messageId":"m-{seq}","conversationId":"{CONVERSATION}","part":0,"type":"text""#
    );
    // Frames: requestAnimationFrame timestamps while the answer streams.
    let frames = std::rc::Rc::new(std::cell::RefCell::new(Vec::<f64>::new()));
    let running = std::rc::Rc::new(std::cell::Cell::new(true));
    {
        let frames = frames.clone();
        let running = running.clone();
        let callback = std::rc::Rc::new(std::cell::RefCell::new(
            None::<wasm_bindgen::closure::Closure<dyn FnMut(f64)>>,
        ));
        let again = callback.clone();
        *callback.borrow_mut() = Some(wasm_bindgen::closure::Closure::new(move |t: f64| {
            frames.borrow_mut().push(t);
            if running.get() {
                let _ = web_sys::window().unwrap().request_animation_frame(
                    again.borrow().as_ref().unwrap().as_ref().unchecked_ref(),
                );
            }
        }));
        let _ = web_sys::window()
            .unwrap()
            .request_animation_frame(callback.borrow().as_ref().unwrap().as_ref().unchecked_ref());
        std::mem::forget(callback);
    }
    let mut with_layout = Vec::with_capacity(deltas.len());
    let mut without_layout = Vec::with_capacity(deltas.len());
    let mut offset = 0usize;
    let started = now();
    for (i, delta) in deltas.iter().enumerate() {
        let data = format!(
            r#"{{{head},"offset":{offset},"text":{}}}"#,
            serde_json::to_string(delta).unwrap()
        );
        offset += delta.len();
        let e = event("task.text", &data);
        let t0 = now();
        harness.event(e);
        tick().await;
        tick().await;
        without_layout.push(now() - t0);
        let _ = list.offset_height();
        with_layout.push(now() - t0);
        // 100 deltas a second.
        let next = started + 10.0 * (i + 1) as f64;
        let wait = (next - now()).max(0.0);
        let promise = js_sys::Promise::new(&mut |resolve, _| {
            web_sys::window()
                .unwrap()
                .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, wait as i32)
                .unwrap();
        });
        wasm_bindgen_futures::JsFuture::from(promise).await.unwrap();
    }
    running.set(false);
    let ended = now();
    let total = ended - started;
    let shown = root
        .query_selector_all("[data-testid='answer-text'] p, [data-testid='answer-text'] li, [data-testid='answer-text'] tr")
        .unwrap()
        .length();
    assert!(shown > 50, "the answer was rendered: {shown} blocks");
    // The frames while it streamed (a callback may still come after).
    let gaps: Vec<f64> = frames
        .borrow()
        .iter()
        .copied()
        .filter(|t| *t >= started && *t <= ended)
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect();
    let mut sorted_gaps = gaps.clone();
    sorted_gaps.sort_by(f64::total_cmp);
    with_layout.sort_by(f64::total_cmp);
    without_layout.sort_by(f64::total_cmp);
    console_log!(
        "BENCH {}",
        serde_json::json!({
            "scenario": "widget_answer",
            "params": {"tokens": tokens.len(), "deltas": deltas.len(), "deltas_per_second": 100, "bubbles_before": 500, "answer_bytes": offset},
            "figures": {
                "total_ms": total,
                "apply_without_layout_p50_ms": percentile(&without_layout, 0.5),
                "apply_without_layout_p99_ms": percentile(&without_layout, 0.99),
                "apply_with_layout_p99_ms": percentile(&with_layout, 0.99),
                "apply_with_layout_max_ms": percentile(&with_layout, 1.0),
                "frames": gaps.len(),
                "frame_gap_p99_ms": if sorted_gaps.is_empty() { f64::NAN } else { percentile(&sorted_gaps, 0.99) },
                "frame_gap_max_ms": sorted_gaps.last().copied().unwrap_or(f64::NAN),
                "missed_frames": gaps.iter().filter(|g| **g > 16.7 * 1.5).count(),
                "blocks_rendered": shown,
            },
        })
    );
}
