//! Amazon Bedrock's ConverseStream: `POST /model/{modelId}/converse-stream`, signed with SigV4
//! ([`sigv4`]) by credentials from the standard AWS chain ([`credentials`]), answered as AWS
//! event-stream frames ([`eventstream`]): text and tool-use deltas by content block, the stop
//! reason, the usage. Claude on AWS is reached this way.
//!
//! Not the AWS SDK: `aws-sdk-bedrockruntime` + `aws-config` measured 172 crates and about
//! 340 s of release build on the CI's two cores for this one call; what it does here (the
//! credential chain, SigV4, the frame format) is a few hundred lines with the hashing crates
//! the server already has, tested against AWS's published examples.

pub mod credentials;
pub mod eventstream;
pub mod sigv4;

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{
    Call, Chunk, ChunkStream, Decode, Decoded, Failure, Provider, Request, Turn,
    http::{Client, Url},
    tools::Tool,
};
use crate::config::ModelConfig;

/// The provider.
#[derive(Debug)]
pub struct Bedrock {
    client: Client,
    endpoint: Url,
    region: String,
    model: String,
    credentials: credentials::Chain,
}

impl Bedrock {
    /// From the flags and the environment (`AWS_REGION`, the credential chain's variables).
    pub fn new(config: &ModelConfig) -> Result<Self, String> {
        Self::with_env(
            config,
            Box::new(|k| std::env::var(k).ok().filter(|v| !v.is_empty())),
        )
    }

    /// From the flags and `env` in place of the process's environment (tests).
    pub fn with_env(config: &ModelConfig, env: Box<credentials::Env>) -> Result<Self, String> {
        let region = env("AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .ok_or("--assistant bedrock needs AWS_REGION")?;
        let model = config
            .model
            .clone()
            .ok_or("--assistant bedrock needs --model (a model or inference profile id)")?;
        let endpoint = config
            .bedrock_endpoint_url
            .clone()
            .unwrap_or_else(|| format!("https://bedrock-runtime.{region}.amazonaws.com"));
        let client = Client::new(
            config.model_ca_cert.as_deref(),
            config.model_connect_timeout,
        )?;
        Ok(Self {
            endpoint: Url::parse(&endpoint).map_err(|e| format!("--bedrock-endpoint-url {e}"))?,
            credentials: credentials::Chain::new(env, client.clone()),
            client,
            region,
            model,
        })
    }
}

fn tool_specs(tools: &[Tool]) -> Value {
    json!({
        "tools": tools.iter().map(|t| json!({
            "toolSpec": {"name": t.name, "description": t.description, "inputSchema": {"json": t.parameters}}
        })).collect::<Vec<_>>()
    })
}

/// The request body. Bedrock wants turns that alternate, starting with the user's: neighbours
/// of the same role are merged.
pub fn body(request: &Request<'_>) -> Value {
    let mut messages: Vec<(&str, Vec<Value>)> = Vec::new();
    let mut uses_tools = false;
    for turn in request.turns {
        let (role, content) = match turn {
            Turn::User(text) => ("user", vec![json!({"text": text})]),
            Turn::Assistant { text, calls } => {
                let mut content = Vec::new();
                if !text.is_empty() {
                    content.push(json!({"text": text}));
                }
                for c in calls {
                    uses_tools = true;
                    let input: Value =
                        serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({}));
                    content.push(
                        json!({"toolUse": {"toolUseId": c.id, "name": c.name, "input": input}}),
                    );
                }
                ("assistant", content)
            }
            Turn::Results(results) => (
                "user",
                results
                    .iter()
                    .map(|r| {
                        let content: Value = serde_json::from_str(&r.content)
                            .unwrap_or_else(|_| json!({"text": r.content}));
                        let mut result = json!({"toolUseId": r.id, "content": [{"json": content}]});
                        if r.is_error {
                            result["status"] = json!("error");
                        }
                        json!({"toolResult": result})
                    })
                    .collect(),
            ),
        };
        if content.is_empty() {
            continue;
        }
        match messages.last_mut() {
            Some((last, blocks)) if *last == role => blocks.extend(content),
            _ => messages.push((role, content)),
        }
    }
    if messages.first().is_some_and(|(r, _)| *r == "assistant") {
        messages.remove(0);
    }
    let mut body = json!({
        "messages": messages.into_iter().map(|(role, content)| json!({"role": role, "content": content})).collect::<Vec<_>>(),
        "system": [{"text": request.system}],
        "inferenceConfig": {"maxTokens": 2048},
    });
    if !request.tools.is_empty() {
        body["toolConfig"] = tool_specs(request.tools);
    } else if uses_tools {
        // Bedrock refuses tool blocks without a tool configuration; the last round offers the
        // tools but a call there ends the answer (the model was told to answer).
        body["toolConfig"] = tool_specs(&super::tools::all());
    }
    body
}

/// What an HTTP status or an exception means for an answer.
fn failure(status: u16, kind: &str, message: String) -> Failure {
    match (status, kind) {
        (429, _) | (_, "throttlingException" | "ThrottlingException") => Failure::RateLimited,
        (_, "modelTimeoutException" | "ModelTimeoutException") | (408, _) => {
            Failure::Timeout(message)
        }
        (_, "modelStreamErrorException" | "ModelStreamErrorException") => {
            Failure::BadOutput(message)
        }
        _ => Failure::Unavailable(format!("{status} {kind}: {message}")),
    }
}

#[async_trait::async_trait]
impl Provider for Bedrock {
    fn name(&self) -> &'static str {
        "bedrock"
    }

    async fn start(&self, request: &Request<'_>) -> Result<Box<dyn ChunkStream>, Failure> {
        let body = body(request).to_string().into_bytes();
        let creds = self.credentials.get().await?;
        let path = format!(
            "{}/model/{}/converse-stream",
            self.endpoint.path,
            sigv4::uri_encode(&self.model)
        );
        let amz_date = sigv4::amz_date_now();
        let mut headers = vec![
            ("accept", "application/vnd.amazon.eventstream".to_owned()),
            ("content-type", "application/json".to_owned()),
            ("host", self.endpoint.authority()),
            ("x-amz-date", amz_date.clone()),
        ];
        if let Some(token) = &creds.session_token {
            headers.push(("x-amz-security-token", token.clone()));
        }
        let authorization = sigv4::authorization(
            &sigv4::Signing {
                method: "POST",
                path: &path,
                query: "",
                headers: &headers,
                payload: &body,
                region: &self.region,
                service: "bedrock",
                amz_date: &amz_date,
                double_encode: true,
            },
            &creds,
        );
        headers.retain(|(n, _)| *n != "host");
        headers.push(("authorization", authorization));
        let response = self
            .client
            .send("POST", &self.endpoint, &path, &headers, body)
            .await?;
        if response.status != 200 {
            let status = response.status;
            let kind = response
                .headers
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .split(':')
                .next()
                .unwrap_or("")
                .to_owned();
            let text = response.text(2_000).await;
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| {
                    v["message"]
                        .as_str()
                        .or(v["Message"].as_str())
                        .map(str::to_owned)
                })
                .unwrap_or(text);
            return Err(failure(status, &kind, message));
        }
        Ok(Box::new(Decoded::new(response, Decoder::default())))
    }
}

/// ConverseStream's events, decoded as bytes arrive (pure).
#[derive(Debug, Default)]
pub struct Decoder {
    frames: eventstream::Decoder,
    /// Tool uses in the making, by content block: id, name, input so far.
    uses: BTreeMap<u64, (String, String, String)>,
    /// `messageStop` seen.
    stop_seen: bool,
    /// The stream is over (`metadata` after the stop, or the body's end).
    pub stopped: bool,
}

impl Decode for Decoder {
    fn finished(&self) -> bool {
        self.stopped
    }

    /// Feeds bytes; answers the chunks they complete.
    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Chunk>, Failure> {
        let messages = self
            .frames
            .feed(bytes)
            .map_err(|e| Failure::BadOutput(e.0))?;
        let mut out = Vec::new();
        for m in messages {
            let payload: Value = serde_json::from_slice(&m.payload)
                .map_err(|e| Failure::BadOutput(format!("an event is not JSON: {e}")))?;
            match m.header(":message-type") {
                Some("event") => {}
                Some("exception" | "error") => {
                    let kind = m
                        .header(":exception-type")
                        .or(m.header(":error-code"))
                        .unwrap_or("")
                        .to_owned();
                    let message = payload["message"]
                        .as_str()
                        .or(payload["Message"].as_str())
                        .unwrap_or("")
                        .to_owned();
                    return Err(failure(0, &kind, message));
                }
                other => return Err(Failure::BadOutput(format!("message type {other:?}"))),
            }
            let block = payload["contentBlockIndex"].as_u64().unwrap_or(0);
            match m.header(":event-type").unwrap_or("") {
                "messageStart" | "contentBlockStop" => {}
                "contentBlockStart" => {
                    if let Some(tool) = payload["start"].get("toolUse") {
                        self.uses.insert(
                            block,
                            (
                                tool["toolUseId"].as_str().unwrap_or("").to_owned(),
                                tool["name"].as_str().unwrap_or("").to_owned(),
                                String::new(),
                            ),
                        );
                    }
                }
                "contentBlockDelta" => {
                    let delta = &payload["delta"];
                    if let Some(text) = delta["text"].as_str() {
                        if !text.is_empty() {
                            out.push(Chunk::Text(text.to_owned()));
                        }
                    } else if let Some(input) = delta["toolUse"]["input"].as_str() {
                        let entry = self.uses.get_mut(&block).ok_or_else(|| {
                            Failure::BadOutput("tool input for no tool use".into())
                        })?;
                        entry.2.push_str(input);
                        if entry.2.len() > 64 * 1024 {
                            return Err(Failure::BadOutput("tool input over 64 KiB".into()));
                        }
                    }
                }
                "messageStop" => {
                    self.stop_seen = true;
                    out.extend(std::mem::take(&mut self.uses).into_values().map(
                        |(id, name, arguments)| {
                            Chunk::Call(Call {
                                id,
                                name,
                                arguments,
                            })
                        },
                    ));
                }
                "metadata" => {
                    let usage = &payload["usage"];
                    out.push(Chunk::Usage {
                        input: usage["inputTokens"].as_u64().unwrap_or(0),
                        output: usage["outputTokens"].as_u64().unwrap_or(0),
                    });
                    if self.stop_seen {
                        self.stopped = true;
                    }
                }
                other => tracing::debug!(event = other, "a ConverseStream event ignored"),
            }
        }
        Ok(out)
    }

    /// The body ended.
    fn end(&mut self) -> Result<Vec<Chunk>, Failure> {
        self.stopped = true;
        if self.frames.has_partial() || !self.stop_seen {
            return Err(Failure::BadOutput(
                "the stream ended before the answer did".into(),
            ));
        }
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::eventstream::Message;
    use super::*;

    fn frame(kind: &str, payload: Value) -> Vec<u8> {
        Message {
            headers: vec![
                (":event-type".into(), kind.into()),
                (":content-type".into(), "application/json".into()),
                (":message-type".into(), "event".into()),
            ],
            payload: payload.to_string().into_bytes(),
        }
        .encode()
    }

    #[test]
    fn a_tool_use_then_usage_decodes_across_any_reads() {
        let mut bytes = Vec::new();
        bytes.extend(frame("messageStart", json!({"role": "assistant"})));
        bytes.extend(frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "確認します"}}),
        ));
        bytes.extend(frame("contentBlockStop", json!({"contentBlockIndex": 0})));
        bytes.extend(frame("contentBlockStart", json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tu1", "name": "cow_health"}}})));
        bytes.extend(frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"cow\":"}}}),
        ));
        bytes.extend(frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"14\"}"}}}),
        ));
        bytes.extend(frame("contentBlockStop", json!({"contentBlockIndex": 1})));
        bytes.extend(frame("messageStop", json!({"stopReason": "tool_use"})));
        bytes.extend(frame(
            "metadata",
            json!({"usage": {"inputTokens": 300, "outputTokens": 20}}),
        ));
        for step in [1, 9, 100, bytes.len()] {
            let mut d = Decoder::default();
            let mut out = Vec::new();
            for piece in bytes.chunks(step) {
                out.extend(d.feed(piece).unwrap());
            }
            assert!(d.stopped);
            assert_eq!(
                out,
                vec![
                    Chunk::Text("確認します".into()),
                    Chunk::Call(Call {
                        id: "tu1".into(),
                        name: "cow_health".into(),
                        arguments: "{\"cow\":\"14\"}".into()
                    }),
                    Chunk::Usage {
                        input: 300,
                        output: 20
                    },
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn exceptions_map_to_the_failures_farmers_see() {
        let throttled = Message {
            headers: vec![
                (":exception-type".into(), "throttlingException".into()),
                (":message-type".into(), "exception".into()),
            ],
            payload: br#"{"message":"Too many requests"}"#.to_vec(),
        }
        .encode();
        assert_eq!(
            Decoder::default().feed(&throttled),
            Err(Failure::RateLimited)
        );
        assert_eq!(
            failure(503, "ServiceUnavailableException", String::new()).code(),
            "model_unavailable"
        );
        let mut d = Decoder::default();
        d.feed(&frame("contentBlockDelta", json!({"delta": {"text": "a"}})))
            .unwrap();
        assert!(matches!(d.end(), Err(Failure::BadOutput(_))));
    }

    #[test]
    fn the_body_alternates_roles_and_sends_tool_results_as_json() {
        use super::super::{ToolResult, tools};
        let turns = vec![
            Turn::Assistant {
                text: "こんにちは".into(),
                calls: vec![],
            },
            Turn::User("a".into()),
            Turn::User("14番は？".into()),
            Turn::Assistant {
                text: String::new(),
                calls: vec![Call {
                    id: "tu1".into(),
                    name: "cow_health".into(),
                    arguments: "{\"cow\":\"14\"}".into(),
                }],
            },
            Turn::Results(vec![ToolResult {
                id: "tu1".into(),
                content: "{\"error\":\"no cow\"}".into(),
                is_error: true,
            }]),
        ];
        let b = body(&Request {
            system: "sys",
            turns: &turns,
            tools: &[],
        });
        let messages = b["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3, "{b}");
        assert_eq!(messages[0]["role"], "user");
        assert_eq!(
            messages[0]["content"].as_array().unwrap().len(),
            2,
            "merged"
        );
        assert_eq!(messages[1]["content"][0]["toolUse"]["input"]["cow"], "14");
        assert_eq!(messages[2]["content"][0]["toolResult"]["status"], "error");
        assert!(
            b["toolConfig"]["tools"]
                .as_array()
                .is_some_and(|t| t.len() == tools::all().len())
        );
        assert_eq!(b["system"][0]["text"], "sys");
    }
}
