//! `GET /api/asyncapi.json`: the stream's events described in AsyncAPI 3.0, one message per
//! SSE `event:` name, its `data:` payload's schema generated from the protocol type the server
//! writes (as for [`crate::openapi`]). A test validates every event the dev-server's test
//! suites receive against it.

use farm_chat_protocol::{
    EventId, paths,
    stream::{
        ConversationRead, MessageCreated, Ping, Ready, Reset, TaskDone, TaskPartEvent, Typing,
    },
};
use schemars::{JsonSchema, generate::Contract};
use serde_json::{Map, Value, json};

/// Each event name with the schema name of its payload, registering the schemas in `g`.
pub(crate) fn payloads(
    g: &mut schemars::SchemaGenerator,
) -> Vec<(&'static str, String, &'static str)> {
    fn named<T: JsonSchema>(g: &mut schemars::SchemaGenerator) -> String {
        drop(g.subschema_for::<T>());
        T::schema_name().into_owned()
    }
    let part = named::<TaskPartEvent>(g);
    vec![
        (
            "ready",
            named::<Ready>(g),
            "The first event of every stream, with the id the client stands at (and `retry:`).",
        ),
        (
            "message.created",
            named::<MessageCreated>(g),
            "A message was stored in one of the user's conversations: ids only; the client reads it from history.",
        ),
        (
            "task.status",
            part.clone(),
            "What the assistant is doing now.",
        ),
        (
            "task.intermediate",
            part.clone(),
            "Something the assistant found on the way.",
        ),
        (
            "task.progress",
            part.clone(),
            "How far the task is; never decreasing.",
        ),
        (
            "task.result",
            part.clone(),
            "The task's result (a table, a report, help).",
        ),
        (
            "task.error",
            part,
            "The task failed or was cancelled (`code`).",
        ),
        (
            "task.done",
            named::<TaskDone>(g),
            "The task ended; no more parts follow.",
        ),
        (
            "ping",
            named::<Ping>(g),
            "Every 15 s on an idle stream, so proxies keep it and clients can tell a dead one.",
        ),
        (
            "reset",
            named::<Reset>(g),
            "The server can't replay what the client missed: refetch history.",
        ),
        (
            "typing",
            named::<Typing>(g),
            "Someone else is typing in a human conversation. Live only: no `id:`, never stored or replayed; show it for a few seconds.",
        ),
        (
            "conversation.read",
            named::<ConversationRead>(g),
            "A participant (or the user in another tab) read a conversation up to `seq`: the reader's own messages up to it show as read.",
        ),
    ]
}

/// The document.
pub fn spec() -> Value {
    let mut g = crate::openapi::generator(Contract::Serialize);
    let events = payloads(&mut g);
    drop(g.subschema_for::<EventId>());
    let mut messages = Map::new();
    let mut channel_messages = Map::new();
    let mut operation_messages = Vec::new();
    for (name, payload, description) in &events {
        messages.insert(
            (*name).to_owned(),
            json!({
                "name": name,
                "summary": description,
                "contentType": "application/json",
                "payload": {"$ref": format!("#/components/schemas/{payload}")},
            }),
        );
        channel_messages.insert(
            (*name).to_owned(),
            json!({"$ref": format!("#/components/messages/{name}")}),
        );
        operation_messages.push(json!({"$ref": format!("#/channels/stream/messages/{name}")}));
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "farm-chat stream",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "GET /api/chat/stream: one Server-Sent Events stream per user for all their conversations. Each event has `id:` (an EventId, increasing), `event:` (the message name) and one `data:` line of JSON (the payload). Resume with the Last-Event-ID header or ?lastEventId=."
        },
        "channels": {
            "stream": {
                "address": paths::api::STREAM,
                "title": "The user's event stream (text/event-stream)",
                "messages": channel_messages,
            }
        },
        "operations": {
            "receiveEvents": {
                "action": "receive",
                "channel": {"$ref": "#/channels/stream"},
                "messages": operation_messages,
            }
        },
        "components": {
            "messages": messages,
            "schemas": g.take_definitions(true),
        }
    })
}

/// The payload schema of each event name (`#/components/schemas/…` refs resolved against the
/// document), for validators.
pub fn event_names() -> Vec<&'static str> {
    let mut g = crate::openapi::generator(Contract::Serialize);
    payloads(&mut g).into_iter().map(|(n, _, _)| n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use farm_chat_protocol::StreamEvent;

    #[test]
    fn every_event_the_protocol_names_is_described() {
        let mut described = event_names();
        described.sort_unstable();
        let mut named = StreamEvent::NAMES.to_vec();
        named.sort_unstable();
        assert_eq!(described, named);
        let doc = spec();
        for name in StreamEvent::NAMES {
            let payload = doc["components"]["messages"][name]["payload"]["$ref"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches("#/components/schemas/")
                .to_owned();
            assert!(
                doc["components"]["schemas"][&payload].is_object(),
                "{name}: {payload}"
            );
        }
    }
}
