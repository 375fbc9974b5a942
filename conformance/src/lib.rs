//! # farm-chat-conformance
//!
//! Checks, against any live server, the rules the farm-chat widget relies on: a platform that
//! keeps its own backend runs it to learn whether the widget will work there, and why not.
//!
//! - [`client`]: just enough HTTP/1.1 and SSE to see what a browser sees (every header, any
//!   request header, each event's fields).
//! - [`rules`]: the named rules and [`rules::run`], which signs in and checks them in order.
//! - [`report`]: the table on stdout and the JSON for machines.
//!
//! The binary (`src/main.rs`) parses the flags, runs the rules, prints the table, writes
//! `--json FILE`, and exits 0 only when no rule failed.

pub mod client;
pub mod report;
pub mod rules;
