//! Ids, random values and clocks in their wire spellings: hex, random 128-bit ids, Unix
//! seconds, RFC 3339 timestamps. Every layer uses them, so they depend on nothing.

use std::time::{SystemTime, UNIX_EPOCH};

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of lower- or upper-case hex (at most 64 bytes); `None` for anything else.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// 128 random bits as hex: session ids, tickets, message ids.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    // The OS random source does not fail on the platforms we run on; if it ever does, a
    // panic in this request is better than a predictable id.
    getrandom::fill(&mut bytes).unwrap_or_else(|e| panic!("OS random source failed: {e}"));
    hex(&bytes)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Now, as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
