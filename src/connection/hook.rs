//! `use_chat_stream`: the browser side of [`Connection`](super::Connection).
//!
//! Shaped like leptos-use's `use_event_source` (`use_chat_stream` /
//! `use_chat_stream_with_options`, an options type whose fields document their defaults, a
//! return of signals plus `open` / `close`, cleanup on unmount), but:
//! - it reconnects itself with backoff and jitter, resuming after the last event id (which it
//!   never loses: it is kept across reconnects and passed as `?lastEventId=`);
//! - its JavaScript closures are created once per hook and reused by every EventSource it
//!   opens (no `Closure::forget` per reconnect), and dropped on unmount;
//! - every event reaches `on_event` exactly once and in order (a callback, not a signal, so
//!   two events in one tick can't collapse into one).

use std::{
    cell::{Cell, RefCell},
    collections::HashSet,
    rc::{Rc, Weak},
    time::Duration,
};

use farm_chat_protocol::{EventId, StreamEvent, session::StreamTicket};
use leptos::prelude::*;
use send_wrapper::SendWrapper;
use wasm_bindgen::{JsCast, prelude::Closure};
use web_sys::{EventSource, EventSourceInit, MessageEvent};

use super::{Connection, Effect, Input, SessionCheck, Status};
use crate::{
    api::{Api, ApiFailure, TokenProvider},
    backoff::Backoff,
};

/// Every event name the server sends (EventSource delivers named events only to listeners).
pub const EVENT_NAMES: [&str; 10] = [
    "ready",
    "message.created",
    "task.status",
    "task.intermediate",
    "task.progress",
    "task.result",
    "task.error",
    "task.done",
    "ping",
    "reset",
];

/// Options of [`use_chat_stream_with_options`].
#[derive(Clone)]
pub struct UseChatStreamOptions {
    /// Where the API lives. Default: `/api`.
    pub api_base: String,
    /// Bearer tokens for pages whose cookies can't reach the API: REST then sends
    /// `Authorization: Bearer`, and the stream uses a single-use ticket. Default: `None`
    /// (cookies).
    pub token: Option<TokenProvider>,
    /// Open on mount. Default: `true`.
    pub immediate: bool,
    /// Silence (no event, pings included) after which the stream counts as dead. Default: 45 s.
    pub dead_after: Duration,
    /// Reconnect delays. Default: 0.5 s doubling to 30 s, full jitter, reset after 10 s up.
    pub backoff: Backoff,
    /// Every decoded event, in order. Default: ignore.
    pub on_event: Rc<dyn Fn(StreamEvent)>,
    /// History must be refetched (after a reconnect's `ready`, and on `reset`). Default: ignore.
    pub on_refetch: Rc<dyn Fn()>,
}

impl Default for UseChatStreamOptions {
    fn default() -> Self {
        Self {
            api_base: "/api".into(),
            token: None,
            immediate: true,
            dead_after: Duration::from_secs(45),
            backoff: Backoff::default(),
            on_event: Rc::new(|_| {}),
            on_refetch: Rc::new(|| {}),
        }
    }
}

impl UseChatStreamOptions {
    /// Sets `api_base`.
    pub fn api_base(mut self, base: impl Into<String>) -> Self {
        self.api_base = base.into();
        self
    }

    /// Sets `token`.
    pub fn token(mut self, token: Option<TokenProvider>) -> Self {
        self.token = token;
        self
    }

    /// Sets `immediate`.
    pub fn immediate(mut self, immediate: bool) -> Self {
        self.immediate = immediate;
        self
    }

    /// Sets `dead_after`.
    pub fn dead_after(mut self, after: Duration) -> Self {
        self.dead_after = after;
        self
    }

    /// Sets `backoff`.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets `on_event`.
    pub fn on_event(mut self, f: impl Fn(StreamEvent) + 'static) -> Self {
        self.on_event = Rc::new(f);
        self
    }

    /// Sets `on_refetch`.
    pub fn on_refetch(mut self, f: impl Fn() + 'static) -> Self {
        self.on_refetch = Rc::new(f);
        self
    }
}

/// What [`use_chat_stream`] returns.
#[derive(Clone)]
pub struct UseChatStreamReturn {
    /// What to show about the connection.
    pub status: Signal<Status>,
    /// The id the stream would resume after.
    pub last_event_id: Signal<Option<EventId>>,
    /// Opens (or reopens) the stream.
    pub open: Rc<dyn Fn()>,
    /// Closes it for good (until `open`).
    pub close: Rc<dyn Fn()>,
}

/// `use_chat_stream_with_options` with the defaults and the given callbacks.
pub fn use_chat_stream(on_event: impl Fn(StreamEvent) + 'static) -> UseChatStreamReturn {
    use_chat_stream_with_options(UseChatStreamOptions::default().on_event(on_event))
}

struct Listeners {
    message: Closure<dyn FnMut(MessageEvent)>,
    open: Closure<dyn FnMut(web_sys::Event)>,
    error: Closure<dyn FnMut(web_sys::Event)>,
    retry: Closure<dyn FnMut()>,
    dead: Closure<dyn FnMut()>,
    online: Closure<dyn FnMut(web_sys::Event)>,
    offline: Closure<dyn FnMut(web_sys::Event)>,
    visible: Closure<dyn FnMut(web_sys::Event)>,
}

struct Inner {
    machine: RefCell<Connection>,
    source: RefCell<Option<EventSource>>,
    retry_timer: Cell<Option<i32>>,
    dead_timer: Cell<Option<i32>>,
    /// Bumped on every connect, so a ticket fetched for an older attempt is not used.
    generation: Cell<u64>,
    warned: RefCell<HashSet<String>>,
    options: UseChatStreamOptions,
    api: Api,
    set_status: WriteSignal<Status>,
    set_last: WriteSignal<Option<EventId>>,
    listeners: Listeners,
}

fn window() -> Option<web_sys::Window> {
    web_sys::window()
}

impl Inner {
    fn handle(self: &Rc<Self>, input: Input<'_>) {
        let effects =
            self.machine
                .borrow_mut()
                .handle(input, js_sys::Date::now(), js_sys::Math::random());
        let (status, last) = {
            let m = self.machine.borrow();
            (m.status().clone(), m.last_event_id())
        };
        // Signals are written only on a change; `None` means the component is gone.
        if self
            .set_status
            .try_update(|s| {
                if *s != status {
                    *s = status.clone();
                }
            })
            .is_none()
        {
            return;
        }
        let _ = self.set_last.try_update(|l| {
            if *l != last {
                *l = last;
            }
        });
        for effect in effects {
            self.run(effect);
        }
    }

    fn warn_once(&self, message: String) {
        if self.warned.borrow_mut().insert(message.clone()) {
            leptos::logging::warn!("farm-chat: {message}");
        }
    }

    fn run(self: &Rc<Self>, effect: Effect) {
        match effect {
            Effect::Connect { last_event_id } => self.connect(last_event_id),
            Effect::Disconnect => self.disconnect(),
            Effect::CheckSession => {
                let this = Rc::downgrade(self);
                let api = self.api.clone();
                leptos::task::spawn_local(async move {
                    let answer = api.get::<serde_json::Value>("/session").await;
                    let check = match answer {
                        Ok(_) => SessionCheck::SignedIn,
                        Err(ApiFailure::Http { status: 401, .. }) => SessionCheck::SignedOut,
                        Err(_) => SessionCheck::Unknown,
                    };
                    if let Some(this) = this.upgrade() {
                        this.handle(Input::Session(check));
                    }
                });
            }
            Effect::RetryIn(delay) => {
                self.clear_timer(&self.retry_timer);
                if let Some(w) = window() {
                    let id = w.set_timeout_with_callback_and_timeout_and_arguments_0(
                        self.listeners.retry.as_ref().unchecked_ref(),
                        delay.as_millis().min(i32::MAX as u128) as i32,
                    );
                    self.retry_timer.set(id.ok());
                }
            }
            Effect::CancelRetry => self.clear_timer(&self.retry_timer),
            Effect::Refetch => (self.options.on_refetch)(),
            Effect::Warn(message) => self.warn_once(message),
        }
    }

    fn clear_timer(&self, timer: &Cell<Option<i32>>) {
        if let (Some(id), Some(w)) = (timer.take(), window()) {
            w.clear_timeout_with_handle(id);
        }
    }

    fn arm_dead_timer(&self) {
        self.clear_timer(&self.dead_timer);
        if let Some(w) = window() {
            let id = w.set_timeout_with_callback_and_timeout_and_arguments_0(
                self.listeners.dead.as_ref().unchecked_ref(),
                self.options.dead_after.as_millis().min(i32::MAX as u128) as i32,
            );
            self.dead_timer.set(id.ok());
        }
    }

    fn disconnect(&self) {
        self.clear_timer(&self.dead_timer);
        if let Some(source) = self.source.borrow_mut().take() {
            for name in EVENT_NAMES {
                let _ = source.remove_event_listener_with_callback(
                    name,
                    self.listeners.message.as_ref().unchecked_ref(),
                );
            }
            let _ = source.remove_event_listener_with_callback(
                "open",
                self.listeners.open.as_ref().unchecked_ref(),
            );
            let _ = source.remove_event_listener_with_callback(
                "error",
                self.listeners.error.as_ref().unchecked_ref(),
            );
            source.close();
        }
    }

    fn connect(self: &Rc<Self>, last_event_id: Option<EventId>) {
        self.disconnect();
        let generation = self.generation.get() + 1;
        self.generation.set(generation);
        let mut url = self.api.url("/chat/stream");
        let mut query = Vec::new();
        if let Some(id) = last_event_id {
            query.push(format!("lastEventId={id}"));
        }
        if self.options.token.is_none() {
            if !query.is_empty() {
                url = format!("{url}?{}", query.join("&"));
            }
            self.open_source(&url);
            return;
        }
        // Bearer pages: a long-lived token never goes into a URL, a single-use ticket does.
        let this = Rc::downgrade(self);
        let api = self.api.clone();
        leptos::task::spawn_local(async move {
            let ticket = api.post_empty::<StreamTicket>("/chat/stream-ticket").await;
            let Some(this) = this.upgrade() else { return };
            if this.generation.get() != generation {
                return; // superseded by a newer attempt
            }
            match ticket {
                Ok(ticket) => {
                    query.push(format!("ticket={}", ticket.ticket));
                    this.open_source(&format!("{url}?{}", query.join("&")));
                }
                Err(ApiFailure::Http { status: 401, .. }) => {
                    this.handle(Input::Session(SessionCheck::SignedOut))
                }
                Err(_) => this.handle(Input::Error { fatal: false }),
            }
        });
    }

    fn open_source(self: &Rc<Self>, url: &str) {
        let init = EventSourceInit::new();
        init.set_with_credentials(true);
        let source = match EventSource::new_with_event_source_init_dict(url, &init) {
            Ok(source) => source,
            Err(_) => {
                self.warn_once(format!("cannot open an EventSource for {url}"));
                self.handle(Input::Error { fatal: false });
                return;
            }
        };
        for name in EVENT_NAMES {
            let _ = source.add_event_listener_with_callback(
                name,
                self.listeners.message.as_ref().unchecked_ref(),
            );
        }
        let _ = source
            .add_event_listener_with_callback("open", self.listeners.open.as_ref().unchecked_ref());
        let _ = source.add_event_listener_with_callback(
            "error",
            self.listeners.error.as_ref().unchecked_ref(),
        );
        *self.source.borrow_mut() = Some(source);
        self.arm_dead_timer();
    }

    fn on_message(self: &Rc<Self>, event: MessageEvent) {
        let name = event.type_();
        let id = event.last_event_id();
        self.arm_dead_timer();
        self.handle(Input::Event {
            name: &name,
            id: &id,
        });
        let data = event.data().as_string().unwrap_or_default();
        match StreamEvent::decode(&name, &data) {
            Ok(decoded) => (self.options.on_event)(decoded),
            Err(e) => self.warn_once(format!("ignoring a malformed {name} event: {e}")),
        }
    }

    fn on_error(self: &Rc<Self>) {
        let fatal = self
            .source
            .borrow()
            .as_ref()
            .is_some_and(|s| s.ready_state() == EventSource::CLOSED);
        self.handle(Input::Error { fatal });
    }
}

/// Opens the user's event stream and keeps it open: see the module docs.
pub fn use_chat_stream_with_options(options: UseChatStreamOptions) -> UseChatStreamReturn {
    let (status, set_status) = signal(Status::Closed);
    let (last_event_id, set_last) = signal(None::<EventId>);
    let api = Api {
        base: options.api_base.trim_end_matches('/').to_owned(),
        token: options.token.clone(),
    };
    let immediate = options.immediate;
    let backoff = options.backoff.clone();

    let inner = Rc::new_cyclic(|weak: &Weak<Inner>| {
        let on = |f: fn(&Rc<Inner>)| {
            let weak = weak.clone();
            move || {
                if let Some(inner) = weak.upgrade() {
                    f(&inner);
                }
            }
        };
        let on_event = |f: fn(&Rc<Inner>)| {
            let g = on(f);
            move |_: web_sys::Event| g()
        };
        let weak_message = weak.clone();
        Inner {
            machine: RefCell::new(Connection::new(backoff)),
            source: RefCell::new(None),
            retry_timer: Cell::new(None),
            dead_timer: Cell::new(None),
            generation: Cell::new(0),
            warned: RefCell::new(HashSet::new()),
            options,
            api,
            set_status,
            set_last,
            listeners: Listeners {
                message: Closure::new(move |e: MessageEvent| {
                    if let Some(inner) = weak_message.upgrade() {
                        inner.on_message(e);
                    }
                }),
                open: Closure::new(on_event(|i| i.handle(Input::Opened))),
                error: Closure::new(on_event(Inner::on_error)),
                retry: Closure::new(on(|i| i.handle(Input::RetryDue))),
                dead: Closure::new(on(|i| i.handle(Input::Silence))),
                online: Closure::new(on_event(|i| i.handle(Input::Online))),
                offline: Closure::new(on_event(|i| i.handle(Input::Offline))),
                visible: Closure::new(on_event(|i| {
                    let visible = window()
                        .and_then(|w| w.document())
                        .is_none_or(|d| d.visibility_state() == web_sys::VisibilityState::Visible);
                    if visible {
                        i.handle(Input::Visible);
                    }
                })),
            },
        }
    });

    if let Some(w) = window() {
        let l = &inner.listeners;
        let _ = w.add_event_listener_with_callback("online", l.online.as_ref().unchecked_ref());
        let _ = w.add_event_listener_with_callback("offline", l.offline.as_ref().unchecked_ref());
        let _ = w.add_event_listener_with_callback("pageshow", l.visible.as_ref().unchecked_ref());
        if let Some(d) = w.document() {
            let _ = d.add_event_listener_with_callback(
                "visibilitychange",
                l.visible.as_ref().unchecked_ref(),
            );
        }
        if !w.navigator().on_line() {
            inner.handle(Input::Offline);
        }
    }
    if immediate {
        inner.handle(Input::Open);
    }

    let cleanup = SendWrapper::new(inner.clone());
    on_cleanup(move || {
        let inner = cleanup.take();
        inner.handle(Input::Close);
        if let Some(w) = window() {
            let l = &inner.listeners;
            let _ =
                w.remove_event_listener_with_callback("online", l.online.as_ref().unchecked_ref());
            let _ = w
                .remove_event_listener_with_callback("offline", l.offline.as_ref().unchecked_ref());
            let _ = w.remove_event_listener_with_callback(
                "pageshow",
                l.visible.as_ref().unchecked_ref(),
            );
            if let Some(d) = w.document() {
                let _ = d.remove_event_listener_with_callback(
                    "visibilitychange",
                    l.visible.as_ref().unchecked_ref(),
                );
            }
        }
        // Dropping the last Rc drops every closure with it.
    });

    let open = {
        let weak = Rc::downgrade(&inner);
        Rc::new(move || {
            if let Some(inner) = weak.upgrade() {
                inner.handle(Input::Open);
            }
        }) as Rc<dyn Fn()>
    };
    let close = {
        let weak = Rc::downgrade(&inner);
        Rc::new(move || {
            if let Some(inner) = weak.upgrade() {
                inner.handle(Input::Close);
            }
        }) as Rc<dyn Fn()>
    };
    // `inner` itself is held by the cleanup closure: it lives exactly as long as the component.
    drop(inner);

    UseChatStreamReturn {
        status: status.into(),
        last_event_id: last_event_id.into(),
        open,
        close,
    }
}
