//! The host element's JS API and DOM events (`<farm-chat>` on a platform's page).
//!
//! The launcher script gives the element its methods (`open()`, `close()`, `toggle()`,
//! `send(text)`, `openConversation(kind)`) at once and queues what is called before the widget
//! is ready (`fcQueue`). Once ready, the widget sets `fcApi(name, args) → Promise` on the
//! element, runs the queue and fires `farm-chat:ready`. Every event bubbles and crosses the
//! shadow boundary (`composed`): `farm-chat:ready`, `:open`, `:close`, `:unread`
//! (`detail.count`), `:message` (`detail.messageId`, `conversationId`, `seq`), `:error`
//! (`detail.code`, `message`) and `:signed-out`.

use farm_chat_protocol::chat::ConversationKind;
use leptos::prelude::*;
use wasm_bindgen::{JsCast, JsValue, closure::Closure};

use super::Ctl;
use crate::{compose, connection::Status, inbox::Inbox, launcher::LauncherContext};

/// The element the widget is mounted for (provided by [`crate::mount`]).
#[derive(Clone)]
pub struct HostElement(pub send_wrapper::SendWrapper<web_sys::HtmlElement>);

/// `{key: value, …}` for an event's detail.
pub fn detail(fields: &[(&str, JsValue)]) -> JsValue {
    let object = js_sys::Object::new();
    for (key, value) in fields {
        let _ = js_sys::Reflect::set(&object, &JsValue::from_str(key), value);
    }
    object.into()
}

/// Fires `event` on `host`: bubbling, composed, with `detail`.
pub fn dispatch(host: &web_sys::HtmlElement, event: HostEvent, detail: &JsValue) {
    let init = web_sys::CustomEventInit::new();
    init.set_bubbles(true);
    init.set_composed(true);
    init.set_detail(detail);
    if let Ok(event) = web_sys::CustomEvent::new_with_event_init_dict(event.as_str(), &init) {
        let _ = host.dispatch_event(&event);
    }
}

fn set(host: &web_sys::HtmlElement, key: &str, value: &JsValue) {
    let _ = js_sys::Reflect::set(host, &JsValue::from_str(key), value);
}

fn rejected(message: &str) -> js_sys::Promise {
    js_sys::Promise::reject(&js_sys::Error::new(message).into())
}

/// Connects the widget to its host element: the API once `ready`, and the events.
pub fn install(
    host: HostElement,
    ctl: Ctl,
    launcher: Option<LauncherContext>,
    ready: Signal<bool>,
    status: Signal<Status>,
) {
    let element = host.0.clone();
    // The controller's own events (a message arrived, a send failed) go out through here.
    ctl.with_value(|c| {
        let element = element.clone();
        *c.emit.borrow_mut() = Some(Box::new(move |event, detail| {
            dispatch(&element, event, &detail)
        }));
    });
    let (inbox, phase) = ctl.with_value(|c| (c.inbox, c.phase));

    let api = Closure::<dyn Fn(String, js_sys::Array) -> js_sys::Promise>::new(
        move |name: String, args: js_sys::Array| call(ctl, launcher, &name, &args),
    );
    let function: js_sys::Function = api.as_ref().clone().unchecked_into();
    let on_ready = host.clone();
    Effect::new(move |done: Option<bool>| {
        if done == Some(true) || !ready.get() {
            return done.unwrap_or(false);
        }
        let element = &*on_ready.0;
        set(element, "fcApi", &function);
        // What the page called before the widget was ready, in order.
        let queue = js_sys::Reflect::get(element, &JsValue::from_str("fcQueue"))
            .ok()
            .and_then(|q| q.dyn_into::<js_sys::Array>().ok());
        set(element, "fcQueue", &JsValue::UNDEFINED);
        for entry in queue.iter().flat_map(|q| q.iter()) {
            let entry: js_sys::Array = entry.unchecked_into();
            let (name, args) = (entry.get(0).as_string().unwrap_or_default(), entry.get(1));
            let promise = function
                .call2(&JsValue::NULL, &JsValue::from_str(&name), &args)
                .ok()
                .and_then(|p| p.dyn_into::<js_sys::Promise>().ok());
            // The queued call's own Promise settles with this one's outcome.
            if let Some(promise) = promise
                && let Ok(then) = js_sys::Reflect::get(&promise, &JsValue::from_str("then"))
                    .and_then(|t| t.dyn_into::<js_sys::Function>())
            {
                let _ = then.call2(&promise, &entry.get(2), &entry.get(3));
            }
        }
        dispatch(element, HostEvent::Ready, &JsValue::NULL);
        true
    });
    let guard = send_wrapper::SendWrapper::new((element.clone(), api));
    on_cleanup(move || {
        let (element, _api) = &*guard;
        let _ = js_sys::Reflect::delete_property(element, &JsValue::from_str("fcApi"));
    });

    if let Some(launcher) = launcher {
        let element = host.clone();
        Effect::new(move |was: Option<bool>| {
            let open = launcher.open.get();
            if was.is_some_and(|was| was != open) {
                let event = if open {
                    HostEvent::Open
                } else {
                    HostEvent::Close
                };
                dispatch(&element.0, event, &JsValue::NULL);
            }
            open
        });
    }
    let element = host.clone();
    Effect::new(move |was: Option<u32>| {
        let count = inbox.with(Inbox::total_unread);
        if was.unwrap_or(0) != count {
            let detail = detail(&[("count", JsValue::from(count))]);
            dispatch(&element.0, HostEvent::Unread, &detail);
        }
        count
    });
    let element = host;
    Effect::new(move |was: Option<bool>| {
        let out =
            status.get() == Status::SignedOut || phase.with(|p| *p == super::Phase::SignedOut);
        if out && was != Some(true) {
            dispatch(&element.0, HostEvent::SignedOut, &JsValue::NULL);
        }
        if let super::Phase::Failed(why) = phase.get()
            && was.is_none()
        {
            let detail = detail(&[
                ("code", JsValue::from_str("load_failed")),
                ("message", JsValue::from_str(&why)),
            ]);
            dispatch(&element.0, HostEvent::Error, &detail);
        }
        out
    });
}

/// One call of the host page's API.
fn call(
    ctl: Ctl,
    launcher: Option<LauncherContext>,
    name: &str,
    args: &js_sys::Array,
) -> js_sys::Promise {
    let panel = |open: Option<bool>| match launcher {
        Some(l) => {
            match open {
                Some(open) => l.set_open.set(open),
                None => l.set_open.update(|o| *o = !*o),
            }
            js_sys::Promise::resolve(&JsValue::UNDEFINED)
        }
        None => rejected("farm-chat: this widget has no panel to open or close"),
    };
    match name {
        "open" => panel(Some(true)),
        "close" => panel(Some(false)),
        "toggle" => panel(None),
        "send" => {
            let Some(text) = args.get(0).as_string() else {
                return rejected("farm-chat: send(text) needs a string");
            };
            let text = text.trim().to_owned();
            if !compose::can_send(&text) {
                return rejected("farm-chat: the text is empty or longer than 4000 characters");
            }
            let Some(Some(key)) = ctl.try_with_value(|c| c.send(text)) else {
                return rejected("farm-chat: no conversation is open");
            };
            js_sys::Promise::new(&mut |resolve, reject| {
                let done: super::controller::SendDone = Box::new(move |result| {
                    let _ = match result {
                        Ok(id) => resolve.call1(&JsValue::NULL, &JsValue::from_str(&id)),
                        Err(why) => reject.call1(&JsValue::NULL, &js_sys::Error::new(&why).into()),
                    };
                });
                ctl.with_value(|c| c.sent.borrow_mut().insert(key.clone(), done));
            })
        }
        "openConversation" => {
            let Some(kind) = args
                .get(0)
                .as_string()
                .and_then(|k| k.parse::<ConversationKind>().ok())
            else {
                return rejected(
                    "farm-chat: openConversation(kind) takes \"assistant\" or \"support\"",
                );
            };
            let opened = ctl.with_value(|c| {
                let staff = c.me.with_untracked(|m| {
                    m.as_ref()
                        .is_some_and(|m| m.kind == farm_chat_protocol::chat::SenderKind::Support)
                });
                if staff {
                    // Support staff's support conversations are their inbox.
                    if kind == ConversationKind::Support {
                        c.show_home();
                        return true;
                    }
                    return false;
                }
                let found = c
                    .inbox
                    .with_untracked(|i| i.first_of(kind).map(|e| e.summary.id.clone()));
                found.is_some_and(|id| {
                    c.open(id);
                    true
                })
            });
            if opened {
                // A host page's "contact support" button must show what it opened.
                if let Some(l) = launcher {
                    l.set_open.set(true);
                }
                js_sys::Promise::resolve(&JsValue::UNDEFINED)
            } else {
                rejected("farm-chat: no such conversation for this user")
            }
        }
        other => rejected(&format!("farm-chat: no method {other}")),
    }
}

/// Every event the widget fires on its host element. [`as_str`](Self::as_str) is its one
/// spelling; the TypeScript declarations and the example platform page are checked against
/// what [`HostEvent::dts_event_map`] and [`HostEvent::js_list`] generate from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostEvent {
    /// The widget is live; calls queued before now have run.
    Ready,
    /// The panel opened.
    Open,
    /// The panel closed.
    Close,
    /// The unread count changed (`detail.count`).
    Unread,
    /// A message was stored in one of the user's conversations (`detail.messageId`,
    /// `conversationId`, `seq`).
    Message,
    /// Something failed: the conversation could not load, a send was refused (`detail.code`,
    /// `message`).
    Error,
    /// The user is signed out (the token provider gave no valid token).
    SignedOut,
}

impl HostEvent {
    /// Every event, in the order the declarations list them.
    pub const ALL: [Self; 7] = [
        Self::Ready,
        Self::Open,
        Self::Close,
        Self::Unread,
        Self::Message,
        Self::Error,
        Self::SignedOut,
    ];

    /// The DOM event's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "farm-chat:ready",
            Self::Open => "farm-chat:open",
            Self::Close => "farm-chat:close",
            Self::Unread => "farm-chat:unread",
            Self::Message => "farm-chat:message",
            Self::Error => "farm-chat:error",
            Self::SignedOut => "farm-chat:signed-out",
        }
    }

    /// What it means, for the TypeScript declarations.
    fn summary(self) -> &'static str {
        match self {
            Self::Ready => "The widget is live; calls queued before now have run.",
            Self::Open => "The panel opened.",
            Self::Close => "The panel closed.",
            Self::Unread => "The unread count changed.",
            Self::Message => "A message was stored in one of the user's conversations.",
            Self::Error => "Something failed: the conversation could not load, a send was refused.",
            Self::SignedOut => "The user is signed out (the token provider gave no valid token).",
        }
    }

    /// The TypeScript type of its `detail`.
    fn detail_type(self) -> &'static str {
        match self {
            Self::Ready | Self::Open | Self::Close | Self::SignedOut => "null",
            Self::Unread => "FarmChatUnreadDetail",
            Self::Message => "FarmChatMessageDetail",
            Self::Error => "FarmChatErrorDetail",
        }
    }

    /// The body of `FarmChatEventMap` in `farm-chat.d.ts`.
    pub fn dts_event_map() -> String {
        Self::ALL
            .iter()
            .map(|e| {
                format!(
                    "  /** {} */\n  \"{}\": CustomEvent<{}>;\n",
                    e.summary(),
                    e.as_str(),
                    e.detail_type()
                )
            })
            .collect()
    }

    /// The list of event names in the example platform page (`public/platform.js`).
    pub fn js_list() -> String {
        Self::ALL
            .iter()
            .map(|e| format!("  \"{}\",\n", e.as_str()))
            .collect()
    }
}

/// Every method of the host element ([`call`] answers each).
pub const METHODS: [&str; 5] = ["open", "close", "toggle", "send", "openConversation"];

#[cfg(test)]
mod tests {
    use super::*;

    /// The element's TypeScript declarations and the example platform page list exactly the
    /// events [`HostEvent`] generates; the declarations and the launcher script name every
    /// method the widget answers.
    #[test]
    fn the_declarations_and_the_launcher_match_the_widget() {
        let types = include_str!("../../launcher/farm-chat.d.ts");
        let launcher = include_str!("../../launcher/farm-chat.js");
        let platform = include_str!("../../public/platform.js");
        let source = [include_str!("host.rs"), include_str!("controller.rs")].concat();
        let map = HostEvent::dts_event_map();
        assert!(
            types.contains(&format!("export interface FarmChatEventMap {{\n{map}}}")),
            "farm-chat.d.ts's FarmChatEventMap must read, from HostEvent:\n{map}"
        );
        let list = HostEvent::js_list();
        assert!(
            platform.contains(&format!("for (const name of [\n{list}])")),
            "public/platform.js's list of events must read, from HostEvent:\n{list}"
        );
        assert_eq!(
            types.matches("\"farm-chat:").count(),
            HostEvent::ALL.len(),
            "an event the widget never fires"
        );
        for event in HostEvent::ALL {
            let variant = format!("{event:?}");
            assert!(
                source.contains(&format!("HostEvent::{variant}")),
                "{} is never fired here",
                event.as_str()
            );
        }
        for method in METHODS {
            assert!(
                types.contains(&format!("  {method}(")),
                "farm-chat.d.ts lacks {method}()"
            );
            assert!(
                launcher.contains(&format!("{method}("))
                    && launcher.contains(&format!("this.fcCall(\"{method}\"")),
                "farm-chat.js lacks {method}()"
            );
            assert!(
                source.contains(&format!("\"{method}\" =>")),
                "call() does not answer {method}"
            );
        }
    }
}
