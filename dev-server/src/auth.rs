//! Sessions: signing in and out, the signed token (cookie or `Authorization: Bearer`), the
//! [`AuthUser`] extractor with its CSRF check, and single-use stream tickets.
//!
//! A session is a random 128-bit id stored in the [`Store`](crate::store::Store) with an
//! expiry; the token is that id plus an HMAC-SHA256 of it under a key kept in the store, so
//! tokens survive restarts and can't be forged or guessed. User and tenant come only from the
//! stored session, never from a header the client controls.

use std::time::Duration;

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, Method, header, request::Parts},
};
use farm_chat_protocol::{TenantId, UserId};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{
    directory::DirUser,
    error::ApiError,
    ids::{hex, unhex, unix_now},
    state::AppState,
};

/// The session cookie's name.
pub const COOKIE: &str = "farm_chat_session";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);
/// How long a stream ticket stays valid.
pub const TICKET_TTL: Duration = Duration::from_secs(30);

type HmacSha256 = Hmac<Sha256>;

/// Signs and verifies session tokens.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    /// A signer with this secret key.
    pub fn new(key: Vec<u8>) -> Self {
        Self { key }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length.
        HmacSha256::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("hmac accepts any key length"))
    }

    /// `session_id.signature`.
    pub fn sign(&self, session_id: &str) -> String {
        let mut mac = self.mac();
        mac.update(session_id.as_bytes());
        format!("{session_id}.{}", hex(&mac.finalize().into_bytes()))
    }

    /// The session id of a token with a valid signature.
    pub fn verify<'t>(&self, token: &'t str) -> Option<&'t str> {
        let (id, sig) = token.split_once('.')?;
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let sig = unhex(sig)?;
        let mut mac = self.mac();
        mac.update(id.as_bytes());
        mac.verify_slice(&sig).ok().map(|()| id)
    }
}

/// How the request proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The session cookie (CSRF-checked for unsafe methods).
    Cookie,
    /// `Authorization: Bearer`.
    Bearer,
    /// A single-use stream ticket.
    Ticket,
    /// `Authorization: Bearer` with a platform JWT (`--jwt-jwks`, `--jwt-secret`).
    PlatformToken,
}

/// The signed-in user of a request.
#[derive(Clone, Debug)]
pub struct AuthUser {
    /// From the directory.
    pub user: &'static DirUser,
    /// The session the request belongs to.
    pub session_id: String,
    /// When the session ends (seconds since the Unix epoch).
    pub expires_at: u64,
    /// How it authenticated.
    pub via: Via,
}

impl AuthUser {
    /// The user id.
    pub fn user_id(&self) -> UserId {
        UserId(self.user.id.to_owned())
    }

    /// The user's tenant.
    pub fn tenant_id(&self) -> TenantId {
        TenantId(self.user.tenant.to_owned())
    }
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            pair.trim()
                .strip_prefix(COOKIE)?
                .strip_prefix('=')
                .map(str::to_owned)
        })
}

fn bearer_token(headers: &HeaderMap) -> Option<Result<String, ApiError>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    Some(token.ok_or(ApiError::Unauthorized(
        "the Authorization header is not `Bearer <token>`",
    )))
}

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

/// Whose a ticket is.
#[derive(Clone, Debug)]
pub enum TicketOwner {
    /// A session of this server (checked again when the ticket is used: it may have ended).
    Session(String),
    /// A platform JWT's user, as the token said (until the token's `exp`).
    Token(AuthUser),
}

const SEP: char = '\u{1f}';

impl TicketOwner {
    /// The owner as a line of text, for a ticket kept in Redis.
    pub fn encode(&self) -> String {
        match self {
            Self::Session(session) => format!("s{SEP}{session}"),
            Self::Token(user) => format!(
                "j{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}",
                user.user.id,
                user.user.tenant,
                user.user.role.as_str(),
                user.user.display_name,
                user.expires_at,
                user.session_id
            ),
        }
    }

    /// The owner [`encode`](Self::encode) wrote, on whichever instance redeems it. A platform
    /// user this instance has not seen yet is provisioned from the ticket as from their token.
    pub fn decode(text: &str) -> Option<Self> {
        let mut fields = text.split(SEP);
        match fields.next()? {
            "s" => Some(Self::Session(fields.next()?.to_owned())),
            "j" => {
                let (id, tenant) = (fields.next()?, fields.next()?);
                let role = fields.next()?.parse().ok()?;
                let name = fields.next()?;
                let expires_at = fields.next()?.parse().ok()?;
                let session_id = fields.next()?.to_owned();
                let (user, _) =
                    crate::directory::provisioned::provision(id, tenant, role, name).ok()?;
                Some(Self::Token(AuthUser {
                    user,
                    session_id,
                    expires_at,
                    via: Via::PlatformToken,
                }))
            }
            _ => None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_with_the_key_that_signed_them() {
        let signer = Signer::new(vec![7; 32]);
        let id = crate::ids::random_id();
        let token = signer.sign(&id);
        assert_eq!(signer.verify(&token), Some(id.as_str()));
        assert_eq!(Signer::new(vec![8; 32]).verify(&token), None);
        let mut tampered = token.clone();
        tampered.replace_range(0..1, if token.starts_with('0') { "1" } else { "0" });
        assert_eq!(signer.verify(&tampered), None);
        for bad in [
            "",
            ".",
            "abc.def",
            "zz",
            &format!("{id}."),
            &format!("{id}.zz"),
        ] {
            assert_eq!(signer.verify(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; farm_chat_session=tok.en; b=2".parse().unwrap(),
        );
        assert_eq!(cookie_token(&headers).as_deref(), Some("tok.en"));
        headers.insert(header::COOKIE, "farm_chat_session_x=1".parse().unwrap());
        assert_eq!(cookie_token(&headers), None);
    }
}
