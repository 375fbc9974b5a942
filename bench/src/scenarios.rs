//! The three server scenarios: idle streams, fan-out, throughput. Each returns one JSON object
//! per run (`scenario`, `params`, `figures`), which `main` prints as a table and writes out.

use farm_chat_protocol::paths;
use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::{sync::Semaphore, task::JoinSet};

use crate::{
    http::{Client, Stream, Target, login},
    stats::summarize,
    system,
};

/// Settings every scenario shares.
#[derive(Clone, Debug)]
pub struct Common {
    /// The server.
    pub target: Target,
    /// The server's pid, for memory and CPU figures (same machine only).
    pub server_pid: Option<u32>,
    /// Farmers are `{farmer_prefix}{n}` (the dev-server's `--load-users`).
    pub farmer_prefix: String,
    /// Support staff are `{support_prefix}{k}` (the dev-server's `--load-support`).
    pub support_prefix: String,
}

/// Signs users in, `parallel` at a time over as many kept-alive connections (thousands of
/// sign-ins on a connection each would run the machine out of ports); returns their tokens
/// in order.
async fn login_all(
    common: &Common,
    users: Vec<String>,
    parallel: usize,
) -> Result<Vec<String>, String> {
    let users = Arc::new(users);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..parallel.max(1) {
        let (target, users, next) = (common.target.clone(), users.clone(), next.clone());
        set.spawn(async move {
            let mut client = Client::new(&target);
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(user) = users.get(i) else {
                    return Ok::<_, String>(mine);
                };
                mine.push((i, login(&mut client, user).await?));
            }
        });
    }
    let mut tokens = Vec::with_capacity(users.len());
    while let Some(done) = set.join_next().await {
        tokens.extend(done.map_err(|e| e.to_string())??);
    }
    tokens.sort_by_key(|(i, _)| *i);
    Ok(tokens.into_iter().map(|(_, t)| t).collect())
}

/// Opens a stream and waits for its `ready`.
async fn open_ready(
    target: &Target,
    token: &str,
    source: Option<IpAddr>,
) -> Result<Stream, String> {
    let mut stream = Stream::open(target, token, source)
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let event = stream.next().await.map_err(|e| e.to_string())?;
        if event.name == "ready" {
            return Ok(stream);
        }
    }
}

/// The user's support conversation, found through `GET /api/conversations`.
async fn support_conversation(target: &Target, token: &str) -> Result<String, String> {
    let reply = Client::new(target)
        .call("GET", paths::api::CONVERSATIONS, Some(token), None)
        .await
        .map_err(|e| e.to_string())?;
    reply.json()["conversations"]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["kind"] == "support"))
        .and_then(|c| c["id"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            format!(
                "no support conversation: HTTP {} {}",
                reply.status, reply.body
            )
        })
}

/// Where the `i`th listening stream of fan-out and throughput connects from: spread over
/// 127.0.0.20–23 on loopback (apart from the idle streams' addresses), so earlier runs'
/// closed connections, still in TIME_WAIT, never run one address out of ports.
fn listener_source(target: &Target, i: usize) -> Option<IpAddr> {
    target
        .addr
        .ip()
        .is_loopback()
        .then(|| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 20 + (i % 4) as u8)))
}

/// Reads a stream until it ends, noting when each `message.created` arrived.
fn listen(
    mut stream: Stream,
    seen: Arc<Mutex<Vec<(String, Instant)>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok(event) = stream.next().await {
            if event.name == "message.created" {
                let now = Instant::now();
                let id = serde_json::from_str::<Value>(&event.data)
                    .ok()
                    .and_then(|v| v["messageId"].as_str().map(str::to_owned));
                if let (Some(id), Ok(mut seen)) = (id, seen.lock()) {
                    seen.push((id, now));
                }
            }
        }
    })
}

async fn send(
    client: &mut Client,
    token: &str,
    conversation: &str,
    key: &str,
) -> Result<String, u16> {
    let body = json!({"conversationId": conversation, "text": format!("bench {key}"), "idempotencyKey": key})
        .to_string();
    match client
        .call("POST", paths::api::SEND, Some(token), Some(&body))
        .await
    {
        Ok(reply) if reply.status == 201 => reply.json()["messageId"]
            .as_str()
            .map(str::to_owned)
            .ok_or(reply.status),
        Ok(reply) => Err(reply.status),
        Err(_) => Err(0),
    }
}

/// `idle_streams`: open `n` streams (`per_user` per user) and hold them.
pub async fn idle_streams(
    common: &Common,
    n: usize,
    per_user: usize,
    hold: Duration,
    storm: bool,
) -> Result<Value, String> {
    let per_user = per_user.max(1);
    let user_count = n.div_ceil(per_user);
    // A session per stream: each of a user's streams is another device or browser (one
    // browser's tabs share one stream, and the server caps streams per session).
    let sessions: Vec<String> = (0..n)
        .map(|i| format!("{}{}", common.farmer_prefix, i / per_user))
        .collect();
    let started = Instant::now();
    let tokens = login_all(common, sessions, 64).await?;
    let login_secs = started.elapsed().as_secs_f64();
    // ~28k ephemeral ports per source address, and binding one with port 0 slows down as its
    // ports fill: spread the sockets over 127.0.0.2, .3, … 2,000 each.
    let sources = n.div_ceil(2_000).max(1);
    let rss_before = common.server_pid.and_then(system::rss_kib);
    let gate = Arc::new(Semaphore::new(256));
    let mut set = JoinSet::new();
    let started = Instant::now();
    for (i, token) in tokens.iter().enumerate().take(n) {
        let (target, gate) = (common.target.clone(), gate.clone());
        let token = token.clone();
        let source = (common.target.addr.ip().is_loopback())
            .then(|| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % sources) as u8)));
        set.spawn(async move {
            let _permit = gate.acquire_owned().await;
            open_ready(&target, &token, source).await
        });
    }
    let mut held = Vec::with_capacity(n);
    let mut errors: HashMap<String, usize> = HashMap::new();
    while let Some(done) = set.join_next().await {
        match done {
            Ok(Ok(stream)) => held.push(stream),
            Ok(Err(e)) => *errors.entry(e).or_default() += 1,
            Err(e) => *errors.entry(e.to_string()).or_default() += 1,
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(hold).await;
    let rss_after = common.server_pid.and_then(system::rss_kib);
    let open = held.len();
    drop(held);
    let per_stream = match (rss_before, rss_after) {
        (Some(b), Some(a)) if open > 0 => Some((a.saturating_sub(b) * 1024) as f64 / open as f64),
        _ => None,
    };
    // What the server gives back once everyone has left.
    tokio::time::sleep(hold).await;
    let rss_closed = common.server_pid.and_then(system::rss_kib);
    let storm = if storm {
        reconnect_storm(common, &tokens, open, sources).await
    } else {
        Value::Null
    };
    Ok(json!({
        "scenario": "idle_streams",
        "params": {"streams": n, "streams_per_user": per_user, "users": user_count,
                   "source_addresses": sources, "hold_s": hold.as_secs_f64()},
        "figures": {
            "open": open, "failed": n - open, "errors": errors,
            "login_s": login_secs, "connect_s": connect_secs,
            "connect_rate_per_s": open as f64 / connect_secs.max(1e-9),
            "server_rss_before_kib": rss_before, "server_rss_after_kib": rss_after,
            "server_bytes_per_stream": per_stream,
            "server_rss_after_all_closed_kib": rss_closed,
            "reconnect_storm": storm,
        },
    }))
}

/// Every one of `n` streams connecting at the same moment (the clients of a server that just
/// went away): how many the kernel's listen queue dropped, how many the server refused (503
/// + `Retry-After` when it is full), and how long until all were streaming again.
async fn reconnect_storm(common: &Common, tokens: &[String], n: usize, sources: usize) -> Value {
    let drops_before = system::listen_drops();
    let started = Instant::now();
    let mut set = JoinSet::new();
    for (i, token) in tokens.iter().enumerate().take(n) {
        let target = common.target.clone();
        let token = token.clone();
        let source = (common.target.addr.ip().is_loopback())
            .then(|| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % sources) as u8)));
        set.spawn(async move {
            let at = Instant::now();
            open_ready(&target, &token, source)
                .await
                .map(|stream| (stream, at.elapsed()))
        });
    }
    let mut held = Vec::with_capacity(n);
    let mut waits = Vec::with_capacity(n);
    let mut errors: HashMap<String, usize> = HashMap::new();
    while let Some(done) = set.join_next().await {
        match done {
            Ok(Ok((stream, waited))) => {
                held.push(stream);
                waits.push(waited);
            }
            Ok(Err(e)) => *errors.entry(e).or_default() += 1,
            Err(e) => *errors.entry(e.to_string()).or_default() += 1,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let drops_after = system::listen_drops();
    drop(held);
    let delta = |pick: fn((u64, u64)) -> u64| match (drops_before, drops_after) {
        (Some(b), Some(a)) => Some(pick(a).saturating_sub(pick(b))),
        _ => None,
    };
    json!({
        "streams": n, "reconnected": waits.len(), "failed": n - waits.len(), "errors": errors,
        "seconds": seconds, "connect_to_ready": summarize(&waits).json(),
        "listen_overflows": delta(|d| d.0), "listen_drops": delta(|d| d.1),
    })
}

/// `fanout`: one message into a conversation with `k` other participants, each with a stream.
pub async fn fanout(common: &Common, k: usize, messages: usize) -> Result<Value, String> {
    let sender = format!("{}0", common.farmer_prefix);
    let mut client = Client::new(&common.target);
    let token = login(&mut client, &sender).await?;
    let conversation = support_conversation(&common.target, &token).await?;
    let staff: Vec<String> = (0..k)
        .map(|i| format!("{}{i}", common.support_prefix))
        .collect();
    let tokens = login_all(common, staff, 64).await?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut listeners = Vec::new();
    let gate = Arc::new(Semaphore::new(256));
    let mut set = JoinSet::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let (target, gate) = (common.target.clone(), gate.clone());
        set.spawn(async move {
            let _permit = gate.acquire_owned().await;
            open_ready(&target, &token, listener_source(&target, i)).await
        });
    }
    while let Some(done) = set.join_next().await {
        let stream = done.map_err(|e| e.to_string())??;
        listeners.push(listen(stream, seen.clone()));
    }
    let mut sent = Vec::new();
    for m in 0..messages {
        let start = Instant::now();
        let key = format!("fanout-{k}-{m}-{}", std::process::id());
        let id = send(&mut client, &token, &conversation, &key)
            .await
            .map_err(|status| format!("fan-out send: HTTP {status}"))?;
        sent.push((id, start, Instant::now()));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.lock().map_or(0, |s| s.len()) < k * messages && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    listeners.iter().for_each(|l| l.abort());
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    let mut from_201 = Vec::new();
    let mut to_last = Vec::new();
    // From the send's first byte: what a sender waits for everyone to see it, whatever the
    // 201 does meanwhile (behind a balancer the 201 comes back last).
    let mut from_send = Vec::new();
    let mut before_201 = 0;
    for (id, started, acked) in &sent {
        let arrivals: Vec<Instant> = seen
            .iter()
            .filter(|(s, _)| s == id)
            .map(|(_, t)| *t)
            .collect();
        for t in &arrivals {
            if t < acked {
                before_201 += 1;
            }
            from_201.push(t.saturating_duration_since(*acked));
        }
        if let Some(last) = arrivals.iter().max() {
            to_last.push(last.saturating_duration_since(*acked));
            from_send.push(last.saturating_duration_since(*started));
        }
    }
    let all = summarize(&from_201);
    Ok(json!({
        "scenario": "fanout",
        "params": {"participants_with_streams": k, "messages": messages},
        "figures": {
            "receipts": from_201.len(), "expected": k * messages,
            "lost": (k * messages).saturating_sub(from_201.len()),
            "receipt_after_201": all.json(),
            "last_receipt_after_201": summarize(&to_last).json(),
            "arrived_before_201": before_201,
            "last_receipt_after_send_start": summarize(&from_send).json(),
        },
    }))
}

/// `throughput`: `rate` sends per second for `duration` from many users, each with a listener.
pub async fn throughput(common: &Common, rate: usize, duration: Duration) -> Result<Value, String> {
    // Each user sends 4 a second: under the dev-server's limit (a burst of 30, then 5/s).
    let senders = rate.div_ceil(4).max(1);
    let users: Vec<String> = (1..=senders)
        .map(|i| format!("{}{i}", common.farmer_prefix))
        .collect();
    let tokens = login_all(common, users, 64).await?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut listeners = Vec::new();
    let mut conversations = Vec::new();
    for token in &tokens {
        conversations.push(support_conversation(&common.target, token).await?);
        let stream = open_ready(
            &common.target,
            token,
            listener_source(&common.target, listeners.len()),
        )
        .await?;
        listeners.push(listen(stream, seen.clone()));
    }
    let cpu_before = common.server_pid.and_then(system::cpu_time);
    let period = Duration::from_secs_f64(senders as f64 / rate as f64);
    let t0 = Instant::now() + Duration::from_millis(100);
    let mut set = JoinSet::new();
    for (i, (token, conversation)) in tokens.into_iter().zip(conversations).enumerate() {
        let target = common.target.clone();
        let offset = period.mul_f64(i as f64 / senders as f64);
        set.spawn(async move {
            let mut client = Client::new(&target);
            let mut done = Vec::new();
            let mut failed: HashMap<u16, usize> = HashMap::new();
            for j in 0u32.. {
                let at = t0 + offset + period * j;
                if at > t0 + duration {
                    break;
                }
                tokio::time::sleep_until(at.into()).await;
                let start = Instant::now();
                let key = format!("tp-{rate}-{i}-{j}-{}", std::process::id());
                match send(&mut client, &token, &conversation, &key).await {
                    Ok(id) => done.push((id, start)),
                    Err(status) => *failed.entry(status).or_default() += 1,
                }
            }
            (done, failed)
        });
    }
    let mut sent = Vec::new();
    let mut failed: HashMap<String, usize> = HashMap::new();
    while let Some(result) = set.join_next().await {
        let (done, errors) = result.map_err(|e| e.to_string())?;
        sent.extend(done);
        for (status, n) in errors {
            *failed.entry(status.to_string()).or_default() += n;
        }
    }
    let elapsed = t0.elapsed();
    let cpu_after = common.server_pid.and_then(system::cpu_time);
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.lock().map_or(0, |s| s.len()) < sent.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    listeners.iter().for_each(|l| l.abort());
    let arrivals: HashMap<String, Instant> = seen
        .lock()
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default();
    let latencies: Vec<Duration> = sent
        .iter()
        .filter_map(|(id, start)| Some(arrivals.get(id)?.saturating_duration_since(*start)))
        .collect();
    let cpu = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) => Some(100.0 * (a - b).as_secs_f64() / elapsed.as_secs_f64()),
        _ => None,
    };
    Ok(json!({
        "scenario": "throughput",
        "params": {"rate_per_s": rate, "duration_s": duration.as_secs_f64(), "senders": senders},
        "figures": {
            "sent": sent.len(), "failed": failed, "received": latencies.len(),
            "lost": sent.len() - latencies.len(),
            "achieved_rate_per_s": sent.len() as f64 / elapsed.as_secs_f64(),
            "send_to_receipt": summarize(&latencies).json(),
            "server_cpu_percent": cpu,
        },
    }))
}

/// Microseconds since the Unix epoch (the scripted model stamps its tokens with the same).
fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// What one user's stream saw of its answer.
#[derive(Debug, Default)]
struct Answered {
    /// Model chunk → client receipt, per token (µs).
    latencies: Vec<u64>,
    /// Text held, applied by offset.
    text: String,
    /// Deltas that did not start where the text held ended.
    gaps: usize,
    deltas: usize,
    done: bool,
}

/// `answers`: `n` farmers each ask the scripted model (the server runs `--assistant openai`
/// against it) for an answer of `tokens` tokens at `rate` a second, all at once. Each token
/// carries the moment the model wrote it; the client notes when it arrived. Figures: the
/// added latency from the model's chunk to the client's receipt, deltas lost or out of place,
/// the server's CPU.
pub async fn answers(
    common: &Common,
    n: usize,
    tokens: usize,
    rate: usize,
) -> Result<Value, String> {
    let users: Vec<String> = (1..=n)
        .map(|i| format!("{}{i}", common.farmer_prefix))
        .collect();
    let logins = login_all(common, users, 32).await?;
    let mut readers = Vec::new();
    let mut conversations = Vec::new();
    for (i, token) in logins.iter().enumerate() {
        let reply = Client::new(&common.target)
            .call("GET", paths::api::CONVERSATIONS, Some(token), None)
            .await
            .map_err(|e| e.to_string())?;
        let id = reply.json()["conversations"]
            .as_array()
            .and_then(|l| l.iter().find(|c| c["kind"] == "assistant"))
            .and_then(|c| c["id"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| format!("no assistant conversation: {}", reply.body))?;
        conversations.push(id);
        let mut stream =
            open_ready(&common.target, token, listener_source(&common.target, i)).await?;
        let seen = Arc::new(Mutex::new(Answered::default()));
        let mine = seen.clone();
        let reader = tokio::spawn(async move {
            while let Ok(event) = stream.next().await {
                match event.name.as_str() {
                    "task.text" => {
                        let at = unix_micros();
                        let Ok(d) = serde_json::from_str::<Value>(&event.data) else {
                            continue;
                        };
                        let offset = d["offset"].as_u64().unwrap_or(0) as usize;
                        let delta = d["text"].as_str().unwrap_or("");
                        let Ok(mut a) = mine.lock() else { return };
                        a.deltas += 1;
                        if offset != a.text.len() {
                            a.gaps += 1;
                        }
                        if offset <= a.text.len() && offset + delta.len() > a.text.len() {
                            let from = a.text.len() - offset;
                            let new = delta[from..].to_owned();
                            for stamp in new.split('⟦').skip(1) {
                                if let Some(t) =
                                    stamp.split('⟧').next().and_then(|t| t.parse::<u64>().ok())
                                {
                                    a.latencies.push(at.saturating_sub(t));
                                }
                            }
                            a.text.push_str(&new);
                        }
                    }
                    "task.done" => {
                        if let Ok(mut a) = mine.lock() {
                            a.done = true;
                        }
                        return;
                    }
                    _ => {}
                }
            }
        });
        readers.push((seen, reader));
    }
    let cpu_before = common.server_pid.and_then(system::cpu_time);
    let started = Instant::now();
    let mut set = JoinSet::new();
    for (i, (token, conversation)) in logins.into_iter().zip(conversations).enumerate() {
        let target = common.target.clone();
        set.spawn(async move {
            let body = json!({
                "conversationId": conversation,
                "text": format!("bench:{tokens}:{rate}"),
                "idempotencyKey": format!("answer-{i}-{}", std::process::id()),
            })
            .to_string();
            let reply = Client::new(&target)
                .call("POST", paths::api::SEND, Some(&token), Some(&body))
                .await
                .map_err(|e| e.to_string())?;
            if reply.status != 201 {
                return Err(format!("send: HTTP {} {}", reply.status, reply.body));
            }
            Ok::<_, String>(())
        });
    }
    while let Some(sent) = set.join_next().await {
        sent.map_err(|e| e.to_string())??;
    }
    let deadline = started + Duration::from_secs_f64(tokens as f64 / rate as f64 + 30.0);
    while Instant::now() < deadline
        && !readers
            .iter()
            .all(|(seen, _)| seen.lock().is_ok_and(|a| a.done))
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    let cpu_after = common.server_pid.and_then(system::cpu_time);
    let mut latencies = Vec::new();
    let (mut received, mut gaps, mut deltas, mut finished) = (0usize, 0usize, 0usize, 0usize);
    for (seen, reader) in &readers {
        reader.abort();
        let a = seen.lock().map_err(|e| e.to_string())?;
        received += a.text.matches('⟦').count();
        gaps += a.gaps;
        deltas += a.deltas;
        finished += usize::from(a.done);
        latencies.extend(a.latencies.iter().map(|us| Duration::from_micros(*us)));
    }
    let cpu = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) => Some(100.0 * (a - b).as_secs_f64() / elapsed.as_secs_f64()),
        _ => None,
    };
    Ok(json!({
        "scenario": "answers",
        "params": {"answers": n, "tokens_each": tokens, "tokens_per_second_each": rate},
        "figures": {
            "answers_finished": finished,
            "tokens_expected": n * tokens,
            "tokens_received": received,
            "lost": (n * tokens).saturating_sub(received),
            "deltas_received": deltas,
            "deltas_out_of_place": gaps,
            "added_latency_ms": summarize(&latencies).json(),
            "server_cpu_percent": cpu,
            "elapsed_s": elapsed.as_secs_f64(),
        },
    }))
}
