//! `GET /api/asyncapi.json`: the stream's events described in AsyncAPI 3.0, one message per
//! SSE `event:` name, its `data:` payload's schema generated from the protocol type the server
//! writes (as for [`crate::openapi`]). A test validates every event the dev-server's test
//! suites receive against it.

use farm_chat_protocol::{EventId, paths};
use schemars::generate::Contract;

use crate::schemas::{generator, payloads};
use serde_json::{Map, Value, json};

/// The document.
pub fn spec() -> Value {
    let mut g = generator(Contract::Serialize);
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
    let mut g = generator(Contract::Serialize);
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
