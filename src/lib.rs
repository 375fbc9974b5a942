//! # farm-chat — the widget
//!
//! A streaming chat widget that farm management pages embed (Leptos CSR → WebAssembly, built
//! by trunk). Map of the crate:
//!
//! - [`api`]: the REST client (cookies or a Bearer token provider; retryable failures), on the
//!   browser's `fetch` and `JSON.parse`, with the protocol's readers.
//! - [`backoff`]: reconnect delays (exponential, full jitter, reset after a healthy stream).
//! - [`connection`]: the stream connection as a state machine (reconnect, session check,
//!   offline, dead stream, refetch) and its browser hook, `use_chat_stream_with_options`.
//! - [`compose`]: the composer's rules (Enter sends, never during an IME composition).
//! - [`format`]: dates and numbers through the browser's `Intl`, in the widget's locale.
//! - [`i18n`]: [`Locale`] (ja first, en) and every user-visible string. Pure Rust, native tests.
//! - [`inbox`]: the conversation list (a farmer's chats, a support user's inbox): order by
//!   activity, unread sums, read marks that never move back, typing hints that expire. Pure Rust.
//! - [`launcher`]: [`ChatLauncher`], the corner button that opens and closes the chat panel.
//! - [`health`]: [`ServerHealth`], the panel's line that says whether the server answers.
//! - [`store`]: the message store: merge by messageId, order by seq, optimistic sends that
//!   become the stored message in place, task parts keyed by (taskId, part). Pure Rust.
//! - [`widget`]: [`ChatWidget`]: one live conversation (history + stream + store), with its
//!   task replies (`StreamingMessage`, `ProgressBar`, `DataRenderer`) and the composer.
//! - [`outbox`]: unsent messages kept in `localStorage`, so a reload or a crash loses none.
//! - [`sends`]: a pending send's one owner: its bubble in the store and its outbox entry,
//!   changed together. Pure Rust.
//! - [`mount`]: finds each `<farm-chat>` element on the host page and mounts a widget into it,
//!   reading its `api-base` and `locale` attributes. The host page loads the launcher script
//!   (`launcher/farm-chat.js`), which draws the button before this wasm is even fetched; the
//!   widget then takes over the element's shadow root.
//!
//! Logic lives in plain types with ordinary `#[test]`s; components stay thin and render state.
//! Browser behaviour is tested with wasm-bindgen-test in headless Chromium (`tests/browser/`).

pub mod api;
pub mod backoff;
pub mod compose;
pub mod connection;
pub mod format;
pub mod health;
pub mod i18n;
pub mod inbox;
pub mod launcher;
pub mod markdown;
pub mod mount;
pub mod outbox;
pub mod sends;
pub mod store;
#[cfg(test)]
mod style_check;
pub mod widget;

pub use health::{HealthState, ServerHealth};
pub use i18n::{Locale, Text};
pub use launcher::ChatLauncher;
pub use widget::ChatWidget;
