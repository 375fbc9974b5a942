//! The farm assistant: a message in an assistant conversation becomes a task whose reply is
//! computed from the tenant's herd.
//!
//! - [`intent`]: what the message asks for, and in which language to answer.
//! - [`plan`]: the parts the task will send, computed from the herd (pure).
//! - The runner lives in [`crate::tasks`]: it plays a plan with pacing, publishes each part,
//!   keeps the snapshot hot and durable, and handles cancel.

pub mod intent;
pub mod plan;

pub use intent::{Intent, Lang};
pub use plan::Plan;

/// The plan for a farmer's message in `tenant`, as of today.
pub fn plan_for(tenant: &str, text: &str, lang: intent::Lang) -> Plan {
    let herd = crate::herd::herd(tenant, crate::herd::Date::today());
    plan::plan(intent::route(text), lang, &herd)
}
