//! The assistant: a message in an assistant conversation becomes a task, which an engine
//! answers and the runner ([`crate::runner`]) publishes and keeps hot and durable.
//!
//! [`Assistant`] is the engine seam, chosen once at start-up (`--assistant`):
//! - [`farm`]: the built-in farm planner (the default), computed from the tenant's herd, no
//!   model and no network;
//! - [`model`]: a language model that calls the farm's tools, over an OpenAI-compatible
//!   endpoint or Amazon Bedrock.
//!
//! An engine says what it does through [`Parts`]; the runner turns that into `task.*` events,
//! coalesces text deltas, and stops the engine (dropping its future, and with it any request
//! to a model) when the user stops the task.

pub mod farm;
pub mod model;

use std::sync::Arc;

use farm_chat_protocol::{
    UserId,
    chat::SenderKind,
    task::{PartBody, TaskKind, TaskPart, TaskState},
};
use tokio::sync::mpsc;

pub use farm::{intent, plan, plan_for};
pub use intent::{Intent, Lang};
pub use plan::Plan;

use crate::{config::ModelConfig, metrics::Metrics};

/// What the user asked, and what an engine may know around it.
#[derive(Clone, Debug)]
pub struct Ask {
    /// The user's tenant: every tool runs against it (never one the model names).
    pub tenant: &'static str,
    /// Who asked.
    pub user: UserId,
    /// The language to answer in.
    pub lang: Lang,
    /// The question.
    pub question: String,
    /// The conversation's recent messages before it, oldest first, bounded in size.
    pub history: Vec<(SenderKind, String)>,
}

/// What a reply is, known before it runs (stored with the reply message).
#[derive(Clone, Debug, PartialEq)]
pub struct Opening {
    /// The task's kind.
    pub kind: TaskKind,
    /// The reply message's text: a one-line title.
    pub title: String,
}

/// One thing an engine reports.
#[derive(Clone, Debug, PartialEq)]
pub enum Report {
    /// A part, new or replacing one with its number (progress).
    Part(TaskPart),
    /// More of text part `part`.
    Text {
        /// The part's number.
        part: u32,
        /// What follows what was reported before.
        delta: String,
    },
}

/// Where an engine reports to: the runner, which numbers nothing itself (engines choose
/// part numbers, so a replayed plan keeps them).
#[derive(Clone, Debug)]
pub struct Parts {
    tx: mpsc::Sender<Report>,
}

impl Parts {
    /// A pair: the engine's end and the runner's.
    pub fn channel() -> (Self, mpsc::Receiver<Report>) {
        let (tx, rx) = mpsc::channel(256);
        (Self { tx }, rx)
    }

    /// Reports `part`. `false` once nobody listens (the task was stopped).
    pub async fn part(&self, part: TaskPart) -> bool {
        self.tx.send(Report::Part(part)).await.is_ok()
    }

    /// Reports more text of part `part`.
    pub async fn text(&self, part: u32, delta: impl Into<String>) -> bool {
        self.tx
            .send(Report::Text {
                part,
                delta: delta.into(),
            })
            .await
            .is_ok()
    }

    /// Reports an error part: why the answer failed, and what the user can do.
    pub async fn error(&self, part: u32, code: &str, text: String) -> bool {
        self.part(TaskPart {
            part,
            body: PartBody::Error {
                code: code.to_owned(),
                text,
            },
        })
        .await
    }
}

/// An engine that answers questions.
#[async_trait::async_trait]
pub trait Assistant: Send + Sync + std::fmt::Debug {
    /// Its name in logs and metrics (`farm`, `openai`, `bedrock`).
    fn name(&self) -> &'static str;

    /// What the reply to `ask` is, before it runs.
    fn open(&self, ask: &Ask) -> Opening;

    /// Whether its answers count against `--model-max-concurrent-per-user`.
    fn is_model(&self) -> bool;

    /// Answers `ask`, reporting to `out`; returns how the task ended (`Succeeded` or
    /// `Failed`, after an error part). Dropped when the user stops the task.
    async fn answer(&self, ask: Ask, out: Parts) -> TaskState;
}

/// The engine `config` names, checked: a model engine without a model, or with a bad
/// endpoint, is a start-up error, not a failure at the first question.
pub fn from_config(
    config: &ModelConfig,
    step: std::time::Duration,
    metrics: Arc<Metrics>,
) -> Result<Arc<dyn Assistant>, String> {
    Ok(match config.engine {
        crate::config::Engine::Farm => Arc::new(farm::Farm::new(step)),
        crate::config::Engine::Openai => Arc::new(model::Model::openai(config, metrics)?),
        crate::config::Engine::Bedrock => Arc::new(model::Model::bedrock(config, metrics)?),
    })
}
