//! `POST`, `GET`, `DELETE /api/session` and `POST /api/chat/stream-ticket`.

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use farm_chat_protocol::session::{LoginRequest, SessionInfo, StreamTicket};

use crate::{
    ApiError, AppState,
    auth::{self, AuthUser, COOKIE, SESSION_TTL},
    directory::DirUser,
    error::ApiJson,
    store::SessionRecord,
    validate,
};

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
pub async fn login(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    validate::id("userId", req.user_id.as_str())?;
    let Some(user) = crate::directory::user(req.user_id.as_str()) else {
        return Err(ApiError::Unauthorized(
            "このユーザーは登録されていません / unknown user",
        ));
    };
    let record = SessionRecord {
        id: auth::random_id(),
        user_id: req.user_id,
        expires_at: auth::unix_now() + SESSION_TTL.as_secs(),
    };
    let token = state.signer.sign(&record.id);
    state.db(move |s| s.create_session(&record)).await?;
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
    state.db(move |s| s.delete_session(&id)).await?;
    // Streams of this session end now instead of at their next request.
    let _ = state.logouts.send(auth.session_id);
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie("", 0));
    Ok(response)
}

/// `POST /api/chat/stream-ticket` → a single-use ticket for `GET /api/chat/stream?ticket=`.
pub async fn stream_ticket(State(state): State<AppState>, auth: AuthUser) -> Json<StreamTicket> {
    Json(StreamTicket {
        ticket: state.tickets.issue(&auth.session_id),
        expires_in: auth::TICKET_TTL.as_secs() as u32,
    })
}
