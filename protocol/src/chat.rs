//! Conversations, sending and history: `GET /api/conversations`, `POST /api/chat/send`,
//! `GET /api/chat/history`.

use serde::{Deserialize, Serialize};

use crate::{
    ids::{ConversationId, MessageId, TaskId, UserId},
    task::TaskSnapshot,
};

/// Which kind of conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    /// A farmer and the farm assistant: each message starts a task.
    Assistant,
    /// A farmer and the farm's support staff.
    Support,
}

/// One entry of `GET /api/conversations`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ConversationSummary {
    /// The conversation.
    pub id: ConversationId,
    /// Assistant or support.
    pub kind: ConversationKind,
    /// For the list, in the server's words, e.g. 「牧場アシスタント」.
    pub title: String,
    /// The newest message, if any.
    pub last_message: Option<Message>,
    /// Messages by others after the newest one this user has sent or read.
    pub unread: u32,
    /// The farmer the conversation was made for (what a support inbox lists it by).
    pub owner_name: String,
    /// The newest `seq` this user has sent or marked read (`POST /api/chat/read`); 0 for none.
    pub read_up_to: u64,
    /// The newest `seq` any other person in the conversation has read: the reader's own
    /// messages up to it show as read (既読). 0 for none.
    pub others_read_up_to: u64,
}

/// `GET /api/conversations` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ConversationList {
    /// The user's conversations, newest activity first (the newest message's time; a
    /// conversation without messages last).
    pub conversations: Vec<ConversationSummary>,
    /// Where the next page starts (`?before=`), when more conversations exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `POST /api/chat/typing` body: the sender is typing in a human conversation. The other
/// participants get a `typing` event, never stored or replayed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TypingRequest {
    /// Where.
    pub conversation_id: ConversationId,
}

/// `POST /api/chat/read` body: the reader has seen the conversation up to `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadRequest {
    /// Which conversation.
    pub conversation_id: ConversationId,
    /// The newest message seen; a mark never moves backwards, and one past the newest message
    /// is clamped to it.
    pub seq: u64,
}

/// `POST /api/chat/read` answer: the reader's mark after the call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ReadMark {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Read up to here.
    pub seq: u64,
}

/// The language the widget shows, sent with each message so the assistant answers (and names
/// itself) in it, whatever the message's own characters suggest (a pasted model number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReplyLanguage {
    /// 日本語.
    Ja,
    /// English.
    En,
}

/// `POST /api/chat/send` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendRequest {
    /// Where to send.
    pub conversation_id: ConversationId,
    /// 1–4000 characters after trimming; no NUL.
    pub text: String,
    /// Chosen by the client (a UUID) and reused on every retry of the same send: the server
    /// stores the message once and answers retries with the same `messageId`.
    pub idempotency_key: String,
    /// The widget's language. Without it, the assistant guesses from the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<ReplyLanguage>,
}

/// `POST /api/chat/send` answer (201 the first time, 200 for a retry with the same key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct SendResponse {
    /// The stored message.
    pub message_id: MessageId,
    /// Where it was stored.
    pub conversation_id: ConversationId,
    /// Its place in the conversation (1, 2, …).
    pub seq: u64,
    /// When the server accepted it (RFC 3339, UTC).
    pub created_at: String,
    /// The assistant task the message started, in an assistant conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<TaskId>,
}

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum SenderKind {
    /// A farmer.
    User,
    /// The farm assistant.
    Assistant,
    /// Support staff.
    Support,
}

impl From<crate::session::Role> for SenderKind {
    /// How a signed-in user's messages are marked: a farmer writes as `user`, support staff
    /// as `support`.
    fn from(role: crate::session::Role) -> Self {
        match role {
            crate::session::Role::Farmer => Self::User,
            crate::session::Role::Support => Self::Support,
        }
    }
}

/// The author of a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Sender {
    /// A user id, or `assistant`.
    pub id: UserId,
    /// User, assistant or support.
    pub kind: SenderKind,
    /// How the chat shows them.
    pub display_name: String,
}

/// A stored message, as history returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Assigned by the server.
    pub message_id: MessageId,
    /// Its conversation.
    pub conversation_id: ConversationId,
    /// Its place in the conversation: history is ordered by it.
    pub seq: u64,
    /// Its author.
    pub sender: Sender,
    /// What was written.
    pub text: String,
    /// When the server accepted it (RFC 3339, UTC).
    pub created_at: String,
    /// For an assistant's reply: its task with every part so far and the result, so a reload
    /// restores the reply from history alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskSnapshot>,
    /// Only on the reader's own messages: the key they were sent with, so a client can match
    /// its optimistic bubble to the stored message even before the send's answer arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// `GET /api/chat/history` answer: messages in `seq` order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    /// At most `limit` messages, oldest first.
    pub messages: Vec<Message>,
    /// More messages exist beyond this page in the direction asked for (older for `before`
    /// or no cursor, newer for `after`).
    pub has_more: bool,
}

/// The longest message text, in characters, after trimming.
pub const MAX_TEXT_CHARS: usize = 4000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_request_golden_json() {
        let golden = r#"{"conversationId":"c-1","text":"発情予定の牛は？","idempotencyKey":"k-1"}"#;
        let req: SendRequest = serde_json::from_str(golden).unwrap();
        assert_eq!(req.conversation_id.as_str(), "c-1");
        assert_eq!(serde_json::to_string(&req).unwrap(), golden);
    }

    #[test]
    fn send_response_omits_an_absent_task() {
        let res = SendResponse {
            message_id: "m-1".into(),
            conversation_id: "c-1".into(),
            seq: 3,
            created_at: "2026-11-22T00:00:00Z".into(),
            task_id: None,
        };
        assert_eq!(
            serde_json::to_string(&res).unwrap(),
            r#"{"messageId":"m-1","conversationId":"c-1","seq":3,"createdAt":"2026-11-22T00:00:00Z"}"#
        );
    }

    #[test]
    fn message_golden_json() {
        let golden = r#"{"messageId":"m-1","conversationId":"c-1","seq":1,"sender":{"id":"u-farmer","kind":"user","displayName":"山田 太郎"},"text":"こんにちは","createdAt":"2026-11-22T00:00:00Z"}"#;
        let msg: Message = serde_json::from_str(golden).unwrap();
        assert_eq!(msg.sender.kind, SenderKind::User);
        assert_eq!(serde_json::to_string(&msg).unwrap(), golden);
    }
}
