//! The built widget as a browser gets it: precompressed variants chosen by `Accept-Encoding`,
//! `Vary`, caching by file name; JSON answers compressed above a small size; the event stream
//! never compressed.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

mod common;
use common::{TestApp, oneshot};

use axum::{
    Router,
    body::Body,
    http::{Request, Response, header},
};
use farm_chat_dev_server::assets::{IMMUTABLE, REVALIDATE};
use farm_chat_protocol::paths;
use http_body_util::BodyExt;
use tower::ServiceExt;

const WASM: &str = "farm-chat-0123456789abcdef_bg.wasm";

/// A built widget in a fresh folder: each file with distinct `.br` / `.gz` stand-ins, so the
/// test sees which variant was sent.
async fn built() -> (std::path::PathBuf, Router) {
    let dir = std::env::temp_dir().join(format!(
        "farm-chat-assets-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, body) in [
        (WASM, &b"\0asm-raw"[..]),
        ("farm-chat.js", b"launcher"),
        ("index.html", b"<farm-chat></farm-chat>"),
    ] {
        std::fs::write(dir.join(name), body).unwrap();
        std::fs::write(dir.join(format!("{name}.br")), b"br").unwrap();
        std::fs::write(dir.join(format!("{name}.gz")), b"gz").unwrap();
    }
    let static_dir = dir.clone();
    let router = TestApp::new()
        .config(|c| c.static_dir = static_dir)
        .router()
        .await;
    (dir, router)
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        .into()
}

async fn get(router: &Router, path: &str, accept: &str) -> (Response<()>, Vec<u8>) {
    let mut req = Request::get(path);
    if !accept.is_empty() {
        req = req.header(header::ACCEPT_ENCODING, accept);
    }
    let answer = oneshot(router, req.body(Body::empty()).unwrap()).await;
    let mut res = Response::new(());
    *res.status_mut() = answer.status;
    *res.headers_mut() = answer.headers;
    (res, answer.body)
}

fn header_of(res: &Response<()>, name: header::HeaderName) -> String {
    res.headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::test]
async fn the_wasm_goes_as_the_variant_the_browser_accepts_and_is_kept_a_year() {
    let (dir, router) = built().await;
    let path = format!("/{WASM}");
    for (accept, body, encoding) in [
        ("gzip, deflate, br, zstd", &b"br"[..], "br"),
        ("br;q=0.5, gzip;q=1", b"gz", "gzip"),
        ("gzip", b"gz", "gzip"),
        ("", b"\0asm-raw", ""),
        ("identity", b"\0asm-raw", ""),
    ] {
        let (res, bytes) = get(&router, &path, accept).await;
        assert_eq!(res.status(), 200, "{accept}");
        assert_eq!(bytes, body, "{accept}");
        assert_eq!(
            header_of(&res, header::CONTENT_ENCODING),
            encoding,
            "{accept}"
        );
        assert_eq!(header_of(&res, header::CONTENT_TYPE), "application/wasm");
        assert_eq!(header_of(&res, header::CACHE_CONTROL), IMMUTABLE);
        assert!(
            header_of(&res, header::VARY).contains("accept-encoding"),
            "every variant says it varies, {accept}"
        );
        assert_eq!(
            header_of(&res, header::HeaderName::from_static("timing-allow-origin")),
            "*"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn the_launcher_and_pages_are_revalidated_so_a_new_build_reaches_users() {
    let (dir, router) = built().await;
    for path in ["/farm-chat.js", "/"] {
        let (res, bytes) = get(&router, path, "br").await;
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(bytes, b"br", "{path}");
        assert_eq!(header_of(&res, header::CACHE_CONTROL), REVALIDATE, "{path}");
        assert!(res.headers().contains_key(header::LAST_MODIFIED), "{path}");
    }
    let (res, _) = get(&router, "/farm-chat.js", "").await;
    assert_eq!(
        header_of(&res, header::CONTENT_TYPE),
        "text/javascript",
        "a module script needs a JavaScript type"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn large_json_answers_are_compressed_small_ones_and_the_stream_are_not() {
    let router = TestApp::new().router().await;
    // The API description is tens of KB of JSON.
    let (res, bytes) = get(&router, paths::api::OPENAPI, "br, gzip").await;
    assert_eq!(header_of(&res, header::CONTENT_ENCODING), "br");
    assert!(header_of(&res, header::VARY).contains("accept-encoding"));
    let plain = get(&router, paths::api::OPENAPI, "").await.1;
    assert!(serde_json::from_slice::<serde_json::Value>(&plain).is_ok());
    assert!(
        bytes.len() * 3 < plain.len(),
        "{} of {}",
        bytes.len(),
        plain.len()
    );
    let (res, _) = get(&router, paths::api::OPENAPI, "gzip").await;
    assert_eq!(header_of(&res, header::CONTENT_ENCODING), "gzip");

    let (res, bytes) = get(&router, paths::api::HEALTH, "br, gzip").await;
    assert_eq!(
        header_of(&res, header::CONTENT_ENCODING),
        "",
        "too small to pay"
    );
    assert_eq!(bytes, br#"{"status":"ok"}"#);

    // The stream: signed in by a token, asked with every encoding; it must go as it is.
    let login = router
        .clone()
        .oneshot(
            Request::post(paths::api::SESSION)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(r#"{"userId":"u-farmer"}"#))
                .unwrap(),
        )
        .await
        .unwrap();
    let login = login.into_body().collect().await.unwrap().to_bytes();
    let token = serde_json::from_slice::<serde_json::Value>(&login).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let stream = router
        .clone()
        .oneshot(
            Request::get(paths::api::STREAM)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::ACCEPT_ENCODING, "br, gzip")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()[header::CONTENT_TYPE], "text/event-stream");
    assert!(!stream.headers().contains_key(header::CONTENT_ENCODING));
    let mut body = stream.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(
        String::from_utf8_lossy(&first).contains("event: ready"),
        "the first event arrives at once, as plain text"
    );
}
