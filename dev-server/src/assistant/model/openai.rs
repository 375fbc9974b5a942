//! OpenAI-compatible Chat Completions with streaming and tool calls: `POST
//! {base}/chat/completions`, `stream: true`, answered as SSE `data:` chunks (text deltas, tool
//! calls in fragments by index, usage at the end, then `[DONE]`). OpenAI, vLLM, Ollama's `/v1`,
//! llama.cpp's server and LiteLLM speak it.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{
    Call, Chunk, ChunkStream, Decode, Decoded, Failure, Provider, Request, Turn,
    http::{Client, Url},
};
use crate::config::ModelConfig;

/// The provider.
#[derive(Debug)]
pub struct OpenAi {
    client: Client,
    base: Url,
    model: String,
    key: Option<String>,
}

impl OpenAi {
    /// From the flags; the key from `FARM_CHAT_MODEL_API_KEY` (none: a local server).
    pub fn new(config: &ModelConfig, key: Option<String>) -> Result<Self, String> {
        let base = config
            .model_base_url
            .as_deref()
            .ok_or("--assistant openai needs --model-base-url (the base that ends in /v1)")?;
        let model = config
            .model
            .clone()
            .ok_or("--assistant openai needs --model")?;
        Ok(Self {
            client: Client::new(
                config.model_ca_cert.as_deref(),
                config.model_connect_timeout,
            )?,
            base: Url::parse(base).map_err(|e| format!("--model-base-url {e}"))?,
            model,
            key: key.filter(|k| !k.is_empty()),
        })
    }
}

/// The request body.
pub fn body(model: &str, request: &Request<'_>) -> Value {
    let mut messages = vec![json!({"role": "system", "content": request.system})];
    for turn in request.turns {
        match turn {
            Turn::User(text) => messages.push(json!({"role": "user", "content": text})),
            Turn::Assistant { text, calls } if calls.is_empty() => {
                messages.push(json!({"role": "assistant", "content": text}));
            }
            Turn::Assistant { text, calls } => messages.push(json!({
                "role": "assistant",
                "content": if text.is_empty() { Value::Null } else { json!(text) },
                "tool_calls": calls.iter().map(|c| json!({
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                })).collect::<Vec<_>>(),
            })),
            Turn::Results(results) => {
                for r in results {
                    messages
                        .push(json!({"role": "tool", "tool_call_id": r.id, "content": r.content}));
                }
            }
        }
    }
    let mut body = json!({
        "model": model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| {
                json!({
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                })
            })
            .collect();
    }
    body
}

/// What an HTTP status means for an answer.
pub fn status_failure(status: u16, detail: String) -> Failure {
    match status {
        429 => Failure::RateLimited,
        408 | 504 => Failure::Timeout(format!("HTTP {status}: {detail}")),
        _ => Failure::Unavailable(format!("HTTP {status}: {detail}")),
    }
}

#[async_trait::async_trait]
impl Provider for OpenAi {
    fn name(&self) -> &'static str {
        "openai"
    }

    async fn start(&self, request: &Request<'_>) -> Result<Box<dyn ChunkStream>, Failure> {
        let body = body(&self.model, request).to_string().into_bytes();
        let mut headers = vec![
            ("content-type", "application/json".to_owned()),
            ("accept", "text/event-stream".to_owned()),
        ];
        if let Some(key) = &self.key {
            headers.push(("authorization", format!("Bearer {key}")));
        }
        let path = format!("{}/chat/completions", self.base.path);
        let response = self
            .client
            .send("POST", &self.base, &path, &headers, body)
            .await?;
        if response.status != 200 {
            let status = response.status;
            let detail = response.text(2_000).await;
            return Err(status_failure(status, detail));
        }
        Ok(Box::new(Decoded::new(response, Decoder::default())))
    }
}

/// The SSE chunks of a streamed completion, decoded as bytes arrive (pure, tested without a
/// server; the fuzz-like tests feed it byte by byte).
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    data: String,
    /// Tool calls in the making, by index: id, name, arguments so far.
    calls: BTreeMap<u64, (String, String, String)>,
    /// `[DONE]` seen.
    pub done: bool,
    /// A `finish_reason` seen (some servers end without `[DONE]`).
    finish_reason: bool,
}

impl Decode for Decoder {
    fn finished(&self) -> bool {
        self.done
    }

    /// Feeds bytes; answers the chunks they complete.
    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Chunk>, Failure> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            let line = std::str::from_utf8(&line)
                .map_err(|_| Failure::BadOutput("the stream is not UTF-8".into()))?
                .trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                let data = std::mem::take(&mut self.data);
                if !data.is_empty() {
                    self.event(&data, &mut out)?;
                }
            } else if let Some(value) = line.strip_prefix("data:") {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(value.strip_prefix(' ').unwrap_or(value));
            }
            // Comments (`:`), `event:`, `id:` and `retry:` lines carry nothing here.
        }
        if self.buf.len() > 1 << 20 {
            return Err(Failure::BadOutput("a line longer than 1 MiB".into()));
        }
        Ok(out)
    }

    /// The body ended: what is left, or an error if the answer was cut short.
    fn end(&mut self) -> Result<Vec<Chunk>, Failure> {
        let mut out = Vec::new();
        if !self.data.is_empty() {
            let data = std::mem::take(&mut self.data);
            self.event(&data, &mut out)?;
        }
        if !self.done && !self.finish_reason {
            return Err(Failure::BadOutput(
                "the stream ended before the answer did".into(),
            ));
        }
        out.extend(self.take_calls());
        self.done = true;
        Ok(out)
    }
}

impl Decoder {
    fn take_calls(&mut self) -> Vec<Chunk> {
        std::mem::take(&mut self.calls)
            .into_values()
            .map(|(id, name, arguments)| {
                Chunk::Call(Call {
                    id,
                    name,
                    arguments,
                })
            })
            .collect()
    }

    fn event(&mut self, data: &str, out: &mut Vec<Chunk>) -> Result<(), Failure> {
        if data.trim() == "[DONE]" {
            self.done = true;
            out.extend(self.take_calls());
            return Ok(());
        }
        let json: Value = serde_json::from_str(data)
            .map_err(|e| Failure::BadOutput(format!("a chunk is not JSON: {e}")))?;
        if let Some(error) = json.get("error") {
            let message = error["message"].as_str().unwrap_or("an error").to_owned();
            return Err(match error["code"].as_str().or(error["type"].as_str()) {
                Some("rate_limit_exceeded") => Failure::RateLimited,
                _ => Failure::Unavailable(message),
            });
        }
        if let Some(usage) = json.get("usage").filter(|u| u.is_object()) {
            out.push(Chunk::Usage {
                input: usage["prompt_tokens"].as_u64().unwrap_or(0),
                output: usage["completion_tokens"].as_u64().unwrap_or(0),
            });
        }
        let Some(choices) = json.get("choices").and_then(Value::as_array) else {
            if json.get("usage").is_some() {
                return Ok(());
            }
            return Err(Failure::BadOutput("a chunk without choices".into()));
        };
        for choice in choices {
            let delta = &choice["delta"];
            if let Some(text) = delta["content"].as_str()
                && !text.is_empty()
            {
                out.push(Chunk::Text(text.to_owned()));
            }
            if let Some(calls) = delta["tool_calls"].as_array() {
                for call in calls {
                    let index = call["index"].as_u64().unwrap_or(0);
                    let entry = self.calls.entry(index).or_default();
                    if let Some(id) = call["id"].as_str() {
                        entry.0 = id.to_owned();
                    }
                    if let Some(name) = call["function"]["name"].as_str() {
                        entry.1.push_str(name);
                    }
                    if let Some(args) = call["function"]["arguments"].as_str() {
                        entry.2.push_str(args);
                    }
                    if entry.2.len() > 64 * 1024 {
                        return Err(Failure::BadOutput("tool arguments over 64 KiB".into()));
                    }
                }
            }
            if choice["finish_reason"].is_string() {
                self.finish_reason = true;
                if choice["finish_reason"] == "tool_calls" {
                    out.extend(self.take_calls());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = concat!(
        ": keep-alive\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"cow_health\",\"arguments\":\"\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"cow\\\":\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"14\\\"}\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":120,\"completion_tokens\":9}}\n\n",
        "data: [DONE]\n\n",
    );

    #[test]
    fn tool_call_fragments_and_usage_decode_whatever_the_byte_boundaries() {
        for step in [1, 3, 7, 64, STREAM.len()] {
            let mut d = Decoder::default();
            let mut out = Vec::new();
            for piece in STREAM.as_bytes().chunks(step) {
                out.extend(d.feed(piece).unwrap());
            }
            out.extend(d.end().unwrap());
            assert_eq!(
                out,
                vec![
                    Chunk::Call(Call {
                        id: "call_1".into(),
                        name: "cow_health".into(),
                        arguments: "{\"cow\":\"14\"}".into()
                    }),
                    Chunk::Usage {
                        input: 120,
                        output: 9
                    },
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn text_deltas_keep_multibyte_characters_split_across_reads() {
        let text = "data: {\"choices\":[{\"delta\":{\"content\":\"牛は元気\"},\"finish_reason\":null}]}\n\ndata: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
        let mut d = Decoder::default();
        let mut out = Vec::new();
        for b in text.as_bytes() {
            out.extend(d.feed(std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(out, vec![Chunk::Text("牛は元気".into())]);
    }

    #[test]
    fn malformed_streams_are_bad_output_and_errors_say_which() {
        let mut d = Decoder::default();
        assert!(matches!(
            d.feed(b"data: {not json\n\n"),
            Err(Failure::BadOutput(_))
        ));
        let mut d = Decoder::default();
        d.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n")
            .unwrap();
        assert!(
            matches!(d.end(), Err(Failure::BadOutput(_))),
            "cut off before the end"
        );
        let mut d = Decoder::default();
        assert_eq!(
            d.feed(b"data: {\"error\":{\"message\":\"slow down\",\"code\":\"rate_limit_exceeded\"}}\n\n"),
            Err(Failure::RateLimited)
        );
        assert_eq!(status_failure(429, String::new()), Failure::RateLimited);
        assert!(matches!(
            status_failure(503, String::new()),
            Failure::Unavailable(_)
        ));
    }

    #[test]
    fn the_request_carries_the_conversation_tools_and_results() {
        use super::super::{ToolResult, tools};
        let turns = vec![
            Turn::User("14番は？".into()),
            Turn::Assistant {
                text: String::new(),
                calls: vec![Call {
                    id: "c1".into(),
                    name: "cow_health".into(),
                    arguments: "{\"cow\":\"14\"}".into(),
                }],
            },
            Turn::Results(vec![ToolResult {
                id: "c1".into(),
                content: "{\"risk\":\"low\"}".into(),
                is_error: false,
            }]),
        ];
        let all = tools::all();
        let b = body(
            "m",
            &Request {
                system: "sys",
                turns: &turns,
                tools: &all,
            },
        );
        assert_eq!(b["stream"], true);
        assert_eq!(b["messages"][0]["role"], "system");
        assert_eq!(
            b["messages"][2]["tool_calls"][0]["function"]["name"],
            "cow_health"
        );
        assert_eq!(b["messages"][2]["content"], Value::Null);
        assert_eq!(b["messages"][3]["role"], "tool");
        assert_eq!(b["messages"][3]["tool_call_id"], "c1");
        assert_eq!(b["tools"].as_array().unwrap().len(), 4);
        let no_tools = body(
            "m",
            &Request {
                system: "s",
                turns: &turns,
                tools: &[],
            },
        );
        assert!(no_tools.get("tools").is_none());
    }
}
