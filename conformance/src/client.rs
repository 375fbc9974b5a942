//! Just enough HTTP/1.1 to see what a browser would: every header of an answer, any request
//! header (`Origin`, `Last-Event-ID`, `Accept-Encoding`), and an SSE stream read event by event
//! with its `id:`, `event:`, `data:` and `retry:` fields. One connection per request
//! (`Connection: close`), so no answer can leak into the next.

use std::{io, net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

/// The server: `http://host:port` (plain HTTP; put a TLS terminator's inside address here).
#[derive(Clone, Debug)]
pub struct Target {
    addr: SocketAddr,
    host: String,
}

impl Target {
    /// Resolves `base_url` (`http://127.0.0.1:3000`, `http://localhost:3000/`).
    pub async fn resolve(base_url: &str) -> Result<Self, String> {
        let rest = base_url
            .strip_prefix("http://")
            .ok_or("--base-url must start with http:// (TLS is not spoken here)")?;
        let host = rest.trim_end_matches('/').to_owned();
        if host.contains('/') {
            return Err("--base-url is the server's root; the API is under /api".into());
        }
        let with_port = if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host.clone()
        } else {
            format!("{host}:80")
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .map_err(|e| format!("--base-url: cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("--base-url: {host} has no address"))?;
        Ok(Self { addr, host })
    }

    /// The server at `addr` (tests that started it on a loopback port).
    pub fn at(addr: SocketAddr) -> Self {
        Self {
            addr,
            host: addr.to_string(),
        }
    }

    /// The origin of the server itself (`http://host:port`).
    pub fn origin(&self) -> String {
        format!("http://{}", self.host)
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> io::Result<BufReader<TcpStream>> {
        let mut stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.host
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(body) = body {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await?;
        if let Some(body) = body {
            stream.write_all(body).await?;
        }
        Ok(BufReader::new(stream))
    }

    /// One request; the whole answer (10 s at most).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Reply, String> {
        let what = format!("{method} {path}");
        let exchange = async {
            let mut conn = self.send(method, path, headers, body).await?;
            let (status, headers) = read_head(&mut conn).await?;
            let mut raw = Vec::new();
            conn.read_to_end(&mut raw).await?;
            let chunked = header_in(&headers, "transfer-encoding")
                .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
            let body = if chunked { dechunk(&raw) } else { raw };
            Ok::<_, io::Error>(Reply {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .map_err(|_| format!("{what}: no answer within 10 s"))?
            .map_err(|e| format!("{what}: {e}"))
    }

    /// Opens an SSE stream; the answer's head, and the body to read events from.
    pub async fn stream(&self, path: &str, headers: &[(&str, &str)]) -> Result<Sse, String> {
        let open = async {
            let mut conn = self.send("GET", path, headers, None).await?;
            let (status, headers) = read_head(&mut conn).await?;
            Ok::<_, io::Error>((conn, status, headers))
        };
        let (conn, status, headers) = tokio::time::timeout(Duration::from_secs(10), open)
            .await
            .map_err(|_| format!("GET {path}: no answer head within 10 s"))?
            .map_err(|e| format!("GET {path}: {e}"))?;
        let chunked = header_in(&headers, "transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        Ok(Sse {
            status,
            headers,
            conn,
            chunked,
            chunk_left: 0,
            pending: Vec::new(),
        })
    }
}

/// A complete answer.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Every header line as (name, value).
    pub headers: Vec<(String, String)>,
    /// The body, chunked framing undone.
    pub body: Vec<u8>,
}

impl Reply {
    /// A header's value (first of that name, case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    /// The body as JSON (`Null` if it isn't).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }

    /// The body as text, for messages.
    pub fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.chars().take(300).collect()
    }
}

fn header_in<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

async fn read_head<R: AsyncBufReadExt + Unpin>(
    r: &mut R,
) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "closed before an answer",
        ));
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            return Ok((status, headers));
        }
        if let Some((k, v)) = trimmed.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
}

/// Undoes chunked framing of a complete body (garbage ends it).
fn dechunk(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(end) = raw[at..].windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&raw[at..at + end]);
        let Ok(n) = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16) else {
            break;
        };
        at += end + 2;
        if n == 0 || at + n > raw.len() {
            break;
        }
        out.extend_from_slice(&raw[at..at + n]);
        at += n + 2;
        if at > raw.len() {
            break;
        }
    }
    out
}

/// One SSE event as received.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// `id:` if the event had one.
    pub id: Option<String>,
    /// `event:` (empty for the default `message`).
    pub name: String,
    /// `data:` lines joined by `\n`.
    pub data: String,
    /// `retry:` if the event had one.
    pub retry: Option<String>,
}

impl Event {
    /// The data as JSON (`Null` if it isn't).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_default()
    }

    /// The id as a number, if it is one.
    pub fn id_number(&self) -> Option<u64> {
        self.id.as_deref().and_then(|id| id.parse().ok())
    }
}

/// An open SSE stream.
pub struct Sse {
    /// The status code.
    pub status: u16,
    /// The answer's headers.
    pub headers: Vec<(String, String)>,
    conn: BufReader<TcpStream>,
    chunked: bool,
    chunk_left: usize,
    pending: Vec<u8>,
}

impl Sse {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    /// The next event within `within`: `Ok(None)` when the stream ended, `Err` on silence.
    pub async fn next(&mut self, within: Duration) -> Result<Option<Event>, String> {
        tokio::time::timeout(within, self.next_event())
            .await
            .map_err(|_| format!("no event within {} s", within.as_secs_f32()))
    }

    /// The next event that is not a `ping`, within `within`.
    pub async fn next_not_ping(&mut self, within: Duration) -> Result<Option<Event>, String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await? {
                Some(e) if e.name == "ping" => continue,
                other => return Ok(other),
            }
        }
    }

    async fn next_event(&mut self) -> Option<Event> {
        let mut event = Event::default();
        let mut data: Vec<String> = Vec::new();
        let mut any = false;
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                if any {
                    event.data = data.join("\n");
                    return Some(event);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            any = true;
            let (field, value) = line.split_once(':').map_or((line.as_str(), ""), |(f, v)| {
                (f, v.strip_prefix(' ').unwrap_or(v))
            });
            match field {
                "id" => event.id = Some(value.to_owned()),
                "event" => event.name = value.to_owned(),
                "data" => data.push(value.to_owned()),
                "retry" => event.retry = Some(value.to_owned()),
                _ => {}
            }
        }
    }

    /// One line of the body (chunked framing undone); `None` at the end.
    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(at) = self.pending.iter().position(|&b| b == b'\n') {
                let rest = self.pending.split_off(at + 1);
                let line = std::mem::replace(&mut self.pending, rest);
                return Some(
                    String::from_utf8_lossy(&line)
                        .trim_end_matches(['\n', '\r'])
                        .to_owned(),
                );
            }
            if self.chunked && self.chunk_left == 0 {
                let mut size = String::new();
                loop {
                    size.clear();
                    if self.conn.read_line(&mut size).await.ok()? == 0 {
                        return None;
                    }
                    if !size.trim().is_empty() {
                        break;
                    }
                }
                let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
                if n == 0 {
                    return None;
                }
                self.chunk_left = n;
            }
            let mut buf = [0u8; 4096];
            let want = if self.chunked {
                self.chunk_left.min(buf.len())
            } else {
                buf.len()
            };
            let n = self.conn.read(&mut buf[..want]).await.ok()?;
            if n == 0 {
                return None;
            }
            if self.chunked {
                self.chunk_left -= n;
            }
            self.pending.extend_from_slice(&buf[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_body_comes_out_whole() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n"), b"abcde");
        assert_eq!(dechunk(b"zz\r\nabc"), b"");
    }
}
