//! `GET /api/chat/stream`: the SSE events. Each event travels as `id:` ([`EventId`]), `event:`
//! ([`StreamEvent::name`]) and one JSON `data:` line ([`StreamEvent::data`]); clients turn the
//! last two back into a [`StreamEvent`] with [`StreamEvent::decode`].

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{
    ids::{ConversationId, MessageId, TaskId, UserId},
    task::{PartBody, TaskPart, TaskState},
};

/// An SSE event id: `(epoch << 40) | n`, written in decimal (in JSON as a string, so that
/// JavaScript clients never round it).
///
/// `n` counts one user's events; `epoch` counts server starts on the same durable store. So
/// ids stay monotonic across a restart, and a resume from before it is recognised (its epoch
/// is older) and answered with `reset` instead of a silent gap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(pub u64);

impl Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for EventId {
    /// A decimal string (what we write) or a number.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Text(String),
            Number(u64),
        }
        match Wire::deserialize(d)? {
            Wire::Text(text) => text.parse().map_err(serde::de::Error::custom),
            Wire::Number(n) => Ok(Self(n)),
        }
    }
}

/// On the wire a decimal string (JavaScript numbers can't hold every u64).
#[cfg(feature = "schema")]
impl schemars::JsonSchema for EventId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EventId".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]{1,20}$",
            "description": "An event id: the server start's epoch and a counter, as a decimal string"
        })
    }
}

impl EventId {
    const SHIFT: u32 = 40;

    /// The id of event `n` of epoch `epoch`.
    pub fn new(epoch: u32, n: u64) -> Self {
        Self((u64::from(epoch) << Self::SHIFT) | (n & ((1 << Self::SHIFT) - 1)))
    }

    /// The server start this id belongs to.
    pub fn epoch(self) -> u32 {
        (self.0 >> Self::SHIFT) as u32
    }

    /// The event's number within its epoch.
    pub fn n(self) -> u64 {
        self.0 & ((1 << Self::SHIFT) - 1)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A `Last-Event-ID` that is not an id this server wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadEventId;

impl fmt::Display for BadEventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event id is a decimal number of at most 20 digits")
    }
}

impl std::error::Error for BadEventId {}

impl FromStr for EventId {
    type Err = BadEventId;

    /// Strict: ASCII digits only (no sign, space, NUL or CR/LF), at most 20 of them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadEventId);
        }
        s.parse::<u64>().map(Self).map_err(|_| BadEventId)
    }
}

/// The first event of every stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Ready {
    /// The newest event id the server holds for this user.
    pub last_event_id: EventId,
    /// The server's clock (RFC 3339, UTC).
    pub server_time: String,
}

/// A message was stored: fetch it through history (ids only on the stream).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct MessageCreated {
    /// Where.
    pub conversation_id: ConversationId,
    /// Which message.
    pub message_id: MessageId,
    /// Its place in the conversation.
    pub seq: u64,
}

/// `typing`: someone else is typing in a human conversation. Sent to live streams only, with
/// no `id:` (never stored, never replayed on resume); show it for a few seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Typing {
    /// Where.
    pub conversation_id: ConversationId,
    /// Who.
    pub user_id: UserId,
    /// How the chat shows them.
    pub display_name: String,
}

/// `conversation.read`: a participant has read a conversation up to `seq` (the reader's own
/// other tabs get it too, so their unread counts clear).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ConversationRead {
    /// Which conversation.
    pub conversation_id: ConversationId,
    /// Who read it.
    pub user_id: UserId,
    /// Up to which message.
    pub seq: u64,
}

/// Keep-alive, every 15 s: a stream that has sent nothing for 45 s is dead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Ping {
    /// The server's clock (RFC 3339, UTC).
    pub server_time: String,
}

/// Why a stream cannot resume where the client asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ResetReason {
    /// The id is older than the backlog the server keeps.
    TooOld,
    /// The id is from before a server restart.
    Restarted,
    /// The id is newer than anything the server wrote.
    Unknown,
}

/// The client must refetch history: events after its last id are not all available.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Reset {
    /// Why.
    pub reason: ResetReason,
}

/// A part of an assistant task's reply (`task.status`, `task.intermediate`, `task.progress`,
/// `task.result`, `task.text`, `task.error`): the task's ids and the part, keyed by `(taskId, part)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TaskPartEvent {
    /// The task.
    pub task_id: TaskId,
    /// The assistant message the reply belongs to.
    pub message_id: MessageId,
    /// Its conversation.
    pub conversation_id: ConversationId,
    /// The part: its number, type and content.
    #[serde(flatten)]
    pub part: TaskPart,
}

/// `task.done`: the task finished; no more parts follow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TaskDone {
    /// The task.
    pub task_id: TaskId,
    /// The assistant message the reply belongs to.
    pub message_id: MessageId,
    /// Its conversation.
    pub conversation_id: ConversationId,
    /// How it ended.
    pub state: TaskState,
}

/// Every event of the stream. The SSE `event:` name is [`StreamEvent::name`]; in JSON (for
/// example between browser tabs) it is `{"type":name,"data":{…}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", content = "data")]
pub enum StreamEvent {
    /// `ready`: first on every stream.
    #[serde(rename = "ready")]
    Ready(Ready),
    /// `message.created`: a message was stored in one of the user's conversations.
    #[serde(rename = "message.created")]
    MessageCreated(MessageCreated),
    /// `task.status`: what the assistant is doing.
    #[serde(rename = "task.status")]
    TaskStatus(TaskPartEvent),
    /// `task.intermediate`: something found on the way.
    #[serde(rename = "task.intermediate")]
    TaskIntermediate(TaskPartEvent),
    /// `task.progress`: current / total / percentage.
    #[serde(rename = "task.progress")]
    TaskProgress(TaskPartEvent),
    /// `task.result`: the typed result.
    #[serde(rename = "task.result")]
    TaskResult(TaskPartEvent),
    /// `task.text`: a delta of the answer's text, at its byte offset.
    #[serde(rename = "task.text")]
    TaskText(TaskPartEvent),
    /// `task.error`: why the task failed or stopped.
    #[serde(rename = "task.error")]
    TaskError(TaskPartEvent),
    /// `task.done`: the task finished.
    #[serde(rename = "task.done")]
    TaskDone(TaskDone),
    /// `ping`: keep-alive.
    #[serde(rename = "ping")]
    Ping(Ping),
    /// `reset`: refetch history, the backlog cannot fill the gap.
    #[serde(rename = "reset")]
    Reset(Reset),
    /// `typing`: someone else is typing (live only, no id).
    #[serde(rename = "typing")]
    Typing(Typing),
    /// `conversation.read`: a participant read a conversation up to a message.
    #[serde(rename = "conversation.read")]
    ConversationRead(ConversationRead),
}

/// An SSE event the client cannot turn into a [`StreamEvent`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// An `event:` name this protocol does not have.
    UnknownEvent(String),
    /// The `data:` is not the JSON that event carries.
    BadData {
        /// The event name.
        event: String,
        /// What was wrong.
        reason: String,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownEvent(name) => write!(f, "unknown event \"{}\"", name.escape_default()),
            Self::BadData { event, reason } => write!(f, "bad data for {event}: {reason}"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl StreamEvent {
    /// The event for a task part: its name follows the part's type.
    pub fn task_part(event: TaskPartEvent) -> Self {
        match event.part.body {
            PartBody::Status { .. } => Self::TaskStatus(event),
            PartBody::Intermediate { .. } => Self::TaskIntermediate(event),
            PartBody::Progress { .. } => Self::TaskProgress(event),
            PartBody::Result { .. } => Self::TaskResult(event),
            PartBody::Text { .. } => Self::TaskText(event),
            PartBody::Error { .. } => Self::TaskError(event),
        }
    }

    /// Every SSE `event:` name of the protocol.
    pub const NAMES: &'static [&'static str] = &[
        "ready",
        "message.created",
        "task.status",
        "task.intermediate",
        "task.progress",
        "task.result",
        "task.text",
        "task.error",
        "task.done",
        "ping",
        "reset",
        "typing",
        "conversation.read",
    ];

    /// The SSE `event:` name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ready(_) => "ready",
            Self::MessageCreated(_) => "message.created",
            Self::TaskStatus(_) => "task.status",
            Self::TaskIntermediate(_) => "task.intermediate",
            Self::TaskProgress(_) => "task.progress",
            Self::TaskResult(_) => "task.result",
            Self::TaskText(_) => "task.text",
            Self::TaskError(_) => "task.error",
            Self::TaskDone(_) => "task.done",
            Self::Ping(_) => "ping",
            Self::Reset(_) => "reset",
            Self::Typing(_) => "typing",
            Self::ConversationRead(_) => "conversation.read",
        }
    }

    /// The SSE `data:` line: one line of JSON.
    pub fn data(&self) -> String {
        let json = match self {
            Self::Ready(d) => serde_json::to_string(d),
            Self::MessageCreated(d) => serde_json::to_string(d),
            Self::TaskStatus(d)
            | Self::TaskIntermediate(d)
            | Self::TaskProgress(d)
            | Self::TaskResult(d)
            | Self::TaskText(d)
            | Self::TaskError(d) => serde_json::to_string(d),
            Self::TaskDone(d) => serde_json::to_string(d),
            Self::Ping(d) => serde_json::to_string(d),
            Self::Reset(d) => serde_json::to_string(d),
            Self::Typing(d) => serde_json::to_string(d),
            Self::ConversationRead(d) => serde_json::to_string(d),
        };
        // Plain structs of strings and numbers always serialize.
        json.unwrap_or_else(|_| "{}".to_owned())
    }

    /// The event for an SSE `event:` name and `data:` text: parsed by `serde_json`, read by
    /// the same readers the widget uses ([`crate::read`]).
    pub fn decode(name: &str, data: &str) -> Result<Self, DecodeError> {
        Self::read_parsed(name, serde_json::from_str::<serde_json::Value>(data).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_carry_the_epoch_and_stay_monotonic_across_it() {
        let before = EventId::new(1, 999_999);
        let after = EventId::new(2, 1);
        assert!(after > before, "a restart never makes ids go backwards");
        assert_eq!((after.epoch(), after.n()), (2, 1));
        assert_eq!(after.to_string().parse::<EventId>().unwrap(), after);
    }

    #[test]
    fn event_ids_are_json_strings_so_javascript_keeps_every_digit() {
        let id = EventId::new(9000, 5);
        assert!(id.0 > 1 << 53);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", id.0));
        assert_eq!(serde_json::from_str::<EventId>(&json).unwrap(), id);
        assert_eq!(serde_json::from_str::<EventId>("42").unwrap(), EventId(42));
        assert!(serde_json::from_str::<EventId>("\"4 2\"").is_err());
    }

    #[test]
    fn event_ids_parse_strictly() {
        for bad in [
            "",
            "-1",
            " 1",
            "1\0",
            "1\r\n2",
            "0x10",
            "123456789012345678901",
            "1.5",
        ] {
            assert_eq!(bad.parse::<EventId>(), Err(BadEventId), "{bad:?}");
        }
        assert_eq!("42".parse::<EventId>(), Ok(EventId(42)));
    }

    #[test]
    fn message_created_golden_wire_form() {
        let data = r#"{"conversationId":"c-1","messageId":"m-7","seq":7}"#;
        let event = StreamEvent::decode("message.created", data).unwrap();
        assert_eq!(event.name(), "message.created");
        assert_eq!(event.data(), data);
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            format!(r#"{{"type":"message.created","data":{data}}}"#)
        );
    }

    #[test]
    fn decode_names_what_is_wrong() {
        assert_eq!(
            StreamEvent::decode("message.deleted", "{}"),
            Err(DecodeError::UnknownEvent("message.deleted".into()))
        );
        assert!(matches!(
            StreamEvent::decode("message.created", "{not json"),
            Err(DecodeError::BadData { event, .. }) if event == "message.created"
        ));
    }

    #[test]
    fn task_events_carry_the_fields_of_the_protocol() {
        let data = r#"{"taskId":"t-1","messageId":"m-2","conversationId":"c-1","part":0,"type":"status","text":"発情予定の牛を検索中..."}"#;
        let event = StreamEvent::decode("task.status", data).unwrap();
        assert_eq!(event.data(), data);
        let progress = r#"{"taskId":"t-1","messageId":"m-2","conversationId":"c-1","part":3,"type":"progress","current":2,"total":4,"percentage":50,"text":"x"}"#;
        assert_eq!(
            StreamEvent::decode("task.progress", progress)
                .unwrap()
                .name(),
            "task.progress"
        );
        assert!(
            matches!(
                StreamEvent::decode("task.result", data),
                Err(DecodeError::BadData { .. })
            ),
            "a status part under the task.result name is rejected"
        );
        let done =
            r#"{"taskId":"t-1","messageId":"m-2","conversationId":"c-1","state":"succeeded"}"#;
        assert_eq!(StreamEvent::decode("task.done", done).unwrap().data(), done);
    }

    #[test]
    fn every_event_round_trips_through_its_wire_form() {
        let events = [
            StreamEvent::Ready(Ready {
                last_event_id: EventId(5),
                server_time: "t".into(),
            }),
            StreamEvent::Ping(Ping {
                server_time: "t".into(),
            }),
            StreamEvent::Reset(Reset {
                reason: ResetReason::Restarted,
            }),
            StreamEvent::Typing(Typing {
                conversation_id: "c-1".into(),
                user_id: "u-1".into(),
                display_name: "山田".into(),
            }),
            StreamEvent::ConversationRead(ConversationRead {
                conversation_id: "c-1".into(),
                user_id: "u-1".into(),
                seq: 4,
            }),
        ];
        for event in events {
            assert_eq!(
                StreamEvent::decode(event.name(), &event.data()).unwrap(),
                event
            );
        }
    }
}
