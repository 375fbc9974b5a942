//! The chat as a farmer uses it: sending, the assistant's replies, flaky networks, drafts, older pages, dates.

use super::*;

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
async fn a_farmer_switches_conversations_and_each_keeps_its_draft() {
    let (root, _mounted) = mount_widget(false).await;
    wait_until("the assistant", || {
        testid_text(&root, "conversation-title") == "牧場アシスタント"
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
