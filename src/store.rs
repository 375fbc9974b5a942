//! The widget's message store: pure Rust, so its promises are tested natively.
//!
//! - Messages are merged by `messageId` and ordered by `seq`: duplicates, reordering and
//!   replays change nothing.
//! - Sending is optimistic: the bubble appears at once under the client's idempotency key and
//!   is replaced *in place* (same key) by the stored message, whichever of the send's answer,
//!   the history fetch after `message.created`, or a retry arrives first: one bubble, never two.
//! - Task parts are keyed by `(taskId, part)`: a part received twice renders once, a later
//!   progress replaces an earlier one and never goes backwards, and parts that arrive before
//!   their reply message is known wait for it.
//! - Memory is bounded: past `limit` messages the oldest are dropped (`has_older` then says
//!   that scrolling up pages them back in).

use std::collections::{BTreeMap, HashMap};

use farm_chat_protocol::{
    ConversationId, MessageId, TaskId,
    chat::{HistoryPage, Message, SendResponse, Sender},
    stream::{MessageCreated, TaskDone, TaskPartEvent},
    task::{PartBody, TaskPart, TaskSnapshot, TaskState, TextApplied},
};

/// Where an optimistic send stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendState {
    /// On its way (attempt 1, 2, … with the same key).
    Sending {
        /// Which attempt.
        attempt: u32,
    },
    /// Given up for now: the user can retry (same key, so it is still stored only once).
    Failed {
        /// Why, for the bubble.
        reason: String,
    },
}

/// A message the user sent that the server has not confirmed yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The client's idempotency key (a UUID): also the bubble's key.
    pub key: String,
    /// The text as sent.
    pub text: String,
    /// Where it stands.
    pub state: SendState,
}

/// One bubble of a conversation, in display order.
#[derive(Clone, Debug, PartialEq)]
pub enum Bubble<'a> {
    /// A stored message.
    Stored(&'a Message),
    /// An optimistic send.
    Pending(&'a Pending),
}

impl Bubble<'_> {
    /// The bubble's stable key: the idempotency key for the user's own messages (so the
    /// optimistic bubble and the stored message are the same bubble), else the message id.
    pub fn key(&self) -> &str {
        match self {
            Self::Stored(m) => m
                .idempotency_key
                .as_deref()
                .unwrap_or(m.message_id.as_str()),
            Self::Pending(p) => &p.key,
        }
    }
}

/// Which way a history page was fetched, which decides what its `hasMore` means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageKind {
    /// The newest messages (no cursor).
    Latest,
    /// `before`: scrolling up.
    Older,
    /// `after`: catching up after a reconnect or a `message.created`.
    Newer,
}

/// An owned bubble, for rendering.
#[derive(Clone, Debug, PartialEq)]
// On wasm32 the variants are close enough in size that the lint does not fire.
#[cfg_attr(
    not(target_arch = "wasm32"),
    expect(
        clippy::large_enum_variant,
        reason = "short-lived render copies; boxing buys nothing"
    )
)]
pub enum BubbleData {
    /// A stored message.
    Stored(Message),
    /// An optimistic send.
    Pending(Pending),
}

/// One conversation's state.
#[derive(Clone, Debug, Default)]
pub struct Conversation {
    messages: BTreeMap<u64, Message>,
    seq_of: HashMap<MessageId, u64>,
    /// The `seq` of each held message that carries an idempotency key (its bubble key).
    seq_of_key: HashMap<String, u64>,
    /// Each held message's revision: changes whenever the message (or its task) does, so a
    /// view can tell in O(1) whether its bubble needs a new copy.
    rev_of: HashMap<u64, u64>,
    /// Changes whenever the set or order of bubble keys does.
    layout: u64,
    pending: Vec<Pending>,
    /// Older messages exist than the first one held.
    pub has_older: bool,
    /// The highest `seq` the server said exists.
    pub known_max_seq: u64,
}

impl Conversation {
    /// The highest `seq` up to which every message from the first held one is held: history
    /// `after` this fills any gap.
    pub fn contiguous_seq(&self) -> u64 {
        let mut seqs = self.messages.keys();
        let Some(&first) = seqs.next() else { return 0 };
        let mut top = first;
        for &seq in seqs {
            if seq != top + 1 {
                break;
            }
            top = seq;
        }
        top
    }
}

/// All conversations of one widget.
#[derive(Clone, Debug)]
pub struct ChatStore {
    conversations: HashMap<ConversationId, Conversation>,
    /// Task parts (and ends) for reply messages not held yet.
    early: HashMap<MessageId, (Vec<TaskPart>, Option<TaskState>)>,
    limit: usize,
    /// The last revision handed out (see `Conversation::rev_of`).
    rev: u64,
}

impl Default for ChatStore {
    fn default() -> Self {
        Self::new(500)
    }
}

/// Merges one part into a snapshot: a part is replaced by a later one with the same number,
/// except that progress never goes backwards (a replayed or stale update is ignored) and text
/// grows by byte offset (see [`TaskSnapshot::apply_text`]). `false`: a text delta starts
/// beyond the text held, and the task must be fetched again.
pub fn merge_part(snapshot: &mut TaskSnapshot, part: TaskPart) -> bool {
    if let PartBody::Text { offset, text } = &part.body {
        return snapshot.apply_text(part.part, *offset, text) != TextApplied::Gap;
    }
    if let PartBody::Progress { progress: new, .. } = &part.body {
        let older = snapshot.parts.iter().any(|p| {
            p.part == part.part && matches!(&p.body, PartBody::Progress { progress: old, .. } if old.current > new.current)
        });
        if older {
            return true;
        }
    }
    snapshot.upsert_part(part);
    true
}

fn merge_snapshot(held: &mut TaskSnapshot, incoming: TaskSnapshot) {
    let state = if held.state.is_final() {
        held.state
    } else {
        incoming.state
    };
    for part in incoming.parts {
        merge_part(held, part);
    }
    held.state = state;
    held.updated_at = held.updated_at.clone().max(incoming.updated_at);
}

impl ChatStore {
    /// A store keeping at most `limit` messages per conversation.
    pub fn new(limit: usize) -> Self {
        Self {
            conversations: HashMap::new(),
            early: HashMap::new(),
            limit: limit.max(1),
            rev: 0,
        }
    }

    /// What changes whenever the conversation's bubble keys (their set or order) do.
    pub fn layout_rev(&self, id: &ConversationId) -> u64 {
        self.conversations.get(id).map_or(0, |c| c.layout)
    }

    /// What changes whenever the bubble with this key does (0: no such bubble). Cheap, so
    /// every bubble can check it on every store change and copy its data only when it moved.
    pub fn bubble_rev(&self, id: &ConversationId, key: &str) -> u64 {
        let Some(c) = self.conversations.get(id) else {
            return 0;
        };
        if let Some(p) = c.pending.iter().find(|p| p.key == key) {
            // Pending bubbles change only by state: a value below every stored revision.
            return match &p.state {
                SendState::Sending { attempt } => u64::from(*attempt),
                SendState::Failed { .. } => u64::from(u32::MAX),
            };
        }
        let seq = c
            .seq_of_key
            .get(key)
            .or_else(|| c.seq_of.get(&MessageId(key.to_owned())));
        seq.and_then(|seq| c.rev_of.get(seq)).copied().unwrap_or(0)
    }

    /// The newest revision handed out: [`Self::changed_since`] with it lists only what
    /// changes after now.
    pub fn rev(&self) -> u64 {
        (1 << 32) + self.rev
    }

    /// The keys of the bubbles of `id` that may have changed after revision `after`: the
    /// stored messages whose revision is newer, and every pending send (they change by state,
    /// and are few). A view checks only these, not every bubble it shows.
    pub fn changed_since(&self, id: &ConversationId, after: u64) -> Vec<&str> {
        let Some(c) = self.conversations.get(id) else {
            return Vec::new();
        };
        c.rev_of
            .iter()
            .filter(|&(_, &rev)| rev > after)
            .filter_map(|(seq, _)| c.messages.get(seq))
            .map(|m| {
                m.idempotency_key
                    .as_deref()
                    .unwrap_or(m.message_id.as_str())
            })
            .chain(c.pending.iter().map(|p| p.key.as_str()))
            .collect()
    }

    fn next_rev(&mut self) -> u64 {
        self.rev += 1;
        (1 << 32) + self.rev
    }

    /// A conversation's state.
    pub fn conversation(&self, id: &ConversationId) -> Option<&Conversation> {
        self.conversations.get(id)
    }

    fn conv(&mut self, id: &ConversationId) -> &mut Conversation {
        self.conversations.entry(id.clone()).or_default()
    }

    /// The bubbles of a conversation: stored messages by `seq`, then pending sends in the order
    /// they were sent.
    pub fn bubbles(&self, id: &ConversationId) -> Vec<Bubble<'_>> {
        let Some(c) = self.conversations.get(id) else {
            return Vec::new();
        };
        c.messages
            .values()
            .map(Bubble::Stored)
            .chain(c.pending.iter().map(Bubble::Pending))
            .collect()
    }

    /// The keys of a conversation's bubbles, in display order.
    pub fn bubble_keys(&self, id: &ConversationId) -> Vec<String> {
        self.bubbles(id)
            .iter()
            .map(|b| b.key().to_owned())
            .collect()
    }

    /// An owned copy of the bubble with this key. By index, not by scanning: every bubble
    /// asks on every store change, so a scan made each stream event O(bubbles²).
    pub fn bubble(&self, id: &ConversationId, key: &str) -> Option<BubbleData> {
        let c = self.conversations.get(id)?;
        if let Some(p) = c.pending.iter().find(|p| p.key == key) {
            return Some(BubbleData::Pending(p.clone()));
        }
        let seq = c
            .seq_of_key
            .get(key)
            .or_else(|| c.seq_of.get(&MessageId(key.to_owned())))?;
        let message = c.messages.get(seq)?;
        (Bubble::Stored(message).key() == key).then(|| BubbleData::Stored(message.clone()))
    }

    /// The lowest `seq` held (history `before` it pages older messages in).
    pub fn first_seq(&self, id: &ConversationId) -> Option<u64> {
        self.conversations
            .get(id)
            .and_then(|c| c.messages.keys().next().copied())
    }

    /// The newest message held.
    pub fn newest(&self, id: &ConversationId) -> Option<&Message> {
        self.conversations
            .get(id)
            .and_then(|c| c.messages.values().next_back())
    }

    /// The highest `seq` held.
    pub fn top_seq(&self, id: &ConversationId) -> u64 {
        self.conversations
            .get(id)
            .and_then(|c| c.messages.keys().next_back().copied())
            .unwrap_or(0)
    }

    /// Messages held with `seq` above `seen` that someone other than `me` wrote.
    pub fn unread_after(
        &self,
        id: &ConversationId,
        seen: u64,
        me: &farm_chat_protocol::UserId,
    ) -> u32 {
        self.conversations.get(id).map_or(0, |c| {
            c.messages
                .range(seen + 1..)
                .filter(|(_, m)| &m.sender.id != me)
                .count() as u32
        })
    }

    /// Whether any task of the conversation is still running.
    pub fn busy(&self, id: &ConversationId) -> bool {
        self.conversations.get(id).is_some_and(|c| {
            c.messages
                .values()
                .any(|m| m.task.as_ref().is_some_and(|t| !t.state.is_final()))
        })
    }

    /// The message with this id, wherever it is.
    pub fn message(&self, id: &MessageId) -> Option<&Message> {
        self.conversations
            .values()
            .find_map(|c| c.seq_of.get(id).and_then(|seq| c.messages.get(seq)))
    }

    /// Stores (or updates) a message from the server; it takes the place of a pending send with
    /// the same key.
    fn put(&mut self, mut message: Message) {
        let rev = self.next_rev();
        let early = self.early.remove(&message.message_id);
        let conversation_id = message.conversation_id.clone();
        let c = self.conv(&conversation_id);
        c.known_max_seq = c.known_max_seq.max(message.seq);
        if let Some(key) = &message.idempotency_key {
            let before = c.pending.len();
            c.pending.retain(|p| &p.key != key);
            if c.pending.len() != before {
                c.layout += 1;
            }
        }
        if let Some((parts, state)) = early
            && let Some(task) = message.task.as_mut()
        {
            for part in parts {
                // A gap here is caught by the running task's refresh after the load.
                merge_part(task, part);
            }
            if let Some(state) = state {
                task.state = state;
            }
        }
        match c.seq_of.get(&message.message_id).copied() {
            Some(seq) => {
                if let Some(held) = c.messages.get_mut(&seq) {
                    // The same message again (replay, refetch): keep what we know, add what's new.
                    match (held.task.as_mut(), message.task) {
                        (Some(task), Some(incoming)) => merge_snapshot(task, incoming),
                        (None, Some(incoming)) => held.task = Some(incoming),
                        _ => {}
                    }
                    if held.idempotency_key.is_none()
                        && let Some(key) = message.idempotency_key
                    {
                        c.seq_of_key.insert(key.clone(), seq);
                        held.idempotency_key = Some(key);
                        c.layout += 1; // its bubble key changed
                    }
                    c.rev_of.insert(seq, rev);
                }
            }
            None => {
                c.seq_of.insert(message.message_id.clone(), message.seq);
                if let Some(key) = &message.idempotency_key {
                    c.seq_of_key.insert(key.clone(), message.seq);
                }
                c.rev_of.insert(message.seq, rev);
                c.layout += 1;
                c.messages.insert(message.seq, message);
            }
        }
    }

    fn trim(&mut self, id: &ConversationId) {
        let limit = self.limit;
        let c = self.conv(id);
        while c.messages.len() > limit {
            if let Some((_, dropped)) = c.messages.pop_first() {
                c.seq_of.remove(&dropped.message_id);
                if let Some(key) = &dropped.idempotency_key {
                    c.seq_of_key.remove(key);
                }
                c.rev_of.remove(&dropped.seq);
                c.layout += 1;
                c.has_older = true;
            }
        }
    }

    /// The user pressed send: the bubble appears now.
    pub fn begin_send(&mut self, conversation: &ConversationId, key: &str, text: &str) {
        let c = self.conv(conversation);
        if !c.pending.iter().any(|p| p.key == key) {
            c.layout += 1;
            c.pending.push(Pending {
                key: key.to_owned(),
                text: text.to_owned(),
                state: SendState::Sending { attempt: 1 },
            });
        }
    }

    fn pending_mut(&mut self, key: &str) -> Option<&mut Pending> {
        self.conversations
            .values_mut()
            .find_map(|c| c.pending.iter_mut().find(|p| p.key == key))
    }

    /// A send is tried again (automatically, or by the user's retry) with the same key.
    /// Returns its conversation and text.
    pub fn send_attempt(&mut self, key: &str, attempt: u32) -> Option<(ConversationId, String)> {
        let conversation = self
            .conversations
            .iter()
            .find(|(_, c)| c.pending.iter().any(|p| p.key == key))
            .map(|(id, _)| id.clone())?;
        let pending = self.pending_mut(key)?;
        pending.state = SendState::Sending { attempt };
        Some((conversation, pending.text.clone()))
    }

    /// A send gave up (it can be retried).
    pub fn send_failed(&mut self, key: &str, reason: &str) {
        if let Some(p) = self.pending_mut(key) {
            p.state = SendState::Failed {
                reason: reason.to_owned(),
            };
        }
    }

    /// The server answered the send (201, or 200 for a retry): the bubble becomes the stored
    /// message, in place.
    pub fn send_acknowledged(&mut self, key: &str, response: &SendResponse, me: &Sender) {
        let Some(c) = self.conversations.get(&response.conversation_id) else {
            return;
        };
        if c.seq_of.contains_key(&response.message_id) {
            // History brought the stored message first; it already replaced the bubble.
            self.conv(&response.conversation_id)
                .pending
                .retain(|p| p.key != key);
            return;
        }
        let Some(text) = c
            .pending
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.text.trim().to_owned())
        else {
            return;
        };
        self.put(Message {
            message_id: response.message_id.clone(),
            conversation_id: response.conversation_id.clone(),
            seq: response.seq,
            sender: me.clone(),
            text,
            created_at: response.created_at.clone(),
            task: None,
            idempotency_key: Some(key.to_owned()),
        });
        self.trim(&response.conversation_id);
    }

    /// A page of history. Returns whether newer messages remain to fetch (for a
    /// [`PageKind::Newer`] page whose `hasMore` is set: fetch again after the new top).
    pub fn apply_history(
        &mut self,
        conversation: &ConversationId,
        page: HistoryPage,
        kind: PageKind,
    ) -> bool {
        for message in page.messages {
            self.put(message);
        }
        let c = self.conv(conversation);
        match kind {
            // `hasMore` on the newest page or a `before` page: older messages exist.
            PageKind::Latest | PageKind::Older => c.has_older = page.has_more,
            PageKind::Newer => {}
        }
        if kind != PageKind::Older {
            self.trim(conversation);
        }
        kind == PageKind::Newer && page.has_more
    }

    /// `message.created`: returns the `seq` to fetch history after when the message is not held
    /// (Option A: the stream carries ids only).
    pub fn message_created(&mut self, event: &MessageCreated) -> Option<u64> {
        let c = self.conv(&event.conversation_id);
        c.known_max_seq = c.known_max_seq.max(event.seq);
        (!c.seq_of.contains_key(&event.message_id)).then(|| c.contiguous_seq())
    }

    /// The `seq` to fetch history after, when messages the server announced are missing.
    pub fn catch_up_after(&self, conversation: &ConversationId) -> Option<u64> {
        let c = self.conversations.get(conversation)?;
        let top = c.contiguous_seq();
        (c.known_max_seq > top).then_some(top)
    }

    /// The task of a held reply, for changing it (its message's revision moves).
    fn task_of(&mut self, message: &MessageId) -> Option<&mut TaskSnapshot> {
        let rev = self.next_rev();
        self.conversations.values_mut().find_map(|c| {
            let seq = *c.seq_of.get(message)?;
            c.rev_of.insert(seq, rev);
            c.messages.get_mut(&seq)?.task.as_mut()
        })
    }

    /// A `task.*` part: merged into its reply message's task, or kept until that message
    /// arrives. `false`: a text delta left a gap, and the task must be fetched again.
    pub fn apply_task_part(&mut self, event: TaskPartEvent) -> bool {
        match self.task_of(&event.message_id) {
            Some(task)
                if !task.state.is_final()
                    || matches!(
                        event.part.body,
                        PartBody::Error { .. } | PartBody::Result { .. } | PartBody::Text { .. }
                    ) =>
            {
                merge_part(task, event.part)
            }
            Some(_) => true, // the task already ended; a late replay changes nothing
            None => {
                self.early
                    .entry(event.message_id)
                    .or_default()
                    .0
                    .push(event.part);
                true
            }
        }
    }

    /// The tasks of held replies that still look running. After a reconnect they are asked
    /// for again: the server may have ended them while the stream was down (a restart fails
    /// the tasks it finds orphaned), and a `reset` replays nothing.
    pub fn running_tasks(&self, conversation: &ConversationId) -> Vec<TaskId> {
        self.conversations
            .get(conversation)
            .map_or_else(Vec::new, |c| {
                c.messages
                    .values()
                    .filter_map(|m| m.task.as_ref())
                    .filter(|t| !t.state.is_final())
                    .map(|t| t.task_id.clone())
                    .collect()
            })
    }

    /// A task as `GET /api/tasks/{id}` answered: merged into its reply (never backwards).
    pub fn apply_task_snapshot(&mut self, snapshot: TaskSnapshot) {
        let message = snapshot.message_id.clone();
        if let Some(task) = self.task_of(&message) {
            merge_snapshot(task, snapshot);
        }
    }

    /// Whether the reply `message` has answer text (held, or held early).
    pub fn has_text(&self, message: &MessageId) -> bool {
        let is_text = |p: &TaskPart| matches!(p.body, PartBody::Text { .. });
        self.conversations.values().any(|c| {
            c.seq_of
                .get(message)
                .and_then(|seq| c.messages.get(seq))
                .and_then(|m| m.task.as_ref())
                .is_some_and(|t| t.parts.iter().any(is_text))
        }) || self
            .early
            .get(message)
            .is_some_and(|(parts, _)| parts.iter().any(is_text))
    }

    /// `task.done`.
    pub fn apply_task_done(&mut self, event: &TaskDone) {
        match self.task_of(&event.message_id) {
            Some(task) => task.state = event.state,
            None => self.early.entry(event.message_id.clone()).or_default().1 = Some(event.state),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use farm_chat_protocol::{
        UserId,
        chat::SenderKind,
        task::{Progress, TaskKind},
    };

    fn conv() -> ConversationId {
        ConversationId("c".into())
    }

    fn me() -> Sender {
        Sender {
            id: UserId("u-farmer".into()),
            kind: SenderKind::User,
            display_name: "山田".into(),
        }
    }

    fn msg(seq: u64, key: Option<&str>) -> Message {
        Message {
            message_id: MessageId(format!("m{seq}")),
            conversation_id: conv(),
            seq,
            sender: me(),
            text: format!("text {seq}"),
            created_at: "t".into(),
            task: None,
            idempotency_key: key.map(str::to_owned),
        }
    }

    fn page(seqs: &[u64]) -> HistoryPage {
        HistoryPage {
            messages: seqs.iter().map(|&s| msg(s, None)).collect(),
            has_more: false,
        }
    }

    fn order(store: &ChatStore) -> Vec<String> {
        store
            .bubbles(&conv())
            .iter()
            .map(|b| b.key().to_owned())
            .collect()
    }

    /// `bubble(key)` by the indexes must agree with a scan of `bubbles()`.
    fn by_scan(store: &ChatStore, key: &str) -> Option<BubbleData> {
        store
            .bubbles(&conv())
            .into_iter()
            .find(|b| b.key() == key)
            .map(|b| match b {
                Bubble::Stored(m) => BubbleData::Stored(m.clone()),
                Bubble::Pending(p) => BubbleData::Pending(p.clone()),
            })
    }

    #[test]
    fn bubble_lookup_by_key_agrees_with_a_scan() {
        let mut s = ChatStore::new(4);
        s.begin_send(&conv(), "k-pending", "送信中");
        s.apply_history(
            &conv(),
            HistoryPage {
                messages: vec![msg(1, None), msg(2, Some("k-2")), msg(3, None)],
                has_more: false,
            },
            PageKind::Latest,
        );
        // A replay that brings the key of a message held without one.
        s.apply_history(
            &conv(),
            HistoryPage {
                messages: vec![msg(3, Some("k-3"))],
                has_more: false,
            },
            PageKind::Newer,
        );
        let mut keys = s.bubble_keys(&conv());
        assert_eq!(keys, ["m1", "k-2", "k-3", "k-pending"]);
        keys.extend(["m2", "m3", "nope", "k-gone"].map(String::from));
        for key in &keys {
            assert_eq!(s.bubble(&conv(), key), by_scan(&s, key), "{key}");
        }
        assert!(s.bubble(&conv(), "m2").is_none(), "m2's bubble key is k-2");
        // Trimming drops the oldest, and their index entries with them.
        s.apply_history(&conv(), page(&[4, 5, 6]), PageKind::Newer);
        for key in ["m1", "k-2", "k-3", "m4", "m6"] {
            assert_eq!(s.bubble(&conv(), key), by_scan(&s, key), "{key}");
        }
        assert!(s.bubble(&conv(), "k-2").is_none(), "trimmed");
    }

    #[test]
    fn changed_since_lists_only_the_bubbles_that_moved() {
        let mut s = ChatStore::default();
        s.apply_history(
            &conv(),
            HistoryPage {
                messages: vec![msg(1, None), msg(2, Some("k-2")), msg(3, None)],
                has_more: false,
            },
            PageKind::Latest,
        );
        let before = s.rev();
        assert!(s.changed_since(&conv(), before).is_empty());
        // A newer copy of message 2 (its key is its idempotency key), and a pending send.
        s.apply_history(
            &conv(),
            HistoryPage {
                messages: vec![Message {
                    text: "edited".into(),
                    ..msg(2, Some("k-2"))
                }],
                has_more: false,
            },
            PageKind::Newer,
        );
        s.begin_send(&conv(), "k-new", "送信中");
        let mut changed = s.changed_since(&conv(), before);
        changed.sort_unstable();
        assert_eq!(changed, ["k-2", "k-new"]);
        // Every bubble changed after revision 0.
        assert_eq!(s.changed_since(&conv(), 0).len(), 4);
        assert!(
            s.changed_since(&ConversationId("other".into()), 0)
                .is_empty()
        );
    }

    #[test]
    fn duplicates_and_reordering_change_nothing() {
        let mut s = ChatStore::default();
        s.apply_history(&conv(), page(&[3, 1]), PageKind::Latest);
        s.apply_history(&conv(), page(&[2, 3, 1]), PageKind::Latest);
        s.apply_history(&conv(), page(&[3]), PageKind::Latest);
        assert_eq!(order(&s), ["m1", "m2", "m3"]);
    }

    #[test]
    fn message_created_asks_for_history_after_the_contiguous_top() {
        let mut s = ChatStore::default();
        s.apply_history(&conv(), page(&[1, 2, 4]), PageKind::Latest);
        let created = |seq: u64| MessageCreated {
            conversation_id: conv(),
            message_id: MessageId(format!("m{seq}")),
            seq,
        };
        assert_eq!(
            s.message_created(&created(5)),
            Some(2),
            "3 is missing: fetch after 2"
        );
        assert_eq!(
            s.message_created(&created(4)),
            None,
            "held already: nothing to fetch"
        );
        s.apply_history(&conv(), page(&[3, 4, 5]), PageKind::Latest);
        assert_eq!(s.conversation(&conv()).unwrap().contiguous_seq(), 5);
        assert_eq!(s.message_created(&created(5)), None);
    }

    #[test]
    fn catching_up_fills_gaps_and_pages_until_done() {
        let mut s = ChatStore::default();
        s.apply_history(&conv(), page(&[1, 2]), PageKind::Latest);
        assert_eq!(
            s.catch_up_after(&conv()),
            None,
            "nothing announced beyond what is held"
        );
        s.message_created(&MessageCreated {
            conversation_id: conv(),
            message_id: MessageId("m9".into()),
            seq: 9,
        });
        assert_eq!(s.catch_up_after(&conv()), Some(2));
        let more = s.apply_history(
            &conv(),
            HistoryPage {
                messages: page(&[3, 4, 5]).messages,
                has_more: true,
            },
            PageKind::Newer,
        );
        assert!(more, "hasMore on an after-page: fetch again");
        assert_eq!(s.catch_up_after(&conv()), Some(5));
        let more = s.apply_history(&conv(), page(&[6, 7, 8, 9]), PageKind::Newer);
        assert!(!more);
        assert_eq!(s.catch_up_after(&conv()), None);
        assert!(
            !s.conversation(&conv()).unwrap().has_older,
            "an after-page says nothing about older ones"
        );
    }

    #[test]
    fn unread_counts_only_others_after_what_was_seen() {
        let mut s = ChatStore::default();
        let mut others = page(&[1, 2, 3]);
        others.messages[1].sender.id = UserId("assistant".into());
        others.messages[2].sender.id = UserId("u-support".into());
        s.apply_history(&conv(), others, PageKind::Latest);
        assert_eq!(s.top_seq(&conv()), 3);
        assert_eq!(
            s.unread_after(&conv(), 0, &me().id),
            2,
            "my own message is not unread"
        );
        assert_eq!(s.unread_after(&conv(), 2, &me().id), 1);
        assert_eq!(s.unread_after(&conv(), 3, &me().id), 0);
    }

    #[test]
    fn one_bubble_when_the_send_answer_comes_first() {
        let mut s = ChatStore::default();
        s.apply_history(&conv(), page(&[1]), PageKind::Latest);
        s.begin_send(&conv(), "k1", " こんにちは ");
        assert_eq!(order(&s), ["m1", "k1"]);
        let ack = SendResponse {
            message_id: MessageId("m2".into()),
            conversation_id: conv(),
            seq: 2,
            created_at: "t".into(),
            task_id: None,
        };
        s.send_acknowledged("k1", &ack, &me());
        assert_eq!(order(&s), ["m1", "k1"], "same key, same place");
        let Bubble::Stored(m) = &s.bubbles(&conv())[1] else {
            panic!()
        };
        assert_eq!((m.seq, m.text.as_str()), (2, "こんにちは"));
        // Then the stream's echo and the history fetch bring the same message: still one.
        let mut echoed = msg(2, Some("k1"));
        echoed.message_id = MessageId("m2".into());
        s.apply_history(
            &conv(),
            HistoryPage {
                messages: vec![echoed],
                has_more: false,
            },
            PageKind::Latest,
        );
        assert_eq!(order(&s), ["m1", "k1"]);
        s.send_acknowledged("k1", &ack, &me());
        assert_eq!(
            order(&s),
            ["m1", "k1"],
            "a late duplicate answer changes nothing"
        );
    }

    #[test]
    fn one_bubble_when_the_echo_comes_before_the_send_answer() {
        let mut s = ChatStore::default();
        s.begin_send(&conv(), "k1", "hi");
        s.apply_history(
            &conv(),
            HistoryPage {
                messages: vec![msg(1, Some("k1"))],
                has_more: false,
            },
            PageKind::Latest,
        );
        assert_eq!(order(&s), ["k1"]);
        assert!(matches!(s.bubbles(&conv())[0], Bubble::Stored(_)));
        let ack = SendResponse {
            message_id: MessageId("m1".into()),
            conversation_id: conv(),
            seq: 1,
            created_at: "t".into(),
            task_id: None,
        };
        s.send_acknowledged("k1", &ack, &me());
        assert_eq!(order(&s), ["k1"]);
    }

    #[test]
    fn a_failed_send_stays_and_can_be_retried_with_its_key() {
        let mut s = ChatStore::default();
        s.begin_send(&conv(), "k1", "hi");
        s.send_failed("k1", "offline");
        assert!(
            matches!(&s.bubbles(&conv())[0], Bubble::Pending(p) if matches!(p.state, SendState::Failed { .. }))
        );
        assert_eq!(s.send_attempt("k1", 2), Some((conv(), "hi".into())));
        assert!(
            matches!(&s.bubbles(&conv())[0], Bubble::Pending(p) if p.state == SendState::Sending { attempt: 2 })
        );
        assert_eq!(s.send_attempt("nope", 2), None);
        s.begin_send(&conv(), "k1", "hi");
        assert_eq!(
            s.bubbles(&conv()).len(),
            1,
            "beginning the same key twice is one bubble"
        );
    }

    #[test]
    fn pending_bubbles_keep_their_send_order_after_stored_messages() {
        let mut s = ChatStore::default();
        s.begin_send(&conv(), "a", "1");
        s.begin_send(&conv(), "b", "2");
        s.apply_history(&conv(), page(&[1]), PageKind::Latest);
        assert_eq!(order(&s), ["m1", "a", "b"]);
    }

    fn reply(seq: u64) -> Message {
        let mut m = msg(seq, None);
        m.task = Some(TaskSnapshot {
            task_id: "t".into(),
            conversation_id: conv(),
            message_id: m.message_id.clone(),
            kind: TaskKind::CowList,
            state: TaskState::Running,
            progress: None,
            parts: Vec::new(),
            created_at: "t".into(),
            updated_at: "t".into(),
        });
        m
    }

    fn part_event(message: &str, part: u32, body: PartBody) -> TaskPartEvent {
        TaskPartEvent {
            task_id: "t".into(),
            message_id: MessageId(message.into()),
            conversation_id: conv(),
            part: TaskPart { part, body },
        }
    }

    fn progress(current: u32) -> PartBody {
        PartBody::Progress {
            progress: Progress::new(current, 4),
            text: String::new(),
        }
    }

    #[test]
    fn revisions_move_exactly_when_a_bubble_or_the_layout_changes() {
        let mut s = ChatStore::new(3);
        s.apply_history(
            &conv(),
            HistoryPage {
                messages: vec![msg(1, None), reply(2)],
                has_more: false,
            },
            PageKind::Latest,
        );
        let (layout, m1, m2) = (
            s.layout_rev(&conv()),
            s.bubble_rev(&conv(), "m1"),
            s.bubble_rev(&conv(), "m2"),
        );
        assert!(m1 != 0 && m2 != 0 && m1 != m2);
        s.apply_task_part(part_event("m2", 0, progress(1)));
        assert_ne!(s.bubble_rev(&conv(), "m2"), m2, "a part changes its reply");
        assert_eq!(s.bubble_rev(&conv(), "m1"), m1, "and no other bubble");
        assert_eq!(s.layout_rev(&conv()), layout, "nor the layout");
        let m2 = s.bubble_rev(&conv(), "m2");
        s.apply_task_done(&TaskDone {
            task_id: "t".into(),
            message_id: MessageId("m2".into()),
            conversation_id: conv(),
            state: TaskState::Succeeded,
        });
        assert_ne!(s.bubble_rev(&conv(), "m2"), m2, "the end changes it too");

        s.begin_send(&conv(), "k", "やあ");
        assert_ne!(s.layout_rev(&conv()), layout, "a new bubble");
        let sending = s.bubble_rev(&conv(), "k");
        s.send_failed("k", "network");
        assert_ne!(
            s.bubble_rev(&conv(), "k"),
            sending,
            "a pending bubble's state"
        );
        let layout = s.layout_rev(&conv());
        s.apply_history(&conv(), page(&[3]), PageKind::Newer);
        assert_ne!(s.layout_rev(&conv()), layout, "a new message");
        let layout = s.layout_rev(&conv());
        s.apply_history(&conv(), page(&[4]), PageKind::Newer);
        assert_ne!(s.layout_rev(&conv()), layout, "and a trimmed one");
        assert_eq!(s.bubble_rev(&conv(), "m1"), 0, "m1 is gone");
        assert_eq!(s.bubble_rev(&conv(), "nope"), 0);
    }

    #[test]
    fn a_task_that_ended_while_the_stream_was_down_is_refreshed() {
        let mut s = ChatStore::default();
        s.apply_history(
            &conv(),
            HistoryPage {
                messages: vec![msg(1, None), reply(2)],
                has_more: false,
            },
            PageKind::Latest,
        );
        assert_eq!(s.running_tasks(&conv()), [TaskId::from("t")]);
        let mut ended = reply(2).task.unwrap();
        ended.state = TaskState::Failed;
        let rev = s.bubble_rev(&conv(), "m2");
        s.apply_task_snapshot(ended);
        assert!(s.running_tasks(&conv()).is_empty());
        assert_ne!(s.bubble_rev(&conv(), "m2"), rev, "its bubble re-renders");
        // A stale snapshot can't bring it back to running.
        s.apply_task_snapshot(reply(2).task.unwrap());
        assert!(s.running_tasks(&conv()).is_empty());
    }

    #[test]
    fn parts_render_once_and_progress_never_goes_back() {
        let mut s = ChatStore::default();
        s.apply_history(
            &conv(),
            HistoryPage {
                messages: vec![reply(2)],
                has_more: false,
            },
            PageKind::Latest,
        );
        let status = PartBody::Status {
            text: "検索中".into(),
        };
        s.apply_task_part(part_event("m2", 0, status.clone()));
        s.apply_task_part(part_event("m2", 0, status));
        s.apply_task_part(part_event("m2", 1, progress(3)));
        s.apply_task_part(part_event("m2", 1, progress(2)));
        let task = s
            .message(&MessageId("m2".into()))
            .unwrap()
            .task
            .clone()
            .unwrap();
        assert_eq!(task.parts.len(), 2);
        assert_eq!(
            task.progress,
            Some(Progress::new(3, 4)),
            "a stale update is ignored"
        );
        s.apply_task_done(&TaskDone {
            task_id: "t".into(),
            message_id: MessageId("m2".into()),
            conversation_id: conv(),
            state: TaskState::Succeeded,
        });
        s.apply_task_part(part_event("m2", 1, progress(4)));
        let task = s
            .message(&MessageId("m2".into()))
            .unwrap()
            .task
            .clone()
            .unwrap();
        assert_eq!(
            (task.state, task.progress),
            (TaskState::Succeeded, Some(Progress::new(3, 4))),
            "nothing after done"
        );
    }

    #[test]
    fn parts_that_arrive_before_their_message_wait_for_it() {
        let mut s = ChatStore::default();
        s.apply_task_part(part_event("m2", 0, PartBody::Status { text: "a".into() }));
        s.apply_task_part(part_event("m2", 1, progress(4)));
        s.apply_task_done(&TaskDone {
            task_id: "t".into(),
            message_id: MessageId("m2".into()),
            conversation_id: conv(),
            state: TaskState::Succeeded,
        });
        // History fetched before the last events: its snapshot is older than what streamed.
        let mut older = reply(2);
        older.task.as_mut().unwrap().upsert_part(TaskPart {
            part: 1,
            body: progress(1),
        });
        s.apply_history(
            &conv(),
            HistoryPage {
                messages: vec![older],
                has_more: false,
            },
            PageKind::Latest,
        );
        let task = s
            .message(&MessageId("m2".into()))
            .unwrap()
            .task
            .clone()
            .unwrap();
        assert_eq!(task.parts.len(), 2);
        assert_eq!(
            (task.state, task.progress),
            (TaskState::Succeeded, Some(Progress::new(4, 4)))
        );
    }

    #[test]
    fn a_refetch_never_makes_a_finished_task_look_running() {
        let mut s = ChatStore::default();
        let mut done = reply(2);
        done.task.as_mut().unwrap().state = TaskState::Cancelled;
        s.apply_history(
            &conv(),
            HistoryPage {
                messages: vec![done],
                has_more: false,
            },
            PageKind::Latest,
        );
        s.apply_history(
            &conv(),
            HistoryPage {
                messages: vec![reply(2)],
                has_more: false,
            },
            PageKind::Latest,
        );
        assert_eq!(
            s.message(&MessageId("m2".into()))
                .unwrap()
                .task
                .as_ref()
                .unwrap()
                .state,
            TaskState::Cancelled
        );
    }

    #[test]
    fn memory_is_bounded_and_older_pages_come_back() {
        let mut s = ChatStore::new(5);
        s.apply_history(&conv(), page(&[1, 2, 3, 4, 5, 6, 7, 8]), PageKind::Latest);
        assert_eq!(order(&s), ["m4", "m5", "m6", "m7", "m8"]);
        assert!(s.conversation(&conv()).unwrap().has_older);
        s.apply_history(
            &conv(),
            HistoryPage {
                messages: page(&[2, 3]).messages,
                has_more: true,
            },
            PageKind::Older,
        );
        assert_eq!(
            order(&s).first().map(String::as_str),
            Some("m2"),
            "scrolling up pages older ones in"
        );
        assert!(s.conversation(&conv()).unwrap().has_older);
    }
}
