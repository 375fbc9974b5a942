//! A minimal HTTP/1.1 client over plain TCP: keep-alive REST calls and SSE streams.
//!
//! Hand-rolled on purpose: a load generator must cost little per connection (100,000 idle
//! streams are held as bare sockets that are not even read) and must not hide the server's
//! behaviour behind pooling or retries.

use farm_chat_protocol::paths;
use std::{
    io,
    net::{IpAddr, SocketAddr},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpSocket, TcpStream},
};

/// Where the server is: `--base-url http://127.0.0.1:3000` (the API under `/api`).
#[derive(Clone, Debug)]
pub struct Target {
    /// The server's socket address.
    pub addr: SocketAddr,
    /// The `Host` header.
    pub host: String,
}

impl Target {
    /// Parses `http://host:port` (IP literals; the benchmarks run on loopback or a LAN).
    pub fn parse(base_url: &str) -> Result<Self, String> {
        let rest = base_url
            .strip_prefix("http://")
            .ok_or("--base-url must start with http://")?;
        let host = rest.trim_end_matches('/').to_owned();
        let addr = host
            .parse::<SocketAddr>()
            .or_else(|_| format!("{host}:80").parse())
            .map_err(|_| format!("--base-url: {host} is not IP:port"))?;
        Ok(Self { addr, host })
    }

    async fn connect(&self, source: Option<IpAddr>) -> io::Result<TcpStream> {
        match source {
            None => TcpStream::connect(self.addr).await,
            Some(ip) => {
                let socket = if ip.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                socket.bind(SocketAddr::new(ip, 0))?;
                socket.connect(self.addr).await
            }
        }
    }
}

/// A keep-alive connection for REST calls.
pub struct Client {
    target: Target,
    conn: Option<BufReader<TcpStream>>,
}

/// A REST answer.
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: String,
}

impl Reply {
    /// The body as JSON (`Null` if it isn't).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

impl Client {
    /// A client for `target` (connects on first use).
    pub fn new(target: &Target) -> Self {
        Self {
            target: target.clone(),
            conn: None,
        }
    }

    /// One request; reconnects once if the kept-alive connection was closed.
    pub async fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        json: Option<&str>,
    ) -> io::Result<Reply> {
        match self.try_call(method, path, token, json).await {
            Ok(reply) => Ok(reply),
            Err(_) => {
                self.conn = None;
                self.try_call(method, path, token, json).await
            }
        }
    }

    async fn try_call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        json: Option<&str>,
    ) -> io::Result<Reply> {
        if self.conn.is_none() {
            let stream = self.target.connect(None).await?;
            stream.set_nodelay(true)?;
            self.conn = Some(BufReader::new(stream));
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(io::Error::other("no connection"));
        };
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.target.host);
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        let body = json.unwrap_or("");
        if json.is_some() {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        head.push_str(body);
        conn.get_mut().write_all(head.as_bytes()).await?;
        let (status, headers) = read_head(conn).await?;
        let length = header(&headers, "content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .ok_or_else(|| io::Error::other("no Content-Length in the answer"))?;
        let mut buf = vec![0; length];
        conn.read_exact(&mut buf).await?;
        if header(&headers, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
            self.conn = None;
        }
        Ok(Reply {
            status,
            body: String::from_utf8_lossy(&buf).into_owned(),
        })
    }
}

async fn read_head<R: AsyncBufReadExt + Unpin>(r: &mut R) -> io::Result<(u16, Vec<String>)> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).await?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            return Ok((status, headers));
        }
        headers.push(trimmed.to_owned());
    }
}

fn header<'a>(headers: &'a [String], name: &str) -> Option<&'a str> {
    headers.iter().find_map(|h| {
        let (k, v) = h.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Signs `user` in (`POST /api/session`) and returns the Bearer token.
pub async fn login(client: &mut Client, user: &str) -> Result<String, String> {
    let body = serde_json::json!({ "userId": user }).to_string();
    let reply = client
        .call("POST", paths::api::SESSION, None, Some(&body))
        .await
        .map_err(|e| format!("sign in {user}: {e}"))?;
    if reply.status != 200 {
        return Err(format!(
            "sign in {user}: HTTP {} {}",
            reply.status, reply.body
        ));
    }
    reply.json()["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("sign in {user}: no token"))
}

/// One SSE event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Event {
    /// `event:`.
    pub name: String,
    /// `id:`.
    pub id: String,
    /// `data:` (lines joined by `\n`).
    pub data: String,
}

/// An open `GET /api/chat/stream`.
pub struct Stream {
    conn: BufReader<TcpStream>,
    chunked: bool,
    /// Undecoded body bytes of the current chunk still to read.
    chunk_left: usize,
    pending: Vec<u8>,
}

impl Stream {
    /// Opens the user's stream (from `source` if given) and checks the answer is 200.
    pub async fn open(target: &Target, token: &str, source: Option<IpAddr>) -> io::Result<Self> {
        let stream = target.connect(source).await?;
        let mut conn = BufReader::with_capacity(2048, stream);
        let head = format!(
            "GET /api/chat/stream HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\
             Authorization: Bearer {token}\r\n\r\n",
            target.host
        );
        conn.get_mut().write_all(head.as_bytes()).await?;
        let (status, headers) = read_head(&mut conn).await?;
        if status != 200 {
            return Err(io::Error::other(format!("stream: HTTP {status}")));
        }
        let chunked = header(&headers, "transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        Ok(Self {
            conn,
            chunked,
            chunk_left: 0,
            pending: Vec::new(),
        })
    }

    /// Reads body bytes (undoing chunked framing) until one full line is pending.
    async fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(at) = self.pending.iter().position(|&b| b == b'\n') {
                let rest = self.pending.split_off(at + 1);
                let line = std::mem::replace(&mut self.pending, rest);
                let text = String::from_utf8_lossy(&line);
                return Ok(text.trim_end_matches(['\n', '\r']).to_owned());
            }
            if !self.chunked {
                let mut buf = [0u8; 1024];
                let n = self.conn.read(&mut buf).await?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                self.pending.extend_from_slice(&buf[..n]);
                continue;
            }
            if self.chunk_left == 0 {
                let mut size = String::new();
                while size.trim().is_empty() {
                    size.clear();
                    if self.conn.read_line(&mut size).await? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
                let hex = size.trim().split(';').next().unwrap_or("");
                self.chunk_left = usize::from_str_radix(hex, 16)
                    .map_err(|_| io::Error::other(format!("bad chunk size {size:?}")))?;
                if self.chunk_left == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into()); // the stream ended
                }
            }
            let mut buf = vec![0u8; self.chunk_left.min(4096)];
            let n = self.conn.read(&mut buf).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.chunk_left -= n;
            self.pending.extend_from_slice(&buf[..n]);
        }
    }

    /// The next event (comments and `retry:` skipped).
    pub async fn next(&mut self) -> io::Result<Event> {
        let mut event = Event::default();
        let mut data: Vec<String> = Vec::new();
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                if !event.name.is_empty() || !data.is_empty() {
                    event.data = data.join("\n");
                    return Ok(event);
                }
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => event.name = value.to_owned(),
                "id" => event.id = value.to_owned(),
                "data" => data.push(value.to_owned()),
                _ => {}
            }
        }
    }
}
