//! Sessions: the signed token (cookie or `Authorization: Bearer`), the signed-in
//! [`AuthUser`], and the owners of single-use stream tickets. Authenticating a request
//! against the store is [`crate::api::auth`]'s.
//!
//! A session is a random 128-bit id stored in the [`Store`](crate::store::Store) with an
//! expiry; the token is that id plus an HMAC-SHA256 of it under a key kept in the store, so
//! tokens survive restarts and can't be forged or guessed. User and tenant come only from the
//! stored session, never from a header the client controls.

use std::time::Duration;

use axum::http::{HeaderMap, header};
use farm_chat_protocol::{TenantId, UserId};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{
    directory::DirUser,
    error::ApiError,
    ids::{hex, unhex},
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

/// The session token in the request's cookie, if any.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
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

/// The Bearer token of the `Authorization` header, if there is one (an error for another
/// scheme).
pub fn bearer_token(headers: &HeaderMap) -> Option<Result<String, ApiError>> {
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
