//! REST behaviour through `tower::ServiceExt::oneshot`: no socket, the exact router `main` runs.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

mod common;
use common::{TestApp, oneshot};

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use farm_chat_dev_server::Config;
use farm_chat_protocol::paths;
use farm_chat_protocol::{ErrorBody, Health, HealthStatus};

async fn send(config: Config, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let router = TestApp::new().config(|c| *c = config).router().await;
    let answer = oneshot(&router, req).await;
    (answer.status, answer.headers, answer.body)
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn health_answers_ok_as_json() {
    let (status, headers, body) = send(Config::for_tests(), get(paths::api::HEALTH)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    let health: Health = serde_json::from_slice(&body).unwrap();
    assert_eq!(health.status, HealthStatus::Ok);
}

#[tokio::test]
async fn an_unknown_api_route_is_a_json_404_not_the_page() {
    let (status, _, body) = send(Config::for_tests(), get("/api/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let err: ErrorBody = serde_json::from_slice(&body).unwrap();
    assert_eq!(err.error.code, "not_found");
    assert!(
        err.error.message.contains("/api/nope"),
        "{}",
        err.error.message
    );
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405() {
    let req = Request::builder()
        .method("PUT")
        .uri(paths::api::SESSION)
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(Config::for_tests(), req).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let err: ErrorBody = serde_json::from_slice(&body).unwrap();
    assert_eq!(err.error.code, "method_not_allowed");
    let (status, _, body) = send(Config::for_tests(), get(paths::api::SEND)).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(serde_json::from_slice::<ErrorBody>(&body).is_ok());
}

#[tokio::test]
async fn the_built_widget_is_served_at_the_root() {
    let dir = std::env::temp_dir().join(format!("farm-chat-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><title>牧場ダッシュボード</title>",
    )
    .unwrap();
    let config = Config {
        static_dir: dir.clone(),
        ..Config::for_tests()
    };
    let (status, _, body) = send(config.clone(), get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("牧場ダッシュボード")
    );
    let (status, _, _) = send(config, get("/missing.js")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn without_a_build_the_root_says_how_to_build() {
    let (status, _, body) = send(Config::for_tests(), get("/")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8(body).unwrap().contains("cargo xtask run"));
}

fn preflight(origin: &str) -> Request<Body> {
    Request::options(paths::api::HEALTH)
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn test_mode_allows_loopback_pages_with_credentials() {
    let (_, headers, _) = send(Config::for_tests(), preflight("http://127.0.0.1:45678")).await;
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "http://127.0.0.1:45678"
    );
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
}

#[tokio::test]
async fn outside_test_mode_only_listed_origins_are_allowed() {
    let config = Config {
        test_mode: false,
        allow_origins: vec!["https://farm.example.jp".into()],
        ..Config::for_tests()
    };
    let (_, headers, _) = send(config.clone(), preflight("http://127.0.0.1:45678")).await;
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    let (_, headers, _) = send(config, preflight("https://farm.example.jp")).await;
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://farm.example.jp"
    );
}

#[tokio::test]
async fn openapi_describes_exactly_the_routes_that_exist() {
    let (status, _, body) = send(Config::for_tests(), get(paths::api::OPENAPI)).await;
    assert_eq!(status, StatusCode::OK);
    let spec: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(spec["openapi"], "3.2.0");
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    documented.sort();
    let expected = [
        ("DELETE", paths::api::SESSION),
        ("GET", paths::api::ASYNCAPI),
        ("GET", paths::api::HISTORY),
        ("GET", paths::api::STREAM),
        ("GET", paths::api::CONVERSATIONS),
        ("GET", paths::api::HEALTH),
        ("GET", paths::api::HEALTH_LIVE),
        ("GET", paths::api::HEALTH_READY),
        ("GET", paths::api::OPENAPI),
        ("GET", "/api/reports/{reportId}.pdf"),
        ("GET", paths::api::SESSION),
        ("GET", paths::api::TASKS),
        ("GET", "/api/tasks/{taskId}"),
        ("POST", paths::api::READ),
        ("POST", paths::api::SEND),
        ("POST", paths::api::STREAM_TICKET),
        ("POST", paths::api::TYPING),
        ("POST", paths::api::SESSION),
        ("POST", "/api/tasks/{taskId}/cancel"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, expected);
    // Each documented route exists: it may refuse (401, 400) but never with "no route".
    for (method, path) in &documented {
        let uri = path
            .replace("{taskId}", "t-1")
            .replace("{reportId}", "shipments-2026-01");
        let req = Request::builder()
            .method(method.as_str())
            .uri(&uri)
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = send(Config::for_tests(), req).await;
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("no route for"),
            "{method} {path} is documented but not routed: {status} {text}"
        );
    }
    // And an undocumented one does not.
    let (_, _, body) = send(Config::for_tests(), get("/api/undocumented")).await;
    assert!(String::from_utf8_lossy(&body).contains("no route for"));
}

/// The document states the bounds the server enforces: an id pattern on every id the server
/// checks (`validate::id` allows exactly `[A-Za-z0-9._:-]{1,128}`), and cursors within the
/// signed 64-bit range the store keeps.
#[tokio::test]
async fn openapi_carries_the_patterns_and_bounds_the_server_enforces() {
    let (_, _, body) = send(Config::for_tests(), get(paths::api::OPENAPI)).await;
    let spec: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let id = "^[A-Za-z0-9._:-]{1,128}$";
    let schemas = &spec["components"]["schemas"];
    // A property's schema, through its `$ref` if it has one.
    let prop = |schema: &str, name: &str| {
        let p = &schemas[schema]["properties"][name];
        match p["$ref"].as_str() {
            Some(r) => schemas[r.trim_start_matches("#/components/schemas/")].clone(),
            None => p.clone(),
        }
    };
    assert_eq!(prop("LoginRequest", "userId")["pattern"], id);
    assert_eq!(prop("SendRequest", "conversationId")["pattern"], id);
    assert_eq!(prop("SendRequest", "idempotencyKey")["pattern"], id);
    assert_eq!(prop("SendRequest", "text")["maxLength"], 4000);
    let history = &spec["paths"][paths::api::HISTORY]["get"]["parameters"][0]["content"]["application/x-www-form-urlencoded"]
        ["schema"];
    let param = |name: &str| history["properties"][name].clone();
    assert_eq!(param("conversationId")["pattern"], id);
    for cursor in ["before", "after"] {
        assert_eq!(param(cursor)["maximum"], i64::MAX, "{cursor}");
    }
    assert_eq!(param("limit")["maximum"], 100);
    // And the server agrees at the edges the document states.
    for (user, status) in [
        ("x".repeat(128), 401),
        ("x".repeat(129), 400),
        ("a b".into(), 400),
    ] {
        let req = Request::post(paths::api::SESSION)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(format!(r#"{{"userId":"{user}"}}"#)))
            .unwrap();
        let (got, _, _) = send(Config::for_tests(), req).await;
        assert_eq!(got.as_u16(), status, "{user}");
    }
}

/// Where the document's query schemas refuse a query, the server answers 400, and where they
/// accept it, it does not: `before` and `after` never together in the history's query (one
/// `querystring` object), and the list's `before` only in the cursor shape `nextCursor` has.
#[tokio::test]
async fn the_documented_queries_are_refused_exactly_where_the_server_refuses_them() {
    let router = TestApp::new().router().await;
    let call = |req: Request<Body>| {
        let router = router.clone();
        async move {
            let answer = oneshot(&router, req).await;
            (answer.status, answer.json())
        }
    };
    let (_, signed_in) = call(
        Request::post(paths::api::SESSION)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"userId":"u-support"}"#))
            .unwrap(),
    )
    .await;
    let bearer = format!("Bearer {}", signed_in["token"].as_str().unwrap());
    let get = |uri: String| {
        Request::get(uri)
            .header(header::AUTHORIZATION, &bearer)
            .body(Body::empty())
            .unwrap()
    };
    let (_, _, doc) = send(
        Config::for_tests(),
        Request::get(paths::api::OPENAPI)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
    let history = doc["paths"][paths::api::HISTORY]["get"]["parameters"][0]["content"]
        ["application/x-www-form-urlencoded"]["schema"]
        .clone();
    let history = jsonschema::validator_for(&history).unwrap();
    let conversation = "c-u-farmer-support";
    for (query, values) in [
        ("", serde_json::json!({"conversationId": conversation})),
        (
            "&before=3",
            serde_json::json!({"conversationId": conversation, "before": 3}),
        ),
        (
            "&after=1",
            serde_json::json!({"conversationId": conversation, "after": 1}),
        ),
        (
            "&before=3&after=1",
            serde_json::json!({"conversationId": conversation, "before": 3, "after": 1}),
        ),
    ] {
        let (status, body) = call(get(format!(
            "{}?conversationId={conversation}{query}",
            paths::api::HISTORY
        )))
        .await;
        assert_eq!(
            status == StatusCode::BAD_REQUEST,
            !history.is_valid(&values),
            "{query}: the server said {status} {body}"
        );
    }
    let list = doc["paths"][paths::api::CONVERSATIONS]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "before")
        .unwrap()["schema"]
        .clone();
    let list = jsonschema::validator_for(&list).unwrap();
    let (_, first) = call(get(format!("{}?limit=1", paths::api::CONVERSATIONS))).await;
    let cursor = first["nextCursor"].as_str().unwrap().to_owned();
    for before in [
        cursor.as_str(),
        "anything",
        "2026-12-01~",
        "~c-1",
        "a b~c-1",
    ] {
        let (status, body) = call(get(format!(
            "{}?limit=1&before={}",
            paths::api::CONVERSATIONS,
            before.replace(' ', "%20")
        )))
        .await;
        assert_eq!(
            status == StatusCode::BAD_REQUEST,
            !list.is_valid(&serde_json::json!(before)),
            "{before:?}: the server said {status} {body}"
        );
    }
}
