//! The small parsers every request goes through: event ids (`Last-Event-ID`), ids and
//! cursors, session tokens, and origins. None panics; what each accepts is within the bounds
//! it promises.

#![no_main]

use std::sync::LazyLock;

use axum::http::HeaderValue;
use farm_chat_dev_server::{auth::Signer, cors, validate};
use farm_chat_protocol::EventId;
use libfuzzer_sys::fuzz_target;

static SIGNER: LazyLock<Signer> = LazyLock::new(|| Signer::new(b"fuzzing-key".to_vec()));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = text.parse::<EventId>() {
        assert_eq!(id.to_string().parse::<EventId>().ok(), Some(id), "{text:?}");
    }
    if validate::id("f", text).is_ok() {
        assert!(
            !text.is_empty() && text.len() <= validate::MAX_ID_LEN,
            "{text:?}"
        );
        assert!(text.bytes().all(|b| b.is_ascii_graphic()), "{text:?}");
    }
    if let Ok(n) = validate::number("n", text) {
        assert!(
            i64::try_from(n).is_ok(),
            "{text:?} → {n} is beyond what the store keeps"
        );
    }
    let _ = validate::text(text);
    if let Some(session) = SIGNER.verify(text) {
        assert_eq!(
            SIGNER.sign(session).to_ascii_lowercase(),
            text.to_ascii_lowercase(),
            "only tokens it signed verify"
        );
    }
    if let Ok(origin) = HeaderValue::from_str(text)
        && cors::origin_allowed(&origin, &[], true)
    {
        assert!(
            text.starts_with("http://127.0.0.1") || text.starts_with("http://localhost"),
            "{text:?} passed as a loopback origin"
        );
    }
});
