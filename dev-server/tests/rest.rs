//! Sessions, conversations, send and history through `oneshot`: every success and error path.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

mod common;
use common::{TestApp, oneshot};

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Request, StatusCode, header},
};
use farm_chat_protocol::paths;
use serde_json::{Value, json};

const SUPPORT: &str = "c-u-farmer-support";
const ASSISTANT: &str = "c-u-farmer-assistant";

struct Api {
    router: Router,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl Api {
    async fn new() -> Self {
        Self {
            router: TestApp::new().router().await,
        }
    }

    async fn raw(&self, req: Request<Body>) -> Reply {
        let answer = oneshot(&self.router, req).await;
        Reply {
            body: answer.json(),
            status: answer.status,
            headers: answer.headers,
        }
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "127.0.0.1:3000");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = match body {
            Some(body) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body)),
            None => req.body(Body::empty()),
        };
        self.raw(req.unwrap()).await
    }

    /// Signs in; returns (token, the cookie pair to send back).
    async fn login(&self, user: &str) -> (String, String) {
        let reply = self
            .call(
                "POST",
                paths::api::SESSION,
                &[],
                Some(json!({"userId": user}).to_string()),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let set_cookie = reply.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_owned();
        let pair = set_cookie.split(';').next().unwrap().to_owned();
        (reply.body["token"].as_str().unwrap().to_owned(), pair)
    }

    async fn as_user(&self, token: &str, method: &str, uri: &str, body: Option<Value>) -> Reply {
        let auth = format!("Bearer {token}");
        self.call(
            method,
            uri,
            &[("Authorization", &auth)],
            body.map(|b| b.to_string()),
        )
        .await
    }

    async fn send(&self, token: &str, conversation: &str, text: &str, key: &str) -> Reply {
        let body = json!({"conversationId": conversation, "text": text, "idempotencyKey": key});
        self.as_user(token, "POST", paths::api::SEND, Some(body))
            .await
    }
}

#[tokio::test]
async fn sign_in_answers_the_user_a_token_and_a_safe_cookie() {
    let api = Api::new().await;
    let reply = api
        .call(
            "POST",
            paths::api::SESSION,
            &[],
            Some(r#"{"userId":"u-farmer"}"#.into()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["userId"], "u-farmer");
    assert_eq!(reply.body["tenantId"], "demo-farm");
    assert_eq!(reply.body["displayName"], "山田 太郎");
    assert_eq!(reply.body["role"], "farmer");
    assert!(reply.body["token"].as_str().unwrap().len() > 40);
    let cookie = reply.headers[header::SET_COOKIE].to_str().unwrap();
    for attribute in [
        "farm_chat_session=",
        "HttpOnly",
        "SameSite=Lax",
        "Path=/api",
        "Max-Age=",
    ] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
}

#[tokio::test]
async fn sign_in_errors() {
    let api = Api::new().await;
    let cases: [(&str, StatusCode, &str); 6] = [
        (
            r#"{"userId":"u-nobody"}"#,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            r#"{"userId":"u-farmer\u0000"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            r#"{"userId":"u\r\nSet-Cookie: x"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (r#"{"userId":7}"#, StatusCode::BAD_REQUEST, "invalid_json"),
        (r#"{"userId":"#, StatusCode::BAD_REQUEST, "invalid_json"),
        (
            r#"{"user":"u-farmer"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
    ];
    for (body, status, code) in cases {
        let reply = api
            .call("POST", paths::api::SESSION, &[], Some(body.into()))
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (status, code),
            "{body}: {:?}",
            reply.body
        );
        assert!(reply.body["error"]["message"].is_string());
    }
    let no_type = Request::post(paths::api::SESSION)
        .body(Body::from(r#"{"userId":"u-farmer"}"#))
        .unwrap();
    let reply = api.raw(no_type).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::BAD_REQUEST, "invalid_content_type")
    );
}

#[tokio::test]
async fn the_session_by_cookie_or_bearer_and_sign_out() {
    let api = Api::new().await;
    let (token, cookie) = api.login("u-farmer").await;
    let me = api
        .call("GET", paths::api::SESSION, &[("Cookie", &cookie)], None)
        .await;
    assert_eq!(
        (me.status, me.body["userId"].as_str()),
        (StatusCode::OK, Some("u-farmer"))
    );
    assert!(
        me.body.get("token").is_none(),
        "the token is only handed out at sign-in"
    );
    assert_eq!(
        api.as_user(&token, "GET", paths::api::SESSION, None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        api.call("GET", paths::api::SESSION, &[], None).await.status,
        StatusCode::UNAUTHORIZED
    );
    for bad in ["Bearer nope", "Basic abc", "Bearer "] {
        let reply = api
            .call("GET", paths::api::SESSION, &[("Authorization", bad)], None)
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{bad}"
        );
    }
    let out = api
        .call("DELETE", paths::api::SESSION, &[("Cookie", &cookie)], None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(
        out.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        api.call("GET", paths::api::SESSION, &[("Cookie", &cookie)], None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.as_user(&token, "GET", paths::api::SESSION, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn csrf_cookie_posts_need_an_allowed_origin_bearer_posts_do_not() {
    let api = Api::new().await;
    let (token, cookie) = api.login("u-farmer").await;
    let body = || {
        Some(json!({"conversationId": SUPPORT, "text": "hi", "idempotencyKey": "k"}).to_string())
    };
    let evil = api
        .call(
            "POST",
            paths::api::SEND,
            &[("Cookie", &cookie), ("Origin", "https://evil.example")],
            body(),
        )
        .await;
    assert_eq!(
        (evil.status, evil.code()),
        (StatusCode::FORBIDDEN, "csrf_rejected")
    );
    let own = api
        .call(
            "POST",
            paths::api::SEND,
            &[("Cookie", &cookie), ("Origin", "http://127.0.0.1:3000")],
            body(),
        )
        .await;
    assert_eq!(
        own.status,
        StatusCode::CREATED,
        "the server's own origin is always allowed"
    );
    let evil_delete = api
        .call(
            "DELETE",
            paths::api::SESSION,
            &[("Cookie", &cookie), ("Origin", "null")],
            None,
        )
        .await;
    assert_eq!(evil_delete.code(), "csrf_rejected");
    let auth = format!("Bearer {token}");
    let bearer = api
        .call(
            "POST",
            paths::api::SEND,
            &[("Authorization", &auth), ("Origin", "https://evil.example")],
            body(),
        )
        .await;
    assert_eq!(
        bearer.status,
        StatusCode::OK,
        "a Bearer token is not sent by browsers on their own"
    );
}

#[tokio::test]
async fn conversations_are_created_on_first_use_and_scoped_to_the_tenant() {
    let api = Api::new().await;
    let (farmer, _) = api.login("u-farmer").await;
    let list = api
        .as_user(&farmer, "GET", paths::api::CONVERSATIONS, None)
        .await;
    let convs = list.body["conversations"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = convs
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [(ASSISTANT, "assistant"), (SUPPORT, "support")]);
    assert_eq!(convs[0]["title"], "牧場アシスタント");
    assert!(convs[0]["lastMessage"].is_null());
    assert_eq!(convs[0]["unread"], 0);

    let (support, _) = api.login("u-support").await;
    let staff = api
        .as_user(&support, "GET", paths::api::CONVERSATIONS, None)
        .await;
    let ids: Vec<&str> = staff.body["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["c-u-farmer-2-support", SUPPORT],
        "support staff see every farmer's support chat (no activity yet: by id), not their assistant chats"
    );
    assert_eq!(staff.body["conversations"][0]["ownerName"], "田中 花子");

    let (other, _) = api.login("u-other").await;
    let theirs = api
        .as_user(&other, "GET", paths::api::CONVERSATIONS, None)
        .await;
    let ids: Vec<&str> = theirs.body["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c-u-other-assistant", "c-u-other-support"]);
}

#[tokio::test]
async fn last_message_and_unread_follow_the_conversation_and_only_an_explicit_read_clears_it() {
    let api = Api::new().await;
    let (farmer, _) = api.login("u-farmer").await;
    let (support, _) = api.login("u-support").await;
    api.send(&support, SUPPORT, "ご用件は？", "s1").await;
    api.send(&support, SUPPORT, "お待ちしています", "s2").await;
    let support_chat = |list: &Reply| {
        list.body["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == SUPPORT)
            .unwrap()
            .clone()
    };
    let list = api
        .as_user(&farmer, "GET", paths::api::CONVERSATIONS, None)
        .await;
    assert_eq!(
        list.body["conversations"][0]["id"], SUPPORT,
        "newest activity first"
    );
    let conv = support_chat(&list);
    assert_eq!(conv["unread"], 2);
    assert_eq!(conv["readUpTo"], 0);
    assert_eq!(conv["othersReadUpTo"], 2, "the sender has read its own");
    assert_eq!(conv["lastMessage"]["text"], "お待ちしています");
    assert_eq!(conv["lastMessage"]["sender"]["kind"], "support");
    api.as_user(
        &farmer,
        "GET",
        &format!("/api/chat/history?conversationId={SUPPORT}"),
        None,
    )
    .await;
    let list = api
        .as_user(&farmer, "GET", paths::api::CONVERSATIONS, None)
        .await;
    assert_eq!(
        support_chat(&list)["unread"],
        2,
        "fetching history (a tab in the background, a prefetch) marks nothing read"
    );
    let read = api
        .as_user(
            &farmer,
            "POST",
            paths::api::READ,
            Some(json!({"conversationId": SUPPORT, "seq": 1})),
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{:?}", read.body);
    assert_eq!(read.body, json!({"conversationId": SUPPORT, "seq": 1}));
    let list = api
        .as_user(&farmer, "GET", paths::api::CONVERSATIONS, None)
        .await;
    assert_eq!(support_chat(&list)["unread"], 1);
    let read = api
        .as_user(
            &farmer,
            "POST",
            paths::api::READ,
            Some(json!({"conversationId": SUPPORT, "seq": 1000})),
        )
        .await;
    assert_eq!(read.body["seq"], 2, "clamped to the newest message");
    let back = api
        .as_user(
            &farmer,
            "POST",
            paths::api::READ,
            Some(json!({"conversationId": SUPPORT, "seq": 0})),
        )
        .await;
    assert_eq!(back.body["seq"], 2, "never backwards");
    let staff = api
        .as_user(&support, "GET", paths::api::CONVERSATIONS, None)
        .await;
    let conv = support_chat(&staff);
    assert_eq!(
        (conv["unread"].clone(), conv["othersReadUpTo"].clone()),
        (json!(0), json!(2)),
        "support sees that the farmer read both"
    );
}

#[tokio::test]
async fn read_and_typing_check_input_tenant_and_participation() {
    let api = Api::new().await;
    let (farmer, _) = api.login("u-farmer").await;
    let (other, _) = api.login("u-other").await;
    let (farmer2, _) = api.login("u-farmer-2").await;
    for path in [paths::api::READ, paths::api::TYPING] {
        let body = |conversation: &str| {
            Some(if path.ends_with("read") {
                json!({"conversationId": conversation, "seq": 1})
            } else {
                json!({"conversationId": conversation})
            })
        };
        let foreign = api.as_user(&other, "POST", path, body(SUPPORT)).await;
        assert_eq!(
            foreign.status,
            StatusCode::NOT_FOUND,
            "{path}: another farm's"
        );
        let not_mine = api.as_user(&farmer2, "POST", path, body(SUPPORT)).await;
        assert_eq!(not_mine.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(not_mine.code(), "not_a_participant");
        let bad = api.as_user(&farmer, "POST", path, body("c 1")).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{path}");
        let extra = api
            .as_user(
                &farmer,
                "POST",
                path,
                Some(json!({"conversationId": SUPPORT, "seq": 1, "x": 1})),
            )
            .await;
        assert_eq!(
            extra.status,
            StatusCode::BAD_REQUEST,
            "{path}: unknown field"
        );
        let anonymous = api
            .call("POST", path, &[], body(SUPPORT).map(|b| b.to_string()))
            .await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let huge = api
        .as_user(
            &farmer,
            "POST",
            paths::api::READ,
            Some(json!({"conversationId": SUPPORT, "seq": u64::MAX})),
        )
        .await;
    assert_eq!(huge.status, StatusCode::BAD_REQUEST);
    let typing = api
        .as_user(
            &farmer,
            "POST",
            paths::api::TYPING,
            Some(json!({"conversationId": SUPPORT})),
        )
        .await;
    assert_eq!(typing.status, StatusCode::NO_CONTENT);
    let flood = futures_util::future::join_all((0..40).map(|_| {
        api.as_user(
            &farmer,
            "POST",
            paths::api::TYPING,
            Some(json!({"conversationId": SUPPORT})),
        )
    }))
    .await;
    let limited: Vec<_> = flood
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert!(!limited.is_empty(), "a typing flood is limited");
    assert!(limited[0].headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn the_support_inbox_pages_newest_activity_first() {
    let api = Api::new().await;
    let (support, _) = api.login("u-support").await;
    let (farmer2, _) = api.login("u-farmer-2").await;
    let (farmer, _) = api.login("u-farmer").await;
    api.send(&farmer, SUPPORT, "牛が逃げました", "f1").await;
    // A later second: created_at has whole seconds.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    api.send(&farmer2, "c-u-farmer-2-support", "飼料の件", "f2")
        .await;
    let first = api
        .as_user(
            &support,
            "GET",
            "/api/conversations?kind=support&limit=1",
            None,
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let page: Vec<_> = first.body["conversations"].as_array().unwrap().clone();
    assert_eq!(page.len(), 1);
    assert_eq!(
        page[0]["id"], "c-u-farmer-2-support",
        "the newest writer first"
    );
    assert_eq!(page[0]["ownerName"], "田中 花子");
    assert_eq!(page[0]["unread"], 1);
    let cursor = first.body["nextCursor"].as_str().unwrap().to_owned();
    let second = api
        .as_user(
            &support,
            "GET",
            &format!(
                "/api/conversations?kind=support&limit=1&before={}",
                urlencode(&cursor)
            ),
            None,
        )
        .await;
    let page = second.body["conversations"].as_array().unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["id"], SUPPORT);
    assert!(second.body.get("nextCursor").is_none(), "the last page");
    let assistants = api
        .as_user(&farmer, "GET", "/api/conversations?kind=assistant", None)
        .await;
    assert_eq!(
        assistants.body["conversations"].as_array().unwrap().len(),
        1
    );
    for bad in [
        "kind=robot",
        "limit=0",
        "limit=101",
        "before=nonsense",
        "before=x~c%201",
    ] {
        let reply = api
            .as_user(&support, "GET", &format!("/api/conversations?{bad}"), None)
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(reply.code(), "invalid_query", "{bad}");
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn send_is_idempotent_per_key() {
    let api = Api::new().await;
    let (farmer, _) = api.login("u-farmer").await;
    let first = api
        .send(&farmer, SUPPORT, "  牛が一頭いません  ", "key-1")
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(first.body["seq"], 1);
    assert_eq!(first.body["conversationId"], SUPPORT);
    assert!(first.body["createdAt"].as_str().unwrap().ends_with('Z'));
    assert!(first.body.get("taskId").is_none());
    let retry = api
        .send(&farmer, SUPPORT, "  牛が一頭いません  ", "key-1")
        .await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(
        retry.body, first.body,
        "a retry answers with the same message"
    );
    let conflict = api.send(&farmer, SUPPORT, "別の内容", "key-1").await;
    assert_eq!(
        (conflict.status, conflict.code()),
        (StatusCode::CONFLICT, "idempotency_conflict")
    );
    let history = api
        .as_user(
            &farmer,
            "GET",
            &format!("/api/chat/history?conversationId={SUPPORT}"),
            None,
        )
        .await;
    let messages = history.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["text"], "牛が一頭いません", "stored trimmed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_identical_sends_store_exactly_one_message() {
    let api = std::sync::Arc::new(Api::new().await);
    let (farmer, _) = api.login("u-farmer").await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (api, farmer) = (api.clone(), farmer.clone());
        tasks.push(tokio::spawn(async move {
            api.send(&farmer, SUPPORT, "同時送信", "same-key").await
        }));
    }
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status {
            StatusCode::CREATED => created += 1,
            StatusCode::OK => {}
            other => panic!("{other}: {:?}", reply.body),
        }
        ids.insert(reply.body["messageId"].as_str().unwrap().to_owned());
    }
    assert_eq!((created, ids.len()), (1, 1));
    let history = api
        .as_user(
            &farmer,
            "GET",
            &format!("/api/chat/history?conversationId={SUPPORT}"),
            None,
        )
        .await;
    assert_eq!(history.body["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn send_errors() {
    let api = Api::new().await;
    let (farmer, _) = api.login("u-farmer").await;
    let (support, _) = api.login("u-support").await;
    let (other, _) = api.login("u-other").await;
    let long = "牛".repeat(4001);
    let cases: Vec<(&str, &str, &str, &str, StatusCode, &str)> = vec![
        (
            &farmer,
            SUPPORT,
            "",
            "k1",
            StatusCode::BAD_REQUEST,
            "invalid_text",
        ),
        (
            &farmer,
            SUPPORT,
            " \n ",
            "k2",
            StatusCode::BAD_REQUEST,
            "invalid_text",
        ),
        (
            &farmer,
            SUPPORT,
            &long,
            "k3",
            StatusCode::BAD_REQUEST,
            "invalid_text",
        ),
        (
            &farmer,
            SUPPORT,
            "a\0b",
            "k4",
            StatusCode::BAD_REQUEST,
            "invalid_text",
        ),
        (
            &farmer,
            "c-x\r\ny",
            "hi",
            "k5",
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            &farmer,
            SUPPORT,
            "hi",
            "",
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            &farmer,
            SUPPORT,
            "hi",
            "key with spaces",
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            &farmer,
            "c-nope",
            "hi",
            "k6",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            &support,
            ASSISTANT,
            "hi",
            "k7",
            StatusCode::FORBIDDEN,
            "not_a_participant",
        ),
        (
            &other,
            SUPPORT,
            "hi",
            "k8",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (token, conversation, text, key, status, code) in cases {
        let reply = api.send(token, conversation, text, key).await;
        assert_eq!(
            (reply.status, reply.code()),
            (status, code),
            "{conversation:?} {key:?}: {:?}",
            reply.body
        );
    }
    let wrong_type = api
        .as_user(
            &farmer,
            "POST",
            paths::api::SEND,
            Some(json!({"conversationId": SUPPORT, "text": 5, "idempotencyKey": "k"})),
        )
        .await;
    assert_eq!(wrong_type.code(), "invalid_json");
    let unknown_field = api
        .as_user(&farmer, "POST", paths::api::SEND, Some(json!({"conversationId": SUPPORT, "text": "x", "idempotencyKey": "k", "userId": "u-support"})))
        .await;
    assert_eq!(
        unknown_field.code(),
        "invalid_json",
        "no field can claim another user"
    );
    assert_eq!(
        api.send("forged.token", SUPPORT, "hi", "k9").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn sends_are_rate_limited_per_user_with_retry_after() {
    let api = Api::new().await;
    let (farmer, _) = api.login("u-farmer").await;
    let (support, _) = api.login("u-support").await;
    let mut limited = None;
    for i in 0..40 {
        let reply = api
            .send(&farmer, SUPPORT, "連投", &format!("burst{i}"))
            .await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((i, reply));
            break;
        }
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    let (at, reply) = limited.expect("a burst of 40 is limited");
    assert!(at >= 20, "a human-sized burst passes (limited at {at})");
    assert_eq!(reply.code(), "rate_limited");
    let retry: u64 = reply.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(
        api.send(&support, SUPPORT, "別の人", "other").await.status,
        StatusCode::CREATED,
        "per user"
    );
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let api = Api::new().await;
    let (farmer, _) = api.login("u-farmer").await;
    let huge =
        json!({"conversationId": SUPPORT, "text": "x".repeat(70 * 1024), "idempotencyKey": "k"});
    let reply = api
        .as_user(&farmer, "POST", paths::api::SEND, Some(huge))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
}

#[tokio::test]
async fn history_pages_by_seq_and_validates_its_query() {
    let api = Api::new().await;
    let (farmer, _) = api.login("u-farmer").await;
    for i in 1..=7 {
        assert_eq!(
            api.send(&farmer, SUPPORT, &format!("{i}"), &format!("h{i}"))
                .await
                .status,
            StatusCode::CREATED
        );
    }
    let page = |query: &str| {
        let uri = format!("/api/chat/history?conversationId={SUPPORT}{query}");
        let (api, farmer) = (&api, &farmer);
        async move { api.as_user(farmer, "GET", &uri, None).await }
    };
    let seqs = |reply: &Reply| -> (Vec<u64>, bool) {
        let msgs = reply.body["messages"].as_array().unwrap();
        (
            msgs.iter().map(|m| m["seq"].as_u64().unwrap()).collect(),
            reply.body["hasMore"].as_bool().unwrap(),
        )
    };
    assert_eq!(seqs(&page("").await), (vec![1, 2, 3, 4, 5, 6, 7], false));
    assert_eq!(seqs(&page("&limit=3").await), (vec![5, 6, 7], true));
    assert_eq!(
        seqs(&page("&limit=3&before=5").await),
        (vec![2, 3, 4], true)
    );
    assert_eq!(seqs(&page("&limit=3&after=5").await), (vec![6, 7], false));
    let first = page("&limit=1&before=2").await;
    assert_eq!(
        first.body["messages"][0]["sender"],
        json!({"id": "u-farmer", "kind": "user", "displayName": "山田 太郎"})
    );
    assert_eq!(
        first.body["messages"][0]["idempotencyKey"], "h1",
        "the sender sees their key"
    );
    let (support, _) = api.login("u-support").await;
    let uri = format!("/api/chat/history?conversationId={SUPPORT}&limit=1");
    let theirs = api.as_user(&support, "GET", &uri, None).await;
    assert!(
        theirs.body["messages"][0].get("idempotencyKey").is_none(),
        "others never see it"
    );
    for bad in [
        "&limit=0",
        "&limit=101",
        "&limit=abc",
        "&before=-1",
        "&before=1&after=2",
        "&after=1e3",
    ] {
        let reply = page(bad).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::BAD_REQUEST, "invalid_query"),
            "{bad}"
        );
    }
    let missing = api.as_user(&farmer, "GET", paths::api::HISTORY, None).await;
    assert_eq!(missing.code(), "invalid_query");
    let forbidden = api
        .as_user(
            &support,
            "GET",
            &format!("/api/chat/history?conversationId={ASSISTANT}"),
            None,
        )
        .await;
    assert_eq!(forbidden.code(), "not_a_participant");
    let (other, _) = api.login("u-other").await;
    let hidden = api
        .as_user(
            &other,
            "GET",
            &format!("/api/chat/history?conversationId={SUPPORT}"),
            None,
        )
        .await;
    assert_eq!(
        hidden.status,
        StatusCode::NOT_FOUND,
        "another tenant's conversation is not revealed"
    );
}

#[tokio::test]
async fn metrics_count_messages_in_prometheus_format() {
    let api = Api::new().await;
    let (farmer, _) = api.login("u-farmer").await;
    api.send(&farmer, SUPPORT, "one", "m1").await;
    api.send(&farmer, SUPPORT, "one", "m1").await;
    let from = |ip: [u8; 4], token: Option<&str>| {
        let mut req = Request::get("/metrics");
        if let Some(token) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let mut req = req.body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                ip, 40000,
            ))));
        req
    };
    for (ip, who) in [
        ([203, 0, 113, 7], "a remote client"),
        ([127, 0, 0, 1], "loopback"),
    ] {
        let answer = oneshot(&api.router, from(ip, None)).await;
        assert_eq!(
            answer.status, 404,
            "counts across every tenant are not for {who} without the token"
        );
    }
    let token = farm_chat_dev_server::config::TEST_METRICS_TOKEN;
    let text = oneshot(&api.router, from([203, 0, 113, 7], Some(token)))
        .await
        .text();
    assert!(
        text.contains("# TYPE farm_chat_open_streams gauge"),
        "{text}"
    );
    assert!(
        text.contains("\nfarm_chat_messages_sent_total 1\n"),
        "a retry is not a new message: {text}"
    );
}
