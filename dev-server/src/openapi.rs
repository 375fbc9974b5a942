//! `GET /api/openapi.json`: the API described in OpenAPI 3.1, so other implementations, tools
//! and the load generator can rely on the same contract.

use serde_json::{Value, json};

fn error_responses(codes: &[(&str, &str)]) -> Value {
    let mut out = serde_json::Map::new();
    for (status, what) in codes {
        out.insert(
            (*status).to_owned(),
            json!({"description": what, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
    }
    Value::Object(out)
}

fn ok(schema: &str, description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
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

/// The document.
pub fn spec() -> Value {
    let auth_errors = [
        ("401", "not signed in"),
        ("403", "CSRF rejected or not a participant"),
    ];
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "farm-chat API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Chat with the farm assistant and support staff. REST to send and read; one SSE stream per user for events. Every error is {\"error\":{\"code\",\"message\"}}."
        },
        "security": [{"cookie": []}, {"bearer": []}],
        "paths": {
            "/api/health": {"get": {"summary": "Liveness", "security": [], "responses": {"200": ok("Health", "serving")}}},
            "/api/session": {
                "post": {
                    "summary": "Sign in (stands in for the host site's SSO); sets the session cookie and returns a Bearer token",
                    "security": [],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LoginRequest"}}}},
                    "responses": merge(json!({"200": ok("Session", "signed in")}), error_responses(&[("400", "bad input"), ("401", "unknown user"), ("403", "csrf_rejected: an Origin that is not this server's nor allowed"), ("408", "request_timeout: the body did not arrive in time"), ("413", "body over 64 KiB"), ("429", "rate_limited: too many sign-ins from this address or as this user (Retry-After)")]))
                },
                "get": {"summary": "The signed-in user", "responses": merge(json!({"200": ok("Session", "the user")}), error_responses(&[("401", "not signed in")]))},
                "delete": {"summary": "Sign out; the session's streams close", "responses": merge(json!({"204": {"description": "signed out"}}), error_responses(&auth_errors))}
            },
            "/api/conversations": {"get": {
                "summary": "The user's conversations (a farmer's assistant and support chats are created on first use)",
                "responses": merge(json!({"200": ok("ConversationList", "conversations")}), error_responses(&auth_errors))
            }},
            "/api/chat/send": {"post": {
                "summary": "Send a message. Idempotent per idempotencyKey: a retry with the same body answers 200 with the same message; another body 409. In an assistant conversation it starts a task (taskId).",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SendRequest"}}}},
                "responses": merge(
                    json!({"201": ok("SendResponse", "stored"), "200": ok("SendResponse", "a retry of a stored send")}),
                    error_responses(&[("400", "bad input (invalid_json, invalid_id, invalid_text)"), ("401", "not signed in"), ("403", "csrf_rejected or not_a_participant"), ("404", "no such conversation"), ("409", "idempotency_conflict"), ("408", "request_timeout: the body did not arrive in time"), ("413", "body over 64 KiB"), ("429", "rate_limited (Retry-After)")])
                )
            }},
            "/api/chat/history": {"get": {
                "summary": "A page of a conversation's messages in seq order; assistant replies carry their task",
                "description": "Give before or after, not both (400 invalid_query otherwise).",
                "parameters": [
                    query("conversationId", "the conversation", json!({"type": "string", "pattern": ID}), true),
                    query("limit", "1–100, default 50", json!({"type": "integer", "minimum": 1, "maximum": 100}), false),
                    query("before", "messages with seq below this (scrolling up); not with after", seq_cursor(), false),
                    query("after", "messages with seq above this (catching up); not with before", seq_cursor(), false)
                ],
                "responses": merge(json!({"200": ok("HistoryPage", "messages")}), error_responses(&[("400", "invalid_query"), ("401", "not signed in"), ("403", "not_a_participant"), ("404", "no such conversation")]))
            }},
            "/api/chat/stream": {"get": {
                "summary": "The user's SSE stream for all their conversations",
                "description": "Events (id:, event:, one JSON data: line): ready {lastEventId, serverTime} first (with retry: 1000); message.created {conversationId, messageId, seq}; task.status / task.intermediate {taskId, messageId, conversationId, part, type, text}; task.progress {…, current, total, percentage}; task.result {…, kind, text, data}; task.error {…, code, text}; task.done {taskId, messageId, conversationId, state}; ping {serverTime} every 15 s; reset {reason} when the client must refetch history. Resume with the Last-Event-ID header or ?lastEventId= (the header wins). At most 10 streams per user and 4 per session: a new stream beyond closes the oldest of the session holding the most (it reconnects and resumes); none is refused.",
                "parameters": [
                    query("lastEventId", "resume after this event id", json!({"type": "string", "pattern": "^[0-9]{1,20}$"}), false),
                    query("ticket", "single-use ticket from POST /api/chat/stream-ticket, instead of cookie or Bearer", json!({"type": "string"}), false),
                    {"name": "Last-Event-ID", "in": "header", "required": false, "schema": {"type": "string"}}
                ],
                "responses": merge(json!({"200": {"description": "the stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}}}), error_responses(&[("401", "not signed in or bad ticket")]))
            }},
            "/api/chat/stream-ticket": {"post": {
                "summary": "A single-use ticket valid 30 s for GET /api/chat/stream?ticket=, for pages whose cookies can't reach the API",
                "responses": merge(json!({"200": ok("StreamTicket", "the ticket")}), error_responses(&auth_errors))
            }},
            "/api/tasks": {"get": {
                "summary": "The user's assistant tasks, newest first",
                "parameters": [query("state", "only tasks in this state", json!({"$ref": "#/components/schemas/TaskState"}), false)],
                "responses": merge(json!({"200": ok("TaskList", "tasks")}), error_responses(&[("400", "invalid_query"), ("401", "not signed in")]))
            }},
            "/api/tasks/{taskId}": {"get": {
                "summary": "A task's snapshot: state, progress and every part so far",
                "parameters": [task_id_param()],
                "responses": merge(json!({"200": ok("TaskSnapshot", "the task")}), error_responses(&[("400", "invalid_id or invalid_path"), ("401", "not signed in"), ("404", "no such task of this user")]))
            }},
            "/api/tasks/{taskId}/cancel": {"post": {
                "summary": "Stop a running task; its parts so far are kept, then task.error (cancelled) and task.done",
                "parameters": [task_id_param()],
                "responses": merge(json!({"200": ok("TaskSnapshot", "cancelled")}), error_responses(&[("400", "invalid_id or invalid_path"), ("401", "not signed in"), ("403", "csrf_rejected"), ("404", "no such task of this user"), ("409", "task_not_running")]))
            }},
            "/api/reports/{reportId}.pdf": {"get": {
                "summary": "The signed-in user's farm's monthly shipment report as a PDF (reportId: shipments-YYYY-MM)",
                "parameters": [{"name": "reportId", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^shipments-[0-9]{4}-[0-9]{2}$"}}],
                "responses": merge(json!({"200": {"description": "the report", "content": {"application/pdf": {}}}}), error_responses(&[("401", "not signed in"), ("404", "no such report")]))
            }},
            "/api/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {"200": {"description": "OpenAPI 3.1"}}}}
        },
        "components": {
            "securitySchemes": {
                "cookie": {"type": "apiKey", "in": "cookie", "name": crate::auth::COOKIE},
                "bearer": {"type": "http", "scheme": "bearer"}
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
                "Health": {"type": "object", "properties": {"status": {"const": "ok"}}},
                "LoginRequest": {"type": "object", "required": ["userId"], "additionalProperties": false, "properties": {"userId": {"type": "string", "pattern": ID}}},
                "Session": {"type": "object", "required": ["userId", "tenantId", "displayName", "role"], "properties": {
                    "userId": {"type": "string"}, "tenantId": {"type": "string"}, "displayName": {"type": "string"},
                    "role": {"enum": ["farmer", "support"]}, "token": {"type": "string", "description": "only from POST"}}},
                "StreamTicket": {"type": "object", "properties": {"ticket": {"type": "string"}, "expiresIn": {"type": "integer"}}},
                "ConversationList": {"type": "object", "properties": {"conversations": {"type": "array", "items": {"$ref": "#/components/schemas/Conversation"}}}},
                "Conversation": {"type": "object", "properties": {
                    "id": {"type": "string"}, "kind": {"enum": ["assistant", "support"]}, "title": {"type": "string"},
                    "lastMessage": {"oneOf": [{"$ref": "#/components/schemas/Message"}, {"type": "null"}]}, "unread": {"type": "integer"}}},
                "SendRequest": {"type": "object", "required": ["conversationId", "text", "idempotencyKey"], "additionalProperties": false, "properties": {
                    "conversationId": {"type": "string", "pattern": ID},
                    "text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT, "pattern": TEXT, "description": "1–4000 characters after trimming surrounding white space, at least one that is not white space, no NUL"},
                    "idempotencyKey": {"type": "string", "pattern": ID}}},
                "SendResponse": {"type": "object", "properties": {
                    "messageId": {"type": "string"}, "conversationId": {"type": "string"}, "seq": {"type": "integer"},
                    "createdAt": {"type": "string", "format": "date-time"}, "taskId": {"type": "string"}}},
                "HistoryPage": {"type": "object", "properties": {"messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}}, "hasMore": {"type": "boolean"}}},
                "Message": {"type": "object", "properties": {
                    "messageId": {"type": "string"}, "conversationId": {"type": "string"}, "seq": {"type": "integer"},
                    "sender": {"type": "object", "properties": {"id": {"type": "string"}, "kind": {"enum": ["user", "assistant", "support"]}, "displayName": {"type": "string"}}},
                    "text": {"type": "string"}, "createdAt": {"type": "string", "format": "date-time"},
                    "task": {"$ref": "#/components/schemas/TaskSnapshot"},
                    "idempotencyKey": {"type": "string", "description": "only on the reader's own messages"}}},
                "TaskState": {"enum": ["running", "succeeded", "failed", "cancelled"]},
                "TaskList": {"type": "object", "properties": {"tasks": {"type": "array", "items": {"$ref": "#/components/schemas/TaskSnapshot"}}}},
                "TaskSnapshot": {"type": "object", "properties": {
                    "taskId": {"type": "string"}, "conversationId": {"type": "string"}, "messageId": {"type": "string"},
                    "kind": {"enum": ["cow_list", "health_report", "shipment_report", "help"]},
                    "state": {"$ref": "#/components/schemas/TaskState"},
                    "progress": {"oneOf": [{"$ref": "#/components/schemas/Progress"}, {"type": "null"}]},
                    "parts": {"type": "array", "items": {"$ref": "#/components/schemas/TaskPart"}},
                    "createdAt": {"type": "string"}, "updatedAt": {"type": "string"}}},
                "Progress": {"type": "object", "properties": {"current": {"type": "integer"}, "total": {"type": "integer"}, "percentage": {"type": "integer", "minimum": 0, "maximum": 100}}},
                "TaskPart": {"type": "object", "required": ["part", "type"], "description": "Keyed by (taskId, part); a later part with the same number replaces the earlier one. status/intermediate: text; progress: current, total, percentage, text; result: text, kind, data; error: code, text.", "properties": {
                    "part": {"type": "integer"}, "type": {"enum": ["status", "intermediate", "progress", "result", "error"]},
                    "text": {"type": "string"}, "code": {"type": "string"}, "kind": {"type": "string"}, "data": {"type": "object"}}}
            }
        }
    })
}
