//! `GET /api/health`, `/api/health/live` and `/api/health/ready`: what a load balancer, a
//! Kubernetes probe and the widget's status line ask.

use serde::{Deserialize, Serialize};

/// The answer of `GET /api/health` and `GET /api/health/live`: `{"status":"ok"}` (200), or
/// `{"status":"unavailable"}` (503) from `/api/health` while a readiness check fails.
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
    /// A check failed (the store or the bus did not answer, no JWT keys yet) or the server
    /// is draining: send new work elsewhere.
    Unavailable,
}

/// The answer of `GET /api/health/ready`: the status and each check (200 when every check
/// passed, else 503).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Readiness {
    /// `ok` when every check passed.
    pub status: HealthStatus,
    /// Each check, in a fixed order.
    pub checks: Vec<HealthCheck>,
}

/// One readiness check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HealthCheck {
    /// What was checked.
    pub name: CheckName,
    /// Whether it passed.
    pub ok: bool,
    /// Why it failed (never a secret or a server's internals: those are in the log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What readiness checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum CheckName {
    /// The database answered within a second.
    Store,
    /// The event bus (Redis with several instances) answered within a second.
    Bus,
    /// The platform's JWT keys are loaded (with `--jwt-jwks-url`).
    Keys,
    /// The server is not shutting down.
    Draining,
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
    fn readiness_names_each_check_in_its_one_spelling() {
        let ready = Readiness {
            status: HealthStatus::Unavailable,
            checks: vec![
                HealthCheck {
                    name: CheckName::Store,
                    ok: false,
                    detail: Some("no answer within 1 s".into()),
                },
                HealthCheck {
                    name: CheckName::Draining,
                    ok: true,
                    detail: None,
                },
            ],
        };
        let golden = r#"{"status":"unavailable","checks":[{"name":"store","ok":false,"detail":"no answer within 1 s"},{"name":"draining","ok":true}]}"#;
        assert_eq!(serde_json::to_string(&ready).unwrap(), golden);
        assert_eq!(serde_json::from_str::<Readiness>(golden).unwrap(), ready);
        for name in CheckName::ALL {
            assert_eq!(
                serde_json::to_value(name).unwrap().as_str(),
                Some(name.as_str())
            );
            assert_eq!(name.as_str().parse::<CheckName>().ok(), Some(*name));
        }
        assert!("disk".parse::<CheckName>().is_err());
    }

    #[test]
    fn an_unknown_status_is_an_error_not_a_default() {
        assert!(serde_json::from_str::<Health>(r#"{"status":"degraded"}"#).is_err());
    }
}
