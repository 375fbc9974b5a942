//! The shadow root's style isolation and theming.

use super::*;

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
    // The titles come with the conversation list, which may land after the stream is live.
    wait_until("the conversations' titles", || {
        hosts.iter().all(|h| {
            h.shadow_root()
                .unwrap()
                .query_selector("[data-testid='conversation-title']")
                .unwrap()
                .and_then(|t| t.text_content())
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
