//! [`Controller`]: what the widget does, apart from what it shows. It loads the user, the
//! conversation list and history, applies stream events, sends (through the one owner of a
//! pending send, [`Sends`]), marks read, reports typing, cancels tasks. Every request goes
//! through the API client's typed endpoints; every "one at a time" is a [`Coalesce`].
//!
//! The views reach it through [`Ctl`](super::Ctl) and read its signals; what is not a signal
//! (drafts, scroll positions, the host page's waiting sends) lives here too.

use std::{
    cell::{Cell, RefCell},
    collections::{HashMap, HashSet},
    rc::Rc,
    time::Duration,
};

use farm_chat_protocol::{
    ConversationId, StreamEvent, TaskId,
    chat::{ConversationKind, HistoryPage, Sender, SenderKind},
    read::FromJson,
    session::SessionInfo,
    task::TaskSnapshot,
};
use leptos::{prelude::*, task::spawn_local};

use super::{Phase, coalesce::Coalesce, host};
use crate::{
    api::{Api, ApiFailure, Get, Page},
    backoff::Backoff,
    i18n::Locale,
    inbox::Inbox,
    outbox::{Outbox, storage},
    sends::Sends,
    store::{ChatStore, PageKind},
};

/// Told once a send is stored (its message id) or has failed for good (why).
pub(crate) type SendDone = Box<dyn FnOnce(Result<String, String>)>;

/// Fires an event on the host element, with a detail.
pub(crate) type Emit = Box<dyn Fn(host::HostEvent, wasm_bindgen::JsValue)>;

/// See the [module](self).
pub struct Controller {
    api: Api,
    /// What a farmer's widget opens first: the assistant, or support (`conversation=`).
    kind: ConversationKind,
    /// Sent with each message: the assistant answers in the widget's language.
    locale: Locale,
    pub(crate) store: RwSignal<ChatStore>,
    /// The conversation list, its unread counts, read marks and typing hints.
    pub(crate) inbox: RwSignal<Inbox>,
    /// The open conversation (it stays set while the list is shown, so going back is instant).
    pub(crate) conversation: RwSignal<Option<ConversationId>>,
    /// The list is shown instead of the open conversation.
    pub(crate) home: RwSignal<bool>,
    /// Conversations whose newest page of history has been loaded.
    pub(crate) loaded: RwSignal<HashSet<ConversationId>>,
    /// Who is signed in (known once loaded).
    pub(crate) me: RwSignal<Option<Sender>>,
    pub(crate) phase: RwSignal<Phase>,
    /// Catching up on the open conversation's history.
    history: Coalesce,
    /// Refreshing the conversation list.
    listing: Coalesce,
    /// Telling the server read marks.
    reading: Coalesce,
    /// What was typed in each conversation the user left.
    pub(crate) drafts: RefCell<HashMap<ConversationId, String>>,
    /// Each conversation's scroll position, and whether it was at the bottom.
    pub(crate) scrolls: RefCell<HashMap<ConversationId, (i32, bool)>>,
    /// When typing was last reported (ms since the epoch).
    typing_reported: Cell<Option<f64>>,
    /// Read marks to tell the server, coalesced.
    reads: RefCell<crate::inbox::ReadQueue>,
    /// Who waits for a send to be stored (the host page's `send(text)` Promise), by key.
    pub(crate) sent: RefCell<HashMap<String, SendDone>>,
    /// Fires a DOM event on the host element, when there is one (see [`host`]).
    pub(crate) emit: RefCell<Option<Emit>>,
    /// The user's outbox in `localStorage` (its name, known once the user is), and this
    /// tab's id.
    outbox: RefCell<Option<String>>,
    tab: String,
    /// Tasks being fetched again after a text delta left a gap (one request each at a time).
    refetching: RefCell<HashSet<TaskId>>,
}

impl Controller {
    /// A controller for `kind` (what a farmer's widget opens into), loading; or, given an
    /// already loaded `conversation` (the widget benchmarks), ready on it.
    pub(crate) fn new(
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
            history: Coalesce::default(),
            listing: Coalesce::default(),
            reading: Coalesce::default(),
            drafts: RefCell::default(),
            scrolls: RefCell::default(),
            typing_reported: Cell::new(None),
            reads: RefCell::default(),
            sent: RefCell::default(),
            emit: RefCell::default(),
            outbox: RefCell::default(),
            tab: storage::tab_id(),
            refetching: RefCell::default(),
        }
    }

    /// One step of pending sends: the store's bubbles and the user's outbox (read from and
    /// written back to `localStorage`) change together. `None` once the widget is unmounted.
    fn sends<T>(&self, step: impl FnOnce(&mut Sends<'_>) -> T) -> Option<T> {
        let now = js_sys::Date::now();
        let tab = self.tab.as_str();
        let run = |outbox: Option<&mut Outbox>| {
            self.store.try_update(|store| {
                step(&mut Sends {
                    store,
                    outbox,
                    tab,
                    now,
                })
            })
        };
        let name = self.outbox.borrow().clone();
        match name {
            Some(name) => storage::update(&name, |outbox| run(Some(outbox))),
            None => run(None),
        }
    }

    /// Signed out: the user's unsent messages are not theirs to send any more.
    pub(crate) fn forget_outbox(&self) {
        if let Some(name) = self.outbox.borrow().as_ref() {
            storage::clear(name);
        }
    }

    /// Notes what an answer says about the session: a 401 here means the platform's token no
    /// longer opens one (the API client already asked the provider for a fresh token once), so
    /// the widget shows the signed-out state, which also tells the host page
    /// (`farm-chat:signed-out`), whichever request it was: a send, a history fetch, a read mark.
    fn seen<T>(&self, answer: Result<T, ApiFailure>) -> Result<T, ApiFailure> {
        if matches!(answer, Err(ApiFailure::Http { status: 401, .. })) {
            let _ = self.phase.try_set(Phase::SignedOut);
        }
        answer
    }

    /// Loading failed: signed out on a 401, else failed with the reason.
    fn failed(&self, e: ApiFailure) {
        let phase = match e {
            ApiFailure::Http { status: 401, .. } => Phase::SignedOut,
            e => Phase::Failed(e.to_string()),
        };
        let _ = self.phase.try_set(phase);
    }

    /// Fires `event` on the host element, if the widget has one.
    fn emit(&self, event: host::HostEvent, detail: impl FnOnce() -> wasm_bindgen::JsValue) {
        if let Some(emit) = self.emit.borrow().as_ref() {
            emit(event, detail());
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
    pub(crate) async fn load(self: Rc<Self>) {
        let Some(session) = self
            .get_until_answered(&Get::<SessionInfo>::session())
            .await
        else {
            return;
        };
        let session = match session {
            Ok(s) => s,
            Err(e) => return self.failed(e),
        };
        self.me.set(Some(Sender {
            id: session.user_id.clone(),
            kind: SenderKind::from(session.role),
            display_name: session.display_name,
        }));
        *self.outbox.borrow_mut() = Some(storage::name(&self.api.base, session.user_id.as_str()));
        let list = match self.get_until_answered(&Get::conversations(None)).await {
            None => return,
            Some(Ok(list)) => list,
            Some(Err(e)) => return self.failed(e),
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
        for key in self.sends(|s| s.recover()).unwrap_or_default() {
            self.deliver(key);
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
                .get_until_answered(&Get::history(&id, Page::Latest))
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
                Some(Err(e)) => this.failed(e),
            }
        });
    }

    /// Opens the farmer's support conversation with `summary` in its composer (after what
    /// is already drafted there), to be sent only when the farmer taps send. `false` when this
    /// user has no support conversation (support staff).
    pub fn offer_support(self: &Rc<Self>, summary: &str) -> bool {
        let summary = summary.trim();
        let Some(id) = self.inbox.with_untracked(|i| {
            i.first_of(ConversationKind::Support)
                .map(|e| e.summary.id.clone())
        }) else {
            return false;
        };
        if self.conversation.get_untracked().as_ref() == Some(&id) {
            // Already open: the composer holds the draft, which a switch would overwrite.
            self.home.set(false);
            return true;
        }
        if summary.is_empty() {
            self.open(id);
            return true;
        }
        self.drafts
            .borrow_mut()
            .entry(id.clone())
            .and_modify(|d| {
                if !d.trim().is_empty() {
                    d.push('\n');
                }
                d.push_str(summary);
            })
            .or_insert_with(|| summary.to_owned());
        self.open(id);
        true
    }

    /// Back to the list.
    pub fn show_home(&self) {
        self.home.set(true);
    }

    /// Fetches the conversation list's first page again (a message in a conversation that is
    /// not open, a reconnect). Concurrent asks coalesce, as for history.
    pub(crate) fn refresh_list(self: &Rc<Self>) {
        if !self.listing.start() {
            return;
        }
        let this = self.clone();
        spawn_local(async move {
            loop {
                match this.get_until_answered(&Get::conversations(None)).await {
                    None => return,
                    Some(Ok(list)) => this
                        .inbox
                        .update(|i| i.apply_page(list.conversations, list.next_cursor)),
                    Some(Err(e)) => {
                        leptos::logging::warn!("farm-chat: could not refresh the list: {e}")
                    }
                }
                if !this.listing.again() {
                    break;
                }
            }
        });
    }

    /// Pages more conversations into the list (a support user with many farmers).
    pub fn more_conversations(self: &Rc<Self>) {
        let Some(cursor) = self.inbox.with_untracked(|i| i.next_cursor.clone()) else {
            return;
        };
        let this = self.clone();
        spawn_local(async move {
            match this.seen(this.api.fetch(&Get::conversations(Some(&cursor))).await) {
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
    pub(crate) fn mark_read(self: &Rc<Self>, conversation: ConversationId, seq: u64) {
        if !self.reads.borrow_mut().ask(&conversation, seq) {
            return;
        }
        self.inbox.update(|i| i.mark_mine(&conversation, seq));
        if !self.reading.start() {
            return; // the run on its way sends this too
        }
        let this = self.clone();
        spawn_local(async move {
            let mut backoff = Backoff::default().with_cap(Duration::from_secs(30));
            loop {
                let Some((conversation, seq)) = this.reads.borrow().next() else {
                    if this.reading.again() {
                        continue;
                    }
                    break;
                };
                match this.seen(this.api.mark_read(&conversation, seq).await) {
                    _ if this.gone() => return,
                    Ok(()) => this.reads.borrow_mut().told(&conversation, seq),
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
        let this = self.clone();
        spawn_local(async move {
            if let Err(e) = this.seen(this.api.typing(&conversation).await) {
                leptos::logging::warn!("farm-chat: could not report typing: {e}");
            }
        });
    }

    /// A GET that is tried again, with backoff (capped at 10 s), while it fails for a reason
    /// worth retrying (no answer, 5xx, 429); `None` once the widget is unmounted. The stream
    /// can stay up while REST requests fail (a flaky network, a proxy): a catch-up given up
    /// there would leave a message the stream announced unshown until some later event.
    async fn get_until_answered<T: FromJson>(&self, get: &Get<T>) -> Option<Result<T, ApiFailure>> {
        // The retrying itself is not generic: one copy in the wasm for every answer type.
        Some(
            self.get_json_until_answered(get.path())
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
            match self.seen(self.api.call("GET", path, None).await.map(|(_, json)| json)) {
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
    pub(crate) fn catch_up(self: &Rc<Self>) {
        if !self.history.start() {
            return;
        }
        let this = self.clone();
        spawn_local(async move {
            loop {
                if let Some(conversation) = this.conversation() {
                    this.catch_up_on(&conversation).await;
                }
                if !this.history.again() {
                    break;
                }
            }
        });
    }

    /// One catch-up round: the pages after the last contiguous message of `conversation`.
    async fn catch_up_on(&self, conversation: &ConversationId) {
        loop {
            let after = self.store.with_untracked(|s| {
                s.conversation(conversation)
                    .map(|c| c.contiguous_seq())
                    .unwrap_or(0)
            });
            let get = Get::<HistoryPage>::history(conversation, Page::After(after));
            let page = match self.get_until_answered(&get).await {
                None => return, // unmounted
                Some(Ok(page)) => page,
                Some(Err(e)) => {
                    leptos::logging::warn!("farm-chat: could not catch up on history: {e}");
                    return;
                }
            };
            let more = self
                .store
                .try_update(|s| s.apply_history(conversation, page, PageKind::Newer))
                .unwrap_or(false);
            if !more {
                return;
            }
        }
    }

    pub(crate) fn on_event(self: &Rc<Self>, event: StreamEvent) {
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
            | StreamEvent::TaskText(e)
            | StreamEvent::TaskError(e) => {
                let task = e.task_id.clone();
                if self.store.try_update(|s| s.apply_task_part(e)) == Some(false) {
                    self.refresh_task(task);
                }
            }
            StreamEvent::TaskDone(done) => {
                self.store.update(|s| s.apply_task_done(&done));
                // Text deltas are live only: one missed at the very end shows no gap, so an
                // answer's final text is read once from its snapshot.
                let has_text = self.store.with_untracked(|s| s.has_text(&done.message_id));
                if has_text {
                    self.refresh_task(done.task_id.clone());
                }
            }
            StreamEvent::Reset(_) => {
                self.catch_up();
                self.refresh_list();
            }
            StreamEvent::Ready(_) | StreamEvent::Ping(_) => {}
        }
    }

    /// Sends `text` optimistically; retries network errors and 5xx with the same key until
    /// the server answers (a send is never silently dropped). `None` before the widget knows
    /// the conversation and who is signed in.
    pub fn send(self: &Rc<Self>, text: String) -> Option<String> {
        let conversation = self.conversation()?;
        self.me.get_untracked()?;
        let key = new_key();
        // A send ends this bout of typing: typing again is reported at once.
        self.typing_reported.set(None);
        // On disk before the request leaves: a reload or a crash now loses nothing.
        self.sends(|s| s.begin(&conversation, &key, &text));
        self.deliver(key.clone());
        Some(key)
    }

    /// (Re)tries the pending send with this key.
    pub fn deliver(self: &Rc<Self>, key: String) {
        let this = self.clone();
        spawn_local(async move {
            // Sends start once the user is known (`send`, and the outbox after `load`).
            let Some(me) = this.me.get_untracked() else {
                return;
            };
            let mut backoff = Backoff::default();
            let mut attempt = 1;
            loop {
                let Some((conversation, text)) = this.sends(|s| s.attempt(&key, attempt)).flatten()
                else {
                    return;
                };
                let sent = this.seen(
                    this.api
                        .send_message(&conversation, &text, &key, this.locale.tag())
                        .await,
                );
                match sent {
                    _ if this.gone() => return,
                    Ok(response) => {
                        this.sends(|s| s.stored(&key, &response, &me));
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
                        // Refused (not signed out): trying again after a reload would be
                        // refused too.
                        let signed_out = matches!(e, ApiFailure::Http { status: 401, .. });
                        this.sends(|s| s.failed(&key, &reason, signed_out));
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
            self.refresh_task(task);
        }
    }

    /// Fetches a task's snapshot and merges it in (never backwards); one request per task at
    /// a time, however many deltas found a gap meanwhile.
    fn refresh_task(self: &Rc<Self>, task: TaskId) {
        if !self.refetching.borrow_mut().insert(task.clone()) {
            return;
        }
        let this = self.clone();
        spawn_local(async move {
            let answer = this
                .get_until_answered(&Get::<TaskSnapshot>::task(task.as_str()))
                .await;
            this.refetching.borrow_mut().remove(&task);
            match answer {
                None => {}
                Some(Ok(snapshot)) => this.store.update(|s| s.apply_task_snapshot(snapshot)),
                Some(Err(e)) => {
                    leptos::logging::warn!("farm-chat: could not refresh task {task}: {e}")
                }
            }
        });
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
            let get = Get::<HistoryPage>::history(&conversation, Page::Before(first));
            match this.seen(this.api.fetch(&get).await) {
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
        let this = self.clone();
        spawn_local(async move {
            if let Err(e) = this.seen(this.api.cancel_task(&task_id).await) {
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

/// Waits `duration` (a browser timer).
pub(crate) async fn sleep(duration: Duration) {
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
