//! Browser tests (wasm-bindgen-test in headless Chromium), run by `cargo xtask test`: one
//! test binary, one module per feature, the shared helpers here.
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

mod answer;
mod chat;
mod host;
mod launcher;
mod outbox;
mod stream;
mod style;
mod support;
mod tabs;
mod tokens;
mod wire;

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
        status_state(root).as_deref() == Some("connected")
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

/// The element `id` under `root` if it is there: for waits, since a view may mount later
/// than the thing waited for (on a slow machine, the conversation list after the stream).
fn find_testid(root: &HtmlElement, id: &str) -> Option<HtmlElement> {
    root.query_selector(&format!("[data-testid='{id}']"))
        .unwrap()
        .map(JsCast::unchecked_into)
}

/// The text of `id` under `root`, empty while there is no such element.
fn testid_text(root: &HtmlElement, id: &str) -> String {
    find_testid(root, id)
        .map(|el| text_of(&el))
        .unwrap_or_default()
}

/// The `data-state` of the widget's status line, if it is there.
fn status_state(root: &HtmlElement) -> Option<String> {
    find_testid(root, "connection-status")?.get_attribute("data-state")
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

async fn open_streams() -> i64 {
    let origin = api_base().trim_end_matches("/api");
    // `/metrics` answers only the holder of the test server's token (the test command passes it).
    let token = option_env!("FARM_CHAT_TEST_METRICS_TOKEN").unwrap_or_default();
    let text = gloo_net::http::Request::get(&format!("{origin}/metrics"))
        .header("Authorization", &format!("Bearer {token}"))
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
