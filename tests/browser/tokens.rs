//! Bearer token providers: a refresh on an expired token, and a provider that keeps failing.

use super::*;

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

/// A farmer's support chat signed in through `provider`, live and ready to send.
async fn support_chat_with(provider: TokenProvider) -> (HtmlElement, impl Drop) {
    let root = fresh_root();
    let mounted = leptos::mount::mount_to(root.clone(), move || {
        view! { <ChatWidget api_base=api_base() locale=Locale::Ja support=true token=Some(provider) /> }
    });
    wait_connected(&root).await;
    wait_until("the support chat", || {
        all_by_testid(&root, "composer-wait").is_empty()
    })
    .await;
    (root, mounted)
}

#[wasm_bindgen_test]
async fn an_expired_token_is_refreshed_once_and_the_stream_goes_on_without_loss() {
    let first = sign_in(&Api::new(api_base())).await;
    let (counts, provider) = CountingProvider::new(first.clone(), Some("u-farmer"));
    let (root, _mounted) = support_chat_with(provider).await;
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
        status_state(&root).as_deref() == Some("signed-out")
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

/// The platform's session is over while the stream is still up: the provider now hands out a
/// token the server refuses, also when asked for a fresh one. The first request that meets it,
/// here a send, leaves the widget signed out (the state the host page hears as
/// `farm-chat:signed-out`) instead of only failing the send.
#[wasm_bindgen_test]
async fn a_send_the_platform_no_longer_authorises_signs_the_widget_out() {
    let first = sign_in(&Api::new(api_base())).await;
    let current = Rc::new(RefCell::new(first));
    let answered = current.clone();
    let provider = TokenProvider::new(move |_| TokenAnswer::Now(Some(answered.borrow().clone())));
    let (root, _mounted) = support_chat_with(provider).await;
    assert!(all_by_testid(&root, "signed-out").is_empty());
    *current.borrow_mut() = "a-platform-token-that-expired".into();
    type_and_send(&root, &unique("期限切れのトークンで")).await;
    wait_until("the signed-out state", || {
        !all_by_testid(&root, "signed-out").is_empty()
    })
    .await;
}
