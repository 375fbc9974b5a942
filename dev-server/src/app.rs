//! The composition root: [`app`] builds the whole [`Router`] (the API and the built widget as
//! static files) and [`run`] serves it with the background loops until shutdown.

use std::{
    future::Future,
    io,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{Router, extract::DefaultBodyLimit, http::Request};
use farm_chat_protocol::paths;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::{
    announce, api, assets, cors, error::MAX_BODY_BYTES, runner, security, serve, state::AppState,
};

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
            paths::api::BASE,
            api::streams(state.clone())
                .merge(api::api(state.clone()).layer(assets::api_compression())),
        )
        .route(
            "/metrics",
            axum::routing::get(api::metrics).with_state(state.clone()),
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
    let purge = tokio::spawn(purge_expired(state.clone()));
    let signals = tokio::spawn(runner::follow_signals(state.clone()));
    let outbox = {
        let common = state.common.clone();
        let (after, stop) = (state.outbox_after, state.shutdown.clone());
        tokio::spawn(async move {
            announce::outbox(&*common.bus, &*common.store, after, stop).await;
        })
    };
    let registry = tokio::spawn(api::stream::follow_signals(state.clone()));
    // Alone, tasks left running by a previous process were interrupted at start-up.
    let reaper = state
        .common
        .shared
        .spans_instances()
        .then(|| tokio::spawn(runner::reap_orphans(state.clone())));
    let metrics = metrics_listener.map(|listener| {
        let router = api::metrics_only(state.clone());
        tokio::spawn(serve::serve(listener, router, limits, stop.clone()))
    });
    let trigger = state.clone();
    tokio::spawn(async move {
        shutdown.await;
        // Readiness fails first, while everything still serves, so the balancer stops
        // sending new connections before any stream closes.
        trigger.local.draining.store(true, Ordering::Relaxed);
        let delay = trigger.config.drain_delay;
        if !delay.is_zero() {
            tracing::info!(?delay, "not ready: draining after the delay");
            tokio::time::sleep(delay).await;
        }
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

/// Deletes expired sessions, and lets go of aged stream events and finished hot tasks, now
/// and then every [`AppState::purge_every`], until shutdown.
async fn purge_expired(state: AppState) {
    let mut every = tokio::time::interval(state.purge_every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        // The in-memory side of housekeeping rides on the same timer.
        let (events, tasks) = (state.common.bus.sweep(), state.local.tasks.sweep());
        if events + tasks > 0 {
            tracing::debug!(events, tasks, "aged events and finished tasks let go");
        }
        let now = crate::ids::unix_now();
        match state.common.store.purge_expired_sessions(now).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "expired sessions deleted"),
            Err(e) => {
                tracing::warn!(error = %e, "deleting expired sessions failed; retrying later")
            }
        }
    }
}
