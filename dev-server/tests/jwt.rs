//! The platform's JWTs as Bearer tokens: RS256 and ES256 through a JWKS (by `kid`), HS256
//! through a secret; every way a token can be wrong; users provisioned from claims, and farms
//! kept apart exactly as for demo users. The keys are made here, per test run.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

mod common;
use common::{TestApp, oneshot};

use farm_chat_protocol::paths;
use std::sync::LazyLock;

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode, header},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use farm_chat_dev_server::{AppState, Config};
use hmac::{Hmac, Mac};
use rsa::{
    pkcs1v15::SigningKey,
    signature::{SignatureEncoding, Signer},
    traits::PublicKeyParts,
};
use serde_json::{Value, json};
use sha2::Sha256;
use tower::ServiceExt;

const SECRET: &str = "a-platform-secret-of-at-least-32-bytes!!";
const ISSUER: &str = "https://id.farm-platform.example";
const AUDIENCE: &str = "farm-chat";

struct Keys {
    rsa: rsa::RsaPrivateKey,
    ec: p256::ecdsa::SigningKey,
    /// A second RSA key the server does not know.
    stranger: rsa::RsaPrivateKey,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let mut rng = rsa::rand_core::OsRng;
    Keys {
        rsa: rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap(),
        ec: p256::ecdsa::SigningKey::random(&mut rng),
        stranger: rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap(),
    }
});

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn jwks() -> Value {
    let rsa = KEYS.rsa.to_public_key();
    let point = KEYS.ec.verifying_key().to_encoded_point(false);
    json!({"keys": [
        {"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "n": b64(&rsa.n().to_bytes_be()), "e": b64(&rsa.e().to_bytes_be())},
        {"kty": "EC", "kid": "ec-1", "crv": "P-256", "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())},
        {"kty": "OKP", "kid": "ed-1", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    ]})
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims of a valid token for `sub` in `tenant`.
fn claims(sub: &str, tenant: &str, role: &str) -> Value {
    json!({
        "sub": sub, "tenant": tenant, "role": role, "name": format!("{sub} さん"),
        "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "iat": now(),
    })
}

enum Alg {
    Rs256(&'static rsa::RsaPrivateKey, Option<&'static str>),
    Es256(Option<&'static str>),
    Hs256(&'static [u8]),
    None,
}

fn token(alg: Alg, claims: &Value) -> String {
    let (name, kid) = match &alg {
        Alg::Rs256(_, kid) => ("RS256", *kid),
        Alg::Es256(kid) => ("ES256", *kid),
        Alg::Hs256(_) => ("HS256", None),
        Alg::None => ("none", None),
    };
    let mut header = json!({"alg": name, "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = kid.into();
    }
    let signed = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = match alg {
        Alg::Rs256(key, _) => SigningKey::<Sha256>::new(key.clone())
            .sign(signed.as_bytes())
            .to_vec(),
        Alg::Es256(_) => {
            let sig: p256::ecdsa::Signature = KEYS.ec.sign(signed.as_bytes());
            sig.to_bytes().to_vec()
        }
        Alg::Hs256(secret) => {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
            mac.update(signed.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Alg::None => Vec::new(),
    };
    format!("{signed}.{}", b64(&signature))
}

fn rs(claims: &Value) -> String {
    token(Alg::Rs256(&KEYS.rsa, Some("rsa-1")), claims)
}

async fn router(config: impl FnOnce(&mut Config)) -> Router {
    let dir = std::env::temp_dir().join(format!(
        "farm-chat-jwks-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    std::fs::write(&path, jwks().to_string()).unwrap();
    TestApp::new()
        .config(|c| {
            c.jwt_jwks = Some(path);
            c.jwt_secret = Some(SECRET.into());
            c.jwt_issuer = Some(ISSUER.into());
            c.jwt_audience = Some(AUDIENCE.into());
        })
        .config(config)
        .router()
        .await
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

async fn call(
    router: &Router,
    method: &str,
    uri: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "127.0.0.1:3000")
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    let req = match body {
        Some(body) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let answer = oneshot(router, req).await;
    (
        answer.status,
        serde_json::from_slice(&answer.body).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn valid_tokens_of_each_algorithm_sign_the_user_in_as_their_claims_say() {
    let r = router(|_| {}).await;
    let rs256 = rs(&claims("p-rs", "jwt-farm-a", "farmer"));
    let es256 = token(
        Alg::Es256(Some("ec-1")),
        &claims("p-es", "jwt-farm-a", "support"),
    );
    let hs256 = token(
        Alg::Hs256(SECRET.as_bytes()),
        &claims("p-hs", "jwt-farm-a", "farmer"),
    );
    for (what, t, user, role) in [
        ("RS256", &rs256, "p-rs", "farmer"),
        ("ES256", &es256, "p-es", "support"),
        ("HS256", &hs256, "p-hs", "farmer"),
    ] {
        let (status, body) = call(&r, "GET", paths::api::SESSION, t, None).await;
        assert_eq!(status, StatusCode::OK, "{what}: {body}");
        assert_eq!(body["userId"], user, "{what}");
        assert_eq!(body["tenantId"], "jwt-farm-a", "{what}");
        assert_eq!(body["role"], role, "{what}");
        assert_eq!(body["displayName"], format!("{user} さん"), "{what}");
    }
    // An audience list that names us is fine, and a token a few seconds past exp is within
    // the clock allowance.
    let mut c = claims("p-rs", "jwt-farm-a", "farmer");
    c["aud"] = json!(["other-app", AUDIENCE]);
    c["exp"] = json!(now() - 30);
    assert_eq!(
        call(&r, "GET", paths::api::SESSION, &rs(&c), None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_wrong_token_is_refused() {
    let r = router(|_| {}).await;
    let good = claims("p-bad", "jwt-farm-b", "farmer");
    let with = |key: &str, value: Value| {
        let mut c = good.clone();
        c[key] = value;
        c
    };
    let without = |key: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(key);
        c
    };
    let rsa_public_der = {
        let public = KEYS.rsa.to_public_key();
        let mut bytes = public.n().to_bytes_be();
        bytes.extend(public.e().to_bytes_be());
        Box::leak(bytes.into_boxed_slice()) as &'static [u8]
    };
    let mut bad_signature = rs(&good);
    let last = bad_signature.pop().unwrap();
    bad_signature.push(if last == 'A' { 'B' } else { 'A' });
    let tampered = {
        let t = rs(&good);
        let parts: Vec<&str> = t.split('.').collect();
        let other = with("sub", json!("p-admin"));
        format!(
            "{}.{}.{}",
            parts[0],
            b64(other.to_string().as_bytes()),
            parts[2]
        )
    };
    let cases = [
        ("expired", rs(&with("exp", json!(now() - 120)))),
        ("no exp", rs(&without("exp"))),
        ("not yet valid", rs(&with("nbf", json!(now() + 600)))),
        (
            "wrong issuer",
            rs(&with("iss", json!("https://evil.example"))),
        ),
        ("no issuer", rs(&without("iss"))),
        ("wrong audience", rs(&with("aud", json!("another-app")))),
        (
            "unknown kid",
            token(Alg::Rs256(&KEYS.rsa, Some("rsa-9")), &good),
        ),
        (
            "a key the server does not know",
            token(Alg::Rs256(&KEYS.stranger, Some("rsa-1")), &good),
        ),
        (
            "no kid among several keys",
            token(Alg::Rs256(&KEYS.rsa, None), &good),
        ),
        ("bad signature", bad_signature),
        ("claims changed after signing", tampered),
        ("alg none", token(Alg::None, &good)),
        (
            "HS256 signed with the RSA public key",
            token(Alg::Hs256(rsa_public_der), &good),
        ),
        (
            "HS256 with another secret",
            token(
                Alg::Hs256(b"not-the-platform-secret-but-long-enough"),
                &good,
            ),
        ),
        (
            "ES256 under the RSA key's kid",
            token(Alg::Es256(Some("rsa-1")), &good),
        ),
        (
            "RS256 under the EC key's kid",
            token(Alg::Rs256(&KEYS.rsa, Some("ec-1")), &good),
        ),
        ("no sub", rs(&without("sub"))),
        ("no tenant", rs(&without("tenant"))),
        ("an unknown role", rs(&with("role", json!("admin")))),
        ("a sub that is not an id", rs(&with("sub", json!("a b")))),
        ("garbage", "a.b.c".to_owned()),
    ];
    for (what, t) in cases {
        let (status, body) = call(&r, "GET", paths::api::SESSION, &t, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{what}");
    }
    // Without any JWT flag, a JWT is refused too.
    let plain = TestApp::new().router().await;
    assert_eq!(
        call(&plain, "GET", paths::api::SESSION, &rs(&good), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn users_are_provisioned_from_claims_and_farms_stay_apart() {
    let r = router(|_| {}).await;
    let farmer = rs(&claims("p-farmer-1", "jwt-farm-c", "farmer"));
    let support = token(
        Alg::Es256(Some("ec-1")),
        &claims("p-support-1", "jwt-farm-c", "support"),
    );
    let stranger = rs(&claims("p-farmer-9", "jwt-farm-d", "farmer"));
    let (status, list) = call(&r, "GET", paths::api::CONVERSATIONS, &farmer, None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let ids: Vec<&str> = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c-p-farmer-1-assistant", "c-p-farmer-1-support"]);
    let support_chat = "c-p-farmer-1-support";
    let (status, sent) = call(
        &r,
        "POST",
        paths::api::SEND,
        &farmer,
        Some(json!({"conversationId": support_chat, "text": "JWT で書きました", "idempotencyKey": "jwt-1"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    // Support staff who first appear after the farmer's chat was made still see it.
    let (_, inbox) = call(&r, "GET", paths::api::CONVERSATIONS, &support, None).await;
    let chat = inbox["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == support_chat)
        .cloned()
        .unwrap();
    assert_eq!(chat["unread"], 1);
    assert_eq!(chat["ownerName"], "p-farmer-1 さん");
    let (status, reply) = call(
        &r,
        "POST",
        paths::api::SEND,
        &support,
        Some(json!({"conversationId": support_chat, "text": "承知しました", "idempotencyKey": "jwt-2"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    // Another farm: not even revealed.
    let (status, _) = call(
        &r,
        "GET",
        &format!("/api/chat/history?conversationId={support_chat}"),
        &stranger,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, theirs) = call(&r, "GET", paths::api::CONVERSATIONS, &stranger, None).await;
    assert!(
        theirs["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"] != support_chat)
    );
    // A demo user's id claimed for another farm is refused, not merged.
    let impostor = rs(&claims("u-farmer", "jwt-farm-d", "farmer"));
    assert_eq!(
        call(&r, "GET", paths::api::SESSION, &impostor, None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // The stream works on a ticket for the token's user.
    let (status, ticket) = call(&r, "POST", paths::api::STREAM_TICKET, &farmer, None).await;
    assert_eq!(status, StatusCode::OK);
    let req = Request::builder()
        .uri(format!(
            "/api/chat/stream?ticket={}",
            ticket["ticket"].as_str().unwrap()
        ))
        .header(header::HOST, "127.0.0.1:3000")
        .body(Body::empty())
        .unwrap();
    let res = r.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_demo_sign_in_can_be_turned_off() {
    let r = router(|c| c.no_demo_login = true).await;
    let req = Request::builder()
        .method("POST")
        .uri(paths::api::SESSION)
        .header(header::HOST, "127.0.0.1:3000")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"userId":"u-farmer"}"#))
        .unwrap();
    let answer = oneshot(&r, req).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let body = answer.json();
    assert_eq!(body["error"]["code"], "demo_login_disabled");
    let t = rs(&claims("p-only-jwt", "jwt-farm-e", "farmer"));
    assert_eq!(
        call(&r, "GET", paths::api::SESSION, &t, None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_misconfiguration_is_a_clear_error_at_start() {
    let mut c = Config::for_tests();
    c.jwt_secret = Some("short".into());
    let e = AppState::new(c).await.unwrap_err().to_string();
    assert!(e.contains("32 bytes"), "{e}");
    let mut c = Config::for_tests();
    c.jwt_jwks = Some("/nonexistent/jwks.json".into());
    let e = AppState::new(c).await.unwrap_err().to_string();
    assert!(e.contains("--jwt-jwks"), "{e}");
}

/// A JWKS endpoint the test controls: it serves `body` (503 while `None`) and counts requests.
struct KeyServer {
    url: String,
    body: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl KeyServer {
    async fn start(body: Option<Value>) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/pool/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let body = std::sync::Arc::new(std::sync::Mutex::new(body.map(|b| b.to_string())));
        let fetches = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (served, counted) = (body.clone(), fetches.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (served, counted) = (served.clone(), counted.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let answer = match served.lock().unwrap().clone() {
                        Some(body) => format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                             cache-control: public, max-age=3600\r\ncontent-length: {}\r\n\
                             connection: close\r\n\r\n{body}",
                            body.len()
                        ),
                        None => "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\
                                 connection: close\r\n\r\n"
                            .to_owned(),
                    };
                    let _ = socket.write_all(answer.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self {
            url,
            body,
            fetches,
            task,
        }
    }

    fn serve(&self, body: Option<Value>) {
        *self.body.lock().unwrap() = body.map(|b| b.to_string());
    }

    fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for KeyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A JWKS of the test's RSA key (`rsa-1`) and, with `ec`, its P-256 key under `ec_kid`.
fn jwks_of(ec_kid: Option<&str>) -> Value {
    let rsa = KEYS.rsa.to_public_key();
    let mut keys = vec![
        json!({"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "n": b64(&rsa.n().to_bytes_be()), "e": b64(&rsa.e().to_bytes_be())}),
    ];
    if let Some(kid) = ec_kid {
        let point = KEYS.ec.verifying_key().to_encoded_point(false);
        keys.push(json!({"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())}));
    }
    json!({ "keys": keys })
}

/// A server whose keys come from `url` alone (no file, no secret).
async fn by_url(url: &str) -> Router {
    let url = url.to_owned();
    TestApp::new()
        .config(|c| {
            c.jwt_jwks_url = Some(url);
            c.jwt_issuer = Some(ISSUER.into());
            c.jwt_audience = Some(AUDIENCE.into());
        })
        .router()
        .await
}

async fn ready(r: &Router) -> (StatusCode, Value) {
    call(r, "GET", paths::api::HEALTH_READY, "", None).await
}

/// Polls `check` every 50 ms, at most `tries` times; whether it ever held.
async fn eventually<F: std::future::Future<Output = bool>>(
    tries: u32,
    mut check: impl FnMut() -> F,
) -> bool {
    for _ in 0..tries {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_by_url_rotate_after_one_refetch_and_a_flood_of_unknown_kids_costs_one_fetch() {
    let keys = KeyServer::start(Some(jwks_of(None))).await;
    let r = by_url(&keys.url).await;
    assert!(
        eventually(100, || async { ready(&r).await.0 == StatusCode::OK }).await,
        "ready once the keys arrived: {}",
        ready(&r).await.1
    );
    assert_eq!(keys.fetches(), 1, "fetched once at start");
    let old = rs(&claims("p-url", "jwt-farm-url", "farmer"));
    assert_eq!(
        call(&r, "GET", paths::api::SESSION, &old, None).await.0,
        StatusCode::OK
    );

    // The platform rotates: a token signed with the new key names its new kid.
    keys.serve(Some(jwks_of(Some("ec-2026"))));
    let new = token(
        Alg::Es256(Some("ec-2026")),
        &claims("p-url-new", "jwt-farm-url", "farmer"),
    );
    // The first try is refused without waiting for the fetch it sets off; one refetch later
    // the new key signs in, and the old one still does.
    assert_eq!(
        call(&r, "GET", paths::api::SESSION, &new, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        eventually(100, || async {
            call(&r, "GET", paths::api::SESSION, &new, None).await.0 == StatusCode::OK
        })
        .await,
        "the rotated key is accepted after the refetch"
    );
    assert_eq!(keys.fetches(), 2, "exactly one refetch for the rotation");
    assert_eq!(
        call(&r, "GET", paths::api::SESSION, &old, None).await.0,
        StatusCode::OK
    );

    // A flood of made-up kids: every one refused, the endpoint asked at most once more.
    let before = keys.fetches();
    for i in 0..300 {
        let kid: &'static str = Box::leak(format!("made-up-{i}").into_boxed_str());
        let forged = token(
            Alg::Rs256(&KEYS.stranger, Some(kid)),
            &claims("p-forged", "jwt-farm-url", "support"),
        );
        assert_eq!(
            call(&r, "GET", paths::api::SESSION, &forged, None).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let flood = keys.fetches() - before;
    assert!(flood <= 1, "{flood} fetches for 300 unknown kids");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_is_down_keeps_the_last_good_keys_and_a_fresh_instance_waits_for_them() {
    let keys = KeyServer::start(None).await;
    let r = by_url(&keys.url).await;
    // Start-up does not fail while the endpoint is down; the instance is just not ready.
    assert!(
        eventually(100, || async { keys.fetches() >= 1 }).await,
        "fetched at start"
    );
    let (status, body) = ready(&r).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let keys_check = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "keys")
        .unwrap()
        .clone();
    assert_eq!(keys_check["ok"], false, "{body}");
    // (No token is tried yet: its unknown kid would use up this window's one refetch.)
    let t = rs(&claims("p-down", "jwt-farm-down", "farmer"));
    // It comes back: the retry loads the keys and the instance is ready.
    keys.serve(Some(jwks_of(None)));
    assert!(
        eventually(200, || async { ready(&r).await.0 == StatusCode::OK }).await,
        "ready after the endpoint came back"
    );
    assert_eq!(
        call(&r, "GET", paths::api::SESSION, &t, None).await.0,
        StatusCode::OK
    );
    // Down again, and a refetch set off by an unknown kid fails: the last good keys stay.
    keys.serve(None);
    let before = keys.fetches();
    let unknown = token(
        Alg::Rs256(&KEYS.stranger, Some("rotated-away")),
        &claims("p-down", "jwt-farm-down", "farmer"),
    );
    assert_eq!(
        call(&r, "GET", paths::api::SESSION, &unknown, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        eventually(100, || async { keys.fetches() > before }).await,
        "the refetch was tried"
    );
    assert_eq!(
        call(&r, "GET", paths::api::SESSION, &t, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        ready(&r).await.0,
        StatusCode::OK,
        "still ready on the kept keys"
    );
}

#[tokio::test]
async fn cognito_access_and_id_tokens_sign_in_with_groups_and_custom_claims() {
    let keys = KeyServer::start(Some(jwks_of(None))).await;
    let url = keys.url.clone();
    let r = TestApp::new()
        .config(|c| {
            c.jwt_jwks_url = Some(url);
            c.jwt_issuer = Some(ISSUER.into());
            c.jwt_audience = Some(AUDIENCE.into());
            c.jwt_tenant_claim = "custom:farm_id".into();
            c.jwt_role_claim = "cognito:groups".into();
            c.jwt_name_claim = "cognito:username".into();
        })
        .router()
        .await;
    assert!(eventually(100, || async { ready(&r).await.0 == StatusCode::OK }).await);
    // An access token: no aud, the app client in client_id, groups as an array.
    let access = json!({
        "sub": "c0ffee-support", "token_use": "access", "client_id": AUDIENCE,
        "cognito:groups": ["staff", "support"], "custom:farm_id": "cognito-farm",
        "cognito:username": "佐藤", "iss": ISSUER, "exp": now() + 600, "iat": now(),
    });
    let (status, body) = call(&r, "GET", paths::api::SESSION, &rs(&access), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["role"].as_str(),
            body["tenantId"].as_str(),
            body["displayName"].as_str()
        ),
        (Some("support"), Some("cognito-farm"), Some("佐藤"))
    );
    // An ID token: aud is the client; not in the support group, so a farmer.
    let id = json!({
        "sub": "c0ffee-farmer", "token_use": "id", "aud": AUDIENCE,
        "cognito:groups": ["farmers"], "custom:farm_id": "cognito-farm",
        "iss": ISSUER, "exp": now() + 600, "iat": now(),
    });
    let (status, body) = call(&r, "GET", paths::api::SESSION, &rs(&id), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["role"], "farmer");
    // Another app client's access token, or an ID token without our aud, is refused.
    let mut other = access.clone();
    other["client_id"] = json!("another-client");
    let mut id_no_aud = id.clone();
    id_no_aud.as_object_mut().unwrap().remove("aud");
    id_no_aud["client_id"] = json!(AUDIENCE);
    for refused in [other, id_no_aud] {
        assert_eq!(
            call(&r, "GET", paths::api::SESSION, &rs(&refused), None)
                .await
                .0,
            StatusCode::UNAUTHORIZED,
            "{refused}"
        );
    }
}
