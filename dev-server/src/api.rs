//! The HTTP API: the router of `/api` and `/metrics`, and one module of handlers per
//! endpoint group. Handlers parse, authenticate and answer; the services below them (the
//! store, the bus, [`Shared`](crate::shared::Shared), the task runner) do the work.

pub mod auth;
pub mod chat;
pub mod health;
pub mod report;
pub mod session;
pub mod stream;
pub mod tasks;

use axum::{
    Json, Router,
    extract::State,
    http::{Method, StatusCode, Uri},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use farm_chat_protocol::{Health, HealthStatus, paths};

use crate::{error::ApiError, state::AppState};

/// The router mounted at `/api`. Unknown API paths answer a JSON 404, never the widget page.
pub fn api(state: AppState) -> Router {
    let test_only = if state.config.test_mode {
        Router::new().route(paths::DROP_STREAMS, post(stream::drop_streams))
    } else {
        Router::new()
    };
    Router::new()
        .merge(test_only)
        .route(paths::HEALTH, get(health))
        .route(paths::HEALTH_LIVE, get(live))
        .route(paths::HEALTH_READY, get(ready))
        .route(
            paths::OPENAPI,
            get(|| async { Json(crate::openapi::spec()) }),
        )
        .route(
            paths::ASYNCAPI,
            get(|| async { Json(crate::asyncapi::spec()) }),
        )
        .route(
            paths::SESSION,
            post(session::login)
                .get(session::current)
                .delete(session::logout),
        )
        .route(paths::CONVERSATIONS, get(chat::list))
        .route(paths::SEND, post(chat::send))
        .route(paths::HISTORY, get(chat::history))
        .route(paths::READ, post(chat::read))
        .route(paths::TYPING, post(chat::typing))
        .route(paths::STREAM_TICKET, post(session::stream_ticket))
        .route(paths::REPORT, get(report::get))
        .route(paths::TASKS, get(tasks::list))
        .route(paths::TASK, get(tasks::get))
        .route(paths::TASK_CANCEL, post(tasks::cancel))
        .route_layer(axum::middleware::from_fn_with_state(
            state.local.metrics.clone(),
            crate::metrics::track,
        ))
        .fallback(api_not_found)
        .method_not_allowed_fallback(api_method_not_allowed)
        .with_state(state)
}

/// `GET /api/chat/stream`, apart from [`api`]: no compression layer around it. SSE is never
/// compressed (a gzip window held open all day per stream), and the layer's body type alone
/// costs each open stream about 4 KB (it holds every encoder's state inline).
pub fn streams(state: AppState) -> Router {
    Router::new()
        .route(paths::STREAM, get(stream::stream))
        .route_layer(axum::middleware::from_fn_with_state(
            state.local.metrics.clone(),
            crate::metrics::track,
        ))
        .method_not_allowed_fallback(api_method_not_allowed)
        .with_state(state)
}

/// `GET /api/health`: `{"status":"ok"}` while ready, else 503 `{"status":"unavailable"}`
/// (the same checks as [`ready`]).
async fn health(State(state): State<AppState>) -> Response {
    let readiness = health::readiness(&state).await;
    let status = readiness.status;
    (health::code(status), Json(Health { status })).into_response()
}

/// `GET /api/health/live`: the process answers. Never asks the store or the bus: a
/// database outage must not make an orchestrator restart every instance.
async fn live() -> Json<Health> {
    Json(Health {
        status: HealthStatus::Ok,
    })
}

/// `GET /api/health/ready`: 200 when every check passed, else 503; each check in the body.
async fn ready(State(state): State<AppState>) -> Response {
    let readiness = health::readiness(&state).await;
    (health::code(readiness.status), Json(readiness)).into_response()
}

/// `GET /metrics` on the API port: Prometheus text format, for loopback clients and holders
/// of `--metrics-token`; a JSON 404 for anyone else (counts across every tenant are not for
/// the public).
pub(crate) async fn metrics(
    State(state): State<AppState>,
    req: axum::extract::Request,
) -> Response {
    if !crate::security::may_read_metrics(&state.config, &req) {
        tracing::info!("metrics refused: not loopback, no metrics token");
        return ApiError::NotFound("no route for GET /metrics".into()).into_response();
    }
    metrics_text(&state)
}

fn metrics_text(state: &AppState) -> Response {
    let (events, bytes) = state.common.bus.held();
    let mut text = state.local.metrics.render();
    text.push_str(&format!(
        "# HELP farm_chat_backlog_events Stream events kept in memory for resuming.\n\
         # TYPE farm_chat_backlog_events gauge\nfarm_chat_backlog_events {events}\n\
         # HELP farm_chat_backlog_bytes Data bytes of the events kept for resuming.\n\
         # TYPE farm_chat_backlog_bytes gauge\nfarm_chat_backlog_bytes {bytes}\n\
         # HELP farm_chat_hot_tasks Assistant tasks whose snapshots are held in memory.\n\
         # TYPE farm_chat_hot_tasks gauge\nfarm_chat_hot_tasks {}\n\
         # HELP farm_chat_instance_info This instance (several may serve one deployment).\n\
         # TYPE farm_chat_instance_info gauge\nfarm_chat_instance_info{{instance=\"{}\",bus=\"{}\",store=\"{}\"}} 1\n",
        state.local.tasks.hot_count(),
        state.local.instance,
        if state.config.redis_url.is_some() { "redis" } else { "memory" },
        if state.config.database_url.is_some() { "postgres" } else { "sqlite" },
    ));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The router of `--metrics-addr`: `GET /metrics` only.
pub fn metrics_only(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(state): State<AppState>| async move { metrics_text(&state) }),
        )
        .with_state(state)
}

async fn api_method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("/api{} does not answer {method}", uri.path()))
}

async fn api_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} /api{}", uri.path()))
}

/// A path outside `/api` that is not a file of the built widget. When the widget has not been
/// built at all, say how to build it instead of a bare 404.
pub(crate) async fn static_not_found(State(state): State<AppState>, uri: Uri) -> Response {
    let dir = &state.config.static_dir;
    if dir.join("index.html").is_file() {
        (
            StatusCode::NOT_FOUND,
            Html(format!(
                "<h1>404</h1><p>{} は見つかりません / not found</p>",
                html_escape(uri.path())
            )),
        )
            .into_response()
    } else {
        let dir = html_escape(&dir.display().to_string());
        let body = format!(
            "<!doctype html><meta charset=utf-8><title>farm-chat</title>\
             <h1>ウィジェットがビルドされていません / The widget is not built</h1>\
             <p><code>{dir}</code> に index.html がありません。<code>cargo xtask run</code> でビルドして起動してください。</p>\
             <p>There is no index.html in <code>{dir}</code>. Run <code>cargo xtask run</code> to build and serve it.</p>"
        );
        (StatusCode::NOT_FOUND, Html(body)).into_response()
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
