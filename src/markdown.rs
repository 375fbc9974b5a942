//! The answer's markdown, parsed into a tree the widget renders as DOM nodes (never
//! `innerHTML`). Pure Rust, native tests against the CommonMark spec's examples.
//!
//! A lean parser of what a chat answer uses: paragraphs, ATX and setext headings, thematic
//! breaks, fenced and indented code, block quotes, bullet and ordered lists, GFM tables,
//! emphasis, strong, GFM strikethrough, code spans, inline links, autolinks (`<…>` and bare
//! `http(s)://`), backslash escapes, entities and hard breaks. Not supported, on purpose or for
//! size: raw HTML (shown as text: model output must not inject markup), images (their alt text
//! is shown, the URL never fetched: an injected prompt must not leak data through one),
//! reference links and link definitions. A link is a link only for `http`, `https` and `mailto`.
//! A well-kept parser was measured first: `pulldown-cmark` with tables only adds about 66 KB
//! gzip, beyond the widget's budget for this.
//!
//! Streaming ([`Stream`]): text only grows, so the blocks before the last blank line outside a
//! code fence are final. They are parsed once; each delta re-parses only the open tail, with an
//! unclosed fence, code span, `**` or `~~` closed for display meanwhile.

mod inline;
#[cfg(test)]
mod tests;

pub use inline::{Inline, inlines, safe_href};

/// A block of the answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Block {
    /// A paragraph.
    Paragraph(Vec<Inline>),
    /// `#`…`######`, or a setext underline.
    Heading(u8, Vec<Inline>),
    /// Fenced or indented code, with the fence's info string's first word.
    Code {
        /// The language, if the fence named one.
        lang: Option<String>,
        /// The code, each line ending in `\n`.
        text: String,
    },
    /// `> …`.
    Quote(Vec<Block>),
    /// A bullet (`start: None`) or ordered list. Tight lists show their paragraphs bare.
    List {
        /// The first number of an ordered list.
        start: Option<u64>,
        /// Whether blank lines separate its items.
        loose: bool,
        /// Each item's blocks.
        items: Vec<Vec<Block>>,
    },
    /// A GFM table: header cells, each column's alignment, the body rows.
    Table {
        /// Column alignments.
        align: Vec<Align>,
        /// The header row.
        head: Vec<Vec<Inline>>,
        /// The body rows, each as wide as the header.
        rows: Vec<Vec<Vec<Inline>>>,
    },
    /// `---`.
    Rule,
}

/// A table column's alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// None given.
    None,
    /// `:--`.
    Left,
    /// `:-:`.
    Center,
    /// `--:`.
    Right,
}

impl Align {
    /// The CSS `text-align` value, if any.
    pub fn css(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Left => Some("left"),
            Self::Center => Some("center"),
            Self::Right => Some("right"),
        }
    }
}

/// Parses a whole markdown text.
pub fn parse(src: &str) -> Vec<Block> {
    let lines: Vec<String> = src
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .split('\n')
        .map(expand_tabs)
        .collect();
    let mut lines = lines;
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    blocks(&lines)
}

/// Tabs in a line's indentation (and after a list or quote marker there) to spaces, to the
/// next multiple of 4, so indentation is counted in columns; tabs in text stay.
fn expand_tabs(line: &str) -> String {
    if !line.contains('\t') {
        return line.to_owned();
    }
    let mut out = String::with_capacity(line.len() + 8);
    let mut col = 0;
    let mut leading = true;
    for c in line.chars() {
        if c == '\t' && leading {
            let n = 4 - col % 4;
            out.extend(std::iter::repeat_n(' ', n));
            col += n;
        } else {
            if !matches!(c, ' ' | '>' | '-' | '*' | '+' | '.' | ')' | '0'..='9') {
                leading = false;
            }
            out.push(c);
            col += 1;
        }
    }
    out
}

/// Marks a line as a lazy continuation of the paragraph before it (inside a quote or a list
/// item): whatever it looks like, it is paragraph text.
const LAZY: char = '\u{E000}';

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// `---`, `***`, `___` (three or more, spaces between allowed).
fn is_rule(line: &str) -> bool {
    if indent(line) > 3 {
        return false;
    }
    let t = line.trim();
    let Some(c) = t.chars().next() else {
        return false;
    };
    matches!(c, '-' | '*' | '_')
        && t.chars().all(|x| x == c || x == ' ')
        && t.chars().filter(|&x| x == c).count() >= 3
}

/// An ATX heading: its level and text.
fn atx(line: &str) -> Option<(u8, String)> {
    if indent(line) > 3 {
        return None;
    }
    let t = line.trim_start();
    let level = t.chars().take_while(|&c| c == '#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &t[level..];
    if !rest.is_empty() && !rest.starts_with(' ') {
        return None;
    }
    let mut text = rest.trim();
    // A closing run of `#` preceded by a space (or the whole text) goes.
    let stripped = text.trim_end_matches('#');
    if stripped.is_empty() {
        text = "";
    } else if stripped.ends_with(' ') {
        text = stripped.trim_end();
    }
    Some((level as u8, text.to_owned()))
}

/// An opening code fence: its indent, character, length and info string.
fn fence(line: &str) -> Option<(usize, char, usize, String)> {
    let ind = indent(line);
    if ind > 3 {
        return None;
    }
    let t = &line[ind..];
    let c = t.chars().next()?;
    if c != '`' && c != '~' {
        return None;
    }
    let n = t.chars().take_while(|&x| x == c).count();
    if n < 3 {
        return None;
    }
    let info = t[n..].trim();
    if c == '`' && info.contains('`') {
        return None;
    }
    Some((ind, c, n, info.to_owned()))
}

fn closes_fence(line: &str, c: char, n: usize) -> bool {
    indent(line) <= 3 && {
        let t = line.trim();
        t.chars().take_while(|&x| x == c).count() >= n && t.chars().all(|x| x == c)
    }
}

/// `> ` and what follows it.
fn quote(line: &str) -> Option<String> {
    if indent(line) > 3 {
        return None;
    }
    let t = line.trim_start().strip_prefix('>')?;
    Some(t.strip_prefix(' ').unwrap_or(t).to_owned())
}

/// A list item's marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Marker {
    Bullet(char),
    Ordered(u64, char),
}

/// A list item's first line: its marker, content indent, and the content.
fn item(line: &str) -> Option<(Marker, usize, String)> {
    let ind = indent(line);
    if ind > 3 {
        return None;
    }
    let t = &line[ind..];
    let (marker, len) = match t.chars().next()? {
        c @ ('-' | '+' | '*') => (Marker::Bullet(c), 1),
        '0'..='9' => {
            let digits = t.chars().take_while(char::is_ascii_digit).count();
            if digits > 9 {
                return None;
            }
            let d = t[digits..].chars().next()?;
            if d != '.' && d != ')' {
                return None;
            }
            (Marker::Ordered(t[..digits].parse().ok()?, d), digits + 1)
        }
        _ => return None,
    };
    let rest = &t[len..];
    if rest.is_empty() || is_blank(rest) {
        return Some((marker, ind + len + 1, String::new()));
    }
    let spaces = indent(rest);
    if spaces == 0 {
        return None;
    }
    if spaces > 4 {
        // Indented code inside the item: the content starts one space after the marker.
        return Some((marker, ind + len + 1, rest[1..].to_owned()));
    }
    Some((marker, ind + len + spaces, rest[spaces..].to_owned()))
}

fn same_list(a: Marker, b: Marker) -> bool {
    match (a, b) {
        (Marker::Bullet(x), Marker::Bullet(y)) => x == y,
        (Marker::Ordered(_, x), Marker::Ordered(_, y)) => x == y,
        _ => false,
    }
}

/// Whether `line` starts a block that may interrupt a paragraph.
fn interrupts(line: &str) -> bool {
    if is_rule(line) || atx(line).is_some() || fence(line).is_some() || quote(line).is_some() {
        return true;
    }
    // Only a non-empty item, and an ordered one only from 1, interrupts a paragraph.
    matches!(item(line), Some((m, _, content)) if !content.trim().is_empty()
        && matches!(m, Marker::Bullet(_) | Marker::Ordered(1, _)))
}

/// A table's cells: `| a | b |` → `["a", "b"]` (escaped pipes stay in their cell).
fn cells(line: &str) -> Vec<String> {
    let t = line.trim();
    let t = t.strip_prefix('|').unwrap_or(t);
    let t = if t.ends_with('|') && !t.ends_with("\\|") {
        &t[..t.len() - 1]
    } else {
        t
    };
    let mut out = Vec::new();
    let mut cell = String::new();
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cell.push('|');
                chars.next();
            }
            '|' => out.push(std::mem::take(&mut cell).trim().to_owned()),
            c => cell.push(c),
        }
    }
    out.push(cell.trim().to_owned());
    out
}

/// A table's delimiter row: one alignment per column.
fn delimiter_row(line: &str) -> Option<Vec<Align>> {
    if indent(line) > 3 || !line.contains('-') {
        return None;
    }
    if !line.contains('|') && !line.trim().starts_with(':') && cells(line).len() != 1 {
        return None;
    }
    cells(line)
        .iter()
        .map(|c| {
            let left = c.starts_with(':');
            let right = c.ends_with(':');
            let dashes = c.trim_matches(':');
            if dashes.is_empty() || !dashes.chars().all(|x| x == '-') {
                return None;
            }
            Some(match (left, right) {
                (true, true) => Align::Center,
                (true, false) => Align::Left,
                (false, true) => Align::Right,
                (false, false) => Align::None,
            })
        })
        .collect()
}

fn row(line: &str, width: usize) -> Vec<Vec<Inline>> {
    let mut cells = cells(line);
    cells.resize(width, String::new());
    cells.iter().map(|c| inlines(c)).collect()
}

/// The blocks of some lines (a document, or a container's content).
fn blocks(lines: &[String]) -> Vec<Block> {
    blocks_and_gaps(lines).0
}

/// Whether a line, as the last of a container so far, leaves a paragraph open (so the next
/// line may continue it lazily).
fn ends_in_paragraph(line: &str) -> bool {
    !is_blank(line)
        && (line.starts_with(LAZY)
            || indent(line) < 4 && fence(line).is_none() && atx(line).is_none() && !is_rule(line))
}

/// The blocks of some lines, and whether a blank line separates two of them (which makes a
/// list item's list loose).
fn blocks_and_gaps(lines: &[String]) -> (Vec<Block>, bool) {
    let mut out = Vec::new();
    let mut gap = false;
    let mut blank_since = false;
    let mut para: Vec<String> = Vec::new();
    let flush = |para: &mut Vec<String>, out: &mut Vec<Block>| {
        if !para.is_empty() {
            let text = para.join("\n");
            out.push(Block::Paragraph(inlines(text.trim())));
            para.clear();
        }
    };
    let mut i = 0;
    while i < lines.len() {
        let line = &lines[i];
        if is_blank(line) {
            flush(&mut para, &mut out);
            blank_since = !out.is_empty();
            i += 1;
            continue;
        }
        if blank_since {
            gap = true;
            blank_since = false;
        }
        if line.starts_with(LAZY) {
            para.push(line.trim_start_matches(LAZY).trim_start().to_owned());
            i += 1;
            continue;
        }
        if !para.is_empty() {
            // Setext headings and tables are a paragraph's lines seen again.
            let t = line.trim();
            if indent(line) <= 3 && !t.is_empty() && t.chars().all(|c| c == '=') {
                let text = para.join("\n");
                out.push(Block::Heading(1, inlines(text.trim())));
                para.clear();
                i += 1;
                continue;
            }
            if indent(line) <= 3 && !t.is_empty() && t.chars().all(|c| c == '-') {
                let text = para.join("\n");
                out.push(Block::Heading(2, inlines(text.trim())));
                para.clear();
                i += 1;
                continue;
            }
            if para.len() == 1
                && let Some(align) = delimiter_row(line)
                && cells(&para[0]).len() == align.len()
            {
                let head = row(&para[0], align.len());
                para.clear();
                i += 1;
                let mut rows = Vec::new();
                while i < lines.len() && !is_blank(&lines[i]) && !interrupts(&lines[i]) {
                    rows.push(row(&lines[i], align.len()));
                    i += 1;
                }
                out.push(Block::Table { align, head, rows });
                continue;
            }
            if !interrupts(line) {
                para.push(line.trim_start().to_owned());
                i += 1;
                continue;
            }
            flush(&mut para, &mut out);
        }
        if indent(line) >= 4 {
            let mut code: Vec<&str> = Vec::new();
            while i < lines.len() && (indent(&lines[i]) >= 4 || is_blank(&lines[i])) {
                code.push(lines[i].get(4..).unwrap_or(""));
                i += 1;
            }
            while code.last().is_some_and(|l| is_blank(l)) {
                code.pop();
            }
            let text = code.iter().map(|l| format!("{l}\n")).collect();
            out.push(Block::Code { lang: None, text });
            continue;
        }
        if is_rule(line) {
            out.push(Block::Rule);
            i += 1;
            continue;
        }
        if let Some((level, text)) = atx(line) {
            out.push(Block::Heading(level, inlines(&text)));
            i += 1;
            continue;
        }
        if let Some((ind, c, n, info)) = fence(line) {
            i += 1;
            let mut text = String::new();
            while i < lines.len() && !closes_fence(&lines[i], c, n) {
                let l = &lines[i];
                let strip = indent(l).min(ind);
                text.push_str(&l[strip..]);
                text.push('\n');
                i += 1;
            }
            i += 1; // the closing fence (or the end)
            let lang = info.split_whitespace().next().map(inline::unescape);
            out.push(Block::Code { lang, text });
            continue;
        }
        if quote(line).is_some() {
            let mut inner: Vec<String> = Vec::new();
            while i < lines.len() {
                let l = &lines[i];
                if let Some(rest) = quote(l) {
                    inner.push(rest);
                } else if !is_blank(l)
                    && inner.last().is_some_and(|p| ends_in_paragraph(p))
                    && !interrupts(l)
                {
                    // A lazy continuation of the quote's paragraph.
                    inner.push(format!("{LAZY}{}", l.trim_start_matches(LAZY)));
                } else {
                    break;
                }
                i += 1;
            }
            out.push(Block::Quote(blocks(&inner)));
            continue;
        }
        if let Some((marker, _, _)) = item(line) {
            let (block, next) = list(lines, i, marker);
            out.push(block);
            i = next;
            continue;
        }
        para.push(line.trim_start().to_owned());
        i += 1;
    }
    flush(&mut para, &mut out);
    (out, gap)
}

/// The list that starts at `lines[start]`: its block and the line after it.
fn list(lines: &[String], mut i: usize, first: Marker) -> (Block, usize) {
    let mut items = Vec::new();
    let mut loose = false;
    while let Some((_, width, content)) = item(&lines[i]) {
        let mut body = Vec::new();
        if !content.is_empty() {
            body.push(content);
        }
        i += 1;
        while i < lines.len() {
            let l = &lines[i];
            if is_blank(l) {
                if body.is_empty() {
                    // An item may begin with one blank line only.
                    break;
                }
                body.push(String::new());
                i += 1;
                continue;
            }
            if indent(l) >= width {
                body.push(l[width..].to_owned());
                i += 1;
                continue;
            }
            let last_blank = body.last().is_none_or(|b| is_blank(b));
            if !last_blank
                && body.last().is_some_and(|b| ends_in_paragraph(b))
                && !interrupts(l)
                && item(l).is_none()
            {
                body.push(format!("{LAZY}{}", l.trim_start_matches(LAZY)));
                i += 1;
                continue;
            }
            break;
        }
        // Blank lines at the item's end lie between items (or after the list).
        let mut gap = false;
        while body.last().is_some_and(|b| is_blank(b)) {
            body.pop();
            i -= 1;
        }
        let mut after = i;
        while after < lines.len() && is_blank(&lines[after]) {
            after += 1;
            gap = true;
        }
        let (inner, inner_gap) = blocks_and_gaps(&body);
        loose |= inner_gap;
        items.push(inner);
        let next = lines
            .get(after)
            .and_then(|l| item(l).filter(|_| !is_rule(l)));
        match next {
            Some((m, _, _)) if same_list(first, m) => {
                loose |= gap;
                i = after;
            }
            _ => break,
        }
    }
    let start_no = match first {
        Marker::Ordered(n, _) => Some(n),
        Marker::Bullet(_) => None,
    };
    (
        Block::List {
            start: start_no,
            loose,
            items,
        },
        i,
    )
}

/// Where the open tail of a growing text starts: the line after the last blank line that is
/// outside a code fence, so everything before it parses the same whatever comes next.
/// Scans from `from` (an earlier answer of this function) with the fence state it had there.
pub fn finished_up_to(text: &str, from: usize) -> usize {
    let mut fence_open: Option<(char, usize)> = None;
    let mut done = from;
    let mut at = from;
    for line in text[from..].split_inclusive('\n') {
        let end = at + line.len();
        if !line.ends_with('\n') {
            break; // a line still being written
        }
        let l = expand_tabs(line.trim_end_matches('\n'));
        match fence_open {
            Some((c, n)) => {
                if closes_fence(&l, c, n) {
                    fence_open = None;
                }
            }
            None => {
                if let Some((_, c, n, _)) = fence(&l) {
                    fence_open = Some((c, n));
                } else if is_blank(&l) {
                    done = end;
                }
            }
        }
        at = end;
    }
    // A blank line inside a list keeps the list going: only a line after it that starts at
    // the margin and is no list item proves the list over. Lists stay in the tail until then.
    done
}

/// A growing answer split into final blocks and an open tail.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stream {
    /// Bytes of the text whose blocks are final.
    pub done_up_to: usize,
}

impl Stream {
    /// Takes in the text so far (it only grows): answers the blocks that became final since
    /// the last call, and the blocks of the open tail, closed for display while `streaming`.
    pub fn update(&mut self, text: &str, streaming: bool) -> (Vec<Block>, Vec<Block>) {
        if text.len() < self.done_up_to || !text.is_char_boundary(self.done_up_to) {
            // Not the text this followed (never, for a text that only grows).
            *self = Self::default();
        }
        let up_to = if streaming {
            self.safe_end(text)
        } else {
            text.len()
        };
        let mut finished = Vec::new();
        if up_to > self.done_up_to {
            finished = parse(&text[self.done_up_to..up_to]);
            self.done_up_to = up_to;
        }
        let tail = &text[self.done_up_to..];
        let open = if streaming {
            parse(&close_open(tail))
        } else {
            parse(tail)
        };
        (finished, open)
    }

    /// The end of the final part: the last paragraph break, unless a list or a quote may
    /// still go on past it (then the break before that block).
    fn safe_end(&self, text: &str) -> usize {
        let end = finished_up_to(text, self.done_up_to);
        if end == self.done_up_to {
            return end;
        }
        // The block just before `end` must be one that a later line cannot extend.
        let chunk = &text[self.done_up_to..end];
        let last_block_start = chunk
            .trim_end_matches('\n')
            .rfind("\n\n")
            .map_or(0, |p| p + 2);
        let first = chunk[last_block_start..].lines().next().unwrap_or("");
        let rest = &text[end..];
        let next_line = rest.lines().next();
        let may_continue = (item(first).is_some() || quote(first).is_some())
            && next_line.is_none_or(|n| {
                rest.lines().nth(1).is_none() || indent(n) > 0 || item(n).is_some()
            });
        if may_continue {
            self.done_up_to + last_block_start
        } else {
            end
        }
    }
}

/// An open tail with what is unclosed closed for display: a code fence, an odd backtick,
/// `**` or `~~` (so a half-written `**bold` shows bold, not asterisks).
pub fn close_open(tail: &str) -> String {
    let mut out = tail.to_owned();
    let mut fence_open: Option<(char, usize)> = None;
    for line in tail.lines() {
        let l = expand_tabs(line);
        match fence_open {
            Some((c, n)) if closes_fence(&l, c, n) => fence_open = None,
            Some(_) => {}
            None => fence_open = fence(&l).map(|(_, c, n, _)| (c, n)),
        }
    }
    if let Some((c, n)) = fence_open {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.extend(std::iter::repeat_n(c, n));
        return out;
    }
    let last = tail.rsplit("\n\n").next().unwrap_or("");
    if last.matches('`').count() % 2 == 1 {
        out.push('`');
        return out;
    }
    if last.matches("**").count() % 2 == 1 && !out.ends_with("**") {
        out.push_str("**");
    }
    if last.matches("~~").count() % 2 == 1 && !out.ends_with("~~") {
        out.push_str("~~");
    }
    out
}
