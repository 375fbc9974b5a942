//! The stream hook on its own: resume after a cut, tickets for Bearer pages, closing on unmount.

use super::*;

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
