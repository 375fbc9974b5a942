//! # farm-chat-dev-server
//!
//! The backend the widget talks to in development and in every browser test. It must behave
//! like a real server, so the pieces are the ones a production service has:
//!
//! - [`config`]: the command line (each flag also an environment variable).
//! - [`error`]: [`ApiError`], the one error type; every failure answers
//!   `{"error":{"code","message"}}` and 5xx details go to the log, not the client.
//! - [`routes`]: the `/api` router.
//! - [`cors`]: the cross-origin policy (allow-list; loopback origins in test mode).
//! - [`app`] builds the whole [`Router`] (API + the built widget as static files);
//!   [`run`] serves it until a shutdown future resolves. `main.rs` only parses, binds and calls
//!   these, so tests drive exactly what production runs.

pub mod config;
pub mod cors;
pub mod error;
pub mod routes;

use std::{future::Future, io, sync::Arc};

use axum::Router;
use tokio::net::TcpListener;
use tower_http::{services::ServeDir, trace::TraceLayer};

pub use config::Config;
pub use error::ApiError;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The configuration the server was started with.
    pub config: Arc<Config>,
}

impl AppState {
    /// State for a server started with `config`.
    pub fn new(config: Config) -> Self {
        Self {
            config: Arc::new(config),
        }
    }
}

/// The whole application: `/api/*` plus the built widget (`--static-dir`) at `/`.
pub fn app(state: AppState) -> Router {
    let cors = cors::layer(&state.config);
    let static_files = ServeDir::new(&state.config.static_dir)
        .append_index_html_on_directories(true)
        .not_found_service(axum::routing::any(routes::static_not_found).with_state(state.clone()));
    Router::new()
        .nest("/api", routes::api(state.clone()))
        .fallback_service(static_files)
        .layer(cors)
        .layer(TraceLayer::new_for_http())
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes the requests in flight.
pub async fn run(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
