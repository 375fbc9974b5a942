//! [`Bubble`]: one message of the log, and [`Rows`], the log's per-bubble state: one signal
//! per mounted bubble, keyed by the bubble's key, holding what it shows. After a store change
//! only the rows whose revision moved get their signal set, so a stream event wakes one
//! bubble, not every bubble of a long conversation (todomvc's signal per item).

use std::{cell::RefCell, collections::HashMap, rc::Rc};

use farm_chat_protocol::{
    ConversationId,
    chat::{ConversationKind, SenderKind},
};
use leptos::prelude::*;

use super::{Ctl, parts};
use crate::{
    i18n::{Locale, Text},
    store::{BubbleData, ChatStore, SendState},
};

/// One mounted bubble's state: what it shows, and the store revision that was.
struct Row {
    data: ArcRwSignal<Option<BubbleData>>,
    seen: u64,
}

/// The mounted bubbles' state, by key (see the [module](self)).
#[derive(Default)]
pub struct Rows {
    rows: RefCell<HashMap<String, Row>>,
    /// The store's revision at the last sync: only bubbles changed after it are looked at.
    synced: std::cell::Cell<u64>,
}

/// The rows, reachable from the bubbles.
pub type RowsRef = StoredValue<Rc<Rows>, LocalStorage>;

impl Rows {
    /// The signal of bubble `key`, made with what the store holds now.
    fn mount(
        &self,
        store: &ChatStore,
        conversation: &ConversationId,
        key: &str,
    ) -> ArcRwSignal<Option<BubbleData>> {
        let data = ArcRwSignal::new(store.bubble(conversation, key));
        self.rows.borrow_mut().insert(
            key.to_owned(),
            Row {
                data: data.clone(),
                seen: store.bubble_rev(conversation, key),
            },
        );
        data
    }

    /// Forgets bubble `key`, unless a newer bubble of that key took its place.
    fn unmount(&self, key: &str, data: &ArcRwSignal<Option<BubbleData>>) {
        let mut rows = self.rows.borrow_mut();
        if rows.get(key).is_some_and(|row| row.data == *data) {
            rows.remove(key);
        }
    }

    /// After a store change: each row whose revision moved shows the store's data again.
    /// Only the bubbles the store says changed since the last sync are looked at, so a stream
    /// event into a long conversation costs the changed bubble, not every bubble held.
    pub fn sync(&self, store: &ChatStore, conversation: &ConversationId) {
        let mut changed = Vec::new();
        let after = self.synced.replace(store.rev());
        let mut rows = self.rows.borrow_mut();
        for key in store.changed_since(conversation, after) {
            let Some(row) = rows.get_mut(key) else {
                continue;
            };
            let rev = store.bubble_rev(conversation, key);
            if rev != row.seen {
                row.seen = rev;
                changed.push((row.data.clone(), store.bubble(conversation, key)));
            }
        }
        drop(rows);
        // Set outside the borrow: a bubble that re-renders may mount or unmount rows.
        for (signal, data) in changed {
            signal.set(data);
        }
    }
}

/// One bubble, looked up by key so it re-renders only when it changes.
#[component]
pub fn Bubble(ctl: Ctl, rows: RowsRef, bubble_key: String, locale: Locale) -> impl IntoView {
    let (store, conversation) = ctl.with_value(|c| (c.store, c.conversation));
    let data = conversation
        .with_untracked(|c| {
            c.as_ref()
                .map(|c| store.with_untracked(|s| rows.with_value(|r| r.mount(s, c, &bubble_key))))
        })
        .unwrap_or_else(|| ArcRwSignal::new(None));
    let (unmount_key, unmount_data) = (bubble_key.clone(), data.clone());
    on_cleanup(move || {
        let _ = rows.try_with_value(|r| r.unmount(&unmount_key, &unmount_data));
    });
    // The task changes with every part; the rest of the bubble almost never. Two memos, so a
    // part re-renders only the task reply.
    let of_task = data.clone();
    let task = Memo::new(move |_| {
        of_task.with(|d| match d {
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
