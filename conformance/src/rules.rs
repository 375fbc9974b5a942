//! The rules, each a named check with what it protects in the widget. [`run`] signs in, finds
//! the conversations it needs, then checks every rule in order against the live server.
//!
//! A rule passes, fails with a one-line reason, or is skipped (the server doesn't claim it, or
//! the rule needs something this run lacks). A skipped rule is never counted as passed.

use farm_chat_protocol::paths;
use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use serde_json::{Value, json};

use crate::client::{Event, Reply, Sse, Target};

/// A rule: its stable name and what breaks for a farmer when a server fails it.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    /// Stable name, e.g. `send.idempotent_retry`.
    pub id: &'static str,
    /// What it protects, in one line.
    pub protects: &'static str,
}

/// How a rule came out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It holds.
    Pass,
    /// It does not; the reason.
    Fail(String),
    /// Not checked; why.
    Skip(String),
}

/// One rule's result.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The rule.
    pub rule: Rule,
    /// Its outcome.
    pub outcome: Outcome,
}

/// Who the suite acts as: two users of one tenant who share a support conversation (a farmer
/// and support staff), and a user of another tenant.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// Sign in with `POST /api/session {"userId"}` (the dev-server's demo sign-in).
    Demo {
        /// The farmer.
        a: String,
        /// Support staff of the same tenant.
        b: String,
        /// A user of another tenant.
        other: String,
    },
    /// Bearer tokens the platform issued.
    Tokens {
        /// The farmer's.
        a: String,
        /// Support staff's, same tenant.
        b: String,
        /// Another tenant's user's.
        other: String,
    },
}

/// What the run checks.
#[derive(Clone, Debug)]
pub struct Options {
    /// Check the assistant's task rules.
    pub assistant: bool,
    /// The longest wait for a `ping` on an idle stream.
    pub ping_within: Duration,
    /// An origin the server allows with credentials, if the run knows one.
    pub allowed_origin: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            assistant: true,
            ping_within: Duration::from_secs(20),
            allowed_origin: None,
        }
    }
}

/// Every rule, in the order they are checked.
pub const RULES: &[Rule] = &[
    rule("session.sign_in", "the widget can get a session at all"),
    rule(
        "session.current",
        "the widget learns who is signed in (name, role) for its labels",
    ),
    rule("conversations.list", "the farmer sees their conversations"),
    rule(
        "errors.shape",
        "the widget shows the server's reason instead of a blank failure",
    ),
    rule(
        "errors.malformed_json",
        "a broken request is refused clearly, not half-applied",
    ),
    rule(
        "errors.oversized_body",
        "a huge paste is refused with 413, not stored or crashed on",
    ),
    rule(
        "errors.unknown_conversation",
        "a wrong id is a 404, so the widget can say so",
    ),
    rule(
        "errors.foreign_tenant",
        "another farm's conversation is not even revealed to exist",
    ),
    rule(
        "errors.unauthenticated",
        "a signed-out widget gets 401 and signs in again",
    ),
    rule(
        "send.created",
        "a sent message is stored and acknowledged with its id and seq",
    ),
    rule(
        "send.idempotent_retry",
        "a retry after a lost answer does not post the message twice",
    ),
    rule(
        "send.idempotency_conflict",
        "a reused key with another text is refused, not merged",
    ),
    rule(
        "send.seq_gapless",
        "the widget can tell a missing message from a gap in seqs",
    ),
    rule(
        "history.order",
        "history shows messages in the order they were sent",
    ),
    rule(
        "history.paging",
        "scrolling up and catching up fetch exactly the pages asked for",
    ),
    rule(
        "history.own_keys",
        "a reloaded widget matches its pending sends to stored messages, and nobody sees others' keys",
    ),
    rule(
        "stream.headers",
        "events arrive at once: not buffered by compression or caches",
    ),
    rule(
        "stream.ready_first",
        "the widget knows the stream is live and where it stands",
    ),
    rule(
        "stream.retry",
        "browsers reconnect at the pace the server asks",
    ),
    rule(
        "stream.created_ids_only",
        "events stay small and never carry text to the wrong place",
    ),
    rule(
        "stream.ids_increase",
        "the browser's lastEventId always moves forward",
    ),
    rule(
        "stream.fanout",
        "every participant hears of a message, and nobody else does",
    ),
    rule(
        "resume.last_event_id",
        "a reconnect (Last-Event-ID) replays exactly what was missed",
    ),
    rule(
        "resume.query",
        "a new tab resuming by ?lastEventId= replays exactly what was missed",
    ),
    rule(
        "resume.unknown_resets",
        "an id the server can't resume from makes the widget refetch, not miss",
    ),
    rule(
        "read.marks",
        "a farmer sees 既読 once support has read, and reading on one device clears the others",
    ),
    rule(
        "typing.live_only",
        "support sees 入力中… at once, and a reconnect never replays a stale one",
    ),
    rule(
        "stream.ticket_single_use",
        "a stream ticket that leaked into a log can't be used again",
    ),
    rule(
        "stream.ping",
        "proxies don't cut an idle stream, and the widget can tell a dead one",
    ),
    rule(
        "assistant.task_events",
        "the farmer sees status, progress, the result and the answer's text in order, once; text deltas are contiguous by byte offset",
    ),
    rule(
        "assistant.task_snapshot",
        "after a reload the task's state and parts match what streamed, each text part whole and equal to its deltas",
    ),
    rule(
        "assistant.cancel",
        "a cancelled task says so and ends, keeping what it had",
    ),
    rule(
        "cors.allowed_only",
        "only the farm sites the platform allows can read answers",
    ),
    rule(
        "cors.foreign_cookie_post",
        "another site can't post as a signed-in farmer (CSRF)",
    ),
];

const fn rule(id: &'static str, protects: &'static str) -> Rule {
    Rule { id, protects }
}

fn find(id: &str) -> Rule {
    RULES.iter().copied().find(|r| r.id == id).unwrap_or(Rule {
        id: "unknown",
        protects: "",
    })
}

/// What one run knows once signed in.
struct World {
    target: Target,
    run: String,
    a: String,
    b: String,
    other: String,
    /// The cookie from the farmer's demo sign-in, if there was one.
    cookie: Option<String>,
    /// The conversation the farmer and support share.
    shared: Option<String>,
    /// The farmer's assistant conversation.
    assistant: Option<String>,
    a_user: String,
    sent: u32,
}

/// The results so far.
struct Results(Vec<Checked>);

impl Results {
    fn record(&mut self, id: &str, outcome: Outcome) {
        self.0.push(Checked {
            rule: find(id),
            outcome,
        });
    }

    fn check(&mut self, id: &str, result: Result<(), String>) {
        self.record(
            id,
            match result {
                Ok(()) => Outcome::Pass,
                Err(e) => Outcome::Fail(e),
            },
        );
    }

    fn skip_rest(&mut self, why: &str) {
        for rule in RULES {
            if !self.0.iter().any(|c| c.rule.id == rule.id) {
                self.record(rule.id, Outcome::Skip(why.to_owned()));
            }
        }
    }
}

const WAIT: Duration = Duration::from_secs(10);

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

impl World {
    async fn get(&self, path: &str, token: &str) -> Result<Reply, String> {
        self.target
            .request("GET", path, &[("Authorization", &bearer(token))], None)
            .await
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> Result<Reply, String> {
        self.target
            .request(
                "POST",
                path,
                &[
                    ("Authorization", &bearer(token)),
                    ("Content-Type", "application/json"),
                ],
                Some(body.to_string().as_bytes()),
            )
            .await
    }

    fn key(&mut self) -> String {
        self.sent += 1;
        format!("conf-{}-{}", self.run, self.sent)
    }

    /// Sends `text` as the farmer in `conversation`; the answer and the key used.
    async fn send(&mut self, conversation: &str, text: &str) -> Result<(Reply, String), String> {
        let key = self.key();
        let body = json!({"conversationId": conversation, "text": text, "idempotencyKey": key});
        let reply = self.post(paths::api::SEND, &self.a.clone(), &body).await?;
        Ok((reply, key))
    }

    async fn open(&self, token: &str, extra: &[(&str, &str)], query: &str) -> Result<Sse, String> {
        let auth = bearer(token);
        let mut headers = vec![
            ("Authorization", auth.as_str()),
            ("Accept", "text/event-stream"),
        ];
        headers.extend_from_slice(extra);
        let sse = self
            .target
            .stream(&format!("/api/chat/stream{query}"), &headers)
            .await?;
        if sse.status != 200 {
            return Err(format!("the stream answered {}", sse.status));
        }
        Ok(sse)
    }
}

/// The error body's shape: `{"error":{"code","message"}}` with a JSON content type.
fn error_shape(reply: &Reply) -> Result<(), String> {
    let json = reply.json();
    let ok = reply
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json"))
        && json["error"]["code"].is_string()
        && json["error"]["message"].is_string();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} answered {:?} ({}), not {{\"error\":{{\"code\",\"message\"}}}} as JSON",
            reply.status,
            reply.text(),
            reply.header("content-type").unwrap_or("no content type")
        ))
    }
}

fn expect_status(reply: &Reply, want: u16, what: &str) -> Result<(), String> {
    if reply.status == want {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected {want}, got {} {}",
            reply.status,
            reply.text()
        ))
    }
}

/// Reads events until one matches `pred` (pings and others skipped), within `within`.
async fn until(
    sse: &mut Sse,
    within: Duration,
    mut pred: impl FnMut(&Event) -> bool,
) -> Result<Event, String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match sse.next(left).await? {
            None => return Err("the stream ended".into()),
            Some(e) if pred(&e) => return Ok(e),
            Some(_) => continue,
        }
    }
}

/// Checks every rule against `target`.
pub async fn run(target: Target, credentials: Credentials, options: Options) -> Vec<Checked> {
    let mut results = Results(Vec::new());
    let run_id = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let signed_in = sign_in(&target, &credentials).await;
    let (a, b, other, cookie) = match signed_in {
        Ok(tokens) => {
            results.record("session.sign_in", Outcome::Pass);
            tokens
        }
        Err(e) => {
            results.record("session.sign_in", Outcome::Fail(e));
            results.skip_rest("no session");
            return results.0;
        }
    };
    let mut w = World {
        target,
        run: run_id,
        a,
        b,
        other,
        cookie,
        shared: None,
        assistant: None,
        a_user: String::new(),
        sent: 0,
    };
    // The stream that must see a ping: opened first, read last.
    let idle = w.open(&w.a.clone(), &[], "").await;
    let idle_opened = tokio::time::Instant::now();

    results.check("session.current", session_current(&mut w).await);
    results.check("conversations.list", conversations(&mut w).await);
    let Some(shared) = w.shared.clone() else {
        results.skip_rest("no conversation shared by the two users of one tenant");
        return results.0;
    };
    errors(&mut w, &shared, &mut results).await;
    send_rules(&mut w, &shared, &mut results).await;
    history_rules(&mut w, &shared, &mut results).await;
    stream_rules(&mut w, &shared, &mut results).await;
    resume_rules(&mut w, &shared, &mut results).await;
    results.check("read.marks", read_marks(&mut w, &shared).await);
    results.check("typing.live_only", typing(&mut w, &shared).await);
    results.check("stream.ticket_single_use", ticket(&w).await);
    results.check(
        "stream.ping",
        ping(idle, idle_opened, options.ping_within).await,
    );
    if options.assistant {
        assistant_rules(&mut w, &mut results).await;
    } else {
        for id in [
            "assistant.task_events",
            "assistant.task_snapshot",
            "assistant.cancel",
        ] {
            results.record(id, Outcome::Skip("--no-assistant".into()));
        }
    }
    results.check(
        "cors.allowed_only",
        cors(&w, options.allowed_origin.as_deref()).await,
    );
    let foreign = match w.cookie.clone() {
        Some(cookie) => foreign_cookie_post(&w, &shared, &cookie)
            .await
            .map_or_else(Outcome::Fail, |()| Outcome::Pass),
        None => Outcome::Skip("no session cookie (tokens given, or the sign-in set none)".into()),
    };
    results.record("cors.foreign_cookie_post", foreign);
    results.0
}

type Tokens = (String, String, String, Option<String>);

async fn sign_in(target: &Target, credentials: &Credentials) -> Result<Tokens, String> {
    match credentials {
        Credentials::Tokens { a, b, other } => Ok((a.clone(), b.clone(), other.clone(), None)),
        Credentials::Demo { a, b, other } => {
            let mut tokens = Vec::new();
            let mut cookie = None;
            for user in [a, b, other] {
                let body = json!({"userId": user}).to_string();
                let reply = target
                    .request(
                        "POST",
                        paths::api::SESSION,
                        &[("Content-Type", "application/json")],
                        Some(body.as_bytes()),
                    )
                    .await?;
                if reply.status != 200 {
                    return Err(format!(
                        "POST /api/session as {user}: {} {}",
                        reply.status,
                        reply.text()
                    ));
                }
                let token = reply.json()["token"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("POST /api/session as {user}: no token"))?;
                if user == a {
                    cookie = reply
                        .header("set-cookie")
                        .and_then(|c| c.split(';').next())
                        .map(str::to_owned);
                }
                tokens.push(token);
            }
            let mut tokens = tokens.into_iter();
            match (tokens.next(), tokens.next(), tokens.next()) {
                (Some(a), Some(b), Some(o)) => Ok((a, b, o, cookie)),
                _ => Err("sign-in gave fewer than three tokens".into()),
            }
        }
    }
}

async fn session_current(w: &mut World) -> Result<(), String> {
    let reply = w.get(paths::api::SESSION, &w.a).await?;
    expect_status(&reply, 200, "GET /api/session")?;
    let json = reply.json();
    let user = json["userId"].as_str().ok_or("no userId")?;
    for field in ["tenantId", "displayName", "role"] {
        if !json[field].is_string() {
            return Err(format!("GET /api/session has no {field}"));
        }
    }
    w.a_user = user.to_owned();
    Ok(())
}

async fn conversations(w: &mut World) -> Result<(), String> {
    let list = |reply: &Reply| -> Result<Vec<Value>, String> {
        expect_status(reply, 200, "GET /api/conversations")?;
        reply.json()["conversations"]
            .as_array()
            .cloned()
            .ok_or_else(|| "no conversations array".to_owned())
    };
    let mine = list(&w.get(paths::api::CONVERSATIONS, &w.a).await?)?;
    let theirs = list(&w.get(paths::api::CONVERSATIONS, &w.b).await?)?;
    for c in &mine {
        if !c["id"].is_string() || !c["kind"].is_string() || !c["title"].is_string() {
            return Err(format!("a conversation without id, kind or title: {c}"));
        }
    }
    let ids = |list: &[Value]| -> BTreeSet<String> {
        list.iter()
            .filter_map(|c| c["id"].as_str().map(str::to_owned))
            .collect()
    };
    let theirs = ids(&theirs);
    w.shared = mine
        .iter()
        .filter(|c| c["kind"] == "support")
        .filter_map(|c| c["id"].as_str())
        .find(|id| theirs.contains(*id))
        .map(str::to_owned);
    w.assistant = mine
        .iter()
        .find(|c| c["kind"] == "assistant")
        .and_then(|c| c["id"].as_str())
        .map(str::to_owned);
    if w.shared.is_none() {
        return Err("the farmer and support staff share no support conversation".into());
    }
    Ok(())
}

async fn errors(w: &mut World, shared: &str, results: &mut Results) {
    let malformed = w
        .target
        .request(
            "POST",
            paths::api::SEND,
            &[
                ("Authorization", &bearer(&w.a)),
                ("Content-Type", "application/json"),
            ],
            Some(b"{\"conversationId\": "),
        )
        .await;
    let shape_seen = malformed
        .as_ref()
        .map_err(Clone::clone)
        .and_then(error_shape);
    results.check(
        "errors.malformed_json",
        malformed.and_then(|r| {
            expect_status(&r, 400, "malformed JSON")?;
            error_shape(&r)
        }),
    );
    let big =
        json!({"conversationId": shared, "text": "あ".repeat(40_000), "idempotencyKey": w.key()});
    let oversized = w.post(paths::api::SEND, &w.a, &big).await;
    results.check(
        "errors.oversized_body",
        oversized.and_then(|r| {
            expect_status(&r, 413, "a 120 KB body")?;
            error_shape(&r)
        }),
    );
    let unknown = w.send("c-conformance-no-such-conversation", "x").await;
    results.check(
        "errors.unknown_conversation",
        unknown.and_then(|(r, _)| {
            expect_status(&r, 404, "an unknown conversation")?;
            error_shape(&r)
        }),
    );
    let body = json!({"conversationId": shared, "text": "よその牧場", "idempotencyKey": w.key()});
    let foreign = w.post(paths::api::SEND, &w.other, &body).await;
    results.check(
        "errors.foreign_tenant",
        foreign.and_then(|r| {
            expect_status(&r, 404, "another tenant's conversation")?;
            error_shape(&r)
        }),
    );
    let anonymous = w
        .target
        .request("GET", paths::api::CONVERSATIONS, &[], None)
        .await;
    results.check(
        "errors.unauthenticated",
        anonymous.and_then(|r| {
            expect_status(&r, 401, "no credentials")?;
            error_shape(&r)
        }),
    );
    results.check("errors.shape", shape_seen);
}

async fn send_rules(w: &mut World, shared: &str, results: &mut Results) {
    let text = format!("適合性 {} 1", w.run);
    let created = w.send(shared, &text).await;
    let (first, key) = match created {
        Ok((reply, key)) => (reply, key),
        Err(e) => {
            results.record("send.created", Outcome::Fail(e));
            return;
        }
    };
    let first_json = first.json();
    results.check(
        "send.created",
        expect_status(&first, 201, "a new message").and_then(|()| {
            if first_json["messageId"].is_string() && first_json["seq"].is_u64() {
                Ok(())
            } else {
                Err(format!("no messageId or seq: {first_json}"))
            }
        }),
    );
    let body = json!({"conversationId": shared, "text": text, "idempotencyKey": key});
    let retry = w.post(paths::api::SEND, &w.a, &body).await;
    results.check(
        "send.idempotent_retry",
        retry.and_then(|r| {
            expect_status(&r, 200, "the same key and text again")?;
            if r.json()["messageId"] == first_json["messageId"] {
                Ok(())
            } else {
                Err(format!(
                    "the retry answered messageId {} for {}",
                    r.json()["messageId"],
                    first_json["messageId"]
                ))
            }
        }),
    );
    let other_text =
        json!({"conversationId": shared, "text": format!("{text} 別"), "idempotencyKey": key});
    let conflict = w.post(paths::api::SEND, &w.a, &other_text).await;
    results.check(
        "send.idempotency_conflict",
        conflict.and_then(|r| {
            expect_status(&r, 409, "the same key with another text")?;
            error_shape(&r)
        }),
    );
    let mut seqs = Vec::new();
    let mut gapless = Ok(());
    for n in 2..=4 {
        match w.send(shared, &format!("適合性 {} {n}", w.run)).await {
            Ok((r, _)) if r.status == 201 => seqs.push(r.json()["seq"].as_u64().unwrap_or(0)),
            Ok((r, _)) => {
                gapless = Err(format!("a send answered {} {}", r.status, r.text()));
                break;
            }
            Err(e) => {
                gapless = Err(e);
                break;
            }
        }
    }
    if gapless.is_ok() && !seqs.windows(2).all(|p| p[1] == p[0] + 1) {
        gapless = Err(format!("three sends in a row got seqs {seqs:?}"));
    }
    results.check("send.seq_gapless", gapless);
}

async fn history_rules(w: &mut World, shared: &str, results: &mut Results) {
    let page = |q: &str| format!("/api/chat/history?conversationId={shared}{q}");
    let all = w.get(&page("&limit=100"), &w.a).await;
    let messages = match all.and_then(|r| {
        expect_status(&r, 200, "history")?;
        r.json()["messages"]
            .as_array()
            .cloned()
            .ok_or_else(|| "no messages array".to_owned())
    }) {
        Ok(m) => m,
        Err(e) => {
            results.record("history.order", Outcome::Fail(e));
            return;
        }
    };
    let seqs: Vec<u64> = messages.iter().filter_map(|m| m["seq"].as_u64()).collect();
    let ours = messages
        .iter()
        .filter(|m| {
            m["text"]
                .as_str()
                .is_some_and(|t| t.contains(&format!("適合性 {}", w.run)))
        })
        .count();
    results.check(
        "history.order",
        if !seqs.windows(2).all(|p| p[0] < p[1]) {
            Err(format!("seqs out of order: {seqs:?}"))
        } else if ours < 4 {
            Err(format!(
                "only {ours} of this run's 4 messages are in the newest 100"
            ))
        } else {
            Ok(())
        },
    );
    let paging = async {
        let (Some(&last), Some(&first)) = (seqs.last(), seqs.first()) else {
            return Err("no messages to page".to_owned());
        };
        let before = w
            .get(&page(&format!("&limit=2&before={last}")), &w.a)
            .await?;
        expect_status(&before, 200, "before")?;
        let got: Vec<u64> = before.json()["messages"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["seq"].as_u64()).collect())
            .unwrap_or_default();
        let want: Vec<u64> = seqs.iter().copied().filter(|s| *s < last).collect();
        let want = want[want.len().saturating_sub(2)..].to_vec();
        if got != want {
            return Err(format!("before={last}&limit=2 gave {got:?}, not {want:?}"));
        }
        let more = before.json()["hasMore"].as_bool();
        if more != Some(seqs.iter().filter(|s| **s < last).count() > 2) {
            return Err(format!("before={last}&limit=2: hasMore {more:?}"));
        }
        let after = w
            .get(&page(&format!("&limit=100&after={first}")), &w.a)
            .await?;
        let got: Vec<u64> = after.json()["messages"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["seq"].as_u64()).collect())
            .unwrap_or_default();
        let want: Vec<u64> = seqs.iter().copied().filter(|s| *s > first).collect();
        if got != want {
            return Err(format!("after={first} gave {got:?}, not {want:?}"));
        }
        Ok(())
    };
    results.check("history.paging", paging.await);
    let keys = async {
        let own = messages
            .iter()
            .filter(|m| m["sender"]["id"] == w.a_user.as_str())
            .filter(|m| m["text"].as_str().is_some_and(|t| t.contains(&w.run)));
        if own.clone().any(|m| !m["idempotencyKey"].is_string()) {
            return Err("the farmer's own message came without its idempotencyKey".to_owned());
        }
        let theirs = w.get(&page("&limit=100"), &w.b).await?;
        let leaked = theirs.json()["messages"].as_array().is_some_and(|m| {
            m.iter()
                .any(|m| m["sender"]["id"] == w.a_user.as_str() && !m["idempotencyKey"].is_null())
        });
        if leaked {
            return Err("support staff see the farmer's idempotency keys".into());
        }
        Ok(())
    };
    results.check("history.own_keys", keys.await);
}

async fn stream_rules(w: &mut World, shared: &str, results: &mut Results) {
    let opened = async {
        let a = w.open(&w.a, &[("Accept-Encoding", "gzip, br")], "").await?;
        let b = w.open(&w.b, &[], "").await?;
        let o = w.open(&w.other, &[], "").await?;
        Ok::<_, String>((a, b, o))
    };
    let (mut a, mut b, mut o) = match opened.await {
        Ok(s) => s,
        Err(e) => {
            for id in [
                "stream.headers",
                "stream.ready_first",
                "stream.retry",
                "stream.created_ids_only",
                "stream.ids_increase",
                "stream.fanout",
            ] {
                results.record(id, Outcome::Fail(e.clone()));
            }
            return;
        }
    };
    let headers = {
        let ct = a.header("content-type").unwrap_or("");
        let ce = a.header("content-encoding");
        let cc = a.header("cache-control").unwrap_or("");
        if !ct.starts_with("text/event-stream") {
            Err(format!("Content-Type is {ct:?}"))
        } else if let Some(ce) = ce.filter(|v| !v.eq_ignore_ascii_case("identity")) {
            Err(format!(
                "the stream is compressed ({ce}): events would wait in a buffer"
            ))
        } else if !cc.contains("no-cache") {
            Err(format!("Cache-Control is {cc:?}, not no-cache"))
        } else {
            Ok(())
        }
    };
    results.check("stream.headers", headers);
    let first = a.next(WAIT).await;
    let ready = match first {
        Ok(Some(e)) if e.name == "ready" && e.id.is_some() => Ok(e),
        Ok(Some(e)) => Err(format!(
            "the first event is {:?}, not ready with an id",
            e.name
        )),
        Ok(None) => Err("the stream ended before ready".into()),
        Err(e) => Err(e),
    };
    results.check("stream.ready_first", ready.clone().map(drop));
    results.check(
        "stream.retry",
        match &ready {
            Ok(e) if e.retry.as_deref().is_some_and(|r| r.parse::<u32>().is_ok()) => Ok(()),
            Ok(_) => Err("ready carries no retry: field".into()),
            Err(e) => Err(e.clone()),
        },
    );
    for s in [&mut b, &mut o] {
        let _ = s.next(WAIT).await;
    }
    let text = format!("適合性 {} 配信", w.run);
    let sent = w.send(shared, &text).await;
    let message_id = match &sent {
        Ok((r, _)) if r.status == 201 => r.json()["messageId"].as_str().unwrap_or("").to_owned(),
        Ok((r, _)) => format!("(send answered {})", r.status),
        Err(e) => format!("(send failed: {e})"),
    };
    let ready_id = ready.as_ref().ok().and_then(Event::id_number);
    let mine = until(&mut a, WAIT, |e| e.name == "message.created").await;
    let created = mine.as_ref().map_err(Clone::clone).and_then(|e| {
        let keys: BTreeSet<String> = e
            .json()
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        let want: BTreeSet<String> = ["conversationId", "messageId", "seq"]
            .into_iter()
            .map(String::from)
            .collect();
        if keys != want {
            Err(format!("message.created carries {keys:?}"))
        } else if e.json()["messageId"] != message_id.as_str() {
            Err(format!(
                "message.created names {} for the message sent, {message_id}",
                e.json()["messageId"]
            ))
        } else {
            Ok(())
        }
    });
    results.check("stream.created_ids_only", created);
    results.check(
        "stream.ids_increase",
        match (&mine, ready_id) {
            (Ok(e), Some(r)) if e.id_number().is_some_and(|id| id > r) => Ok(()),
            (Ok(e), r) => Err(format!("ready had id {r:?}, the next event {:?}", e.id)),
            (Err(e), _) => Err(e.clone()),
        },
    );
    let theirs = until(&mut b, WAIT, |e| e.name == "message.created").await;
    let fanout = match theirs {
        Ok(e) if e.json()["messageId"] == message_id.as_str() => {
            match until(&mut o, Duration::from_secs(1), |e| {
                e.name == "message.created"
            })
            .await
            {
                Ok(leak) => Err(format!("another tenant's user got {}", leak.data)),
                Err(_) => Ok(()),
            }
        }
        Ok(e) => Err(format!("support staff got {} first", e.data)),
        Err(e) => Err(format!("support staff's stream: {e}")),
    };
    results.check("stream.fanout", fanout);
}

async fn resume_rules(w: &mut World, shared: &str, results: &mut Results) {
    for (id, by_header) in [("resume.last_event_id", true), ("resume.query", false)] {
        let outcome = async {
            let mut first = w.open(&w.a, &[], "").await?;
            let ready = first.next(WAIT).await?.ok_or("no ready")?;
            let at = ready.id.ok_or("ready without id")?;
            drop(first);
            let mut missed = Vec::new();
            for n in 0..2 {
                let (r, _) = w
                    .send(shared, &format!("適合性 {} 再開 {n}", w.run))
                    .await?;
                expect_status(&r, 201, "a send while away")?;
                missed.push(r.json()["messageId"].as_str().unwrap_or("").to_owned());
            }
            let mut again = if by_header {
                w.open(&w.a, &[("Last-Event-ID", &at)], "").await?
            } else {
                w.open(&w.a, &[], &format!("?lastEventId={at}")).await?
            };
            let mut got = Vec::new();
            while got.len() < 2 {
                match again.next_not_ping(WAIT).await? {
                    Some(e) if e.name == "ready" => continue,
                    Some(e) if e.name == "message.created" => {
                        got.push(e.json()["messageId"].as_str().unwrap_or("").to_owned());
                    }
                    Some(e) => return Err(format!("replayed {} instead", e.name)),
                    None => return Err("the stream ended".into()),
                }
            }
            if got != missed {
                return Err(format!("replayed {got:?}, missed {missed:?}"));
            }
            // Nothing more than the gap.
            if let Ok(Some(e)) = again.next_not_ping(Duration::from_millis(500)).await {
                return Err(format!("after the gap, also {} {}", e.name, e.data));
            }
            Ok(())
        };
        results.check(id, outcome.await);
    }
    let reset = async {
        let mut s = w
            .open(&w.a, &[("Last-Event-ID", "18446744073709551615")], "")
            .await?;
        let e = until(&mut s, WAIT, |e| e.name != "ready" && e.name != "ping").await?;
        if e.name == "reset" {
            Ok(())
        } else {
            Err(format!(
                "an id beyond the server's gave {} {}",
                e.name, e.data
            ))
        }
    };
    results.check("resume.unknown_resets", reset.await);
}

/// `POST /api/chat/read`: the mark is clamped to the newest message and never moves back; the
/// list shows it to the other side (`othersReadUpTo`), whose stream hears `conversation.read`.
async fn read_marks(w: &mut World, shared: &str) -> Result<(), String> {
    let mut farmer = w.open(&w.a, &[], "").await?;
    let (sent, _) = w.send(shared, &format!("適合性 {} 既読", w.run)).await?;
    expect_status(&sent, 201, "a send to be read")?;
    let seq = sent.json()["seq"].as_u64().ok_or("the send has no seq")?;
    let mark = |seq: u64| json!({"conversationId": shared, "seq": seq});
    let read = w.post(paths::api::READ, &w.b, &mark(u64::MAX >> 1)).await?;
    expect_status(&read, 200, "POST /api/chat/read")?;
    if read.json()["seq"].as_u64() != Some(seq) {
        return Err(format!(
            "a mark past the newest message answered {}, not the newest seq {seq}",
            read.json()
        ));
    }
    let back = w.post(paths::api::READ, &w.b, &mark(0)).await?;
    expect_status(&back, 200, "POST /api/chat/read with 0")?;
    if back.json()["seq"].as_u64() != Some(seq) {
        return Err(format!("the mark moved back: {}", back.json()));
    }
    let list = w.get(paths::api::CONVERSATIONS, &w.a).await?;
    expect_status(&list, 200, "GET /api/conversations")?;
    let others = list.json()["conversations"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["id"] == shared).cloned())
        .ok_or("the shared conversation is not listed")?["othersReadUpTo"]
        .as_u64();
    if others.is_none_or(|o| o < seq) {
        return Err(format!(
            "othersReadUpTo is {others:?} after support read up to {seq}"
        ));
    }
    let event = until(&mut farmer, WAIT, |e| e.name == "conversation.read").await?;
    let data = event.json();
    if data["conversationId"] != shared || data["seq"].as_u64() != Some(seq) || event.id.is_none() {
        return Err(format!(
            "conversation.read is {} (id {:?})",
            event.data, event.id
        ));
    }
    Ok(())
}

/// `POST /api/chat/typing` reaches the other side's open stream as `typing` without an id,
/// and a resume from before it does not replay it.
async fn typing(w: &mut World, shared: &str) -> Result<(), String> {
    let mut support = w.open(&w.b, &[], "").await?;
    let ready = support.next(WAIT).await?.ok_or("no ready")?;
    let at = ready.id.ok_or("ready without id")?;
    let told = w
        .post(paths::api::TYPING, &w.a, &json!({"conversationId": shared}))
        .await?;
    expect_status(&told, 204, "POST /api/chat/typing")?;
    let hint = until(&mut support, WAIT, |e| e.name != "ping").await?;
    if hint.name != "typing" || hint.json()["conversationId"] != shared {
        return Err(format!(
            "support got {} {}, not typing",
            hint.name, hint.data
        ));
    }
    if hint.id.is_some() {
        return Err("typing carries an id: a resume would replay it".into());
    }
    drop(support);
    let (sent, _) = w.send(shared, &format!("適合性 {} 入力後", w.run)).await?;
    expect_status(&sent, 201, "a send after typing")?;
    let mut again = w.open(&w.b, &[("Last-Event-ID", &at)], "").await?;
    let replayed = until(&mut again, WAIT, |e| e.name != "ready" && e.name != "ping").await?;
    if replayed.name != "message.created" {
        return Err(format!("a resume replayed {} first", replayed.name));
    }
    Ok(())
}

async fn ticket(w: &World) -> Result<(), String> {
    let reply = w
        .target
        .request(
            "POST",
            paths::api::STREAM_TICKET,
            &[("Authorization", &bearer(&w.a))],
            None,
        )
        .await?;
    expect_status(&reply, 200, "POST /api/chat/stream-ticket")?;
    let ticket = reply.json()["ticket"]
        .as_str()
        .map(str::to_owned)
        .ok_or("no ticket")?;
    let path = format!("/api/chat/stream?ticket={ticket}");
    let mut first = w.target.stream(&path, &[]).await?;
    if first.status != 200 {
        return Err(format!("the ticket's first use answered {}", first.status));
    }
    let ready = first.next(WAIT).await?;
    if ready.as_ref().map(|e| e.name.as_str()) != Some("ready") {
        return Err("the ticket's stream did not start with ready".into());
    }
    let second = w.target.stream(&path, &[]).await?;
    if second.status != 401 {
        return Err(format!("a second use answered {}, not 401", second.status));
    }
    Ok(())
}

async fn ping(
    idle: Result<Sse, String>,
    opened: tokio::time::Instant,
    within: Duration,
) -> Result<(), String> {
    let mut idle = idle?;
    let deadline = opened + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match idle.next(left).await {
            Ok(Some(e)) if e.name == "ping" => return Ok(()),
            Ok(Some(_)) => continue,
            Ok(None) => return Err("the stream ended".into()),
            Err(_) => {
                return Err(format!("no ping within {} s of opening", within.as_secs()));
            }
        }
    }
}

async fn assistant_rules(w: &mut World, results: &mut Results) {
    let Some(conversation) = w.assistant.clone() else {
        for id in [
            "assistant.task_events",
            "assistant.task_snapshot",
            "assistant.cancel",
        ] {
            results.record(
                id,
                Outcome::Fail("the farmer has no assistant conversation".into()),
            );
        }
        return;
    };
    let outcome = async {
        let mut s = w.open(&w.a, &[], "").await?;
        let _ = s.next(WAIT).await?;
        let (r, _) = w.send(&conversation, "14番の牛の健康").await?;
        expect_status(&r, 201, "a request to the assistant")?;
        let task = r.json()["taskId"]
            .as_str()
            .map(str::to_owned)
            .ok_or("the answer names no taskId")?;
        let mut parts = BTreeSet::new();
        let mut last_progress = 0.0;
        let mut ended_by = None;
        let mut seen = Vec::new();
        // Each text part's deltas, concatenated: on one live stream they are contiguous.
        let mut texts: BTreeMap<u64, String> = BTreeMap::new();
        loop {
            let e = until(&mut s, Duration::from_secs(120), |e| {
                e.name.starts_with("task.") && e.json()["taskId"] == task.as_str()
            })
            .await?;
            seen.push(e.name.clone());
            let data = e.json();
            match e.name.as_str() {
                "task.done" => {
                    if ended_by.is_none() {
                        return Err(format!("task.done before a result or error: {seen:?}"));
                    }
                    break;
                }
                "task.result" => ended_by = ended_by.or(Some(e.name.clone())),
                "task.error" => ended_by = Some(e.name.clone()),
                "task.text" => {
                    let part = data["part"].as_u64().ok_or("task.text without part")?;
                    let offset = data["offset"].as_u64().ok_or("task.text without offset")?;
                    let delta = data["text"].as_str().ok_or("task.text without text")?;
                    let held = texts.entry(part).or_default();
                    if offset != held.len() as u64 {
                        return Err(format!(
                            "task.text of part {part} at offset {offset}, but the deltas so far hold {} bytes",
                            held.len()
                        ));
                    }
                    held.push_str(delta);
                }
                "task.progress" => {
                    let p = data["percentage"].as_f64().unwrap_or(-1.0);
                    if p < last_progress {
                        return Err(format!("progress went back from {last_progress} to {p}"));
                    }
                    last_progress = p;
                }
                "task.status" | "task.intermediate" => {}
                other => return Err(format!("unknown task event {other}")),
            }
            // After an error only `task.done`; after a result, more results and the answer's
            // text (a model explains what its tools found), but no more status or progress.
            let late = match ended_by.as_deref() {
                Some("task.error") => e.name != "task.error",
                Some(_) => !matches!(e.name.as_str(), "task.result" | "task.text" | "task.error"),
                None => false,
            };
            if late {
                return Err(format!("{} after the result: {seen:?}", e.name));
            }
            let part = data["part"].as_u64().ok_or("a task event without part")?;
            parts.insert(part);
        }
        Ok::<_, String>((task, parts, texts))
    };
    let (task, parts, texts) = match outcome.await {
        Ok(t) => {
            results.record("assistant.task_events", Outcome::Pass);
            t
        }
        Err(e) => {
            results.record("assistant.task_events", Outcome::Fail(e));
            results.record(
                "assistant.task_snapshot",
                Outcome::Skip("no task streamed".into()),
            );
            results.record("assistant.cancel", Outcome::Skip("no task streamed".into()));
            return;
        }
    };
    let snapshot = async {
        let r = w.get(&format!("/api/tasks/{task}"), &w.a).await?;
        expect_status(&r, 200, "GET /api/tasks/{id}")?;
        let json = r.json();
        let state = json["state"].as_str().unwrap_or("");
        if state == "running" {
            return Err("the task is still running after task.done".into());
        }
        let stored: BTreeSet<u64> = json["parts"]
            .as_array()
            .map(|p| p.iter().filter_map(|p| p["part"].as_u64()).collect())
            .unwrap_or_default();
        if stored != parts {
            return Err(format!(
                "the snapshot has parts {stored:?}, the stream {parts:?}"
            ));
        }
        // A text part in the snapshot is whole (offset 0) and equals the deltas streamed.
        for p in json["parts"].as_array().into_iter().flatten() {
            if p["type"] != "text" {
                continue;
            }
            let n = p["part"].as_u64().unwrap_or(u64::MAX);
            if p["offset"] != 0 {
                return Err(format!("the snapshot's text part {n} is not at offset 0"));
            }
            let streamed = texts.get(&n).map_or("", String::as_str);
            if p["text"].as_str() != Some(streamed) {
                return Err(format!(
                    "the snapshot's text part {n} is {:?}; the deltas made {streamed:?}",
                    p["text"]
                ));
            }
        }
        Ok(())
    };
    results.check("assistant.task_snapshot", snapshot.await);
    let cancel = async {
        let mut s = w.open(&w.a, &[], "").await?;
        let _ = s.next(WAIT).await?;
        let (r, _) = w.send(&conversation, "今月の出荷報告を作って").await?;
        expect_status(&r, 201, "a long request to the assistant")?;
        let task = r.json()["taskId"].as_str().unwrap_or("").to_owned();
        let c = w
            .target
            .request(
                "POST",
                &format!("/api/tasks/{task}/cancel"),
                &[("Authorization", &bearer(&w.a))],
                None,
            )
            .await?;
        if c.status == 409 {
            return Ok(Outcome::Skip(
                "the task ended before it could be cancelled (a fast assistant)".into(),
            ));
        }
        expect_status(&c, 200, "cancel")?;
        let error = until(&mut s, WAIT, |e| {
            e.json()["taskId"] == task.as_str() && (e.name == "task.error" || e.name == "task.done")
        })
        .await?;
        if error.name != "task.error" || error.json()["code"] != "cancelled" {
            return Err(format!("after cancel: {} {}", error.name, error.data));
        }
        let done = until(&mut s, WAIT, |e| {
            e.json()["taskId"] == task.as_str() && e.name.starts_with("task.")
        })
        .await?;
        if done.name != "task.done" {
            return Err(format!("after task.error: {}", done.name));
        }
        Ok(Outcome::Pass)
    };
    results.record(
        "assistant.cancel",
        cancel.await.unwrap_or_else(Outcome::Fail),
    );
}

async fn cors(w: &World, allowed: Option<&str>) -> Result<(), String> {
    let preflight = |origin: String| async move {
        w.target
            .request(
                "OPTIONS",
                paths::api::SEND,
                &[
                    ("Origin", &origin),
                    ("Access-Control-Request-Method", "POST"),
                    ("Access-Control-Request-Headers", "content-type"),
                ],
                None,
            )
            .await
    };
    let foreign = "https://conformance-foreign.example";
    let r = preflight(foreign.to_owned()).await?;
    if let Some(v) = r.header("access-control-allow-origin")
        && (v == foreign || v == "*")
    {
        return Err(format!("a foreign origin is allowed ({v})"));
    }
    if let Some(allowed) = allowed {
        let r = preflight(allowed.to_owned()).await?;
        if r.header("access-control-allow-origin") != Some(allowed)
            || r.header("access-control-allow-credentials") != Some("true")
        {
            return Err(format!(
                "the allowed origin {allowed} is not allowed with credentials"
            ));
        }
    }
    Ok(())
}

async fn foreign_cookie_post(w: &World, shared: &str, cookie: &str) -> Result<(), String> {
    let body = json!({"conversationId": shared, "text": "CSRF", "idempotencyKey": format!("conf-{}-csrf", w.run)});
    let r = w
        .target
        .request(
            "POST",
            paths::api::SEND,
            &[
                ("Cookie", cookie),
                ("Origin", "https://conformance-foreign.example"),
                ("Content-Type", "application/json"),
            ],
            Some(body.to_string().as_bytes()),
        )
        .await?;
    expect_status(&r, 403, "a cookie POST from a foreign origin")?;
    error_shape(&r)
}
