//! The host element's JS API and its DOM events.

use super::*;

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
        host.shadow_root()
            .unwrap()
            .query_selector("[data-testid='conversation-title']")
            .unwrap()
            .and_then(|t| t.text_content())
            .as_deref()
            == Some("サポート")
    })
    .await;
    // The panel was closed: a host page's "contact support" button must show what it opened.
    tick().await;
    assert!(
        !shadow("chat-panel").has_attribute("hidden"),
        "openConversation opens the panel"
    );
    wait_until("farm-chat:open again", || count("farm-chat:open") == 2).await;
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
