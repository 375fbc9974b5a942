//! Just enough WebDriver (chromedriver) to load a page in headless Chromium, wait for what a
//! script reports, and take a screenshot: for checks of the real page, which keeps an SSE
//! stream open (so `--dump-dom` with virtual time would wait forever).

use std::{
    net::{SocketAddr, TcpListener},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{proc::http, suites::chromium_flags, tools::Browser};

/// A browser session; the browser and the driver end when it is dropped.
pub(crate) struct Session {
    driver: Child,
    addr: SocketAddr,
    id: String,
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

impl Session {
    /// Starts chromedriver and a headless Chromium with a fresh profile.
    pub(crate) fn start(browser: &Browser, profile: &Path) -> Result<Self, String> {
        let port = free_port()?;
        let driver = Command::new(&browser.chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start {}: {e}", browser.chromedriver.display()))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut session = Self {
            driver,
            addr,
            id: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while http(addr, "GET", "/status", None).is_err() {
            if Instant::now() > deadline {
                return Err("chromedriver did not start in 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": browser.chromium.display().to_string(),
            "args": chromium_flags(profile),
        }}}});
        let answer = session.call("POST", "/session", Some(caps))?;
        session.id = answer["sessionId"]
            .as_str()
            .ok_or("no sessionId from chromedriver")?
            .to_owned();
        Ok(session)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let body = body.map(|b| b.to_string());
        let (status, _, bytes) = http(self.addr, method, path, body.as_deref())?;
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|e| format!("webdriver {path}: {e}"))?;
        if status >= 400 {
            return Err(format!(
                "webdriver {method} {path}: {status} {}",
                value["value"]["message"]
            ));
        }
        Ok(value.get("value").cloned().unwrap_or(Value::Null))
    }

    /// Navigates to `url`.
    pub(crate) fn open(&self, url: &str) -> Result<(), String> {
        self.call(
            "POST",
            &format!("/session/{}/url", self.id),
            Some(json!({"url": url})),
        )
        .map(drop)
    }

    /// Opens a new tab and returns its handle (the current tab stays current).
    pub(crate) fn new_tab(&self) -> Result<String, String> {
        let answer = self.call(
            "POST",
            &format!("/session/{}/window/new", self.id),
            Some(json!({"type": "tab"})),
        )?;
        answer["handle"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "no handle for the new tab".to_owned())
    }

    /// Makes the tab `handle` current.
    pub(crate) fn switch_to(&self, handle: &str) -> Result<(), String> {
        self.call(
            "POST",
            &format!("/session/{}/window", self.id),
            Some(json!({"handle": handle})),
        )
        .map(drop)
    }

    /// The current tab's handle.
    pub(crate) fn current_tab(&self) -> Result<String, String> {
        self.call("GET", &format!("/session/{}/window", self.id), None)?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "no current tab".to_owned())
    }

    /// Takes the current tab offline (Chromium's network emulation, as DevTools does) or
    /// back online.
    pub(crate) fn set_offline(&self, offline: bool) -> Result<(), String> {
        let path = format!("/session/{}/chromium/network_conditions", self.id);
        if offline {
            self.call(
                "POST",
                &path,
                Some(json!({"network_conditions": {
                    "offline": true, "latency": 0,
                    "download_throughput": 0, "upload_throughput": 0,
                }})),
            )
            .map(drop)
        } else {
            self.call("DELETE", &path, None).map(drop)
        }
    }

    /// Emulates a slow link for the current tab: `latency_ms` added to each request, and
    /// `bytes_per_s` down and up (Chromium's network emulation, as DevTools does).
    pub(crate) fn throttle(&self, latency_ms: u32, bytes_per_s: u32) -> Result<(), String> {
        self.call(
            "POST",
            &format!("/session/{}/chromium/network_conditions", self.id),
            Some(json!({"network_conditions": {
                "offline": false, "latency": latency_ms,
                "download_throughput": bytes_per_s, "upload_throughput": bytes_per_s,
            }})),
        )
        .map(drop)
    }

    /// Resizes the browser window (e.g. to a phone's 390×844).
    pub(crate) fn set_size(&self, width: u32, height: u32) -> Result<(), String> {
        self.call(
            "POST",
            &format!("/session/{}/window/rect", self.id),
            Some(json!({"width": width, "height": height})),
        )
        .map(drop)
    }

    /// Runs a Chrome DevTools Protocol command (chromedriver's `goog/cdp/execute`).
    pub(crate) fn cdp(&self, command: &str, params: Value) -> Result<Value, String> {
        self.call(
            "POST",
            &format!("/session/{}/goog/cdp/execute", self.id),
            Some(json!({"cmd": command, "params": params})),
        )
    }

    /// Closes the current tab (switch to another one afterwards).
    pub(crate) fn close_tab(&self) -> Result<(), String> {
        self.call("DELETE", &format!("/session/{}/window", self.id), None)
            .map(drop)
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub(crate) fn script(&self, script: &str) -> Result<Value, String> {
        self.call(
            "POST",
            &format!("/session/{}/execute/sync", self.id),
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Runs `script` (a function body that calls `arguments[0]` with its result) and returns
    /// that result.
    pub(crate) fn script_async(&self, script: &str) -> Result<Value, String> {
        self.call(
            "POST",
            &format!("/session/{}/execute/async", self.id),
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Polls `script` until it returns `true`, at most `within`.
    pub(crate) fn wait_for(&self, script: &str, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            if self.script(script)? == Value::Bool(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("not true within {} s: {script}", within.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Saves a PNG screenshot of the page.
    pub(crate) fn screenshot(&self, to: &Path) -> Result<(), String> {
        let b64 = self.call("GET", &format!("/session/{}/screenshot", self.id), None)?;
        let png = decode_base64(b64.as_str().ok_or("no screenshot data")?)?;
        std::fs::write(to, png).map_err(|e| format!("write {}: {e}", to.display()))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.id.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.id), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for byte in text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
    {
        let value = ALPHABET
            .iter()
            .position(|&c| c == byte)
            .ok_or("bad base64 in the screenshot")? as u32;
        acc = (acc << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::decode_base64;

    #[test]
    fn base64_decodes() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("iVBORw0KGgo=").unwrap(), b"\x89PNG\r\n\x1a\n");
        assert!(decode_base64("a$b").is_err());
    }
}
