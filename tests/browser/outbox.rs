//! Unsent messages across a reload.

use super::*;

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
