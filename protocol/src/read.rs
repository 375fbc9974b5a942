//! Reading the wire without serde: [`FromJson`] builds every type a client receives from JSON
//! that something else already parsed.
//!
//! The browser parses JSON natively (`JSON.parse`, `Response.json()`), so the widget hands the
//! parsed value to these readers instead of carrying serde's generic deserialisers and a JSON
//! parser in its wasm (about a fifth of the bundle). The readers are generic over [`Json`]: the
//! widget implements it for a `JsValue`, and this crate for `serde_json::Value`, so the golden
//! tests below read the server's own serde output of every event and answer and must get the
//! same value back. The two can't drift without a test failing.
//!
//! Rules, the same as serde's for these types: a missing or `null` optional field is `None`; a
//! missing required field, a wrong type, a number out of range or an unknown enum spelling is
//! an error that names the field; unknown fields are ignored (the server may add some).

use std::fmt;

use crate::{
    chat::{
        ConversationKind, ConversationList, ConversationSummary, HistoryPage, Message, ReadMark,
        ReplyLanguage, SendResponse, Sender, SenderKind,
    },
    error::{ErrorBody, ErrorDetail},
    health::{CheckName, Health, HealthStatus},
    ids::{ConversationId, MessageId, TaskId, TenantId, UserId},
    session::{Role, SessionInfo, StreamTicket},
    stream::{
        ConversationRead, DecodeError, EventId, MessageCreated, Ping, Ready, Reset, ResetReason,
        StreamEvent, TaskDone, TaskPartEvent, Typing,
    },
    task::{
        CowList, CowRow, HealthReport, Help, PartBody, Progress, ResultData, RiskLevel, Shipment,
        ShipmentReport, SupportOffer, TaskKind, TaskList, TaskPart, TaskSnapshot, TaskState,
    },
};

/// A parsed JSON value, as much of it as the readers need.
pub trait Json: Sized {
    /// The field `key` of an object; `None` when this is not an object, or the field is missing
    /// or `null`.
    fn field(&self, key: &str) -> Option<Self>;
    /// The string, if this is one.
    fn string(&self) -> Option<String>;
    /// The number, if this is one.
    fn number(&self) -> Option<f64>;
    /// The boolean, if this is one.
    fn boolean(&self) -> Option<bool>;
    /// The elements, if this is an array.
    fn elements(&self) -> Option<Vec<Self>>;
}

/// What is wrong with a value: the path to the field, innermost last, and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadError {
    path: Vec<&'static str>,
    expected: &'static str,
}

impl ReadError {
    /// A value that is not `expected`.
    pub fn expected(expected: &'static str) -> Self {
        Self {
            path: Vec::new(),
            expected,
        }
    }

    fn at(mut self, key: &'static str) -> Self {
        self.path.push(key);
        self
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            return write!(f, "expected {}", self.expected);
        }
        f.write_str("field ")?;
        for (i, key) in self.path.iter().rev().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            f.write_str(key)?;
        }
        write!(f, ": expected {}", self.expected)
    }
}

impl std::error::Error for ReadError {}

/// A type a client reads from parsed JSON.
pub trait FromJson: Sized {
    /// Reads `json`, or says what is wrong with it.
    fn from_json<J: Json>(json: &J) -> Result<Self, ReadError>;
}

/// The required field `key` of `json`.
pub fn field<J: Json, T: FromJson>(json: &J, key: &'static str) -> Result<T, ReadError> {
    match json.field(key) {
        Some(value) => T::from_json(&value).map_err(|e| e.at(key)),
        None => Err(ReadError::expected("a value").at(key)),
    }
}

/// The optional field `key` of `json` (missing or `null`: `None`).
pub fn optional<J: Json, T: FromJson>(json: &J, key: &'static str) -> Result<Option<T>, ReadError> {
    json.field(key)
        .map(|value| T::from_json(&value).map_err(|e| e.at(key)))
        .transpose()
}

impl FromJson for String {
    fn from_json<J: Json>(json: &J) -> Result<Self, ReadError> {
        json.string().ok_or(ReadError::expected("a string"))
    }
}

impl FromJson for bool {
    fn from_json<J: Json>(json: &J) -> Result<Self, ReadError> {
        json.boolean().ok_or(ReadError::expected("a boolean"))
    }
}

impl FromJson for f64 {
    fn from_json<J: Json>(json: &J) -> Result<Self, ReadError> {
        json.number().ok_or(ReadError::expected("a number"))
    }
}

/// A whole number in `0..=max` (JSON numbers are doubles: exact up to 2^53).
fn whole<J: Json>(json: &J, max: f64) -> Result<u64, ReadError> {
    match json.number() {
        Some(n) if n >= 0.0 && n <= max && n.fract() == 0.0 => Ok(n as u64),
        _ => Err(ReadError::expected("a whole number in range")),
    }
}

impl FromJson for u8 {
    fn from_json<J: Json>(json: &J) -> Result<Self, ReadError> {
        whole(json, f64::from(u8::MAX)).map(|n| n as u8)
    }
}

impl FromJson for u32 {
    fn from_json<J: Json>(json: &J) -> Result<Self, ReadError> {
        whole(json, f64::from(u32::MAX)).map(|n| n as u32)
    }
}

impl FromJson for u64 {
    fn from_json<J: Json>(json: &J) -> Result<Self, ReadError> {
        whole(json, 9_007_199_254_740_991.0)
    }
}

impl<T: FromJson> FromJson for Vec<T> {
    fn from_json<J: Json>(json: &J) -> Result<Self, ReadError> {
        json.elements()
            .ok_or(ReadError::expected("an array"))?
            .iter()
            .map(T::from_json)
            .collect()
    }
}

macro_rules! read_id {
    ($($id:ident),*) => {$(
        impl FromJson for $id {
            fn from_json<J: Json>(json: &J) -> Result<Self, ReadError> {
                String::from_json(json).map(Self)
            }
        }
    )*};
}
read_id!(UserId, TenantId, ConversationId, MessageId, TaskId);

impl FromJson for EventId {
    /// A decimal string (what the server writes) or a number, as its serde form accepts.
    fn from_json<J: Json>(json: &J) -> Result<Self, ReadError> {
        match json.string() {
            Some(text) => text
                .parse()
                .map_err(|_| ReadError::expected("a decimal event id")),
            None => u64::from_json(json).map(Self),
        }
    }
}

/// Every wire enum: one `as_str` / `FromStr` spelling, which golden tests check against serde's.
macro_rules! wire_enum {
    ($($ty:ident { $($variant:ident = $wire:literal),* $(,)? })*) => {$(
        impl $ty {
            /// Every variant, for the golden tests.
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire),*
                }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = ReadError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($wire => Ok(Self::$variant),)*
                    _ => Err(ReadError::expected(concat!("a ", stringify!($ty), " (", $($wire, " "),* , ")"))),
                }
            }
        }

        impl FromJson for $ty {
            fn from_json<J: Json>(json: &J) -> Result<Self, ReadError> {
                String::from_json(json)?.parse()
            }
        }
    )*};
}

wire_enum! {
    TaskKind { CowList = "cow_list", HealthReport = "health_report", ShipmentReport = "shipment_report", Help = "help", Answer = "answer" }
    TaskState { Running = "running", Succeeded = "succeeded", Failed = "failed", Cancelled = "cancelled" }
    RiskLevel { Low = "low", Medium = "medium", High = "high" }
    ResetReason { TooOld = "too_old", Restarted = "restarted", Unknown = "unknown" }
    ConversationKind { Assistant = "assistant", Support = "support" }
    SenderKind { User = "user", Assistant = "assistant", Support = "support" }
    Role { Farmer = "farmer", Support = "support" }
    HealthStatus { Ok = "ok", Unavailable = "unavailable" }
    CheckName { Store = "store", Bus = "bus", Keys = "keys", Draining = "draining" }
    ReplyLanguage { Ja = "ja", En = "en" }
}

/// Structs whose fields are all read the same way: `Type { rust_field: "wireName" (kind) }`,
/// kind `req` (required) or `opt` (optional).
macro_rules! read_struct {
    ($($ty:ident { $($field:ident : $wire:literal $kind:ident),* $(,)? })*) => {$(
        impl FromJson for $ty {
            fn from_json<J: Json>(json: &J) -> Result<Self, ReadError> {
                Ok(Self { $($field: read_struct!(@$kind json, $wire)),* })
            }
        }
    )*};
    (@req $json:ident, $wire:literal) => { field($json, $wire)? };
    (@opt $json:ident, $wire:literal) => { optional($json, $wire)? };
    (@flat $json:ident, $wire:literal) => { FromJson::from_json($json)? };
}

read_struct! {
    ErrorDetail { code: "code" req, message: "message" req }
    ErrorBody { error: "error" req }
    Health { status: "status" req }
    SessionInfo {
        user_id: "userId" req, tenant_id: "tenantId" req, display_name: "displayName" req,
        role: "role" req, token: "token" opt,
    }
    StreamTicket { ticket: "ticket" req, expires_in: "expiresIn" req }
    ConversationSummary {
        id: "id" req, kind: "kind" req, title: "title" req, last_message: "lastMessage" opt,
        unread: "unread" req, owner_name: "ownerName" req, read_up_to: "readUpTo" req,
        others_read_up_to: "othersReadUpTo" req,
    }
    ConversationList { conversations: "conversations" req, next_cursor: "nextCursor" opt }
    ReadMark { conversation_id: "conversationId" req, seq: "seq" req }
    Typing { conversation_id: "conversationId" req, user_id: "userId" req, display_name: "displayName" req }
    ConversationRead { conversation_id: "conversationId" req, user_id: "userId" req, seq: "seq" req }
    SendResponse {
        message_id: "messageId" req, conversation_id: "conversationId" req, seq: "seq" req,
        created_at: "createdAt" req, task_id: "taskId" opt,
    }
    Sender { id: "id" req, kind: "kind" req, display_name: "displayName" req }
    Message {
        message_id: "messageId" req, conversation_id: "conversationId" req, seq: "seq" req,
        sender: "sender" req, text: "text" req, created_at: "createdAt" req, task: "task" opt,
        idempotency_key: "idempotencyKey" opt,
    }
    HistoryPage { messages: "messages" req, has_more: "hasMore" req }
    Progress { current: "current" req, total: "total" req, percentage: "percentage" req }
    CowRow {
        tag: "tag" req, name: "name" req, last_insemination: "lastInsemination" req,
        days_since: "daysSince" req, expected_date: "expectedDate" req,
    }
    CowList { criteria: "criteria" req, cows: "cows" req }
    HealthReport {
        tag: "tag" req, name: "name" req, milk_average_kg: "milkAverageKg" req,
        milk_baseline_kg: "milkBaselineKg" req, activity_index: "activityIndex" req,
        activity_normal: "activityNormal" req, risk: "risk" req, findings: "findings" req,
        recommended_actions: "recommendedActions" req,
    }
    Shipment { date: "date" req, head: "head" req, kg: "kg" req, destination: "destination" req }
    ShipmentReport {
        period_start: "periodStart" req, period_end: "periodEnd" req, head: "head" req,
        total_kg: "totalKg" req, shipments: "shipments" req, report_id: "reportId" req,
        pdf_url: "pdfUrl" req,
    }
    Help { examples: "examples" req }
    SupportOffer { summary: "summary" req }
    TaskSnapshot {
        task_id: "taskId" req, conversation_id: "conversationId" req, message_id: "messageId" req,
        kind: "kind" req, state: "state" req, progress: "progress" opt, parts: "parts" req,
        created_at: "createdAt" req, updated_at: "updatedAt" req,
    }
    TaskList { tasks: "tasks" req }
    Ready { last_event_id: "lastEventId" req, server_time: "serverTime" req }
    MessageCreated { conversation_id: "conversationId" req, message_id: "messageId" req, seq: "seq" req }
    Ping { server_time: "serverTime" req }
    Reset { reason: "reason" req }
    TaskDone {
        task_id: "taskId" req, message_id: "messageId" req, conversation_id: "conversationId" req,
        state: "state" req,
    }
    TaskPartEvent {
        task_id: "taskId" req, message_id: "messageId" req, conversation_id: "conversationId" req,
        part: "" flat,
    }
}

impl FromJson for ResultData {
    /// `{"kind": …, "data": {…}}` (adjacently tagged).
    fn from_json<J: Json>(json: &J) -> Result<Self, ReadError> {
        let kind: String = field(json, "kind")?;
        Ok(match kind.as_str() {
            "cow_list" => Self::CowList(field(json, "data")?),
            "health_report" => Self::HealthReport(field(json, "data")?),
            "shipment_report" => Self::ShipmentReport(field(json, "data")?),
            "help" => Self::Help(field(json, "data")?),
            "support_offer" => Self::SupportOffer(field(json, "data")?),
            _ => {
                return Err(ReadError::expected(
                    "a result kind (cow_list health_report shipment_report help support_offer)",
                )
                .at("kind"));
            }
        })
    }
}

impl FromJson for PartBody {
    /// Tagged by `type`, the other fields beside it (progress and result data flattened).
    fn from_json<J: Json>(json: &J) -> Result<Self, ReadError> {
        let kind: String = field(json, "type")?;
        Ok(match kind.as_str() {
            "status" => Self::Status {
                text: field(json, "text")?,
            },
            "intermediate" => Self::Intermediate {
                text: field(json, "text")?,
            },
            "progress" => Self::Progress {
                progress: Progress::from_json(json)?,
                text: field(json, "text")?,
            },
            "result" => Self::Result {
                text: field(json, "text")?,
                data: ResultData::from_json(json)?,
            },
            "text" => Self::Text {
                offset: field(json, "offset")?,
                text: field(json, "text")?,
            },
            "error" => Self::Error {
                code: field(json, "code")?,
                text: field(json, "text")?,
            },
            _ => {
                return Err(ReadError::expected(
                    "a part type (status intermediate progress result text error)",
                )
                .at("type"));
            }
        })
    }
}

impl FromJson for TaskPart {
    /// `{"part": n, "type": …, …}`: the number beside the flattened body.
    fn from_json<J: Json>(json: &J) -> Result<Self, ReadError> {
        Ok(Self {
            part: field(json, "part")?,
            body: PartBody::from_json(json)?,
        })
    }
}

impl StreamEvent {
    /// The event for an SSE `event:` name and its `data:` as parsed by whoever read the line
    /// (`None`: it was not JSON). [`StreamEvent::decode`] is this with `serde_json`'s parser;
    /// the widget calls it with the browser's.
    pub fn read_parsed<J: Json>(name: &str, data: Option<J>) -> Result<Self, DecodeError> {
        match data {
            Some(json) => Self::read(name, &json),
            None if Self::NAMES.contains(&name) => Err(DecodeError::BadData {
                event: name.to_owned(),
                reason: "the data is not JSON".into(),
            }),
            None => Err(DecodeError::UnknownEvent(name.to_owned())),
        }
    }

    /// The event for an SSE `event:` name and its parsed `data:`.
    pub fn read<J: Json>(name: &str, data: &J) -> Result<Self, DecodeError> {
        fn parse<J: Json, T: FromJson>(name: &str, data: &J) -> Result<T, DecodeError> {
            T::from_json(data).map_err(|e| DecodeError::BadData {
                event: name.to_owned(),
                reason: e.to_string(),
            })
        }
        Ok(match name {
            "ready" => Self::Ready(parse(name, data)?),
            "message.created" => Self::MessageCreated(parse(name, data)?),
            "typing" => Self::Typing(parse(name, data)?),
            "conversation.read" => Self::ConversationRead(parse(name, data)?),
            "task.status" | "task.intermediate" | "task.progress" | "task.result" | "task.text"
            | "task.error" => {
                let event = Self::task_part(parse(name, data)?);
                if event.name() != name {
                    return Err(DecodeError::BadData {
                        event: name.to_owned(),
                        reason: "the part's type is not the event's".to_owned(),
                    });
                }
                event
            }
            "task.done" => Self::TaskDone(parse(name, data)?),
            "ping" => Self::Ping(parse(name, data)?),
            "reset" => Self::Reset(parse(name, data)?),
            other => return Err(DecodeError::UnknownEvent(other.to_owned())),
        })
    }
}

impl Json for serde_json::Value {
    fn field(&self, key: &str) -> Option<Self> {
        self.get(key).filter(|v| !v.is_null()).cloned()
    }

    fn string(&self) -> Option<String> {
        self.as_str().map(str::to_owned)
    }

    fn number(&self) -> Option<f64> {
        self.as_f64()
    }

    fn boolean(&self) -> Option<bool> {
        self.as_bool()
    }

    fn elements(&self) -> Option<Vec<Self>> {
        self.as_array().cloned()
    }
}

#[cfg(test)]
mod tests;
