//! # farm-chat-dev-server
//!
//! The backend the widget talks to in development and in every browser test. It must behave
//! like a real server, so the pieces are the ones a production service has:
//!
//! - [`config`]: the command line (each flag also an environment variable).
//! - [`error`]: [`ApiError`], the one error type; every failure answers
//!   `{"error":{"code","message"}}` and 5xx details go to the log, not the client.
//! - [`routes`]: the router of `/api`; [`session`], [`chat`] and [`stream`] its handlers.
//! - [`auth`]: signed sessions (cookie or Bearer), CSRF, stream tickets.
//! - [`bus`]: the [`EventBus`](bus::EventBus) that owns event ids, keeps the resume log and
//!   fans events out: [`hub`] in-process, [`bus::RedisBus`] across instances (`--redis-url`).
//! - [`assistant`]: intent routing and the task plans, computed from the demo [`herd`];
//!   [`tasks`] runs them (pacing, snapshots hot and durable, cancel, `/api/tasks`).
//! - [`store`]: the durable, async [`Store`](store::Store): SQLite (a file, or `:memory:`) or
//!   PostgreSQL (`--database-url`, shared by several instances).
//! - [`shared`]: what several instances keep in Redis besides events: stream tickets,
//!   rate-limit buckets, task leases, the hot task cache, the stream registry.
//! - [`directory`]: the demo tenants and users. [`validate`]: input rules.
//! - [`cors`]: the cross-origin policy. [`metrics`]: `GET /metrics`. [`openapi`]: the API's
//!   description. [`limits`]: per-user send rate. [`report`]: the shipment report PDF.
//!
//! - [`serve`]: the accept loop and connections (timeouts, connection caps, running out of
//!   file descriptors). [`security`]: response headers (CSP, nosniff) and who may read
//!   `/metrics`.
//! - [`asyncapi`]: `GET /api/asyncapi.json`, the stream's events described (schemas generated
//!   from the protocol types, like [`openapi`]'s).
//! - [`assets`]: the built widget as static files (precompressed variants, caching) and the
//!   compression of API answers.
//!
//! [`AppState`] is [`Common`] (what every instance of a deployment shares) plus [`Local`]
//! (what this one holds). [`app`] builds the whole [`Router`] (API + the built widget as static
//! files); [`run`] serves it until a shutdown future resolves, draining open streams so
//! shutdown completes, and runs the background loops (session purge, outbox, signals, task
//! leases, the stream registry).
//! `main.rs` only parses, binds and calls these, so tests drive exactly what production runs.

pub mod assets;
pub mod assistant;
pub mod asyncapi;
pub mod auth;
pub mod bus;
pub mod chat;
pub mod config;
pub mod cors;
pub mod directory;
pub mod error;
pub mod herd;
pub mod hub;
pub mod jwt;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod report;
pub mod routes;
pub mod security;
pub mod serve;
pub mod session;
pub mod shared;
pub mod store;
pub mod stream;
pub mod tasks;
pub mod validate;

use std::{
    future::Future,
    io,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{Router, extract::DefaultBodyLimit, http::Request};
use tokio::{net::TcpListener, sync::watch};
use tower_http::trace::TraceLayer;

pub use config::Config;
pub use error::ApiError;

use crate::{
    auth::{Signer, Tickets},
    bus::EventBus,
    hub::{Hub, HubLimits},
    metrics::Metrics,
    store::{PostgresStore, SqliteStore, Store, StoreError, StoreResult},
    stream::StreamCounts,
};

/// The largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every instance of a deployment shares, wherever it lives: durable storage, the event
/// bus, the session signing key, the platform's JWT keys and (several instances) Redis's
/// short-lived state. Alone, the bus is in-process and there is no Redis.
#[derive(Clone)]
pub struct Common {
    /// Durable storage.
    pub store: Arc<dyn Store>,
    /// Event ids, the resume log and fan-out (in-process, or Redis with `--redis-url`).
    pub bus: Arc<dyn EventBus>,
    /// Session token signing (its key is in the store: the same on every instance).
    pub signer: Arc<Signer>,
    /// The platform's JWTs (`--jwt-jwks`, `--jwt-secret`), when configured.
    pub jwt: Option<Arc<jwt::Verifier>>,
    /// Stream tickets, rate-limit buckets, task leases, the hot task cache and the stream
    /// registry in Redis (`--redis-url`).
    pub redis: Option<Arc<shared::Shared>>,
}

/// What this instance holds for itself.
#[derive(Clone)]
pub struct Local {
    /// This instance's id (`--instance-id`, else random): in every log line and request id,
    /// and in `/metrics`.
    pub instance: Arc<str>,
    /// Stream tickets (alone; several instances keep them in Redis).
    pub tickets: Arc<Tickets>,
    /// Open streams per user, and the slots that close them.
    pub stream_counts: Arc<StreamCounts>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The tasks this instance runs: their hot snapshots and runners.
    pub tasks: Arc<tasks::Tasks>,
    /// Sends per user: a burst of 30, then 5 per second (across instances too, with Redis).
    pub send_limit: Arc<limits::RateLimiter>,
    /// Typing and read calls per user: a burst of 20, then 2 per second.
    pub signal_limit: Arc<limits::RateLimiter>,
    /// Sign-ins per client address (`--sign-in-per-minute`).
    pub sign_in_by_client: Arc<limits::RateLimiter<std::net::IpAddr>>,
    /// Sign-ins per user id (`--sign-in-per-user-per-minute`).
    pub sign_in_by_user: Arc<limits::RateLimiter<String>>,
}

/// What every handler gets: the configuration, what instances share, what this one holds,
/// and a few timings tests shorten.
#[derive(Clone)]
pub struct AppState {
    /// The configuration the server was started with.
    pub config: Arc<Config>,
    /// Shared by every instance.
    pub common: Common,
    /// This instance's own.
    pub local: Local,
    /// How often expired sessions are deleted and aged in-memory events and tasks let go.
    pub purge_every: std::time::Duration,
    /// The pause before each assistant step (`--assistant-speed`; tests may change it).
    pub assistant_step: std::time::Duration,
    /// How often streams send `ping` (15 s; tests shorten it).
    pub ping_every: std::time::Duration,
    /// How long after its commit a message not yet announced is announced by the outbox (5 s;
    /// tests shorten it).
    pub outbox_after: std::time::Duration,
    /// Becomes `true` when the server shuts down: streams end so the shutdown completes.
    pub shutdown: watch::Receiver<bool>,
    shutdown_tx: Arc<watch::Sender<bool>>,
    /// Tenants whose conversations exist already (created once per process, on first use).
    pub ensured_tenants: Arc<std::sync::Mutex<std::collections::HashSet<&'static str>>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .field("instance", &self.local.instance)
            .field("epoch", &self.common.bus.epoch())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State for `config`, opening the store it names (`--database-url`, else `--db`).
    pub async fn new(config: Config) -> StoreResult<Self> {
        let store: Arc<dyn Store> = match &config.database_url {
            Some(url) => Arc::new(PostgresStore::connect(url).await?),
            None => Arc::new(SqliteStore::open(&config.db)?),
        };
        Self::with_store(config, store, HubLimits::default()).await
    }

    /// State over an existing store (tests: restarts on the same store, small limits).
    pub async fn with_store(
        config: Config,
        store: Arc<dyn Store>,
        limits: HubLimits,
    ) -> StoreResult<Self> {
        let bus: Arc<dyn EventBus> = match &config.redis_url {
            Some(url) => Arc::new(
                bus::RedisBus::connect(url, &config.redis_prefix, store.clone(), limits)
                    .await
                    .map_err(|e| StoreError::Unavailable(format!("--redis-url: {e}")))?,
            ),
            None => Arc::new(Hub::new(store.next_epoch().await?, limits)),
        };
        let shared = match &config.redis_url {
            Some(url) => Some(Arc::new(
                shared::Shared::connect(url, &config.redis_prefix)
                    .await
                    .map_err(|e| StoreError::Unavailable(format!("--redis-url: {e}")))?,
            )),
            None => None,
        };
        // Alone, a task still marked running was this process's before it stopped; with
        // others, it may be running elsewhere: leases tell ([`tasks::reap_orphans`]).
        if shared.is_none() {
            let interrupted = tasks::interrupt_orphans(&*store).await?;
            if interrupted > 0 {
                tracing::warn!(
                    interrupted,
                    "tasks left running by the previous process marked failed"
                );
            }
        }
        let signer = Signer::new(store.signing_key().await?);
        let jwt = config
            .jwt_verifier()
            .map_err(|e| StoreError::Failed(format!("JWT configuration: {e}")))?
            .map(Arc::new);
        let (shutdown_tx, shutdown) = watch::channel(false);
        let assistant_step = config.assistant_speed.step();
        if config.load_users > 0 || config.load_support > 0 {
            directory::load::enable(config.load_users, config.load_support);
            tracing::info!(
                farmers = config.load_users,
                support = config.load_support,
                "load-test users enabled"
            );
        }
        let sign_in_by_client = limits::RateLimiter::per_minute(config.sign_in_per_minute);
        let sign_in_by_user = limits::RateLimiter::per_minute(config.sign_in_per_user_per_minute);
        Ok(Self {
            local: Local {
                instance: config
                    .instance_id
                    .clone()
                    .unwrap_or_else(|| auth::random_id()[..8].to_owned())
                    .into(),
                tickets: Arc::new(Tickets::default()),
                stream_counts: Arc::new(StreamCounts::default()),
                metrics: Arc::new(Metrics::default()),
                tasks: Arc::new(tasks::Tasks::default()),
                send_limit: Arc::new(limits::RateLimiter::new(30, 5.0)),
                signal_limit: Arc::new(limits::RateLimiter::new(20, 2.0)),
                sign_in_by_client: Arc::new(sign_in_by_client),
                sign_in_by_user: Arc::new(sign_in_by_user),
            },
            common: Common {
                store,
                bus,
                signer: Arc::new(signer),
                jwt,
                redis: shared,
            },
            config: Arc::new(config),
            assistant_step,
            purge_every: std::time::Duration::from_secs(60),
            ping_every: stream::PING_EVERY,
            outbox_after: std::time::Duration::from_secs(5),
            shutdown,
            shutdown_tx: Arc::new(shutdown_tx),
            ensured_tenants: Arc::default(),
        })
    }

    /// Ends every open stream (graceful shutdown).
    pub fn begin_shutdown(&self) {
        let _ = self.shutdown_tx.send(true);
    }
}

impl From<StoreError> for io::Error {
    fn from(e: StoreError) -> Self {
        io::Error::other(e.to_string())
    }
}

/// Now, as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);

/// The request's id: the caller's `X-Request-Id` when it gives a sane one (a balancer or the
/// platform tracing a request across services), else `<instance>-<n>`, unique across instances.
fn request_id(instance: &str, req: &Request<axum::body::Body>) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b))
        })
        .map_or_else(
            || format!("{instance}-{}", REQUEST_IDS.fetch_add(1, Ordering::Relaxed)),
            str::to_owned,
        )
}

/// Gives every request its id (see [`request_id`]) in an `X-Request-Id` header, which the
/// trace span logs and the answer carries back.
async fn tag_request(
    axum::extract::State(instance): axum::extract::State<Arc<str>>,
    mut req: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let id = request_id(&instance, &req);
    let value = axum::http::HeaderValue::from_str(&id).ok();
    if let Some(value) = &value {
        req.headers_mut().insert("x-request-id", value.clone());
    }
    let mut response = next.run(req).await;
    if let Some(value) = value {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The whole application: `/api/*` plus the built widget (`--static-dir`) at `/`.
pub fn app(state: AppState) -> Router {
    let cors = cors::layer(&state.config);
    let static_files = assets::static_files(&state);
    // The span names the path but never the query: stream tickets must not reach the logs.
    let instance = state.local.instance.clone();
    let trace = TraceLayer::new_for_http().make_span_with(move |req: &Request<_>| {
        tracing::info_span!(
            "request",
            instance = %instance,
            requestId = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
            method = %req.method(),
            path = %req.uri().path(),
            userId = tracing::field::Empty,
            conversationId = tracing::field::Empty,
        )
    });
    Router::new()
        .nest(
            "/api",
            routes::streams(state.clone())
                .merge(routes::api(state.clone()).layer(assets::api_compression())),
        )
        .route(
            "/metrics",
            axum::routing::get(routes::metrics).with_state(state.clone()),
        )
        .merge(static_files)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(cors)
        .layer(axum::middleware::from_fn_with_state(
            security::Headers::new(&state.config),
            security::headers,
        ))
        .layer(trace)
        .layer(axum::middleware::from_fn_with_state(
            state.local.instance.clone(),
            tag_request,
        ))
}

/// Serves `state`'s app on `listener` until `shutdown` resolves; then open streams end and
/// the requests in flight finish. Also serves `/metrics` on `--metrics-addr` when given, and
/// deletes expired sessions every [`AppState::purge_every`].
pub async fn run(
    listener: TcpListener,
    mut state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let bound = listener.local_addr()?;
    if state.config.public_origins.is_empty() {
        if bound.ip().is_unspecified() {
            tracing::warn!(
                "listening on every address without --public-origin: cookie requests from \
                 this server's own pages are refused unless their origin is given"
            );
        }
        state.config = Arc::new((*state.config).clone().with_own_origin(bound));
    }
    let metrics_listener = match state.config.metrics_addr {
        Some(addr) => {
            let listener = TcpListener::bind(addr).await?;
            tracing::info!(addr = %listener.local_addr()?, "metrics listening");
            Some(listener)
        }
        None => None,
    };
    let limits = state.config.conn_limits();
    let router = app(state.clone());
    let stop = state.shutdown.clone();
    let purge = tokio::spawn(session::purge_expired(state.clone()));
    let signals = tokio::spawn(tasks::follow_signals(state.clone()));
    let outbox = tokio::spawn(chat::announce_stragglers(state.clone()));
    let registry = tokio::spawn(stream::follow_signals(state.clone()));
    let reaper = state
        .common
        .redis
        .clone()
        .map(|shared| tokio::spawn(tasks::reap_orphans(state.clone(), shared)));
    let metrics = metrics_listener.map(|listener| {
        let router = routes::metrics_only(state.clone());
        tokio::spawn(serve::serve(listener, router, limits, stop.clone()))
    });
    let trigger = state.clone();
    tokio::spawn(async move {
        shutdown.await;
        trigger.begin_shutdown();
    });
    let served = serve::serve(listener, router, limits, stop).await;
    purge.abort();
    signals.abort();
    outbox.abort();
    registry.abort();
    if let Some(reaper) = reaper {
        reaper.abort();
    }
    if let Some(metrics) = metrics {
        let _ = metrics.await;
    }
    served
}
