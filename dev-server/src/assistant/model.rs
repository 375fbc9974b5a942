//! A language model as the assistant: it reads the conversation, calls the farm's tools
//! ([`tools`]) and writes the answer, streamed as text.
//!
//! - [`Model`] runs the answer: rounds of "the model speaks, its tool calls run", at most
//!   `--model-max-steps` tool rounds, under the idle and whole-answer timeouts; a failure ends
//!   the task with an error part (the text so far stays).
//! - [`Provider`] is one wire format: [`openai`] (Chat Completions, SSE chunks) and
//!   [`bedrock`] (ConverseStream, AWS event-stream frames, SigV4).
//! - [`http`]: the streaming HTTPS client both use.

pub mod bedrock;
/// The outbound HTTP client the engines call their providers with.
pub use crate::outbound as http;
pub mod openai;
pub mod tools;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use farm_chat_protocol::{
    chat::SenderKind,
    task::{PartBody, TaskKind, TaskPart, TaskState},
};

use super::{Ask, Assistant, Lang, Opening, Parts};
use crate::{config::ModelConfig, herd::Date, metrics::Metrics};

/// Why a model request failed, as the farmer is told (`model_*` codes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The provider answered 429.
    RateLimited,
    /// The provider answered 5xx (or another refusal), or could not be reached.
    Unavailable(String),
    /// Nothing came for too long.
    Timeout(String),
    /// What came is not the provider's format.
    BadOutput(String),
}

impl From<http::Failure> for Failure {
    fn from(e: http::Failure) -> Self {
        match e {
            http::Failure::Unavailable(why) => Self::Unavailable(why),
            http::Failure::Timeout(why) => Self::Timeout(why),
        }
    }
}

impl Failure {
    /// The error part's code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::RateLimited => "model_rate_limited",
            Self::Unavailable(_) => "model_unavailable",
            Self::Timeout(_) => "model_timeout",
            Self::BadOutput(_) => "model_bad_output",
        }
    }

    /// What the farmer reads.
    pub fn text(&self, lang: Lang) -> String {
        let ja = lang == Lang::Ja;
        match self {
            Self::RateLimited if ja => {
                "AIが混み合っています。少し待ってからもう一度お試しください。"
            }
            Self::RateLimited => "The AI is busy. Please wait a moment and ask again.",
            Self::Unavailable(_) if ja => {
                "AIに接続できませんでした。しばらくしてからもう一度お試しください。"
            }
            Self::Unavailable(_) => "The AI could not be reached. Please try again in a while.",
            Self::Timeout(_) if ja => "AIの応答が途切れました。もう一度お試しください。",
            Self::Timeout(_) => "The AI stopped answering. Please ask again.",
            Self::BadOutput(_) if ja => "AIの応答を読み取れませんでした。もう一度お試しください。",
            Self::BadOutput(_) => "The AI's answer could not be read. Please ask again.",
        }
        .to_owned()
    }

    /// The outcome label in metrics.
    fn outcome(&self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Timeout(_) => "timeout",
            Self::BadOutput(_) => "bad_output",
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::RateLimited => f.write_str("rate limited (429)"),
            Self::Unavailable(why) => write!(f, "unavailable: {why}"),
            Self::Timeout(why) => write!(f, "timed out: {why}"),
            Self::BadOutput(why) => write!(f, "bad output: {why}"),
        }
    }
}

/// A tool call the model made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// Its id, which the result goes back under.
    pub id: String,
    /// The tool.
    pub name: String,
    /// Its arguments, JSON text as the model wrote it.
    pub arguments: String,
}

/// A tool's result, going back to the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolResult {
    /// The call's id.
    pub id: String,
    /// The result, compact JSON.
    pub content: String,
    /// Whether the call failed.
    pub is_error: bool,
}

/// One turn of the conversation the model reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Turn {
    /// The farmer (or support staff, quoted as the user).
    User(String),
    /// The model: its text and its tool calls.
    Assistant {
        /// What it said.
        text: String,
        /// What it called.
        calls: Vec<Call>,
    },
    /// The results of the previous turn's calls.
    Results(Vec<ToolResult>),
}

/// What a provider's stream says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// More of the answer's text.
    Text(String),
    /// A complete tool call.
    Call(Call),
    /// Tokens used (from the provider's usage report).
    Usage {
        /// Prompt tokens.
        input: u64,
        /// Completion tokens.
        output: u64,
    },
}

/// One request to a model.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// The system prompt.
    pub system: &'a str,
    /// The conversation.
    pub turns: &'a [Turn],
    /// The tools it may call (none: it must answer).
    pub tools: &'a [tools::Tool],
}

/// An answer streaming from a provider.
#[async_trait::async_trait]
pub trait ChunkStream: Send {
    /// The next chunk; `None` when the model has finished.
    async fn next(&mut self) -> Result<Option<Chunk>, Failure>;
}

/// A provider's response body, decoded as bytes arrive.
pub trait Decode: Send {
    /// Feeds bytes; answers the chunks they complete.
    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Chunk>, Failure>;
    /// The body ended: what is left, or an error if the answer was cut short.
    fn end(&mut self) -> Result<Vec<Chunk>, Failure>;
    /// The answer is complete (what follows, if anything, is ignored).
    fn finished(&self) -> bool;
}

/// A response body read through its decoder, one chunk at a time.
pub struct Decoded<D> {
    response: http::Response,
    decoder: D,
    ready: std::collections::VecDeque<Chunk>,
}

impl<D: Decode> Decoded<D> {
    /// `response` read with `decoder`.
    pub fn new(response: http::Response, decoder: D) -> Self {
        Self {
            response,
            decoder,
            ready: std::collections::VecDeque::new(),
        }
    }
}

#[async_trait::async_trait]
impl<D: Decode> ChunkStream for Decoded<D> {
    async fn next(&mut self) -> Result<Option<Chunk>, Failure> {
        loop {
            if let Some(chunk) = self.ready.pop_front() {
                return Ok(Some(chunk));
            }
            if self.decoder.finished() {
                return Ok(None);
            }
            match self.response.chunk().await? {
                Some(bytes) => self.ready.extend(self.decoder.feed(&bytes)?),
                None => {
                    self.ready.extend(self.decoder.end()?);
                    if self.ready.is_empty() {
                        return Ok(None);
                    }
                }
            }
        }
    }
}

/// One provider's wire format.
#[async_trait::async_trait]
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// `openai` or `bedrock`.
    fn name(&self) -> &'static str;
    /// Starts a request; its answer streams.
    async fn start(&self, request: &Request<'_>) -> Result<Box<dyn ChunkStream>, Failure>;
}

/// A model engine: a provider and the limits it runs under.
#[derive(Debug)]
pub struct Model {
    provider: Box<dyn Provider>,
    idle_timeout: Duration,
    answer_timeout: Duration,
    max_steps: u32,
    system_prompt: Option<String>,
    metrics: Arc<Metrics>,
}

impl Model {
    fn new(
        config: &ModelConfig,
        provider: Box<dyn Provider>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let system_prompt = match &config.model_system_prompt {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("--model-system-prompt {}: {e}", path.display()))?,
            ),
            None => None,
        };
        Ok(Self {
            provider,
            idle_timeout: config.model_idle_timeout,
            answer_timeout: config.model_answer_timeout,
            max_steps: config.model_max_steps,
            system_prompt,
            metrics,
        })
    }

    /// An OpenAI-compatible endpoint (`--model-base-url`, `--model`, `FARM_CHAT_MODEL_API_KEY`).
    pub fn openai(config: &ModelConfig, metrics: Arc<Metrics>) -> Result<Self, String> {
        let provider = openai::OpenAi::new(config, std::env::var("FARM_CHAT_MODEL_API_KEY").ok())?;
        Self::new(config, Box::new(provider), metrics)
    }

    /// Amazon Bedrock (`--model`, `AWS_REGION`, the AWS credential chain).
    pub fn bedrock(config: &ModelConfig, metrics: Arc<Metrics>) -> Result<Self, String> {
        let provider = bedrock::Bedrock::new(config)?;
        Self::new(config, Box::new(provider), metrics)
    }

    /// A model over any provider (tests).
    pub fn with_provider(
        config: &ModelConfig,
        provider: Box<dyn Provider>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        Self::new(config, provider, metrics)
    }

    fn system(&self, ask: &Ask) -> String {
        let date = Date::today().to_string();
        let farm = crate::directory::farm_name(ask.tenant);
        let language = match ask.lang {
            Lang::Ja => "日本語",
            Lang::En => "English",
        };
        match &self.system_prompt {
            Some(custom) => custom
                .replace("{date}", &date)
                .replace("{farm}", farm)
                .replace("{language}", language),
            None => default_prompt(ask.lang, &date, farm),
        }
    }

    /// Runs rounds until the model answers without calling a tool.
    async fn rounds(&self, ask: &Ask, out: &Parts, next_part: &mut u32) -> Result<(), Failure> {
        let system = self.system(ask);
        let all_tools = tools::all();
        let mut turns: Vec<Turn> = Vec::new();
        for (kind, text) in &ask.history {
            turns.push(match kind {
                SenderKind::Assistant => Turn::Assistant {
                    text: text.clone(),
                    calls: Vec::new(),
                },
                _ => Turn::User(text.clone()),
            });
        }
        turns.push(Turn::User(ask.question.clone()));
        let started = Instant::now();
        let mut first_token = true;
        for round in 0..=self.max_steps {
            let offered: &[tools::Tool] = if round < self.max_steps {
                &all_tools
            } else {
                &[]
            };
            let request = Request {
                system: &system,
                turns: &turns,
                tools: offered,
            };
            let mut stream = tokio::time::timeout(self.idle_timeout, self.provider.start(&request))
                .await
                .map_err(|_| Failure::Timeout("no answer to the request".into()))??;
            let mut text = String::new();
            let mut text_part = None;
            let mut calls = Vec::new();
            loop {
                let chunk = tokio::time::timeout(self.idle_timeout, stream.next())
                    .await
                    .map_err(|_| {
                        Failure::Timeout(format!("nothing for {:?}", self.idle_timeout))
                    })??;
                match chunk {
                    None => break,
                    Some(Chunk::Text(delta)) => {
                        if delta.is_empty() {
                            continue;
                        }
                        if first_token {
                            first_token = false;
                            self.metrics
                                .model
                                .first_token(self.provider.name(), started.elapsed());
                        }
                        let part = *text_part.get_or_insert_with(|| {
                            *next_part += 1;
                            *next_part - 1
                        });
                        text.push_str(&delta);
                        if !out.text(part, delta).await {
                            return Ok(());
                        }
                    }
                    Some(Chunk::Call(call)) => calls.push(call),
                    Some(Chunk::Usage { input, output }) => {
                        self.metrics
                            .model
                            .tokens(self.provider.name(), input, output);
                    }
                }
            }
            if calls.is_empty() || offered.is_empty() {
                if text.trim().is_empty() && calls.is_empty() {
                    return Err(Failure::BadOutput("the model said nothing".into()));
                }
                return Ok(());
            }
            let mut results = Vec::new();
            for call in &calls {
                self.metrics.model.tool_call(&call.name);
                let status = TaskPart {
                    part: *next_part,
                    body: PartBody::Status {
                        text: tools::running_line(&call.name, ask.lang),
                    },
                };
                *next_part += 1;
                if !out.part(status).await {
                    return Ok(());
                }
                let outcome = tools::run(
                    &call.name,
                    &call.arguments,
                    ask.tenant,
                    ask.lang,
                    Date::today(),
                );
                if outcome.is_error {
                    tracing::info!(tool = %call.name, error = %outcome.json, "a tool call went back as an error");
                }
                if let Some(body) = outcome.part {
                    let part = TaskPart {
                        part: *next_part,
                        body,
                    };
                    *next_part += 1;
                    if !out.part(part).await {
                        return Ok(());
                    }
                }
                results.push(ToolResult {
                    id: call.id.clone(),
                    content: outcome.json,
                    is_error: outcome.is_error,
                });
            }
            turns.push(Turn::Assistant { text, calls });
            turns.push(Turn::Results(results));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Assistant for Model {
    fn name(&self) -> &'static str {
        self.provider.name()
    }

    fn open(&self, ask: &Ask) -> Opening {
        Opening {
            kind: TaskKind::Answer,
            title: match ask.lang {
                Lang::Ja => "牧場アシスタントの回答".into(),
                Lang::En => "The farm assistant's answer".into(),
            },
        }
    }

    fn is_model(&self) -> bool {
        true
    }

    async fn answer(&self, ask: Ask, out: Parts) -> TaskState {
        let mut next_part = 0;
        let run = self.rounds(&ask, &out, &mut next_part);
        let result = match tokio::time::timeout(self.answer_timeout, run).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Timeout(format!(
                "the answer took longer than {:?}",
                self.answer_timeout
            ))),
        };
        let engine = self.provider.name();
        match result {
            Ok(()) => {
                self.metrics.model.request(engine, "ok");
                TaskState::Succeeded
            }
            Err(failure) => {
                self.metrics.model.request(engine, failure.outcome());
                tracing::warn!(engine, error = %failure, "the model's answer failed");
                out.error(next_part, failure.code(), failure.text(ask.lang))
                    .await;
                TaskState::Failed
            }
        }
    }
}

/// The built-in system prompt, in the answer's language.
pub fn default_prompt(lang: Lang, date: &str, farm: &str) -> String {
    match lang {
        Lang::Ja => format!(
            "あなたは{farm}の牧場管理アシスタントです。今日は{date}です。\
             酪農家の質問に、日本語で、短く具体的に答えてください。\
             牛の発情予定・健康・出荷については必ずツールで確かめ、数字を作らないでください。\
             ツールの結果は画面に表や カードとして表示されるので、本文では要点と次にすべきことを述べてください。\
             獣医の判断が必要なときや、答えられないとき、人と話したいと言われたときは contact_support を使ってください。\
             回答はMarkdownで書けます（見出し、箇条書き、表）。"
        ),
        Lang::En => format!(
            "You are the farm management assistant of {farm}. Today is {date}. \
             Answer the farmer's question in English, briefly and concretely. \
             For estrus, health and shipments always check with the tools; never make up figures. \
             Tool results are shown on screen as tables and cards, so in your text give the gist and what to do next. \
             When a vet is needed, when you cannot answer, or when the farmer asks for a person, use contact_support. \
             You may write Markdown (headings, lists, tables)."
        ),
    }
}
