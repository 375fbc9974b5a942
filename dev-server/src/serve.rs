//! Connection discipline: the accept loop and each HTTP/1.1 connection, with the limits a
//! server on the open internet needs (axum's own `serve` has none of them).
//!
//! - **Header timeout**: a request head must arrive whole within `header_timeout` of its first
//!   byte, or the connection is closed (slowloris). A new connection that sends no byte at all
//!   is closed then too (or at the idle timeout, if that is shorter).
//! - **Body timeout**: a request body must arrive whole within `body_timeout` of its head; the
//!   JSON extractor then answers 408 (see [`BodyTimedOut`]).
//! - **Idle timeout**: a keep-alive connection with no request in flight is closed after
//!   `idle_timeout`. A request in flight (an SSE stream, say) is never idle: streams are
//!   bounded by their own caps instead.
//! - **Connection caps**: at most `max_connections` open at once (a new one gets a JSON 503),
//!   and at most `max_per_client` from one address (429), so one client can't take them all.
//! - **Running out of file descriptors**: `accept` fails; the loop backs off briefly, keeps
//!   serving the connections it has, logs at most once per second and recovers by itself.
//!
//! The timeouts are watched by one small task per connection that sleeps until the next
//! deadline; reads stamp the time, requests and their answers say when the connection is busy.

use std::{
    collections::HashMap,
    convert::Infallible,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{Router, body::Body, extract::ConnectInfo, http::Request};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Notify, mpsc, watch},
};
use tower::ServiceExt;

/// The limits of [`serve`] (flags `--header-timeout` … `--max-connections-per-client`).
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// From a request's first byte to its complete head.
    pub header_timeout: Duration,
    /// From a request's head to the end of its body.
    pub body_timeout: Duration,
    /// A connection with no request in flight is closed after this long.
    pub idle_timeout: Duration,
    /// Open connections at most; beyond, a JSON 503.
    pub max_connections: usize,
    /// Open connections from one client address at most; beyond, a JSON 429.
    pub max_per_client: usize,
}

/// The soft open-files limit minus a reserve (the database, logs, the static files being
/// sent), so the cap answers 503 before `accept` fails; at most 50,000.
pub fn default_max_connections() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|n| n.parse::<usize>().ok())
        })
        .unwrap_or(1024);
    soft.saturating_sub(64).clamp(16, 50_000)
}

/// A listener on `addr` whose accept queue holds `backlog` connections (see
/// `--listen-backlog`); a warning when the kernel's `net.core.somaxconn` cuts it shorter.
pub fn listen(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // A restarted server binds again at once, whatever its old connections' TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    if let Some(cap) = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|cap| *cap < backlog)
    {
        tracing::warn!(
            asked = backlog,
            somaxconn = cap,
            "the kernel caps the listen backlog at net.core.somaxconn; raise it (sysctl) for \
             large reconnect storms"
        );
    }
    socket.listen(backlog)
}

/// The error a request body gives when it did not arrive within the body timeout.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimedOut(pub Duration);

/// Serves `router` on `listener` until `shutdown` becomes `true`; then stops accepting, lets
/// each connection finish its request in flight and returns when all are closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let admission = Arc::new(Admission::default());
    // Every connection task holds a clone; `recv` returns `None` once all have ended.
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    let mut accept_errors = ErrorLog::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            // The client gave up between SYN and accept: nothing to do.
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                // Out of file descriptors (or memory): the connections we have keep being
                // served; new ones wait in the kernel's queue until some close.
                accept_errors.log(&e);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let permit = match admission.admit(peer.ip(), &limits) {
            Ok(permit) => permit,
            Err(refusal) => {
                tokio::spawn(refuse(stream, refusal));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            router: router.clone(),
            limits,
            peer,
            shutdown: shutdown.clone(),
            _permit: permit,
            _alive: alive.clone(),
        };
        tokio::spawn(connection.run(stream));
    }
    drop(alive);
    let _ = all_closed.recv().await;
    Ok(())
}

/// Errors of one pending connection, not of the listener.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Logs a repeating error at most once per second, with how many were left out.
#[derive(Debug, Default)]
struct ErrorLog {
    last: Option<Instant>,
    skipped: u64,
}

impl ErrorLog {
    fn log(&mut self, e: &io::Error) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < Duration::from_secs(1))
        {
            self.skipped += 1;
            return;
        }
        tracing::error!(error = %e, repeated = self.skipped, "accept failed; serving the open connections and retrying");
        self.last = Some(now);
        self.skipped = 0;
    }
}

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// `max_connections` are open.
    Full,
    /// `max_per_client` are open from this address.
    ClientFull,
}

/// Counts open connections, in all and per client address.
#[derive(Debug, Default)]
struct Admission {
    open: AtomicUsize,
    per_client: Mutex<HashMap<IpAddr, usize>>,
}

impl Admission {
    fn admit(self: &Arc<Self>, ip: IpAddr, limits: &ConnLimits) -> Result<Permit, Refusal> {
        let mut per_client = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        if self.open.load(Ordering::Relaxed) >= limits.max_connections {
            return Err(Refusal::Full);
        }
        let n = per_client.entry(ip).or_insert(0);
        if *n >= limits.max_per_client {
            return Err(Refusal::ClientFull);
        }
        *n += 1;
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok(Permit {
            admission: self.clone(),
            ip,
        })
    }
}

/// One admitted connection's place; given back on drop.
#[derive(Debug)]
struct Permit {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut per_client = self
            .admission
            .per_client
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = per_client.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_client.remove(&self.ip);
            }
        }
        self.admission.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Answers a connection that was not admitted, without reading its request, and closes it.
async fn refuse(mut stream: TcpStream, refusal: Refusal) {
    let (status, code, message) = match refusal {
        Refusal::Full => (
            "503 Service Unavailable",
            "server_busy",
            "混み合っています。しばらくしてからお試しください / the server is at its connection limit; retry shortly",
        ),
        Refusal::ClientFull => (
            "429 Too Many Requests",
            "too_many_connections",
            "この接続元からの接続が多すぎます / too many connections from this address",
        ),
    };
    tracing::info!(code, "connection refused");
    let body = format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#);
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         x-content-type-options: nosniff\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent, so closing doesn't reset the connection under the answer.
        let mut sink = [0u8; 4096];
        loop {
            match tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? {
                0 => return Ok::<_, io::Error>(()),
                _ => continue,
            }
        }
    })
    .await;
}

/// One admitted connection.
struct Connection {
    router: Router,
    limits: ConnLimits,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
    _permit: Permit,
    _alive: mpsc::Sender<()>,
}

impl Connection {
    async fn run(mut self, stream: TcpStream) {
        let track = Arc::new(Track::new());
        let io = TokioIo::new(Tracked {
            inner: stream,
            track: track.clone(),
        });
        let (router, peer, body_timeout) = (self.router, self.peer, self.limits.body_timeout);
        let service_track = track.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let busy = service_track.begin();
            let mut req = req.map(|body| Body::new(Deadline::new(body, body_timeout)));
            req.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                let response = match router.oneshot(req).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                Ok::<_, Infallible>(response.map(|inner| Body::new(Guarded { inner, _busy: busy })))
            }
        });
        let connection = http1::Builder::new()
            .keep_alive(true)
            .header_read_timeout(None)
            .serve_connection(io, service);
        tokio::pin!(connection);
        let mut draining = *self.shutdown.borrow();
        if draining {
            connection.as_mut().graceful_shutdown();
        }
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                    return;
                }
                reason = watch_deadlines(&track, &self.limits) => {
                    tracing::debug!(reason, %peer, "connection closed");
                    return;
                }
                _ = self.shutdown.wait_for(|stop| *stop), if !draining => {
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// What the deadline watcher knows of one connection.
#[derive(Debug)]
struct Track {
    since: Instant,
    /// Requests whose answers are not finished.
    in_flight: AtomicU32,
    /// When the first byte of the next request arrived (ms since `since`, plus one; 0: none).
    head_started: AtomicU64,
    /// The last read, or the last answer finished (ms since `since`).
    last_activity: AtomicU64,
    /// No byte has arrived yet: a connection that stays silent is held no longer than a
    /// request head may take (a socket that never speaks must not pin a file descriptor for
    /// the whole idle timeout).
    silent: AtomicBool,
    wake: Notify,
}

impl Track {
    fn new() -> Self {
        Self {
            since: Instant::now(),
            in_flight: AtomicU32::new(0),
            head_started: AtomicU64::new(0),
            last_activity: AtomicU64::new(0),
            silent: AtomicBool::new(true),
            wake: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.since.elapsed().as_millis() as u64
    }

    fn on_read(&self) {
        let now = self.now_ms();
        self.last_activity.store(now, Ordering::Relaxed);
        self.silent.store(false, Ordering::Release);
        if self.in_flight.load(Ordering::Acquire) == 0
            && self
                .head_started
                .compare_exchange(0, now + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.wake.notify_one();
        }
    }

    /// A request head has arrived.
    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(0, Ordering::Release);
        self.wake.notify_one();
        Busy(self.clone())
    }
}

/// A request in flight on its connection.
#[derive(Debug)]
struct Busy(Arc<Track>);

impl Drop for Busy {
    fn drop(&mut self) {
        let track = &self.0;
        track.last_activity.store(track.now_ms(), Ordering::Relaxed);
        track.in_flight.fetch_sub(1, Ordering::AcqRel);
        track.wake.notify_one();
    }
}

/// Resolves with the reason once the connection has been idle, or in the middle of a request
/// head, for too long.
async fn watch_deadlines(track: &Track, limits: &ConnLimits) -> &'static str {
    loop {
        let woken = track.wake.notified();
        if track.in_flight.load(Ordering::Acquire) > 0 {
            woken.await;
            continue;
        }
        let (deadline, reason) = match track.head_started.load(Ordering::Acquire) {
            0 if track.silent.load(Ordering::Acquire) => (
                limits.header_timeout.min(limits.idle_timeout).as_millis() as u64,
                "silent connection",
            ),
            0 => (
                track.last_activity.load(Ordering::Relaxed)
                    + limits.idle_timeout.as_millis() as u64,
                "idle timeout",
            ),
            started => (
                started - 1 + limits.header_timeout.as_millis() as u64,
                "request head timeout",
            ),
        };
        let now = track.now_ms();
        if now >= deadline {
            return reason;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(deadline - now)) => {}
            () = woken => {}
        }
    }
}

/// The socket, stamping each read in its [`Track`].
struct Tracked {
    inner: TcpStream,
    track: Arc<Track>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.track.on_read();
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A request body that fails with [`BodyTimedOut`] if it is not complete by its deadline.
struct Deadline {
    inner: Incoming,
    limit: Duration,
    /// `None` for a body that is already complete (no timer needed).
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Deadline {
    fn new(inner: Incoming, limit: Duration) -> Self {
        let sleep = (!inner.is_end_stream()).then(|| Box::pin(tokio::time::sleep(limit)));
        Self {
            inner,
            limit,
            sleep,
        }
    }
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let limit = self.limit;
        let expired = self
            .sleep
            .as_mut()
            .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready());
        if expired {
            Poll::Ready(Some(Err(Box::new(BodyTimedOut(limit)))))
        } else {
            Poll::Pending
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body holding its request's [`Busy`] mark until it is dropped.
struct Guarded {
    inner: Body,
    _busy: Busy,
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_connections: usize, max_per_client: usize) -> ConnLimits {
        ConnLimits {
            max_connections,
            max_per_client,
            ..crate::config::Config::for_tests().conn_limits()
        }
    }

    #[test]
    fn admission_caps_in_all_and_per_client_and_gives_places_back() {
        let admission = Arc::new(Admission::default());
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let l = limits(3, 2);
        let a1 = admission.admit(a, &l).unwrap_or_else(|_| panic!("first"));
        let _a2 = admission.admit(a, &l).unwrap_or_else(|_| panic!("second"));
        assert_eq!(admission.admit(a, &l).err(), Some(Refusal::ClientFull));
        let _b1 = admission
            .admit(b, &l)
            .unwrap_or_else(|_| panic!("other client"));
        assert_eq!(admission.admit(b, &l).err(), Some(Refusal::Full));
        drop(a1);
        assert!(admission.admit(a, &l).is_ok(), "a place was given back");
    }

    #[test]
    fn the_default_cap_stays_below_the_open_files_limit() {
        let cap = default_max_connections();
        assert!((16..=50_000).contains(&cap), "{cap}");
    }
}
