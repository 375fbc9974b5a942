//! # farm-chat-dev-server
//!
//! The backend the widget talks to in development and in every browser test. It must behave
//! like a real server, so the pieces are the ones a production service has. Read it top down:
//!
//! - [`app`]: the composition root. [`app()`] builds the whole router (the API, `/metrics`,
//!   the built widget as static files) and [`run()`] serves it until shutdown, draining open
//!   streams, with the background loops (session purge, outbox, signals, task leases, the
//!   stream registry). `main.rs` only parses, binds and calls these, so tests drive exactly
//!   what production runs.
//! - [`api`]: the handlers, one module per endpoint group (session, chat, stream, tasks,
//!   report) and the [`AuthUser`](auth::AuthUser) extractor.
//! - Services below them: [`runner`] (assistant tasks at run time), [`announce`] (publishing
//!   what was stored, and the outbox), [`assistant`] (intent routing and plans over the demo
//!   [`herd`]), [`report`] (the shipment report PDF).
//! - [`state`]: [`AppState`], what every handler gets: [`Common`] (what every instance of a
//!   deployment shares) and [`Local`] (what this one holds).
//! - The engines, each a trait with two implementations chosen once at start-up:
//!   [`store`] (SQLite or PostgreSQL), [`bus`] (in-process or Redis) and [`shared`] (tickets,
//!   rate buckets, leases, hot tasks and the stream registry: in this process, or in Redis).
//! - This instance's own registries: [`tasks`] (the hot tasks it runs) and [`streams`] (its
//!   open streams, their caps and the drain).
//! - The ground floor: [`config`], [`error`] (the one error type: every failure answers
//!   `{"error":{"code","message"}}`, 5xx details go to the log), [`auth`] (signed sessions),
//!   [`jwt`], [`directory`] (tenants and users), [`ids`], [`validate`], [`limits`],
//!   [`metrics`], [`cors`], [`security`], [`serve`] (the accept loop), [`tls`] (what every
//!   TLS client shares), [`outbound`] (the HTTP client for model endpoints and JWKS), [`openapi`] and
//!   [`asyncapi`] (the API documents, generated with [`schemas`]), [`assets`].

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
pub mod outbound;
pub mod report;
pub mod runner;
pub mod schemas;
pub mod security;
pub mod serve;
pub mod shared;
pub mod state;
pub mod store;
pub mod streams;
pub mod tasks;
pub mod tls;
pub mod validate;

pub use app::{app, run};
pub use config::Config;
pub use error::ApiError;
pub use state::{AppState, Common, Local};
