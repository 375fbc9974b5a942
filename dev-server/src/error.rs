//! [`ApiError`]: the server's one error type and its JSON answer, plus the JSON and query
//! extractors whose rejections answer in the same shape.

use axum::{
    Json,
    extract::{FromRequest, FromRequestParts, Request, rejection::JsonRejection},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use farm_chat_protocol::ErrorBody;
use serde::de::DeserializeOwned;

use crate::store::StoreError;

/// The largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Every way a request can fail. Each variant maps to one status; `code`s are stable.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (`invalid_json`, `invalid_id`, `invalid_text`, …).
    #[error("{message}")]
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// 401: no valid session.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403: signed in, but not allowed (`csrf_rejected`, `not_a_participant`).
    #[error("{message}")]
    Forbidden {
        /// Stable code.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// 404: no such route or resource (or one of another tenant: not revealed).
    #[error("{0}")]
    NotFound(String),
    /// 409: the idempotency key was used with another body.
    #[error("this idempotencyKey was already used for a different message")]
    IdempotencyConflict,
    /// 405: the route exists, but not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: the request conflicts with the resource's state (`task_not_running`).
    #[error("{message}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// 413: the body is over the limit.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 429: too many requests or streams; retry after the given seconds.
    #[error("{message}")]
    TooMany {
        /// Stable code (`rate_limited`, `too_many_streams`).
        code: &'static str,
        /// For people.
        message: String,
        /// Seconds, for `Retry-After`.
        retry_after: u64,
    },
    /// 408: the request body did not arrive in time (`--body-timeout`); the connection closes.
    #[error("the request body did not arrive within {0} s")]
    RequestTimeout(u64),
    /// 500: a bug or a failed dependency. Logged in full, answered generically.
    #[error("internal error: {0}")]
    Internal(String),
    /// 503: the database is out of reach for a moment (a failover, a restart). Logged in full;
    /// the client retries after `Retry-After` and, with its idempotency key, sends once.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Seconds a client waits before retrying a 503.
pub const UNAVAILABLE_RETRY_AFTER: u64 = 2;

impl ApiError {
    /// A 429 `rate_limited` with `Retry-After`: too many `ja` / `en` (e.g. 送信 / messages).
    pub fn rate_limited(retry_after: u64, ja: &str, en: &str) -> Self {
        Self::TooMany {
            code: "rate_limited",
            message: format!(
                "{ja}が多すぎます。{retry_after}秒後にお試しください / too many {en}; retry in {retry_after} s"
            ),
            retry_after,
        }
    }

    /// A 400 with this code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::IdempotencyConflict | Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stable snake_case code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Forbidden { code, .. }
            | Self::TooMany { code, .. }
            | Self::Conflict { code, .. } => code,
            Self::Unauthorized(_) => "unauthorized",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::RequestTimeout(_) => "request_timeout",
            Self::Internal(_) => "internal",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Self::Unavailable(e.to_string()),
            StoreError::Conflict(_) | StoreError::Corrupt(_) | StoreError::Failed(_) => {
                Self::Internal(e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status.is_server_error() {
            // Details stay in the log: they can name files, queries or internals.
            tracing::error!(error = %self, "request failed");
            if status == StatusCode::SERVICE_UNAVAILABLE {
                "一時的に利用できません。しばらくして再試行します / temporarily unavailable; retry shortly".to_owned()
            } else {
                "内部エラーが発生しました / internal server error".to_owned()
            }
        } else {
            self.to_string()
        };
        let mut response = (status, Json(ErrorBody::new(self.code(), message))).into_response();
        match self {
            Self::TooMany { retry_after, .. } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            Self::Unavailable(_) => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(UNAVAILABLE_RETRY_AFTER),
                );
            }
            // The rest of the body may still come: nothing more is read on this connection.
            Self::RequestTimeout(_) => {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

/// `Json<T>` whose rejections are [`ApiError`]s: bad JSON and wrong types → 400
/// `invalid_json`, a wrong content type → 400 `invalid_content_type`, too large → 413.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&rejection);
    while let Some(error) = cause {
        if let Some(timed_out) = error.downcast_ref::<crate::serve::BodyTimedOut>() {
            tracing::info!("request body timed out");
            return ApiError::RequestTimeout(timed_out.0.as_secs());
        }
        cause = error.source();
    }
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::bad_request(
            "invalid_content_type",
            "Content-Type must be application/json",
        ),
        r if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge(MAX_BODY_BYTES)
        }
        r => ApiError::bad_request("invalid_json", r.body_text()),
    }
}

/// `Path<T>` whose rejection is a 400 `invalid_path` (say, `%ff`, which is not UTF-8).
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|r| ApiError::bad_request("invalid_path", r.body_text()))
    }
}

/// `Query<T>` whose rejection is a 400 `invalid_query`.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))
    }
}
