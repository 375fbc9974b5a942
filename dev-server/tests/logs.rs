//! The JSON log (`--log-format json`): every line the server writes, the listening banner and
//! a start-up error included, is one JSON object; lines written while a request is served
//! carry its id; and no secret the server was given or handled (the database password, a
//! session token, a stream ticket) appears anywhere in it.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

mod common;

use std::{
    io::BufRead,
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{Sse, bearer, call, login, send};
use farm_chat_protocol::paths;
use farm_chat_testenv::{Certs, Postgres, Redis};

/// The server binary with `args`, every line of its stdout and stderr collected.
struct Logged {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Logged {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_farm-chat-dev-server"))
            .args(["--addr", "127.0.0.1:0", "--static-dir", "/nonexistent"])
            .args(["--log-format", "json"])
            .args(args)
            .env("FARM_CHAT_SIGN_IN_PER_MINUTE", "100000")
            .env("FARM_CHAT_SIGN_IN_PER_USER_PER_MINUTE", "100000")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        for pipe in [out, err] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Self { child, lines }
    }

    /// Waits (10 s at most) for a line that `pick` accepts.
    fn wait_for<T>(&self, what: &str, pick: impl Fn(&serde_json::Value) -> Option<T>) -> T {
        for _ in 0..200 {
            let found = self.lines.lock().unwrap().iter().find_map(|line| {
                serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| pick(&v))
            });
            if let Some(found) = found {
                return found;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no {what} in the log: {:#?}", self.lines.lock().unwrap());
    }

    /// Stops the server and returns every line it wrote.
    fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(200));
        self.lines.lock().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_is_json_requests_carry_their_id_and_no_secret_is_written() {
    const PASSWORD: &str = "db-password-never-logged-7c1f";
    let database_url = format!(
        "{}&password={PASSWORD}",
        Postgres::shared()
            .expect("a throwaway PostgreSQL")
            .fresh_database("logs")
            .unwrap()
    );
    // Redis over TLS as an RBAC user, as on ElastiCache: its password must not show either.
    const REDIS_PASSWORD: &str = "redis-password-never-logged-3e9a";
    let certs = Certs::make("logs", &["localhost"]).unwrap();
    let redis = Redis::start_tls(&certs, "farm-chat", REDIS_PASSWORD).unwrap();
    let redis_url = redis.tls_url(0).unwrap();
    let ca = certs.ca.display().to_string();
    let server = Logged::start(&[
        "--database-url",
        &database_url,
        "--redis-url",
        &redis_url,
        "--redis-ca-cert",
        &ca,
    ]);
    let addr: SocketAddr = server.wait_for("listening banner", |v| {
        v["url"]
            .as_str()?
            .strip_prefix("http://")?
            .trim_end_matches('/')
            .parse()
            .ok()
    });
    let token = login(addr, "u-farmer").await;
    let session = call(
        addr,
        "GET",
        paths::api::SESSION,
        &[
            ("Authorization", &bearer(&token)),
            ("X-Request-Id", "req-logs-1"),
        ],
        None,
    )
    .await;
    assert_eq!(session.status, 200, "{}", session.body);
    let sent = send(addr, &token, "c-u-farmer-support", "ログの確認", "logs-1").await;
    assert_eq!(sent.status, 201, "{}", sent.body);
    let ticket = call(
        addr,
        "POST",
        paths::api::STREAM_TICKET,
        &[("Authorization", &bearer(&token))],
        None,
    )
    .await
    .json()["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut stream = Sse::open(
        addr,
        &format!("{}?ticket={ticket}", paths::api::STREAM),
        &[],
    )
    .await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.next().await.unwrap().event, "ready");
    // The stream's "opened" line is written while its request is served: it names the request.
    let request_id = server.wait_for("a line with a request id", |v| {
        let span = &v["span"];
        (v["message"] == "stream opened").then(|| span["requestId"].as_str().map(str::to_owned))?
    });
    assert!(!request_id.is_empty());
    drop(stream);
    let lines = server.stop();
    assert!(lines.len() > 3, "{lines:#?}");
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
        assert!(value.is_object(), "{line}");
        assert!(
            value["level"].is_string() && value["timestamp"].is_string(),
            "{line}"
        );
        for secret in [PASSWORD, REDIS_PASSWORD, token.as_str(), ticket.as_str()] {
            assert!(!line.contains(secret), "a secret in the log: {line}");
        }
    }
}

#[test]
fn a_start_up_error_is_a_json_line_too() {
    let server = Logged::start(&["--redis-url", "redis+unix:///nonexistent/farm-chat.sock"]);
    let message = server.wait_for("the start-up error", |v| {
        (v["level"] == "ERROR").then(|| v["message"].as_str().map(str::to_owned))?
    });
    assert!(message.contains("cannot start"), "{message}");
    for line in server.stop() {
        serde_json::from_str::<serde_json::Value>(&line)
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
    }
}
