//! The widget's REST client: JSON in and out, cookies by default (`credentials: include`, so a
//! widget on another origin of the same site works), or `Authorization: Bearer` from a token
//! provider for pages whose cookies can't reach the API.

pub mod endpoints;

use std::{cell::Cell, fmt, rc::Rc};

use farm_chat_protocol::{
    ErrorBody,
    read::{FromJson, Json, ReadError},
};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

pub use self::endpoints::{Get, Page};

/// What a token provider answers: a token now, or a Promise of one (a host page that has to
/// ask its identity service first).
pub enum TokenAnswer {
    /// The token, or none (signed out).
    Now(Option<String>),
    /// A Promise that resolves to the token (a string) or rejects.
    Later(js_sys::Promise),
}

/// How often a provider may be asked for a fresh token after a 401: an expired platform
/// session must not turn into a request storm.
pub const REFRESH_EVERY_MS: f64 = 30_000.0;

/// Whether a refresh is allowed at `now_ms`, given the last one (pure: tested natively).
pub fn refresh_allowed(last_ms: Option<f64>, now_ms: f64) -> bool {
    last_ms.is_none_or(|last| now_ms - last >= REFRESH_EVERY_MS)
}

/// Supplies the Bearer token (the host page's function, or a fixed token). Asked before every
/// request with `refresh` false; after a 401, asked once more with `refresh` true (at most
/// every [`REFRESH_EVERY_MS`]) and the request is retried with the new token.
#[derive(Clone)]
pub struct TokenProvider {
    ask: Rc<dyn Fn(bool) -> TokenAnswer>,
    last_refresh: Rc<Cell<Option<f64>>>,
    /// The last refresh's answer while it may still be on its way: requests that got a 401
    /// meanwhile wait for it instead of failing or asking again.
    pending: Rc<std::cell::RefCell<Option<js_sys::Promise>>>,
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenProvider(..)")
    }
}

impl TokenProvider {
    /// A provider that always answers `token`.
    pub fn fixed(token: String) -> Self {
        Self::new(move |_| TokenAnswer::Now(Some(token.clone())))
    }

    /// A provider over `ask(refresh)`.
    pub fn new(ask: impl Fn(bool) -> TokenAnswer + 'static) -> Self {
        Self {
            ask: Rc::new(ask),
            last_refresh: Rc::default(),
            pending: Rc::default(),
        }
    }

    async fn answer(&self, refresh: bool) -> Option<String> {
        match (self.ask)(refresh) {
            TokenAnswer::Now(token) => token.filter(|t| !t.is_empty()),
            TokenAnswer::Later(promise) => {
                if refresh {
                    *self.pending.borrow_mut() = Some(promise.clone());
                }
                resolved(promise).await
            }
        }
    }

    /// The token to send now.
    pub async fn token(&self) -> Option<String> {
        self.answer(false).await
    }

    /// A fresh token after a 401, if a refresh is allowed now and the provider gives one.
    /// Within [`REFRESH_EVERY_MS`] of the last refresh, that refresh's answer (another request
    /// got the 401 first) or the current token: never a second ask.
    pub async fn refresh(&self) -> Option<String> {
        let now = js_sys::Date::now();
        if !refresh_allowed(self.last_refresh.get(), now) {
            let pending = self.pending.borrow().clone();
            return match pending {
                Some(promise) => resolved(promise).await,
                None => self.answer(false).await,
            };
        }
        self.last_refresh.set(Some(now));
        self.pending.borrow_mut().take();
        self.answer(true).await
    }
}

/// A token Promise's string, or none (rejected, not a string, empty).
async fn resolved(promise: js_sys::Promise) -> Option<String> {
    JsFuture::from(promise)
        .await
        .ok()
        .and_then(|v| v.as_string())
        .filter(|t| !t.is_empty())
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

    /// One request: `method path` with an optional JSON body → (status, body text).
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, String), ApiFailure> {
        let init = web_sys::RequestInit::new();
        init.set_method(method);
        init.set_credentials(web_sys::RequestCredentials::Include);
        let headers = web_sys::Headers::new().map_err(network)?;
        if let Some(body) = body {
            headers
                .set("Content-Type", "application/json")
                .map_err(network)?;
            init.set_body(&JsValue::from_str(&body));
        }
        let window = web_sys::window().ok_or_else(|| ApiFailure::Network("no window".into()))?;
        let mut token = match &self.token {
            Some(provider) => provider.token().await,
            None => None,
        };
        let response: web_sys::Response = loop {
            if let Some(token) = &token {
                headers
                    .set("Authorization", &format!("Bearer {token}"))
                    .map_err(network)?;
            }
            init.set_headers(&headers);
            let response: web_sys::Response =
                JsFuture::from(window.fetch_with_str_and_init(&self.url(path), &init))
                    .await
                    .map_err(network)?
                    .unchecked_into();
            // An expired token: ask the provider once for a fresh one and try again.
            if response.status() == 401
                && let Some(provider) = &self.token
                && let Some(fresh) = provider.refresh().await
                && Some(&fresh) != token.as_ref()
            {
                token = Some(fresh);
                continue;
            }
            break response;
        };
        let text = JsFuture::from(response.text().map_err(network)?)
            .await
            .map_err(network)?
            .as_string()
            .unwrap_or_default();
        Ok((response.status(), text))
    }

    /// `method path` → (status, the parsed answer), or the failure with the server's code. Not
    /// generic, so the request's code exists once in the wasm; [`read`] turns the answer into
    /// the caller's type.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, Js), ApiFailure> {
        let (status, text) = self.send(method, path, body).await?;
        let json = parse(&text);
        if !(200..300).contains(&status) {
            let (code, message) = json
                .as_ref()
                .and_then(|j| ErrorBody::from_json(j).ok())
                .map(|b| (b.error.code, b.error.message))
                .unwrap_or_else(|| ("http_error".into(), format!("HTTP {status}")));
            return Err(ApiFailure::Http {
                status,
                code,
                message,
            });
        }
        Ok((status, json.unwrap_or(Js(JsValue::NULL))))
    }

    /// `GET path` → JSON.
    pub async fn get<T: FromJson>(&self, path: &str) -> Result<T, ApiFailure> {
        read(self.call("GET", path, None).await?.1)
    }

    /// `POST path` with a JSON object of string fields → (status, JSON).
    pub async fn post<T: FromJson>(
        &self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Result<(u16, T), ApiFailure> {
        let (status, json) = self.call("POST", path, Some(json_object(fields))).await?;
        Ok((status, read(json)?))
    }

    /// `POST path` without a body → JSON.
    pub async fn post_empty<T: FromJson>(&self, path: &str) -> Result<T, ApiFailure> {
        read(self.call("POST", path, None).await?.1)
    }

    /// `DELETE path` → JSON.
    pub async fn delete<T: FromJson>(&self, path: &str) -> Result<T, ApiFailure> {
        read(self.call("DELETE", path, None).await?.1)
    }
}

/// A 2xx answer as the protocol type `T`.
pub fn read<T: FromJson>(json: Js) -> Result<T, ApiFailure> {
    T::from_json(&json).map_err(|e| ApiFailure::Decode(e.to_string()))
}

/// A failed browser call as a network failure, with the browser's message.
fn network(e: JsValue) -> ApiFailure {
    ApiFailure::Network(
        e.dyn_ref::<js_sys::Error>()
            .map(|e| String::from(e.message()))
            .or_else(|| e.as_string())
            .unwrap_or_else(|| "fetch failed".into()),
    )
}

/// JSON the browser parsed, for the protocol's readers: the wasm carries no JSON parser or
/// serde deserialiser of its own.
#[derive(Clone, Debug)]
pub struct Js(pub JsValue);

impl Json for Js {
    fn field(&self, key: &str) -> Option<Self> {
        if !self.0.is_object() {
            return None;
        }
        js_sys::Reflect::get(&self.0, &JsValue::from_str(key))
            .ok()
            .filter(|v| !v.is_undefined() && !v.is_null())
            .map(Js)
    }

    fn string(&self) -> Option<String> {
        self.0.as_string()
    }

    fn number(&self) -> Option<f64> {
        self.0.as_f64()
    }

    fn boolean(&self) -> Option<bool> {
        self.0.as_bool()
    }

    fn elements(&self) -> Option<Vec<Self>> {
        js_sys::Array::is_array(&self.0)
            .then(|| js_sys::Array::from(&self.0).iter().map(Js).collect())
    }
}

/// `text` parsed by the browser's `JSON.parse`; `None` for empty or invalid text.
pub fn parse(text: &str) -> Option<Js> {
    if text.is_empty() {
        return None;
    }
    js_sys::JSON::parse(text).ok().map(Js)
}

/// The stream event for an SSE `event:` name and `data:` text, parsed by the browser.
pub fn decode_event(
    name: &str,
    data: &str,
) -> Result<farm_chat_protocol::StreamEvent, farm_chat_protocol::stream::DecodeError> {
    farm_chat_protocol::StreamEvent::read_parsed(name, parse(data))
}

/// `{"name": "value", …}` written by the browser's `JSON.stringify` (escaping included).
pub fn json_object(fields: &[(&str, &str)]) -> String {
    let fields: Vec<(&str, JsValue)> = fields
        .iter()
        .map(|(name, value)| (*name, JsValue::from_str(value)))
        .collect();
    json_body(&fields)
}

/// `{"name": value, …}` of any JSON values, written by the browser's `JSON.stringify`.
pub fn json_body(fields: &[(&str, JsValue)]) -> String {
    let object = js_sys::Object::new();
    for (name, value) in fields {
        let _ = js_sys::Reflect::set(&object, &JsValue::from_str(name), value);
    }
    js_sys::JSON::stringify(&object)
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_default()
}

/// An answer whose body the caller does not need (any JSON, or none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ignored;

impl FromJson for Ignored {
    fn from_json<J: Json>(_: &J) -> Result<Self, ReadError> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_at_most_every_thirty_seconds() {
        assert!(refresh_allowed(None, 0.0));
        assert!(!refresh_allowed(
            Some(1_000.0),
            1_000.0 + REFRESH_EVERY_MS - 1.0
        ));
        assert!(refresh_allowed(Some(1_000.0), 1_000.0 + REFRESH_EVERY_MS));
    }

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
