//! The launcher (the corner button and its panel), its badge, and the server health line.

use super::*;

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
