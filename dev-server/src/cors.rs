//! Cross-origin policy. Farm pages embed the widget from their own origin, so the API answers
//! cross-origin requests with credentials, but only for origins on the allow-list (and, in test
//! mode, for loopback pages such as the browser-test runner's).

use axum::http::{HeaderName, HeaderValue, Method, header, request::Parts};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::Config;

/// The CORS layer for `config`.
pub fn layer(config: &Config) -> CorsLayer {
    let allowed = config.allow_origins.clone();
    let test_mode = config.test_mode;
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(
            move |origin: &HeaderValue, _: &Parts| origin_allowed(origin, &allowed, test_mode),
        ))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("last-event-id"),
        ])
}

/// Whether a request from `origin` may read the answer.
pub fn origin_allowed(origin: &HeaderValue, allowed: &[String], test_mode: bool) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    allowed.iter().any(|a| a.trim_end_matches('/') == origin)
        || (test_mode && is_loopback_http(origin))
}

/// Whether `origin` is one of this server's own (`own`), or one that may call it with
/// credentials: the CSRF check, and the log of refused cross-origin requests.
pub fn origin_known(
    origin: &HeaderValue,
    own: &[String],
    allowed: &[String],
    test_mode: bool,
) -> bool {
    let is_own = origin.to_str().is_ok_and(|origin| {
        own.iter()
            .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
    });
    is_own || origin_allowed(origin, allowed, test_mode)
}

/// `http://127.0.0.1[:port]` or `http://localhost[:port]`, and nothing that merely starts so
/// (`http://localhost.evil.example` is not loopback).
fn is_loopback_http(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("http://") else {
        return false;
    };
    let (host, port) = match rest.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    (host == "127.0.0.1" || host == "localhost") && port_ok
}

/// CSRF check for a cookie-authenticated unsafe request (and for sign-in, which sets the
/// cookie): an `Origin` that is not one of this server's own (`--public-origin`, default the
/// listen address; never the client's `Host` header, which an attacker's DNS can set), not
/// on the allow-list and (in test mode) not loopback is rejected. Browsers send `Origin` on
/// every cross-origin POST/DELETE; a request without one is not a browser's cross-site
/// request.
pub fn check_csrf(
    config: &Config,
    headers: &axum::http::HeaderMap,
) -> Result<(), crate::error::ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    if origin_known(
        origin,
        &config.public_origins,
        &config.allow_origins,
        config.test_mode,
    ) {
        Ok(())
    } else {
        let origin = origin.to_str().unwrap_or("(not text)");
        tracing::info!(origin, "request refused: CSRF check");
        Err(crate::error::ApiError::Forbidden {
            code: "csrf_rejected",
            message: format!("requests from origin {origin} are not allowed"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(origin: &str, list: &[&str], test_mode: bool) -> bool {
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        origin_allowed(&HeaderValue::from_str(origin).unwrap(), &list, test_mode)
    }

    #[test]
    fn loopback_origins_only_in_test_mode() {
        assert!(allowed("http://127.0.0.1:41234", &[], true));
        assert!(allowed("http://localhost:8080", &[], true));
        assert!(allowed("http://localhost", &[], true));
        assert!(!allowed("http://127.0.0.1:41234", &[], false));
    }

    #[test]
    fn look_alike_hosts_are_not_loopback() {
        for origin in [
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example:80",
            "http://127.0.0.1:80@evil.example",
            "https://evil.example",
            "http://127.0.0.1:",
            "http://127.0.0.1:123456",
        ] {
            assert!(!allowed(origin, &[], true), "{origin}");
        }
    }

    #[test]
    fn own_origins_come_from_the_configuration_not_the_host_header() {
        let mut config = Config {
            test_mode: false,
            ..Config::for_tests()
        };
        config.public_origins = vec!["https://chat.example.jp".into()];
        let headers = |origin: &str, host: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert(header::ORIGIN, origin.parse().unwrap());
            h.insert(header::HOST, host.parse().unwrap());
            h
        };
        assert!(check_csrf(&config, &headers("https://chat.example.jp", "x")).is_ok());
        assert!(
            check_csrf(&config, &headers("http://evil.example", "evil.example")).is_err(),
            "a Host that matches the Origin proves nothing"
        );
    }

    #[test]
    fn the_allow_list_matches_whole_origins() {
        let list = ["https://farm.example.jp/"];
        assert!(allowed("https://farm.example.jp", &list, false));
        assert!(!allowed("https://farm.example.jp.evil", &list, false));
    }
}
