//! # farm-chat-protocol
//!
//! The wire types the widget and the dev-server share: one source of truth, so a field renamed
//! on one side fails to compile on the other instead of failing silently in a browser.
//!
//! - [`ids`]: newtypes for every id on the wire (users, tenants, conversations, messages,
//!   tasks), so a `MessageId` can never be passed where a `TaskId` is meant.
//! - [`error`]: the JSON error body every failing API call answers with,
//!   `{"error":{"code","message"}}`.
//! - [`health`]: `GET /api/health`.
//! - [`paths`]: every API path, spelled once (relative to the base, and under `/api`).
//! - [`session`]: signing in and out, the current user, stream tickets.
//! - [`chat`]: conversations, sending (idempotent) and paged history.
//! - [`task`]: assistant tasks, the parts of their replies and their typed results.
//! - [`stream`]: the SSE events of `GET /api/chat/stream`, their ids and their decoding.
//! - [`read`]: every type a client receives, read from JSON that something else parsed (the
//!   browser's `JSON.parse` in the widget), so the wasm carries no serde deserialisers; golden
//!   tests hold the readers to serde's own output.
//!
//! This crate has no web or server dependencies (only `serde` and `serde_json`): it compiles for the browser
//! (wasm32) and for the server alike.

pub mod chat;
pub mod error;
pub mod health;
pub mod ids;
pub mod paths;
pub mod read;
pub mod session;
pub mod stream;
pub mod task;

pub use error::{ErrorBody, ErrorDetail};
pub use health::{CheckName, Health, HealthCheck, HealthStatus, Readiness};
pub use ids::{ConversationId, MessageId, TaskId, TenantId, UserId};
pub use stream::{EventId, StreamEvent};
