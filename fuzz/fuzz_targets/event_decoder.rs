//! The decoder of stream events, as the widget reads them (the same readers over
//! `serde_json`): an `event:` name and a `data:` text from the input. It never panics, and
//! whatever it accepts survives a round trip through the server's own encoding unchanged.

#![no_main]

use farm_chat_protocol::StreamEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (name, data) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(event) = StreamEvent::decode(name, data) {
        let again = StreamEvent::decode(event.name(), &event.data())
            .unwrap_or_else(|e| panic!("{name} {data:?} decoded, its encoding did not: {e}"));
        assert_eq!(again, event, "{name} {data:?}");
    }
});
