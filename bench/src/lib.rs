//! farm-chat-bench: a load generator for any server that speaks the farm-chat protocol.
//!
//! - [`http`] — a minimal HTTP/1.1 client (keep-alive REST, SSE streams from chosen source
//!   addresses);
//! - [`scenarios`] — `idle_streams`, `fanout`, `throughput`, each returning a JSON object;
//! - [`stats`] — percentiles;
//! - [`system`] — a process's memory and CPU time from `/proc`, the open-files limit.
//!
//! The binary (`src/main.rs`) parses flags, runs scenarios, prints a table and writes JSON.

pub mod http;
pub mod scenarios;
pub mod stats;
pub mod system;
