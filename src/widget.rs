//! [`ChatWidget`]: one conversation (the assistant, or support) with its live stream.
//!
//! The widget owns a [`ChatStore`] in a signal, feeds it from history and from
//! [`use_chat_stream`](crate::connection::hook::use_chat_stream_with_options), and renders it.
//! A [`Controller`] holds what is not a signal (the API client, the coalescing of history
//! fetches) and lives in a local `StoredValue`.
//!
//! - [`parts`]: a task reply: `StreamingMessage`, `ProgressBar`, `DataRenderer`.
//! - [`composer`]: the text box (IME-safe Enter) and the send button.

pub mod composer;
pub mod parts;

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    rc::Rc,
    time::Duration,
};

use farm_chat_protocol::{
    ConversationId, StreamEvent,
    chat::{ConversationKind, ConversationList, HistoryPage, SendResponse, Sender, SenderKind},
    session::SessionInfo,
    task::TaskSnapshot,
};
use leptos::{prelude::*, task::spawn_local};

use crate::{
    api::{Api, ApiFailure, TokenProvider},
    backoff::Backoff,
    connection::{
        Status,
        hook::{UseChatStreamOptions, use_chat_stream_with_options},
        share::Role,
    },
    i18n::{Locale, Text},
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

/// The widget's non-signal state.
pub struct Controller {
    api: Api,
    kind: ConversationKind,
    /// Sent with each message: the assistant answers in the widget's language.
    locale: Locale,
    store: RwSignal<ChatStore>,
    conversation: RwSignal<Option<ConversationId>>,
    me: RwSignal<Option<Sender>>,
    phase: RwSignal<Phase>,
    fetching: Cell<bool>,
    again: Cell<bool>,
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
        let Some(session) = self.get_until_answered::<SessionInfo>("/session").await else {
            return;
        };
        let session = match session {
            Ok(s) => s,
            Err(ApiFailure::Http { status: 401, .. }) => return self.phase.set(Phase::SignedOut),
            Err(e) => return self.phase.set(Phase::Failed(e.to_string())),
        };
        self.me.set(Some(Sender {
            id: session.user_id.clone(),
            kind: match session.role {
                farm_chat_protocol::session::Role::Farmer => SenderKind::User,
                farm_chat_protocol::session::Role::Support => SenderKind::Support,
            },
            display_name: session.display_name,
        }));
        let list = match self
            .get_until_answered::<ConversationList>("/conversations")
            .await
        {
            None => return,
            Some(Ok(list)) => list,
            Some(Err(e)) => return self.phase.set(Phase::Failed(e.to_string())),
        };
        // Support staff have no assistant conversation: they get their first support chat.
        let mut conversations = list.conversations.into_iter();
        let Some(found) = conversations
            .clone()
            .find(|c| c.kind == self.kind)
            .or_else(|| conversations.next())
        else {
            return self.phase.set(Phase::Failed("no conversation".into()));
        };
        self.conversation.set(Some(found.id.clone()));
        match self
            .get_until_answered::<HistoryPage>(&format!(
                "/chat/history?conversationId={}&limit=50",
                found.id
            ))
            .await
        {
            None => {}
            Some(Ok(page)) => {
                self.store.update(|s| {
                    s.apply_history(&found.id, page, PageKind::Latest);
                });
                self.phase.set(Phase::Ready);
                // Events that arrived while loading may point past this page.
                self.catch_up();
            }
            Some(Err(e)) => self.phase.set(Phase::Failed(e.to_string())),
        }
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
                        "/chat/history?conversationId={conversation}&after={after}&limit=100"
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
                let missing = self
                    .store
                    .try_update(|s| s.message_created(&created))
                    .flatten();
                if missing.is_some()
                    && self.conversation().as_ref() == Some(&created.conversation_id)
                {
                    self.catch_up();
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
            StreamEvent::Reset(_) => self.catch_up(),
            StreamEvent::Ready(_) | StreamEvent::Ping(_) => {}
        }
    }

    /// Sends `text` optimistically; retries network errors and 5xx with the same key until
    /// the server answers (a send is never silently dropped).
    pub fn send(self: &Rc<Self>, text: String) {
        let Some(conversation) = self.conversation() else {
            return;
        };
        let key = new_key();
        self.store
            .update(|s| s.begin_send(&conversation, &key, &text));
        self.deliver(key);
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
                let request = [
                    ("conversationId", conversation.as_str()),
                    ("text", text.as_str()),
                    ("idempotencyKey", key.as_str()),
                    ("locale", this.locale.tag()),
                ];
                match this.api.post::<SendResponse>("/chat/send", &request).await {
                    _ if this.gone() => return,
                    Ok((_, response)) => {
                        let me = this.me.get_untracked().unwrap_or(Sender {
                            id: "me".into(),
                            kind: SenderKind::User,
                            display_name: String::new(),
                        });
                        this.store
                            .update(|s| s.send_acknowledged(&key, &response, &me));
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
                    .get_until_answered::<TaskSnapshot>(&format!("/tasks/{task}"))
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
            let path =
                format!("/chat/history?conversationId={conversation}&before={first}&limit=50");
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
                .post_empty::<crate::api::Ignored>(&format!("/tasks/{task_id}/cancel"))
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
    let controller = Rc::new(Controller {
        api,
        locale,
        kind: if support {
            ConversationKind::Support
        } else {
            ConversationKind::Assistant
        },
        store: RwSignal::new(ChatStore::default()),
        conversation: RwSignal::new(None),
        me: RwSignal::new(None),
        phase: RwSignal::new(Phase::Loading),
        fetching: Cell::new(false),
        again: Cell::new(false),
        bubbles: RefCell::default(),
    });
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
    let ctl: Ctl = StoredValue::new_local(controller);

    let status_text = move || match status.get() {
        Status::Connecting => locale.text(Text::Connecting).to_owned(),
        Status::Connected => locale.text(Text::Connected).to_owned(),
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
    let empty = Memo::new(move |_| keys.with(Vec::is_empty));
    let busy = move || conversation.with(|c| c.as_ref().is_some_and(|c| store.with(|s| s.busy(c))));
    let has_older = move || {
        conversation.with(|c| {
            c.as_ref()
                .is_some_and(|c| store.with(|s| s.conversation(c).is_some_and(|c| c.has_older)))
        })
    };

    // Inside a launcher: report messages from others that arrive while the panel is closed.
    if let Some(launcher) = use_context::<crate::launcher::LauncherContext>() {
        let me = ctl.with_value(|c| c.me);
        let seen = RwSignal::new(None::<u64>);
        Effect::new(move |_| {
            let Some(c) = conversation.get() else { return };
            let top = store.with(|s| s.top_seq(&c));
            if launcher.open.get() || seen.get_untracked().is_none() {
                // Open (or first load): everything held is seen.
                seen.set(Some(top));
                launcher.unread.set(0);
            } else if let Some(me) = me.get() {
                let after = seen.get_untracked().unwrap_or(top);
                launcher
                    .unread
                    .set(store.with(|s| s.unread_after(&c, after, &me.id)));
            }
        });
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
        }
    };

    view! {
        <div class="fc-widget" data-testid="chat-widget" lang=locale.tag()>
            <p class="fc-status" data-testid="connection-status" data-state=status_name role="status"
                data-role=move || match stream_role.get() {
                    Role::Solo => "solo",
                    Role::Leader => "leader",
                    Role::Follower => "follower",
                }>
                {status_text}
            </p>
            {move || match phase.get() {
                Phase::Loading => view! { <p class="fc-note">{locale.text(Text::Loading)}</p> }.into_any(),
                Phase::SignedOut => view! { <p class="fc-note" data-testid="signed-out">{locale.text(Text::SignedOut)}</p> }.into_any(),
                Phase::Failed(why) => view! { <p class="fc-note fc-note--error" data-testid="load-failed" title=why>{locale.text(Text::LoadFailed)}</p> }.into_any(),
                Phase::Ready => empty.get().then(|| view! {
                    <p class="fc-note" data-testid="empty">{locale.text(Text::Empty)}</p>
                }).into_any(),
            }}
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
            <composer::Composer ctl=ctl locale=locale
                ready=Signal::derive(move || conversation.with(Option::is_some)) />
        </div>
    }
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
            let class = match (mine, m.sender.kind) {
                (true, _) => "fc-bubble fc-bubble--mine",
                (false, SenderKind::Assistant) => "fc-bubble fc-bubble--assistant",
                (false, _) => "fc-bubble fc-bubble--other",
            };
            view! {
                <li class=class data-testid="bubble" data-key=bubble_key.clone() data-message-id=m.message_id.to_string() data-state="sent">
                    <p class="fc-meta">{who}" · "<time data-testid="time" datetime=m.created_at.clone()>{when}</time></p>
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
            let controller = Rc::new(Controller {
                api: Api::new("/nowhere"),
                locale,
                kind: ConversationKind::Assistant,
                store: RwSignal::new(ChatStore::default()),
                conversation: RwSignal::new(Some(conversation.clone())),
                me: RwSignal::new(None),
                phase: RwSignal::new(Phase::Ready),
                fetching: Cell::new(false),
                again: Cell::new(false),
                bubbles: RefCell::default(),
            });
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
