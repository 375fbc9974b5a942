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
    markdown::{self, Block, Inline},
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
    // Final blocks are appended to `done` once and never touched again; `tail` is rebuilt
    // on each delta. DOM nodes made one by one (never markup parsed from text).
    let done = NodeRef::<leptos::html::Div>::new();
    let tail = NodeRef::<leptos::html::Div>::new();
    Effect::new(move |_| {
        let streaming = running.get();
        let (Some(done), Some(tail), Some(doc)) = (done.get(), tail.get(), document()) else {
            return;
        };
        text.with(|text| {
            let Some((finished, open)) = parser.try_update_value(|p| p.update(text, streaming))
            else {
                return;
            };
            for b in &finished {
                if let Some(node) = block(&doc, b, false) {
                    let _ = done.append_child(&node);
                }
            }
            tail.set_text_content(None);
            for b in &open {
                if let Some(node) = block(&doc, b, false) {
                    let _ = tail.append_child(&node);
                }
            }
            if streaming && let Some(caret) = el(&doc, "span", Some("fc-caret")) {
                let _ = caret.set_attribute("aria-hidden", "true");
                let _ = writing_end(&tail).append_child(&caret);
            }
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
                <div node_ref=done></div>
                <div node_ref=tail></div>
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

/// Where the text being written ends: the innermost last paragraph, item or heading of the
/// tail (not inside a table or code, whose layout a caret would disturb), so the caret follows
/// the words.
fn writing_end(tail: &web_sys::Element) -> web_sys::Element {
    let mut at = tail.clone();
    while let Some(last) = at.last_element_child() {
        match last.tag_name().as_str() {
            "P" | "UL" | "OL" | "LI" | "BLOCKQUOTE" | "H3" | "H4" | "H5" | "SPAN" | "EM"
            | "STRONG" => {
                at = last;
            }
            _ => break,
        }
    }
    at
}

fn document() -> Option<web_sys::Document> {
    web_sys::window()?.document()
}

fn el(doc: &web_sys::Document, tag: &str, class: Option<&str>) -> Option<web_sys::Element> {
    let e = doc.create_element(tag).ok()?;
    if let Some(class) = class {
        e.set_class_name(class);
    }
    Some(e)
}

/// `child` appended to `parent`, when there is one.
fn add(parent: &web_sys::Element, child: Option<web_sys::Element>) {
    if let Some(child) = child {
        let _ = parent.append_child(&child);
    }
}

/// A block's DOM (`tight`: a tight list item's paragraph, shown bare).
fn block(doc: &web_sys::Document, b: &Block, tight: bool) -> Option<web_sys::Element> {
    Some(match b {
        Block::Paragraph(i) => {
            let p = el(doc, if tight { "span" } else { "p" }, None)?;
            inlines(doc, &p, i);
            p
        }
        Block::Heading(level, i) => {
            let (tag, class) = match level {
                1 => ("h3", "fc-md__h1"),
                2 => ("h4", "fc-md__h2"),
                _ => ("h5", "fc-md__h3"),
            };
            let h = el(doc, tag, Some(class))?;
            inlines(doc, &h, i);
            h
        }
        Block::Code { lang, text } => {
            let pre = el(doc, "pre", Some("fc-md__code"))?;
            if let Some(lang) = lang {
                let _ = pre.set_attribute("data-lang", lang);
            }
            let code = el(doc, "code", None)?;
            code.set_text_content(Some(text));
            let _ = pre.append_child(&code);
            pre
        }
        Block::Quote(inner) => {
            let q = el(doc, "blockquote", None)?;
            for b in inner {
                add(&q, block(doc, b, false));
            }
            q
        }
        Block::List {
            start,
            loose,
            items,
        } => {
            let list = el(doc, if start.is_some() { "ol" } else { "ul" }, None)?;
            if let Some(n) = start.filter(|n| *n != 1) {
                let _ = list.set_attribute("start", &n.to_string());
            }
            for item in items {
                let li = el(doc, "li", None)?;
                for b in item {
                    add(&li, block(doc, b, !loose));
                }
                let _ = list.append_child(&li);
            }
            list
        }
        Block::Table { align, head, rows } => {
            // Wide tables scroll inside the bubble on a phone, as the cow tables do.
            let wrap = el(doc, "div", Some("fc-table-wrap"))?;
            let _ = wrap.set_attribute("data-testid", "answer-table");
            let table = el(doc, "table", Some("fc-table"))?;
            let row = |cells: &[Vec<Inline>], tag: &str| -> Option<web_sys::Element> {
                let tr = el(doc, "tr", None)?;
                for (cell, a) in cells.iter().zip(align) {
                    let c = el(doc, tag, None)?;
                    if tag == "th" {
                        let _ = c.set_attribute("scope", "col");
                    }
                    if let Some(a) = a.css() {
                        let _ = c.set_attribute("style", &format!("text-align: {a}"));
                    }
                    inlines(doc, &c, cell);
                    let _ = tr.append_child(&c);
                }
                Some(tr)
            };
            let thead = el(doc, "thead", None)?;
            add(&thead, row(head, "th"));
            let tbody = el(doc, "tbody", None)?;
            for r in rows {
                add(&tbody, row(r, "td"));
            }
            let _ = table.append_child(&thead);
            let _ = table.append_child(&tbody);
            let _ = wrap.append_child(&table);
            wrap
        }
        Block::Rule => el(doc, "hr", None)?,
    })
}

/// Inline DOM appended to `parent`: text nodes, never markup.
fn inlines(doc: &web_sys::Document, parent: &web_sys::Element, nodes: &[Inline]) {
    for n in nodes {
        let wrapped = |tag: &str, children: &[Inline]| {
            let e = el(doc, tag, None)?;
            inlines(doc, &e, children);
            Some(e)
        };
        match n {
            Inline::Text(t) => {
                let _ = parent.append_child(&doc.create_text_node(t));
            }
            Inline::Code(t) => {
                if let Some(c) = el(doc, "code", None) {
                    c.set_text_content(Some(t));
                    let _ = parent.append_child(&c);
                }
            }
            Inline::Em(c) => add(parent, wrapped("em", c)),
            Inline::Strong(c) => add(parent, wrapped("strong", c)),
            Inline::Strike(c) => add(parent, wrapped("del", c)),
            Inline::Link { href, children } => {
                if let Some(a) = wrapped("a", children) {
                    let _ = a.set_attribute("href", href);
                    let _ = a.set_attribute("target", "_blank");
                    let _ = a.set_attribute("rel", "noopener noreferrer");
                    let _ = parent.append_child(&a);
                }
            }
            Inline::Break | Inline::SoftBreak => add(parent, el(doc, "br", None)),
        }
    }
}
