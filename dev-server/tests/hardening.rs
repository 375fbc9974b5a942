//! The server under abuse, on real sockets: silent and slow clients, too many connections,
//! sign-in bursts, foreign origins, malformed paths, the headers every answer carries, expired
//! sessions, and a client that goes away between a send's commit and its answer.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

mod common;

use farm_chat_protocol::paths;
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use common::{Sse, TestApp, TestServer, call, call_as, login, send};
use farm_chat_dev_server::{
    Config,
    store::{
        Appended, ConversationRecord, Cursor, Idempotency, NewMessage, Overview, Reply,
        SessionRecord, SqliteStore, Store, StoreResult, TaskRecord, Unannounced, async_trait,
    },
};
use farm_chat_protocol::{
    ConversationId, MessageId, TaskId, TenantId, UserId,
    chat::{ConversationKind, Message},
    task::TaskState,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const SUPPORT: &str = "c-u-farmer-support";

async fn server_with(edit: impl FnOnce(&mut Config)) -> TestServer {
    TestApp::new().config(edit).serve().await
}

/// Waits (10 s at most) for the server to close `socket`; returns what it sent first.
async fn closed_by_server(socket: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server closes the connection");
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let s = server_with(|c| c.idle_timeout = Duration::from_millis(300)).await;
    let mut silent = TcpStream::connect(s.addr).await.unwrap();
    assert_eq!(
        closed_by_server(&mut silent).await,
        "",
        "closed without an answer"
    );
}

/// A socket that never sends a byte is held no longer than a request head may take, not for
/// the whole idle timeout: a few hundred of them must not pin the server's file descriptors
/// for a minute. One that did send a request stays for the idle timeout as before.
#[tokio::test]
async fn a_connection_that_never_speaks_is_closed_at_the_header_timeout() {
    let s = server_with(|c| {
        c.header_timeout = Duration::from_millis(300);
        c.idle_timeout = Duration::from_secs(3600);
    })
    .await;
    let mut silent = TcpStream::connect(s.addr).await.unwrap();
    assert_eq!(
        closed_by_server(&mut silent).await,
        "",
        "closed without an answer"
    );
    // A connection that asked something is kept alive past the header timeout.
    let mut kept = TcpStream::connect(s.addr).await.unwrap();
    let health = health_on(&mut kept).await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    tokio::time::sleep(Duration::from_millis(900)).await;
    let again = health_on(&mut kept).await;
    assert!(again.starts_with("HTTP/1.1 200"), "still open: {again}");
}

#[tokio::test]
async fn a_request_head_trickling_in_is_cut_at_the_header_timeout() {
    let s = server_with(|c| {
        c.header_timeout = Duration::from_millis(400);
        c.idle_timeout = Duration::from_secs(60);
    })
    .await;
    let mut slow = TcpStream::connect(s.addr).await.unwrap();
    // A byte every 100 ms keeps the connection busy, but the head never completes.
    let head = b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let mut cut = false;
    for byte in head.iter().chain(std::iter::repeat(&b'a')).take(200) {
        if slow.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        let mut probe = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(100), slow.read(&mut probe)).await {
            Ok(Ok(0) | Err(_)) => {
                cut = true;
                break;
            }
            Ok(Ok(_)) => panic!("no answer is expected to a head that never ends"),
            Err(_) => {}
        }
    }
    assert!(cut, "the connection was closed within 20 s of trickling");
}

#[tokio::test]
async fn a_stalled_body_gets_408_as_json_and_the_connection_closes() {
    let s = server_with(|c| c.body_timeout = Duration::from_millis(300)).await;
    let mut stalled = TcpStream::connect(s.addr).await.unwrap();
    stalled
        .write_all(
            b"POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 60000\r\n\r\n{\"",
        )
        .await
        .unwrap();
    let answer = closed_by_server(&mut stalled).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
}

#[tokio::test]
async fn an_open_stream_is_not_idle() {
    let s = server_with(|c| c.idle_timeout = Duration::from_millis(200)).await;
    let token = login(s.addr, "u-farmer").await;
    let mut sse = Sse::open_as(s.addr, &token, "").await;
    assert_eq!(sse.next().await.unwrap().event, "ready");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(send(s.addr, &token, SUPPORT, "まだ", "k").await.status, 201);
    assert_eq!(
        sse.next_non_ping().await.unwrap().event,
        "message.created",
        "the stream outlived the idle timeout"
    );
}

#[tokio::test]
async fn beyond_the_connection_cap_a_new_connection_gets_503_until_one_frees() {
    let s = server_with(|c| {
        c.max_connections = Some(3);
        c.idle_timeout = Duration::from_secs(60);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(s.addr).await.unwrap());
    }
    // Connections are admitted in accept order; give the loop a moment to take all three.
    let mut refused = None;
    for _ in 0..50 {
        let reply = call(s.addr, "GET", paths::api::HEALTH, &[], None).await;
        if reply.status == 503 {
            refused = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = refused.expect("a 503 once the cap is reached");
    assert_eq!(refused.json()["error"]["code"], "server_busy");
    assert_eq!(refused.header("retry-after").as_deref(), Some("1"));
    drop(held.pop());
    let mut healthy = false;
    for _ in 0..100 {
        if call(s.addr, "GET", paths::api::HEALTH, &[], None)
            .await
            .status
            == 200
        {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(healthy, "health answers again once a connection closed");
}

#[tokio::test]
async fn one_client_address_cannot_take_every_connection() {
    let s = server_with(|c| {
        c.max_connections_per_client = 2;
        c.idle_timeout = Duration::from_secs(60);
    })
    .await;
    let _held = (
        TcpStream::connect(s.addr).await.unwrap(),
        TcpStream::connect(s.addr).await.unwrap(),
    );
    let mut status = 0;
    for _ in 0..50 {
        status = call(s.addr, "GET", paths::api::HEALTH, &[], None)
            .await
            .status;
        if status == 429 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 429);
}

const HEALTH: &[u8] = b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n";

/// `GET /api/health` on a kept-alive connection; the answer's first bytes.
async fn health_on(kept: &mut TcpStream) -> String {
    kept.write_all(HEALTH).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), kept.read(&mut buf))
        .await
        .expect("an answer on the kept connection")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The real binary under a low open-files limit, flooded with silent connections: the
/// connection it already has keeps being served, it recovers by itself once the flood's
/// sockets time out, and it says so in the log at most about once per second.
#[tokio::test]
async fn out_of_file_descriptors_it_keeps_serving_and_recovers() {
    let bin = env!("CARGO_BIN_EXE_farm-chat-dev-server");
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 64 && exec {bin} --addr 127.0.0.1:0 --db :memory: --test-mode \
             --max-connections 10000 --idle-timeout 2s --static-dir /nonexistent"
        ))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Killed even if an assertion fails.
    struct Kill(u32);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill")
                .arg(self.0.to_string())
                .status();
        }
    }
    let _kill = Kill(child.id());
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let addr: SocketAddr = line
        .trim()
        .rsplit("http://")
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();

    // A keep-alive connection opened before the flood.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    assert!(health_on(&mut kept).await.starts_with("HTTP/1.1 200"));

    let mut flood = Vec::new();
    for _ in 0..120 {
        flood.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        health_on(&mut kept).await.starts_with("HTTP/1.1 200"),
        "the connection it has is still served while accept fails"
    );
    // The flood's accepted sockets time out; the ones queued in the kernel are then accepted
    // and time out in turn. A new client is served again without a restart.
    let mut recovered = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(Ok(mut fresh)) =
            tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await
        else {
            continue;
        };
        if fresh.write_all(HEALTH).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 1024];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), fresh.read(&mut buf)).await
            && String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200")
        {
            recovered = true;
            break;
        }
    }
    drop(flood);
    assert!(recovered, "a new connection is served after the flood");
    drop(_kill);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let accept_errors = log.matches("accept failed").count();
    assert!(accept_errors >= 1, "running out was logged: {log}");
    assert!(
        accept_errors <= 40,
        "at most about once per second, not once per attempt: {accept_errors}"
    );
}

#[tokio::test]
async fn sign_in_bursts_get_429_with_retry_after() {
    let s = server_with(|c| {
        c.sign_in_per_minute = 5;
        c.sign_in_per_user_per_minute = 3;
    })
    .await;
    let sign_in = |user: &'static str| {
        let addr = s.addr;
        async move {
            call(
                addr,
                "POST",
                paths::api::SESSION,
                &[],
                Some(&format!(r#"{{"userId":"{user}"}}"#)),
            )
            .await
        }
    };
    for _ in 0..3 {
        assert_eq!(sign_in("u-farmer").await.status, 200);
    }
    let per_user = sign_in("u-farmer").await;
    assert_eq!(per_user.status, 429, "per user id: {}", per_user.body);
    assert_eq!(per_user.json()["error"]["code"], "rate_limited");
    assert!(
        per_user
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(sign_in("u-support").await.status, 200, "another user may");
    let per_client = sign_in("u-other").await;
    assert_eq!(
        per_client.status, 429,
        "per client address: {}",
        per_client.body
    );
}

#[tokio::test]
async fn sign_in_from_a_foreign_origin_is_refused() {
    let s = server_with(|c| c.test_mode = false).await;
    let body = Some(r#"{"userId":"u-farmer"}"#);
    let foreign = call(
        s.addr,
        "POST",
        paths::api::SESSION,
        &[("Origin", "https://evil.example")],
        body,
    )
    .await;
    assert_eq!(foreign.status, 403, "{}", foreign.body);
    assert_eq!(foreign.json()["error"]["code"], "csrf_rejected");
    assert!(foreign.header("set-cookie").is_none());
    let own = format!("http://{}", s.addr);
    let ok = call(
        s.addr,
        "POST",
        paths::api::SESSION,
        &[("Origin", &own)],
        body,
    )
    .await;
    assert_eq!(ok.status, 200, "the server's own page: {}", ok.body);
}

#[tokio::test]
async fn malformed_paths_and_cursors_answer_json_400() {
    let s = server_with(|_| {}).await;
    let token = login(s.addr, "u-farmer").await;
    for path in [
        "/api/tasks/%ff",
        "/api/tasks/%ff/cancel",
        "/api/reports/%ff.pdf",
        "/api/chat/history?conversationId=c-u-farmer-support&after=9999999999999999999",
        "/api/chat/history?conversationId=c-u-farmer-support&before=9223372036854775808",
        "/api/chat/history?conversationId=%ff",
        "/api/chat/history?limit=%ff%fe",
    ] {
        let method = if path.ends_with("cancel") {
            "POST"
        } else {
            "GET"
        };
        let reply = call_as(s.addr, method, path, &token).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.body);
        assert!(
            reply
                .header("content-type")
                .unwrap()
                .starts_with("application/json"),
            "{path}"
        );
        assert!(reply.json()["error"]["code"].is_string(), "{path}");
    }
    let largest = call_as(
        s.addr,
        "GET",
        "/api/chat/history?conversationId=c-u-farmer-support&before=9223372036854775807",
        &token,
    )
    .await;
    assert_eq!(largest.status, 200, "{}", largest.body);
}

#[tokio::test]
async fn every_answer_is_nosniff_and_pages_carry_the_policy() {
    let dir = std::env::temp_dir().join(format!("farm-chat-headers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><farm-chat></farm-chat>",
    )
    .unwrap();
    std::fs::write(dir.join("farm-chat.js"), "export {}").unwrap();
    let s = server_with(|c| {
        c.static_dir = dir.clone();
        c.frame_ancestors = "'self' https://farm.example.jp".into();
    })
    .await;
    for path in [
        paths::api::HEALTH,
        "/api/nope",
        "/farm-chat.js",
        "/",
        "/missing",
    ] {
        let reply = call(s.addr, "GET", path, &[], None).await;
        assert_eq!(
            reply.header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{path}"
        );
    }
    let page = call(s.addr, "GET", "/", &[], None).await;
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self' 'wasm-unsafe-eval'"),
        "{csp}"
    );
    assert!(
        csp.contains("frame-ancestors 'self' https://farm.example.jp"),
        "{csp}"
    );
    assert_eq!(
        page.header("referrer-policy").as_deref(),
        Some("strict-origin-when-cross-origin")
    );
    let json = call(s.addr, "GET", paths::api::HEALTH, &[], None).await;
    assert!(
        json.header("content-security-policy").is_none(),
        "pages only"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn expired_sessions_are_deleted_on_a_timer() {
    let state = TestApp::new()
        .tune(|s| s.purge_every = Duration::from_millis(50))
        .state()
        .await;
    let store = state.common.store.clone();
    let expired = SessionRecord {
        id: "0".repeat(32),
        user_id: UserId("u-farmer".into()),
        expires_at: 1,
    };
    store.create_session(&expired).await.unwrap();
    let live = SessionRecord {
        id: "1".repeat(32),
        user_id: UserId("u-farmer".into()),
        expires_at: u64::from(u32::MAX),
    };
    store.create_session(&live).await.unwrap();
    let s = TestServer::start(state).await;
    let mut gone = false;
    for _ in 0..100 {
        if store.session(&expired.id).await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "the expired session was deleted");
    assert!(
        store.session(&live.id).await.unwrap().is_some(),
        "the live one stays"
    );
    s.stop().await;
}

/// Behind a reverse proxy on the same host every client is 127.0.0.1: on the API port only the
/// token's holder reads `/metrics`; without a token, nobody there.
#[tokio::test]
async fn metrics_need_the_token_or_their_own_address() {
    let s = server_with(|c| c.metrics_token = Some("m-secret".into())).await;
    // The test client is on loopback: not enough.
    assert_eq!(call(s.addr, "GET", "/metrics", &[], None).await.status, 404);
    let wrong = call(
        s.addr,
        "GET",
        "/metrics",
        &[("Authorization", "Bearer m-wrong")],
        None,
    )
    .await;
    assert_eq!(wrong.status, 404);
    let holder = call(
        s.addr,
        "GET",
        "/metrics",
        &[("Authorization", "Bearer m-secret")],
        None,
    )
    .await;
    assert_eq!(holder.status, 200, "{}", holder.body);
    let no_token = server_with(|c| c.metrics_token = None).await;
    assert_eq!(
        call(no_token.addr, "GET", "/metrics", &[], None)
            .await
            .status,
        404
    );
    let elsewhere = server_with(|c| {
        c.metrics_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let on_api = call(elsewhere.addr, "GET", "/metrics", &[], None).await;
    assert_eq!(on_api.status, 404, "not on the API port: {}", on_api.body);
}

/// A store that pauses after a message is committed, so a test can drop the client's
/// connection between the commit and the answer.
struct PausingStore {
    inner: SqliteStore,
    committed: Mutex<Option<mpsc::Sender<()>>>,
}

#[async_trait]
impl Store for PausingStore {
    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }
    async fn next_epoch(&self) -> StoreResult<u32> {
        self.inner.next_epoch().await
    }
    async fn signing_key(&self) -> StoreResult<Vec<u8>> {
        self.inner.signing_key().await
    }
    async fn create_session(&self, session: &SessionRecord) -> StoreResult<()> {
        self.inner.create_session(session).await
    }
    async fn session(&self, id: &str) -> StoreResult<Option<SessionRecord>> {
        self.inner.session(id).await
    }
    async fn delete_session(&self, id: &str) -> StoreResult<bool> {
        self.inner.delete_session(id).await
    }
    async fn purge_expired_sessions(&self, now: u64) -> StoreResult<usize> {
        self.inner.purge_expired_sessions(now).await
    }
    async fn ensure_conversations(&self, c: &[ConversationRecord]) -> StoreResult<()> {
        self.inner.ensure_conversations(c).await
    }
    async fn conversation(
        &self,
        tenant: &TenantId,
        id: &ConversationId,
    ) -> StoreResult<Option<ConversationRecord>> {
        self.inner.conversation(tenant, id).await
    }
    async fn overviews(
        &self,
        tenant: &TenantId,
        user: &UserId,
        kind: Option<ConversationKind>,
    ) -> StoreResult<Vec<Overview>> {
        self.inner.overviews(tenant, user, kind).await
    }
    async fn append_message(
        &self,
        message: &NewMessage,
        idempotency: Option<&Idempotency>,
        reply: Option<&Reply>,
    ) -> StoreResult<Appended> {
        let appended = self
            .inner
            .append_message(message, idempotency, reply)
            .await?;
        let committed = self.committed.lock().unwrap().take();
        if matches!(appended, Appended::Created { .. })
            && let Some(committed) = committed
        {
            let _ = committed.send(());
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok(appended)
    }
    async fn history(
        &self,
        conversation: &ConversationId,
        cursor: Cursor,
        limit: u32,
    ) -> StoreResult<(Vec<Message>, bool)> {
        self.inner.history(conversation, cursor, limit).await
    }
    async fn mark_read(
        &self,
        conversation: &ConversationId,
        user: &UserId,
        seq: u64,
    ) -> StoreResult<u64> {
        self.inner.mark_read(conversation, user, seq).await
    }
    async fn join_support_conversations(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<()> {
        self.inner.join_support_conversations(tenant, user).await
    }
    async fn mark_announced(&self, messages: &[MessageId]) -> StoreResult<()> {
        self.inner.mark_announced(messages).await
    }
    async fn unannounced(&self, before: &str, limit: u32) -> StoreResult<Vec<Unannounced>> {
        self.inner.unannounced(before, limit).await
    }
    async fn save_task(&self, task: &TaskRecord) -> StoreResult<()> {
        self.inner.save_task(task).await
    }
    async fn task(&self, id: &TaskId) -> StoreResult<Option<TaskRecord>> {
        self.inner.task(id).await
    }
    async fn tasks_of(
        &self,
        owner: &UserId,
        state: Option<TaskState>,
    ) -> StoreResult<Vec<TaskRecord>> {
        self.inner.tasks_of(owner, state).await
    }
    async fn running_tasks(&self) -> StoreResult<Vec<TaskRecord>> {
        self.inner.running_tasks().await
    }
}

#[tokio::test]
async fn a_send_whose_client_went_away_after_the_commit_is_still_announced_once() {
    let (committed_tx, committed) = mpsc::channel();
    let store = Arc::new(PausingStore {
        inner: SqliteStore::open(std::path::Path::new(":memory:")).unwrap(),
        committed: Mutex::new(Some(committed_tx)),
    });
    let s = TestApp::new().store(store).serve().await;
    let farmer = login(s.addr, "u-farmer").await;
    let support = login(s.addr, "u-support").await;
    let mut theirs = Sse::open_as(s.addr, &support, "").await;
    assert_eq!(theirs.next().await.unwrap().event, "ready");

    // The farmer's phone sends, and loses signal once the message is committed.
    let body = r#"{"conversationId":"c-u-farmer-support","text":"電波が切れる","idempotencyKey":"lost-1"}"#;
    let mut phone = TcpStream::connect(s.addr).await.unwrap();
    phone
        .write_all(
            format!(
                "POST {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {farmer}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                paths::api::SEND,
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || committed.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("the message was committed");
    drop(phone);

    let event = theirs.next_non_ping().await.expect("announced");
    assert_eq!(event.event, "message.created");
    assert_eq!(event.json()["seq"], 1);
    // The phone's retry with the same key answers the same message and announces nothing new.
    let retry = send(s.addr, &farmer, SUPPORT, "電波が切れる", "lost-1").await;
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(retry.json()["seq"], 1);
    assert_eq!(
        send(s.addr, &farmer, SUPPORT, "次", "next").await.status,
        201
    );
    let next = theirs.next_non_ping().await.unwrap();
    assert_eq!(
        next.json()["seq"],
        2,
        "exactly once: the next event is the next message"
    );
}

/// The log, as a test's subscriber writes it.
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn security_events_are_logged_with_the_request_id() {
    let log = LogBuf::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let s = server_with(|c| {
        c.test_mode = false;
        c.sign_in_per_user_per_minute = 1;
    })
    .await;
    let body = Some(r#"{"userId":"u-farmer"}"#);
    call(
        s.addr,
        "POST",
        paths::api::SESSION,
        &[("Origin", "https://evil.example")],
        body,
    )
    .await;
    call(
        s.addr,
        "POST",
        paths::api::SESSION,
        &[],
        Some(r#"{"userId":"u-nobody"}"#),
    )
    .await;
    call(s.addr, "POST", paths::api::SESSION, &[], body).await;
    call(s.addr, "POST", paths::api::SESSION, &[], body).await;
    call(s.addr, "GET", "/api/chat/stream?ticket=0123", &[], None).await;
    call(
        s.addr,
        "GET",
        paths::api::SESSION,
        &[("Authorization", "Bearer 00.11")],
        None,
    )
    .await;
    call(
        s.addr,
        "GET",
        paths::api::HEALTH,
        &[("Origin", "https://elsewhere.example")],
        None,
    )
    .await;
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    for event in [
        "request refused: CSRF check",
        "sign-in refused: unknown user",
        "sign-in rate limited",
        "stream refused: the ticket is unknown",
        "session token's signature is not valid",
        "origin not allowed (CORS)",
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(event))
            .unwrap_or_else(|| panic!("no {event:?} in the log:\n{text}"));
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains("requestId="), "{line}");
    }
}
