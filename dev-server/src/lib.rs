//! # farm-chat-dev-server
//!
//! The backend the widget talks to in development and in every browser test. It must behave
//! like a real server, so the pieces are the ones a production service has:
//!
//! - [`config`]: the command line (each flag also an environment variable).
//! - [`error`]: [`ApiError`], the one error type; every failure answers
//!   `{"error":{"code","message"}}` and 5xx details go to the log, not the client.
//! - [`routes`]: the router of `/api`; [`session`], [`chat`] and [`stream`] its handlers.
//! - [`auth`]: signed sessions (cookie or Bearer), CSRF, stream tickets.
//! - [`bus`]: the [`EventBus`](bus::EventBus) that owns event ids, keeps the resume log and
//!   fans events out: [`hub`] in-process, [`bus::RedisBus`] across instances (`--redis-url`).
//! - [`assistant`]: intent routing and the task plans, computed from the demo [`herd`];
//!   [`tasks`] runs them (pacing, snapshots hot and durable, cancel, `/api/tasks`).
//! - [`store`]: the durable, async [`Store`](store::Store): SQLite (a file, or `:memory:`) or
//!   PostgreSQL (`--database-url`, shared by several instances).
//! - [`shared`]: what several instances keep in Redis besides events: stream tickets,
//!   rate-limit buckets, task leases, the hot task cache, the stream registry.
//! - [`directory`]: the demo tenants and users. [`validate`]: input rules.
//! - [`cors`]: the cross-origin policy. [`metrics`]: `GET /metrics`. [`openapi`]: the API's
//!   description. [`limits`]: per-user send rate. [`report`]: the shipment report PDF.
//!
//! - [`serve`]: the accept loop and connections (timeouts, connection caps, running out of
//!   file descriptors). [`security`]: response headers (CSP, nosniff) and who may read
//!   `/metrics`.
//! - [`asyncapi`]: `GET /api/asyncapi.json`, the stream's events described (schemas generated
//!   from the protocol types, like [`openapi`]'s).
//! - [`assets`]: the built widget as static files (precompressed variants, caching) and the
//!   compression of API answers.
//!
//! [`AppState`] is [`Common`] (what every instance of a deployment shares) plus [`Local`]
//! (what this one holds). [`app`] builds the whole [`Router`] (API + the built widget as static
//! files); [`run`] serves it until a shutdown future resolves, draining open streams so
//! shutdown completes, and runs the background loops (session purge, outbox, signals, task
//! leases, the stream registry).
//! `main.rs` only parses, binds and calls these, so tests drive exactly what production runs.

pub mod announce;
pub mod api;
pub mod app;
pub mod assets;
pub mod assistant;
pub mod asyncapi;
pub mod auth;
pub mod bus;
pub mod config;
pub mod cors;
pub mod directory;
pub mod error;
pub mod herd;
pub mod ids;
pub mod jwt;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod report;
pub mod runner;
pub mod security;
pub mod serve;
pub mod shared;
pub mod state;
pub mod store;
pub mod streams;
pub mod tasks;
pub mod validate;

pub use app::{app, run};
pub use config::Config;
pub use error::ApiError;
pub use state::{AppState, Common, Local};
