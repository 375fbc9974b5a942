//! Browser tests (wasm-bindgen-test in headless Chromium), run by `cargo xtask test`.
//!
//! Each test mounts into a fresh root element, acts like a user, `tick()`s, and reads the DOM
//! by `data-testid`. Tests that need the dev-server read its API base from
//! `FARM_CHAT_TEST_API_BASE`, which the test command sets after starting the server on a free
//! loopback port.

#![cfg(target_arch = "wasm32")]
#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

use std::{cell::RefCell, rc::Rc};

use farm_chat::widget::parts::{ProgressBar, StreamingMessage, prefers_reduced_motion};
use farm_chat::{
    ChatLauncher, ChatWidget, Locale, ServerHealth,
    api::{Api, TokenAnswer, TokenProvider},
    connection::{
        Status,
        hook::{UseChatStreamOptions, UseChatStreamReturn, use_chat_stream_with_options},
        share::Role,
    },
};
use farm_chat_protocol::paths;
use farm_chat_protocol::{MessageId, StreamEvent, chat::SendResponse, task::Progress};
use leptos::{prelude::*, task::tick};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use web_sys::HtmlElement;

wasm_bindgen_test_configure!(run_in_browser);

/// A new, empty element under `<body>` for one test.
fn fresh_root() -> HtmlElement {
    let document = web_sys::window().unwrap().document().unwrap();
    let root = document.create_element("div").unwrap();
    document.body().unwrap().append_child(&root).unwrap();
    root.unchecked_into()
}

fn by_testid(root: &HtmlElement, id: &str) -> HtmlElement {
    root.query_selector(&format!("[data-testid='{id}']"))
        .unwrap()
        .unwrap_or_else(|| panic!("no element with data-testid={id}"))
        .unchecked_into()
}

async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .unwrap();
    });
    wasm_bindgen_futures::JsFuture::from(promise).await.unwrap();
}

/// Waits (up to ~10 s, generous on purpose: this is not a speed check) until `data-state`
/// leaves `checking`, and returns it.
async fn settled_state(el: &HtmlElement) -> String {
    for _ in 0..200 {
        tick().await;
        let state = el.get_attribute("data-state").unwrap_or_default();
        if state != "checking" {
            return state;
        }
        sleep_ms(50).await;
    }
    panic!("the health check never settled");
}

fn api_base() -> &'static str {
    // Not `env!`: the other tests (and clippy) must still build without a server.
    let Some(base) = option_env!("FARM_CHAT_TEST_API_BASE") else {
        panic!("FARM_CHAT_TEST_API_BASE is unset: run the browser tests with `cargo xtask test`");
    };
    base
}

/// Waits (generously: this is not a speed check) until `done()` holds.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        tick().await;
        if done() {
            return;
        }
        sleep_ms(50).await;
    }
    panic!("timed out waiting for {what}");
}

/// Signs in as `u-farmer` (cookie and token) and returns the token.
async fn sign_in(api: &Api) -> String {
    sign_in_as(api, "u-farmer").await
}

/// Signs in as `user` (cookie and token) and returns the token.
async fn sign_in_as(api: &Api, user: &str) -> String {
    let (_, session): (u16, farm_chat_protocol::session::SessionInfo) =
        api.post("/session", &[("userId", user)]).await.unwrap();
    session.token.expect("a token")
}

/// Waits until the widget under `root` shows a live stream.
async fn wait_connected(root: &HtmlElement) {
    wait_until("connected", || {
        by_testid(root, "connection-status")
            .get_attribute("data-state")
            .as_deref()
            == Some("connected")
    })
    .await;
}

async fn send(api: &Api, text: &str) -> MessageId {
    let key = format!("k-{}", js_sys::Math::random());
    let body = [
        ("conversationId", "c-u-farmer-support"),
        ("text", text),
        ("idempotencyKey", key.as_str()),
    ];
    let (status, sent): (u16, SendResponse) = api.post(paths::SEND, &body).await.unwrap();
    assert_eq!(status, 201);
    sent.message_id
}

type Events = Rc<RefCell<Vec<StreamEvent>>>;
type Hook = Rc<RefCell<Option<UseChatStreamReturn>>>;

/// Mounts a component using the hook; returns the recorded events, the hook's return and the
/// mount (dropping it unmounts).
fn mount_stream(options: UseChatStreamOptions) -> (Events, Hook, impl Drop, HtmlElement) {
    let events: Events = Rc::default();
    let hook: Hook = Rc::default();
    let root = fresh_root();
    let (record, slot) = (events.clone(), hook.clone());
    let mounted = leptos::mount::mount_to(root.clone(), move || {
        let options = options.on_event(move |e| record.borrow_mut().push(e));
        let ret = use_chat_stream_with_options(options);
        let status = ret.status;
        *slot.borrow_mut() = Some(ret);
        view! { <p data-testid="stream-status">{move || format!("{:?}", status.get())}</p> }
    });
    (events, hook, mounted, root)
}

/// Waits until the recorded events include the stream's `ready`.
async fn wait_ready(events: &Events, what: &str) {
    wait_until(what, || {
        events
            .borrow()
            .iter()
            .any(|e| matches!(e, StreamEvent::Ready(_)))
    })
    .await;
}

fn created(events: &Events, id: &MessageId) -> usize {
    events
        .borrow()
        .iter()
        .filter(|e| matches!(e, StreamEvent::MessageCreated(m) if &m.message_id == id))
        .count()
}

#[wasm_bindgen_test]
async fn the_stream_hook_resumes_after_a_cut_without_loss_or_duplicates() {
    let api = Api::new(api_base());
    sign_in(&api).await;
    let refetches = Rc::new(std::cell::Cell::new(0));
    let counter = refetches.clone();
    let options = UseChatStreamOptions::default()
        .api_base(api_base())
        .on_refetch(move || counter.set(counter.get() + 1));
    let (events, hook, _mounted, root) = mount_stream(options);
    let status = move || hook.borrow().as_ref().map(|h| h.status.get_untracked());
    wait_until("connected", || status() == Some(Status::Connected)).await;
    assert_eq!(
        by_testid(&root, "stream-status").text_content().as_deref(),
        Some("Connected")
    );
    wait_ready(&events, "ready").await;

    let before = send(&api, "切断前").await;
    wait_until("the first message's event", || {
        created(&events, &before) == 1
    })
    .await;

    // The server cuts every stream; a message is sent while the widget is reconnecting.
    let _: farm_chat::api::Ignored = api.post_empty("/test/drop-streams").await.unwrap();
    let during = send(&api, "切断中").await;
    wait_until("the reconnect's refetch", || refetches.get() >= 1).await;
    wait_until("the message sent during the cut", || {
        created(&events, &during) == 1
    })
    .await;
    wait_until("connected again", || status() == Some(Status::Connected)).await;

    let after = send(&api, "再接続後").await;
    wait_until("a live message after the reconnect", || {
        created(&events, &after) == 1
    })
    .await;
    for id in [&before, &during, &after] {
        assert_eq!(created(&events, id), 1, "{id} exactly once");
    }
    let readies = events
        .borrow()
        .iter()
        .filter(|e| matches!(e, StreamEvent::Ready(_)))
        .count();
    assert_eq!(readies, 2, "one ready per connection");
}

#[wasm_bindgen_test]
async fn with_a_token_provider_the_stream_uses_a_ticket() {
    let token = sign_in(&Api::new(api_base())).await;
    let bearer = Api {
        base: api_base().to_owned(),
        token: Some(TokenProvider::fixed(token.clone())),
    };
    let options = UseChatStreamOptions::default()
        .api_base(api_base())
        .token(Some(TokenProvider::fixed(token)));
    let (events, _hook, _mounted, _root) = mount_stream(options);
    wait_ready(&events, "ready over a ticket").await;
    let id = send(&bearer, "トークンで").await;
    wait_until("the event", || created(&events, &id) == 1).await;
}

async fn open_streams() -> i64 {
    let origin = api_base().trim_end_matches("/api");
    let text = gloo_net::http::Request::get(&format!("{origin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("farm_chat_open_streams "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

/// Waits until the server counts `n` open streams; returns the last count seen.
async fn open_streams_become(n: i64) -> i64 {
    let mut now = open_streams().await;
    for _ in 0..100 {
        if now == n {
            break;
        }
        sleep_ms(200).await;
        now = open_streams().await;
    }
    now
}

#[wasm_bindgen_test]
async fn unmounting_closes_the_stream() {
    sign_in(&Api::new(api_base())).await;
    // Earlier tests' streams close as they unmount: start from none.
    assert_eq!(open_streams_become(0).await, 0);
    let (events, _hook, mounted, _root) =
        mount_stream(UseChatStreamOptions::default().api_base(api_base()));
    wait_ready(&events, "ready").await;
    assert_eq!(open_streams().await, 1);
    drop(mounted);
    assert_eq!(
        open_streams_become(0).await,
        0,
        "the server saw the stream close"
    );
}

#[wasm_bindgen_test]
async fn launcher_opens_and_closes_the_panel() {
    let root = fresh_root();
    let _mounted = leptos::mount::mount_to(root.clone(), || {
        view! {
            <ChatLauncher locale=Locale::Ja>
                <p data-testid="panel-body">"こんにちは"</p>
                <textarea data-testid="panel-field"></textarea>
            </ChatLauncher>
        }
    });
    let toggle = by_testid(&root, "launcher-toggle");
    let panel = by_testid(&root, "chat-panel");
    assert!(panel.has_attribute("hidden"), "the panel starts closed");
    assert_eq!(
        toggle.get_attribute("aria-expanded").as_deref(),
        Some("false")
    );
    assert_eq!(toggle.text_content().as_deref(), Some("チャットを開く"));

    toggle.click();
    tick().await;
    assert!(!panel.has_attribute("hidden"), "a click opens the panel");
    assert_eq!(
        toggle.get_attribute("aria-expanded").as_deref(),
        Some("true")
    );
    assert_eq!(toggle.text_content().as_deref(), Some("チャットを閉じる"));
    assert_eq!(
        by_testid(&root, "panel-body").text_content().as_deref(),
        Some("こんにちは")
    );

    let document = web_sys::window().unwrap().document().unwrap();
    let field = by_testid(&root, "panel-field");
    wait_until("the text box to take the focus", || {
        document.active_element().as_ref() == Some(field.as_ref())
    })
    .await;

    toggle.click();
    tick().await;
    assert!(panel.has_attribute("hidden"), "a second click closes it");

    // Escape closes it too, and gives the focus back to the button.
    toggle.click();
    tick().await;
    let init = web_sys::KeyboardEventInit::new();
    init.set_key("Escape");
    init.set_bubbles(true);
    let escape =
        web_sys::KeyboardEvent::new_with_keyboard_event_init_dict("keydown", &init).unwrap();
    field.dispatch_event(&escape).unwrap();
    tick().await;
    assert!(panel.has_attribute("hidden"), "Escape closes the panel");
    assert_eq!(
        document.active_element().as_ref(),
        Some(toggle.as_ref()),
        "and the focus is back on the launcher button"
    );
}

#[wasm_bindgen_test]
async fn launcher_speaks_english_when_asked() {
    let root = fresh_root();
    let _mounted = leptos::mount::mount_to(root.clone(), || {
        view! { <ChatLauncher locale=Locale::En>""</ChatLauncher> }
    });
    let toggle = by_testid(&root, "launcher-toggle");
    assert_eq!(toggle.text_content().as_deref(), Some("Open chat"));
    toggle.click();
    tick().await;
    assert_eq!(toggle.text_content().as_deref(), Some("Close chat"));
}

#[wasm_bindgen_test]
async fn health_line_shows_the_real_dev_server_answering() {
    let api_base = api_base();
    let root = fresh_root();
    let _mounted = leptos::mount::mount_to(root.clone(), move || {
        view! { <ServerHealth api_base=api_base locale=Locale::Ja /> }
    });
    let line = by_testid(&root, "server-health");
    assert_eq!(
        settled_state(&line).await,
        "ok",
        "title: {:?}",
        line.get_attribute("title")
    );
    assert_eq!(
        line.text_content().as_deref(),
        Some("サーバーに接続しました")
    );
}

#[wasm_bindgen_test]
async fn health_line_says_so_when_nothing_answers() {
    let root = fresh_root();
    // Port 9 (discard) on loopback: nothing listens there, the connection is refused.
    let _mounted = leptos::mount::mount_to(root.clone(), || {
        view! { <ServerHealth api_base="http://127.0.0.1:9/api" locale=Locale::En /> }
    });
    let line = by_testid(&root, "server-health");
    assert_eq!(settled_state(&line).await, "unreachable");
    assert_eq!(
        line.text_content().as_deref(),
        Some("Cannot reach the server")
    );
}

fn all_by_testid(root: &HtmlElement, id: &str) -> Vec<HtmlElement> {
    let list = root
        .query_selector_all(&format!("[data-testid='{id}']"))
        .unwrap();
    (0..list.length())
        .filter_map(|i| list.item(i))
        .map(|n| n.unchecked_into())
        .collect()
}

fn text_of(el: &HtmlElement) -> String {
    el.text_content().unwrap_or_default()
}

/// Types `text` into the widget's composer and presses its send button.
async fn type_and_send(root: &HtmlElement, text: &str) {
    let area: web_sys::HtmlTextAreaElement = by_testid(root, "composer").unchecked_into();
    area.set_value(text);
    area.dispatch_event(&web_sys::Event::new("input").unwrap())
        .unwrap();
    tick().await;
    // Enabled once there is text and the conversation's history is in (a loaded machine may
    // take a moment for the latter).
    let send = by_testid(root, "send");
    wait_until("the send button enabled", || {
        !send.has_attribute("disabled")
    })
    .await;
    send.click();
    tick().await;
}

/// Waits until the bubble containing `text` is stored (no longer sending).
async fn wait_sent(root: &HtmlElement, text: &str) {
    wait_until("the bubble to be stored", || {
        bubbles_with(root, text)
            .first()
            .and_then(|b| b.get_attribute("data-state"))
            .as_deref()
            == Some("sent")
    })
    .await;
}

/// Bubbles whose text contains `needle`.
fn bubbles_with(root: &HtmlElement, needle: &str) -> Vec<HtmlElement> {
    all_by_testid(root, "bubble")
        .into_iter()
        .filter(|b| text_of(b).contains(needle))
        .collect()
}

async fn mount_widget(support: bool) -> (HtmlElement, impl Drop) {
    sign_in(&Api::new(api_base())).await;
    let root = fresh_root();
    let mounted = leptos::mount::mount_to(root.clone(), move || {
        view! { <ChatWidget api_base=api_base() locale=Locale::Ja support=support /> }
    });
    wait_connected(&root).await;
    (root, mounted)
}

fn unique(text: &str) -> String {
    format!("{text} #{}", (js_sys::Math::random() * 1e9) as u64)
}

#[wasm_bindgen_test]
async fn a_sent_message_shows_exactly_once() {
    let (root, _mounted) = mount_widget(true).await;
    let first = unique("一通目");
    type_and_send(&root, &first).await;
    assert_eq!(
        bubbles_with(&root, &first).len(),
        1,
        "the bubble appears at once"
    );
    wait_sent(&root, &first).await;
    // A second message: once its echo is in, the first one's is too (events are ordered).
    let second = unique("二通目");
    type_and_send(&root, &second).await;
    wait_sent(&root, &second).await;
    assert_eq!(
        bubbles_with(&root, &first).len(),
        1,
        "one bubble, never two"
    );
    assert_eq!(bubbles_with(&root, &second).len(), 1);
    let area: web_sys::HtmlTextAreaElement = by_testid(&root, "composer").unchecked_into();
    assert_eq!(area.value(), "", "the composer is cleared");
    assert!(
        by_testid(&root, "send").has_attribute("disabled"),
        "and the send button disabled"
    );
}

#[wasm_bindgen_test]
async fn the_estrus_flow_shows_its_lines_a_full_progress_bar_and_a_sortable_table() {
    let (root, _mounted) = mount_widget(false).await;
    let question = unique("発情予定の牛のリストを作って");
    type_and_send(&root, &question).await;
    // Finished: the last bubble is a reply whose own task succeeded (not an earlier task).
    let finished = || {
        all_by_testid(&root, "bubble").last().is_some_and(|b| {
            all_by_testid(b, "task")
                .first()
                .and_then(|t| t.get_attribute("data-state"))
                .as_deref()
                == Some("succeeded")
                && text_of(b).contains("発情予定の牛")
        })
    };
    wait_until("the task to finish", finished).await;
    let reply = all_by_testid(&root, "bubble").into_iter().last().unwrap();
    let lines: Vec<String> = all_by_testid(&reply, "streaming-line")
        .iter()
        .map(text_of)
        .collect();
    assert!(lines[0].contains("発情予定の牛を検索中..."), "{lines:?}");
    assert!(
        lines[1].contains("検索条件: 最終種付日から21日以上経過"),
        "{lines:?}"
    );
    let found: usize = lines[2]
        .split("該当個体: ")
        .nth(1)
        .and_then(|r| r.split('頭').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    let bar = by_testid(&reply, "progress");
    assert_eq!(bar.get_attribute("role").as_deref(), Some("progressbar"));
    assert_eq!(
        bar.get_attribute("aria-valuenow"),
        bar.get_attribute("aria-valuemax")
    );
    assert!(text_of(&bar).contains("(100%)"), "{}", text_of(&bar));
    let rows = || all_by_testid(&reply, "cow-row");
    assert_eq!(
        rows().len(),
        found,
        "the table lists the cows the search found"
    );
    assert!(
        all_by_testid(&reply, "stop").is_empty(),
        "no stop button once done"
    );
    // Sort by tag: ascending, then descending.
    let tags = || {
        rows()
            .iter()
            .map(|r| {
                text_of(r)
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse::<u32>()
                    .unwrap()
            })
            .collect::<Vec<_>>()
    };
    all_by_testid(&reply, "sort")[0].click();
    tick().await;
    let ascending = tags();
    assert!(ascending.windows(2).all(|w| w[0] <= w[1]), "{ascending:?}");
    all_by_testid(&reply, "sort")[0].click();
    tick().await;
    let descending = tags();
    assert!(
        descending.windows(2).all(|w| w[0] >= w[1]),
        "{descending:?}"
    );
    assert!(
        by_testid(&reply, "csv")
            .get_attribute("href")
            .unwrap()
            .starts_with("data:text/csv")
    );
}

#[wasm_bindgen_test]
async fn after_a_cut_the_widget_reconnects_and_shows_a_message_sent_meanwhile_once() {
    let (root, _mounted) = mount_widget(true).await;
    let api = Api::new(api_base());
    let _: farm_chat::api::Ignored = api.post_empty("/test/drop-streams").await.unwrap();
    let meanwhile = unique("切断中に別タブから");
    send(&api, &meanwhile).await;
    wait_until("the message sent meanwhile", || {
        bubbles_with(&root, &meanwhile).len() == 1
    })
    .await;
    wait_connected(&root).await;
    let after = unique("再接続後");
    send(&api, &after).await;
    wait_until("a live message", || bubbles_with(&root, &after).len() == 1).await;
    assert_eq!(bubbles_with(&root, &meanwhile).len(), 1, "exactly once");
}

/// Makes the page's next `n` fetches whose URL contains every one of `needles` fail as a
/// flaky network would (the stream, an EventSource, stays up); restores `fetch` on drop.
struct FailingFetches;

impl FailingFetches {
    fn next(n: u32, needles: &[&str]) -> Self {
        let needles = serde_json::to_string(needles).unwrap();
        js_sys::Function::new_no_args(&format!(
            "if (!window.__fcRealFetch) window.__fcRealFetch = window.fetch; \
             window.__fcFailures = {n}; \
             window.fetch = function (input, init) {{ \
               const url = typeof input === 'string' ? input : input.url; \
               if (window.__fcFailures > 0 && {needles}.every(n => url.includes(n))) {{ \
                 window.__fcFailures -= 1; \
                 return Promise.reject(new TypeError('Failed to fetch (test)')); \
               }} \
               return window.__fcRealFetch.call(window, input, init); \
             }};"
        ))
        .call0(&JsValue::NULL)
        .unwrap();
        Self
    }

    fn left() -> f64 {
        js_sys::Reflect::get(&web_sys::window().unwrap(), &"__fcFailures".into())
            .unwrap()
            .as_f64()
            .unwrap_or(0.0)
    }
}

/// Puts the page's own `fetch` back, and lets any held fetches go.
fn restore_fetch() {
    let _ = js_sys::Function::new_no_args(
        "if (window.__fcRealFetch) { window.fetch = window.__fcRealFetch; delete window.__fcRealFetch; } \
         for (const go of window.__fcHeld || []) go(); window.__fcHeld = [];",
    )
    .call0(&JsValue::NULL);
}

impl Drop for FailingFetches {
    fn drop(&mut self) {
        restore_fetch();
    }
}

/// Holds back the page's fetches whose URL contains `needle` until dropped (or released): a
/// thin link on which that answer is slow to come. Restores `fetch` on drop.
struct HeldFetches;

impl HeldFetches {
    fn hold(needle: &str) -> Self {
        js_sys::Function::new_no_args(&format!(
            "if (!window.__fcRealFetch) window.__fcRealFetch = window.fetch; \
             window.__fcHeld = []; \
             window.fetch = function (input, init) {{ \
               const url = typeof input === 'string' ? input : input.url; \
               if (url.includes({needle:?})) {{ \
                 return new Promise((go) => window.__fcHeld.push(go)) \
                   .then(() => window.__fcRealFetch.call(window, input, init)); \
               }} \
               return window.__fcRealFetch.call(window, input, init); \
             }};"
        ))
        .call0(&JsValue::NULL)
        .unwrap();
        Self
    }

    fn held() -> u32 {
        js_sys::Reflect::get(&web_sys::window().unwrap(), &"__fcHeld".into())
            .ok()
            .and_then(|held| js_sys::Reflect::get(&held, &"length".into()).ok())
            .and_then(|n| n.as_f64())
            .unwrap_or(0.0) as u32
    }
}

impl Drop for HeldFetches {
    fn drop(&mut self) {
        restore_fetch();
    }
}

/// A farmer who sends the moment the composer appears, before the conversation is known (its
/// fetch held back): the text is not cleared away unsent, the composer says why it waits, and
/// once the conversation is there the message goes out and is stored exactly once.
#[wasm_bindgen_test]
async fn a_message_typed_before_the_conversation_is_known_is_never_lost() {
    let api = Api::new(api_base());
    sign_in(&api).await;
    let held = HeldFetches::hold("/conversations");
    let root = fresh_root();
    let mounted = leptos::mount::mount_to(root.clone(), move || {
        view! { <ChatWidget api_base=api_base() locale=Locale::Ja support=true /> }
    });
    wait_until("the conversation's fetch to be held", || {
        HeldFetches::held() > 0
    })
    .await;
    let text = unique("すぐに送信");
    let area: web_sys::HtmlTextAreaElement = by_testid(&root, "composer").unchecked_into();
    area.set_value(&text);
    area.dispatch_event(&web_sys::Event::new("input").unwrap())
        .unwrap();
    tick().await;
    assert!(
        by_testid(&root, "send").has_attribute("disabled"),
        "nothing can be sent before the conversation is known"
    );
    // Enter, as a farmer would press it.
    let enter = web_sys::KeyboardEventInit::new();
    enter.set_key("Enter");
    enter.set_cancelable(true);
    area.dispatch_event(
        &web_sys::KeyboardEvent::new_with_keyboard_event_init_dict("keydown", &enter).unwrap(),
    )
    .unwrap();
    tick().await;
    assert_eq!(area.value(), text, "the text stays in the box");
    assert!(text_of(&by_testid(&root, "composer-wait")).contains("会話を読み込んでいます"));
    assert!(bubbles_with(&root, &text).is_empty());

    drop(held);
    wait_until("the composer to stop waiting", || {
        root.query_selector("[data-testid=composer-wait]")
            .ok()
            .flatten()
            .is_none()
    })
    .await;
    by_testid(&root, "send").click();
    tick().await;
    wait_sent(&root, &text).await;
    let history: farm_chat_protocol::chat::HistoryPage = api
        .get("/chat/history?conversationId=c-u-farmer-support&limit=50")
        .await
        .unwrap();
    assert_eq!(
        history.messages.iter().filter(|m| m.text == text).count(),
        1,
        "stored exactly once"
    );
    assert_eq!(bubbles_with(&root, &text).len(), 1);
    drop(mounted);
}

#[wasm_bindgen_test]
async fn a_message_the_stream_announced_shows_even_when_fetching_it_fails_at_first() {
    let (root, _mounted) = mount_widget(true).await;
    wait_connected(&root).await;
    let failing = FailingFetches::next(2, &["/chat/history", "after="]);
    // The support chat: no reply follows, so no later event would bring the message either.
    let text = unique("取得に二度失敗しても");
    send(&Api::new(api_base()), &text).await;
    wait_until("the announced message", || {
        bubbles_with(&root, &text).len() == 1
    })
    .await;
    assert_eq!(FailingFetches::left(), 0.0, "both failures happened");
    drop(failing);
    assert_eq!(
        by_testid(&root, "connection-status")
            .get_attribute("data-state")
            .as_deref(),
        Some("connected")
    );
}

#[wasm_bindgen_test]
async fn a_first_load_that_fails_twice_recovers_by_itself() {
    let api = Api::new(api_base());
    sign_in(&api).await;
    let failing = FailingFetches::next(2, &["/api/conversations"]);
    let root = fresh_root();
    let _mounted = leptos::mount::mount_to(root.clone(), move || {
        view! { <ChatWidget api_base=api_base() locale=Locale::Ja support=true /> }
    });
    wait_connected(&root).await;
    let text = unique("読み込みに二度失敗しても");
    send(&api, &text).await;
    wait_until("the loaded chat with the new message", || {
        bubbles_with(&root, &text).len() == 1
    })
    .await;
    assert_eq!(FailingFetches::left(), 0.0, "both failures happened");
    drop(failing);
    assert!(
        root.query_selector("[data-testid='load-failed']")
            .unwrap()
            .is_none()
    );
}

#[wasm_bindgen_test]
async fn the_progress_bar_exposes_its_values() {
    let root = fresh_root();
    let _mounted = leptos::mount::mount_to(root.clone(), || {
        view! { <ProgressBar progress=Progress::new(3, 4) label="進捗" /> }
    });
    let bar = by_testid(&root, "progress");
    assert_eq!(bar.get_attribute("role").as_deref(), Some("progressbar"));
    assert_eq!(bar.get_attribute("aria-valuemin").as_deref(), Some("0"));
    assert_eq!(bar.get_attribute("aria-valuemax").as_deref(), Some("4"));
    assert_eq!(bar.get_attribute("aria-valuenow").as_deref(), Some("3"));
    assert_eq!(bar.get_attribute("aria-label").as_deref(), Some("進捗"));
    assert_eq!(text_of(&bar), "3 / 4 (75%)");
}

#[wasm_bindgen_test]
async fn under_reduced_motion_a_streaming_line_appears_whole_at_once() {
    // webdriver.json starts Chromium with --force-prefers-reduced-motion.
    assert!(prefers_reduced_motion());
    let root = fresh_root();
    let _mounted = leptos::mount::mount_to(root.clone(), || {
        view! { <StreamingMessage text="過去30日間のデータを分析中..." animate=true /> }
    });
    let line = by_testid(&root, "streaming-line");
    assert_eq!(line.get_attribute("data-done").as_deref(), Some("true"));
    assert!(text_of(&line).starts_with("過去30日間のデータを分析中..."));
}

#[wasm_bindgen_test]
async fn the_launcher_badge_counts_replies_that_arrive_while_closed() {
    let api = Api::new(api_base());
    sign_in(&api).await;
    // Unread counts are the server's now: start from a farmer who has read everything.
    read_all(&api, "c-u-farmer-assistant").await;
    read_all(&api, "c-u-farmer-support").await;
    let root = fresh_root();
    let _mounted = leptos::mount::mount_to(root.clone(), || {
        view! {
            <ChatLauncher locale=Locale::Ja>
                <ChatWidget api_base=api_base() locale=Locale::Ja />
            </ChatLauncher>
        }
    });
    wait_connected(&root).await;
    assert!(
        all_by_testid(&root, "unread-badge").is_empty(),
        "nothing unread at first"
    );
    // Another tab asks the assistant: the question is the user's own, the reply is not.
    let (text, key) = (unique("こんにちは"), unique("k").replace([' ', '#'], ""));
    let body = [
        ("conversationId", "c-u-farmer-assistant"),
        ("text", text.as_str()),
        ("idempotencyKey", key.as_str()),
    ];
    let (_, _): (u16, SendResponse) = Api::new(api_base()).post(paths::SEND, &body).await.unwrap();
    wait_until("the badge", || {
        all_by_testid(&root, "unread-badge")
            .first()
            .map(text_of)
            .as_deref()
            == Some("1")
    })
    .await;
    by_testid(&root, "launcher-toggle").click();
    tick().await;
    assert!(
        all_by_testid(&root, "unread-badge").is_empty(),
        "opening the panel clears it"
    );
}

/// An API client that signs its requests with `user`'s Bearer token (the page's cookie stays
/// whoever signs in last).
async fn bearer_api(user: &str) -> Api {
    let token = sign_in_as(&Api::new(api_base()), user).await;
    Api {
        base: api_base().to_owned(),
        token: Some(TokenProvider::fixed(token)),
    }
}

/// Marks a conversation read as the API's user, up to its newest message.
async fn read_all(api: &Api, conversation: &str) {
    let body = format!(r#"{{"conversationId":"{conversation}","seq":9000000000}}"#);
    api.call("POST", "/chat/read", Some(body)).await.unwrap();
}

/// The list entry of a conversation, if shown.
fn entry(root: &HtmlElement, conversation: &str) -> Option<HtmlElement> {
    all_by_testid(root, "conversation")
        .into_iter()
        .find(|e| e.get_attribute("data-conversation-id").as_deref() == Some(conversation))
}

#[wasm_bindgen_test]
async fn support_staff_work_from_a_live_inbox_with_typing_and_read_receipts() {
    let farmer = bearer_api("u-farmer-2").await;
    let conversation = "c-u-farmer-2-support";
    let api = Api::new(api_base());
    sign_in_as(&api, "u-support").await;
    let root = fresh_root();
    let mounted = leptos::mount::mount_to(
        root.clone(),
        || view! { <ChatWidget api_base=api_base() locale=Locale::Ja /> },
    );
    wait_connected(&root).await;
    wait_until("the inbox", || entry(&root, conversation).is_some()).await;
    assert_eq!(
        by_testid(&root, "chat-widget")
            .get_attribute("data-view")
            .as_deref(),
        Some("home"),
        "support staff start at their inbox"
    );
    let names: Vec<String> = all_by_testid(&root, "conversation-title")
        .iter()
        .map(text_of)
        .collect();
    assert!(
        names.contains(&"田中 花子".to_owned()) && names.contains(&"山田 太郎".to_owned()),
        "{names:?}"
    );

    // The farmer writes: the inbox updates live, the conversation first, with its count.
    let question = unique("飼料が届きません");
    let key = unique("k").replace([' ', '#'], "");
    let (_, sent): (u16, SendResponse) = farmer
        .post(
            paths::SEND,
            &[
                ("conversationId", conversation),
                ("text", &question),
                ("idempotencyKey", &key),
            ],
        )
        .await
        .unwrap();
    wait_until("the preview", || {
        entry(&root, conversation).is_some_and(|e| text_of(&e).contains(&question))
    })
    .await;
    let first = all_by_testid(&root, "conversation")[0].clone();
    assert_eq!(
        first.get_attribute("data-conversation-id").as_deref(),
        Some(conversation),
        "newest first"
    );
    let unread = by_testid(&first, "conversation-unread");
    assert!(text_of(&unread).parse::<u32>().unwrap() >= 1);

    // Opening it reads it, and the farmer's message shows as read on their side.
    first.click();
    tick().await;
    wait_until("the farmer's message", || {
        bubbles_with(&root, &question).len() == 1
    })
    .await;
    assert_eq!(
        text_of(&by_testid(&root, "conversation-title")),
        "田中 花子"
    );
    let mut read_by_support = 0;
    for _ in 0..100 {
        let list: farm_chat_protocol::chat::ConversationList =
            farmer.get("/conversations").await.unwrap();
        read_by_support = list
            .conversations
            .iter()
            .find(|c| c.id.as_str() == conversation)
            .map_or(0, |c| c.others_read_up_to);
        if read_by_support >= sent.seq {
            break;
        }
        sleep_ms(50).await;
    }
    assert!(
        read_by_support >= sent.seq,
        "opening the conversation marked it read"
    );

    // The farmer types: 入力中… shows; then support replies, and the farmer reads it: 既読.
    let typing = format!(r#"{{"conversationId":"{conversation}"}}"#);
    farmer
        .call("POST", "/chat/typing", Some(typing))
        .await
        .unwrap();
    wait_until("入力中…", || {
        text_of(&by_testid(&root, "typing")).contains("田中 花子 入力中…")
    })
    .await;
    let reply = unique("明日届けます");
    type_and_send(&root, &reply).await;
    wait_sent(&root, &reply).await;
    let mine = bubbles_with(&root, &reply)[0].clone();
    assert!(
        all_by_testid(&mine, "read-receipt").is_empty(),
        "not read yet"
    );
    read_all(&farmer, conversation).await;
    wait_until("既読", || {
        bubbles_with(&root, &reply).first().is_some_and(|b| {
            all_by_testid(b, "read-receipt")
                .first()
                .map(text_of)
                .as_deref()
                == Some("既読")
        })
    })
    .await;

    // Back to the inbox: the conversation is current and nothing is unread in it.
    by_testid(&root, "back").click();
    tick().await;
    let current = entry(&root, conversation).unwrap();
    assert_eq!(
        current.get_attribute("aria-current").as_deref(),
        Some("true")
    );
    assert!(all_by_testid(&current, "conversation-unread").is_empty());
    drop(mounted);
    sign_in(&api).await; // back to the farmer for the other tests
}

/// A token provider whose fresh tokens come as Promises (a host page asking its identity
/// service): it counts what it is asked.
struct CountingProvider {
    current: Rc<RefCell<String>>,
    asks: Rc<std::cell::Cell<u32>>,
    refreshes: Rc<std::cell::Cell<u32>>,
}

impl CountingProvider {
    /// Answers `token`; a refresh signs `refresh_as` in again (None: keeps answering `token`).
    fn new(token: String, refresh_as: Option<&'static str>) -> (Self, TokenProvider) {
        let this = Self {
            current: Rc::new(RefCell::new(token)),
            asks: Rc::default(),
            refreshes: Rc::default(),
        };
        let (current, asks, refreshes) = (
            this.current.clone(),
            this.asks.clone(),
            this.refreshes.clone(),
        );
        let provider = TokenProvider::new(move |refresh| {
            asks.set(asks.get() + 1);
            if !refresh {
                return TokenAnswer::Now(Some(current.borrow().clone()));
            }
            refreshes.set(refreshes.get() + 1);
            let current = current.clone();
            TokenAnswer::Later(wasm_bindgen_futures::future_to_promise(async move {
                if let Some(user) = refresh_as {
                    let fresh = bearer_api(user).await;
                    let (_, session): (u16, farm_chat_protocol::session::SessionInfo) =
                        fresh.post("/session", &[("userId", user)]).await.unwrap();
                    *current.borrow_mut() = session.token.unwrap();
                }
                Ok(JsValue::from_str(&current.borrow()))
            }))
        });
        (this, provider)
    }
}

/// Ends the session of `token` on the server (its streams close).
async fn revoke(token: &str) {
    let api = Api {
        base: api_base().to_owned(),
        token: Some(TokenProvider::fixed(token.to_owned())),
    };
    api.delete::<farm_chat::api::Ignored>("/session")
        .await
        .unwrap();
}

#[wasm_bindgen_test]
async fn an_expired_token_is_refreshed_once_and_the_stream_goes_on_without_loss() {
    let first = sign_in(&Api::new(api_base())).await;
    let (counts, provider) = CountingProvider::new(first.clone(), Some("u-farmer"));
    let root = fresh_root();
    let _mounted = leptos::mount::mount_to(root.clone(), move || {
        view! { <ChatWidget api_base=api_base() locale=Locale::Ja support=true token=Some(provider) /> }
    });
    wait_connected(&root).await;
    wait_until("the support chat", || {
        all_by_testid(&root, "composer-wait").is_empty()
    })
    .await;
    assert_eq!(counts.refreshes.get(), 0);
    // The platform session ends: the stream closes, the next ticket gets a 401.
    revoke(&first).await;
    let text = unique("期限切れの間に");
    let sender = bearer_api("u-farmer").await;
    let key = unique("k").replace([' ', '#'], "");
    let _: (u16, SendResponse) = sender
        .post(
            paths::SEND,
            &[
                ("conversationId", "c-u-farmer-support"),
                ("text", &text),
                ("idempotencyKey", &key),
            ],
        )
        .await
        .unwrap();
    wait_until("the message sent meanwhile", || {
        bubbles_with(&root, &text).len() == 1
    })
    .await;
    wait_connected(&root).await;
    assert_eq!(
        counts.refreshes.get(),
        1,
        "one refresh, however many requests got the 401"
    );
    assert_ne!(*counts.current.borrow(), first);
    assert_eq!(bubbles_with(&root, &text).len(), 1, "once");
    assert!(all_by_testid(&root, "signed-out").is_empty());
}

#[wasm_bindgen_test]
async fn a_provider_that_keeps_failing_leaves_the_widget_signed_out_without_a_storm() {
    let token = sign_in_as(&Api::new(api_base()), "u-farmer-2").await;
    revoke(&token).await;
    let (counts, provider) = CountingProvider::new(token, None);
    let root = fresh_root();
    // As mounted for a host element, which hears farm-chat:signed-out.
    let signed_out = Rc::new(std::cell::Cell::new(0));
    let heard = signed_out.clone();
    let listener =
        wasm_bindgen::closure::Closure::<dyn FnMut()>::new(move || heard.set(heard.get() + 1));
    root.add_event_listener_with_callback(
        "farm-chat:signed-out",
        listener.as_ref().unchecked_ref(),
    )
    .unwrap();
    let host = root.clone();
    let _mounted = leptos::mount::mount_to(root.clone(), move || {
        provide_context(farm_chat::widget::host::HostElement(
            send_wrapper::SendWrapper::new(host),
        ));
        view! { <ChatWidget api_base=api_base() locale=Locale::Ja token=Some(provider) /> }
    });
    wait_until("signed out", || {
        by_testid(&root, "connection-status")
            .get_attribute("data-state")
            .as_deref()
            == Some("signed-out")
            && !all_by_testid(&root, "signed-out").is_empty()
    })
    .await;
    wait_until("farm-chat:signed-out", || signed_out.get() == 1).await;
    let asks = counts.asks.get();
    sleep_ms(3000).await;
    assert_eq!(signed_out.get(), 1, "said once");
    assert_eq!(counts.refreshes.get(), 1, "one refresh in 30 s at most");
    assert_eq!(counts.asks.get(), asks, "signed out, nothing more is asked");
    sign_in(&Api::new(api_base())).await; // the cookie back to the farmer
}

#[wasm_bindgen_test]
async fn the_host_element_has_a_js_api_queued_until_ready_and_fires_its_events() {
    let token = sign_in(&Api::new(api_base())).await;
    let api = Api::new(api_base());
    read_all(&api, "c-u-farmer-support").await;
    let document = web_sys::window().unwrap().document().unwrap();
    let root = fresh_root();
    let host: HtmlElement = document
        .create_element("farm-chat")
        .unwrap()
        .unchecked_into();
    root.append_child(&host).unwrap();
    // Every event, as the page sees it: bubbling out of the element.
    let seen: Rc<RefCell<Vec<(String, JsValue)>>> = Rc::default();
    let mut listeners = Vec::new();
    for name in farm_chat::widget::host::HostEvent::ALL.map(|e| e.as_str()) {
        let seen = seen.clone();
        let listener = wasm_bindgen::closure::Closure::<dyn FnMut(web_sys::CustomEvent)>::new(
            move |e: web_sys::CustomEvent| seen.borrow_mut().push((e.type_(), e.detail())),
        );
        root.add_event_listener_with_callback(name, listener.as_ref().unchecked_ref())
            .unwrap();
        listeners.push(listener);
    }
    let count = |name: &str| seen.borrow().iter().filter(|(n, _)| n == name).count();
    // A send called before the widget exists waits in the launcher's queue.
    let text = unique("準備前に送信");
    let answer: Rc<RefCell<Option<Result<String, String>>>> = Rc::default();
    let (ok, err) = (answer.clone(), answer.clone());
    let resolve = wasm_bindgen::closure::Closure::<dyn FnMut(JsValue)>::new(move |v: JsValue| {
        *ok.borrow_mut() = Some(Ok(v.as_string().unwrap_or_default()));
    });
    let reject = wasm_bindgen::closure::Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
        *err.borrow_mut() = Some(Err(format!("{e:?}")));
    });
    let entry = js_sys::Array::of4(
        &JsValue::from_str("send"),
        &js_sys::Array::of1(&JsValue::from_str(&text)),
        resolve.as_ref(),
        reject.as_ref(),
    );
    js_sys::Reflect::set(&host, &"fcQueue".into(), &js_sys::Array::of1(&entry)).unwrap();
    let _mounted =
        farm_chat::mount::mount_in_shadow(host.clone(), api_base().to_owned(), Locale::Ja, None)
            .expect("mounted");
    wait_until("farm-chat:ready", || count("farm-chat:ready") == 1).await;
    wait_until("the queued send stored", || answer.borrow().is_some()).await;
    let id = answer
        .borrow()
        .clone()
        .unwrap()
        .expect("the queued send resolves");
    assert!(id.starts_with("m-"), "{id}");
    wait_until("farm-chat:message for it", || {
        seen.borrow().iter().any(|(n, d)| {
            n == "farm-chat:message"
                && js_sys::Reflect::get(d, &"messageId".into())
                    .unwrap()
                    .as_string()
                    .as_deref()
                    == Some(id.as_str())
        })
    })
    .await;
    let call = |name: &str, args: js_sys::Array| -> js_sys::Promise {
        let api: js_sys::Function = js_sys::Reflect::get(&host, &"fcApi".into())
            .unwrap()
            .unchecked_into();
        api.call2(&JsValue::NULL, &JsValue::from_str(name), &args)
            .unwrap()
            .unchecked_into()
    };
    let shadow = |id: &str| -> HtmlElement {
        host.shadow_root()
            .unwrap()
            .query_selector(&format!("[data-testid='{id}']"))
            .unwrap()
            .unwrap()
            .unchecked_into()
    };
    wasm_bindgen_futures::JsFuture::from(call("open", js_sys::Array::new()))
        .await
        .unwrap();
    tick().await;
    assert!(!shadow("chat-panel").has_attribute("hidden"));
    wait_until("farm-chat:open", || count("farm-chat:open") == 1).await;
    wasm_bindgen_futures::JsFuture::from(call("close", js_sys::Array::new()))
        .await
        .unwrap();
    wait_until("farm-chat:close", || count("farm-chat:close") == 1).await;
    wasm_bindgen_futures::JsFuture::from(call(
        "openConversation",
        js_sys::Array::of1(&"support".into()),
    ))
    .await
    .unwrap();
    wait_until("the support chat", || {
        shadow("conversation-title").text_content().as_deref() == Some("サポート")
    })
    .await;
    for (name, args) in [
        ("send", js_sys::Array::of1(&"   ".into())),
        ("openConversation", js_sys::Array::of1(&"billing".into())),
        ("explode", js_sys::Array::new()),
    ] {
        assert!(
            wasm_bindgen_futures::JsFuture::from(call(name, args))
                .await
                .is_err(),
            "{name} is refused"
        );
    }
    // Support writes while the panel is closed: the unread count goes out.
    let support = bearer_api("u-support").await;
    let key = unique("k").replace([' ', '#'], "");
    let _: (u16, SendResponse) = support
        .post(
            paths::SEND,
            &[
                ("conversationId", "c-u-farmer-support"),
                ("text", "ご連絡です"),
                ("idempotencyKey", &key),
            ],
        )
        .await
        .unwrap();
    wait_until("farm-chat:unread", || {
        seen.borrow().iter().any(|(n, d)| {
            n == "farm-chat:unread"
                && js_sys::Reflect::get(d, &"count".into())
                    .unwrap()
                    .as_f64()
                    .unwrap_or(0.0)
                    >= 1.0
        })
    })
    .await;
    assert_eq!(count("farm-chat:ready"), 1, "ready once");
    // A send the server refuses: the Promise rejects and farm-chat:error says why.
    js_sys::Function::new_no_args(
        "if (!window.__fcRealFetch) window.__fcRealFetch = window.fetch; \
         window.fetch = function (input, init) { \
           const url = typeof input === 'string' ? input : input.url; \
           if (url.includes('/chat/send')) return Promise.resolve(new Response( \
             JSON.stringify({error: {code: 'invalid_text', message: 'refused (test)'}}), \
             {status: 400, headers: {'Content-Type': 'application/json'}})); \
           return window.__fcRealFetch.call(window, input, init); \
         };",
    )
    .call0(&JsValue::NULL)
    .unwrap();
    let refused = wasm_bindgen_futures::JsFuture::from(call(
        "send",
        js_sys::Array::of1(&"拒否される".into()),
    ))
    .await;
    restore_fetch();
    assert!(refused.is_err(), "the Promise rejects");
    wait_until("farm-chat:error", || {
        seen.borrow().iter().any(|(n, d)| {
            n == "farm-chat:error"
                && js_sys::Reflect::get(d, &"code".into())
                    .unwrap()
                    .as_string()
                    .as_deref()
                    == Some("invalid_text")
        })
    })
    .await;
    // (farm-chat:signed-out: see the failing token provider's test.)
    revoke(&token).await;
    sign_in(&api).await;
}

/// Offline, two messages typed; the page reloads (the widget is gone and mounted again);
/// back online, each goes out once with its original key and the outbox empties.
#[wasm_bindgen_test]
async fn unsent_messages_survive_a_reload_and_are_stored_exactly_once() {
    let api = Api::new(api_base());
    sign_in(&api).await;
    let (first, second) = (unique("圏外で一通目"), unique("圏外で二通目"));
    let storage = web_sys::window().unwrap().local_storage().unwrap().unwrap();
    let outbox_name = format!("farm-chat:outbox:{}:u-farmer", api_base());
    {
        let (root, mounted) = mount_widget(true).await;
        wait_until("the support chat", || {
            all_by_testid(&root, "composer-wait").is_empty()
        })
        .await;
        let offline = FailingFetches::next(1_000_000, &[paths::SEND]);
        type_and_send(&root, &first).await;
        type_and_send(&root, &second).await;
        let stored = storage.get_item(&outbox_name).unwrap().unwrap_or_default();
        assert!(
            stored.contains(&first) && stored.contains(&second),
            "both on disk before any answer: {stored}"
        );
        assert!(
            bubbles_with(&root, &first)[0]
                .get_attribute("data-state")
                .as_deref()
                == Some("sending")
        );
        drop(mounted); // the reload
        drop(offline);
    }
    let (root, _mounted) = mount_widget(true).await;
    wait_sent(&root, &first).await;
    wait_sent(&root, &second).await;
    let history: farm_chat_protocol::chat::HistoryPage = api
        .get("/chat/history?conversationId=c-u-farmer-support&limit=20")
        .await
        .unwrap();
    for text in [&first, &second] {
        assert_eq!(
            history.messages.iter().filter(|m| &m.text == text).count(),
            1,
            "{text} stored once"
        );
        assert_eq!(bubbles_with(&root, text).len(), 1, "{text} shown once");
    }
    wait_until("the outbox empties", || {
        storage.get_item(&outbox_name).unwrap().is_none()
    })
    .await;
}

#[wasm_bindgen_test]
async fn a_farmer_switches_conversations_and_each_keeps_its_draft() {
    let (root, _mounted) = mount_widget(false).await;
    wait_until("the assistant", || {
        text_of(&by_testid(&root, "conversation-title")) == "牧場アシスタント"
    })
    .await;
    let area: web_sys::HtmlTextAreaElement = by_testid(&root, "composer").unchecked_into();
    area.set_value("下書きです");
    area.dispatch_event(&web_sys::Event::new("input").unwrap())
        .unwrap();
    tick().await;
    by_testid(&root, "back").click();
    tick().await;
    assert_eq!(
        by_testid(&root, "chat-widget")
            .get_attribute("data-view")
            .as_deref(),
        Some("home")
    );
    let assistant = entry(&root, "c-u-farmer-assistant").unwrap();
    assert_eq!(
        assistant.get_attribute("aria-current").as_deref(),
        Some("true")
    );
    entry(&root, "c-u-farmer-support").unwrap().click();
    tick().await;
    assert_eq!(text_of(&by_testid(&root, "conversation-title")), "サポート");
    wait_until("the support chat's history", || {
        all_by_testid(&root, "composer-wait").is_empty()
    })
    .await;
    assert_eq!(
        area.value(),
        "",
        "the support chat has its own (empty) draft"
    );
    let text = unique("サポートへ");
    type_and_send(&root, &text).await;
    wait_sent(&root, &text).await;
    by_testid(&root, "back").click();
    tick().await;
    wait_until("the preview", || {
        entry(&root, "c-u-farmer-support").is_some_and(|e| text_of(&e).contains(&text))
    })
    .await;
    entry(&root, "c-u-farmer-assistant").unwrap().click();
    tick().await;
    wait_until("the assistant's draft back", || {
        area.value() == "下書きです"
    })
    .await;
    assert_eq!(
        bubbles_with(&root, &text).len(),
        0,
        "each conversation shows its own messages"
    );
}

#[wasm_bindgen_test]
async fn older_messages_page_in_when_asked() {
    // u-other's own support chat, so the farmer's send rate is not touched.
    let api = Api::new(api_base());
    sign_in_as(&api, "u-other").await;
    let history: farm_chat_protocol::chat::HistoryPage = api
        .get("/chat/history?conversationId=c-u-other-support&limit=1")
        .await
        .unwrap();
    let already = history.messages.first().map_or(0, |m| m.seq);
    for i in already..60 {
        let (text, key) = (format!("古い {i}"), format!("older-{i}"));
        let body = [
            ("conversationId", "c-u-other-support"),
            ("text", text.as_str()),
            ("idempotencyKey", key.as_str()),
        ];
        loop {
            match api.post::<SendResponse>(paths::SEND, &body).await {
                Ok(_) => break,
                Err(farm_chat::api::ApiFailure::Http { status: 429, .. }) => sleep_ms(300).await,
                Err(e) => panic!("{e}"),
            }
        }
    }
    let root = fresh_root();
    let style = web_sys::window()
        .unwrap()
        .document()
        .unwrap()
        .create_element("style")
        .unwrap();
    style.set_text_content(Some(farm_chat::mount::STYLESHEET));
    root.append_child(&style).unwrap();
    let mounted = leptos::mount::mount_to(
        root.clone(),
        || view! { <ChatWidget api_base=api_base() locale=Locale::Ja support=true /> },
    );
    wait_until("the newest page", || {
        all_by_testid(&root, "bubble").len() == 50
    })
    .await;
    // With the widget's stylesheet the list scrolls, and it opens at the newest message.
    let list = by_testid(&root, "message-list");
    wait_until("the list scrolled to the newest message", || {
        list.scroll_height() > list.client_height() + 100
            && list.scroll_height() - list.scroll_top() - list.client_height() < 2
    })
    .await;
    assert!(
        bubbles_with(&root, "古い 0").is_empty(),
        "the oldest are not loaded yet"
    );
    by_testid(&root, "load-older").click();
    wait_until("the older page", || {
        all_by_testid(&root, "bubble").len() == 60
    })
    .await;
    let texts: Vec<String> = all_by_testid(&root, "bubble").iter().map(text_of).collect();
    assert!(
        texts[0].contains("古い 0"),
        "oldest first: {:?}",
        &texts[..2]
    );
    assert!(
        all_by_testid(&root, "load-older").is_empty(),
        "nothing older is left"
    );
    drop(mounted);
    style.remove();
    sign_in(&api).await; // back to the farmer for the other tests
}

#[wasm_bindgen_test]
fn dates_and_numbers_follow_the_widgets_locale() {
    use farm_chat::format;
    assert_eq!(format::number(Locale::Ja, 14639.0), "14,639");
    assert_eq!(format::number(Locale::En, 30.2), "30.2");
    assert_eq!(format::day(Locale::Ja, "2026-11-22"), "2026年11月22日");
    assert_eq!(format::day(Locale::En, "2026-11-22"), "Nov 22, 2026");
    assert_eq!(
        format::day(Locale::Ja, "not a date"),
        "not a date",
        "bad input is shown as it came"
    );
    let time = format::time(Locale::Ja, "2026-11-22T16:52:54.744Z");
    assert!(time.len() == 5 && time.as_bytes()[2] == b':', "{time}");
    assert_eq!(format::time(Locale::Ja, "garbage"), "");
}

/// The computed value of `property` on `el`.
fn computed(el: &web_sys::Element, property: &str) -> String {
    web_sys::window()
        .unwrap()
        .get_computed_style(el)
        .unwrap()
        .unwrap()
        .get_property_value(property)
        .unwrap()
}

#[wasm_bindgen_test]
async fn styles_never_leak_in_or_out_and_custom_properties_theme_the_widget() {
    sign_in(&Api::new(api_base())).await;
    let document = web_sys::window().unwrap().document().unwrap();
    // A hostile host page: element and class rules, `!important`, on what the widget uses.
    let hostile = document.create_element("style").unwrap();
    hostile.set_text_content(Some(
        "p, ol, li, button, div, textarea { color: rgb(255, 0, 0) !important; \
         margin: 37px !important; font-size: 41px !important; } \
         .fc-status, .fc-launcher__toggle, .fc-root { background: rgb(255, 0, 0) !important; \
         font-size: 41px !important; }",
    ));
    document.head().unwrap().append_child(&hostile).unwrap();
    let root = fresh_root();
    // Two widgets on one page, one themed through a custom property.
    let mut handles = Vec::new();
    let mut hosts = Vec::new();
    for theme in [Some("--fc-accent: rgb(1, 2, 3)"), None] {
        let host: HtmlElement = document
            .create_element("farm-chat")
            .unwrap()
            .unchecked_into();
        match theme {
            Some(theme) => host.set_attribute("style", theme).unwrap(),
            // The other opens into the support chat.
            None => host.set_attribute("conversation", "support").unwrap(),
        }
        root.append_child(&host).unwrap();
        handles.push(
            farm_chat::mount::mount_in_shadow(
                host.clone(),
                api_base().to_owned(),
                Locale::Ja,
                None,
            )
            .expect("mounted"),
        );
        hosts.push(host);
    }
    tick().await;
    let shadow = |host: &HtmlElement, id: &str| -> web_sys::Element {
        host.shadow_root()
            .expect("an open shadow root")
            .query_selector(&format!("[data-testid='{id}']"))
            .unwrap()
            .unwrap_or_else(|| panic!("no {id} in the shadow root"))
    };
    let toggle = shadow(&hosts[0], "launcher-toggle");
    assert_eq!(
        computed(&toggle, "background-color"),
        "rgb(1, 2, 3)",
        "themed"
    );
    assert_eq!(computed(&toggle, "color"), "rgb(255, 255, 255)");
    assert_eq!(computed(&toggle, "margin-top"), "0px");
    assert_ne!(computed(&toggle, "font-size"), "41px");
    let other = shadow(&hosts[1], "launcher-toggle");
    assert_eq!(
        computed(&other, "background-color"),
        "rgb(47, 107, 58)",
        "the default accent, and the theme stayed on its own widget"
    );
    let status = shadow(&hosts[0], "connection-status");
    assert_eq!(
        computed(&status, "margin-top"),
        "0px",
        "a host `p` rule stays out"
    );
    assert_ne!(computed(&status, "color"), "rgb(255, 0, 0)");
    // Both widgets work: each opens its own panel and goes live.
    for host in &hosts {
        shadow(host, "launcher-toggle")
            .unchecked_into::<HtmlElement>()
            .click();
        tick().await;
        assert!(!shadow(host, "chat-panel").has_attribute("hidden"));
    }
    wait_until("both widgets connected", || {
        hosts.iter().all(|h| {
            shadow(h, "connection-status")
                .get_attribute("data-state")
                .as_deref()
                == Some("connected")
        })
    })
    .await;
    // Each widget has one status line: live is a dot, its words only for screen readers.
    for host in &hosts {
        let status = shadow(host, "connection-status");
        let words = status.first_element_child().unwrap();
        assert_eq!(
            words.class_name(),
            "fc-sr-only",
            "no visible words while live"
        );
        assert!(
            host.shadow_root()
                .unwrap()
                .query_selector("[data-testid=server-health]")
                .unwrap()
                .is_none(),
            "no second line saying the same thing"
        );
    }
    // `conversation="support"` opened the second into the support chat.
    wait_until("the conversations' titles", || {
        hosts.iter().all(|h| {
            shadow(h, "conversation-title")
                .text_content()
                .is_some_and(|t| !t.is_empty())
        })
    })
    .await;
    let titles: Vec<String> = hosts
        .iter()
        .map(|h| shadow(h, "conversation-title").text_content().unwrap())
        .collect();
    assert_eq!(titles, ["牧場アシスタント", "サポート"]);
    // And out: the widget's classes on host-page elements do nothing.
    let outside = document.create_element("p").unwrap();
    outside.set_class_name("fc-text fc-launcher");
    root.append_child(&outside).unwrap();
    assert_eq!(computed(&outside, "white-space"), "normal");
    assert_eq!(computed(&outside, "position"), "static");
    drop(handles);
    hostile.remove();
}

/// The network is the browser's: a following tab shows "offline" the moment the browser
/// says so, not only once the leader's broadcast arrives (a leader that is a closing tab may
/// never send it). The `offline` event's listeners run inside `dispatchEvent`, while a
/// broadcast from the leader arrives in a later task, so the check right after the dispatch
/// sees only what the follower did by itself.
#[wasm_bindgen_test]
async fn a_follower_shows_offline_at_once_without_waiting_for_the_leader() {
    let api = Api::new(api_base());
    sign_in(&api).await;
    let tabs: Vec<_> = (0..2)
        .map(|_| mount_stream(UseChatStreamOptions::default().api_base(api_base())))
        .collect();
    let state = |t: &(Events, Hook, _, HtmlElement)| {
        t.1.borrow()
            .as_ref()
            .map(|h| (h.role.get_untracked(), h.status.get_untracked()))
    };
    wait_until("a leader and a follower, both connected", || {
        let states: Vec<_> = tabs.iter().map(state).collect();
        states.contains(&Some((Role::Leader, Status::Connected)))
            && states.contains(&Some((Role::Follower, Status::Connected)))
    })
    .await;
    let follower = tabs
        .iter()
        .position(|t| matches!(state(t), Some((Role::Follower, _))))
        .unwrap();
    let window = web_sys::window().unwrap();
    window
        .dispatch_event(&web_sys::Event::new("offline").unwrap())
        .unwrap();
    let at_once = state(&tabs[follower]);
    // Back online before asserting, so a failure here leaves no tab offline for the next test.
    window
        .dispatch_event(&web_sys::Event::new("online").unwrap())
        .unwrap();
    assert_eq!(
        at_once,
        Some((Role::Follower, Status::Offline)),
        "before any broadcast could arrive"
    );
    wait_until("both connected again", || {
        tabs.iter()
            .all(|t| matches!(state(t), Some((_, Status::Connected))))
    })
    .await;
}

/// Hooks mounted side by side stand in for tabs: each makes its own lock request and has its
/// own BroadcastChannel object, exactly as a tab does (the real multi-tab check, with real
/// windows closed, is the page smoke's).
#[wasm_bindgen_test]
async fn tabs_share_one_stream_and_a_new_leader_takes_over_without_loss() {
    let api = Api::new(api_base());
    sign_in(&api).await;
    assert_eq!(open_streams_become(0).await, 0);
    let mut tabs: Vec<_> = (0..5)
        .map(|_| mount_stream(UseChatStreamOptions::default().api_base(api_base())))
        .collect();
    // Each tab's (role, status), by its hook.
    let roles = |hooks: &mut dyn Iterator<Item = &Hook>| -> Vec<Option<(Role, Status)>> {
        hooks
            .map(|h| {
                h.borrow()
                    .as_ref()
                    .map(|h| (h.role.get_untracked(), h.status.get_untracked()))
            })
            .collect()
    };
    let settled = |hooks: &mut dyn Iterator<Item = &Hook>| {
        let r = roles(hooks);
        r.iter()
            .filter(|x| matches!(x, Some((Role::Leader, _))))
            .count()
            == 1
            && r.iter()
                .all(|x| matches!(x, Some((Role::Leader | Role::Follower, Status::Connected))))
    };
    wait_until(
        "one leader, the others following, every tab showing connected",
        || settled(&mut tabs.iter().map(|t| &t.1)),
    )
    .await;
    assert_eq!(open_streams().await, 1, "five tabs, one stream");
    let first = send(&api, "共有ストリーム").await;
    wait_until("the message in every tab", || {
        tabs.iter().all(|t| created(&t.0, &first) == 1)
    })
    .await;

    // The leader goes away; messages are sent while the lock changes hands.
    let leader = roles(&mut tabs.iter().map(|t| &t.1))
        .iter()
        .position(|x| matches!(x, Some((Role::Leader, _))))
        .unwrap();
    let (_, _, mounted, _) = tabs.remove(leader);
    drop(mounted);
    let during = send(&api, "引き継ぎ中1").await;
    let during2 = send(&api, "引き継ぎ中2").await;
    wait_until("a new leader, connected", || {
        settled(&mut tabs.iter().map(|t| &t.1))
    })
    .await;
    assert_eq!(open_streams_become(1).await, 1, "still one stream");
    let after = send(&api, "引き継ぎ後").await;
    wait_until("every message in every remaining tab", || {
        tabs.iter().all(|t| {
            [&during, &during2, &after]
                .iter()
                .all(|id| created(&t.0, id) >= 1)
        })
    })
    .await;
    for tab in &tabs {
        for id in [&first, &during, &during2, &after] {
            assert_eq!(created(&tab.0, id), 1, "{id}: exactly once in every tab");
        }
    }
    drop(tabs);
    assert_eq!(open_streams_become(0).await, 0);
}

#[wasm_bindgen_test]
async fn without_web_locks_or_with_sharing_off_each_tab_has_its_own_stream() {
    let api = Api::new(api_base());
    sign_in(&api).await;
    assert_eq!(open_streams_become(0).await, 0);
    // Sharing turned off by the option.
    let off = mount_stream(
        UseChatStreamOptions::default()
            .api_base(api_base())
            .share(false),
    );
    // And a browser without Web Locks.
    js_sys::eval(
        "Object.defineProperty(navigator, 'locks', { value: undefined, configurable: true })",
    )
    .unwrap();
    let bare = mount_stream(UseChatStreamOptions::default().api_base(api_base()));
    let solo_and_connected = |t: &Hook| {
        t.borrow().as_ref().is_some_and(|h| {
            h.role.get_untracked() == Role::Solo && h.status.get_untracked() == Status::Connected
        })
    };
    wait_until("both on streams of their own", || {
        solo_and_connected(&off.1) && solo_and_connected(&bare.1)
    })
    .await;
    js_sys::eval("delete navigator.locks").unwrap();
    assert_eq!(open_streams().await, 2);
    let id = send(&api, "それぞれの接続").await;
    wait_until("the message in both", || {
        created(&off.0, &id) == 1 && created(&bare.0, &id) == 1
    })
    .await;
}

#[wasm_bindgen_test]
async fn a_signed_out_leader_tries_again_when_a_signed_in_tab_joins() {
    let api = Api::new(api_base());
    sign_in(&api).await;
    assert_eq!(open_streams_become(0).await, 0);
    let first = mount_stream(UseChatStreamOptions::default().api_base(api_base()));
    let status = |h: &Hook| h.borrow().as_ref().map(|h| h.status.get_untracked());
    wait_until("connected", || status(&first.1) == Some(Status::Connected)).await;
    // The session ends on the server (as another tab's sign-out would).
    let _: farm_chat::api::Ignored = api.delete("/session").await.unwrap();
    wait_until("signed out", || status(&first.1) == Some(Status::SignedOut)).await;
    // The user signs in again (the cookie is the whole browser's) and opens another tab.
    sign_in(&api).await;
    let second = mount_stream(UseChatStreamOptions::default().api_base(api_base()));
    wait_until("both connected again", || {
        status(&first.1) == Some(Status::Connected) && status(&second.1) == Some(Status::Connected)
    })
    .await;
    assert_eq!(open_streams_become(1).await, 1, "still one stream");
}

/// The wasm reads what the browser's `JSON.parse` made of the wire, with the protocol's
/// readers (the golden tests hold them to serde natively; this holds the `JsValue` side).
#[wasm_bindgen_test]
fn stream_events_decode_from_the_browsers_json() {
    use farm_chat::api::decode_event;
    use farm_chat_protocol::{stream::DecodeError, task::PartBody};
    let data = r#"{"taskId":"t-1","messageId":"m-2","conversationId":"c-1","part":3,"type":"progress","current":2,"total":4,"percentage":50,"text":"分析中"}"#;
    match decode_event("task.progress", data) {
        Ok(StreamEvent::TaskProgress(e)) => {
            assert_eq!(e.task_id.as_str(), "t-1");
            assert_eq!(
                e.part.body,
                PartBody::Progress {
                    progress: Progress::new(2, 4),
                    text: "分析中".into()
                }
            );
        }
        other => panic!("{other:?}"),
    }
    let ready = r#"{"lastEventId":"1099511627781","serverTime":"t"}"#;
    match decode_event("ready", ready) {
        Ok(StreamEvent::Ready(r)) => assert_eq!(r.last_event_id.0, 1_099_511_627_781),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        decode_event("message.created", "{not json"),
        Err(DecodeError::BadData { reason, .. }) if reason == "the data is not JSON"
    ));
    assert!(matches!(
        decode_event("message.created", r#"{"conversationId":"c","messageId":"m","seq":1.5}"#),
        Err(DecodeError::BadData { reason, .. }) if reason.contains("seq")
    ));
    assert_eq!(
        decode_event("message.deleted", "{not json"),
        Err(DecodeError::UnknownEvent("message.deleted".into()))
    );
}
