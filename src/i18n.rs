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
    /// The support chat's heading.
    SupportTitle,
    /// Waiting for the server's health answer.
    ServerChecking,
    /// The server answered.
    ServerOk,
    /// The server did not answer.
    ServerUnreachable,
    /// The stream is opening.
    Connecting,
    /// The stream is live.
    Connected,
    /// The browser is offline.
    Offline,
    /// The composer waits for its conversation before it can send.
    ComposerWaiting,
    /// The session ended.
    SignedOut,
    /// Closed on purpose.
    Closed,
    /// History is loading.
    Loading,
    /// History could not be loaded.
    LoadFailed,
    /// No messages yet.
    Empty,
    /// Button: page older messages in.
    LoadOlder,
    /// The composer's placeholder.
    Placeholder,
    /// The composer's accessible name.
    MessageLabel,
    /// The send button.
    Send,
    /// A bubble on its way.
    Sending,
    /// A bubble that was not sent.
    SendFailed,
    /// Retry a failed send.
    Retry,
    /// Cancel a running task.
    Stop,
    /// Copy an answer's text.
    Copy,
    /// The answer's text was copied.
    Copied,
    /// The assistant's offer: open the support chat with the question in it.
    AskSupport,
    /// The way to a person, always on the assistant's screen.
    TalkToPerson,
    /// The progress bar's name.
    Progress,
    /// Download the cow list.
    DownloadCsv,
    /// Open the report PDF.
    OpenPdf,
    /// Cow table: ear tag.
    Tag,
    /// Cow table: name.
    Name,
    /// Cow table: last insemination.
    LastInsemination,
    /// Cow table: days since.
    DaysSince,
    /// Cow table: expected estrus.
    ExpectedDate,
    /// Health: 30-day milk average.
    MilkAverage,
    /// Health: baseline.
    Baseline,
    /// Health: activity.
    Activity,
    /// Health: risk.
    Risk,
    /// Risk level low.
    RiskLow,
    /// Risk level medium.
    RiskMedium,
    /// Risk level high.
    RiskHigh,
    /// Health: findings.
    Findings,
    /// Health: recommended actions.
    Actions,
    /// Report: period.
    Period,
    /// Report: head shipped.
    HeadShipped,
    /// Report: total kg.
    TotalShipped,
    /// Help: examples.
    TryAsking,
    /// The user's own bubbles.
    You,
    /// The unread badge's accessible name (after the count).
    Unread,
    /// The conversation list's name.
    Conversations,
    /// A support user's list of farmers' chats.
    Inbox,
    /// Button: from a conversation back to the list.
    BackToList,
    /// Button: page more conversations in.
    MoreConversations,
    /// No conversations to list.
    NoConversations,
    /// Someone is typing (after their name).
    IsTyping,
    /// My message was read by the other side.
    ReadReceipt,
    /// Button: widen the panel (desktop).
    Widen,
    /// Button: back to the normal width.
    Narrow,
    /// The live connection, when all is well (for screen readers; a dot on screen).
    Live,
    /// The panel's heading: the widget itself (the assistant is one of its conversations).
    PanelTitle,
}

impl Text {
    /// All strings, for checks that none is missing in any locale.
    pub const ALL: [Text; 62] = [
        Text::OpenChat,
        Text::CloseChat,
        Text::ChatTitle,
        Text::SupportTitle,
        Text::ServerChecking,
        Text::ServerOk,
        Text::ServerUnreachable,
        Text::Connecting,
        Text::Connected,
        Text::Offline,
        Text::ComposerWaiting,
        Text::SignedOut,
        Text::Closed,
        Text::Loading,
        Text::LoadFailed,
        Text::Empty,
        Text::LoadOlder,
        Text::Placeholder,
        Text::MessageLabel,
        Text::Send,
        Text::Sending,
        Text::SendFailed,
        Text::Retry,
        Text::Stop,
        Text::Copy,
        Text::Copied,
        Text::AskSupport,
        Text::TalkToPerson,
        Text::Progress,
        Text::DownloadCsv,
        Text::OpenPdf,
        Text::Tag,
        Text::Name,
        Text::LastInsemination,
        Text::DaysSince,
        Text::ExpectedDate,
        Text::MilkAverage,
        Text::Baseline,
        Text::Activity,
        Text::Risk,
        Text::RiskLow,
        Text::RiskMedium,
        Text::RiskHigh,
        Text::Findings,
        Text::Actions,
        Text::Period,
        Text::HeadShipped,
        Text::TotalShipped,
        Text::TryAsking,
        Text::You,
        Text::Unread,
        Text::Conversations,
        Text::Inbox,
        Text::BackToList,
        Text::MoreConversations,
        Text::NoConversations,
        Text::IsTyping,
        Text::ReadReceipt,
        Text::Widen,
        Text::Narrow,
        Text::Live,
        Text::PanelTitle,
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
            (Self::Ja, SupportTitle) => "サポート",
            (Self::En, SupportTitle) => "Support",
            (Self::Ja, ServerChecking) => "サーバーに接続しています…",
            (Self::En, ServerChecking) => "Connecting to the server…",
            (Self::Ja, ServerOk) => "サーバーに接続しました",
            (Self::En, ServerOk) => "Connected to the server",
            (Self::Ja, ServerUnreachable) => "サーバーに接続できません",
            (Self::En, ServerUnreachable) => "Cannot reach the server",
            (Self::Ja, Connecting) => "接続中…",
            (Self::En, Connecting) => "Connecting…",
            (Self::Ja, Connected) => "接続済み",
            (Self::En, Connected) => "Connected",
            (Self::Ja, Offline) => "オフラインです。接続が戻ると再開します",
            (Self::En, Offline) => "You are offline. The chat resumes when you are back",
            (Self::Ja, SignedOut) => "サインインしてください",
            (Self::En, SignedOut) => "Please sign in",
            (Self::Ja, Closed) => "切断しました",
            (Self::En, Closed) => "Disconnected",
            (Self::Ja, Loading) => "読み込み中…",
            (Self::En, Loading) => "Loading…",
            (Self::Ja, LoadFailed) => "読み込めませんでした",
            (Self::En, LoadFailed) => "Could not load the chat",
            (Self::Ja, Empty) => "まだメッセージはありません",
            (Self::En, Empty) => "No messages yet",
            (Self::Ja, LoadOlder) => "以前のメッセージを読み込む",
            (Self::En, LoadOlder) => "Load earlier messages",
            (Self::Ja, ComposerWaiting) => "会話を読み込んでいます。読み込めたら送信できます",
            (Self::En, ComposerWaiting) => "Loading the conversation. You can send once it is here",
            (Self::Ja, Placeholder) => "メッセージを入力（Enterで送信、Shift+Enterで改行）",
            (Self::En, Placeholder) => "Type a message (Enter sends, Shift+Enter adds a line)",
            (Self::Ja, MessageLabel) => "メッセージ",
            (Self::En, MessageLabel) => "Message",
            (Self::Ja, Send) => "送信",
            (Self::En, Send) => "Send",
            (Self::Ja, Sending) => "送信中…",
            (Self::En, Sending) => "Sending…",
            (Self::Ja, SendFailed) => "送信できませんでした",
            (Self::En, SendFailed) => "Not sent",
            (Self::Ja, Retry) => "再送",
            (Self::En, Retry) => "Retry",
            (Self::Ja, Stop) => "停止",
            (Self::En, Stop) => "Stop",
            (Self::Ja, Copy) => "コピー",
            (Self::En, Copy) => "Copy",
            (Self::Ja, Copied) => "コピーしました",
            (Self::En, Copied) => "Copied",
            (Self::Ja, AskSupport) => "サポートに相談する（送信前に確認できます）",
            (Self::En, AskSupport) => "Ask support (you check it before it is sent)",
            (Self::Ja, TalkToPerson) => "担当者と話す",
            (Self::En, TalkToPerson) => "Talk to a person",
            (Self::Ja, Progress) => "進捗",
            (Self::En, Progress) => "Progress",
            (Self::Ja, DownloadCsv) => "CSVをダウンロード",
            (Self::En, DownloadCsv) => "Download CSV",
            (Self::Ja, OpenPdf) => "PDFを開く",
            (Self::En, OpenPdf) => "Open the PDF",
            (Self::Ja, Tag) => "耳標",
            (Self::En, Tag) => "Tag",
            (Self::Ja, Name) => "名前",
            (Self::En, Name) => "Name",
            (Self::Ja, LastInsemination) => "最終種付日",
            (Self::En, LastInsemination) => "Last insemination",
            (Self::Ja, DaysSince) => "経過日数",
            (Self::En, DaysSince) => "Days since",
            (Self::Ja, ExpectedDate) => "発情予定日",
            (Self::En, ExpectedDate) => "Expected estrus",
            (Self::Ja, MilkAverage) => "乳量（30日平均）",
            (Self::En, MilkAverage) => "Milk (30-day average)",
            (Self::Ja, Baseline) => "基準値",
            (Self::En, Baseline) => "Baseline",
            (Self::Ja, Activity) => "活動量",
            (Self::En, Activity) => "Activity",
            (Self::Ja, Risk) => "健康リスク",
            (Self::En, Risk) => "Health risk",
            (Self::Ja, RiskLow) => "低",
            (Self::En, RiskLow) => "Low",
            (Self::Ja, RiskMedium) => "中",
            (Self::En, RiskMedium) => "Medium",
            (Self::Ja, RiskHigh) => "高",
            (Self::En, RiskHigh) => "High",
            (Self::Ja, Findings) => "所見",
            (Self::En, Findings) => "Findings",
            (Self::Ja, Actions) => "推奨アクション",
            (Self::En, Actions) => "Recommended actions",
            (Self::Ja, Period) => "対象期間",
            (Self::En, Period) => "Period",
            (Self::Ja, HeadShipped) => "出荷頭数",
            (Self::En, HeadShipped) => "Head shipped",
            (Self::Ja, TotalShipped) => "総出荷量",
            (Self::En, TotalShipped) => "Total shipped",
            (Self::Ja, TryAsking) => "こんなふうに聞いてみてください",
            (Self::En, TryAsking) => "Try asking",
            (Self::Ja, You) => "あなた",
            (Self::En, You) => "You",
            (Self::Ja, Unread) => "件の未読メッセージ",
            (Self::En, Unread) => "unread messages",
            (Self::Ja, Conversations) => "会話の一覧",
            (Self::En, Conversations) => "Conversations",
            (Self::Ja, Inbox) => "問い合わせ一覧",
            (Self::En, Inbox) => "Inbox",
            (Self::Ja, BackToList) => "一覧に戻る",
            (Self::En, BackToList) => "Back to the list",
            (Self::Ja, MoreConversations) => "さらに表示",
            (Self::En, MoreConversations) => "Show more",
            (Self::Ja, NoConversations) => "まだ会話はありません",
            (Self::En, NoConversations) => "No conversations yet",
            (Self::Ja, IsTyping) => "入力中…",
            (Self::En, IsTyping) => "is typing…",
            (Self::Ja, ReadReceipt) => "既読",
            (Self::En, ReadReceipt) => "Read",
            (Self::Ja, Widen) => "広げる",
            (Self::En, Widen) => "Widen",
            (Self::Ja, Narrow) => "元の幅に戻す",
            (Self::En, Narrow) => "Narrow",
            (Self::Ja, Live) => "リアルタイム接続中",
            (Self::En, Live) => "Live",
            (Self::Ja, PanelTitle) => "牧場チャット",
            (Self::En, PanelTitle) => "Farm chat",
        }
    }

    /// "Reconnecting (attempt n, next try in s)".
    pub fn reconnecting(self, attempt: u32, wait: std::time::Duration) -> String {
        // Tenths of a second, rounded, by integer arithmetic.
        let tenths = (wait.as_millis() as u64 + 50) / 100;
        let seconds = format!("{}.{}", tenths / 10, tenths % 10);
        match self {
            Self::Ja => format!("再接続中（{attempt}回目、{seconds}秒後に再試行）"),
            Self::En => format!("Reconnecting (attempt {attempt}, next try in {seconds} s)"),
        }
    }

    /// A bubble retrying its send.
    pub fn retrying(self, attempt: u32) -> String {
        match self {
            Self::Ja => format!("送信中…（再試行 {attempt}回目）"),
            Self::En => format!("Sending… (retry {attempt})"),
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

    #[test]
    fn the_reconnect_wait_is_shown_in_tenths_of_a_second() {
        use std::time::Duration;
        assert_eq!(
            Locale::En.reconnecting(2, Duration::from_millis(149)),
            "Reconnecting (attempt 2, next try in 0.1 s)"
        );
        assert_eq!(
            Locale::Ja.reconnecting(1, Duration::from_millis(1950)),
            "再接続中（1回目、2.0秒後に再試行）"
        );
        assert!(
            Locale::En
                .reconnecting(9, Duration::from_secs(30))
                .contains("in 30.0 s")
        );
    }
}
