//! [`ChatLauncher`]: the corner button that opens and closes the chat panel.

use std::sync::atomic::{AtomicU32, Ordering};

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::i18n::{Locale, Text};

/// What the launcher shares with the widget inside it: whether the panel is open, and the
/// unread count the widget reports for the badge.
#[derive(Clone, Copy, Debug)]
pub struct LauncherContext {
    /// The panel is open.
    pub open: ReadSignal<bool>,
    /// Opens or closes it (the host page's `open()` / `close()`).
    pub set_open: WriteSignal<bool>,
    /// Messages from others the user has not seen (the widget writes it).
    pub unread: RwSignal<u32>,
}

/// Ids for `aria-controls`, unique per widget so several widgets can share a page.
static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// A launcher button and the panel it toggles (closed at first). The panel holds `children`.
#[component]
pub fn ChatLauncher(
    /// The language of the labels.
    #[prop(optional)]
    locale: Locale,
    /// Open at once (the user already asked, on the launcher script's stand-in).
    #[prop(optional)]
    open: bool,
    /// What the open panel shows.
    children: Children,
) -> impl IntoView {
    let (open, set_open) = signal(open);
    let unread = RwSignal::new(0u32);
    provide_context(LauncherContext {
        open,
        set_open,
        unread,
    });
    let panel_id = format!("fc-panel-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
    // Keyboard users land in the text box when the panel opens, and Escape takes them back to
    // the button that opened it.
    let panel_ref = NodeRef::<leptos::html::Section>::new();
    let toggle_ref = NodeRef::<leptos::html::Button>::new();
    Effect::new(move |was_open: Option<bool>| {
        let now = open.get();
        // The panel starts closed unless the user already opened it on the launcher script's
        // stand-in: either way, a first run that sees it open saw a user open it.
        if now
            && was_open != Some(true)
            && let Some(panel) = panel_ref.get_untracked()
        {
            // After this turn's DOM updates (not a frame callback: hidden pages get none).
            set_timeout(
                move || {
                    let field = panel
                        .query_selector("textarea")
                        .ok()
                        .flatten()
                        .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
                    if let Some(field) = field {
                        let _ = field.focus();
                    }
                },
                std::time::Duration::ZERO,
            );
        }
        now
    });
    let on_keydown = move |e: web_sys::KeyboardEvent| {
        if e.key() == "Escape" && open.get_untracked() {
            e.stop_propagation();
            set_open.set(false);
            if let Some(toggle) = toggle_ref.get_untracked() {
                let _ = toggle.focus();
            }
        }
    };
    let wide = RwSignal::new(false);
    let close = move |_| {
        set_open.set(false);
        if let Some(toggle) = toggle_ref.get_untracked() {
            let _ = toggle.focus();
        }
    };
    follow_visual_viewport(panel_ref, open);
    view! {
        <div class="fc-launcher" data-testid="farm-chat-launcher" lang=locale.tag()
            data-open=move || open.get().to_string()>
            <section
                id=panel_id.clone()
                class="fc-panel"
                data-testid="chat-panel"
                data-wide=move || wide.get().to_string()
                role="dialog"
                aria-label=locale.text(Text::PanelTitle)
                hidden=move || !open.get()
                node_ref=panel_ref
                on:keydown=on_keydown
            >
                <div class="fc-panel__head">
                    <h2 class="fc-panel__title">{locale.text(Text::PanelTitle)}</h2>
                    <button type="button" class="fc-icon fc-expand" data-testid="expand"
                        aria-pressed=move || wide.get().to_string()
                        on:click=move |_| wide.update(|w| *w = !*w)>
                        {move || locale.text(if wide.get() { Text::Narrow } else { Text::Widen })}
                    </button>
                    <button type="button" class="fc-icon fc-close" data-testid="close"
                        aria-label=locale.text(Text::CloseChat) on:click=close>
                        "×"
                    </button>
                </div>
                {children()}
            </section>
            <button
                type="button"
                class="fc-launcher__toggle"
                data-testid="launcher-toggle"
                aria-controls=panel_id
                aria-expanded=move || open.get().to_string()
                node_ref=toggle_ref
                on:click=move |_| set_open.update(|o| *o = !*o)
            >
                {move || locale.text(if open.get() { Text::CloseChat } else { Text::OpenChat })}
                {move || (!open.get() && unread.get() > 0).then(|| view! {
                    <span class="fc-badge fc-unread" data-testid="unread-badge"
                        aria-label=format!("{} {}", unread.get(), locale.text(Text::Unread))>
                        {unread.get()}
                    </span>
                })}
            </button>
        </div>
    }
}

/// On a phone the panel is a full-screen sheet: its height follows the visual viewport, so the
/// composer stays above the on-screen keyboard (`--fc-vh`, `--fc-vtop` on the panel).
fn follow_visual_viewport(panel_ref: NodeRef<leptos::html::Section>, open: ReadSignal<bool>) {
    let Some(viewport) = web_sys::window().and_then(|w| w.visual_viewport()) else {
        return;
    };
    let apply = {
        let viewport = viewport.clone();
        move || {
            if let Some(panel) = panel_ref.get_untracked() {
                let style = panel.style();
                let _ = style.set_property("--fc-vh", &format!("{}px", viewport.height().round()));
                let _ = style
                    .set_property("--fc-vtop", &format!("{}px", viewport.offset_top().round()));
            }
        }
    };
    let listener = wasm_bindgen::closure::Closure::<dyn Fn()>::new(apply.clone());
    let function: js_sys::Function = listener.as_ref().clone().unchecked_into();
    let _ = viewport.add_event_listener_with_callback("resize", &function);
    let _ = viewport.add_event_listener_with_callback("scroll", &function);
    Effect::new(move |_| {
        if open.get() {
            apply();
        }
    });
    let guard = send_wrapper::SendWrapper::new((viewport, function, listener));
    on_cleanup(move || {
        let (viewport, function, _listener) = &*guard;
        let _ = viewport.remove_event_listener_with_callback("resize", function);
        let _ = viewport.remove_event_listener_with_callback("scroll", function);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The launcher script (`launcher/farm-chat.js`) shows its button before the widget loads,
    /// in the widget's own words.
    #[test]
    fn the_launcher_script_says_what_the_widget_says() {
        let script = include_str!("../launcher/farm-chat.js");
        for locale in [Locale::Ja, Locale::En] {
            let words = format!(
                "{}: [\"{}\", \"{}\", \"{}\"]",
                locale.tag(),
                locale.text(Text::OpenChat),
                locale.text(Text::Loading),
                locale.text(Text::LoadFailed)
            );
            assert!(
                script.contains(&words),
                "launcher/farm-chat.js lacks {words}"
            );
        }
    }
}
