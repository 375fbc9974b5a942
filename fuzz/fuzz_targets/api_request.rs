//! Any request to `/api`, through the real router: the method, the route, the path and query
//! after it, the body and whether it is signed in all come from the input. No input may
//! panic the server or get a 5xx, and every refusal is the JSON error shape.

#![no_main]

use std::sync::LazyLock;

use axum::{
    Router,
    body::Body,
    http::{Request, header},
};
use farm_chat_dev_server::{AppState, Config, app, limits::RateLimiter};
use farm_chat_protocol::paths;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

/// The routes a request can start from; the input appends the rest of the path or query.
const ROUTES: [&str; 8] = [
    paths::api::SESSION,
    paths::api::SEND,
    "/api/chat/history?",
    "/api/tasks/",
    "/api/reports/",
    "/api/tasks?",
    paths::api::CONVERSATIONS,
    paths::api::STREAM_TICKET,
];
const METHODS: [&str; 4] = ["GET", "POST", "DELETE", "PUT"];

struct World {
    runtime: tokio::runtime::Runtime,
    router: Router,
    token: String,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let config = Config {
        sign_in_per_minute: u32::MAX,
        sign_in_per_user_per_minute: u32::MAX,
        ..Config::for_tests()
    };
    let mut state = runtime.block_on(AppState::new(config)).expect("a store");
    // Sends are rate limited per user; the fuzzer sends far faster than a person.
    state.local.send_limit = std::sync::Arc::new(RateLimiter::new(u32::MAX, 1e12));
    let router = app(state);
    let token = runtime.block_on(async {
        let login = Request::post(paths::api::SESSION)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"userId":"u-farmer"}"#))
            .expect("a request");
        let res = router.clone().oneshot(login).await.expect("infallible");
        let body = res.into_body().collect().await.expect("a body").to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        json["token"].as_str().expect("a token").to_owned()
    });
    World {
        runtime,
        router,
        token,
    }
});

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let route = ROUTES[usize::from(selector & 7)];
    let method = METHODS[usize::from(selector >> 5 & 3)];
    let signed_in = selector & 8 != 0;
    let json = selector & 16 != 0;
    let (tail, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(mut uri) = String::from_utf8(route.as_bytes().iter().chain(tail).copied().collect())
    else {
        return;
    };
    if uri.len() > 4096 {
        uri.truncate(4096);
    }
    let mut req = Request::builder().method(method).uri(uri.as_str());
    if json {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    if signed_in {
        req = req.header(header::AUTHORIZATION, format!("Bearer {}", WORLD.token));
    }
    // Not even a valid request line: hyper would refuse it before the router.
    let Ok(req) = req.body(Body::from(body.to_vec())) else {
        return;
    };
    let what = format!("{method} {uri}");
    WORLD.runtime.block_on(async {
        let res = WORLD.router.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let body = res.into_body().collect().await.expect("a body").to_bytes();
        assert!(
            !status.is_server_error(),
            "{what}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        if status.is_client_error() {
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
                panic!(
                    "{what}: {status} without a JSON body: {}",
                    String::from_utf8_lossy(&body)
                )
            });
            assert!(json["error"]["code"].is_string(), "{what}: {json}");
        }
    });
});
