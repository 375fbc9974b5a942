//! A small streaming HTTP/1.1 client for what the server calls out to (model endpoints, AWS's
//! credential endpoints, the platform's JWKS): one connection per request (an answer is
//! seconds long; reuse would save little), TLS by rustls with the built-in public roots plus
//! a private CA, and the connection closed when the response is dropped, so a stopped answer
//! stops the provider's work too.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::{
    TlsConnector,
    rustls::{self, pki_types::ServerName},
};

/// Why a request got no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Refused, reset, a TLS failure, or a response that broke off.
    #[error("{0}")]
    Unavailable(String),
    /// No connection (or TLS handshake) in time.
    #[error("timed out: {0}")]
    Timeout(String),
}

/// An endpoint URL, parsed: `http(s)://host[:port]/path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// `https`.
    pub tls: bool,
    /// The host name or address.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The path (no trailing `/`), possibly empty.
    pub path: String,
}

impl Url {
    /// Parses `url`; only `http` and `https`, no user info, no query.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!("{url}: not an http:// or https:// URL"));
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() || authority.contains('@') || path.contains(['?', '#']) {
            return Err(format!("{url}: expected scheme://host[:port][/path]"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
                h.trim_matches(['[', ']']).to_owned(),
                p.parse::<u16>()
                    .map_err(|_| format!("{url}: bad port {p:?}"))?,
            ),
            _ => (
                authority.trim_matches(['[', ']']).to_owned(),
                if tls { 443 } else { 80 },
            ),
        };
        Ok(Self {
            tls,
            host,
            port,
            path: path.trim_end_matches('/').to_owned(),
        })
    }

    /// The `Host` header's value.
    pub fn authority(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Opens connections to model endpoints.
#[derive(Clone)]
pub struct Client {
    tls: TlsConnector,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client trusting the public web's roots and the CA certificates in `extra_ca` (PEM).
    pub fn new(
        extra_ca: Option<&std::path::Path>,
        connect_timeout: Duration,
    ) -> Result<Self, String> {
        let mut roots = crate::tls::public_roots();
        if let Some(path) = extra_ca {
            crate::tls::add_pem(&mut roots, path)?;
        }
        let provider = crate::tls::provider();
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            tls: TlsConnector::from(Arc::new(config)),
            connect_timeout,
        })
    }

    /// Sends a request and answers the response, its body still streaming.
    pub async fn send(
        &self,
        method: &str,
        url: &Url,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Response, Failure> {
        let connect = async {
            let tcp = TcpStream::connect((url.host.as_str(), url.port))
                .await
                .map_err(|e| {
                    Failure::Unavailable(format!("connect to {}: {e}", url.authority()))
                })?;
            let _ = tcp.set_nodelay(true);
            Ok::<_, Failure>(tcp)
        };
        let tcp = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| Failure::Timeout(format!("connect to {}", url.authority())))??;
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", url.authority());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Failure::Unavailable(format!("request: {e}")))?;
        let (mut sender, conn) = if url.tls {
            let name = ServerName::try_from(url.host.clone())
                .map_err(|e| Failure::Unavailable(format!("{}: {e}", url.host)))?;
            let tls = tokio::time::timeout(self.connect_timeout, self.tls.connect(name, tcp))
                .await
                .map_err(|_| Failure::Timeout(format!("TLS with {}", url.authority())))?
                .map_err(|e| Failure::Unavailable(format!("TLS with {}: {e}", url.authority())))?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| Failure::Unavailable(e.to_string()))?;
            (
                sender,
                Conn(tokio::spawn(async move {
                    let _ = conn.await;
                })),
            )
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(|e| Failure::Unavailable(e.to_string()))?;
            (
                sender,
                Conn(tokio::spawn(async move {
                    let _ = conn.await;
                })),
            )
        };
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| Failure::Unavailable(format!("{}: {e}", url.authority())))?;
        let (parts, body) = response.into_parts();
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
            _conn: conn,
        })
    }
}

/// The connection's task: aborted (the socket closed) when the response is dropped.
#[derive(Debug)]
struct Conn(tokio::task::JoinHandle<()>);

impl Drop for Conn {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A response whose body is read chunk by chunk.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: hyper::HeaderMap,
    body: Incoming,
    _conn: Conn,
}

impl Response {
    /// The next chunk of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Failure> {
        loop {
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(Failure::Unavailable(format!("the response broke off: {e}")));
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// The whole body (an error's), at most `limit` bytes of it, as text.
    pub async fn text(mut self, limit: usize) -> String {
        let mut out = Vec::new();
        while out.len() < limit {
            match self.chunk().await {
                Ok(Some(c)) => out.extend_from_slice(&c),
                _ => break,
            }
        }
        out.truncate(limit);
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_strictly() {
        let u = Url::parse("https://api.openai.com/v1/").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (true, "api.openai.com", 443, "/v1")
        );
        assert_eq!(u.authority(), "api.openai.com");
        let u = Url::parse("http://127.0.0.1:11434/v1").unwrap();
        assert_eq!((u.port, u.authority().as_str()), (11434, "127.0.0.1:11434"));
        let u = Url::parse("http://[::1]:8080").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 8080, "")
        );
        assert_eq!(u.authority(), "[::1]:8080");
        for bad in [
            "ftp://x",
            "https://",
            "https://u:p@x/v1",
            "http://x/v1?k=1",
            "http://x:99999",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }
}
