//! The dev-server as the test and run commands use it: built, started on a port, stopped when
//! dropped (on success, failure or panic alike).

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
};

use crate::proc::{cmd, root, run};

/// Cargo's target directory (`CARGO_TARGET_DIR` when set).
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// The `/metrics` token of the servers the project command starts.
pub(crate) const METRICS_TOKEN: &str = "xtask-metrics-token";

/// `target/release/farm-chat-dev-server` (built for speed, as it runs for people), built if
/// needed.
pub(crate) fn build_release() -> Result<PathBuf, String> {
    run(cmd("cargo").args([
        "build",
        "--quiet",
        "--release",
        "-p",
        "farm-chat-dev-server",
    ]))?;
    Ok(target_dir().join("release").join("farm-chat-dev-server"))
}

/// `target/debug/farm-chat-dev-server`, built if needed.
pub(crate) fn build() -> Result<PathBuf, String> {
    run(cmd("cargo").args(["build", "--quiet", "-p", "farm-chat-dev-server"]))?;
    Ok(target_dir().join("debug").join("farm-chat-dev-server"))
}

/// A durable store for a dev-server that a test kills and restarts: a fresh SQLite file in
/// `dir`, removed with its WAL files when dropped.
pub(crate) struct Store {
    path: PathBuf,
}

impl Store {
    /// `dir/<name>-<pid>.sqlite`, empty.
    pub(crate) fn new(dir: &std::path::Path, name: &str) -> Self {
        let store = Self {
            path: dir.join(format!("{name}-{}.sqlite", std::process::id())),
        };
        store.remove();
        store
    }

    /// The `--db` argument.
    pub(crate) fn arg(&self) -> String {
        self.path.display().to_string()
    }

    fn remove(&self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A running dev-server; killed on drop.
pub(crate) struct DevServer {
    child: Child,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// Its log (stderr), kept for a failing run.
    pub(crate) log: PathBuf,
}

impl DevServer {
    /// Builds and starts the dev-server with `args` (an `--addr` among them, e.g. port 0) and
    /// waits for the URL it prints once it listens.
    pub(crate) fn start(args: &[String]) -> Result<Self, String> {
        Self::start_bin(&build()?, args)
    }

    /// Starts the dev-server binary `bin` (e.g. a release build) with `args`.
    pub(crate) fn start_bin(bin: &std::path::Path, args: &[String]) -> Result<Self, String> {
        let log_dir = root().join("target").join("xtask");
        std::fs::create_dir_all(&log_dir).map_err(|e| e.to_string())?;
        // One log per server of this run: the browser tests' and the page smoke's stay apart.
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let log = log_dir.join(format!("dev-server-{}-{n}.log", std::process::id()));
        let log_file =
            std::fs::File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let mut child = Command::new(bin)
            // Every client of a test or bench server is 127.0.0.1 and the same demo users sign
            // in again and again: the per-address and sign-in limits (tested on their own in
            // the dev-server's tests) would only get in the way. Flags in `args` still win.
            .env("FARM_CHAT_SIGN_IN_PER_MINUTE", "1000000")
            .env("FARM_CHAT_SIGN_IN_PER_USER_PER_MINUTE", "1000000")
            .env("FARM_CHAT_MAX_CONNECTIONS_PER_CLIENT", "1000000")
            // `/metrics` on the API port answers only this token's holder (the suites read it).
            .env("FARM_CHAT_METRICS_TOKEN", METRICS_TOKEN)
            .args(args)
            .current_dir(root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("start {}: {e}", bin.display()))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            return Err("the dev-server's stdout is not piped".into());
        };
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        // The banner is a line of text, or a JSON object with `"url"` (`--log-format json`).
        let addr = first
            .rsplit("http://")
            .next()
            .and_then(|s| s.split(['/', '"']).next())
            .and_then(|s| s.parse::<SocketAddr>().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!(
                "the dev-server did not start (stdout: {first:?})\n{tail}"
            ));
        };
        // Keep draining stdout so the server never writes into a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        println!(
            "xtask: dev-server on http://{addr}/ (log: {})",
            log.display()
        );
        Ok(Self { child, addr, log })
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it at once (SIGKILL: no graceful shutdown, as a crash would).
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `http://ADDR/api`.
    pub(crate) fn api_base(&self) -> String {
        format!("http://{}/api", self.addr)
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.kill();
    }
}
