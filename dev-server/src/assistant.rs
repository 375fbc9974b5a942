//! The assistant: a message in an assistant conversation becomes a task, whose parts the
//! runner ([`crate::runner`]) plays, publishes and keeps hot and durable.
//!
//! - [`farm`]: the built-in farm planner (the default engine), computed from the tenant's
//!   herd. The engines that answer through a model live beside it, one module each.

pub mod farm;

pub use farm::{intent, plan, plan_for};
pub use intent::{Intent, Lang};
pub use plan::Plan;
