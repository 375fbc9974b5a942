//! The command line. The flag names are a contract: scripts, the test command and the docs use
//! them, so each is also readable from the environment variable named in `--help`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum};

/// The `--metrics-token` of [`Config::for_tests`].
pub const TEST_METRICS_TOKEN: &str = "test-metrics-token";

/// How the server writes its log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (colours only on a terminal).
    #[default]
    Text,
    /// One JSON object per line (CloudWatch Logs Insights, any log pipeline): every line the
    /// server writes, the listening banner and start-up errors included.
    Json,
}

/// Which engine answers in assistant conversations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    /// The built-in farm planner: no model, no keys, no network (demos, tests, offline).
    #[default]
    Farm,
    /// Any OpenAI-compatible Chat Completions endpoint (OpenAI, vLLM, Ollama, llama.cpp,
    /// LiteLLM) with streaming and tool calls.
    Openai,
    /// Amazon Bedrock's ConverseStream (Claude and the other Bedrock models).
    Bedrock,
}

/// The assistant's engine and, for a model, how to reach it and how far to trust it.
#[derive(Clone, Debug, clap::Args)]
pub struct ModelConfig {
    /// The engine: `farm` (built in), `openai` (an OpenAI-compatible endpoint) or `bedrock`.
    #[arg(long = "assistant", env = "FARM_CHAT_ASSISTANT", value_enum, default_value_t = Engine::Farm)]
    pub engine: Engine,

    /// The OpenAI-compatible API's base, ending in `/v1` (requests go to
    /// `{base}/chat/completions`), e.g. `https://api.openai.com/v1` or
    /// `http://127.0.0.1:11434/v1` (Ollama). The key comes from the environment only:
    /// `FARM_CHAT_MODEL_API_KEY`, sent as `Authorization: Bearer`.
    #[arg(long, env = "FARM_CHAT_MODEL_BASE_URL")]
    pub model_base_url: Option<String>,

    /// The model: a name for `openai` (`gpt-4o-mini`, `llama3.1`), a model or inference
    /// profile id for `bedrock` (`anthropic.claude-3-5-haiku-20241022-v1:0`).
    #[arg(long, env = "FARM_CHAT_MODEL")]
    pub model: Option<String>,

    /// Bedrock's runtime endpoint, for VPC endpoints and tests (default:
    /// `https://bedrock-runtime.{AWS_REGION}.amazonaws.com`).
    #[arg(long, env = "FARM_CHAT_BEDROCK_ENDPOINT_URL")]
    pub bedrock_endpoint_url: Option<String>,

    /// A PEM file of extra CA certificates to trust for the model endpoint (a private CA),
    /// beside the built-in public roots.
    #[arg(long, env = "FARM_CHAT_MODEL_CA_CERT")]
    pub model_ca_cert: Option<PathBuf>,

    /// At most one `task.text` event per answer part this often: the model's small deltas
    /// are coalesced.
    #[arg(long, env = "FARM_CHAT_MODEL_FLUSH_INTERVAL", default_value = "50ms", value_parser = humantime::parse_duration)]
    pub model_flush_interval: Duration,

    /// The longest wait for the model's next chunk (and for its first) before the answer
    /// fails with `model_timeout`.
    #[arg(long, env = "FARM_CHAT_MODEL_IDLE_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub model_idle_timeout: Duration,

    /// The longest wait for a connection to the model's endpoint.
    #[arg(long, env = "FARM_CHAT_MODEL_CONNECT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub model_connect_timeout: Duration,

    /// The longest a whole answer may take, tool rounds included.
    #[arg(long, env = "FARM_CHAT_MODEL_ANSWER_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    pub model_answer_timeout: Duration,

    /// Tool rounds the model may take in one answer; then it must answer with what it has.
    #[arg(long, env = "FARM_CHAT_MODEL_MAX_STEPS", default_value_t = 4)]
    pub model_max_steps: u32,

    /// Model answers one user may have running at once (on this instance); a send beyond
    /// gets 429.
    #[arg(
        long,
        env = "FARM_CHAT_MODEL_MAX_CONCURRENT_PER_USER",
        default_value_t = 5
    )]
    pub model_max_concurrent_per_user: u32,

    /// A file whose text replaces the built-in system prompt (`{date}`, `{farm}` and
    /// `{language}` are filled in).
    #[arg(long, env = "FARM_CHAT_MODEL_SYSTEM_PROMPT")]
    pub model_system_prompt: Option<PathBuf>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            engine: Engine::Farm,
            model_base_url: None,
            model: None,
            bedrock_endpoint_url: None,
            model_ca_cert: None,
            model_flush_interval: Duration::from_millis(50),
            model_idle_timeout: Duration::from_secs(30),
            model_connect_timeout: Duration::from_secs(10),
            model_answer_timeout: Duration::from_secs(300),
            model_max_steps: 4,
            model_max_concurrent_per_user: 5,
            model_system_prompt: None,
        }
    }
}

/// How fast the assistant's tasks play.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum AssistantSpeed {
    /// Human pace: about 0.7 s between steps, so progress is visible.
    #[default]
    Realtime,
    /// A few milliseconds between steps (tests).
    Fast,
}

impl AssistantSpeed {
    /// The pause before each step.
    pub fn step(self) -> std::time::Duration {
        match self {
            Self::Realtime => std::time::Duration::from_millis(700),
            Self::Fast => std::time::Duration::from_millis(5),
        }
    }
}

/// farm-chat dev-server: the chat backend and the built widget on one local port.
#[derive(Clone, Debug, Parser)]
#[command(name = "farm-chat-dev-server", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on. Port 0 picks a free port (the chosen URL is printed).
    #[arg(long, env = "FARM_CHAT_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// The SQLite database file (created on first run); `:memory:` keeps everything in memory
    /// (lost on exit; for tests).
    #[arg(long, env = "FARM_CHAT_DB", default_value = "farm-chat-dev.sqlite")]
    pub db: PathBuf,

    /// PostgreSQL instead of SQLite, for several instances sharing one database:
    /// `postgres://user:password@host:5432/farmchat`, or `postgres:///farmchat?host=/run/pg`
    /// for a Unix socket. The schema is created and migrated at start-up. `--db` is then unused.
    ///
    /// TLS as libpq's `sslmode` says (`disable`, `prefer` — the default —, `require`,
    /// `verify-ca`, `verify-full`), with `sslrootcert=FILE` (RDS's CA bundle) or
    /// `sslrootcert=system`: `postgres://farm:pw@db.example:5432/chat?sslmode=verify-full&sslrootcert=/etc/rds/global-bundle.pem`.
    #[arg(long, env = "FARM_CHAT_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Redis for the event bus, when several instances share the work: `redis://host:6379/0`,
    /// `rediss://user:password@host:6379` over TLS (ElastiCache with in-transit encryption
    /// and RBAC), or `redis+unix:///path/r.sock?db=0`. Without it, events stay in this
    /// process.
    #[arg(long, env = "FARM_CHAT_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// A PEM file of the CA that signed Redis's certificate (a private CA), for a `rediss://`
    /// URL; without it the public web's roots are trusted (ElastiCache's certificates).
    #[arg(long, env = "FARM_CHAT_REDIS_CA_CERT")]
    pub redis_ca_cert: Option<PathBuf>,

    /// The log's format: `text` (lines for people) or `json` (one object per line).
    #[arg(long, env = "FARM_CHAT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// This instance's name in logs, request ids and `/metrics` (default: random).
    #[arg(long, env = "FARM_CHAT_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// The prefix of every Redis key and channel this deployment uses, so several (staging,
    /// production) can share one Redis.
    #[arg(long, env = "FARM_CHAT_REDIS_PREFIX", default_value = "fc")]
    pub redis_prefix: String,

    /// Directory of the built widget (what `trunk build` writes), served at `/`.
    #[arg(long, env = "FARM_CHAT_STATIC_DIR", default_value = "dist")]
    pub static_dir: PathBuf,

    /// How fast assistant tasks play: `realtime` (human pace) or `fast` (tests).
    #[arg(long, env = "FARM_CHAT_ASSISTANT_SPEED", value_enum, default_value_t = AssistantSpeed::Realtime)]
    pub assistant_speed: AssistantSpeed,

    /// The assistant's engine and model.
    #[command(flatten)]
    pub model: ModelConfig,

    /// An origin allowed to call the API cross-origin with credentials (repeatable;
    /// comma-separated in the environment variable), e.g. `https://farm.example.jp`.
    #[arg(
        long = "allow-origin",
        env = "FARM_CHAT_ALLOW_ORIGIN",
        value_delimiter = ','
    )]
    pub allow_origins: Vec<String>,

    /// Test mode: any `http://127.0.0.1:*` / `http://localhost:*` origin is allowed (browser
    /// tests' pages come from a random loopback port), and the test-only switch
    /// `POST /api/test/drop-streams` exists. Off by default.
    #[arg(long, env = "FARM_CHAT_TEST_MODE")]
    pub test_mode: bool,

    /// Load-test farmers `u-load-0` … `u-load-{N-1}` who can sign in (each alone on a farm).
    /// For benchmarks (`cargo xtask bench`). Default 0: none.
    #[arg(long, env = "FARM_CHAT_LOAD_USERS", default_value_t = 0)]
    pub load_users: u32,

    /// Load-test support staff `u-load-support-0` … `u-load-support-{K-1}` on u-load-0's farm:
    /// each message in `c-u-load-0-support` reaches all of them (the fan-out benchmark).
    /// Default 0: none.
    #[arg(long, env = "FARM_CHAT_LOAD_SUPPORT", default_value_t = 0)]
    pub load_support: u32,

    /// The origins this server's own pages are served from (repeatable; comma-separated in the
    /// environment variable), e.g. `https://chat.example.jp`: cookie requests from them pass
    /// the CSRF check. Default: the listen address (`http://127.0.0.1:3000`, and
    /// `http://localhost:3000` for a loopback address). The `Host` header is never trusted.
    #[arg(
        long = "public-origin",
        env = "FARM_CHAT_PUBLIC_ORIGIN",
        value_delimiter = ','
    )]
    pub public_origins: Vec<String>,

    /// Who may frame the HTML pages (the CSP `frame-ancestors` value), e.g.
    /// `'self' https://farm.example.jp`.
    #[arg(long, env = "FARM_CHAT_FRAME_ANCESTORS", default_value = "'self'")]
    pub frame_ancestors: String,

    /// The whole Content-Security-Policy of the HTML pages, replacing the default (which lets
    /// the widget run from this origin: `script-src 'self' 'wasm-unsafe-eval'`, `connect-src
    /// 'self'`, `frame-ancestors` from `--frame-ancestors`, …). For pages that load the widget
    /// or call an API on another origin.
    #[arg(long, env = "FARM_CHAT_CONTENT_SECURITY_POLICY")]
    pub content_security_policy: Option<String>,

    /// Serve `GET /metrics` on this address only (e.g. `127.0.0.1:9464`), not on the API port.
    /// Without it, `/metrics` on the API port answers only holders of `--metrics-token` (a
    /// loopback address proves nothing behind a reverse proxy on the same host), and without
    /// either flag `/metrics` is not served.
    #[arg(long, env = "FARM_CHAT_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// A Bearer token that may read `/metrics` on the API port.
    #[arg(long, env = "FARM_CHAT_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Time from a request's first byte to its complete head before the connection is closed.
    #[arg(long, env = "FARM_CHAT_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,

    /// Time from a request's head to the end of its body before it is answered 408.
    #[arg(long, env = "FARM_CHAT_BODY_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub body_timeout: Duration,

    /// A keep-alive connection with no request in flight is closed after this long (open
    /// streams are requests in flight, so they stay).
    #[arg(long, env = "FARM_CHAT_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// On SIGTERM or Ctrl-C the server stops accepting at once, and closes its open streams
    /// at random moments within this window (each with a jittered `retry:`), so their clients
    /// reconnect to the other instances spread out rather than all at once. `0s`: at once.
    #[arg(long, env = "FARM_CHAT_DRAIN_WINDOW", value_parser = humantime::parse_duration, default_value = "10s")]
    pub drain_window: Duration,

    /// On SIGTERM, readiness (`/api/health/ready`) answers 503 at once; the server goes on
    /// accepting and serving for this long before it stops accepting and drains its streams,
    /// so the load balancer's health checks take it out of rotation first (for an ALB about
    /// its interval × unhealthy threshold, e.g. `10s`; on Kubernetes a few seconds, within
    /// `terminationGracePeriodSeconds`).
    #[arg(long, env = "FARM_CHAT_DRAIN_DELAY", value_parser = humantime::parse_duration, default_value = "0s")]
    pub drain_delay: Duration,

    /// Connections the kernel may hold waiting for `accept`. When thousands of clients
    /// reconnect at once (a network blip, a deploy) a short queue drops their SYNs and each
    /// waits a second or more to retry; with a long one they wait only for their turn. The
    /// kernel caps it at `net.core.somaxconn` (a warning says so when that is lower).
    #[arg(long, env = "FARM_CHAT_LISTEN_BACKLOG", default_value_t = 4_096)]
    pub listen_backlog: u32,

    /// Open connections at most; a new one beyond gets a JSON 503. Default: the open-files
    /// limit minus 64.
    #[arg(long, env = "FARM_CHAT_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Open connections from one client address at most (a new one beyond gets a JSON 429).
    #[arg(
        long,
        env = "FARM_CHAT_MAX_CONNECTIONS_PER_CLIENT",
        default_value_t = 256
    )]
    pub max_connections_per_client: usize,

    /// Sign-ins per minute from one client address (429 with `Retry-After` beyond).
    #[arg(long, env = "FARM_CHAT_SIGN_IN_PER_MINUTE", default_value_t = 30)]
    pub sign_in_per_minute: u32,

    /// Sign-ins per minute as one user id.
    #[arg(
        long,
        env = "FARM_CHAT_SIGN_IN_PER_USER_PER_MINUTE",
        default_value_t = 10
    )]
    pub sign_in_per_user_per_minute: u32,

    /// A JWKS file with the platform's public keys (RS256 / ES256, picked by `kid`): its JWTs
    /// are accepted as Bearer tokens, and their users provisioned on first use.
    #[arg(long, env = "FARM_CHAT_JWT_JWKS")]
    pub jwt_jwks: Option<PathBuf>,

    /// The platform's JWKS by URL, e.g. Cognito's
    /// `https://cognito-idp.{region}.amazonaws.com/{userPoolId}/.well-known/jwks.json`
    /// (HTTPS; plain HTTP only to a loopback address). Fetched at start (the instance is not
    /// ready until keys arrive), refreshed periodically (`Cache-Control: max-age`, bounded),
    /// fetched again on a token with an unknown `kid` at most once per 10 s; the last good
    /// keys are kept while the endpoint fails, and no request waits for a fetch. Alongside
    /// `--jwt-jwks`, whose keys stay too.
    #[arg(long, env = "FARM_CHAT_JWT_JWKS_URL")]
    pub jwt_jwks_url: Option<String>,

    /// An HS256 secret (at least 32 bytes) the platform signs JWTs with.
    #[arg(long, env = "FARM_CHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// The `iss` every JWT must carry.
    #[arg(long, env = "FARM_CHAT_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// The audience every JWT must name: its `aud`, or its `client_id` when `token_use` is
    /// `access` (Cognito's access tokens carry no `aud`): the app client id.
    #[arg(long, env = "FARM_CHAT_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// The JWT claim that holds the farm (tenant) id.
    #[arg(long, env = "FARM_CHAT_JWT_TENANT_CLAIM", default_value = "tenant")]
    pub jwt_tenant_claim: String,

    /// The JWT claim that holds the role: `farmer` or `support` (absent: farmer), or an
    /// array of groups (Cognito's `cognito:groups`) that makes support staff when it
    /// contains `--jwt-support-group`.
    #[arg(long, env = "FARM_CHAT_JWT_ROLE_CLAIM", default_value = "role")]
    pub jwt_role_claim: String,

    /// The group (in an array role claim) of support staff.
    #[arg(long, env = "FARM_CHAT_JWT_SUPPORT_GROUP", default_value = "support")]
    pub jwt_support_group: String,

    /// The JWT claim that holds the name the chat shows (absent: the user id).
    #[arg(long, env = "FARM_CHAT_JWT_NAME_CLAIM", default_value = "name")]
    pub jwt_name_claim: String,

    /// Turn off the demo sign-in (`POST /api/session`): only the platform's JWTs sign in.
    #[arg(long, env = "FARM_CHAT_NO_DEMO_LOGIN")]
    pub no_demo_login: bool,
}

impl Config {
    /// The JWT verifier the flags describe, if any JWT flag is given.
    pub fn jwt_verifier(&self) -> Result<Option<crate::jwt::Verifier>, String> {
        if self.jwt_jwks.is_none() && self.jwt_jwks_url.is_none() && self.jwt_secret.is_none() {
            return Ok(None);
        }
        let jwks = match &self.jwt_jwks {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read --jwt-jwks {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let verifier = crate::jwt::Verifier::new(
            jwks.as_deref(),
            self.jwt_jwks_url.is_some(),
            self.jwt_secret.as_deref(),
            self.jwt_issuer.clone(),
            self.jwt_audience.clone(),
            crate::jwt::ClaimNames {
                tenant: self.jwt_tenant_claim.clone(),
                role: self.jwt_role_claim.clone(),
                name: self.jwt_name_claim.clone(),
                support_group: self.jwt_support_group.clone(),
            },
        )?;
        match &self.jwt_jwks_url {
            Some(url) => {
                let client = crate::outbound::Client::new(None, Duration::from_secs(5))?;
                verifier
                    .with_remote(url, client)
                    .map_err(|e| format!("--jwt-jwks-url: {e}"))
                    .map(Some)
            }
            None => Ok(Some(verifier)),
        }
    }

    /// The configuration for tests: port 0, test mode, in-memory store, no static files.
    pub fn for_tests() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            db: PathBuf::from(":memory:"),
            database_url: None,
            redis_url: None,
            redis_ca_cert: None,
            redis_prefix: "fc".into(),
            instance_id: None,
            assistant_speed: AssistantSpeed::Fast,
            model: ModelConfig::default(),
            static_dir: PathBuf::from("/nonexistent/farm-chat-static"),
            allow_origins: Vec::new(),
            test_mode: true,
            load_users: 0,
            load_support: 0,
            public_origins: Vec::new(),
            frame_ancestors: "'self'".into(),
            content_security_policy: None,
            metrics_addr: None,
            metrics_token: Some(TEST_METRICS_TOKEN.into()),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            drain_window: Duration::ZERO,
            drain_delay: Duration::ZERO,
            listen_backlog: 1024,
            max_connections: None,
            max_connections_per_client: 256,
            sign_in_per_minute: 30,
            sign_in_per_user_per_minute: 10,
            jwt_jwks: None,
            jwt_jwks_url: None,
            jwt_secret: None,
            jwt_issuer: None,
            jwt_audience: None,
            jwt_tenant_claim: "tenant".into(),
            jwt_role_claim: "role".into(),
            jwt_support_group: "support".into(),
            jwt_name_claim: "name".into(),
            no_demo_login: false,
            log_format: LogFormat::Text,
        }
    }

    /// The store for logs and errors: the SQLite path, or the PostgreSQL URL without its
    /// password.
    pub fn store_name(&self) -> String {
        match &self.database_url {
            Some(url) => redact_password(url),
            None => self.db.display().to_string(),
        }
    }

    /// The connection limits these flags set.
    pub fn conn_limits(&self) -> crate::serve::ConnLimits {
        crate::serve::ConnLimits {
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self
                .max_connections
                .unwrap_or_else(crate::serve::default_max_connections),
            max_per_client: self.max_connections_per_client,
        }
    }

    /// The own origins, resolved against the bound address when none were given.
    pub fn with_own_origin(mut self, bound: SocketAddr) -> Self {
        if self.public_origins.is_empty() {
            self.public_origins.push(format!("http://{bound}"));
            if bound.ip().is_loopback() {
                self.public_origins
                    .push(format!("http://localhost:{}", bound.port()));
            }
        }
        self
    }
}

/// `scheme://user:secret@host/…` → `scheme://user:***@host/…`; anything else unchanged.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let redacted = match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    };
    // libpq also takes the password as a query parameter.
    match redacted.split_once('?') {
        Some((base, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some(("password", _)) => "password=***".to_owned(),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{base}?{}", query.join("&"))
        }
        None => redacted,
    }
}

#[cfg(test)]
mod tests {
    use super::redact_password;

    #[test]
    fn a_database_password_never_reaches_the_log() {
        assert_eq!(
            redact_password("postgres://farm:s3cret@db.internal:5432/chat"),
            "postgres://farm:***@db.internal:5432/chat"
        );
        assert_eq!(
            redact_password("postgres:///chat?host=/tmp/pg"),
            "postgres:///chat?host=/tmp/pg"
        );
        assert_eq!(
            redact_password("postgres://farm@db/chat"),
            "postgres://farm@db/chat"
        );
        assert_eq!(
            redact_password("postgres:///chat?host=/tmp/pg&password=s3cret&user=farm"),
            "postgres:///chat?host=/tmp/pg&password=***&user=farm"
        );
    }
}
