//! Authenticating a request: the [`AuthUser`] extractor (the Bearer token, else the session
//! cookie with its CSRF check; a platform JWT provisions its user on first use), and stream
//! tickets issued and redeemed through [`Shared`](crate::shared::Shared).

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, Method, request::Parts},
};

use farm_chat_protocol::{TenantId, UserId};

use crate::{
    auth::{AuthUser, TICKET_TTL, TicketOwner, Via, bearer_token, cookie_token},
    error::ApiError,
    ids::unix_now,
    state::AppState,
};

/// Who is asking: the Bearer token if there is one, else the session cookie. For unsafe
/// methods with the cookie, the `Origin` must be allowed (CSRF).
pub async fn authenticate(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<AuthUser, ApiError> {
    let (token, via) = match bearer_token(headers) {
        Some(token) => (token?, Via::Bearer),
        None => match cookie_token(headers) {
            Some(token) => (token, Via::Cookie),
            None => {
                return Err(ApiError::Unauthorized(
                    "サインインしてください / sign in first",
                ));
            }
        },
    };
    if via == Via::Bearer && crate::jwt::Verifier::looks_like_jwt(&token) {
        return jwt_user(state, &token).await;
    }
    let Some(session_id) = state.common.signer.verify(&token).map(str::to_owned) else {
        tracing::info!(via = ?via, "request refused: the session token's signature is not valid");
        return Err(ApiError::Unauthorized("the session token is not valid"));
    };
    let user = session_user(state, session_id, via).await?;
    if via == Via::Cookie && !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        crate::cors::check_csrf(&state.config, headers)?;
    }
    Ok(user)
}

async fn session_user(
    state: &AppState,
    session_id: String,
    via: Via,
) -> Result<AuthUser, ApiError> {
    let session = state.common.store.session(&session_id).await?;
    let Some(session) = session.filter(|s| s.expires_at > unix_now()) else {
        return Err(ApiError::Unauthorized(
            "セッションの有効期限が切れました / the session has ended",
        ));
    };
    let Some(user) = crate::directory::user(session.user_id.as_str()) else {
        return Err(ApiError::Unauthorized(
            "the session's user no longer exists",
        ));
    };
    tracing::Span::current().record("userId", user.id);
    Ok(AuthUser {
        user,
        session_id,
        expires_at: session.expires_at,
        via,
    })
}

/// The user of a platform JWT, provisioned from its claims on first use: a farmer gets their
/// assistant and support conversations, a support user joins every support conversation of
/// their farm.
async fn jwt_user(state: &AppState, token: &str) -> Result<AuthUser, ApiError> {
    let Some(verifier) = &state.common.jwt else {
        tracing::info!("request refused: a JWT, but no --jwt-jwks or --jwt-secret is set");
        return Err(ApiError::Unauthorized("this server does not accept JWTs"));
    };
    let claims = match verifier.verify(token, unix_now()) {
        Ok(claims) => claims,
        Err(e) => {
            tracing::info!(reason = %e, "request refused: the JWT is not valid");
            return Err(ApiError::Unauthorized("the token is not valid"));
        }
    };
    let Ok((user, new)) = crate::directory::provisioned::provision(
        &claims.user_id,
        &claims.tenant,
        claims.role,
        &claims.display_name,
    ) else {
        tracing::info!(
            userId = claims.user_id,
            tenant = claims.tenant,
            "request refused: the JWT's user belongs to another farm"
        );
        return Err(ApiError::Unauthorized(
            "the token's user belongs to another farm",
        ));
    };
    if new {
        let (tenant, id) = (TenantId(user.tenant.to_owned()), UserId(user.id.to_owned()));
        let role = user.role;
        match role {
            farm_chat_protocol::session::Role::Farmer => {
                let conversations = crate::directory::farmer_conversations(tenant.as_str(), user);
                state
                    .common
                    .store
                    .ensure_conversations(&conversations)
                    .await?;
            }
            farm_chat_protocol::session::Role::Support => {
                state
                    .common
                    .store
                    .join_support_conversations(&tenant, &id)
                    .await?;
            }
        }
        tracing::info!(userId = user.id, tenant = user.tenant, role = ?user.role, "user provisioned from a platform token");
    }
    tracing::Span::current().record("userId", user.id);
    Ok(AuthUser {
        user,
        session_id: crate::jwt::session_of(token),
        expires_at: claims.expires_at,
        via: Via::PlatformToken,
    })
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        authenticate(state, &parts.method, &parts.headers).await
    }
}

/// A new single-use stream ticket for `owner`, redeemable on any instance.
pub async fn issue_ticket(state: &AppState, owner: TicketOwner) -> Result<String, ApiError> {
    state
        .common
        .shared
        .issue_ticket(&owner, TICKET_TTL)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))
}

/// Authenticates a stream request by its ticket.
pub async fn authenticate_ticket(state: &AppState, ticket: &str) -> Result<AuthUser, ApiError> {
    let owner = state
        .common
        .shared
        .redeem_ticket(ticket)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    match owner {
        Some(TicketOwner::Session(session_id)) => {
            session_user(state, session_id, Via::Ticket).await
        }
        Some(TicketOwner::Token(user)) if user.expires_at > unix_now() => Ok(AuthUser {
            via: Via::Ticket,
            ..user
        }),
        _ => {
            tracing::info!("stream refused: the ticket is unknown, used or expired");
            Err(ApiError::Unauthorized(
                "the stream ticket is unknown, used or expired",
            ))
        }
    }
}
