//! Locales and strings. Japanese is the default: farmers type Japanese first.

/// The widget's language.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Locale {
    /// 日本語 (default).
    #[default]
    Ja,
    /// English.
    En,
}

/// Every user-visible string, by meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Text {
    /// The launcher's label while the panel is closed.
    OpenChat,
    /// The launcher's label while the panel is open.
    CloseChat,
    /// The panel's heading.
    ChatTitle,
    /// Waiting for the server's health answer.
    ServerChecking,
    /// The server answered.
    ServerOk,
    /// The server did not answer.
    ServerUnreachable,
}

impl Text {
    /// All strings, for checks that none is missing in any locale.
    pub const ALL: [Text; 6] = [
        Text::OpenChat,
        Text::CloseChat,
        Text::ChatTitle,
        Text::ServerChecking,
        Text::ServerOk,
        Text::ServerUnreachable,
    ];
}

impl Locale {
    /// The locale for a BCP 47 tag such as `en-US` or `ja`. Anything that is not English falls
    /// back to Japanese, the product's first language.
    pub fn from_tag(tag: &str) -> Self {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or("");
        if primary.eq_ignore_ascii_case("en") {
            Self::En
        } else {
            Self::Ja
        }
    }

    /// The BCP 47 tag, for `lang` attributes and `Intl`.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Ja => "ja",
            Self::En => "en",
        }
    }

    /// The string for `text` in this locale.
    pub fn text(self, text: Text) -> &'static str {
        use Text::*;
        match (self, text) {
            (Self::Ja, OpenChat) => "チャットを開く",
            (Self::En, OpenChat) => "Open chat",
            (Self::Ja, CloseChat) => "チャットを閉じる",
            (Self::En, CloseChat) => "Close chat",
            (Self::Ja, ChatTitle) => "牧場アシスタント",
            (Self::En, ChatTitle) => "Farm assistant",
            (Self::Ja, ServerChecking) => "サーバーに接続しています…",
            (Self::En, ServerChecking) => "Connecting to the server…",
            (Self::Ja, ServerOk) => "サーバーに接続しました",
            (Self::En, ServerOk) => "Connected to the server",
            (Self::Ja, ServerUnreachable) => "サーバーに接続できません",
            (Self::En, ServerUnreachable) => "Cannot reach the server",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_pick_the_locale_and_default_to_japanese() {
        assert_eq!(Locale::from_tag("en"), Locale::En);
        assert_eq!(Locale::from_tag("en-US"), Locale::En);
        assert_eq!(Locale::from_tag("EN_gb"), Locale::En);
        assert_eq!(Locale::from_tag("ja-JP"), Locale::Ja);
        assert_eq!(Locale::from_tag(""), Locale::Ja);
        assert_eq!(Locale::from_tag("fr"), Locale::Ja);
        assert_eq!(Locale::from_tag("english"), Locale::Ja);
    }

    #[test]
    fn every_string_exists_in_both_languages_and_differs() {
        for text in Text::ALL {
            let (ja, en) = (Locale::Ja.text(text), Locale::En.text(text));
            assert!(!ja.is_empty() && !en.is_empty(), "{text:?}");
            assert_ne!(ja, en, "{text:?} is not translated");
            assert!(!ja.is_ascii(), "{text:?}: the ja string is not Japanese");
        }
    }
}
