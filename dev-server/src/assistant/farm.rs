//! The built-in farm planner, the embedded default engine: no keys, no network. A message
//! becomes a plan computed from the tenant's herd.
//!
//! - [`intent`]: what the message asks for, and in which language to answer.
//! - [`plan`]: the parts the task will send, computed from the herd (pure).

pub mod intent;
pub mod plan;

use intent::Lang;
use plan::Plan;

/// The plan for a farmer's message in `tenant`, as of today.
pub fn plan_for(tenant: &str, text: &str, lang: Lang) -> Plan {
    let herd = crate::herd::herd(tenant, crate::herd::Date::today());
    plan::plan(intent::route(text), lang, &herd)
}
