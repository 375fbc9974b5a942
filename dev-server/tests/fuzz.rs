//! Seeded fuzzing of request parsing through the real router: thousands of mutated and random
//! bodies, queries, paths and headers. No input may panic the server or get a 5xx; every
//! error answer is the JSON error shape.

mod common;
use common::{Answer, TestApp, oneshot};

use axum::{
    Router,
    body::Body,
    http::{Request, header},
};
use farm_chat_dev_server::herd::Rng;
use farm_chat_protocol::paths;
use tower::ServiceExt;

const VALID: [&str; 3] = [
    r#"{"userId":"u-farmer"}"#,
    r#"{"conversationId":"c-u-farmer-support","text":"こんにちは","idempotencyKey":"k-1"}"#,
    r#"{"conversationId":"c-u-farmer-assistant","text":"14番の牛の健康","idempotencyKey":"k-2"}"#,
];

const NASTY: [&str; 14] = [
    "\0",
    "\r\n",
    "\"",
    "\\",
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "null",
    "\u{202e}",
    "\u{feff}",
    "9999999999999999999999",
];

fn mutate(rng: &mut Rng, base: &str) -> Vec<u8> {
    let mut bytes = base.as_bytes().to_vec();
    for _ in 0..rng.range(1, 4) {
        let at = rng.range(0, bytes.len() as i64) as usize;
        match rng.range(0, 3) {
            0 => {
                bytes.truncate(at);
            }
            1 => {
                let nasty = NASTY[rng.range(0, NASTY.len() as i64 - 1) as usize].as_bytes();
                bytes.splice(at..at, nasty.iter().copied());
            }
            2 if at < bytes.len() => bytes[at] = rng.next_u64() as u8,
            _ => bytes.extend((0..rng.range(0, 40)).map(|_| rng.next_u64() as u8)),
        }
    }
    bytes
}

async fn check(router: &Router, req: Request<Body>, what: &str) {
    let Answer { status, body, .. } = oneshot(router, req).await;
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
}

#[tokio::test]
async fn no_input_panics_or_gets_a_5xx() {
    // Thousands of sign-ins: the sign-in limits would answer most of them before the body is
    // even read.
    let router = TestApp::new()
        .config(|c| {
            c.sign_in_per_minute = u32::MAX;
            c.sign_in_per_user_per_minute = u32::MAX;
        })
        .router()
        .await;
    let login = Request::post(paths::api::SESSION)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(VALID[0]))
        .unwrap();
    let token = oneshot(&router, login).await.json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut rng = Rng::new(0xfa53);
    for i in 0..3000 {
        let body = if rng.chance(0.8) {
            let base = VALID[rng.range(0, 2) as usize];
            mutate(&mut rng, base)
        } else {
            (0..rng.range(0, 200))
                .map(|_| rng.next_u64() as u8)
                .collect()
        };
        let path = [
            paths::api::SESSION,
            paths::api::SEND,
            "/api/tasks/x/cancel",
            paths::api::STREAM_TICKET,
        ][rng.range(0, 3) as usize];
        let mut req = Request::post(path).header(header::CONTENT_TYPE, "application/json");
        if rng.chance(0.7) {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        check(
            &router,
            req.body(Body::from(body.clone())).unwrap(),
            &format!("#{i} POST {path} {body:?}"),
        )
        .await;
    }
    for i in 0..1500 {
        let query: String = String::from_utf8_lossy(&mutate(
            &mut rng,
            "conversationId=c-u-farmer-support&limit=5&before=3",
        ))
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '%' })
        .collect();
        let path = [
            paths::api::HISTORY,
            paths::api::TASKS,
            paths::api::STREAM,
            "/api/reports/shipments-2026-01.pdf",
        ][rng.range(0, 3) as usize];
        let uri = format!("{path}?{query}");
        let Ok(req) = Request::get(&uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
        else {
            continue; // not even a URI
        };
        if path == paths::api::STREAM {
            // A stream that opens never ends by itself: only check that it opens or refuses.
            let res = router.clone().oneshot(req).await.unwrap();
            assert!(
                !res.status().is_server_error(),
                "#{i} GET {uri}: {}",
                res.status()
            );
            continue;
        }
        check(&router, req, &format!("#{i} GET {uri}")).await;
    }
    // Every method on every route: refusals are JSON too (405 included).
    let paths = [
        paths::api::HEALTH,
        paths::api::SESSION,
        paths::api::CONVERSATIONS,
        paths::api::SEND,
        paths::api::HISTORY,
        paths::api::STREAM_TICKET,
        paths::api::STREAM,
        paths::api::TASKS,
        "/api/tasks/t-1",
        "/api/tasks/t-1/cancel",
        "/api/reports/shipments-2026-01.pdf",
        paths::api::OPENAPI,
        "/api/nope",
    ];
    for path in paths {
        for method in ["GET", "POST", "DELETE", "PUT", "PATCH"] {
            let req = Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .unwrap();
            check(&router, req, &format!("{method} {path}")).await;
        }
    }
    for i in 0..500 {
        let value: Vec<u8> = mutate(&mut rng, &format!("Bearer {token}"));
        let Ok(req) = Request::get(paths::api::SESSION)
            .header(header::AUTHORIZATION, value.as_slice())
            .body(Body::empty())
        else {
            continue; // not a valid header value at all
        };
        check(&router, req, &format!("#{i} Authorization {value:?}")).await;
        let cookie = [
            b"farm_chat_session=".as_slice(),
            &value[7.min(value.len())..],
        ]
        .concat();
        if let Ok(req) = Request::get(paths::api::SESSION)
            .header(header::COOKIE, cookie.as_slice())
            .body(Body::empty())
        {
            check(&router, req, &format!("#{i} Cookie {cookie:?}")).await;
        }
    }
}
