//! The widget's list of conversations (a farmer's assistant and support chats; a support
//! user's inbox of farmers): pure Rust, so ordering, unread sums, read-state merges and typing
//! expiry are tested natively.
//!
//! - The list is the server's `GET /api/conversations` merged with what the widget learnt since:
//!   the open conversation's newest message (the preview, and the order) and unread count from
//!   the messages it holds; a `conversation.read` moves read marks, never backwards, so a list
//!   fetched before a read event can't undo it. A message in a conversation that is not open
//!   makes the widget fetch the list again.
//! - A `typing` hint lasts [`TYPING_SHOWN_MS`] unless renewed; it is never stored.

use std::collections::HashMap;

use farm_chat_protocol::{
    ConversationId, UserId,
    chat::{ConversationKind, ConversationSummary, Message},
    stream::{ConversationRead, Typing},
};

/// How long a `typing` hint stays shown without a new one (the composer reports every
/// [`TYPING_EVERY_MS`] while the user types).
pub const TYPING_SHOWN_MS: f64 = 6_000.0;
/// The composer reports typing at most this often.
pub const TYPING_EVERY_MS: f64 = 3_000.0;

/// One conversation in the list.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// What the server said, updated by the stream since.
    pub summary: ConversationSummary,
    /// The highest `seq` known to exist (from the list or the stream).
    pub latest_seq: u64,
    /// When the newest activity was (RFC 3339; `""` for none): the list's order.
    pub activity: String,
}

/// The conversation list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inbox {
    entries: Vec<Entry>,
    /// Who is typing where, and until when (ms since the epoch).
    typing: HashMap<ConversationId, (String, f64)>,
    /// More conversations exist beyond the list (`nextCursor`).
    pub next_cursor: Option<String>,
    /// The list has been loaded at least once.
    pub loaded: bool,
}

impl Inbox {
    /// Merges a page of the server's list into what the stream has told since: marks and seqs
    /// only grow, and the newer of two previews wins.
    pub fn apply_page(&mut self, page: Vec<ConversationSummary>, next_cursor: Option<String>) {
        for summary in page {
            let latest = summary.last_message.as_ref().map_or(0, |m| m.seq);
            let activity = summary
                .last_message
                .as_ref()
                .map(|m| m.created_at.clone())
                .unwrap_or_default();
            match self.entries.iter_mut().find(|e| e.summary.id == summary.id) {
                Some(entry) => {
                    let mut merged = summary;
                    merged.read_up_to = merged.read_up_to.max(entry.summary.read_up_to);
                    merged.others_read_up_to = merged
                        .others_read_up_to
                        .max(entry.summary.others_read_up_to);
                    if entry.latest_seq > latest {
                        // The stream knows of newer messages than this answer did.
                        merged.last_message = entry.summary.last_message.take();
                        merged.unread = merged.unread.max(entry.summary.unread);
                    } else {
                        entry.latest_seq = latest;
                        entry.activity = activity;
                    }
                    if merged.read_up_to >= entry.latest_seq {
                        merged.unread = 0;
                    }
                    entry.summary = merged;
                }
                None => self.entries.push(Entry {
                    summary,
                    latest_seq: latest,
                    activity,
                }),
            }
        }
        self.next_cursor = next_cursor;
        self.loaded = true;
        self.sort();
    }

    fn sort(&mut self) {
        self.entries.sort_by(|a, b| {
            b.activity
                .cmp(&a.activity)
                .then_with(|| a.summary.id.cmp(&b.summary.id))
        });
    }

    /// The conversations, newest activity first.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// One conversation.
    pub fn get(&self, id: &ConversationId) -> Option<&Entry> {
        self.entries.iter().find(|e| &e.summary.id == id)
    }

    /// The first conversation of a kind (newest activity first).
    pub fn first_of(&self, kind: ConversationKind) -> Option<&Entry> {
        self.entries.iter().find(|e| e.summary.kind == kind)
    }

    /// The launcher's badge: every conversation's unread messages.
    pub fn total_unread(&self) -> u32 {
        self.entries.iter().map(|e| e.summary.unread).sum()
    }

    /// The unread count of a conversation whose messages the widget holds (the open one):
    /// counted from them, exactly. Returns whether it changed.
    pub fn set_unread(&mut self, conversation: &ConversationId, unread: u32) -> bool {
        match self
            .entries
            .iter_mut()
            .find(|e| &e.summary.id == conversation)
        {
            Some(entry) if entry.summary.unread != unread => {
                entry.summary.unread = unread;
                true
            }
            _ => false,
        }
    }

    /// The newest message, once the widget holds it: the list's preview.
    pub fn preview(&mut self, message: &Message) {
        if let Some(entry) = self
            .entries
            .iter_mut()
            .find(|e| e.summary.id == message.conversation_id)
            && entry
                .summary
                .last_message
                .as_ref()
                .is_none_or(|m| m.seq < message.seq)
        {
            entry.latest_seq = entry.latest_seq.max(message.seq);
            entry.activity = message.created_at.clone();
            entry.summary.last_message = Some(message.clone());
            self.sort();
        }
    }

    /// A `conversation.read`: `me` reading (in this tab or another) clears unread up to the
    /// mark; anyone else reading moves the mark that shows `既読` on my messages.
    pub fn read(&mut self, event: &ConversationRead, me: &UserId) {
        let Some(entry) = self
            .entries
            .iter_mut()
            .find(|e| e.summary.id == event.conversation_id)
        else {
            return;
        };
        if &event.user_id == me {
            self.mark_mine(&event.conversation_id.clone(), event.seq);
        } else {
            entry.summary.others_read_up_to = entry.summary.others_read_up_to.max(event.seq);
        }
    }

    /// The user has read `conversation` up to `seq` (said by this widget, or by the server).
    pub fn mark_mine(&mut self, conversation: &ConversationId, seq: u64) {
        if let Some(entry) = self
            .entries
            .iter_mut()
            .find(|e| &e.summary.id == conversation)
        {
            if seq <= entry.summary.read_up_to {
                return;
            }
            entry.summary.read_up_to = seq;
            let left = entry.latest_seq.saturating_sub(seq);
            entry.summary.unread = entry.summary.unread.min(left as u32);
        }
    }

    /// Whether the user has seen everything up to `seq` (no read call needed).
    pub fn read_up_to(&self, conversation: &ConversationId) -> u64 {
        self.get(conversation).map_or(0, |e| e.summary.read_up_to)
    }

    /// A `typing` hint received at `now_ms`.
    pub fn typing(&mut self, event: &Typing, now_ms: f64) {
        self.typing.insert(
            event.conversation_id.clone(),
            (event.display_name.clone(), now_ms + TYPING_SHOWN_MS),
        );
    }

    /// A message from someone in `conversation` arrived: their typing is over.
    pub fn stop_typing(&mut self, conversation: &ConversationId) {
        self.typing.remove(conversation);
    }

    /// Who is typing in `conversation` at `now_ms`, if anyone.
    pub fn typing_in(&self, conversation: &ConversationId, now_ms: f64) -> Option<&str> {
        self.typing
            .get(conversation)
            .filter(|(_, until)| *until > now_ms)
            .map(|(name, _)| name.as_str())
    }

    /// Forgets hints that ran out by `now_ms`; returns whether any did (the view then redraws).
    pub fn expire_typing(&mut self, now_ms: f64) -> bool {
        let before = self.typing.len();
        self.typing.retain(|_, (_, until)| *until > now_ms);
        before != self.typing.len()
    }
}

/// The read marks a widget still has to tell the server, coalesced: however many messages
/// arrive while one call is on its way, the next call carries only the newest mark of each
/// conversation (a busy conversation must not turn into a call per message).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadQueue {
    asked: HashMap<ConversationId, u64>,
    told: HashMap<ConversationId, u64>,
}

impl ReadQueue {
    /// The user has seen `conversation` up to `seq`; whether that is news.
    pub fn ask(&mut self, conversation: &ConversationId, seq: u64) -> bool {
        let asked = self.asked.entry(conversation.clone()).or_default();
        if seq <= *asked {
            return false;
        }
        *asked = seq;
        true
    }

    /// The next mark to send, if any is ahead of what the server was told.
    pub fn next(&self) -> Option<(ConversationId, u64)> {
        self.asked
            .iter()
            .find(|(c, seq)| self.told.get(*c).is_none_or(|told| told < seq))
            .map(|(c, seq)| (c.clone(), *seq))
    }

    /// The server has `seq` for `conversation` (or it was given up on).
    pub fn told(&mut self, conversation: &ConversationId, seq: u64) {
        let told = self.told.entry(conversation.clone()).or_default();
        *told = (*told).max(seq);
    }
}

/// Whether the composer should report typing now: something typed, a human conversation, and
/// the last report at least [`TYPING_EVERY_MS`] ago.
pub fn should_report_typing(
    kind: ConversationKind,
    text: &str,
    last_report_ms: Option<f64>,
    now_ms: f64,
) -> bool {
    kind == ConversationKind::Support
        && !text.trim().is_empty()
        && last_report_ms.is_none_or(|at| now_ms - at >= TYPING_EVERY_MS)
}

#[cfg(test)]
mod tests {
    use farm_chat_protocol::chat::{Sender, SenderKind};

    use super::*;

    fn message(conversation: &str, seq: u64, at: &str, from: &str) -> Message {
        Message {
            message_id: farm_chat_protocol::MessageId(format!("m-{conversation}-{seq}")),
            conversation_id: conversation.into(),
            seq,
            sender: Sender {
                id: from.into(),
                kind: SenderKind::User,
                display_name: from.into(),
            },
            text: format!("text {seq}"),
            created_at: at.into(),
            task: None,
            idempotency_key: None,
        }
    }

    fn summary(id: &str, last: Option<Message>, unread: u32, read: u64) -> ConversationSummary {
        ConversationSummary {
            id: id.into(),
            kind: if id.ends_with("assistant") {
                ConversationKind::Assistant
            } else {
                ConversationKind::Support
            },
            title: id.into(),
            last_message: last,
            unread,
            owner_name: "山田 太郎".into(),
            read_up_to: read,
            others_read_up_to: 0,
        }
    }

    fn ids(inbox: &Inbox) -> Vec<&str> {
        inbox
            .entries()
            .iter()
            .map(|e| e.summary.id.as_str())
            .collect()
    }

    fn list() -> Inbox {
        let mut inbox = Inbox::default();
        inbox.apply_page(
            vec![
                summary(
                    "c-a-assistant",
                    Some(message("c-a-assistant", 4, "2026-12-01T00:00:01Z", "a")),
                    0,
                    4,
                ),
                summary(
                    "c-a-support",
                    Some(message("c-a-support", 2, "2026-12-01T00:00:05Z", "s")),
                    2,
                    0,
                ),
                summary("c-b-support", None, 0, 0),
            ],
            None,
        );
        inbox
    }

    #[test]
    fn the_list_runs_newest_activity_first_and_sums_unread() {
        let inbox = list();
        assert_eq!(ids(&inbox), ["c-a-support", "c-a-assistant", "c-b-support"]);
        assert_eq!(inbox.total_unread(), 2);
        assert_eq!(
            inbox
                .first_of(ConversationKind::Assistant)
                .unwrap()
                .summary
                .id
                .as_str(),
            "c-a-assistant"
        );
    }

    #[test]
    fn the_open_conversation_s_newest_message_moves_it_up_and_its_count_is_exact() {
        let mut inbox = list();
        let b = ConversationId::from("c-b-support");
        inbox.preview(&message("c-b-support", 1, "2026-12-01T00:01:00Z", "s"));
        assert_eq!(ids(&inbox)[0], "c-b-support");
        assert!(inbox.set_unread(&b, 1));
        assert!(!inbox.set_unread(&b, 1), "no change, no redraw");
        assert_eq!(inbox.total_unread(), 3);
        // An older preview (a late history page) changes nothing.
        inbox.preview(&message("c-b-support", 0, "2026-11-01T00:00:00Z", "s"));
        assert_eq!(
            inbox
                .get(&b)
                .unwrap()
                .summary
                .last_message
                .as_ref()
                .unwrap()
                .seq,
            1
        );
        assert!(!inbox.set_unread(&"c-nowhere".into(), 4));
    }

    #[test]
    fn read_marks_only_grow_and_a_stale_list_cannot_undo_them() {
        let mut inbox = list();
        let a = ConversationId::from("c-a-support");
        let me = UserId::from("u-a");
        inbox.read(
            &ConversationRead {
                conversation_id: a.clone(),
                user_id: me.clone(),
                seq: 2,
            },
            &me,
        );
        assert_eq!(inbox.get(&a).unwrap().summary.unread, 0);
        inbox.read(
            &ConversationRead {
                conversation_id: a.clone(),
                user_id: "u-s".into(),
                seq: 1,
            },
            &me,
        );
        inbox.read(
            &ConversationRead {
                conversation_id: a.clone(),
                user_id: "u-s".into(),
                seq: 0,
            },
            &me,
        );
        assert_eq!(
            inbox.get(&a).unwrap().summary.others_read_up_to,
            1,
            "never backwards"
        );
        // A list answered before the read arrives late.
        inbox.apply_page(
            vec![summary(
                "c-a-support",
                Some(message("c-a-support", 2, "2026-12-01T00:00:05Z", "s")),
                2,
                0,
            )],
            None,
        );
        let entry = inbox.get(&a).unwrap();
        assert_eq!((entry.summary.unread, entry.summary.read_up_to), (0, 2));
        assert_eq!(entry.summary.others_read_up_to, 1);
    }

    #[test]
    fn a_list_older_than_what_the_widget_holds_keeps_the_newer_news() {
        let mut inbox = list();
        let a = ConversationId::from("c-a-support");
        inbox.preview(&message("c-a-support", 3, "2026-12-01T00:09:00Z", "s"));
        inbox.set_unread(&a, 3);
        inbox.apply_page(
            vec![summary(
                "c-a-support",
                Some(message("c-a-support", 2, "2026-12-01T00:00:05Z", "s")),
                2,
                0,
            )],
            None,
        );
        let entry = inbox.get(&a).unwrap();
        assert_eq!((entry.summary.unread, entry.latest_seq), (3, 3));
        assert_eq!(entry.summary.last_message.as_ref().unwrap().seq, 3);
        assert_eq!(ids(&inbox)[0], "c-a-support");
        inbox.mark_mine(&a, 2);
        assert_eq!(
            inbox.get(&a).unwrap().summary.unread,
            1,
            "one left after the mark"
        );
    }

    #[test]
    fn typing_shows_for_a_while_and_ends_with_a_message() {
        let mut inbox = list();
        let a = ConversationId::from("c-a-support");
        let hint = Typing {
            conversation_id: a.clone(),
            user_id: "u-s".into(),
            display_name: "サポート 佐藤".into(),
        };
        inbox.typing(&hint, 1_000.0);
        assert_eq!(inbox.typing_in(&a, 2_000.0), Some("サポート 佐藤"));
        assert_eq!(inbox.typing_in(&a, 1_000.0 + TYPING_SHOWN_MS), None);
        assert!(!inbox.expire_typing(2_000.0));
        assert!(inbox.expire_typing(1_000.0 + TYPING_SHOWN_MS));
        inbox.typing(&hint, 10_000.0);
        inbox.stop_typing(&a);
        assert_eq!(inbox.typing_in(&a, 10_001.0), None);
    }

    #[test]
    fn read_marks_coalesce_into_one_call_per_conversation() {
        let mut queue = ReadQueue::default();
        let a = ConversationId::from("c-a");
        assert!(queue.ask(&a, 1));
        assert_eq!(queue.next(), Some((a.clone(), 1)));
        // While that call is out, three more messages are seen: one call for the newest.
        for seq in 2..=4 {
            assert!(queue.ask(&a, seq));
        }
        assert!(!queue.ask(&a, 3), "an older mark is no news");
        queue.told(&a, 1);
        assert_eq!(queue.next(), Some((a.clone(), 4)));
        queue.told(&a, 4);
        assert_eq!(queue.next(), None);
    }

    #[test]
    fn typing_is_reported_in_human_conversations_every_few_seconds_at_most() {
        let support = ConversationKind::Support;
        assert!(should_report_typing(support, "こ", None, 0.0));
        assert!(!should_report_typing(support, "  ", None, 0.0));
        assert!(!should_report_typing(
            ConversationKind::Assistant,
            "x",
            None,
            0.0
        ));
        assert!(!should_report_typing(support, "x", Some(1_000.0), 2_000.0));
        assert!(should_report_typing(
            support,
            "x",
            Some(1_000.0),
            1_000.0 + TYPING_EVERY_MS
        ));
    }
}
