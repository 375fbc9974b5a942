//! [`ChatWidget`]: the user's conversations (a farmer's assistant and support chats, a support
//! user's inbox of farmers) with one live stream for all of them.
//!
//! The widget owns a [`ChatStore`] and an [`Inbox`] in signals, feeds them from history, the
//! conversation list and
//! [`use_chat_stream`](crate::connection::hook::use_chat_stream_with_options), and renders them.
//! A [`Controller`] holds what is not a signal (the API client, the coalescing of fetches, each
//! conversation's draft and scroll position) and lives in a local `StoredValue`.
//!
//! - [`home`]: the conversation list.
//! - [`host`]: the host element's JS API (`open()`, `send(text)`, …) and its DOM events.
//! - [`parts`]: a task reply: `StreamingMessage`, `ProgressBar`, `DataRenderer`.
//! - [`composer`]: the text box (IME-safe Enter) and the send button.

pub mod composer;
pub mod home;
pub mod host;
pub mod parts;

use std::{
    cell::{Cell, RefCell},
    collections::{HashMap, HashSet},
    rc::Rc,
    time::Duration,
};

use farm_chat_protocol::{
    ConversationId, StreamEvent,
    chat::{ConversationKind, ConversationList, HistoryPage, SendResponse, Sender, SenderKind},
    paths,
    session::SessionInfo,
    task::TaskSnapshot,
};
use leptos::{prelude::*, task::spawn_local};
use wasm_bindgen::JsCast;

use crate::{
    api::{Api, ApiFailure, TokenProvider},
    backoff::Backoff,
    connection::{
        Status,
        hook::{UseChatStreamOptions, use_chat_stream_with_options},
        share::Role,
    },
    i18n::{Locale, Text},
    inbox::Inbox,
    store::{BubbleData, ChatStore, PageKind, SendState},
};

/// What the widget is showing besides messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Loading the conversation and its history.
    Loading,
    /// Ready.
    Ready,
    /// Not signed in.
    SignedOut,
    /// Could not load; the reason.
    Failed(String),
}

/// Told once a send is stored (its message id) or has failed for good (why).
pub(crate) type SendDone = Box<dyn FnOnce(Result<String, String>)>;

/// Fires a named DOM event with a detail.
pub(crate) type Emit = Box<dyn Fn(host::HostEvent, wasm_bindgen::JsValue)>;

/// The widget's non-signal state.
pub struct Controller {
    api: Api,
    /// What a farmer's widget opens first: the assistant, or support (`conversation=`).
    kind: ConversationKind,
    /// Sent with each message: the assistant answers in the widget's language.
    locale: Locale,
    store: RwSignal<ChatStore>,
    /// The conversation list, its unread counts, read marks and typing hints.
    inbox: RwSignal<Inbox>,
    /// The open conversation (it stays set while the list is shown, so going back is instant).
    conversation: RwSignal<Option<ConversationId>>,
    /// The list is shown instead of the open conversation.
    home: RwSignal<bool>,
    /// Conversations whose newest page of history has been loaded.
    loaded: RwSignal<HashSet<ConversationId>>,
    me: RwSignal<Option<Sender>>,
    phase: RwSignal<Phase>,
    fetching: Cell<bool>,
    again: Cell<bool>,
    listing: Cell<bool>,
    list_again: Cell<bool>,
    /// What was typed in each conversation the user left.
    drafts: RefCell<HashMap<ConversationId, String>>,
    /// Each conversation's scroll position, and whether it was at the bottom.
    scrolls: RefCell<HashMap<ConversationId, (i32, bool)>>,
    /// When typing was last reported (ms since the epoch).
    typing_reported: Cell<Option<f64>>,
    /// Read marks to tell the server, coalesced.
    reads: RefCell<crate::inbox::ReadQueue>,
    /// A read call is on its way.
    reading: Cell<bool>,
    /// Who waits for a send to be stored (the host page's `send(text)` Promise), by key.
    pub(crate) sent: RefCell<HashMap<String, SendDone>>,
    /// Fires a DOM event on the host element, when there is one (see [`host`]).
    pub(crate) emit: RefCell<Option<Emit>>,
    /// The user's outbox in `localStorage` (known once the user is), and this tab's id.
    outbox: RefCell<Option<String>>,
    tab: String,
    /// The mounted bubbles: a trigger each, and the store revision it last showed. One
    /// effect on the store wakes only the bubbles whose revision moved, so a stream event
    /// costs the widget O(1) reactive work instead of re-running every bubble.
    bubbles: RefCell<HashMap<String, MountedBubble>>,
}

struct MountedBubble {
    /// Tells registrations apart when a key's bubble is recreated.
    id: u64,
    trigger: ArcTrigger,
    seen: u64,
}

impl Controller {
    /// A controller for `kind` (what a farmer's widget opens into), loading; or, given an
    /// already loaded `conversation` (the widget benchmarks), ready on it.
    fn new(
        api: Api,
        kind: ConversationKind,
        locale: Locale,
        conversation: Option<ConversationId>,
    ) -> Self {
        Self {
            api,
            kind,
            locale,
            store: RwSignal::new(ChatStore::default()),
            inbox: RwSignal::new(Inbox::default()),
            phase: RwSignal::new(if conversation.is_some() {
                Phase::Ready
            } else {
                Phase::Loading
            }),
            loaded: RwSignal::new(conversation.iter().cloned().collect()),
            conversation: RwSignal::new(conversation),
            home: RwSignal::new(false),
            me: RwSignal::new(None),
            fetching: Cell::new(false),
            again: Cell::new(false),
            listing: Cell::new(false),
            list_again: Cell::new(false),
            drafts: RefCell::default(),
            scrolls: RefCell::default(),
            typing_reported: Cell::new(None),
            reads: RefCell::default(),
            reading: Cell::new(false),
            sent: RefCell::default(),
            emit: RefCell::default(),
            outbox: RefCell::default(),
            tab: crate::outbox::storage::tab_id(),
            bubbles: RefCell::default(),
        }
    }

    /// Changes the user's outbox, once the user is known.
    fn outbox<T>(&self, change: impl FnOnce(&mut crate::outbox::Outbox) -> T) -> Option<T> {
        let name = self.outbox.borrow().clone()?;
        Some(crate::outbox::storage::update(&name, change))
    }

    /// Fires `event` on the host element, if the widget has one.
    fn emit(&self, event: host::HostEvent, detail: impl FnOnce() -> wasm_bindgen::JsValue) {
        if let Some(emit) = self.emit.borrow().as_ref() {
            emit(event, detail());
        }
    }

    /// Wakes the bubbles whose store revision moved (run after every store change).
    fn wake_bubbles(&self) {
        let Some(conversation) = self.conversation() else {
            return;
        };
        let mut woken = Vec::new();
        let _ = self.store.try_with_untracked(|s| {
            for bubble in self.bubbles.borrow_mut().iter_mut() {
                let rev = s.bubble_rev(&conversation, bubble.0);
                if rev != bubble.1.seen {
                    bubble.1.seen = rev;
                    woken.push(bubble.1.trigger.clone());
                }
            }
        });
        for trigger in woken {
            trigger.notify();
        }
    }

    fn conversation(&self) -> Option<ConversationId> {
        self.conversation.try_get_untracked().flatten()
    }

    /// The widget was unmounted: work still in flight (a fetch, a send's retries) stops here
    /// instead of touching its disposed signals.
    fn gone(&self) -> bool {
        self.store.is_disposed()
    }

    /// Finds the conversation, who we are, and the newest page of history. A flaky network
    /// only makes it take longer (see [`Self::get_until_answered`]); what is left shows as
    /// failed.
    async fn load(self: Rc<Self>) {
        let Some(session) = self.get_until_answered::<SessionInfo>(paths::SESSION).await else {
            return;
        };
        let session = match session {
            Ok(s) => s,
            Err(ApiFailure::Http { status: 401, .. }) => return self.phase.set(Phase::SignedOut),
            Err(e) => return self.phase.set(Phase::Failed(e.to_string())),
        };
        self.me.set(Some(Sender {
            id: session.user_id.clone(),
            kind: SenderKind::from(session.role),
            display_name: session.display_name,
        }));
        *self.outbox.borrow_mut() = Some(crate::outbox::storage::name(
            &self.api.base,
            session.user_id.as_str(),
        ));
        let list = match self
            .get_until_answered::<ConversationList>(&format!("{}?limit=50", paths::CONVERSATIONS))
            .await
        {
            None => return,
            Some(Ok(list)) => list,
            Some(Err(e)) => return self.phase.set(Phase::Failed(e.to_string())),
        };
        self.inbox
            .update(|i| i.apply_page(list.conversations, list.next_cursor));
        // A farmer opens into the assistant (or support, when asked); support staff into their
        // inbox of farmers.
        let is_farmer = self
            .me
            .with_untracked(|me| me.as_ref().is_some_and(|m| m.kind == SenderKind::User));
        let start = is_farmer
            .then(|| {
                self.inbox
                    .with_untracked(|i| i.first_of(self.kind).map(|e| e.summary.id.clone()))
            })
            .flatten();
        match start {
            Some(id) => self.open(id),
            None => {
                self.home.set(true);
                self.phase.set(Phase::Ready);
            }
        }
        // What this user sent before a reload or a crash and the server never confirmed: it
        // shows as sending again and goes out with its original key.
        let now = js_sys::Date::now();
        let tab = self.tab.clone();
        for entry in self.outbox(|o| o.take_over(&tab, now)).unwrap_or_default() {
            self.store
                .update(|s| s.begin_send(&entry.conversation, &entry.key, &entry.text));
            self.deliver(entry.key);
        }
    }

    /// Shows a conversation: its history is loaded the first time, caught up after that.
    pub fn open(self: &Rc<Self>, id: ConversationId) {
        self.conversation.set(Some(id.clone()));
        self.home.set(false);
        if self.loaded.with_untracked(|l| l.contains(&id)) {
            self.catch_up();
            return;
        }
        let this = self.clone();
        spawn_local(async move {
            match this
                .get_until_answered::<HistoryPage>(&format!(
                    "{}?conversationId={id}&limit=50",
                    paths::HISTORY
                ))
                .await
            {
                None => {}
                Some(Ok(page)) => {
                    this.store.update(|s| {
                        s.apply_history(&id, page, PageKind::Latest);
                    });
                    this.loaded.update(|l| {
                        l.insert(id.clone());
                    });
                    this.phase.set(Phase::Ready);
                    // Events that arrived while loading may point past this page.
                    this.catch_up();
                }
                Some(Err(e)) => this.phase.set(Phase::Failed(e.to_string())),
            }
        });
    }

    /// Back to the list.
    pub fn show_home(&self) {
        self.home.set(true);
    }

    /// Fetches the conversation list's first page again (a message in a conversation that is
    /// not open, a reconnect). Concurrent asks coalesce, as for history.
    fn refresh_list(self: &Rc<Self>) {
        if self.listing.replace(true) {
            self.list_again.set(true);
            return;
        }
        let this = self.clone();
        spawn_local(async move {
            loop {
                this.list_again.set(false);
                match this
                    .get_until_answered::<ConversationList>(&format!(
                        "{}?limit=50",
                        paths::CONVERSATIONS
                    ))
                    .await
                {
                    None => return,
                    Some(Ok(list)) => this
                        .inbox
                        .update(|i| i.apply_page(list.conversations, list.next_cursor)),
                    Some(Err(e)) => {
                        leptos::logging::warn!("farm-chat: could not refresh the list: {e}")
                    }
                }
                if !this.list_again.get() {
                    break;
                }
            }
            this.listing.set(false);
        });
    }

    /// Pages more conversations into the list (a support user with many farmers).
    pub fn more_conversations(self: &Rc<Self>) {
        let Some(cursor) = self.inbox.with_untracked(|i| i.next_cursor.clone()) else {
            return;
        };
        let this = self.clone();
        spawn_local(async move {
            let cursor = String::from(js_sys::encode_uri_component(&cursor));
            match this
                .api
                .get::<ConversationList>(&format!(
                    "{}?limit=50&before={cursor}",
                    paths::CONVERSATIONS
                ))
                .await
            {
                _ if this.gone() => {}
                Ok(list) => this
                    .inbox
                    .update(|i| i.apply_page(list.conversations, list.next_cursor)),
                Err(e) => leptos::logging::warn!("farm-chat: could not load more: {e}"),
            }
        });
    }

    /// The user has seen `conversation` up to `seq`: the list clears at once, the server is
    /// told (and tells the other participants, who show 既読).
    fn mark_read(self: &Rc<Self>, conversation: ConversationId, seq: u64) {
        if !self.reads.borrow_mut().ask(&conversation, seq) {
            return;
        }
        self.inbox.update(|i| i.mark_mine(&conversation, seq));
        if self.reading.replace(true) {
            return; // the call on its way sends this too, when it is back
        }
        let this = self.clone();
        spawn_local(async move {
            let mut backoff = Backoff::default().with_cap(Duration::from_secs(30));
            loop {
                let Some((conversation, seq)) = this.reads.borrow().next() else {
                    break;
                };
                // `seq` is a JSON number: the one body of the widget that is not all strings.
                let body = crate::api::json_object(&[("conversationId", conversation.as_str())]);
                let body = format!("{},\"seq\":{seq}}}", body.trim_end_matches('}'));
                match this.api.call("POST", paths::READ, Some(body)).await {
                    _ if this.gone() => return,
                    Ok(_) => this.reads.borrow_mut().told(&conversation, seq),
                    Err(e) if e.retryable() => {
                        sleep(backoff.next_delay(js_sys::Math::random())).await;
                        continue;
                    }
                    Err(e) => {
                        leptos::logging::warn!("farm-chat: could not mark read: {e}");
                        this.reads.borrow_mut().told(&conversation, seq);
                    }
                }
                // At most one read call a second, however fast messages arrive.
                sleep(Duration::from_secs(1)).await;
            }
            this.reading.set(false);
        });
    }

    /// The composer's text changed: in a human conversation the others learn that the user
    /// is typing, every few seconds at most.
    pub fn typed(self: &Rc<Self>, text: &str) {
        let Some(conversation) = self.conversation() else {
            return;
        };
        let Some(kind) = self
            .inbox
            .with_untracked(|i| i.get(&conversation).map(|e| e.summary.kind))
        else {
            return;
        };
        let now = js_sys::Date::now();
        if !crate::inbox::should_report_typing(kind, text, self.typing_reported.get(), now) {
            return;
        }
        self.typing_reported.set(Some(now));
        let api = self.api.clone();
        spawn_local(async move {
            let body = [("conversationId", conversation.as_str())];
            if let Err(e) = api.post::<crate::api::Ignored>(paths::TYPING, &body).await {
                leptos::logging::warn!("farm-chat: could not report typing: {e}");
            }
        });
    }

    /// A GET that is tried again, with backoff (capped at 10 s), while it fails for a reason
    /// worth retrying (no answer, 5xx, 429); `None` once the widget is unmounted. The stream
    /// can stay up while REST requests fail (a flaky network, a proxy): a catch-up given up
    /// there would leave a message the stream announced unshown until some later event.
    async fn get_until_answered<T: farm_chat_protocol::read::FromJson>(
        &self,
        path: &str,
    ) -> Option<Result<T, ApiFailure>> {
        // The retrying itself is not generic: one copy in the wasm for every answer type.
        Some(
            self.get_json_until_answered(path)
                .await?
                .and_then(crate::api::read),
        )
    }

    async fn get_json_until_answered(
        &self,
        path: &str,
    ) -> Option<Result<crate::api::Js, ApiFailure>> {
        let mut backoff = Backoff::default().with_cap(Duration::from_secs(10));
        loop {
            match self.api.call("GET", path, None).await.map(|(_, json)| json) {
                _ if self.gone() => return None,
                Err(e) if e.retryable() => {
                    sleep(backoff.next_delay(js_sys::Math::random())).await;
                    if self.gone() {
                        return None;
                    }
                }
                answer => return Some(answer),
            }
        }
    }

    /// Fetches history after the last contiguous message, page by page. Concurrent requests
    /// coalesce: one fetch runs, and runs once more if asked again meanwhile.
    fn catch_up(self: &Rc<Self>) {
        if self.fetching.replace(true) {
            self.again.set(true);
            return;
        }
        let this = self.clone();
        spawn_local(async move {
            loop {
                this.again.set(false);
                let Some(conversation) = this.conversation() else {
                    break;
                };
                loop {
                    let after = this.store.with_untracked(|s| {
                        s.conversation(&conversation)
                            .map(|c| c.contiguous_seq())
                            .unwrap_or(0)
                    });
                    let path = format!(
                        "{}?conversationId={conversation}&after={after}&limit=100",
                        paths::HISTORY
                    );
                    let page = match this.get_until_answered::<HistoryPage>(&path).await {
                        None => break, // unmounted
                        Some(Ok(page)) => page,
                        Some(Err(e)) => {
                            leptos::logging::warn!("farm-chat: could not catch up on history: {e}");
                            break;
                        }
                    };
                    let more = this
                        .store
                        .try_update(|s| s.apply_history(&conversation, page, PageKind::Newer))
                        .unwrap_or(false);
                    if !more {
                        break;
                    }
                }
                if !this.again.get() {
                    break;
                }
            }
            this.fetching.set(false);
        });
    }

    fn on_event(self: &Rc<Self>, event: StreamEvent) {
        match event {
            StreamEvent::MessageCreated(created) => {
                self.emit(host::HostEvent::Message, || {
                    host::detail(&[
                        ("messageId", created.message_id.as_str().into()),
                        ("conversationId", created.conversation_id.as_str().into()),
                        ("seq", (created.seq as f64).into()),
                    ])
                });
                let missing = self
                    .store
                    .try_update(|s| s.message_created(&created))
                    .flatten();
                if self.conversation().as_ref() == Some(&created.conversation_id) {
                    self.inbox
                        .update(|i| i.stop_typing(&created.conversation_id));
                    if missing.is_some() {
                        self.catch_up();
                    }
                } else if missing.is_some() {
                    // Its preview, unread count and place in the list come with the list.
                    self.refresh_list();
                }
            }
            StreamEvent::Typing(typing) => {
                self.inbox
                    .update(|i| i.typing(&typing, js_sys::Date::now()));
                let inbox = self.inbox;
                set_timeout(
                    move || {
                        let _ = inbox.try_update(|i| i.expire_typing(js_sys::Date::now()));
                    },
                    Duration::from_millis(crate::inbox::TYPING_SHOWN_MS as u64 + 50),
                );
            }
            StreamEvent::ConversationRead(read) => {
                if let Some(me) = self.me.get_untracked() {
                    self.inbox.update(|i| i.read(&read, &me.id));
                }
            }
            StreamEvent::TaskStatus(e)
            | StreamEvent::TaskIntermediate(e)
            | StreamEvent::TaskProgress(e)
            | StreamEvent::TaskResult(e)
            | StreamEvent::TaskError(e) => {
                self.store.update(|s| s.apply_task_part(e));
            }
            StreamEvent::TaskDone(done) => self.store.update(|s| s.apply_task_done(&done)),
            StreamEvent::Reset(_) => {
                self.catch_up();
                self.refresh_list();
            }
            StreamEvent::Ready(_) | StreamEvent::Ping(_) => {}
        }
    }

    /// Sends `text` optimistically; retries network errors and 5xx with the same key until
    /// the server answers (a send is never silently dropped).
    pub fn send(self: &Rc<Self>, text: String) -> Option<String> {
        let conversation = self.conversation()?;
        let key = new_key();
        // A send ends this bout of typing: typing again is reported at once.
        self.typing_reported.set(None);
        self.store
            .update(|s| s.begin_send(&conversation, &key, &text));
        // On disk before the request leaves: a reload or a crash now loses nothing.
        let (tab, now) = (self.tab.clone(), js_sys::Date::now());
        self.outbox(|o| o.add(&key, &conversation, &text, &tab, now));
        self.deliver(key.clone());
        Some(key)
    }

    /// (Re)tries the pending send with this key.
    pub fn deliver(self: &Rc<Self>, key: String) {
        let this = self.clone();
        spawn_local(async move {
            let mut backoff = Backoff::default();
            let mut attempt = 1;
            loop {
                let Some((conversation, text)) = this
                    .store
                    .try_update(|s| s.send_attempt(&key, attempt))
                    .flatten()
                else {
                    return;
                };
                let (tab, now) = (this.tab.clone(), js_sys::Date::now());
                this.outbox(|o| o.renew(&key, &tab, now));
                let request = [
                    ("conversationId", conversation.as_str()),
                    ("text", text.as_str()),
                    ("idempotencyKey", key.as_str()),
                    ("locale", this.locale.tag()),
                ];
                match this.api.post::<SendResponse>(paths::SEND, &request).await {
                    _ if this.gone() => return,
                    Ok((_, response)) => {
                        let me = this.me.get_untracked().unwrap_or(Sender {
                            id: "me".into(),
                            kind: SenderKind::User,
                            display_name: String::new(),
                        });
                        this.store
                            .update(|s| s.send_acknowledged(&key, &response, &me));
                        this.outbox(|o| o.remove(&key));
                        if let Some(done) = this.sent.borrow_mut().remove(&key) {
                            done(Ok(response.message_id.to_string()));
                        }
                        return;
                    }
                    Err(e) if e.retryable() => {
                        attempt += 1;
                        sleep(backoff.next_delay(js_sys::Math::random())).await;
                    }
                    Err(e) => {
                        let reason = match &e {
                            ApiFailure::Http { message, .. } => message.clone(),
                            other => other.to_string(),
                        };
                        this.store.update(|s| s.send_failed(&key, &reason));
                        // Refused (not signed out): trying again after a reload would be refused too.
                        if !matches!(e, ApiFailure::Http { status: 401, .. }) {
                            this.outbox(|o| o.remove(&key));
                        }
                        this.emit(host::HostEvent::Error, || {
                            let code = match &e {
                                ApiFailure::Http { code, .. } => code.clone(),
                                _ => "send_failed".into(),
                            };
                            host::detail(&[
                                ("code", code.as_str().into()),
                                ("message", reason.as_str().into()),
                            ])
                        });
                        if let Some(done) = this.sent.borrow_mut().remove(&key) {
                            done(Err(reason));
                        }
                        return;
                    }
                }
            }
        });
    }

    /// After a reconnect: asks the server for every task the widget still shows running, which
    /// may have ended while the stream was down (see `ChatStore::running_tasks`).
    pub fn refresh_running_tasks(self: &Rc<Self>) {
        let Some(conversation) = self.conversation() else {
            return;
        };
        let running = self
            .store
            .try_with_untracked(|s| s.running_tasks(&conversation))
            .unwrap_or_default();
        for task in running {
            let this = self.clone();
            spawn_local(async move {
                match this
                    .get_until_answered::<TaskSnapshot>(&paths::task(task.as_str()))
                    .await
                {
                    None => {}
                    Some(Ok(snapshot)) => this.store.update(|s| s.apply_task_snapshot(snapshot)),
                    Some(Err(e)) => {
                        leptos::logging::warn!("farm-chat: could not refresh task {task}: {e}")
                    }
                }
            });
        }
    }

    /// Pages the 50 messages before the oldest held one in (the user scrolled up).
    pub fn load_older(self: &Rc<Self>) {
        let Some(conversation) = self.conversation() else {
            return;
        };
        let Some(first) = self.store.with_untracked(|s| s.first_seq(&conversation)) else {
            return;
        };
        let this = self.clone();
        spawn_local(async move {
            let path = format!(
                "{}?conversationId={conversation}&before={first}&limit=50",
                paths::HISTORY
            );
            match this.api.get::<HistoryPage>(&path).await {
                _ if this.gone() => {}
                Ok(page) => {
                    this.store.update(|s| {
                        s.apply_history(&conversation, page, PageKind::Older);
                    });
                }
                Err(e) => leptos::logging::warn!("farm-chat: could not load older messages: {e}"),
            }
        });
    }

    /// Asks the server to stop a running task.
    pub fn cancel(self: &Rc<Self>, task_id: String) {
        let api = self.api.clone();
        spawn_local(async move {
            if let Err(e) = api
                .post_empty::<crate::api::Ignored>(&paths::task_cancel(task_id.as_str()))
                .await
            {
                leptos::logging::warn!("farm-chat: cancel failed: {e}");
            }
        });
    }

    /// The URL of an API-relative link such as a report's `/api/reports/….pdf`.
    pub fn link(&self, path: &str) -> String {
        match path.strip_prefix("/api") {
            Some(rest) => self.api.url(rest),
            None => path.to_owned(),
        }
    }
}

async fn sleep(duration: Duration) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(
                &resolve,
                duration.as_millis() as i32,
            );
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// A new idempotency key: `crypto.randomUUID()` where available.
fn new_key() -> String {
    web_sys::window()
        .and_then(|w| w.crypto().ok())
        .map(|c| c.random_uuid())
        .unwrap_or_else(|| {
            // Whole numbers only: printing a float would pull ~10 KB of formatting into the wasm.
            format!(
                "k-{}-{}",
                js_sys::Date::now() as u64,
                js_sys::Math::random().to_bits()
            )
        })
}

/// The controller, reachable from views.
pub type Ctl = StoredValue<Rc<Controller>, LocalStorage>;

/// One conversation with the farm assistant (or support), live.
#[component]
pub fn ChatWidget(
    /// Where the API lives, e.g. `/api`.
    #[prop(into)]
    api_base: String,
    /// The widget's language.
    #[prop(optional)]
    locale: Locale,
    /// Which conversation: the assistant (default) or support.
    #[prop(optional)]
    support: bool,
    /// Bearer tokens instead of cookies (cross-origin pages). Default: cookies.
    #[prop(default = None)]
    token: Option<TokenProvider>,
    /// Refetch history when the tab comes back to the front (see
    /// `UseChatStreamOptions::refetch_on_visible`). Default: on.
    #[prop(default = true)]
    refetch_on_visible: bool,
) -> impl IntoView {
    let api = Api {
        base: api_base.trim_end_matches('/').to_owned(),
        token: token.clone(),
    };
    let controller = Rc::new(Controller::new(
        api,
        if support {
            ConversationKind::Support
        } else {
            ConversationKind::Assistant
        },
        locale,
        None,
    ));
    let on_event = controller.clone();
    let on_refetch = controller.clone();
    let stream = use_chat_stream_with_options(
        UseChatStreamOptions::default()
            .api_base(api_base)
            .token(token)
            .refetch_on_visible(refetch_on_visible)
            .on_event(move |e| on_event.on_event(e))
            .on_refetch(move || {
                on_refetch.catch_up();
                on_refetch.refresh_list();
                on_refetch.refresh_running_tasks();
            }),
    );
    spawn_local(controller.clone().load());
    chat_view(controller, stream.status, stream.role, locale)
}

/// The widget's view over its controller (shared by [`ChatWidget`] and the benchmarks'
/// [`bench::Harness`]).
fn chat_view(
    controller: Rc<Controller>,
    status: Signal<Status>,
    stream_role: Signal<Role>,
    locale: Locale,
) -> impl IntoView {
    let (store, conversation, phase) =
        (controller.store, controller.conversation, controller.phase);
    let (inbox, home, loaded, me) = (
        controller.inbox,
        controller.home,
        controller.loaded,
        controller.me,
    );
    let ctl: Ctl = StoredValue::new_local(controller);

    // One status line: a quiet dot while live, words only when something is not right.
    let status_text = move || match status.get() {
        Status::Connecting => locale.text(Text::Connecting).to_owned(),
        Status::Connected => locale.text(Text::Live).to_owned(),
        Status::Reconnecting { attempt, retry_in } => locale.reconnecting(attempt, retry_in),
        Status::Offline => locale.text(Text::Offline).to_owned(),
        Status::SignedOut => locale.text(Text::SignedOut).to_owned(),
        Status::Closed => locale.text(Text::Closed).to_owned(),
    };
    let status_name = move || match status.get() {
        Status::Connecting => "connecting",
        Status::Connected => "connected",
        Status::Reconnecting { .. } => "reconnecting",
        Status::Offline => "offline",
        Status::SignedOut => "signed-out",
        Status::Closed => "closed",
    };
    // The keys are rebuilt only when their set or order changes, not on every part.
    let layout = Memo::new(move |_| {
        conversation.with(|c| c.as_ref().map_or(0, |c| store.with(|s| s.layout_rev(c))))
    });
    let keys = Memo::new(move |_| {
        layout.get(); // read, so the memo computes (see `Bubble`)
        conversation.with(|c| {
            c.as_ref()
                .map(|c| store.with_untracked(|s| s.bubble_keys(c)))
                .unwrap_or_default()
        })
    });
    let conversation_loaded = Memo::new(move |_| {
        conversation.with(|c| c.as_ref().is_some_and(|c| loaded.with(|l| l.contains(c))))
    });
    let empty = Memo::new(move |_| keys.with(Vec::is_empty));
    let busy = move || conversation.with(|c| c.as_ref().is_some_and(|c| store.with(|s| s.busy(c))));
    let has_older = move || {
        conversation.with(|c| {
            c.as_ref()
                .is_some_and(|c| store.with(|s| s.conversation(c).is_some_and(|c| c.has_older)))
        })
    };
    let launcher = use_context::<crate::launcher::LauncherContext>();
    let panel_open = move || launcher.is_none_or(|l| l.open.get());
    let visible = page_visibility();

    // The open conversation's unread count and preview come from the messages the widget
    // holds (exact); the others' from the list.
    Effect::new(move |_| {
        let (Some(c), Some(me)) = (conversation.get(), me.get()) else {
            return;
        };
        let mark = inbox.with(|i| i.read_up_to(&c));
        let (unread, newest) =
            store.with(|s| (s.unread_after(&c, mark, &me.id), s.newest(&c).cloned()));
        let changed = inbox.with_untracked(|i| {
            i.get(&c).is_some_and(|e| {
                e.summary.unread != unread
                    || newest.as_ref().is_some_and(|n| {
                        e.summary
                            .last_message
                            .as_ref()
                            .is_none_or(|m| m.seq < n.seq)
                    })
            })
        });
        if changed {
            inbox.update(|i| {
                i.set_unread(&c, unread);
                if let Some(newest) = &newest {
                    i.preview(newest);
                }
            });
        }
    });
    // Seen is read: the open conversation, on screen, with its panel open, in a visible tab.
    Effect::new(move |_| {
        let Some(c) = conversation.get() else { return };
        if home.get() || !panel_open() || !visible.get() || !conversation_loaded.get() {
            return;
        }
        let top = store.with(|s| s.top_seq(&c));
        if top > inbox.with(|i| i.read_up_to(&c)) {
            ctl.with_value(|ctl| ctl.mark_read(c, top));
        }
    });
    // Signed out: the user's unsent messages are not theirs to send any more.
    Effect::new(move |_| {
        if status.get() == Status::SignedOut
            && let Some(name) = ctl.with_value(|c| c.outbox.borrow().clone())
        {
            crate::outbox::storage::clear(&name);
        }
    });
    // Mounted for a host element: its JS API and events.
    if let Some(host_element) = use_context::<host::HostElement>() {
        let ready = Signal::derive(move || {
            phase.get() == Phase::Ready && (home.get() || conversation_loaded.get())
        });
        host::install(host_element, ctl, launcher, ready, status);
    }
    // Inside a launcher: the badge is every conversation's unread messages.
    if let Some(launcher) = launcher {
        Effect::new(move |_| launcher.unread.set(inbox.with(Inbox::total_unread)));
    }

    // The one subscriber to the whole store on behalf of the bubbles: it wakes only those
    // whose revision moved (see `Controller::wake_bubbles`).
    Effect::new(move |_| {
        store.track();
        ctl.with_value(|c| c.wake_bubbles());
    });

    // Stick to the newest message while the user is at the bottom; leave them be once they
    // scroll up to read. After this turn's DOM updates, so the new bubble's height counts.
    let log_ref = NodeRef::<leptos::html::Ol>::new();
    let stuck = StoredValue::new(true);
    Effect::new(move |_| {
        store.track();
        if let Some(list) = log_ref.get_untracked()
            && stuck.get_value()
        {
            set_timeout(
                move || list.set_scroll_top(list.scroll_height()),
                std::time::Duration::ZERO,
            );
        }
    });
    let on_scroll = move |_| {
        if let Some(list) = log_ref.get_untracked() {
            let from_bottom = list.scroll_height() - list.scroll_top() - list.client_height();
            stuck.set_value(from_bottom < 48);
            if let Some(c) = conversation.get_untracked() {
                ctl.with_value(|ctl| {
                    ctl.scrolls
                        .borrow_mut()
                        .insert(c, (list.scroll_top(), from_bottom < 48))
                });
            }
        }
    };
    // Each conversation comes back where the user left it.
    Effect::new(move |_| {
        let Some(c) = conversation.get() else { return };
        home.track();
        let saved = ctl.with_value(|ctl| ctl.scrolls.borrow().get(&c).copied());
        let (top, at_bottom) = saved.unwrap_or((0, true));
        stuck.set_value(at_bottom);
        if let Some(list) = log_ref.get_untracked() {
            set_timeout(
                move || {
                    list.set_scroll_top(if at_bottom { list.scroll_height() } else { top });
                },
                std::time::Duration::ZERO,
            );
        }
    });

    let is_support_staff =
        move || me.with(|m| m.as_ref().is_some_and(|m| m.kind == SenderKind::Support));
    let title = move || {
        let c = conversation.get()?;
        let staff = is_support_staff();
        inbox.with(|i| i.get(&c).map(|e| home::title(&e.summary, staff, locale)))
    };
    let others_unread = move || {
        let open = conversation.get();
        inbox.with(|i| {
            i.entries()
                .iter()
                .filter(|e| Some(&e.summary.id) != open.as_ref())
                .map(|e| e.summary.unread)
                .sum::<u32>()
        })
    };
    let typing = move || {
        let c = conversation.get()?;
        inbox.with(|i| {
            i.typing_in(&c, js_sys::Date::now())
                .map(|name| format!("{name} {}", locale.text(Text::IsTyping)))
        })
    };

    view! {
        <div class="fc-widget" data-testid="chat-widget" lang=locale.tag()
            data-view=move || if home.get() { "home" } else { "chat" }>
            <p class="fc-status" data-testid="connection-status" data-state=status_name role="status"
                data-role=move || match stream_role.get() {
                    Role::Solo => "solo",
                    Role::Leader => "leader",
                    Role::Follower => "follower",
                }>
                <span class=move || if status.with(|s| *s == Status::Connected) { "fc-sr-only" } else { "" }>
                    {status_text}
                </span>
            </p>
            {move || match phase.get() {
                Phase::Loading => view! { <p class="fc-note">{locale.text(Text::Loading)}</p> }.into_any(),
                Phase::SignedOut => view! { <p class="fc-note" data-testid="signed-out">{locale.text(Text::SignedOut)}</p> }.into_any(),
                Phase::Failed(why) => view! { <p class="fc-note fc-note--error" data-testid="load-failed" title=why>{locale.text(Text::LoadFailed)}</p> }.into_any(),
                Phase::Ready => ().into_any(),
            }}
            {move || home.get().then(|| view! { <home::Home ctl=ctl locale=locale /> })}
            <div class="fc-chat" hidden=move || home.get()>
                {move || conversation.with(Option::is_some).then(|| view! {
                    <div class="fc-chat__head">
                        <button type="button" class="fc-link fc-back" data-testid="back"
                            on:click=move |_| ctl.with_value(|c| c.show_home())>
                            {"‹ "}{locale.text(Text::BackToList)}
                            {move || (others_unread() > 0).then(|| view! {
                                <span class="fc-badge fc-unread" data-testid="others-unread"
                                    aria-label=move || format!("{} {}", others_unread(), locale.text(Text::Unread))>
                                    {others_unread}
                                </span>
                            })}
                        </button>
                        <h3 class="fc-chat__title" data-testid="conversation-title">{title}</h3>
                    </div>
                })}
                {move || (phase.get() == Phase::Ready && conversation_loaded.get() && empty.get()).then(|| view! {
                    <p class="fc-note" data-testid="empty">{locale.text(Text::Empty)}</p>
                })}
                {move || (conversation.with(Option::is_some) && phase.get() == Phase::Ready && !conversation_loaded.get()).then(|| view! {
                    <p class="fc-note">{locale.text(Text::Loading)}</p>
                })}
                {move || has_older().then(|| view! {
                    <button type="button" class="fc-link fc-older" data-testid="load-older"
                        on:click=move |_| ctl.with_value(|c| c.load_older())>
                        {locale.text(Text::LoadOlder)}
                    </button>
                })}
                <ol class="fc-log" data-testid="message-list" role="log" aria-live="polite"
                    aria-busy=move || busy().to_string() node_ref=log_ref on:scroll=on_scroll>
                    <For each=move || keys.get() key=|k| k.clone() let:key>
                        <Bubble ctl=ctl bubble_key=key locale=locale />
                    </For>
                </ol>
                <p class="fc-typing" data-testid="typing" aria-live="polite">{typing}</p>
                <composer::Composer ctl=ctl locale=locale ready=conversation_loaded.into() />
            </div>
        </div>
    }
}

/// Whether the page is on screen (`visibilitychange`), for read marks: a reply that arrives in
/// a background tab is not read yet.
fn page_visibility() -> Signal<bool> {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return Signal::stored(true);
    };
    let visible = RwSignal::new(!document.hidden());
    let listener = wasm_bindgen::closure::Closure::<dyn Fn()>::new({
        let document = document.clone();
        move || {
            let _ = visible.try_set(!document.hidden());
        }
    });
    let function: js_sys::Function = listener.as_ref().clone().unchecked_into();
    let _ = document.add_event_listener_with_callback("visibilitychange", &function);
    let guard = send_wrapper::SendWrapper::new((document, function, listener));
    on_cleanup(move || {
        let (document, function, _listener) = &*guard;
        let _ = document.remove_event_listener_with_callback("visibilitychange", function);
    });
    visible.into()
}

/// One bubble, looked up by key so it re-renders only when it changes.
#[component]
fn Bubble(ctl: Ctl, bubble_key: String, locale: Locale) -> impl IntoView {
    let (store, conversation) = ctl.with_value(|c| (c.store, c.conversation));
    let key = bubble_key.clone();
    // Every store change re-checks this cheap revision; only a bubble whose revision moved
    // copies its data again (a copy per bubble per event made streaming O(bubbles)): see
    // `Controller::wake_bubbles`.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let trigger = ArcTrigger::new();
    ctl.with_value(|c| {
        let seen = conversation.with_untracked(|conv| {
            conv.as_ref().map_or(0, |conv| {
                store.with_untracked(|s| s.bubble_rev(conv, &bubble_key))
            })
        });
        c.bubbles.borrow_mut().insert(
            bubble_key.clone(),
            MountedBubble {
                id,
                trigger: trigger.clone(),
                seen,
            },
        );
    });
    let unregister = bubble_key.clone();
    on_cleanup(move || {
        let _ = ctl.try_with_value(|c| {
            let mut bubbles = c.bubbles.borrow_mut();
            if bubbles.get(&unregister).is_some_and(|b| b.id == id) {
                bubbles.remove(&unregister);
            }
        });
    });
    let data = Memo::new(move |_| {
        trigger.track();
        conversation.with_untracked(|c| {
            c.as_ref()
                .and_then(|c| store.with_untracked(|s| s.bubble(c, &key)))
        })
    });
    // The task changes with every part; the rest of the bubble almost never. Two memos, so a
    // part re-renders only the task reply.
    let task = Memo::new(move |_| {
        data.with(|d| match d {
            Some(BubbleData::Stored(m)) => m.task.clone(),
            _ => None,
        })
    });
    let head = Memo::new(move |_| {
        data.with(|d| {
            d.clone().map(|d| match d {
                BubbleData::Stored(mut m) => {
                    m.task = None;
                    BubbleData::Stored(m)
                }
                pending => pending,
            })
        })
    });
    let has_task = Memo::new(move |_| task.with(Option::is_some));
    move || match head.get() {
        None => ().into_any(),
        Some(BubbleData::Pending(p)) => {
            let key = p.key.clone();
            let (state, failed) = match &p.state {
                SendState::Sending { attempt: 1 } => (locale.text(Text::Sending).to_owned(), false),
                SendState::Sending { attempt } => (locale.retrying(attempt - 1), false),
                SendState::Failed { reason } => (
                    format!("{} ({reason})", locale.text(Text::SendFailed)),
                    true,
                ),
            };
            view! {
                <li class="fc-bubble fc-bubble--mine" data-testid="bubble" data-key=p.key.clone() data-state=if failed { "failed" } else { "sending" }>
                    <p class="fc-text">{p.text.clone()}</p>
                    <p class="fc-meta">{state}</p>
                    {failed.then(|| view! {
                        <button type="button" class="fc-button" data-testid="retry"
                            on:click=move |_| ctl.with_value(|c| c.deliver(key.clone()))>
                            {locale.text(Text::Retry)}
                        </button>
                    })}
                </li>
            }
            .into_any()
        }
        Some(BubbleData::Stored(m)) => {
            let mine = ctl.with_value(|c| {
                c.me.with_untracked(|me| me.as_ref().is_some_and(|me| me.id == m.sender.id))
            });
            let who = if mine {
                locale.text(Text::You).to_owned()
            } else {
                m.sender.display_name.clone()
            };
            let when = crate::format::time(locale, &m.created_at);
            // 既読 on my messages in a human conversation once someone else has read them.
            let seq = m.seq;
            let read = Memo::new(move |_| {
                mine && conversation.with(|c| {
                    c.as_ref().is_some_and(|c| {
                        ctl.with_value(|ctl| {
                            ctl.inbox.with(|i| {
                                i.get(c).is_some_and(|e| {
                                    e.summary.kind == ConversationKind::Support
                                        && e.summary.others_read_up_to >= seq
                                })
                            })
                        })
                    })
                })
            });
            let class = match (mine, m.sender.kind) {
                (true, _) => "fc-bubble fc-bubble--mine",
                (false, SenderKind::Assistant) => "fc-bubble fc-bubble--assistant",
                (false, _) => "fc-bubble fc-bubble--other",
            };
            view! {
                <li class=class data-testid="bubble" data-key=bubble_key.clone() data-message-id=m.message_id.to_string() data-state="sent">
                    <p class="fc-meta">{who}" · "<time data-testid="time" datetime=m.created_at.clone()>{when}</time>
                        {move || read.get().then(|| view! {
                            " · "<span class="fc-read" data-testid="read-receipt">{locale.text(Text::ReadReceipt)}</span>
                        })}
                    </p>
                    <p class="fc-text">{m.text.clone()}</p>
                    {move || has_task.get().then(|| view! { <parts::TaskReply ctl=ctl task=task locale=locale /> })}
                </li>
            }
            .into_any()
        }
    }
}

/// A ChatWidget without a server, for the widget benchmarks (`tests/bench_widget.rs`): the real
/// view and store, fed directly with what the stream and history would deliver.
#[doc(hidden)]
pub mod bench {
    use super::*;

    /// A mounted widget showing one conversation, "connected".
    pub struct Harness {
        controller: Rc<Controller>,
        /// The conversation shown.
        pub conversation: ConversationId,
    }

    impl Harness {
        /// The widget's view for `conversation` (call inside a mount).
        pub fn view(conversation: ConversationId, locale: Locale) -> (Self, impl IntoView) {
            let controller = Rc::new(Controller::new(
                Api::new("/nowhere"),
                ConversationKind::Assistant,
                locale,
                Some(conversation.clone()),
            ));
            let view = chat_view(
                controller.clone(),
                Signal::stored(Status::Connected),
                Signal::stored(Role::Solo),
                locale,
            );
            (
                Self {
                    controller,
                    conversation,
                },
                view,
            )
        }

        /// A page of history, as a fetch would apply it.
        pub fn history(&self, page: HistoryPage, kind: PageKind) {
            self.controller.store.update(|s| {
                s.apply_history(&self.conversation, page, kind);
            });
        }

        /// A stream event, as the connection would deliver it (a `message.created` past the
        /// held messages would start a history fetch: apply that page with [`Self::history`]).
        pub fn event(&self, event: StreamEvent) {
            match event {
                StreamEvent::MessageCreated(created) => {
                    self.controller.store.update(|s| {
                        s.message_created(&created);
                    });
                }
                other => self.controller.on_event(other),
            }
        }
    }
}
