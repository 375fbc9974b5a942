//! The composer: a text box where Enter sends (never during an IME composition), Shift+Enter
//! adds a line, the send button is disabled while empty, and a counter appears near the limit.
//! Until the conversation is known (a cold load on a thin link) nothing can be sent: the text
//! stays in the box, the button is disabled and a line says why, so a message typed at once
//! is never cleared without being sent.

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::Ctl;
use crate::{
    compose::{self, KeyAction, KeyDown},
    i18n::{Locale, Text},
};

/// The text box and send button.
#[component]
pub fn Composer(ctl: Ctl, locale: Locale, ready: Signal<bool>) -> impl IntoView {
    let text = RwSignal::new(String::new());
    // Each conversation keeps its own draft: switching away saves it, coming back restores it.
    // (Text typed before the first conversation was known stays where it is.)
    let conversation = ctl.with_value(|c| c.conversation);
    Effect::new(
        move |before: Option<Option<farm_chat_protocol::ConversationId>>| {
            let now = conversation.get();
            if let Some(Some(before)) = before
                && Some(&before) != now.as_ref()
            {
                let draft = text.get_untracked();
                let restored = now
                    .as_ref()
                    .and_then(|n| ctl.with_value(|c| c.drafts.borrow_mut().remove(n)))
                    .unwrap_or_default();
                ctl.with_value(|c| c.drafts.borrow_mut().insert(before, draft));
                text.set(restored);
            }
            now
        },
    );
    let send = move || {
        let value = text.get_untracked();
        if ready.get_untracked() && compose::can_send(&value) {
            ctl.with_value(|c| c.send(value.trim().to_owned()));
            text.set(String::new());
        }
    };
    let on_keydown = move |e: web_sys::KeyboardEvent| {
        let action = compose::on_keydown(KeyDown {
            key: &e.key(),
            shift: e.shift_key(),
            is_composing: e.is_composing(),
            key_code: e.key_code(),
        });
        if action == KeyAction::Send {
            e.prevent_default();
            send();
        }
    };
    let on_input = move |e: web_sys::Event| {
        if let Some(area) = e
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlTextAreaElement>().ok())
        {
            let value = area.value();
            ctl.with_value(|c| c.typed(&value));
            text.set(value);
        }
    };
    view! {
        {move || (!ready.get()).then(|| view! {
            <p class="fc-composer__wait" data-testid="composer-wait" role="status">
                {locale.text(Text::ComposerWaiting)}
            </p>
        })}
        <form class="fc-composer" on:submit=move |e| { e.prevent_default(); send(); }>
            <textarea
                class="fc-input"
                data-testid="composer"
                rows="2"
                aria-label=locale.text(Text::MessageLabel)
                placeholder=locale.text(Text::Placeholder)
                prop:value=move || text.get()
                on:input=on_input
                on:keydown=on_keydown
            ></textarea>
            {move || text.with(|t| compose::counter(t)).map(|(used, limit)| view! {
                <span class="fc-counter" data-testid="counter" data-over=(used > limit).to_string()>
                    {format!("{used} / {limit}")}
                </span>
            })}
            <button type="submit" class="fc-button fc-send" data-testid="send"
                disabled=move || !ready.get() || !text.with(|t| compose::can_send(t))>
                {locale.text(Text::Send)}
            </button>
        </form>
    }
}
