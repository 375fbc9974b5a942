//! Input rules shared by the handlers. A rule broken is a 400 with a code, never a panic.

use farm_chat_protocol::chat::MAX_TEXT_CHARS;

use crate::error::ApiError;

/// The longest id accepted anywhere.
pub const MAX_ID_LEN: usize = 128;

/// Ids (user, conversation, idempotency key, …): 1–128 of `A–Z a–z 0–9 . _ : -`. That keeps
/// NUL, CR/LF, spaces and markup out of logs, headers and SQL alike.
pub fn id(field: &str, value: &str) -> Result<(), ApiError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_ID_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_id",
            format!(
                "{field} must be 1–{MAX_ID_LEN} characters of A–Z, a–z, 0–9, '.', '_', ':' or '-'"
            ),
        ))
    }
}

/// An optional query parameter that names a wire enum, parsed by the enum's one spelling
/// (`FromStr`); anything else is a 400 `invalid_query` saying `expected`.
pub fn query_enum<T: std::str::FromStr>(
    value: Option<&str>,
    expected: &str,
) -> Result<Option<T>, ApiError> {
    value
        .map(str::parse::<T>)
        .transpose()
        .map_err(|_| ApiError::bad_request("invalid_query", expected.to_owned()))
}

/// Message text: no NUL, 1–4000 characters after trimming. Returns the trimmed text.
pub fn text(value: &str) -> Result<&str, ApiError> {
    if value.contains('\0') {
        return Err(ApiError::bad_request(
            "invalid_text",
            "text must not contain NUL characters",
        ));
    }
    let trimmed = value.trim();
    let chars = trimmed.chars().count();
    if chars == 0 {
        return Err(ApiError::bad_request(
            "invalid_text",
            "メッセージが空です / text is empty",
        ));
    }
    if chars > MAX_TEXT_CHARS {
        return Err(ApiError::bad_request(
            "invalid_text",
            format!(
                "メッセージが長すぎます / text is {chars} characters, at most {MAX_TEXT_CHARS} are allowed"
            ),
        ));
    }
    Ok(trimmed)
}

/// A non-negative integer query parameter, strictly decimal.
pub fn number(field: &str, value: &str) -> Result<u64, ApiError> {
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("{field} must be a non-negative integer"),
        ));
    }
    // Stored as SQL INTEGER (signed 64-bit): anything above would wrap negative.
    value
        .parse::<u64>()
        .ok()
        .filter(|n| i64::try_from(*n).is_ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!("{field} is out of range (at most {})", i64::MAX),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_control_characters_and_markup() {
        for bad in [
            "",
            "a b",
            "a\0",
            "a\r\nb",
            "<x>",
            "a/b",
            "é",
            &"x".repeat(129),
        ] {
            assert!(id("f", bad).is_err(), "{bad:?}");
        }
        for good in [
            "u-farmer",
            "c-demo-farm-u-farmer-assistant",
            "0f3c.a_b:c",
            &"x".repeat(128),
        ] {
            assert!(id("f", good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn text_is_trimmed_and_bounded_in_characters_not_bytes() {
        assert_eq!(text("  こんにちは \n").unwrap(), "こんにちは");
        assert!(text(" \n\t ").is_err());
        assert!(text("a\0b").is_err());
        assert!(
            text(&"牛".repeat(4000)).is_ok(),
            "4000 three-byte characters are fine"
        );
        assert!(text(&"牛".repeat(4001)).is_err());
    }

    #[test]
    fn numbers_are_strict() {
        assert_eq!(number("n", "42").unwrap(), 42);
        for bad in ["", "-1", "+1", "1e3", " 1", "99999999999999999999"] {
            assert!(number("n", bad).is_err(), "{bad:?}");
        }
    }
}
