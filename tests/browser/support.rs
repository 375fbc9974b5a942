//! Support staff working from a live inbox, with typing and read receipts.

use super::*;

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
        testid_text(&root, "typing").contains("田中 花子 入力中…")
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
