//! What the browser's `JSON.parse` made of the wire, read by the protocol's readers.

use super::*;

/// The wasm reads what the browser's `JSON.parse` made of the wire, with the protocol's
/// readers (the golden tests hold them to serde natively; this holds the `JsValue` side).
#[wasm_bindgen_test]
fn stream_events_decode_from_the_browsers_json() {
    use farm_chat::api::decode_event;
    use farm_chat_protocol::{stream::DecodeError, task::PartBody};
    let data = r#"{"taskId":"t-1","messageId":"m-2","conversationId":"c-1","part":3,"type":"progress","current":2,"total":4,"percentage":50,"text":"分析中"}"#;
    match decode_event("task.progress", data) {
        Ok(StreamEvent::TaskProgress(e)) => {
            assert_eq!(e.task_id.as_str(), "t-1");
            assert_eq!(
                e.part.body,
                PartBody::Progress {
                    progress: Progress::new(2, 4),
                    text: "分析中".into()
                }
            );
        }
        other => panic!("{other:?}"),
    }
    let ready = r#"{"lastEventId":"1099511627781","serverTime":"t"}"#;
    match decode_event("ready", ready) {
        Ok(StreamEvent::Ready(r)) => assert_eq!(r.last_event_id.0, 1_099_511_627_781),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        decode_event("message.created", "{not json"),
        Err(DecodeError::BadData { reason, .. }) if reason == "the data is not JSON"
    ));
    assert!(matches!(
        decode_event("message.created", r#"{"conversationId":"c","messageId":"m","seq":1.5}"#),
        Err(DecodeError::BadData { reason, .. }) if reason.contains("seq")
    ));
    assert_eq!(
        decode_event("message.deleted", "{not json"),
        Err(DecodeError::UnknownEvent("message.deleted".into()))
    );
}
