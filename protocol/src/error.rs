//! The error body of every failing API call.

use serde::{Deserialize, Serialize};

/// `{"error":{"code":"snake_case_code","message":"…"}}`: what every non-2xx API answer carries,
/// so the widget can react to `code` and show `message` without guessing at the shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ErrorBody {
    /// The one error of this answer.
    pub error: ErrorDetail,
}

/// One error: a stable machine code and a human-readable message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ErrorDetail {
    /// Stable, snake_case (`not_found`, `csrf_rejected`, …): what clients branch on.
    pub code: String,
    /// For people; may change wording at any time. Never carries 5xx internals.
    pub message: String,
}

impl ErrorBody {
    /// An error body with this code and message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact bytes clients parse: a golden string, not a round trip of our own output.
    const GOLDEN: &str = r#"{"error":{"code":"not_found","message":"no route for GET /api/nope"}}"#;

    #[test]
    fn error_body_matches_the_golden_json() {
        let body = ErrorBody::new("not_found", "no route for GET /api/nope");
        assert_eq!(serde_json::to_string(&body).unwrap(), GOLDEN);
        assert_eq!(serde_json::from_str::<ErrorBody>(GOLDEN).unwrap(), body);
    }

    #[test]
    fn an_error_without_a_code_is_rejected() {
        assert!(serde_json::from_str::<ErrorBody>(r#"{"error":{"message":"x"}}"#).is_err());
    }
}
