//! Running commands, and a tiny HTTP client for smoke checks (std only).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

/// The repository root (the workspace holding `xtask/`).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A command that runs at the repository root with the project's tools first on `PATH`.
pub(crate) fn cmd(program: &str) -> Command {
    let mut c = Command::new(program);
    c.current_dir(root())
        .env("PATH", crate::tools::path_with_tools());
    c
}

/// Runs `c` with inherited output; an error names the command when it fails.
pub(crate) fn run(c: &mut Command) -> Result<(), String> {
    let shown = show(c);
    println!("$ {shown}");
    let status = c
        .status()
        .map_err(|e| format!("cannot start `{shown}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({status})"))
    }
}

/// Runs `c` quietly and returns its trimmed stdout, or `None` when it can't run or fails.
pub(crate) fn output(c: &mut Command) -> Option<String> {
    let out = c.stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `program arg…`, for messages.
pub(crate) fn show(c: &Command) -> String {
    std::iter::once(c.get_program())
        .chain(c.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// One HTTP/1.1 GET; returns (status, headers lower-cased, body).
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String, Vec<u8>), String> {
    http(addr, "GET", path, None)
}

/// One HTTP/1.1 request (with a JSON body if given); returns (status, headers lower-cased, body).
pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    json: Option<&str>,
) -> Result<(u16, String, Vec<u8>), String> {
    http_with(addr, method, path, json, &[])
}

/// [`http`] with extra request headers.
pub(crate) fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    json: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<(u16, String, Vec<u8>), String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let body = json.unwrap_or("");
    let mut content = match json {
        Some(_) => format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ),
        None => String::new(),
    };
    for (name, value) in headers {
        content.push_str(&format!("{name}: {value}\r\n"));
    }
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{content}\r\n{body}"
    )
    .map_err(|e| format!("send {method} {path}: {e}"))?;
    // Read the head, then exactly Content-Length bytes when given (some servers, chromedriver
    // among them, keep the socket open despite `Connection: close`), else to the end.
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    let split = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream
            .read(&mut chunk)
            .map_err(|e| format!("read {method} {path}: {e}"))?;
        if n == 0 {
            return Err(format!("{method} {path}: no HTTP header in the answer"));
        }
        raw.extend_from_slice(&chunk[..n]);
    };
    let length = String::from_utf8_lossy(&raw[..split])
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        });
    match length {
        Some(length) => {
            while raw.len() < split + 4 + length {
                let n = stream
                    .read(&mut chunk)
                    .map_err(|e| format!("read {method} {path}: {e}"))?;
                if n == 0 {
                    break;
                }
                raw.extend_from_slice(&chunk[..n]);
            }
        }
        None => {
            stream
                .read_to_end(&mut raw)
                .map_err(|e| format!("read {method} {path}: {e}"))?;
        }
    }
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{method} {path}: bad status line"))?;
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body).ok_or_else(|| format!("{method} {path}: bad chunked body"))?;
    }
    Ok((status, head, body))
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}
