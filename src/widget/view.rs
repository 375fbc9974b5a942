//! The widget's layout over its [`Controller`]: [`chat_view`] wires what the widget does on
//! its own (read marks, the unread badge, the host element's API), and renders the
//! [`StatusLine`], the home list or the open conversation ([`ChatHead`], [`MessageLog`], the
//! typing line and the composer).

use std::rc::Rc;

use farm_chat_protocol::chat::SenderKind;
use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::{
    Ctl, Phase,
    bubble::{Bubble, Rows, RowsRef},
    composer, home, host,
};
use crate::{
    connection::{Status, share::Role},
    i18n::{Locale, Text},
    inbox::Inbox,
    widget::controller::Controller,
};

/// The widget's view over its controller (shared by [`ChatWidget`](super::ChatWidget) and the
/// benchmarks' [`Harness`](super::bench::Harness)).
pub(crate) fn chat_view(
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

    let conversation_loaded = Memo::new(move |_| {
        conversation.with(|c| c.as_ref().is_some_and(|c| loaded.with(|l| l.contains(c))))
    });
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
        if status.get() == Status::SignedOut {
            ctl.with_value(|c| c.forget_outbox());
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
            <StatusLine status=status role=stream_role locale=locale />
            {move || match phase.get() {
                Phase::Loading => view! { <p class="fc-note">{locale.text(Text::Loading)}</p> }.into_any(),
                Phase::SignedOut => view! { <p class="fc-note" data-testid="signed-out">{locale.text(Text::SignedOut)}</p> }.into_any(),
                Phase::Failed(why) => view! { <p class="fc-note fc-note--error" data-testid="load-failed" title=why>{locale.text(Text::LoadFailed)}</p> }.into_any(),
                Phase::Ready => ().into_any(),
            }}
            {move || home.get().then(|| view! { <home::Home ctl=ctl locale=locale /> })}
            <div class="fc-chat" hidden=move || home.get()>
                {move || conversation.with(Option::is_some).then(|| view! { <ChatHead ctl=ctl locale=locale /> })}
                <MessageLog ctl=ctl locale=locale loaded=conversation_loaded.into() />
                <p class="fc-typing" data-testid="typing" aria-live="polite">{typing}</p>
                <composer::Composer ctl=ctl locale=locale ready=conversation_loaded.into() />
            </div>
        </div>
    }
}

/// One status line: a quiet dot while live (screen readers hear it), words only when
/// something is not right; `data-role` says whether this tab holds the shared stream.
#[component]
pub fn StatusLine(status: Signal<Status>, role: Signal<Role>, locale: Locale) -> impl IntoView {
    let text = move || match status.get() {
        Status::Connecting => locale.text(Text::Connecting).to_owned(),
        Status::Connected => locale.text(Text::Live).to_owned(),
        Status::Reconnecting { attempt, retry_in } => locale.reconnecting(attempt, retry_in),
        Status::Offline => locale.text(Text::Offline).to_owned(),
        Status::SignedOut => locale.text(Text::SignedOut).to_owned(),
        Status::Closed => locale.text(Text::Closed).to_owned(),
    };
    let name = move || match status.get() {
        Status::Connecting => "connecting",
        Status::Connected => "connected",
        Status::Reconnecting { .. } => "reconnecting",
        Status::Offline => "offline",
        Status::SignedOut => "signed-out",
        Status::Closed => "closed",
    };
    view! {
        <p class="fc-status" data-testid="connection-status" data-state=name role="status"
            data-role=move || match role.get() {
                Role::Solo => "solo",
                Role::Leader => "leader",
                Role::Follower => "follower",
            }>
            <span class=move || if status.with(|s| *s == Status::Connected) { "fc-sr-only" } else { "" }>
                {text}
            </span>
        </p>
    }
}

/// The open conversation's head: back to the list (with the other conversations' unread
/// count) and the conversation's title.
#[component]
pub fn ChatHead(ctl: Ctl, locale: Locale) -> impl IntoView {
    let (inbox, conversation, me) = ctl.with_value(|c| (c.inbox, c.conversation, c.me));
    let is_support_staff =
        move || me.with(|m| m.as_ref().is_some_and(|m| m.kind == SenderKind::Support));
    let title = move || {
        let c = conversation.get()?;
        let staff = is_support_staff();
        inbox.with(|i| i.get(&c).map(|e| home::title(&e.summary, staff, locale)))
    };
    let show_person = move || {
        let c = conversation.get();
        !is_support_staff()
            && inbox.with(|i| {
                c.and_then(|c| i.get(&c).map(|e| e.summary.kind))
                    == Some(farm_chat_protocol::chat::ConversationKind::Assistant)
            })
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
    view! {
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
            // From the assistant, a person is one tap away (and the way says so at a glance).
            {move || show_person().then(|| view! {
                <button type="button" class="fc-link fc-person" data-testid="talk-to-person"
                    on:click=move |_| { ctl.with_value(|c| c.offer_support("")); }>
                    {locale.text(Text::TalkToPerson)}
                </button>
            })}
        </div>
    }
}

/// The open conversation's messages: a bubble per message (each re-rendered only when it
/// changes, see [`Rows`]), older pages on request, and the scroll position kept: stuck to the
/// newest while the reader is at the bottom, and each conversation back where it was left.
#[component]
pub fn MessageLog(ctl: Ctl, locale: Locale, loaded: Signal<bool>) -> impl IntoView {
    let (store, conversation, phase) = ctl.with_value(|c| (c.store, c.conversation, c.phase));
    let home = ctl.with_value(|c| c.home);
    // The keys are rebuilt only when their set or order changes, not on every part.
    let layout = Memo::new(move |_| {
        conversation.with(|c| c.as_ref().map_or(0, |c| store.with(|s| s.layout_rev(c))))
    });
    let keys = Memo::new(move |_| {
        layout.get(); // read, so the memo computes
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

    // The one subscriber to the whole store on behalf of the bubbles: only the rows whose
    // revision moved get their data again.
    let rows: RowsRef = StoredValue::new_local(Rc::new(Rows::default()));
    Effect::new(move |_| {
        store.with(|s| {
            if let Some(c) = conversation.get_untracked() {
                rows.with_value(|r| r.sync(s, &c));
            }
        });
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

    view! {
        {move || (phase.get() == Phase::Ready && loaded.get() && empty.get()).then(|| view! {
            <p class="fc-note" data-testid="empty">{locale.text(Text::Empty)}</p>
        })}
        {move || (conversation.with(Option::is_some) && phase.get() == Phase::Ready && !loaded.get()).then(|| view! {
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
                <Bubble ctl=ctl rows=rows bubble_key=key locale=locale />
            </For>
        </ol>
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
