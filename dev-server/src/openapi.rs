//! `GET /api/openapi.json`: the API described in OpenAPI 3.2, so other implementations, tools
//! and the load generator can rely on the same contract. 3.2 because two things the server
//! enforces need it: the history's query as one object (`in: querystring`: `before` and
//! `after` never together), and the stream's events one by one (`itemSchema`).
//!
//! Every body's schema is generated from the protocol type the handler reads or answers
//! (schemars, `farm-chat-protocol`'s `schema` feature), so the document can't drift from the
//! code; the constraints the server enforces beyond the types (id patterns, the text's length)
//! are added here, next to the rules in [`crate::validate`], and a test checks them against
//! the server. The routes are the router's (a test checks both ways).

use farm_chat_protocol::{
    ErrorBody, Health, Readiness,
    chat::{
        ConversationList, HistoryPage, ReadMark, ReadRequest, SendRequest, SendResponse,
        TypingRequest,
    },
    paths,
    session::{LoginRequest, SessionInfo, StreamTicket},
    task::{TaskList, TaskSnapshot, TaskState},
};
use schemars::{JsonSchema, generate::Contract};

use crate::schemas::generator;
use serde_json::{Map, Value, json};

/// The schemas of every request and answer body, with the server's extra constraints.
fn components() -> Map<String, Value> {
    // Answers as the server writes them; requests as it reads them.
    let mut answers = generator(Contract::Serialize);
    for root in [
        answers.subschema_for::<ErrorBody>(),
        answers.subschema_for::<Health>(),
        answers.subschema_for::<Readiness>(),
        answers.subschema_for::<SessionInfo>(),
        answers.subschema_for::<StreamTicket>(),
        answers.subschema_for::<ConversationList>(),
        answers.subschema_for::<SendResponse>(),
        answers.subschema_for::<HistoryPage>(),
        answers.subschema_for::<ReadMark>(),
        answers.subschema_for::<TaskList>(),
        answers.subschema_for::<TaskSnapshot>(),
        answers.subschema_for::<TaskState>(),
    ] {
        drop(root);
    }
    drop(crate::schemas::payloads(&mut answers));
    let mut requests = generator(Contract::Deserialize);
    drop(requests.subschema_for::<LoginRequest>());
    drop(requests.subschema_for::<SendRequest>());
    drop(requests.subschema_for::<ReadRequest>());
    drop(requests.subschema_for::<TypingRequest>());
    let mut all = answers.take_definitions(true);
    all.extend(requests.take_definitions(true));
    constrain(&mut all);
    all
}

/// What the server enforces beyond the types: every id follows [`ID`] (`validate::id`), and a
/// message text is 1–4000 characters with one that is not white space (`validate::text`).
fn constrain(schemas: &mut Map<String, Value>) {
    for name in [
        "UserId",
        "TenantId",
        "ConversationId",
        "MessageId",
        "TaskId",
    ] {
        if let Some(Value::Object(schema)) = schemas.get_mut(name) {
            schema.insert("pattern".into(), ID.into());
        }
    }
    if let Some(props) = schemas
        .get_mut("SendRequest")
        .and_then(|s| s.get_mut("properties"))
        .and_then(Value::as_object_mut)
    {
        if let Some(Value::Object(key)) = props.get_mut("idempotencyKey") {
            key.insert("pattern".into(), ID.into());
        }
        if let Some(Value::Object(text)) = props.get_mut("text") {
            text.insert("minLength".into(), 1.into());
            text.insert("maxLength".into(), MAX_TEXT.into());
            text.insert("pattern".into(), TEXT.into());
        }
    }
    if let Some(Value::Object(seq)) = schemas
        .get_mut("ReadRequest")
        .and_then(|s| s.pointer_mut("/properties/seq"))
    {
        seq.insert("maximum".into(), i64::MAX.into());
    }
}

/// `#/components/schemas/{name}` of `T`.
fn r<T: JsonSchema>() -> String {
    format!("#/components/schemas/{}", T::schema_name())
}

fn error_responses(codes: &[(&str, &str)]) -> Value {
    let mut out = serde_json::Map::new();
    for (status, what) in codes {
        out.insert(
            (*status).to_owned(),
            json!({"description": what, "content": {"application/json": {"schema": {"$ref": r::<ErrorBody>()}}}}),
        );
    }
    Value::Object(out)
}

fn ok(schema: String, description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": schema}}}})
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

fn query(name: &str, description: &str, schema: Value, required: bool) -> Value {
    json!({"name": name, "in": "query", "required": required, "description": description, "schema": schema})
}

/// A message text: at least one character that is not white space, and no NUL
/// (`validate::text`).
const TEXT: &str = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$";
/// The most characters of a message.
const MAX_TEXT: usize = farm_chat_protocol::chat::MAX_TEXT_CHARS;

/// The pattern every id the server accepts follows (`validate::id`).
const ID: &str = "^[A-Za-z0-9._:-]{1,128}$";

/// A seq cursor: stored as a signed 64-bit integer.
fn seq_cursor() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": i64::MAX})
}

fn task_id_param() -> Value {
    json!({"name": "taskId", "in": "path", "required": true, "schema": {"type": "string", "pattern": ID}})
}

/// The cursor of the conversation list, as `nextCursor` writes it and the server reads it:
/// the newest activity (printable ASCII without `~`, up to 40) and the id, joined by `~`.
const LIST_CURSOR: &str = "^[!-}]{0,40}~[A-Za-z0-9._:-]{1,128}$";

/// `GET /api/chat/history`'s query as one object: `before` and `after` are never given
/// together (the server answers 400 `invalid_query`), which separate query parameters can't
/// say.
fn history_query() -> Value {
    json!({
        "name": "query",
        "in": "querystring",
        "required": true,
        "description": "conversationId; limit 1–100 (default 50); before (scrolling up) or after (catching up), not both",
        "content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object",
            "properties": {
                "conversationId": {"type": "string", "pattern": ID, "description": "the conversation"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 100, "description": "1–100, default 50"},
                "before": merge(seq_cursor(), json!({"description": "messages with seq below this (scrolling up)"})),
                "after": merge(seq_cursor(), json!({"description": "messages with seq above this (catching up)"}))
            },
            "required": ["conversationId"],
            "not": {"required": ["before", "after"]}
        }}}
    })
}

/// One event of the stream (`text/event-stream`'s `itemSchema`): its `event:` name and its
/// `data:` line, JSON of the payload that name carries (the AsyncAPI document's schemas); a
/// block without data only sets `retry:` (a draining server's last word).
fn stream_item() -> Value {
    let mut g = generator(Contract::Serialize);
    let events: Vec<Value> = crate::schemas::payloads(&mut g)
        .into_iter()
        .map(|(name, payload, summary)| {
            json!({
                "description": summary,
                "required": ["event", "data"],
                "properties": {
                    "event": {"const": name},
                    "data": {
                        "contentMediaType": "application/json",
                        "contentSchema": {"$ref": format!("#/components/schemas/{payload}")}
                    }
                }
            })
        })
        .chain(std::iter::once(json!({
            "description": "No event: only retry: (when to come back)",
            "not": {"required": ["data"]}
        })))
        .collect();
    json!({
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9]{1,20}$"},
            "event": {"type": "string"},
            "data": {"type": "string"},
            "retry": {"type": "integer", "minimum": 0}
        },
        "oneOf": events
    })
}

/// The document.
pub fn spec() -> Value {
    let auth_errors = [
        ("401", "not signed in"),
        ("403", "CSRF rejected or not a participant"),
    ];
    json!({
        "openapi": "3.2.0",
        "info": {
            "title": "farm-chat API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Chat with the farm assistant and support staff. REST to send and read; one SSE stream per user for events. Every error is {\"error\":{\"code\",\"message\"}}."
        },
        "security": [{"cookie": []}, {"bearer": []}],
        "paths": {
            (paths::api::HEALTH): {"get": {"summary": "Ready or not, in one word (the readiness checks of /api/health/ready)", "security": [], "responses": {"200": ok(r::<Health>(), "ready: {\"status\":\"ok\"}"), "503": ok(r::<Health>(), "not ready: {\"status\":\"unavailable\"}")}}},
            (paths::api::HEALTH_LIVE): {"get": {"summary": "Liveness: the process answers (asks no dependency)", "security": [], "responses": {"200": ok(r::<Health>(), "alive")}}},
            (paths::api::HEALTH_READY): {"get": {"summary": "Readiness: the store and the bus answered within a second, the JWT keys are loaded, not draining", "security": [], "responses": {"200": ok(r::<Readiness>(), "ready, each check passed"), "503": ok(r::<Readiness>(), "not ready: the failed checks say why")}}},
            (paths::api::SESSION): {
                "post": {
                    "summary": "Sign in (stands in for the host site's SSO); sets the session cookie and returns a Bearer token",
                    "security": [],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": r::<LoginRequest>()}}}},
                    "responses": merge(json!({"200": ok(r::<SessionInfo>(), "signed in")}), error_responses(&[("400", "bad input"), ("401", "unknown user"), ("403", "csrf_rejected: an Origin that is not this server's nor allowed"), ("408", "request_timeout: the body did not arrive in time"), ("413", "body over 64 KiB"), ("429", "rate_limited: too many sign-ins from this address or as this user (Retry-After)")]))
                },
                "get": {"summary": "The signed-in user", "responses": merge(json!({"200": ok(r::<SessionInfo>(), "the user")}), error_responses(&[("401", "not signed in")]))},
                "delete": {"summary": "Sign out; the session's streams close", "responses": merge(json!({"204": {"description": "signed out"}}), error_responses(&auth_errors))}
            },
            (paths::api::CONVERSATIONS): {"get": {
                "summary": "The user's conversations, newest activity first, a page at a time (a farmer's assistant and support chats are created on first use; support staff get one per farmer of their farm)",
                "parameters": [
                    query("kind", "only this kind", json!({"type": "string", "enum": ["assistant", "support"]}), false),
                    query("limit", "1–100, default 50", json!({"type": "integer", "minimum": 1, "maximum": 100}), false),
                    query("before", "the nextCursor of the previous page", json!({"type": "string", "pattern": LIST_CURSOR}), false)
                ],
                "responses": merge(json!({"200": ok(r::<ConversationList>(), "conversations")}), error_responses(&[("400", "invalid_query"), ("401", "not signed in")]))
            }},
            (paths::api::READ): {"post": {
                "summary": "Mark a conversation read up to seq (never backwards, never past the newest message); every participant gets conversation.read",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": r::<ReadRequest>()}}}},
                "responses": merge(json!({"200": ok(r::<ReadMark>(), "the reader's mark now")}), error_responses(&[("400", "bad input"), ("401", "not signed in"), ("403", "csrf_rejected or not_a_participant"), ("404", "no such conversation"), ("429", "rate_limited (Retry-After)")]))
            }},
            (paths::api::TYPING): {"post": {
                "summary": "The user is typing: the other participants' open streams get typing (never stored, never replayed)",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": r::<TypingRequest>()}}}},
                "responses": merge(json!({"204": {"description": "told"}}), error_responses(&[("400", "bad input"), ("401", "not signed in"), ("403", "csrf_rejected or not_a_participant"), ("404", "no such conversation"), ("429", "rate_limited (Retry-After)")]))
            }},
            (paths::api::SEND): {"post": {
                "summary": "Send a message. Idempotent per idempotencyKey: a retry with the same body answers 200 with the same message; another body 409. In an assistant conversation it starts a task (taskId).",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": r::<SendRequest>()}}}},
                "responses": merge(
                    json!({"201": ok(r::<SendResponse>(), "stored"), "200": ok(r::<SendResponse>(), "a retry of a stored send")}),
                    error_responses(&[("400", "bad input (invalid_json, invalid_id, invalid_text)"), ("401", "not signed in"), ("403", "csrf_rejected or not_a_participant"), ("404", "no such conversation"), ("409", "idempotency_conflict"), ("408", "request_timeout: the body did not arrive in time"), ("413", "body over 64 KiB"), ("429", "rate_limited (Retry-After)")])
                )
            }},
            (paths::api::HISTORY): {"get": {
                "summary": "A page of a conversation's messages in seq order; assistant replies carry their task",
                "description": "Give before or after, not both (400 invalid_query otherwise).",
                "parameters": [history_query()],
                "responses": merge(json!({"200": ok(r::<HistoryPage>(), "messages")}), error_responses(&[("400", "invalid_query"), ("401", "not signed in"), ("403", "not_a_participant"), ("404", "no such conversation")]))
            }},
            (paths::api::STREAM): {"get": {
                "summary": "The user's SSE stream for all their conversations",
                "description": "Events (id:, event:, one JSON data: line): ready {lastEventId, serverTime} first (with retry: 1000); message.created {conversationId, messageId, seq}; task.status / task.intermediate {taskId, messageId, conversationId, part, type, text}; task.progress {…, current, total, percentage}; task.result {…, kind, text, data}; task.error {…, code, text}; task.done {taskId, messageId, conversationId, state}; ping {serverTime} every 15 s; reset {reason} when the client must refetch history. Resume with the Last-Event-ID header or ?lastEventId= (the header wins). At most 10 streams per user and 4 per session: a new stream beyond closes the oldest of the session holding the most (it reconnects and resumes); none is refused.",
                "parameters": [
                    query("lastEventId", "resume after this event id", json!({"type": "string", "pattern": "^[0-9]{1,20}$"}), false),
                    query("ticket", "single-use ticket from POST /api/chat/stream-ticket, instead of cookie or Bearer", json!({"type": "string"}), false),
                    {"name": "Last-Event-ID", "in": "header", "required": false, "schema": {"type": "string"}}
                ],
                "responses": merge(json!({"200": {"description": "the stream", "content": {"text/event-stream": {"itemSchema": stream_item()}}}}), error_responses(&[("401", "not signed in or bad ticket")]))
            }},
            (paths::api::STREAM_TICKET): {"post": {
                "summary": "A single-use ticket valid 30 s for GET /api/chat/stream?ticket=, for pages whose cookies can't reach the API",
                "responses": merge(json!({"200": ok(r::<StreamTicket>(), "the ticket")}), error_responses(&auth_errors))
            }},
            (paths::api::TASKS): {"get": {
                "summary": "The user's assistant tasks, newest first",
                "parameters": [query("state", "only tasks in this state", json!({"$ref": r::<TaskState>()}), false)],
                "responses": merge(json!({"200": ok(r::<TaskList>(), "tasks")}), error_responses(&[("400", "invalid_query"), ("401", "not signed in")]))
            }},
            "/api/tasks/{taskId}": {"get": {
                "summary": "A task's snapshot: state, progress and every part so far",
                "parameters": [task_id_param()],
                "responses": merge(json!({"200": ok(r::<TaskSnapshot>(), "the task")}), error_responses(&[("400", "invalid_id or invalid_path"), ("401", "not signed in"), ("404", "no such task of this user")]))
            }},
            "/api/tasks/{taskId}/cancel": {"post": {
                "summary": "Stop a running task; its parts so far are kept, then task.error (cancelled) and task.done",
                "parameters": [task_id_param()],
                "responses": merge(json!({"200": ok(r::<TaskSnapshot>(), "cancelled")}), error_responses(&[("400", "invalid_id or invalid_path"), ("401", "not signed in"), ("403", "csrf_rejected"), ("404", "no such task of this user"), ("409", "task_not_running")]))
            }},
            "/api/reports/{reportId}.pdf": {"get": {
                "summary": "The signed-in user's farm's monthly shipment report as a PDF (reportId: shipments-YYYY-MM)",
                "parameters": [{"name": "reportId", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^shipments-[0-9]{4}-[0-9]{2}$"}}],
                "responses": merge(json!({"200": {"description": "the report", "content": {"application/pdf": {}}}}), error_responses(&[("401", "not signed in"), ("404", "no such report")]))
            }},
            (paths::api::OPENAPI): {"get": {"summary": "This document", "security": [], "responses": {"200": {"description": "OpenAPI 3.2"}}}},
            (paths::api::ASYNCAPI): {"get": {"summary": "The stream's events: one message per SSE event name, with its payload's schema", "security": [], "responses": {"200": {"description": "AsyncAPI 3.0"}}}}
        },
        "components": {
            "securitySchemes": {
                "cookie": {"type": "apiKey", "in": "cookie", "name": crate::auth::COOKIE},
                "bearer": {"type": "http", "scheme": "bearer"}
            },
            "schemas": components()
        }
    })
}
