//! farm-chat-chaos: a seeded, fault-injecting HTTP/1.1 proxy between a browser and the
//! dev-server, for the end-to-end fault suite (issue 5). Faults come from outside the widget.
//!
//! - [`Faults`]: what to do to streams (cut after n events, stall, delay, duplicate or swap
//!   adjacent SSE events, inject bad input, answer 204/500) and whether to be "offline";
//! - [`Chaos`]: the shared state: faults, a seeded RNG ([`SplitMix64`]), counters ([`Stats`]);
//! - [`serve`]: the proxy. Every request is forwarded with `Connection: close` so each TCP
//!   connection carries one request; stream answers are de-chunked, split into SSE events
//!   ([`sse::Splitter`]) and faulted event by event;
//! - several upstreams (the instances of a cluster): each connection goes to the next
//!   ([`Balance::RoundRobin`]) or a seeded random one ([`Balance::Random`]); one that refuses
//!   the connection (killed, restarting) is skipped for the next. With no faults set, the
//!   proxy is a plain balancer that passes streams through unbuffered;
//! - control on the same port: `GET /__chaos/stats`, `POST /__chaos/faults` (JSON [`Faults`]),
//!   `POST /__chaos/cut` (cut every open stream now).

pub mod sse;

use farm_chat_protocol::paths;
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// A tiny seeded generator: every run with the same seed makes the same choices.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// Seeded.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi].
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// What to do to the traffic. Everything is off by default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Faults {
    /// Cut each stream after a random number of events in `[min, max]`.
    pub cut_after: Option<(u64, u64)>,
    /// Chance that an event is followed by a stall of `stall_ms`.
    pub stall: f64,
    /// How long a stall lasts.
    pub stall_ms: u64,
    /// Delay each event by a random 0..=`delay_ms`.
    pub delay_ms: u64,
    /// Chance that an event is sent twice.
    pub duplicate: f64,
    /// Chance that an event is swapped with the next one.
    pub swap: f64,
    /// Answer stream requests with this status instead of forwarding them (204, 500).
    pub stream_status: Option<u16>,
    /// Bad input written into each stream after its first event: `malformed_json`,
    /// `unknown_event`, `nul_id` or `bogus_retry`.
    pub inject: Option<String>,
    /// Chance that an API request other than the stream is forwarded but its answer never
    /// comes back (the connection closes unanswered): the server acted, the browser sees a
    /// network error. A flaky network; the stream itself stays up.
    pub drop_answers: f64,
    /// A network that is down: open streams are cut when it starts, and every connection is
    /// dropped while it lasts.
    pub offline: bool,
    /// Reseed the proxy's choices with this (so a run can be replayed on its own).
    pub seed: Option<u64>,
}

/// What the proxy saw and did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Requests forwarded or answered, by path (query left off).
    pub requests: BTreeMap<String, u64>,
    /// Streams cut (by `cutAfter` or `/__chaos/cut`).
    pub cuts: u64,
    /// Stalls.
    pub stalls: u64,
    /// Events delayed.
    pub delays: u64,
    /// Events sent twice.
    pub duplicates: u64,
    /// Adjacent events swapped.
    pub swaps: u64,
    /// Bad inputs written.
    pub injected: u64,
    /// Stream requests answered with `streamStatus`.
    pub refused_streams: u64,
    /// Connections dropped while offline.
    pub offline_drops: u64,
    /// Answers dropped (`dropAnswers`).
    pub dropped_answers: u64,
}

/// How a connection picks its upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Balance {
    /// Each in turn.
    RoundRobin,
    /// A seeded random one (the cluster fault suite: any client may land anywhere).
    Random,
}

/// The proxy's shared state.
pub struct Chaos {
    upstreams: Vec<SocketAddr>,
    balance: Balance,
    turn: std::sync::atomic::AtomicUsize,
    faults: Mutex<Faults>,
    stats: Mutex<Stats>,
    rng: Mutex<SplitMix64>,
    cut: watch::Sender<u64>,
}

impl Chaos {
    /// A proxy to `upstream`, its choices seeded by `seed`.
    pub fn new(upstream: SocketAddr, seed: u64) -> Arc<Self> {
        Self::balancing(vec![upstream], Balance::RoundRobin, seed)
    }

    /// A proxy to several upstreams (at least one), spread by `balance`.
    pub fn balancing(upstreams: Vec<SocketAddr>, balance: Balance, seed: u64) -> Arc<Self> {
        Arc::new(Self {
            upstreams,
            balance,
            turn: std::sync::atomic::AtomicUsize::new(0),
            faults: Mutex::new(Faults::default()),
            stats: Mutex::new(Stats::default()),
            rng: Mutex::new(SplitMix64::new(seed)),
            cut: watch::channel(0).0,
        })
    }

    /// Replaces the faults (and reseeds, if they carry a seed).
    pub fn set_faults(&self, faults: Faults) {
        if let (Some(seed), Ok(mut rng)) = (faults.seed, self.rng.lock()) {
            *rng = SplitMix64::new(seed);
        }
        let going_offline = faults.offline;
        if let Ok(mut f) = self.faults.lock() {
            *f = faults;
        }
        if going_offline {
            self.cut_all();
        }
    }

    /// A copy of the counters.
    pub fn stats(&self) -> Stats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Cuts every open stream now.
    pub fn cut_all(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    fn faults(&self) -> Faults {
        self.faults.lock().map(|f| f.clone()).unwrap_or_default()
    }

    fn count(&self, f: impl FnOnce(&mut Stats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }

    fn roll(&self, chance: f64) -> bool {
        chance > 0.0 && self.rng.lock().is_ok_and(|mut r| r.unit() < chance)
    }

    fn between(&self, lo: u64, hi: u64) -> u64 {
        self.rng.lock().map_or(lo, |mut r| r.between(lo, hi))
    }

    /// A connection to the chosen upstream, or, when it refuses, to the next that accepts.
    async fn connect_upstream(&self) -> std::io::Result<TcpStream> {
        let n = self.upstreams.len().max(1);
        let first = match self.balance {
            Balance::RoundRobin => self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            Balance::Random => self.between(0, n as u64 - 1) as usize,
        };
        let mut last = std::io::Error::other("no upstream");
        for i in 0..n {
            let Some(addr) = self.upstreams.get((first + i) % n) else {
                break;
            };
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// Accepts connections until the listener fails.
pub async fn serve(listener: TcpListener, chaos: Arc<Chaos>) -> std::io::Result<()> {
    loop {
        let (client, _) = listener.accept().await?;
        let chaos = chaos.clone();
        tokio::spawn(async move {
            let _ = handle(client, chaos).await;
        });
    }
}

/// A request as read from the client.
struct Request {
    head: String,
    body: Vec<u8>,
    method: String,
    path: String,
}

async fn read_request(client: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = client.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut body = raw[end..].to_vec();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while body.len() < length {
        let n = client.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    let mut first = head.lines().next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("").to_owned();
    let path = first.next().unwrap_or("").to_owned();
    Ok(Some(Request {
        head,
        body,
        method,
        path,
    }))
}

/// The head with `Connection: close` (one request per connection upstream).
fn close_head(head: &str) -> String {
    let mut out = String::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        if line
            .split_once(':')
            .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("connection"))
        {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

async fn respond(client: &mut TcpStream, status: &str, json: &str) -> std::io::Result<()> {
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{json}",
        json.len()
    );
    client.write_all(answer.as_bytes()).await
}

async fn handle(mut client: TcpStream, chaos: Arc<Chaos>) -> std::io::Result<()> {
    let Some(request) = read_request(&mut client).await? else {
        return Ok(());
    };
    let route = request.path.split('?').next().unwrap_or("").to_owned();
    if let Some(control) = route.strip_prefix("/__chaos/") {
        return control_request(&mut client, &chaos, &request, control).await;
    }
    let faults = chaos.faults();
    if faults.offline {
        chaos.count(|s| s.offline_drops += 1);
        return Ok(()); // dropped: the browser sees a network error
    }
    chaos.count(|s| *s.requests.entry(route.clone()).or_default() += 1);
    let stream = route == paths::api::STREAM;
    if stream && let Some(status) = faults.stream_status {
        chaos.count(|s| s.refused_streams += 1);
        let line = match status {
            204 => "204 No Content".to_owned(),
            other => format!("{other} Chaos"),
        };
        let body = if status == 204 {
            String::new()
        } else {
            r#"{"error":{"code":"chaos","message":"injected by the chaos proxy"}}"#.to_owned()
        };
        return respond(&mut client, &line, &body).await;
    }
    let Ok(mut upstream) = chaos.connect_upstream().await else {
        return respond(
            &mut client,
            "502 Bad Gateway",
            r#"{"error":{"code":"bad_gateway","message":"no instance answers"}}"#,
        )
        .await;
    };
    upstream
        .write_all(close_head(&request.head).as_bytes())
        .await?;
    upstream.write_all(&request.body).await?;
    if !stream || request.method != "GET" {
        if route.starts_with("/api/") && chaos.roll(faults.drop_answers) {
            chaos.count(|s| s.dropped_answers += 1);
            // The server finishes its work (its answer is read to the end), the client gets
            // nothing.
            tokio::io::copy(&mut upstream, &mut tokio::io::sink()).await?;
            return Ok(());
        }
        tokio::io::copy(&mut upstream, &mut client).await?;
        return Ok(());
    }
    stream_with_faults(client, upstream, chaos, faults).await
}

async fn control_request(
    client: &mut TcpStream,
    chaos: &Chaos,
    request: &Request,
    control: &str,
) -> std::io::Result<()> {
    match (request.method.as_str(), control) {
        ("GET", "stats") => {
            let json = serde_json::to_string(&chaos.stats()).unwrap_or_default();
            respond(client, "200 OK", &json).await
        }
        ("POST", "faults") => match serde_json::from_slice::<Faults>(&request.body) {
            Ok(faults) => {
                chaos.set_faults(faults);
                respond(client, "200 OK", "{}").await
            }
            Err(e) => {
                let json =
                    serde_json::json!({"error": {"code": "bad_faults", "message": e.to_string()}});
                respond(client, "400 Bad Request", &json.to_string()).await
            }
        },
        ("POST", "cut") => {
            chaos.cut_all();
            respond(client, "200 OK", "{}").await
        }
        _ => {
            let json =
                r#"{"error":{"code":"not_found","message":"GET stats, POST faults, POST cut"}}"#;
            respond(client, "404 Not Found", json).await
        }
    }
}

/// Forwards a stream answer event by event, faulting it.
async fn stream_with_faults(
    mut client: TcpStream,
    mut upstream: TcpStream,
    chaos: Arc<Chaos>,
    faults: Faults,
) -> std::io::Result<()> {
    // The answer's head: forward it without chunking (the body then runs until close).
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let end = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = upstream.read(&mut buf).await?;
        if n == 0 {
            return client.write_all(&raw).await;
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    if !head.starts_with("HTTP/1.1 200") {
        client.write_all(&raw).await?;
        tokio::io::copy(&mut upstream, &mut client).await?;
        return Ok(());
    }
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let mut out_head = String::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        let name = line
            .split_once(':')
            .map(|(k, _)| k.trim().to_ascii_lowercase());
        if matches!(
            name.as_deref(),
            Some("transfer-encoding" | "content-length" | "connection")
        ) {
            continue;
        }
        out_head.push_str(line);
        out_head.push_str("\r\n");
    }
    out_head.push_str("Connection: close\r\n\r\n");
    client.write_all(out_head.as_bytes()).await?;

    let mut dechunk = sse::Dechunker::new(chunked);
    let mut splitter = sse::Splitter::default();
    let mut events = std::collections::VecDeque::new();
    events.extend(splitter.push(&dechunk.push(&raw[end..])));
    let cut_after = faults.cut_after.map(|(lo, hi)| chaos.between(lo, hi));
    let mut cut = chaos.cut.subscribe();
    let mut sent = 0u64;
    let mut injected = false;
    let mut held: Option<Vec<u8>> = None;
    loop {
        while let Some(event) = events.pop_front() {
            if faults.delay_ms > 0 {
                chaos.count(|s| s.delays += 1);
                tokio::time::sleep(Duration::from_millis(chaos.between(0, faults.delay_ms))).await;
            }
            // Swap: hold this event and send it after the next one (or after 250 ms, when no
            // next one comes: then it was only late).
            if held.is_none() && chaos.roll(faults.swap) {
                chaos.count(|s| s.swaps += 1);
                held = Some(event);
                continue;
            }
            client.write_all(&event).await?;
            if chaos.roll(faults.duplicate) {
                chaos.count(|s| s.duplicates += 1);
                client.write_all(&event).await?;
            }
            if let Some(earlier) = held.take() {
                client.write_all(&earlier).await?;
            }
            sent += 1;
            if !injected && let Some(kind) = &faults.inject {
                injected = true;
                if let Some(bad) = sse::bad_input(kind) {
                    chaos.count(|s| s.injected += 1);
                    client.write_all(bad.as_bytes()).await?;
                }
            }
            if chaos.roll(faults.stall) {
                chaos.count(|s| s.stalls += 1);
                tokio::time::sleep(Duration::from_millis(faults.stall_ms)).await;
            }
            if cut_after.is_some_and(|n| sent >= n) {
                chaos.count(|s| s.cuts += 1);
                return Ok(()); // both sockets close: a cut stream
            }
        }
        tokio::select! {
            read = upstream.read(&mut buf) => {
                let n = read?;
                if n == 0 {
                    if let Some(earlier) = held.take() {
                        client.write_all(&earlier).await?;
                    }
                    return Ok(());
                }
                events.extend(splitter.push(&dechunk.push(&buf[..n])));
            }
            () = tokio::time::sleep(Duration::from_millis(250)), if held.is_some() => {
                if let Some(earlier) = held.take() {
                    client.write_all(&earlier).await?;
                }
            }
            changed = cut.changed() => {
                // An event held back for a swap goes out first: a TCP stream can reorder
                // nothing and lose nothing but its tail, so the proxy must not drop an event
                // while delivering a later one.
                if let Some(earlier) = held.take() {
                    client.write_all(&earlier).await?;
                }
                if changed.is_ok() {
                    chaos.count(|s| s.cuts += 1);
                }
                return Ok(());
            }
        }
    }
}
