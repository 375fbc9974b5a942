//! A pending send has one owner: [`Sends`]. Each step of a send's life changes its bubble in
//! the [`ChatStore`] (the optimistic message the user sees) and its entry in the [`Outbox`]
//! (what survives a reload) together, so the two can't drift apart: a message is shown as
//! sending exactly while it is kept for sending, and leaves both when it is stored.
//!
//! Pure: the caller hands in the outbox it read from `localStorage` (none while the user is not
//! known yet) and writes it back; tested natively.

use farm_chat_protocol::{
    ConversationId,
    chat::{SendResponse, Sender},
};

use crate::{outbox::Outbox, store::ChatStore};

/// The store and the outbox, changed together; `tab` claims what it sends, at `now` (ms since
/// the epoch).
pub struct Sends<'a> {
    /// The messages on screen.
    pub store: &'a mut ChatStore,
    /// The user's outbox, once the user is known.
    pub outbox: Option<&'a mut Outbox>,
    /// This tab's id.
    pub tab: &'a str,
    /// Now, for the tab's claims.
    pub now: f64,
}

impl Sends<'_> {
    /// The user pressed send: the bubble appears, and the message is kept for a reload
    /// before its request leaves.
    pub fn begin(&mut self, conversation: &ConversationId, key: &str, text: &str) {
        self.store.begin_send(conversation, key, text);
        if let Some(outbox) = self.outbox.as_deref_mut() {
            outbox.add(key, conversation, text, self.tab, self.now);
        }
    }

    /// Attempt `attempt` leaves (the tab renews its claim). Its conversation and text, or
    /// `None` when the send is no longer pending.
    pub fn attempt(&mut self, key: &str, attempt: u32) -> Option<(ConversationId, String)> {
        let pending = self.store.send_attempt(key, attempt)?;
        if let Some(outbox) = self.outbox.as_deref_mut() {
            outbox.renew(key, self.tab, self.now);
        }
        Some(pending)
    }

    /// The server stored it: the bubble becomes the stored message, and it leaves the outbox.
    pub fn stored(&mut self, key: &str, response: &SendResponse, me: &Sender) {
        self.store.send_acknowledged(key, response, me);
        if let Some(outbox) = self.outbox.as_deref_mut() {
            outbox.remove(key);
        }
    }

    /// The server refused it: the bubble shows why (the user may retry). It stays in the
    /// outbox only when a reload may do better (`keep`: the user was signed out).
    pub fn failed(&mut self, key: &str, reason: &str, keep: bool) {
        self.store.send_failed(key, reason);
        if !keep && let Some(outbox) = self.outbox.as_deref_mut() {
            outbox.remove(key);
        }
    }

    /// After a reload or a crash: what this tab takes on from the outbox shows as sending
    /// again. Their keys, oldest first, to deliver with.
    pub fn recover(&mut self) -> Vec<String> {
        let Some(outbox) = self.outbox.as_deref_mut() else {
            return Vec::new();
        };
        let taken = outbox.take_over(self.tab, self.now);
        taken
            .into_iter()
            .map(|entry| {
                self.store
                    .begin_send(&entry.conversation, &entry.key, &entry.text);
                entry.key
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use farm_chat_protocol::{MessageId, chat::SenderKind};

    use super::*;
    use crate::store::{BubbleData, SendState};

    fn conversation() -> ConversationId {
        "c-u-farmer-support".into()
    }

    fn me() -> Sender {
        Sender {
            id: "u-farmer".into(),
            kind: SenderKind::User,
            display_name: "山田 太郎".into(),
        }
    }

    fn response(seq: u64) -> SendResponse {
        SendResponse {
            message_id: MessageId(format!("m-{seq}")),
            conversation_id: conversation(),
            seq,
            created_at: "2026-12-06T00:00:00.000Z".into(),
            task_id: None,
        }
    }

    /// What the store shows for `key`: sending (attempt), failed, stored, or nothing.
    fn shown(store: &ChatStore, key: &str) -> Option<String> {
        match store.bubble(&conversation(), key)? {
            BubbleData::Pending(p) => Some(match p.state {
                SendState::Sending { attempt } => format!("sending {attempt}"),
                SendState::Failed { reason } => format!("failed {reason}"),
            }),
            BubbleData::Stored(m) => Some(format!("stored {}", m.seq)),
        }
    }

    /// The two, changed together by `tab` at `now`.
    fn sends<'a>(
        store: &'a mut ChatStore,
        outbox: &'a mut Outbox,
        tab: &'a str,
        now: f64,
    ) -> Sends<'a> {
        Sends {
            store,
            outbox: Some(outbox),
            tab,
            now,
        }
    }

    fn kept(outbox: &Outbox) -> Vec<&str> {
        outbox.entries.iter().map(|e| e.key.as_str()).collect()
    }

    #[test]
    fn a_send_is_shown_sending_exactly_while_it_is_kept_and_leaves_both_once_stored() {
        let (mut store, mut outbox) = (ChatStore::default(), Outbox::default());
        let mut sends = sends(&mut store, &mut outbox, "tab-a", 0.0);
        sends.begin(&conversation(), "k1", "こんにちは");
        assert_eq!(
            sends.attempt("k1", 2),
            Some((conversation(), "こんにちは".to_owned()))
        );
        assert_eq!(shown(sends.store, "k1").as_deref(), Some("sending 2"));
        assert_eq!(kept(sends.outbox.as_deref().unwrap()), ["k1"]);
        sends.stored("k1", &response(1), &me());
        assert_eq!(sends.attempt("k1", 3), None, "no longer pending");
        assert_eq!(
            shown(&store, "k1").as_deref(),
            Some("stored 1"),
            "the same bubble is now the stored message"
        );
        assert_eq!(
            store
                .bubble_keys(&conversation())
                .iter()
                .map(|k| shown(&store, k))
                .collect::<Vec<_>>(),
            [Some("stored 1".to_owned())]
        );
        assert!(kept(&outbox).is_empty());
    }

    #[test]
    fn a_refusal_leaves_the_outbox_unless_a_reload_may_do_better() {
        let (mut store, mut outbox) = (ChatStore::default(), Outbox::default());
        let mut sends = sends(&mut store, &mut outbox, "tab-a", 0.0);
        sends.begin(&conversation(), "k1", "一");
        sends.begin(&conversation(), "k2", "二");
        sends.failed("k1", "too long", false);
        sends.failed("k2", "signed out", true);
        assert_eq!(shown(sends.store, "k1").as_deref(), Some("failed too long"));
        assert_eq!(kept(sends.outbox.as_deref().unwrap()), ["k2"]);
    }

    #[test]
    fn after_a_reload_what_the_tab_takes_on_shows_as_sending_with_its_key() {
        let mut outbox = Outbox::default();
        outbox.add("k1", &conversation(), "一", "tab-old", 0.0);
        outbox.add("k2", &conversation(), "二", "tab-old", 0.0);
        let mut store = ChatStore::default();
        let mut sends = sends(
            &mut store,
            &mut outbox,
            "tab-new",
            crate::outbox::LEASE_MS + 1.0,
        );
        assert_eq!(sends.recover(), ["k1", "k2"]);
        assert_eq!(shown(sends.store, "k2").as_deref(), Some("sending 1"));
        assert!(outbox.entries.iter().all(|e| e.claimed_by == "tab-new"));
    }

    #[test]
    fn before_the_user_is_known_only_the_store_changes() {
        let mut store = ChatStore::default();
        let mut sends = Sends {
            store: &mut store,
            outbox: None,
            tab: "tab-a",
            now: 0.0,
        };
        sends.begin(&conversation(), "k1", "一");
        assert!(sends.recover().is_empty());
        assert_eq!(shown(&store, "k1").as_deref(), Some("sending 1"));
    }
}
