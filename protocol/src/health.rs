//! `GET /api/health`.

use serde::{Deserialize, Serialize};

/// The answer of `GET /api/health`: `{"status":"ok"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Health {
    /// Whether the server can serve requests.
    pub status: HealthStatus,
}

/// The server's state as `GET /api/health` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Serving requests.
    Ok,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_round_trips_through_the_golden_json() {
        let golden = r#"{"status":"ok"}"#;
        let health = Health {
            status: HealthStatus::Ok,
        };
        assert_eq!(serde_json::to_string(&health).unwrap(), golden);
        assert_eq!(serde_json::from_str::<Health>(golden).unwrap(), health);
    }

    #[test]
    fn an_unknown_status_is_an_error_not_a_default() {
        assert!(serde_json::from_str::<Health>(r#"{"status":"degraded"}"#).is_err());
    }
}
