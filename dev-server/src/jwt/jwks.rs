//! The platform's keys by URL (`--jwt-jwks-url`: Cognito's
//! `…/{userPoolId}/.well-known/jwks.json`), kept fresh by one background task so that no
//! request ever waits for a fetch:
//!
//! - fetched at start; until the first answer the instance is not ready (readiness waits for
//!   keys), and a failed fetch is tried again every [`RETRY_EMPTY`];
//! - refreshed every `Cache-Control: max-age`, bounded to [`REFRESH_MIN`]..[`REFRESH_MAX`]
//!   ([`REFRESH_DEFAULT`] without one);
//! - fetched again when a token names a `kid` it does not know (the platform rotated its
//!   keys), at most once per [`REFETCH_EVERY`] whatever the load: a flood of made-up `kid`s
//!   costs the endpoint one request per window;
//! - when the endpoint fails, the last good keys stay in use (tried again every
//!   [`RETRY_KEPT`]).

use std::{
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::{Notify, watch};

use super::{Keys, Verifier, parse_jwks};
use crate::outbound::{Client, Url};

/// The shortest wait between two fetches for unknown `kid`s.
pub const REFETCH_EVERY: Duration = Duration::from_secs(10);
/// Refreshing more often than this is never needed.
pub const REFRESH_MIN: Duration = Duration::from_secs(60);
/// Keys are refreshed at least this often, whatever `max-age` says.
pub const REFRESH_MAX: Duration = Duration::from_secs(3600);
/// Without `max-age`.
pub const REFRESH_DEFAULT: Duration = Duration::from_secs(600);
/// After a failure, while there are no keys yet.
pub const RETRY_EMPTY: Duration = Duration::from_secs(2);
/// After a failure, while the last good keys are in use.
pub const RETRY_KEPT: Duration = Duration::from_secs(30);
/// A JWKS larger than this is refused (Cognito's is about 1 KB).
const MAX_BYTES: usize = 256 * 1024;
/// One fetch's whole time.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the keys come from, and the fetcher's state.
pub struct Remote {
    url: Url,
    client: Client,
    loaded: AtomicBool,
    /// Wakes the fetcher for an unknown `kid`.
    wake: Arc<Notify>,
    /// When an unknown `kid` last woke the fetcher.
    last_refetch: Mutex<Option<Instant>>,
    /// Fetches made (for `/metrics` and tests).
    fetches: AtomicU64,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.url)
            .field("loaded", &self.loaded())
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// A source at `url`: HTTPS, or plain HTTP to a loopback address only (tests, a sidecar).
    pub fn new(url: &str, client: Client) -> Result<Self, String> {
        let parsed = Url::parse(url)?;
        let loopback = parsed.host == "localhost"
            || parsed
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !parsed.tls && !loopback {
            return Err(format!(
                "{url}: the keys must come over HTTPS (plain HTTP only to a loopback address)"
            ));
        }
        Ok(Self {
            url: parsed,
            client,
            loaded: AtomicBool::new(false),
            wake: Arc::new(Notify::new()),
            last_refetch: Mutex::new(None),
            fetches: AtomicU64::new(0),
        })
    }

    /// Whether keys have arrived at least once.
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::Relaxed)
    }

    /// How many fetches were made.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// A token named an unknown `kid`: wakes the fetcher unless it was woken for one within
    /// [`REFETCH_EVERY`].
    pub(crate) fn ask_refetch(&self) {
        let now = Instant::now();
        let mut last = self.last_refetch.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|at| now.duration_since(at) >= REFETCH_EVERY) {
            *last = Some(now);
            self.wake.notify_one();
        }
    }

    /// One fetch: the keys and how long they may be kept.
    async fn fetch(&self) -> Result<(Keys, Option<Duration>), String> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let path = if self.url.path.is_empty() {
            "/".to_owned()
        } else {
            self.url.path.clone()
        };
        let fetch = async {
            let mut response = self
                .client
                .send(
                    "GET",
                    &self.url,
                    &path,
                    &[
                        ("accept", "application/json".into()),
                        ("connection", "close".into()),
                    ],
                    Vec::new(),
                )
                .await
                .map_err(|e| e.to_string())?;
            if response.status != 200 {
                return Err(format!("HTTP {}", response.status));
            }
            let max_age = response
                .headers
                .get("cache-control")
                .and_then(|v| v.to_str().ok())
                .and_then(max_age);
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_BYTES {
                    return Err(format!("the JWKS is larger than {MAX_BYTES} bytes"));
                }
            }
            let text = String::from_utf8(body).map_err(|_| "the JWKS is not UTF-8".to_owned())?;
            let keys = parse_jwks(&text)?;
            if keys.is_empty() {
                return Err("the JWKS has no usable key".into());
            }
            Ok((keys, max_age))
        };
        tokio::time::timeout(FETCH_TIMEOUT, fetch)
            .await
            .map_err(|_| format!("no answer within {FETCH_TIMEOUT:?}"))?
    }
}

/// `max-age=N` of a `Cache-Control` value.
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|part| {
        let (name, n) = part.trim().split_once('=')?;
        name.eq_ignore_ascii_case("max-age")
            .then(|| n.trim().parse().ok())
            .flatten()
            .map(Duration::from_secs)
    })
}

/// How long to wait after a fetch.
fn next_wait(outcome: &Result<Option<Duration>, ()>, loaded: bool) -> Duration {
    match outcome {
        Ok(max_age) => max_age
            .unwrap_or(REFRESH_DEFAULT)
            .clamp(REFRESH_MIN, REFRESH_MAX),
        Err(()) if loaded => RETRY_KEPT,
        Err(()) => RETRY_EMPTY,
    }
}

/// Keeps `verifier`'s URL keys fresh until shutdown (or until the verifier is gone).
pub async fn keep_fresh(verifier: Weak<Verifier>, mut shutdown: watch::Receiver<bool>) {
    let Some(wake) = verifier
        .upgrade()
        .and_then(|v| v.remote.as_ref().map(|r| r.wake.clone()))
    else {
        return;
    };
    loop {
        let Some(v) = verifier.upgrade() else { return };
        let Some(remote) = v.remote.as_ref() else {
            return;
        };
        let outcome = match remote.fetch().await {
            Ok((keys, max_age)) => {
                let kids = keys.len();
                v.install(keys);
                if !remote.loaded.swap(true, Ordering::Relaxed) {
                    tracing::info!(kids, "JWT keys loaded from --jwt-jwks-url");
                } else {
                    tracing::debug!(kids, "JWT keys refreshed");
                }
                Ok(max_age)
            }
            Err(why) => {
                tracing::warn!(
                    error = %why,
                    kept = remote.loaded(),
                    "fetching the JWT keys failed; the last good keys stay in use"
                );
                Err(())
            }
        };
        let wait = next_wait(&outcome, remote.loaded());
        drop(v);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = wake.notified() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_follows_max_age_within_bounds_and_failures_retry_sooner_without_keys() {
        assert_eq!(
            max_age("public, max-age=3600"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            max_age("Max-Age = 120"),
            None,
            "spaces around = are not HTTP"
        );
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(
            next_wait(&Ok(Some(Duration::from_secs(5))), true),
            REFRESH_MIN
        );
        assert_eq!(
            next_wait(&Ok(Some(Duration::from_secs(86_400))), true),
            REFRESH_MAX
        );
        assert_eq!(next_wait(&Ok(None), true), REFRESH_DEFAULT);
        assert_eq!(next_wait(&Err(()), false), RETRY_EMPTY);
        assert_eq!(next_wait(&Err(()), true), RETRY_KEPT);
    }

    #[test]
    fn keys_come_over_https_or_from_loopback_only() {
        let client = || Client::new(None, Duration::from_secs(1)).unwrap();
        assert!(
            Remote::new(
                "https://cognito-idp.ap-northeast-1.amazonaws.com/p/.well-known/jwks.json",
                client()
            )
            .is_ok()
        );
        assert!(Remote::new("http://127.0.0.1:9000/jwks.json", client()).is_ok());
        assert!(Remote::new("http://keys.example/jwks.json", client()).is_err());
    }

    #[test]
    fn a_flood_of_unknown_kids_wakes_the_fetcher_once_per_window() {
        let remote = Remote::new(
            "http://127.0.0.1:9/jwks.json",
            Client::new(None, Duration::from_secs(1)).unwrap(),
        )
        .unwrap();
        for _ in 0..1000 {
            remote.ask_refetch();
        }
        let first = *remote.last_refetch.lock().unwrap();
        assert!(first.is_some());
        remote.ask_refetch();
        assert_eq!(
            *remote.last_refetch.lock().unwrap(),
            first,
            "no second wake in the window"
        );
    }
}
