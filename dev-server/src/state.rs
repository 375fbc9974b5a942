//! [`AppState`], what every handler gets: the configuration, [`Common`] (what every instance
//! of a deployment shares) and [`Local`] (what this instance holds). It sits at the bottom of
//! the crate: it names the services' types and imports nothing that takes it.

use std::{io, sync::Arc};

use tokio::sync::watch;

use crate::{
    assistant::{self, Assistant},
    auth::Signer,
    bus::{self, EventBus, Hub, HubLimits},
    config::Config,
    directory, ids, jwt, limits,
    metrics::Metrics,
    shared::{self, Shared},
    store::{PostgresStore, SqliteStore, Store, StoreError, StoreResult},
    streams::{self, StreamCounts},
    tasks,
};

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
    /// registry: in this process alone, in Redis across instances (`--redis-url`).
    pub shared: Arc<dyn Shared>,
    /// The engine that answers in assistant conversations (`--assistant`).
    pub assistant: Arc<dyn Assistant>,
}

/// What this instance holds for itself.
#[derive(Clone)]
pub struct Local {
    /// This instance's id (`--instance-id`, else random): in every log line and request id,
    /// and in `/metrics`.
    pub instance: Arc<str>,
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
    /// Set at SIGTERM, before anything closes: readiness answers 503 from then on.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
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
    /// How often streams send `ping` (15 s; tests shorten it).
    pub ping_every: std::time::Duration,
    /// How long after its commit a message not yet announced is announced by the outbox (5 s;
    /// tests shorten it).
    pub outbox_after: std::time::Duration,
    /// Becomes `true` when the server shuts down: streams end so the shutdown completes.
    pub shutdown: watch::Receiver<bool>,
    shutdown_tx: Arc<watch::Sender<bool>>,
    /// The directory's tenants whose conversations exist already (once per process).
    pub tenants: Arc<directory::Tenants>,
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
        // One Redis client (its TLS settings) for the bus and the shared state.
        let redis = match &config.redis_url {
            Some(url) => Some(
                bus::redis::client(url, config.redis_ca_cert.as_deref())
                    .map_err(|e| StoreError::Unavailable(format!("--redis-url: {e}")))?,
            ),
            None => None,
        };
        let bus: Arc<dyn EventBus> = match &redis {
            Some(client) => Arc::new(
                bus::RedisBus::connect_client(
                    client.clone(),
                    &config.redis_prefix,
                    store.clone(),
                    limits,
                )
                .await
                .map_err(|e| StoreError::Unavailable(format!("--redis-url: {e}")))?,
            ),
            None => Arc::new(Hub::new(store.next_epoch().await?, limits)),
        };
        let shared: Arc<dyn Shared> = match redis {
            Some(client) => Arc::new(
                shared::RedisShared::connect_client(client, &config.redis_prefix)
                    .await
                    .map_err(|e| StoreError::Unavailable(format!("--redis-url: {e}")))?,
            ),
            None => Arc::new(shared::Local::default()),
        };
        // Alone, a task still marked running was this process's before it stopped; with
        // others, it may be running elsewhere: leases tell (the task reaper).
        if !shared.spans_instances() {
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
        if let Some(jwt) = jwt.as_ref().filter(|j| j.remote().is_some()) {
            tokio::spawn(jwt::jwks::keep_fresh(Arc::downgrade(jwt), shutdown.clone()));
        }
        let assistant_step = config.assistant_speed.step();
        if config.load_users > 0 || config.load_support > 0 {
            directory::load::enable(config.load_users, config.load_support);
            tracing::info!(
                farmers = config.load_users,
                support = config.load_support,
                "load-test users enabled"
            );
        }
        let metrics = Arc::new(Metrics::default());
        let assistant = assistant::from_config(&config.model, assistant_step, metrics.clone())
            .map_err(|e| StoreError::Failed(format!("--assistant: {e}")))?;
        let sign_in_by_client = limits::RateLimiter::per_minute(config.sign_in_per_minute);
        let sign_in_by_user = limits::RateLimiter::per_minute(config.sign_in_per_user_per_minute);
        Ok(Self {
            local: Local {
                instance: config
                    .instance_id
                    .clone()
                    .unwrap_or_else(|| ids::random_id()[..8].to_owned())
                    .into(),
                stream_counts: Arc::new(StreamCounts::default()),
                metrics,
                tasks: Arc::new(tasks::Tasks::default()),
                send_limit: Arc::new(limits::RateLimiter::new(30, 5.0)),
                signal_limit: Arc::new(limits::RateLimiter::new(20, 2.0)),
                sign_in_by_client: Arc::new(sign_in_by_client),
                sign_in_by_user: Arc::new(sign_in_by_user),
                draining: Arc::default(),
            },
            common: Common {
                store,
                bus,
                signer: Arc::new(signer),
                jwt,
                shared,
                assistant,
            },
            config: Arc::new(config),
            purge_every: std::time::Duration::from_secs(60),
            ping_every: streams::PING_EVERY,
            outbox_after: std::time::Duration::from_secs(5),
            shutdown,
            shutdown_tx: Arc::new(shutdown_tx),
            tenants: Arc::default(),
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
