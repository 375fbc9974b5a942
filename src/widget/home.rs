//! The conversation list: a farmer's assistant and support chats, or a support user's inbox
//! of farmers' chats. Newest activity first; each entry is a button named by its title, with
//! the last message, its time and the unread count; the open one carries `aria-current`.

use farm_chat_protocol::chat::{ConversationKind, ConversationSummary, SenderKind};
use leptos::prelude::*;

use super::Ctl;
use crate::i18n::{Locale, Text};

/// A conversation's title for this user: the assistant and support in the widget's words for
/// a farmer, the farmer's name for support staff.
pub fn title(summary: &ConversationSummary, support_staff: bool, locale: Locale) -> String {
    match summary.kind {
        ConversationKind::Assistant => locale.text(Text::ChatTitle).to_owned(),
        ConversationKind::Support if support_staff => summary.owner_name.clone(),
        ConversationKind::Support => locale.text(Text::SupportTitle).to_owned(),
    }
}

/// The list.
#[component]
pub fn Home(ctl: Ctl, locale: Locale) -> impl IntoView {
    let (inbox, conversation, me) = ctl.with_value(|c| (c.inbox, c.conversation, c.me));
    let staff = move || me.with(|m| m.as_ref().is_some_and(|m| m.kind == SenderKind::Support));
    let heading = move || {
        locale.text(if staff() {
            Text::Inbox
        } else {
            Text::Conversations
        })
    };
    let rows = move || {
        let staff = staff();
        let me_id = me.with(|m| m.as_ref().map(|m| m.id.clone()));
        inbox.with(|i| {
            i.entries()
                .iter()
                .map(|e| {
                    let s = &e.summary;
                    let preview = s.last_message.as_ref().map(|m| {
                        let who = if Some(&m.sender.id) == me_id.as_ref() {
                            locale.text(Text::You).to_owned()
                        } else {
                            m.sender.display_name.clone()
                        };
                        (
                            format!("{who}: {}", m.text),
                            crate::format::time(locale, &m.created_at),
                            m.created_at.clone(),
                        )
                    });
                    (s.id.clone(), title(s, staff, locale), preview, s.unread)
                })
                .collect::<Vec<_>>()
        })
    };
    view! {
        <nav class="fc-home" data-testid="conversation-list" aria-label=heading>
            <h3 class="fc-home__title">{heading}</h3>
            {move || (inbox.with(|i| i.loaded && i.entries().is_empty())).then(|| view! {
                <p class="fc-note" data-testid="no-conversations">{locale.text(Text::NoConversations)}</p>
            })}
            <ul class="fc-convs">
                {move || rows().into_iter().map(|(id, title, preview, unread)| {
                    let current = conversation.with(|c| c.as_ref() == Some(&id));
                    let open = id.clone();
                    let label = if unread > 0 {
                        format!("{title} ({unread} {})", locale.text(Text::Unread))
                    } else {
                        title.clone()
                    };
                    view! {
                        <li>
                            <button type="button" class="fc-conv" data-testid="conversation"
                                data-conversation-id=id.to_string() aria-label=label
                                aria-current=current.then_some("true")
                                on:click=move |_| ctl.with_value(|c| c.open(open.clone()))>
                                <span class="fc-conv__top">
                                    <span class="fc-conv__title" data-testid="conversation-title">{title}</span>
                                    {preview.as_ref().map(|(_, when, at)| view! {
                                        <time class="fc-conv__time" datetime=at.clone()>{when.clone()}</time>
                                    })}
                                </span>
                                <span class="fc-conv__bottom">
                                    <span class="fc-conv__preview" data-testid="conversation-preview">
                                        {preview.map(|(text, _, _)| text).unwrap_or_else(|| locale.text(Text::Empty).to_owned())}
                                    </span>
                                    {(unread > 0).then(|| view! {
                                        <span class="fc-badge fc-unread" data-testid="conversation-unread">{unread}</span>
                                    })}
                                </span>
                            </button>
                        </li>
                    }
                }).collect_view()}
            </ul>
            {move || inbox.with(|i| i.next_cursor.is_some()).then(|| view! {
                <button type="button" class="fc-link" data-testid="more-conversations"
                    on:click=move |_| ctl.with_value(|c| c.more_conversations())>
                    {locale.text(Text::MoreConversations)}
                </button>
            })}
        </nav>
    }
}
