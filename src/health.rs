//! [`ServerHealth`]: one line that says whether the dev-server answers `GET {api_base}/health`.

use farm_chat_protocol::{Health, HealthStatus};
use leptos::{prelude::*, task::spawn_local};

use crate::{
    api::{Api, ApiFailure},
    i18n::{Locale, Text},
};

/// What the widget knows about the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthState {
    /// The request is in flight.
    Checking,
    /// The server answered `{"status":"ok"}`.
    Ok,
    /// No answer, a non-2xx answer or an answer of the wrong shape; the reason, for the title.
    Unreachable(String),
}

impl HealthState {
    /// The state for the answer to `GET /health`.
    pub fn from_answer(answer: Result<Health, ApiFailure>) -> Self {
        match answer {
            Ok(Health {
                status: HealthStatus::Ok,
            }) => Self::Ok,
            Ok(Health {
                status: HealthStatus::Unavailable,
            }) => Self::Unreachable("unavailable".into()),
            Err(ApiFailure::Http { status, .. }) => Self::Unreachable(format!("HTTP {status}")),
            Err(e) => Self::Unreachable(e.to_string()),
        }
    }

    /// `data-state` value: a stable name for tests and styles.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Checking => "checking",
            Self::Ok => "ok",
            Self::Unreachable(_) => "unreachable",
        }
    }

    fn text(&self, locale: Locale) -> &'static str {
        locale.text(match self {
            Self::Checking => Text::ServerChecking,
            Self::Ok => Text::ServerOk,
            Self::Unreachable(_) => Text::ServerUnreachable,
        })
    }
}

async fn check(api_base: &str) -> HealthState {
    HealthState::from_answer(Api::new(api_base).fetch(&crate::api::Get::health()).await)
}

/// Asks the server once on mount and shows the answer.
#[component]
pub fn ServerHealth(
    /// Where the API lives, e.g. `/api` or `https://chat.example.jp/api`.
    #[prop(into)]
    api_base: String,
    /// The language of the line.
    #[prop(optional)]
    locale: Locale,
) -> impl IntoView {
    let (state, set_state) = signal(HealthState::Checking);
    spawn_local(async move {
        let result = check(&api_base).await;
        // The widget may have been unmounted meanwhile; then there is nobody to tell.
        let _ = set_state.try_set(result);
    });
    view! {
        <p
            class="fc-health"
            data-testid="server-health"
            data-state=move || state.with(HealthState::name)
            title=move || state.with(|s| match s {
                HealthState::Unreachable(why) => why.clone(),
                _ => String::new(),
            })
            role="status"
        >
            {move || state.with(|s| s.text(locale))}
        </p>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_only_for_a_2xx_with_the_ok_body() {
        let ok = Health {
            status: HealthStatus::Ok,
        };
        assert_eq!(HealthState::from_answer(Ok(ok)), HealthState::Ok);
        let unavailable = ApiFailure::Http {
            status: 503,
            code: "unavailable".into(),
            message: "down".into(),
        };
        assert!(matches!(
            HealthState::from_answer(Err(unavailable)),
            HealthState::Unreachable(why) if why == "HTTP 503"
        ));
        assert!(matches!(
            HealthState::from_answer(Err(ApiFailure::Decode("expected a value".into()))),
            HealthState::Unreachable(_)
        ));
    }
}
