//! Embedding: each `<farm-chat api-base="/api" locale="ja">` element on the host page gets its
//! own widget, so a page can hold several. `token-provider="fnName"` makes it authenticate with
//! `Authorization: Bearer fnName()` (and a stream ticket) instead of cookies. A demo page adds
//! `demo-user="u-farmer"`: the widget then signs in through the dev-server's `POST /api/session`
//! first (standing in for the host site's single sign-on), and `?demo-user=` / `?lang=` in the
//! page's URL switch user and language. `refetch-on-visible="off"` (or `?refetch-on-visible=off`
//! on a demo page) stops the refetch when the tab comes back to the front; the e2e suite uses it
//! to test live delivery alone. `conversation="support"` opens a farmer's widget into the support
//! chat instead of the assistant (support staff always start at their inbox).
//!
//! Each widget lives in its element's (open) shadow root with its stylesheet compiled in, so
//! embedding is one script and one element, the host page's CSS cannot reach inside, and the
//! widget's cannot reach out. Theming still works: custom properties (`--fc-accent`, …) set on
//! `farm-chat` or any ancestor are inherited through the shadow boundary.

use farm_chat_protocol::chat::ConversationKind;
use leptos::prelude::*;
use leptos::tachys::view::Mountable;
use wasm_bindgen::JsCast;

use crate::{ChatLauncher, ChatWidget, Locale, api::TokenProvider};

/// The widget's stylesheet, placed in every shadow root the launcher script has not already
/// styled (see the `stylesheet` feature).
#[cfg(feature = "stylesheet")]
pub const STYLESHEET: &str = include_str!("../style/farm-chat.css");

/// Where the API is when the host element does not say.
pub const DEFAULT_API_BASE: &str = "/api";

/// The widget for one host element's settings; `open` opens the panel at once (the user
/// clicked the launcher before the widget was loaded).
pub fn widget(
    host: Option<web_sys::HtmlElement>,
    api_base: String,
    locale: Locale,
    token: Option<TokenProvider>,
    refetch_on_visible: bool,
    open: bool,
    support: bool,
) -> impl IntoView {
    if let Some(host) = host {
        provide_context(crate::widget::host::HostElement(
            send_wrapper::SendWrapper::new(host),
        ));
    }
    // The launcher's children must be `Send`; the browser has one thread, so this is only a
    // formality for the `Rc` inside a token provider.
    let token = send_wrapper::SendWrapper::new(token);
    // One status line: the stream's (a separate health line said the same thing twice).
    view! {
        <ChatLauncher locale=locale open=open>
            <ChatWidget api_base=api_base locale=locale token=token.take()
                refetch_on_visible=refetch_on_visible support=support />
        </ChatLauncher>
    }
}

/// `conversation="assistant|support"`: what a farmer's widget opens into (the assistant when
/// absent). Anything else is reported and ignored.
fn wants_support(host: &web_sys::HtmlElement) -> bool {
    let kind = host.get_attribute("conversation");
    let kind = kind.as_deref().map(str::trim).filter(|k| !k.is_empty());
    match kind.map(|k| (k, k.parse::<ConversationKind>())) {
        None => false,
        Some((_, Ok(kind))) => kind == ConversationKind::Support,
        Some((other, Err(_))) => {
            leptos::logging::warn!(
                "farm-chat: conversation=\"{other}\" is not assistant or support; opening the assistant"
            );
            false
        }
    }
}

/// `token-provider="name"`: the host page's global function `name({refresh})` returns the
/// Bearer token, or a Promise of it (for pages whose cookies can't reach the API). Asked
/// before every request with `refresh: false`; after a 401, once with `refresh: true` (at
/// most every 30 s) for a fresh token, and the request is tried again.
fn token_provider(name: String) -> TokenProvider {
    use crate::api::TokenAnswer;
    TokenProvider::new(move |refresh| {
        let call = || -> Option<wasm_bindgen::JsValue> {
            let window = web_sys::window()?;
            let function = js_sys::Reflect::get(&window, &wasm_bindgen::JsValue::from_str(&name))
                .ok()?
                .dyn_into::<js_sys::Function>()
                .ok()?;
            let options = js_sys::Object::new();
            let _ = js_sys::Reflect::set(
                &options,
                &wasm_bindgen::JsValue::from_str("refresh"),
                &wasm_bindgen::JsValue::from_bool(refresh),
            );
            function.call1(&wasm_bindgen::JsValue::NULL, &options).ok()
        };
        match call() {
            Some(value) if value.is_instance_of::<js_sys::Promise>() => {
                TokenAnswer::Later(value.unchecked_into())
            }
            Some(value) => TokenAnswer::Now(value.as_string()),
            None => TokenAnswer::Now(None),
        }
    })
}

/// A query parameter of the page's URL.
fn query_param(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    let params = web_sys::UrlSearchParams::new_with_str(&search).ok()?;
    params.get(name).filter(|v| !v.is_empty())
}

/// A property of the host element, set by the launcher script (`launcher/farm-chat.js`).
fn host_flag(host: &web_sys::HtmlElement, name: &str) -> bool {
    js_sys::Reflect::get(host, &wasm_bindgen::JsValue::from_str(name))
        .ok()
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// Mounts a widget into `host`'s shadow root and returns the handle that unmounts it.
///
/// On a page with the launcher script, the shadow root exists already: it holds the
/// stylesheet and the launcher's stand-in button, which the widget replaces (opening the panel
/// if the user clicked the stand-in meanwhile, and keeping the keyboard focus on the button).
/// Without it (tests, a page that mounts by hand), the root is attached here, open, with the
/// stylesheet. Where the element cannot take a shadow root the widget mounts into the light DOM
/// instead, with the stylesheet beside it: it still works, only without the style isolation.
pub fn mount_in_shadow(
    host: web_sys::HtmlElement,
    api_base: String,
    locale: Locale,
    token: Option<TokenProvider>,
) -> Option<leptos::mount::UnmountHandle<impl Mountable>> {
    let document = web_sys::window()?.document()?;
    let refetch_on_visible = host.get_attribute("refetch-on-visible").as_deref() != Some("off");
    let open = host_flag(&host, "fcOpen");
    let support = wants_support(&host);
    let (container, had_focus): (web_sys::Node, bool) = match host.shadow_root() {
        Some(shadow) => {
            let had_focus = shadow.active_element().is_some();
            // The launcher's stand-in goes; its stylesheet stays. (Only the stand-in: a page
            // that mounts a second widget by hand keeps the first.)
            if let Ok(stand_ins) = shadow.query_selector_all("[data-fc-stand-in]") {
                for i in 0..stand_ins.length() {
                    if let Some(node) = stand_ins.item(i) {
                        let _ = shadow.remove_child(&node);
                    }
                }
            }
            (shadow.into(), had_focus)
        }
        None => {
            match host.attach_shadow(&web_sys::ShadowRootInit::new(web_sys::ShadowRootMode::Open)) {
                Ok(shadow) => (shadow.into(), false),
                Err(_) => {
                    leptos::logging::warn!(
                        "farm-chat: no shadow root available; styles are not isolated"
                    );
                    (host.clone().into(), false)
                }
            }
        }
    };
    let has_style = container
        .dyn_ref::<web_sys::ShadowRoot>()
        .and_then(|s| s.query_selector("style").ok().flatten())
        .is_some();
    if !has_style {
        #[cfg(feature = "stylesheet")]
        {
            let style = document.create_element("style").ok()?;
            style.set_text_content(Some(STYLESHEET));
            container.append_child(&style).ok()?;
        }
        #[cfg(not(feature = "stylesheet"))]
        leptos::logging::warn!(
            "farm-chat: mounted without the launcher script, so without its stylesheet"
        );
    }
    let root: web_sys::HtmlElement = document.create_element("div").ok()?.unchecked_into();
    root.set_class_name("fc-root");
    container.append_child(&root).ok()?;
    let handle = leptos::mount::mount_to(root.clone(), move || {
        widget(
            Some(host),
            api_base,
            locale,
            token,
            refetch_on_visible,
            open,
            support,
        )
    });
    // A keyboard user on the stand-in stays on the real button (an opening panel takes the
    // focus to its text box by itself).
    if had_focus
        && !open
        && let Some(toggle) = root
            .query_selector("[data-testid=launcher-toggle]")
            .ok()
            .flatten()
            .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
    {
        let _ = toggle.focus();
    }
    Some(handle)
}

/// Mounts a widget into every `<farm-chat>` element of the document that has none yet.
/// Returns how many. The launcher script calls it (as `mountAll`) for elements added after
/// the widget loaded.
#[wasm_bindgen::prelude::wasm_bindgen(js_name = mountAll)]
pub fn mount_all() -> usize {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return 0;
    };
    let Ok(hosts) = document.query_selector_all("farm-chat") else {
        return 0;
    };
    let page_lang = document
        .document_element()
        .and_then(|e| e.get_attribute("lang"))
        .unwrap_or_default();
    let mut mounted = 0;
    for i in 0..hosts.length() {
        let Some(host) = hosts
            .item(i)
            .and_then(|n| n.dyn_into::<web_sys::HtmlElement>().ok())
        else {
            continue;
        };
        // Once per element: the launcher asks again for elements added later.
        if host_flag(&host, "fcMounted") {
            continue;
        }
        let _ = js_sys::Reflect::set(
            &host,
            &wasm_bindgen::JsValue::from_str("fcMounted"),
            &wasm_bindgen::JsValue::TRUE,
        );
        let api_base = host
            .get_attribute("api-base")
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_API_BASE.to_owned());
        // The demo page's user switcher: `?demo-user=u-support` overrides the attribute.
        let demo_user = host
            .get_attribute("demo-user")
            .filter(|u| !u.trim().is_empty())
            .map(|attribute| query_param("demo-user").unwrap_or(attribute));
        // And its language switcher, `?lang=en`, on demo pages only: a real host page decides.
        let locale_tag = demo_user
            .as_ref()
            .and_then(|_| query_param("lang"))
            .or_else(|| host.get_attribute("locale"))
            .unwrap_or_else(|| page_lang.clone());
        let locale = Locale::from_tag(&locale_tag);
        if demo_user.is_some() && query_param("refetch-on-visible").as_deref() == Some("off") {
            let _ = host.set_attribute("refetch-on-visible", "off");
        }
        let token = host
            .get_attribute("token-provider")
            .filter(|n| !n.trim().is_empty())
            .map(token_provider);
        // Not Leptos's spawn_local: its executor starts with the first mount, below.
        wasm_bindgen_futures::spawn_local(async move {
            if let Some(user) = demo_user {
                let api = crate::api::Api::new(api_base.clone());
                if let Err(e) = api.sign_in(&user).await {
                    leptos::logging::warn!("farm-chat: demo sign-in as {user} failed: {e}");
                }
            }
            // The page owns the widget until it changes one of its settings (the launcher then
            // calls `fcRemount`): unmount, and mount again with the new attributes.
            if let Some(handle) = mount_in_shadow(host.clone(), api_base, locale, token) {
                let handle = std::cell::RefCell::new(Some(handle));
                let element = host.clone();
                let remount = wasm_bindgen::closure::Closure::<dyn Fn()>::new(move || {
                    drop(handle.borrow_mut().take());
                    if let Some(shadow) = element.shadow_root()
                        && let Ok(roots) = shadow.query_selector_all(".fc-root")
                    {
                        for i in 0..roots.length() {
                            if let Some(root) = roots.item(i) {
                                let _ = shadow.remove_child(&root);
                            }
                        }
                    }
                    let _ = js_sys::Reflect::set(
                        &element,
                        &wasm_bindgen::JsValue::from_str("fcMounted"),
                        &wasm_bindgen::JsValue::FALSE,
                    );
                    mount_all();
                });
                let _ = js_sys::Reflect::set(
                    &host,
                    &wasm_bindgen::JsValue::from_str("fcRemount"),
                    &remount.into_js_value(),
                );
            }
        });
        mounted += 1;
    }
    mounted
}
