//! `use_chat_stream_with_options`: the browser side of [`Connection`](super::Connection).
//!
//! Shaped like leptos-use's `use_event_source` (`use_chat_stream_with_options`, an options type whose fields document their defaults, a
//! return of signals plus `open` / `close`, cleanup on unmount), but:
//! - it reconnects itself with backoff and jitter, resuming after the last event id (which it
//!   never loses: it is kept across reconnects and passed as `?lastEventId=`);
//! - its JavaScript closures are created once per hook and reused by every EventSource it
//!   opens (no `Closure::forget` per reconnect), and dropped on unmount;
//! - every event reaches `on_event` exactly once and in order (a callback, not a signal, so
//!   two events in one tick can't collapse into one);
//! - one stream per browser: the tabs of one user elect a leader (Web Locks) that alone holds
//!   the EventSource and passes everything on over a `BroadcastChannel` (see
//!   [`share`](super::share)); where those APIs are missing, or `share` is off, each tab has
//!   its own stream.

use std::{
    cell::{Cell, RefCell},
    collections::HashSet,
    rc::{Rc, Weak},
    time::Duration,
};

use farm_chat_protocol::{EventId, StreamEvent};
use leptos::prelude::*;
use send_wrapper::SendWrapper;
use wasm_bindgen::{JsCast, JsValue, prelude::Closure};
use web_sys::{EventSource, EventSourceInit, MessageEvent};

use super::{
    Connection, Effect, Input, SessionCheck, Status,
    share::{Role, Wire, lock_name},
};
use crate::{
    api::{Api, ApiFailure, Get, TokenProvider},
    backoff::Backoff,
};

/// Every event name the server sends (EventSource delivers named events only to listeners).
pub const EVENT_NAMES: &[&str] = StreamEvent::NAMES;

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
    /// Share one stream among all tabs (and widgets) of the same user and API: one leader
    /// holds it, the others follow over a `BroadcastChannel`. Default: `true` (falls back to a
    /// stream of its own where Web Locks or BroadcastChannel are missing).
    pub share: bool,
    /// Ask for a history refetch (`on_refetch`) whenever the tab comes back to the front, to
    /// catch up on what a background or frozen tab may have missed. Default: `true`. The e2e
    /// fault suite turns it off: its harness switches tabs all the time, and it must prove that
    /// live delivery alone (the stream, its resumes and catch-ups) loses nothing.
    pub refetch_on_visible: bool,
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
            share: true,
            refetch_on_visible: true,
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

    /// Sets `on_event`.
    pub fn on_event(mut self, f: impl Fn(StreamEvent) + 'static) -> Self {
        self.on_event = Rc::new(f);
        self
    }

    /// Sets `refetch_on_visible`.
    pub fn refetch_on_visible(mut self, refetch: bool) -> Self {
        self.refetch_on_visible = refetch;
        self
    }

    /// Sets `on_refetch`.
    pub fn on_refetch(mut self, f: impl Fn() + 'static) -> Self {
        self.on_refetch = Rc::new(f);
        self
    }

    /// Sets `share`.
    pub fn share(mut self, share: bool) -> Self {
        self.share = share;
        self
    }
}

/// What [`use_chat_stream_with_options`] returns.
#[derive(Clone)]
pub struct UseChatStreamReturn {
    /// What to show about the connection.
    pub status: Signal<Status>,
    /// The id the stream would resume after.
    pub last_event_id: Signal<Option<EventId>>,
    /// This tab's part: its own stream, the shared stream's leader, or a follower.
    pub role: Signal<Role>,
    /// Opens (or reopens) the stream.
    pub open: Rc<dyn Fn()>,
    /// Closes it for good (until `open`).
    pub close: Rc<dyn Fn()>,
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
    /// A message from another tab.
    wire: Closure<dyn FnMut(MessageEvent)>,
    /// Web Locks granted us the lock: lead until the returned promise resolves.
    granted: Closure<dyn FnMut(JsValue) -> JsValue>,
    /// Swallows the lock request's rejection when we abort it.
    ignore: Closure<dyn FnMut(JsValue)>,
    /// The page is frozen / resumed (page lifecycle): a frozen leader hands over.
    freeze: Closure<dyn FnMut(web_sys::Event)>,
    resume: Closure<dyn FnMut(web_sys::Event)>,
}

/// The sharing state of one hook.
#[derive(Default)]
struct Sharing {
    channel: Option<web_sys::BroadcastChannel>,
    /// Resolves the promise that holds the lock (releases it).
    release: Option<js_sys::Function>,
    /// Cancels a pending lock request.
    abort: Option<web_sys::AbortController>,
    /// Bumped on every start / stop, so a session answer for an older start is dropped.
    generation: u64,
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
    role: Cell<Role>,
    set_role: WriteSignal<Role>,
    sharing: RefCell<Sharing>,
    /// `open()` was asked for (and not `close()`d): a resumed page starts again.
    wanted: Cell<bool>,
    listeners: Listeners,
}

/// `navigator.locks`, where the browser has both Web Locks and BroadcastChannel.
fn lock_manager() -> Option<JsValue> {
    let w = window()?;
    let locks = js_sys::Reflect::get(&w.navigator(), &JsValue::from_str("locks")).ok()?;
    let channel = js_sys::Reflect::get(&w, &JsValue::from_str("BroadcastChannel")).ok()?;
    (!locks.is_undefined() && !locks.is_null() && channel.is_function()).then_some(locks)
}

/// The API base as an absolute URL (lock names must not depend on how a page spells it).
fn absolute(base: &str) -> String {
    if base.starts_with("http://") || base.starts_with("https://") {
        return base.to_owned();
    }
    let origin = window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default();
    format!("{origin}{base}")
}

fn window() -> Option<web_sys::Window> {
    web_sys::window()
}

impl Inner {
    fn handle(self: &Rc<Self>, input: Input<'_>) {
        if !self.role.get().streams() {
            // A follower shows the leader's connection, it has none of its own. But the
            // network is the browser's: offline is offline in every tab, and the leader may be
            // a tab that is closing and will never say so.
            if matches!(input, Input::Offline) {
                let _ = self.set_status.try_set(Status::Offline);
            }
            return;
        }
        let effects =
            self.machine
                .borrow_mut()
                .handle(input, js_sys::Date::now(), js_sys::Math::random());
        let (status, last) = {
            let m = self.machine.borrow();
            (m.status().clone(), m.last_event_id())
        };
        // Signals are written only on a change; `None` means the component is gone.
        let Some(changed) = self.set_status.try_update(|s| {
            let changed = *s != status;
            if changed {
                *s = status.clone();
            }
            changed
        }) else {
            return;
        };
        if changed && self.role.get() == Role::Leader {
            self.post(&Wire::Status(status));
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
                    let answer = api.get::<crate::api::Ignored>(Get::session().path()).await;
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
            Effect::Refetch => {
                (self.options.on_refetch)();
                if self.role.get() == Role::Leader {
                    self.post(&Wire::Refetch);
                }
            }
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
            for &name in EVENT_NAMES {
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
        let last = last_event_id.map(|id| id.to_string());
        if self.options.token.is_none() {
            self.open_source(&self.api.stream_url(last.as_deref(), None));
            return;
        }
        // Bearer pages: a long-lived token never goes into a URL, a single-use ticket does.
        let this = Rc::downgrade(self);
        let api = self.api.clone();
        leptos::task::spawn_local(async move {
            let ticket = api.stream_ticket().await;
            let Some(this) = this.upgrade() else { return };
            if this.generation.get() != generation {
                return; // superseded by a newer attempt
            }
            match ticket {
                Ok(ticket) => {
                    this.open_source(&api.stream_url(last.as_deref(), Some(&ticket.ticket)));
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
        for &name in EVENT_NAMES {
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
        if self.role.get() == Role::Leader {
            self.post(&Wire::Event {
                id: id.clone(),
                name: name.clone(),
                data: data.clone(),
            });
        }
        match crate::api::decode_event(&name, &data) {
            Ok(decoded) => (self.options.on_event)(decoded),
            Err(e) => self.warn_once(format!("ignoring a malformed {name} event: {e}")),
        }
    }

    fn set_role(&self, role: Role) {
        self.role.set(role);
        let _ = self.set_role.try_set(role);
    }

    /// Posts to the other tabs (a no-op when not sharing).
    fn post(&self, wire: &Wire) {
        if let Some(channel) = &self.sharing.borrow().channel {
            let parts: js_sys::Array = wire.encode().iter().map(|p| JsValue::from_str(p)).collect();
            let _ = channel.post_message(&parts);
        }
    }

    /// `open()`: share the stream where the browser can, else open our own. On a tab that
    /// streams already it reconnects now; a follower keeps following.
    fn start(self: &Rc<Self>) {
        self.wanted.set(true);
        match self.role.get() {
            Role::Leader => return self.handle(Input::Open),
            Role::Follower if self.sharing.borrow().channel.is_some() => return,
            Role::Solo | Role::Follower => {}
        }
        match (self.options.share, lock_manager()) {
            (true, Some(locks)) => self.share_start(locks),
            _ => {
                self.set_role(Role::Solo);
                self.handle(Input::Open);
            }
        }
    }

    /// `close()` and unmount: stop streaming and leave the election (the next tab takes over).
    fn stop(self: &Rc<Self>, wanted: bool) {
        self.wanted.set(wanted);
        // Stop posting first: the other tabs should not show this tab's "closed".
        let channel = self.sharing.borrow_mut().channel.take();
        if self.role.get().streams() {
            self.handle(Input::Close);
        }
        let mut sharing = self.sharing.borrow_mut();
        sharing.generation += 1;
        if let Some(abort) = sharing.abort.take() {
            abort.abort();
        }
        if let Some(release) = sharing.release.take() {
            let _ = release.call0(&JsValue::NULL);
        }
        if let Some(channel) = channel {
            channel.set_onmessage(None);
            channel.close();
        }
        if self.role.get() == Role::Leader {
            self.set_role(Role::Follower);
        }
    }

    /// Finds who we are (the lock is per user), joins the channel and asks for the lock.
    fn share_start(self: &Rc<Self>, locks: JsValue) {
        self.set_role(Role::Follower);
        let _ = self.set_status.try_set(Status::Connecting);
        let generation = {
            let mut sharing = self.sharing.borrow_mut();
            sharing.generation += 1;
            sharing.generation
        };
        let this = Rc::downgrade(self);
        let api = self.api.clone();
        leptos::task::spawn_local(async move {
            let session = api.fetch(&Get::session()).await;
            let Some(this) = this.upgrade() else { return };
            if this.sharing.borrow().generation != generation {
                return; // stopped (or restarted) meanwhile
            }
            let user = match session {
                Ok(session) => session.user_id,
                Err(ApiFailure::Http { status: 401, .. }) => {
                    let _ = this.set_status.try_set(Status::SignedOut);
                    return;
                }
                Err(e) => {
                    // Can't tell whose stream to share: stream alone (it retries by itself).
                    this.warn_once(format!("stream sharing off for now: {e}"));
                    this.set_role(Role::Solo);
                    this.handle(Input::Open);
                    return;
                }
            };
            let name = lock_name(&absolute(&this.api.base), &user.to_string());
            let Ok(channel) = web_sys::BroadcastChannel::new(&name) else {
                this.set_role(Role::Solo);
                this.handle(Input::Open);
                return;
            };
            channel.set_onmessage(Some(this.listeners.wire.as_ref().unchecked_ref()));
            let abort = web_sys::AbortController::new().ok();
            {
                let mut sharing = this.sharing.borrow_mut();
                sharing.channel = Some(channel);
                sharing.abort = abort.clone();
            }
            this.post(&Wire::Hello);
            let options = js_sys::Object::new();
            if let Some(abort) = &abort {
                let _ = js_sys::Reflect::set(&options, &"signal".into(), &abort.signal());
            }
            let request = js_sys::Reflect::get(&locks, &"request".into())
                .ok()
                .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
            let pending = request.and_then(|request| {
                request
                    .call3(
                        &locks,
                        &JsValue::from_str(&name),
                        &options,
                        this.listeners.granted.as_ref(),
                    )
                    .ok()
            });
            match pending.and_then(|p| p.dyn_into::<js_sys::Promise>().ok()) {
                Some(promise) => {
                    let _ = promise.catch(&this.listeners.ignore);
                }
                None => {
                    this.set_role(Role::Solo);
                    this.handle(Input::Open);
                }
            }
        });
    }

    /// The lock is ours: open the stream, resuming after the newest id any tab saw, and hold
    /// the lock until [`Inner::stop`] resolves the returned promise.
    fn on_granted(self: &Rc<Self>) -> JsValue {
        if self.sharing.borrow().channel.is_none() {
            return js_sys::Promise::resolve(&JsValue::UNDEFINED).into(); // stopped meanwhile
        }
        let mut release = None;
        let held = js_sys::Promise::new(&mut |resolve, _| release = Some(resolve));
        self.sharing.borrow_mut().release = release;
        self.set_role(Role::Leader);
        if window().is_some_and(|w| !w.navigator().on_line()) {
            self.handle(Input::Offline);
        } else {
            self.handle(Input::Online);
        }
        self.handle(Input::Open);
        // Tell the followers at once, even if the status did not change here.
        self.post(&Wire::Status(self.machine.borrow().status().clone()));
        held.into()
    }

    /// A message from another tab.
    fn on_wire(self: &Rc<Self>, event: MessageEvent) {
        let parts: Vec<String> = match event.data().dyn_into::<js_sys::Array>() {
            Ok(array) => array.iter().filter_map(|v| v.as_string()).collect(),
            Err(_) => return,
        };
        let role = self.role.get();
        match Wire::decode(&parts) {
            Some(Wire::Hello) if role == Role::Leader => {
                // A new tab may come with a fresh sign-in (the cookie is the browser's): a
                // leader stuck signed out tries again, or it would hold every tab signed out.
                let signed_out = *self.machine.borrow().status() == Status::SignedOut;
                if signed_out {
                    self.handle(Input::Open);
                }
                self.post(&Wire::Status(self.machine.borrow().status().clone()));
            }
            Some(Wire::Event { id, name, data }) if role == Role::Follower => {
                if let Ok(id) = id.parse::<u64>() {
                    self.machine.borrow_mut().saw_elsewhere(EventId(id));
                    let last = self.machine.borrow().last_event_id();
                    let _ = self.set_last.try_set(last);
                }
                match crate::api::decode_event(&name, &data) {
                    Ok(decoded) => (self.options.on_event)(decoded),
                    Err(e) => self.warn_once(format!("ignoring a malformed {name} event: {e}")),
                }
            }
            Some(Wire::Status(status)) if role == Role::Follower => {
                let _ = self.set_status.try_set(status);
            }
            Some(Wire::Refetch) if role == Role::Follower => (self.options.on_refetch)(),
            _ => {}
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
    let (role, set_role) = signal(Role::Solo);
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
        let weak_wire = weak.clone();
        let weak_granted = weak.clone();
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
            role: Cell::new(Role::Solo),
            set_role,
            sharing: RefCell::new(Sharing::default()),
            wanted: Cell::new(false),
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
                        // Back in front: catch up on whatever a background (possibly frozen)
                        // tab missed, streaming or following. One cheap history request.
                        if i.wanted.get() && i.options.refetch_on_visible {
                            (i.options.on_refetch)();
                        }
                    }
                })),
                wire: Closure::new(move |e: MessageEvent| {
                    if let Some(inner) = weak_wire.upgrade() {
                        inner.on_wire(e);
                    }
                }),
                granted: Closure::new(move |_lock: JsValue| match weak_granted.upgrade() {
                    Some(inner) => inner.on_granted(),
                    None => js_sys::Promise::resolve(&JsValue::UNDEFINED).into(),
                }),
                ignore: Closure::new(|_: JsValue| {}),
                freeze: Closure::new(on_event(|i| {
                    if i.role.get() == Role::Leader {
                        i.stop(true);
                    }
                })),
                resume: Closure::new(on_event(|i| {
                    if i.wanted.get() {
                        i.start();
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
            let _ = d.add_event_listener_with_callback("freeze", l.freeze.as_ref().unchecked_ref());
            let _ = d.add_event_listener_with_callback("resume", l.resume.as_ref().unchecked_ref());
        }
        if !w.navigator().on_line() {
            inner.handle(Input::Offline);
        }
    }
    if immediate {
        inner.start();
    }

    let cleanup = SendWrapper::new(inner.clone());
    on_cleanup(move || {
        let inner = cleanup.take();
        inner.stop(false);
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
                let _ = d.remove_event_listener_with_callback(
                    "freeze",
                    l.freeze.as_ref().unchecked_ref(),
                );
                let _ = d.remove_event_listener_with_callback(
                    "resume",
                    l.resume.as_ref().unchecked_ref(),
                );
            }
        }
        // Dropping the last Rc drops every closure with it.
    });

    let open = {
        let weak = Rc::downgrade(&inner);
        Rc::new(move || {
            if let Some(inner) = weak.upgrade() {
                inner.start();
            }
        }) as Rc<dyn Fn()>
    };
    let close = {
        let weak = Rc::downgrade(&inner);
        Rc::new(move || {
            if let Some(inner) = weak.upgrade() {
                inner.stop(false);
            }
        }) as Rc<dyn Fn()>
    };
    // `inner` itself is held by the cleanup closure: it lives exactly as long as the component.
    drop(inner);

    UseChatStreamReturn {
        status: status.into(),
        last_event_id: last_event_id.into(),
        role: role.into(),
        open,
        close,
    }
}
