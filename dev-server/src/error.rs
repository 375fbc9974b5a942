//! [`ApiError`]: the server's one error type and its JSON answer.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use farm_chat_protocol::ErrorBody;

/// Every way a request can fail. Each variant maps to one status and one stable `code`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No such route or resource.
    #[error("{0}")]
    NotFound(String),
    /// A bug or a failed dependency: logged in full, answered with a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable snake_case code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status.is_server_error() {
            // Details stay in the log: they can name files, queries or internals.
            tracing::error!(error = %self, "request failed");
            "内部エラーが発生しました / internal server error".to_owned()
        } else {
            self.to_string()
        };
        (status, Json(ErrorBody::new(self.code(), message))).into_response()
    }
}
