//! The widget's REST client: JSON in and out, cookies by default (`credentials: include`, so a
//! widget on another origin of the same site works), or `Authorization: Bearer` from a token
//! provider for pages whose cookies can't reach the API.

use std::{fmt, rc::Rc};

use farm_chat_protocol::ErrorBody;
use gloo_net::http::{Request, RequestBuilder};
use serde::{Serialize, de::DeserializeOwned};

/// Supplies the current Bearer token (the host page's function, or a fixed token).
#[derive(Clone)]
pub struct TokenProvider(pub Rc<dyn Fn() -> Option<String>>);

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenProvider(..)")
    }
}

impl TokenProvider {
    /// A provider that always answers `token`.
    pub fn fixed(token: String) -> Self {
        Self(Rc::new(move || Some(token.clone())))
    }
}

/// Why a call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiFailure {
    /// No answer (offline, refused, CORS).
    Network(String),
    /// An error answer with the server's code and message.
    Http {
        /// The status.
        status: u16,
        /// The server's stable code.
        code: String,
        /// The server's message.
        message: String,
    },
    /// A 2xx whose body is not what the protocol says.
    Decode(String),
}

impl ApiFailure {
    /// Worth retrying with the same request (and the same idempotency key): no answer, 5xx, 429.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Network(_) => true,
            Self::Http { status, .. } => *status >= 500 || *status == 429,
            Self::Decode(_) => false,
        }
    }
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Network(e) => write!(f, "network: {e}"),
            Self::Http {
                status, message, ..
            } => write!(f, "{status}: {message}"),
            Self::Decode(e) => write!(f, "unexpected answer: {e}"),
        }
    }
}

/// Where the API is and how to authenticate.
#[derive(Clone, Debug)]
pub struct Api {
    /// e.g. `/api` or `https://chat.example.jp/api`.
    pub base: String,
    /// `None`: cookies.
    pub token: Option<TokenProvider>,
}

impl Api {
    /// The API at `base` with cookie authentication.
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            token: None,
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn prepare(&self, builder: RequestBuilder) -> RequestBuilder {
        let builder = builder.credentials(web_sys::RequestCredentials::Include);
        match self.token.as_ref().and_then(|t| (t.0)()) {
            Some(token) => builder.header("Authorization", &format!("Bearer {token}")),
            None => builder,
        }
    }

    async fn finish<T: DeserializeOwned>(
        request: Result<Request, gloo_net::Error>,
    ) -> Result<(u16, T), ApiFailure> {
        let request = request.map_err(|e| ApiFailure::Network(e.to_string()))?;
        let response = request
            .send()
            .await
            .map_err(|e| ApiFailure::Network(e.to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| ApiFailure::Network(e.to_string()))?;
        if !(200..300).contains(&status) {
            let (code, message) = serde_json::from_str::<ErrorBody>(&text)
                .map(|b| (b.error.code, b.error.message))
                .unwrap_or_else(|_| ("http_error".into(), format!("HTTP {status}")));
            return Err(ApiFailure::Http {
                status,
                code,
                message,
            });
        }
        let value = if text.is_empty() {
            serde_json::from_str("null")
        } else {
            serde_json::from_str(&text)
        };
        value
            .map(|v| (status, v))
            .map_err(|e| ApiFailure::Decode(e.to_string()))
    }

    /// `GET path` → JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiFailure> {
        Self::finish(self.prepare(Request::get(&self.url(path))).build())
            .await
            .map(|(_, v)| v)
    }

    /// `POST path` with a JSON body → (status, JSON).
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(u16, T), ApiFailure> {
        let request = self.prepare(Request::post(&self.url(path))).json(body);
        Self::finish(request).await
    }

    /// `POST path` without a body → JSON.
    pub async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiFailure> {
        Self::finish(self.prepare(Request::post(&self.url(path))).build())
            .await
            .map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_worth_retrying() {
        let http = |status| ApiFailure::Http {
            status,
            code: String::new(),
            message: String::new(),
        };
        assert!(ApiFailure::Network("down".into()).retryable());
        assert!(http(503).retryable());
        assert!(http(429).retryable());
        for status in [400, 401, 403, 404, 409, 413] {
            assert!(!http(status).retryable(), "{status}");
        }
        assert!(!ApiFailure::Decode("x".into()).retryable());
    }
}
