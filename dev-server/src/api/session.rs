//! `POST`, `GET`, `DELETE /api/session` and `POST /api/chat/stream-ticket`.

use std::net::{IpAddr, SocketAddr};

use axum::{
    Json,
    extract::{ConnectInfo, State},
    http::{Extensions, HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use farm_chat_protocol::session::{LoginRequest, SessionInfo, StreamTicket};

use crate::{
    auth::{self, AuthUser, COOKIE, SESSION_TTL},
    directory::DirUser,
    error::ApiError,
    error::ApiJson,
    state::AppState,
    store::SessionRecord,
    validate,
};

fn too_many_sign_ins(retry_after: u64, by: &'static str) -> ApiError {
    tracing::info!(by, retry_after, "sign-in rate limited");
    ApiError::rate_limited(retry_after, "サインイン", "sign-ins")
}

fn info(user: &DirUser, token: Option<String>) -> SessionInfo {
    SessionInfo {
        user_id: user.id.into(),
        tenant_id: user.tenant.into(),
        display_name: user.display_name.to_owned(),
        role: user.role,
        token,
    }
}

fn cookie(value: &str, max_age: u64) -> HeaderValue {
    // HttpOnly: scripts never see it. SameSite=Lax: other sites' forms can't use it.
    // Path=/api: only the API gets it. (No `Secure`: the dev-server speaks plain HTTP.)
    HeaderValue::try_from(format!(
        "{COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/api; Max-Age={max_age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("farm_chat_session=; Max-Age=0"))
}

/// `POST /api/session {"userId"}` → 200 with the user and a token, and the session cookie.
///
/// It sets a cookie, so it passes the same `Origin` check as every cookie request (another
/// site must not sign a visitor in as someone else), and it is rate limited per client address
/// and per user id.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: Extensions,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    if state.config.no_demo_login {
        return Err(ApiError::Forbidden {
            code: "demo_login_disabled",
            message: "デモのサインインは無効です / the demo sign-in is turned off; sign in through the platform".into(),
        });
    }
    crate::cors::check_csrf(&state.config, &headers)?;
    let client = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    if let Err(retry_after) = state
        .local
        .sign_in_by_client
        .check_shared(&*state.common.shared, "sign-in-client", &client)
        .await
    {
        return Err(too_many_sign_ins(retry_after, "client address"));
    }
    validate::id("userId", req.user_id.as_str())?;
    if let Err(retry_after) = state
        .local
        .sign_in_by_user
        .check_shared(
            &*state.common.shared,
            "sign-in-user",
            &req.user_id.as_str().to_owned(),
        )
        .await
    {
        return Err(too_many_sign_ins(retry_after, "user id"));
    }
    let Some(user) = crate::directory::user(req.user_id.as_str()) else {
        tracing::info!(%client, "sign-in refused: unknown user");
        return Err(ApiError::Unauthorized(
            "このユーザーは登録されていません / unknown user",
        ));
    };
    let record = SessionRecord {
        id: crate::ids::random_id(),
        user_id: req.user_id,
        expires_at: crate::ids::unix_now() + SESSION_TTL.as_secs(),
    };
    let token = state.common.signer.sign(&record.id);
    state.common.store.create_session(&record).await?;
    tracing::info!(userId = user.id, "signed in");
    let mut response = Json(info(user, Some(token.clone()))).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie(&token, SESSION_TTL.as_secs()));
    Ok(response)
}

/// `GET /api/session` → the current user, or 401.
pub async fn current(auth: AuthUser) -> Json<SessionInfo> {
    Json(info(auth.user, None))
}

/// `DELETE /api/session` → 204; the session ends everywhere, its streams close.
pub async fn logout(State(state): State<AppState>, auth: AuthUser) -> Result<Response, ApiError> {
    let id = auth.session_id.clone();
    state.common.store.delete_session(&id).await?;
    // Streams of this session end now instead of at their next request.
    if let Err(e) = state
        .common
        .bus
        .signal(crate::bus::Signal::SignedOut(auth.session_id))
        .await
    {
        // The session is gone: its streams end at their next use of it, or at its expiry.
        tracing::warn!(error = %e, "could not tell every instance about the sign-out");
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie("", 0));
    Ok(response)
}

/// `POST /api/chat/stream-ticket` → a single-use ticket for `GET /api/chat/stream?ticket=`.
pub async fn stream_ticket(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<StreamTicket>, ApiError> {
    let owner = if auth.via == auth::Via::PlatformToken {
        auth::TicketOwner::Token(auth.clone())
    } else {
        auth::TicketOwner::Session(auth.session_id.clone())
    };
    Ok(Json(StreamTicket {
        ticket: super::auth::issue_ticket(&state, owner).await?,
        expires_in: auth::TICKET_TTL.as_secs() as u32,
    }))
}
