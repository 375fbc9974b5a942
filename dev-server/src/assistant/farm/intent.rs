//! Intent routing: what a farmer's message asks for, and in which language to answer.

/// The language of the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// 日本語.
    Ja,
    /// English.
    En,
}

/// What a message asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    /// Cows due for estrus.
    Estrus,
    /// One cow's health (`None`: the message named no cow).
    Health(Option<u32>),
    /// This month's shipment report.
    Report,
    /// Anything else: say what the assistant can do.
    Help,
}

/// Japanese if the text has any kana or kanji, else English.
pub fn lang(text: &str) -> Lang {
    let japanese = text.chars().any(|c| {
        matches!(c, '\u{3040}'..='\u{30ff}' | '\u{3400}'..='\u{4dbf}' | '\u{4e00}'..='\u{9fff}' | '\u{ff66}'..='\u{ff9f}')
    });
    if japanese { Lang::Ja } else { Lang::En }
}

/// Full-width digits and letters to ASCII, lower case.
fn normalize(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{ff10}'..='\u{ff19}'
            | '\u{ff21}'..='\u{ff3a}'
            | '\u{ff41}'..='\u{ff5a}'
            | '\u{ff03}' => char::from_u32(c as u32 - 0xfee0).unwrap_or(c),
            '\u{3000}' => ' ',
            c => c,
        })
        .collect::<String>()
        .to_lowercase()
}

/// The intent of a message.
pub fn route(text: &str) -> Intent {
    let t = normalize(text);
    let has = |words: &[&str]| words.iter().any(|w| t.contains(w));
    if has(&["健康", "体調", "具合", "health", "sick"]) {
        return Intent::Health(cow_number(&t));
    }
    if has(&["発情", "estrus", "oestrus", "in heat"]) {
        return Intent::Estrus;
    }
    if has(&[
        "出荷報告",
        "出荷レポート",
        "shipment report",
        "shipping report",
    ]) || (t.contains("出荷") && has(&["報告", "レポート"]))
        || (has(&["shipment", "shipping"]) && t.contains("report"))
    {
        return Intent::Report;
    }
    Intent::Help
}

/// The ear-tag number a message names: 「14番」「14号」, "cow 14", "#14", "no. 14", "number 14".
fn cow_number(t: &str) -> Option<u32> {
    let chars: Vec<char> = t.chars().collect();
    let digits_at = |mut i: usize| -> Option<(u32, usize)> {
        while chars.get(i) == Some(&' ') {
            i += 1;
        }
        let start = i;
        while chars.get(i).is_some_and(char::is_ascii_digit) {
            i += 1;
        }
        if i == start || i - start > 6 {
            return None;
        }
        chars[start..i]
            .iter()
            .collect::<String>()
            .parse()
            .ok()
            .map(|n| (n, i))
    };
    // A number right before 番 / 号.
    for i in 0..chars.len() {
        if chars[i].is_ascii_digit()
            && (i == 0 || !chars[i - 1].is_ascii_digit())
            && let Some((n, end)) = digits_at(i)
            && matches!(chars.get(end), Some('番' | '号'))
        {
            return Some(n);
        }
    }
    // A number right after a marker word.
    for marker in ["cow", "#", "no.", "no", "number", "tag"] {
        let m: Vec<char> = marker.chars().collect();
        for i in 0..chars.len().saturating_sub(m.len() - 1) {
            if chars[i..].starts_with(&m)
                && let Some((n, _)) = digits_at(i + m.len())
            {
                return Some(n);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn japanese_requests() {
        assert_eq!(route("発情予定の牛のリストを作って"), Intent::Estrus);
        assert_eq!(
            route("14番の牛の健康状態を分析して"),
            Intent::Health(Some(14))
        );
        assert_eq!(
            route("１４番の牛の健康状態は？"),
            Intent::Health(Some(14)),
            "full-width digits"
        );
        assert_eq!(route("３号牛の体調はどう"), Intent::Health(Some(3)));
        assert_eq!(route("牛の健康状態を教えて"), Intent::Health(None));
        assert_eq!(route("今月の出荷報告書を作成して"), Intent::Report);
        assert_eq!(route("出荷のレポートをください"), Intent::Report);
        assert_eq!(route("こんにちは"), Intent::Help);
    }

    #[test]
    fn english_requests() {
        assert_eq!(route("Which cows are due for estrus?"), Intent::Estrus);
        assert_eq!(
            route("Analyse the health of cow 14"),
            Intent::Health(Some(14))
        );
        assert_eq!(route("health check #7"), Intent::Health(Some(7)));
        assert_eq!(
            route("HEALTH of cow number 120 please"),
            Intent::Health(Some(120))
        );
        assert_eq!(route("Make this month's shipment report"), Intent::Report);
        assert_eq!(route("what can you do"), Intent::Help);
    }

    #[test]
    fn languages() {
        assert_eq!(lang("14番の牛"), Lang::Ja);
        assert_eq!(lang("ｶﾀｶﾅ"), Lang::Ja);
        assert_eq!(lang("cow 14"), Lang::En);
        assert_eq!(lang(""), Lang::En);
    }

    #[test]
    fn numbers_that_are_not_cow_numbers_are_ignored() {
        assert_eq!(route("health report for 2026"), Intent::Health(None));
        assert_eq!(
            route("cow 1234567 health"),
            Intent::Health(None),
            "too long to be a tag"
        );
    }
}
