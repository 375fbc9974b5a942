//! Response headers every answer carries, and who may read `/metrics`.
//!
//! - `X-Content-Type-Options: nosniff` on everything: a JSON body, a PDF or a JS file is never
//!   reinterpreted as HTML by a browser.
//! - On HTML pages: a Content-Security-Policy the widget works under (`script-src 'self'
//!   'wasm-unsafe-eval'`: the launcher and the wasm module come from this origin;
//!   `style-src 'self' 'unsafe-inline'`: the launcher puts the widget's stylesheet into its
//!   shadow root as a `<style>` element, and the progress bar sets its width inline),
//!   `frame-ancestors` from `--frame-ancestors`, and `Referrer-Policy:
//!   strict-origin-when-cross-origin`.

use axum::{
    extract::{Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::Response,
};

use crate::config::Config;

/// The header values, built once from the configuration, and what decides whether a
/// cross-origin request is one the CORS policy refuses (to log it).
#[derive(Clone, Debug)]
pub struct Headers {
    csp: HeaderValue,
    allowed: std::sync::Arc<[String]>,
    own: std::sync::Arc<[String]>,
    test_mode: bool,
}

impl Headers {
    /// The headers for `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            csp: HeaderValue::from_str(&content_security_policy(config))
                .unwrap_or_else(|_| HeaderValue::from_static("frame-ancestors 'self'")),
            allowed: config.allow_origins.clone().into(),
            own: config.public_origins.clone().into(),
            test_mode: config.test_mode,
        }
    }

    /// A request from an origin that is neither this server's nor allowed: the browser will
    /// not let that page read the answer.
    fn refused_origin<'r>(&self, req: &'r Request) -> Option<&'r str> {
        let origin = req.headers().get(header::ORIGIN)?;
        let text = origin.to_str().unwrap_or("(not text)");
        (!crate::cors::origin_known(origin, &self.own, &self.allowed, self.test_mode))
            .then_some(text)
    }
}

/// The policy of the HTML pages.
pub fn content_security_policy(config: &Config) -> String {
    if let Some(policy) = &config.content_security_policy {
        return policy.clone();
    }
    let ancestors: String = config
        .frame_ancestors
        .chars()
        .filter(|c| !c.is_control() && *c != ';' && *c != ',')
        .collect();
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors {}",
        ancestors.trim()
    )
}

/// Adds the headers to every response.
pub async fn headers(State(policy): State<Headers>, req: Request, next: Next) -> Response {
    if let Some(origin) = policy.refused_origin(&req) {
        tracing::info!(
            origin,
            "cross-origin request from an origin not allowed (CORS)"
        );
    }
    let mut response = next.run(req).await;
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if is_html {
        h.insert(header::CONTENT_SECURITY_POLICY, policy.csp);
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        );
    }
    response
}

/// Whether this request may read `/metrics` on the API port: only the holder of
/// `--metrics-token`. A loopback peer is not enough: behind a reverse proxy on the same host
/// every client is 127.0.0.1. (With `--metrics-addr`, the API port doesn't serve it at all.)
pub fn may_read_metrics(config: &Config, req: &Request) -> bool {
    if config.metrics_addr.is_some() {
        return false;
    }
    config.metrics_token.as_deref().is_some_and(|token| {
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| constant_time_eq(given.trim().as_bytes(), token.as_bytes()))
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ancestors_cannot_inject_directives() {
        let mut config = Config::for_tests();
        config.frame_ancestors = "'self' https://farm.example.jp; script-src *".into();
        let csp = content_security_policy(&config);
        assert!(
            csp.ends_with("frame-ancestors 'self' https://farm.example.jp script-src *"),
            "{csp}"
        );
        assert_eq!(
            csp.matches("script-src").count(),
            2,
            "still one directive: {csp}"
        );
        assert_eq!(csp.matches(';').count(), 8, "{csp}");
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
