//! The one test harness of the dev-server's tests: [`TestApp`] builds the server every test
//! runs (in process through `oneshot`, or on a real loopback socket; SQLite or PostgreSQL;
//! Redis on or off), [`Process`] runs the real binary, and the helpers talk to a server over
//! a real socket: plain HTTP/1.0 requests (close-delimited bodies, no chunking to undo) and an
//! SSE reader.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]
#![allow(dead_code, unreachable_pub)] // each test binary uses a different part of this module

use farm_chat_protocol::paths;
use std::{net::SocketAddr, time::Duration};

use std::sync::Arc;

use axum::Router;
use farm_chat_conformance::client as http;
use farm_chat_dev_server::{
    AppState, Config, app,
    bus::HubLimits,
    run,
    store::{SqliteStore, Store},
};
use farm_chat_testenv::{Postgres, Redis};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// The server a test runs, built one way for every test: the test configuration
/// (`Config::for_tests`, in-memory SQLite, the in-process bus) changed only where the test
/// says. [`router`](Self::router) gives the app for `oneshot`, [`serve`](Self::serve) a real
/// port, [`state`](Self::state) the state alone.
#[must_use]
pub struct TestApp {
    config: Config,
    store: Option<Arc<dyn Store>>,
    limits: Option<HubLimits>,
    tune: Vec<Tune>,
}

/// A change to the state after it is built.
type Tune = Box<dyn FnOnce(&mut AppState) + Send>;

impl Default for TestApp {
    fn default() -> Self {
        Self::new()
    }
}

impl TestApp {
    /// The test configuration as it is.
    pub fn new() -> Self {
        Self {
            config: Config::for_tests(),
            store: None,
            limits: None,
            tune: Vec::new(),
        }
    }

    /// Changes the configuration.
    pub fn config(mut self, edit: impl FnOnce(&mut Config)) -> Self {
        edit(&mut self.config);
        self
    }

    /// Runs on this store (a restart on the same data, a store that fails on purpose).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Keeps this much for resuming (small limits, to reach them in a test).
    pub fn limits(mut self, limits: HubLimits) -> Self {
        self.limits = Some(limits);
        if self.store.is_none() {
            self.store = Some(Arc::new(SqliteStore::in_memory().unwrap()));
        }
        self
    }

    /// On a fresh database of the shared throwaway PostgreSQL (named after `name`).
    pub fn postgres(self, name: &str) -> Self {
        let url = Postgres::shared()
            .expect("a throwaway PostgreSQL")
            .fresh_database(name)
            .unwrap();
        self.database_url(url)
    }

    /// On the PostgreSQL database at `url` (several instances on one database).
    pub fn database_url(self, url: String) -> Self {
        self.config(|c| c.database_url = Some(url))
    }

    /// With the shared throwaway Redis, its keys under `prefix` (one prefix per deployment).
    pub fn redis(self, prefix: &str) -> Self {
        let url = Redis::shared().expect("a throwaway Redis").url(0);
        self.config(|c| {
            c.redis_url = Some(url);
            c.redis_prefix = prefix.to_owned();
        })
    }

    /// Changes the state once it is built (shorter timings, smaller limiters).
    pub fn tune(mut self, tune: impl FnOnce(&mut AppState) + Send + 'static) -> Self {
        self.tune.push(Box::new(tune));
        self
    }

    /// The state, as `main` would build it from this configuration.
    pub async fn state(self) -> AppState {
        let mut state = match self.store {
            Some(store) => {
                AppState::with_store(self.config, store, self.limits.unwrap_or_default())
                    .await
                    .unwrap()
            }
            None => AppState::new(self.config).await.unwrap(),
        };
        for tune in self.tune {
            tune(&mut state);
        }
        state
    }

    /// The whole app, for `tower::ServiceExt::oneshot`.
    pub async fn router(self) -> Router {
        app(self.state().await)
    }

    /// The app served on 127.0.0.1:0.
    pub async fn serve(self) -> TestServer {
        TestServer::start(self.state().await).await
    }
}

/// A whole answer of the router, taken through `tower::ServiceExt::oneshot` (no socket).
#[derive(Debug)]
pub struct Answer {
    pub status: axum::http::StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON (`Null` if empty or not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request through `router`, answered whole (not for a stream: it never ends).
pub async fn oneshot(router: &Router, req: axum::http::Request<axum::body::Body>) -> Answer {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let res = router.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes().to_vec(),
    }
}

/// A server on 127.0.0.1:0, stopped gracefully by [`TestServer::stop`] (or at drop, abruptly).
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start(state: AppState) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(listener, state.clone(), async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Graceful shutdown; returns once the server has finished.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the server stops within 10 s")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The real binary as a process on a free loopback port (its URL read from the first line of
/// its stdout); killed with SIGKILL by [`Process::kill`] or on drop.
pub struct Process {
    child: std::process::Child,
    pub addr: SocketAddr,
}

impl Process {
    /// Starts `farm-chat-dev-server --addr 127.0.0.1:0 --static-dir /nonexistent` with `args`
    /// (and the sign-in limits out of the way: tests sign in again and again).
    pub fn start(args: &[&str]) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_farm-chat-dev-server"))
            .args(["--addr", "127.0.0.1:0", "--static-dir", "/nonexistent"])
            .args(args)
            .env("FARM_CHAT_SIGN_IN_PER_MINUTE", "100000")
            .env("FARM_CHAT_SIGN_IN_PER_USER_PER_MINUTE", "100000")
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        // Keep draining stdout so the server never writes into a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let addr = first
            .trim()
            .rsplit("http://")
            .next()
            .unwrap()
            .trim_end_matches('/')
            .parse()
            .unwrap();
        Self { child, addr }
    }

    /// SIGTERM, as an orchestrator stopping it for a deploy would.
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM");
    }

    /// Waits for the process to end by itself; whether it exited 0.
    pub fn wait(&mut self) -> bool {
        self.child.wait().unwrap().success()
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A complete response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The status line and the headers, as received.
    pub head: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim().to_ascii_lowercase() == name).then(|| v.trim().to_owned())
        })
    }
}

/// The status line and headers as text.
fn head_text(status: u16, headers: &[(String, String)]) -> String {
    let mut head = format!("HTTP/1.1 {status}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head
}

/// One request (through the conformance suite's HTTP/1.1 client); the whole answer.
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let mut headers = headers.to_vec();
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    let reply = http::Target::at(addr)
        .request(method, path, &headers, body.map(str::as_bytes))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Reply {
        status: reply.status,
        head: head_text(reply.status, &reply.headers),
        body: String::from_utf8(reply.body).unwrap(),
    }
}

/// `GET /metrics` on the API port, as the holder of the test configuration's metrics token.
pub async fn metrics(addr: SocketAddr) -> Reply {
    let token = bearer(farm_chat_dev_server::config::TEST_METRICS_TOKEN);
    call(addr, "GET", "/metrics", &[("Authorization", &token)], None).await
}

/// Signs in; returns the Bearer token.
pub async fn login(addr: SocketAddr, user: &str) -> String {
    let reply = call(
        addr,
        "POST",
        paths::api::SESSION,
        &[],
        Some(&format!(r#"{{"userId":"{user}"}}"#)),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["token"].as_str().unwrap().to_owned()
}

/// One request as the holder of `token`, without a body.
pub async fn call_as(addr: SocketAddr, method: &str, path: &str, token: &str) -> Reply {
    call(
        addr,
        method,
        path,
        &[("Authorization", &bearer(token))],
        None,
    )
    .await
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Sends a message as `token`; returns the answer.
pub async fn send(
    addr: SocketAddr,
    token: &str,
    conversation: &str,
    text: &str,
    key: &str,
) -> Reply {
    let body =
        serde_json::json!({"conversationId": conversation, "text": text, "idempotencyKey": key})
            .to_string();
    call(
        addr,
        "POST",
        paths::api::SEND,
        &[("Authorization", &bearer(token))],
        Some(&body),
    )
    .await
}

/// Per event name, a validator of its payload, from the server's own AsyncAPI document.
static EVENT_SCHEMAS: std::sync::LazyLock<
    std::collections::HashMap<String, jsonschema::Validator>,
> = std::sync::LazyLock::new(|| {
    let doc = farm_chat_dev_server::asyncapi::spec();
    let messages = doc["components"]["messages"].as_object().unwrap();
    messages
        .iter()
        .map(|(name, message)| {
            let schema = serde_json::json!({
                "$ref": message["payload"]["$ref"],
                "components": doc["components"],
            });
            (name.clone(), jsonschema::validator_for(&schema).unwrap())
        })
        .collect()
});

/// The stream's events as `/api/openapi.json` describes them (`itemSchema`): the item's own
/// schema, and per event name the schema its `data:` JSON follows (`contentSchema`).
static STREAM_ITEMS: std::sync::LazyLock<(
    jsonschema::Validator,
    std::collections::HashMap<String, jsonschema::Validator>,
)> = std::sync::LazyLock::new(|| {
    let doc = farm_chat_dev_server::openapi::spec();
    let item = &doc["paths"][paths::api::STREAM]["get"]["responses"]["200"]["content"]["text/event-stream"]
        ["itemSchema"];
    let mut root = item.clone();
    root["components"] = doc["components"].clone();
    let data = item["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|branch| {
            let name = branch["properties"]["event"]["const"].as_str()?;
            let schema = serde_json::json!({
                "$ref": branch["properties"]["data"]["contentSchema"]["$ref"],
                "components": doc["components"],
            });
            Some((name.to_owned(), jsonschema::validator_for(&schema).unwrap()))
        })
        .collect();
    (jsonschema::validator_for(&root).unwrap(), data)
});

/// Every event any test reads must be in the catalogue, its data valid against its schema, in
/// both documents: the AsyncAPI one and the OpenAPI one's `itemSchema`.
pub fn check_against_catalogue(event: &SseEvent) {
    let mut item = serde_json::json!({"event": event.event, "data": event.data});
    if let Some(id) = &event.id {
        item["id"] = id.clone().into();
    }
    if let Some(retry) = event.retry.as_deref().and_then(|r| r.parse::<u64>().ok()) {
        item["retry"] = retry.into();
    }
    let (whole, data) = &*STREAM_ITEMS;
    if let Err(e) = whole.validate(&item) {
        panic!("{item} does not match /api/openapi.json's itemSchema: {e}");
    }
    let Some(data) = data.get(&event.event) else {
        panic!(
            "event {:?} has no contentSchema in /api/openapi.json",
            event.event
        );
    };
    if let Err(e) = data.validate(&serde_json::from_str(&event.data).unwrap_or_default()) {
        panic!(
            "{}'s data does not match /api/openapi.json's contentSchema: {e}: {}",
            event.event, event.data
        );
    }
    check_against_asyncapi(event);
}

fn check_against_asyncapi(event: &SseEvent) {
    let Some(validator) = EVENT_SCHEMAS.get(&event.event) else {
        panic!("event {:?} is not in /api/asyncapi.json", event.event);
    };
    let data: serde_json::Value = serde_json::from_str(&event.data)
        .unwrap_or_else(|e| panic!("{}: data is not JSON ({e}): {}", event.event, event.data));
    if let Err(e) = validator.validate(&data) {
        panic!(
            "{} does not match /api/asyncapi.json: {e} (at {}): {}",
            event.event,
            e.instance_path(),
            event.data
        );
    }
}

/// One SSE event as received.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
    pub retry: Option<String>,
}

impl SseEvent {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap()
    }

    pub fn id_u64(&self) -> u64 {
        self.id.as_deref().unwrap().parse().unwrap()
    }
}

/// An open SSE stream.
pub struct Sse {
    pub status: u16,
    pub head: String,
    inner: http::Sse,
    /// The last bare `retry:` received.
    pub last_retry: Option<String>,
}

impl Sse {
    /// Opens `path` (e.g. `/api/chat/stream?lastEventId=3`) with these headers.
    pub async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Self {
        let inner = http::Target::at(addr)
            .stream(path, headers)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Self {
            status: inner.status,
            head: head_text(inner.status, &inner.headers),
            inner,
            last_retry: None,
        }
    }

    /// Opens the stream as `token`.
    pub async fn open_as(addr: SocketAddr, token: &str, query: &str) -> Self {
        Self::open(
            addr,
            &format!("/api/chat/stream{query}"),
            &[("Authorization", &bearer(token))],
        )
        .await
    }

    /// The next event, `None` when the stream ended; panics after `within` without either.
    pub async fn next_within(&mut self, within: Duration) -> Option<SseEvent> {
        loop {
            let event = match self.inner.next(within).await {
                Ok(event) => event?,
                Err(e) => panic!("an event or the end of the stream in time: {e}"),
            };
            if event.name.is_empty() && event.data.is_empty() {
                // A bare `retry:` (a draining server's last word) sets the reconnection
                // delay without dispatching an event.
                if event.retry.is_some() {
                    self.last_retry = event.retry;
                }
                continue;
            }
            let event = SseEvent {
                id: event.id,
                event: event.name,
                data: event.data,
                retry: event.retry,
            };
            check_against_catalogue(&event);
            return Some(event);
        }
    }

    /// The next event (10 s at most).
    pub async fn next(&mut self) -> Option<SseEvent> {
        self.next_within(Duration::from_secs(10)).await
    }

    /// The next event that is not a `ping`.
    pub async fn next_non_ping(&mut self) -> Option<SseEvent> {
        loop {
            let event = self.next().await?;
            if event.event != "ping" {
                return Some(event);
            }
        }
    }
}

/// Applies a `task.text` delta as a client does: the bytes past the text held are appended;
/// `false` on a gap (the delta starts past the text held: refetch the task).
pub fn apply_text(text: &mut String, e: &SseEvent) -> bool {
    let d = e.json();
    let offset = d["offset"].as_u64().unwrap() as usize;
    let delta = d["text"].as_str().unwrap();
    if offset > text.len() {
        return false;
    }
    if offset + delta.len() > text.len() {
        text.push_str(&delta[text.len() - offset..]);
    }
    true
}
