//! Readiness: what a load balancer's health check and a Kubernetes readiness probe ask. The
//! store and the bus must each answer within [`CHECK_WITHIN`], the platform's JWT keys must
//! be loaded when they come from a URL, and the server must not be draining. The checks run
//! at once, so a probe waits at most about a second whatever is down.

use std::{sync::atomic::Ordering, time::Duration};

use axum::http::StatusCode;
use farm_chat_protocol::{CheckName, HealthCheck, HealthStatus, Readiness};

use crate::state::AppState;

/// How long a dependency may take to answer a probe.
pub const CHECK_WITHIN: Duration = Duration::from_secs(1);

/// The HTTP status of a health answer.
pub fn code(status: HealthStatus) -> StatusCode {
    match status {
        HealthStatus::Ok => StatusCode::OK,
        HealthStatus::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// A dependency's answer within [`CHECK_WITHIN`] as a check; the error itself goes to the
/// log, not to whoever probes.
async fn probe<E: std::fmt::Display>(
    name: CheckName,
    answer: impl std::future::Future<Output = Result<(), E>>,
) -> HealthCheck {
    let detail = match tokio::time::timeout(CHECK_WITHIN, answer).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            tracing::warn!(check = name.as_str(), error = %e, "readiness check failed");
            Some("error (see the server's log)".to_owned())
        }
        Err(_) => {
            tracing::warn!(
                check = name.as_str(),
                "readiness check: no answer within 1 s"
            );
            Some(format!("no answer within {CHECK_WITHIN:?}"))
        }
    };
    HealthCheck {
        name,
        ok: detail.is_none(),
        detail,
    }
}

/// Every check, now.
pub async fn readiness(state: &AppState) -> Readiness {
    let (store, bus) = tokio::join!(
        probe(CheckName::Store, state.common.store.ping()),
        probe(CheckName::Bus, state.common.bus.ping()),
    );
    let keys_loaded = state.common.jwt.as_ref().is_none_or(|j| j.keys_loaded());
    let keys = HealthCheck {
        name: CheckName::Keys,
        ok: keys_loaded,
        detail: (!keys_loaded).then(|| "no JWT keys from --jwt-jwks-url yet".to_owned()),
    };
    let draining = state.local.draining.load(Ordering::Relaxed);
    let drain = HealthCheck {
        name: CheckName::Draining,
        ok: !draining,
        detail: draining.then(|| "shutting down".to_owned()),
    };
    let checks = vec![store, bus, keys, drain];
    let status = if checks.iter().all(|c| c.ok) {
        HealthStatus::Ok
    } else {
        HealthStatus::Unavailable
    };
    Readiness { status, checks }
}
