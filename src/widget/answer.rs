//! A model's answer text, rendered as markdown into DOM nodes while it streams.
//!
//! The blocks that later text cannot change ([`markdown::Stream`]) are appended once and never
//! rendered again; each delta re-renders only the open tail. Screen readers hear the finished
//! answer once (`aria-busy` while it streams), a caret shows it is still coming, and a copy
//! button copies the markdown.

use farm_chat_protocol::task::TaskSnapshot;
use leptos::prelude::*;

use crate::{
    i18n::{Locale, Text},
    markdown::{self, Align, Block, Inline},
};

/// Text part `part` of a task's reply.
#[component]
pub fn AnswerText(
    task: Memo<Option<TaskSnapshot>>,
    part: u32,
    running: Memo<bool>,
    locale: Locale,
) -> impl IntoView {
    let text = Memo::new(move |_| {
        task.with(|t| t.as_ref().map(|t| t.text(part).to_owned()))
            .unwrap_or_default()
    });
    let parser = StoredValue::new(markdown::Stream::default());
    // Final blocks, appended only: a `For` keyed by position renders each one once.
    let done = RwSignal::new(Vec::<(usize, Block)>::new());
    let tail = RwSignal::new(Vec::<Block>::new());
    Effect::new(move |_| {
        let streaming = running.get();
        text.with(|text| {
            let (new, open) = parser
                .try_update_value(|p| {
                    let before = p.done.len();
                    let open = p.update(text, streaming);
                    (p.done[before..].to_vec(), open)
                })
                .unwrap_or_default();
            if !new.is_empty() {
                done.update(|d| {
                    let at = d.len();
                    d.extend(new.into_iter().enumerate().map(|(i, b)| (at + i, b)));
                });
            }
            tail.set(open);
        });
    });
    let copied = RwSignal::new(false);
    let copy = move |_| {
        let Some(window) = web_sys::window() else {
            return;
        };
        let promise = window
            .navigator()
            .clipboard()
            .write_text(&text.get_untracked());
        leptos::task::spawn_local(async move {
            if wasm_bindgen_futures::JsFuture::from(promise).await.is_ok() {
                copied.set(true);
            }
        });
    };
    view! {
        <div class="fc-answer" data-testid="answer" aria-busy=move || running.get().to_string()
            data-streaming=move || running.get().to_string()
            // For the fault suite: the text held (UTF-8 bytes), and once finished its FNV-1a
            // hash, to compare with the server's byte for byte.
            data-bytes=move || text.with(String::len)
            data-hash=move || (!running.get()).then(|| text.with(|t| fnv1a(t)))>
            <div class="fc-md" data-testid="answer-text">
                <For each=move || done.get() key=|(i, _)| *i let:((_, block))>
                    {render_block(block)}
                </For>
                {move || tail.get().into_iter().map(render_block).collect_view()}
                {move || running.get().then(|| view! { <span class="fc-caret" aria-hidden="true"></span> })}
            </div>
            {move || (!running.get()).then(|| view! {
                <button type="button" class="fc-link fc-copy" data-testid="copy-answer" on:click=copy>
                    {move || locale.text(if copied.get() { Text::Copied } else { Text::Copy })}
                </button>
            })}
        </div>
    }
}

/// FNV-1a (32 bits) of `text`, in hex.
pub fn fnv1a(text: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

fn render_block(block: Block) -> AnyView {
    match block {
        Block::Paragraph(i) => view! { <p>{render_inlines(i)}</p> }.into_any(),
        Block::Heading(level, i) => {
            let inner = render_inlines(i);
            match level {
                1 => view! { <h3 class="fc-md__h1">{inner}</h3> }.into_any(),
                2 => view! { <h4 class="fc-md__h2">{inner}</h4> }.into_any(),
                _ => view! { <h5 class="fc-md__h3">{inner}</h5> }.into_any(),
            }
        }
        Block::Code { lang, text } => view! {
            <pre class="fc-md__code" data-lang=lang><code>{text}</code></pre>
        }
        .into_any(),
        Block::Quote(inner) => {
            view! { <blockquote>{inner.into_iter().map(render_block).collect_view()}</blockquote> }
                .into_any()
        }
        Block::List {
            start,
            loose,
            items,
        } => {
            let items = items
                .into_iter()
                .map(|item| {
                    let blocks = item
                        .into_iter()
                        .map(|b| match b {
                            Block::Paragraph(i) if !loose => {
                                view! { <span>{render_inlines(i)}</span> }.into_any()
                            }
                            b => render_block(b),
                        })
                        .collect_view();
                    view! { <li>{blocks}</li> }
                })
                .collect_view();
            match start {
                Some(n) => view! { <ol start=n.to_string()>{items}</ol> }.into_any(),
                None => view! { <ul>{items}</ul> }.into_any(),
            }
        }
        Block::Table { align, head, rows } => {
            let style = move |a: Align| a.css().map(|a| format!("text-align: {a}"));
            let head_align = align.clone();
            view! {
                // Wide tables scroll inside the bubble on a phone, as the cow tables do.
                <div class="fc-table-wrap" data-testid="answer-table">
                    <table class="fc-table">
                        <thead><tr>
                            {head.into_iter().zip(head_align).map(|(cell, a)| view! {
                                <th scope="col" style=style(a)>{render_inlines(cell)}</th>
                            }).collect_view()}
                        </tr></thead>
                        <tbody>
                            {rows.into_iter().map(|row| view! {
                                <tr>{row.into_iter().zip(align.clone()).map(|(cell, a)| view! {
                                    <td style=style(a)>{render_inlines(cell)}</td>
                                }).collect_view()}</tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            }
            .into_any()
        }
        Block::Rule => view! { <hr /> }.into_any(),
    }
}

fn render_inlines(nodes: Vec<Inline>) -> AnyView {
    nodes
        .into_iter()
        .map(|n| match n {
            Inline::Text(t) => t.into_any(),
            Inline::Code(t) => view! { <code>{t}</code> }.into_any(),
            Inline::Em(c) => view! { <em>{render_inlines(c)}</em> }.into_any(),
            Inline::Strong(c) => view! { <strong>{render_inlines(c)}</strong> }.into_any(),
            Inline::Strike(c) => view! { <del>{render_inlines(c)}</del> }.into_any(),
            Inline::Link { href, children } => view! {
                <a href=href target="_blank" rel="noopener noreferrer">{render_inlines(children)}</a>
            }
            .into_any(),
            Inline::Break | Inline::SoftBreak => view! { <br /> }.into_any(),
        })
        .collect_view()
        .into_any()
}
