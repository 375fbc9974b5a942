//! Inline markdown: code spans, emphasis (CommonMark's delimiter-run rules), strikethrough,
//! links, autolinks, escapes, entities and line breaks.

/// An inline piece of text.
#[derive(Clone, Debug, PartialEq)]
pub enum Inline {
    /// Plain text.
    Text(String),
    /// `` `code` ``.
    Code(String),
    /// `*emphasis*`.
    Em(Vec<Inline>),
    /// `**strong**`.
    Strong(Vec<Inline>),
    /// `~~deleted~~`.
    Strike(Vec<Inline>),
    /// A link with a safe target (see [`safe_href`]).
    Link {
        /// Where it goes.
        href: String,
        /// What it says.
        children: Vec<Inline>,
    },
    /// A hard line break (two spaces or `\` at a line's end).
    Break,
    /// A line break inside a paragraph: shown as a break, as chat users expect.
    SoftBreak,
}

/// `href` if it is a link the widget may open: `http`, `https` or `mailto` only.
pub fn safe_href(href: &str) -> Option<String> {
    let h = href.trim();
    let lower = h.to_ascii_lowercase();
    (lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("mailto:"))
        .then(|| h.to_owned())
}

/// An item while parsing: finished inlines, or a run of delimiters still unmatched.
#[derive(Debug)]
enum Item {
    Node(Inline),
    Delim {
        ch: char,
        count: usize,
        orig: usize,
        open: bool,
        close: bool,
    },
    /// `[` or `![`, waiting for its `]`.
    Bracket {
        image: bool,
        active: bool,
    },
}

fn is_punct(c: char) -> bool {
    c.is_ascii_punctuation() || (!c.is_ascii() && !c.is_alphanumeric() && !c.is_whitespace())
}

/// Removes backslash escapes and decodes entities (for link targets and info strings).
pub(super) fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if c == '\\'
            && let Some(n) = rest[1..].chars().next()
            && n.is_ascii_punctuation()
        {
            out.push(n);
            rest = &rest[1 + n.len_utf8()..];
            continue;
        }
        if c == '&'
            && let Some((decoded, len)) = entity(rest)
        {
            out.push_str(&decoded);
            rest = &rest[len..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// An entity or numeric character reference at the start of `s`: its text and length.
fn entity(s: &str) -> Option<(String, usize)> {
    let end = s[..s.len().min(34)].find(';')?;
    let body = &s[1..end];
    let text = if let Some(num) = body.strip_prefix('#') {
        let n = if let Some(hex) = num.strip_prefix(['x', 'X']) {
            if hex.is_empty() || hex.len() > 6 {
                return None;
            }
            u32::from_str_radix(hex, 16).ok()?
        } else {
            if num.is_empty() || num.len() > 7 || !num.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            num.parse().ok()?
        };
        let c = if n == 0 {
            '\u{fffd}'
        } else {
            char::from_u32(n).unwrap_or('\u{fffd}')
        };
        c.to_string()
    } else {
        match body {
            "amp" => "&",
            "lt" => "<",
            "gt" => ">",
            "quot" => "\"",
            "apos" => "'",
            "nbsp" => "\u{a0}",
            "copy" => "©",
            "ouml" => "ö",
            "auml" => "ä",
            "uuml" => "ü",
            "hellip" => "…",
            "mdash" => "—",
            "ndash" => "–",
            "yen" => "¥",
            "times" => "×",
            "deg" => "°",
            _ => return None,
        }
        .to_owned()
    };
    Some((text, end + 1))
}

/// A URI autolink's target (`<scheme:…>`), or an email one's.
fn autolink(inner: &str) -> Option<String> {
    if inner.is_empty()
        || inner
            .chars()
            .any(|c| c.is_whitespace() || c == '<' || c == '>')
    {
        return None;
    }
    if let Some(colon) = inner.find(':') {
        let scheme = &inner[..colon];
        if (2..=32).contains(&scheme.len())
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
        {
            return Some(inner.to_owned());
        }
    }
    let (user, domain) = inner.split_once('@')?;
    let user_ok = !user.is_empty()
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".!#$%&'*+/=?^_`{|}~-".contains(c));
    let domain_ok = domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    (user_ok && domain_ok).then(|| format!("mailto:{inner}"))
}

/// An inline link's `(destination "title")` right after `]`: the destination and the length.
fn link_tail(s: &str) -> Option<(String, usize)> {
    let mut i = 1; // past `(`
    let b = s.as_bytes();
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && matches!(b[*i], b' ' | b'\n' | b'\t') {
            *i += 1;
        }
    };
    skip_ws(&mut i);
    let dest;
    if b.get(i) == Some(&b'<') {
        let mut end = i + 1;
        while end < b.len() && !matches!(b[end], b'>' | b'\n' | b'<') {
            if b[end] == b'\\' {
                end += 1;
            }
            end += 1;
        }
        if b.get(end) != Some(&b'>') {
            return None;
        }
        dest = unescape(&s[i + 1..end]);
        i = end + 1;
    } else {
        let start = i;
        let mut depth = 0usize;
        while i < b.len() {
            match b[i] {
                b'\\' if i + 1 < b.len() && b[i + 1].is_ascii_punctuation() => i += 1,
                b'(' => depth += 1,
                b')' if depth == 0 => break,
                b')' => depth -= 1,
                c if c <= b' ' => break,
                _ => {}
            }
            i += 1;
        }
        if depth != 0 {
            return None;
        }
        dest = unescape(&s[start..i]);
    }
    let before_title = i;
    skip_ws(&mut i);
    if i > before_title
        && let Some(&q) = b.get(i)
        && matches!(q, b'"' | b'\'' | b'(')
    {
        let close = if q == b'(' { b')' } else { q };
        let mut j = i + 1;
        while j < b.len() && b[j] != close {
            if b[j] == b'\\' {
                j += 1;
            }
            j += 1;
        }
        if j >= b.len() {
            return None;
        }
        i = j + 1;
        skip_ws(&mut i);
    }
    (b.get(i) == Some(&b')')).then(|| (dest, i + 1))
}

/// Parses inline markdown.
pub fn inlines(src: &str) -> Vec<Inline> {
    let mut items: Vec<Item> = Vec::new();
    let mut text = String::new();
    let flush = |text: &mut String, items: &mut Vec<Item>| {
        if !text.is_empty() {
            items.push(Item::Node(Inline::Text(std::mem::take(text))));
        }
    };
    let mut i = 0;
    while i < src.len() {
        let rest = &src[i..];
        let c = rest.chars().next().unwrap_or(' ');
        match c {
            '\\' => {
                let next = rest[1..].chars().next();
                match next {
                    Some('\n') => {
                        flush(&mut text, &mut items);
                        items.push(Item::Node(Inline::Break));
                        i += 2;
                    }
                    Some(n) if n.is_ascii_punctuation() => {
                        text.push(n);
                        i += 2;
                    }
                    _ => {
                        text.push('\\');
                        i += 1;
                    }
                }
            }
            '`' => {
                let run = rest.chars().take_while(|&x| x == '`').count();
                let after = &rest[run..];
                let mut found = None;
                let mut j = 0;
                while j < after.len() {
                    let Some(p) = after[j..].find('`') else {
                        break;
                    };
                    let at = j + p;
                    let n = after[at..].chars().take_while(|&x| x == '`').count();
                    if n == run {
                        found = Some(at);
                        break;
                    }
                    j = at + n;
                }
                match found {
                    Some(end) => {
                        let mut code = after[..end].replace('\n', " ");
                        if code.len() >= 2
                            && code.starts_with(' ')
                            && code.ends_with(' ')
                            && !code.chars().all(|x| x == ' ')
                        {
                            code = code[1..code.len() - 1].to_owned();
                        }
                        flush(&mut text, &mut items);
                        items.push(Item::Node(Inline::Code(code)));
                        i += run + end + run;
                    }
                    None => {
                        text.push_str(&rest[..run]);
                        i += run;
                    }
                }
            }
            '&' => match entity(rest) {
                Some((decoded, len)) => {
                    text.push_str(&decoded);
                    i += len;
                }
                None => {
                    text.push('&');
                    i += 1;
                }
            },
            '<' => {
                let target = rest[1..]
                    .find('>')
                    .and_then(|end| autolink(&rest[1..1 + end]).map(|t| (t, end)));
                match target {
                    Some((href, end)) => {
                        flush(&mut text, &mut items);
                        let shown = rest[1..1 + end].to_owned();
                        items.push(Item::Node(match safe_href(&href) {
                            Some(href) => Inline::Link {
                                href,
                                children: vec![Inline::Text(shown)],
                            },
                            None => Inline::Text(shown),
                        }));
                        i += end + 2;
                    }
                    None => {
                        text.push('<');
                        i += 1;
                    }
                }
            }
            '\n' => {
                let hard = text.ends_with("  ");
                let trimmed = text.trim_end_matches(' ').len();
                text.truncate(trimmed);
                flush(&mut text, &mut items);
                items.push(Item::Node(if hard {
                    Inline::Break
                } else {
                    Inline::SoftBreak
                }));
                i += 1;
                // Leading spaces of the next line go.
                i += src[i..].len() - src[i..].trim_start_matches(' ').len();
            }
            '!' if rest[1..].starts_with('[') => {
                flush(&mut text, &mut items);
                items.push(Item::Bracket {
                    image: true,
                    active: true,
                });
                i += 2;
            }
            '[' => {
                flush(&mut text, &mut items);
                items.push(Item::Bracket {
                    image: false,
                    active: true,
                });
                i += 1;
            }
            ']' => {
                flush(&mut text, &mut items);
                i += 1;
                let opener = items
                    .iter()
                    .rposition(|it| matches!(it, Item::Bracket { .. }));
                let Some(o) = opener else {
                    text.push(']');
                    continue;
                };
                let Item::Bracket { image, active } = items[o] else {
                    unreachable!("rposition found a bracket");
                };
                let tail = if src[i..].starts_with('(') {
                    link_tail(&src[i..])
                } else {
                    None
                };
                match tail {
                    Some((dest, len)) if active => {
                        i += len;
                        let inner: Vec<Item> = items.drain(o + 1..).collect();
                        items.pop(); // the bracket
                        let children = resolve(inner);
                        let nodes = if image {
                            // Images are never fetched: their alt text stands in.
                            vec![Inline::Text(plain(&children))]
                        } else {
                            match safe_href(&dest) {
                                Some(href) => vec![Inline::Link { href, children }],
                                // Not a target the widget opens: the words alone.
                                None => children,
                            }
                        };
                        items.extend(nodes.into_iter().map(Item::Node));
                        if !image {
                            // No links inside links: earlier `[` can no longer open one.
                            for it in &mut items {
                                if let Item::Bracket {
                                    image: false,
                                    active,
                                } = it
                                {
                                    *active = false;
                                }
                            }
                        }
                    }
                    _ => {
                        let literal = if image { "![" } else { "[" };
                        items[o] = Item::Node(Inline::Text(literal.to_owned()));
                        text.push(']');
                    }
                }
            }
            '*' | '_' | '~' => {
                let run = rest.chars().take_while(|&x| x == c).count();
                let before = src[..i].chars().next_back();
                let after = rest[run..].chars().next();
                let ws_before = before.is_none_or(char::is_whitespace);
                let ws_after = after.is_none_or(char::is_whitespace);
                let p_before = before.is_some_and(is_punct);
                let p_after = after.is_some_and(is_punct);
                let left = !ws_after && (!p_after || ws_before || p_before);
                let right = !ws_before && (!p_before || ws_after || p_after);
                let (open, close) = match c {
                    '_' => (left && (!right || p_before), right && (!left || p_after)),
                    _ => (left, right),
                };
                flush(&mut text, &mut items);
                if c == '~' && run > 2 {
                    text.push_str(&rest[..run]);
                } else {
                    items.push(Item::Delim {
                        ch: c,
                        count: run,
                        orig: run,
                        open,
                        close,
                    });
                }
                i += run;
            }
            'h' | 'H' | 'w' => {
                let at_word_start = src[..i].chars().next_back().is_none_or(|b| {
                    b.is_whitespace() || matches!(b, '(' | '*' | '_' | '~') || !b.is_ascii()
                });
                match at_word_start.then(|| bare_url(rest)).flatten() {
                    Some((href, len)) => {
                        flush(&mut text, &mut items);
                        items.push(Item::Node(Inline::Link {
                            href,
                            children: vec![Inline::Text(rest[..len].to_owned())],
                        }));
                        i += len;
                    }
                    None => {
                        text.push(c);
                        i += 1;
                    }
                }
            }
            c => {
                text.push(c);
                i += c.len_utf8();
            }
        }
    }
    flush(&mut text, &mut items);
    resolve(items)
}

/// A bare `http(s)://…` or `www.…` URL at the start of `s` (GFM's extended autolink): its
/// target and length, trailing punctuation left out.
fn bare_url(s: &str) -> Option<(String, usize)> {
    let lower: String = s.chars().take(8).collect::<String>().to_ascii_lowercase();
    let prefix = if lower.starts_with("https://") {
        8
    } else if lower.starts_with("http://") {
        7
    } else if lower.starts_with("www.") {
        4
    } else {
        return None;
    };
    let mut end = s
        .find(|c: char| c.is_whitespace() || c == '<' || !c.is_ascii())
        .unwrap_or(s.len());
    // Trailing punctuation, and a `)` without its `(`, are not part of the URL.
    loop {
        let t = &s[..end];
        let last = t.chars().next_back()?;
        let unbalanced = last == ')' && t.matches(')').count() > t.matches('(').count();
        if unbalanced
            || matches!(
                last,
                '?' | '!' | '.' | ',' | ':' | '*' | '_' | '~' | '\'' | '"' | ';'
            )
        {
            end -= 1;
        } else {
            break;
        }
    }
    let domain = &s[prefix..end];
    if domain.is_empty() || !domain.split(['/', '?', '#']).next()?.contains('.') && prefix == 4 {
        return None;
    }
    if domain.split(['/', '?', '#']).next()?.is_empty() {
        return None;
    }
    let text = &s[..end];
    let href = if prefix == 4 {
        format!("http://{text}")
    } else {
        text.to_owned()
    };
    Some((href, end))
}

/// The plain text of some inlines (an image's alt text, a refused link's words).
pub(super) fn plain(nodes: &[Inline]) -> String {
    let mut out = String::new();
    for n in nodes {
        match n {
            Inline::Text(t) | Inline::Code(t) => out.push_str(t),
            Inline::Em(c) | Inline::Strong(c) | Inline::Strike(c) => out.push_str(&plain(c)),
            Inline::Link { children, .. } => out.push_str(&plain(children)),
            Inline::Break | Inline::SoftBreak => out.push('\n'),
        }
    }
    out
}

/// Matches emphasis delimiters (CommonMark's "process emphasis") and returns the inlines.
fn resolve(mut items: Vec<Item>) -> Vec<Inline> {
    let mut c = 0;
    while c < items.len() {
        let Item::Delim {
            ch,
            count: cc,
            orig: corig,
            open: copen,
            close: true,
        } = items[c]
        else {
            c += 1;
            continue;
        };
        // Look back for an opener of the same kind.
        let mut found = None;
        for o in (0..c).rev() {
            if let Item::Delim {
                ch: och,
                count: oc,
                orig: oorig,
                open: true,
                close: oclose,
            } = items[o]
                && och == ch
            {
                let ok = if ch == '~' {
                    oc == cc
                } else {
                    !((oclose || copen)
                        && (oorig + corig) % 3 == 0
                        && !(oorig % 3 == 0 && corig % 3 == 0))
                };
                if ok {
                    found = Some((o, oc));
                    break;
                }
            }
        }
        let Some((o, oc)) = found else {
            if !copen {
                items[c] = Item::Node(Inline::Text(ch.to_string().repeat(cc)));
            }
            c += 1;
            continue;
        };
        let used = if ch == '~' {
            cc
        } else if oc >= 2 && cc >= 2 {
            2
        } else {
            1
        };
        let inner: Vec<Item> = items.drain(o + 1..c).collect();
        let children = flatten(inner);
        let node = match (ch, used) {
            ('~', _) => Inline::Strike(children),
            (_, 2) => Inline::Strong(children),
            _ => Inline::Em(children),
        };
        items.insert(o + 1, Item::Node(node));
        let mut closer = o + 2;
        if let Item::Delim { count, .. } = &mut items[o] {
            *count -= used;
            if *count == 0 {
                items.remove(o);
                closer -= 1;
            }
        }
        if let Item::Delim { count, .. } = &mut items[closer] {
            *count -= used;
            if *count == 0 {
                items.remove(closer);
                c = closer;
                continue;
            }
        }
        c = closer;
    }
    flatten(items)
}

/// Items to inlines: leftover delimiters and brackets become text, neighbouring texts merge.
fn flatten(items: Vec<Item>) -> Vec<Inline> {
    let mut out: Vec<Inline> = Vec::new();
    for it in items {
        let node = match it {
            Item::Node(n) => n,
            Item::Delim { ch, count, .. } => Inline::Text(ch.to_string().repeat(count)),
            Item::Bracket { image, .. } => Inline::Text(if image { "![" } else { "[" }.to_owned()),
        };
        match (out.last_mut(), node) {
            (Some(Inline::Text(a)), Inline::Text(b)) => a.push_str(&b),
            (_, node) => out.push(node),
        }
    }
    out
}
