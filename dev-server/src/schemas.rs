//! What both API documents are generated with: the JSON Schema generator (definitions under
//! `#/components/schemas`) and the stream's events, each with the protocol type of its
//! payload. [`crate::openapi`] and [`crate::asyncapi`] both build on it.

use farm_chat_protocol::stream::{
    ConversationRead, MessageCreated, Ping, Ready, Reset, TaskDone, TaskPartEvent, Typing,
};
use schemars::{
    JsonSchema, SchemaGenerator,
    generate::{Contract, SchemaSettings},
};

/// A generator whose definitions land in `#/components/schemas`.
pub fn generator(contract: Contract) -> SchemaGenerator {
    SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
            s.contract = contract;
        })
        .into_generator()
}

/// Each event name with the schema name of its payload, registering the schemas in `g`.
pub fn payloads(g: &mut schemars::SchemaGenerator) -> Vec<(&'static str, String, &'static str)> {
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
            "task.text",
            part.clone(),
            "A delta of the answer's text (markdown): `text` follows the part's first `offset` UTF-8 bytes. Apply it when `offset` is what you hold, skip what you hold, and refetch the task (`GET /api/tasks/{id}`, whose snapshot holds the whole text at offset 0) when a delta starts past it or the task ends. Live only: no `id:`, never replayed, so an answer's hundreds of deltas never push other events out of the resume log; after a reconnect the snapshot has the text so far.",
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
