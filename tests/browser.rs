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

use farm_chat::{ChatLauncher, Locale, ServerHealth};
use leptos::{prelude::*, task::tick};
use wasm_bindgen::JsCast;
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

#[wasm_bindgen_test]
async fn launcher_opens_and_closes_the_panel() {
    let root = fresh_root();
    let _mounted = leptos::mount::mount_to(root.clone(), || {
        view! {
            <ChatLauncher locale=Locale::Ja>
                <p data-testid="panel-body">"こんにちは"</p>
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

    toggle.click();
    tick().await;
    assert!(panel.has_attribute("hidden"), "a second click closes it");
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
    // Not `env!`: the other tests (and clippy) must still build without a server.
    let Some(api_base) = option_env!("FARM_CHAT_TEST_API_BASE") else {
        panic!("FARM_CHAT_TEST_API_BASE is unset: run the browser tests with `cargo xtask test`");
    };
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
