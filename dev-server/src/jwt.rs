//! The platform's own sign-in: JWTs as Bearer tokens (`--jwt-jwks`, `--jwt-secret`).
//!
//! Verification is strict on purpose, because a JWT says who the user is and which farm they
//! belong to:
//! - the algorithm comes from the header but must be one this server was given a key for, and
//!   the key's type must match it: RS256 and ES256 only with a JWKS key of that type (picked by
//!   `kid`, so keys can rotate), HS256 only with the configured secret. `none` and anything
//!   else are refused, so a token "signed" with the public RSA key as an HMAC secret fails;
//! - `exp` is required; `exp`, `nbf`, `iss` and `aud` are checked with [`SKEW_SECS`] of clock
//!   allowance;
//! - the user id (`sub`), tenant, role and display name come from claims whose names are
//!   configurable ([`ClaimNames`]).

pub mod jwks;

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, RwLock},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use farm_chat_protocol::session::Role;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Clock allowance for `exp`, `nbf` and `iat`, in seconds.
pub const SKEW_SECS: u64 = 60;

/// Why a token was refused (logged; the client only learns that it was).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts of JSON.
    #[error("not a well-formed JWT")]
    Malformed,
    /// `alg` is not one this server has a key for (`none` included).
    #[error("algorithm {0:?} is not accepted")]
    Algorithm(String),
    /// No key with the token's `kid` (or no `kid` and several keys).
    #[error("no key for kid {0:?}")]
    UnknownKey(Option<String>),
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// `exp` is past (or missing).
    #[error("expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("not yet valid")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    Issuer,
    /// `aud` does not name the configured audience.
    #[error("wrong audience")]
    Audience,
    /// A claim the server needs is missing or not a valid value.
    #[error("claim {0} is missing or invalid")]
    Claim(String),
}

/// Where the user's facts are in the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimNames {
    /// The farm (tenant) id. Default `tenant`.
    pub tenant: String,
    /// `farmer` or `support` (absent: farmer). Default `role`.
    pub role: String,
    /// The name the chat shows (absent: the user id). Default `name`.
    pub name: String,
    /// In a role claim that is an array of groups (Cognito's `cognito:groups`), the group of
    /// support staff. Default `support`.
    pub support_group: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            tenant: "tenant".into(),
            role: "role".into(),
            name: "name".into(),
            support_group: "support".into(),
        }
    }
}

/// Who a valid token says the user is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// `sub`.
    pub user_id: String,
    /// The tenant claim.
    pub tenant: String,
    /// The role claim.
    pub role: Role,
    /// The name claim.
    pub display_name: String,
    /// `exp` (seconds since the Unix epoch).
    pub expires_at: u64,
}

#[derive(Clone)]
pub(crate) enum PublicKey {
    Rsa(rsa::pkcs1v15::VerifyingKey<Sha256>),
    Ec(p256::ecdsa::VerifyingKey),
}

/// Public keys by `kid` (`""` for a key without one).
pub(crate) type Keys = HashMap<String, PublicKey>;

/// The keys and rules tokens are checked against.
pub struct Verifier {
    /// The `--jwt-jwks` file's keys, which stay whatever the URL serves.
    file_keys: Keys,
    /// Every key in use: the file's and the latest the URL served. Swapped whole by the
    /// fetcher; a request holds the lock only to clone the `Arc`.
    keys: RwLock<Arc<Keys>>,
    /// `--jwt-jwks-url`, when given.
    remote: Option<jwks::Remote>,
    secret: Option<Vec<u8>>,
    issuer: Option<String>,
    audience: Option<String>,
    claims: ClaimNames,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.current_keys();
        f.debug_struct("Verifier")
            .field("kids", &keys.keys().collect::<Vec<_>>())
            .field("remote", &self.remote)
            .field("secret", &self.secret.is_some())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

fn b64(part: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed)
}

impl Verifier {
    /// A verifier over a JWKS document (`{"keys":[…]}`: RSA keys with `n`/`e`, P-256 keys
    /// with `x`/`y`) and/or an HS256 secret. Keys of other types are skipped with a reason;
    /// none at all is an error unless `remote` (a JWKS URL, [`Verifier::with_remote`]) will
    /// bring them.
    pub fn new(
        jwks: Option<&str>,
        remote: bool,
        secret: Option<&str>,
        issuer: Option<String>,
        audience: Option<String>,
        claims: ClaimNames,
    ) -> Result<Self, String> {
        let keys = match jwks {
            Some(jwks) => parse_jwks(jwks)?,
            None => Keys::new(),
        };
        let secret = secret.map(|s| s.as_bytes().to_vec());
        if secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err("the HS256 secret must be at least 32 bytes".into());
        }
        if keys.is_empty() && secret.is_none() && !remote {
            return Err(
                "no usable key: give --jwt-jwks with RSA or P-256 keys, --jwt-jwks-url, or \
                 --jwt-secret"
                    .into(),
            );
        }
        Ok(Self {
            keys: RwLock::new(Arc::new(keys.clone())),
            file_keys: keys,
            remote: None,
            secret,
            issuer,
            audience,
            claims,
        })
    }

    /// Also takes keys from the JWKS at `url` ([`jwks::keep_fresh`] fetches them).
    pub fn with_remote(
        mut self,
        url: &str,
        client: crate::outbound::Client,
    ) -> Result<Self, String> {
        self.remote = Some(jwks::Remote::new(url, client)?);
        Ok(self)
    }

    /// The keys in use now.
    fn current_keys(&self) -> Arc<Keys> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts the URL's latest keys in use, beside the file's.
    pub(crate) fn install(&self, fetched: Keys) {
        let mut all = self.file_keys.clone();
        all.extend(fetched);
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(all);
    }

    /// Whether tokens can be checked: always, unless the keys come from a URL that has not
    /// answered yet (readiness waits for them).
    pub fn keys_loaded(&self) -> bool {
        self.remote.as_ref().is_none_or(jwks::Remote::loaded)
    }

    /// The URL's fetcher, when keys come from one.
    pub fn remote(&self) -> Option<&jwks::Remote> {
        self.remote.as_ref()
    }

    /// Whether `token` looks like a JWT (three parts) rather than this server's own session
    /// token (two).
    pub fn looks_like_jwt(token: &str) -> bool {
        token.split('.').count() == 3
    }

    /// The claims of a valid token at `now` (seconds since the Unix epoch).
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, JwtError> {
        let mut parts = token.split('.');
        let (Some(head), Some(body), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header: Value = serde_json::from_slice(&b64(head)?).map_err(|_| JwtError::Malformed)?;
        let signature = b64(sig)?;
        let signed = &token[..head.len() + 1 + body.len()];
        let alg = header["alg"].as_str().unwrap_or_default();
        let kid = header["kid"].as_str().map(str::to_owned);
        match alg {
            "HS256" => {
                let secret = self
                    .secret
                    .as_ref()
                    .ok_or_else(|| JwtError::Algorithm(alg.into()))?;
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(secret).map_err(|_| JwtError::Signature)?;
                mac.update(signed.as_bytes());
                mac.verify_slice(&signature)
                    .map_err(|_| JwtError::Signature)?;
            }
            "RS256" | "ES256" => {
                let keys = self.current_keys();
                let key = match &kid {
                    Some(kid) => keys.get(kid),
                    // Without a kid, only an unambiguous key will do.
                    None if keys.len() == 1 => keys.values().next(),
                    None => None,
                };
                let Some(key) = key else {
                    // Perhaps the platform rotated its keys: the fetcher looks again (at most
                    // once per 10 s, whatever the load); this request does not wait for it.
                    if let (Some(remote), Some(_)) = (&self.remote, &kid) {
                        remote.ask_refetch();
                    }
                    return Err(JwtError::UnknownKey(kid.clone()));
                };
                use rsa::signature::Verifier as _;
                match (alg, key) {
                    ("RS256", PublicKey::Rsa(key)) => {
                        let sig = rsa::pkcs1v15::Signature::try_from(signature.as_slice())
                            .map_err(|_| JwtError::Signature)?;
                        key.verify(signed.as_bytes(), &sig)
                            .map_err(|_| JwtError::Signature)?;
                    }
                    ("ES256", PublicKey::Ec(key)) => {
                        let sig = p256::ecdsa::Signature::from_slice(&signature)
                            .map_err(|_| JwtError::Signature)?;
                        key.verify(signed.as_bytes(), &sig)
                            .map_err(|_| JwtError::Signature)?;
                    }
                    // The key with this kid is of the other type: algorithm confusion.
                    _ => return Err(JwtError::Algorithm(alg.into())),
                }
            }
            other => return Err(JwtError::Algorithm(other.into())),
        }
        let claims: Value = serde_json::from_slice(&b64(body)?).map_err(|_| JwtError::Malformed)?;
        self.check_claims(&claims, now)
    }

    fn check_claims(&self, claims: &Value, now: u64) -> Result<Claims, JwtError> {
        let exp = claims["exp"].as_u64().ok_or(JwtError::Expired)?;
        if exp + SKEW_SECS <= now {
            return Err(JwtError::Expired);
        }
        if let Some(nbf) = claims.get("nbf") {
            let nbf = nbf.as_u64().ok_or_else(|| JwtError::Claim("nbf".into()))?;
            if nbf > now + SKEW_SECS {
                return Err(JwtError::NotYetValid);
            }
        }
        if let Some(issuer) = &self.issuer
            && claims["iss"].as_str() != Some(issuer.as_str())
        {
            return Err(JwtError::Issuer);
        }
        if let Some(audience) = &self.audience {
            let named = match &claims["aud"] {
                Value::String(a) => a == audience,
                Value::Array(list) => list.iter().any(|a| a.as_str() == Some(audience.as_str())),
                // Cognito's access tokens name their app client in `client_id`, not `aud`.
                Value::Null if claims["token_use"].as_str() == Some("access") => {
                    claims["client_id"].as_str() == Some(audience.as_str())
                }
                _ => false,
            };
            if !named {
                return Err(JwtError::Audience);
            }
        }
        let text = |name: &str| claims[name].as_str().filter(|s| !s.trim().is_empty());
        let user_id = text("sub").ok_or_else(|| JwtError::Claim("sub".into()))?;
        crate::validate::id("sub", user_id).map_err(|_| JwtError::Claim("sub".into()))?;
        let tenant =
            text(&self.claims.tenant).ok_or_else(|| JwtError::Claim(self.claims.tenant.clone()))?;
        crate::validate::id("tenant", tenant)
            .map_err(|_| JwtError::Claim(self.claims.tenant.clone()))?;
        let role = match &claims[&self.claims.role] {
            // A list of groups (Cognito's `cognito:groups`): support staff are in theirs.
            Value::Array(groups) => {
                if groups
                    .iter()
                    .any(|g| g.as_str() == Some(self.claims.support_group.as_str()))
                {
                    Role::Support
                } else {
                    Role::Farmer
                }
            }
            _ => match text(&self.claims.role) {
                None => Role::Farmer,
                Some(group) if group == self.claims.support_group => Role::Support,
                Some(role) => role
                    .parse::<Role>()
                    .map_err(|_| JwtError::Claim(self.claims.role.clone()))?,
            },
        };
        let display_name = text(&self.claims.name)
            .map(|n| n.chars().take(100).collect())
            .unwrap_or_else(|| user_id.to_owned());
        Ok(Claims {
            user_id: user_id.to_owned(),
            tenant: tenant.to_owned(),
            role,
            display_name,
            expires_at: exp,
        })
    }
}

/// The keys of a JWKS document (`{"keys":[…]}`: RSA keys with `n`/`e`, P-256 keys with
/// `x`/`y`); keys of other types are skipped with a reason.
pub(crate) fn parse_jwks(jwks: &str) -> Result<Keys, String> {
    let mut keys = Keys::new();
    let doc: Value =
        serde_json::from_str(jwks).map_err(|e| format!("the JWKS is not JSON: {e}"))?;
    let list = doc["keys"]
        .as_array()
        .ok_or("the JWKS has no \"keys\" array")?;
    for jwk in list {
        let kid = jwk["kid"].as_str().unwrap_or_default().to_owned();
        let field = |name: &str| -> Result<Vec<u8>, String> {
            let text = jwk[name]
                .as_str()
                .ok_or(format!("key {kid:?} has no {name}"))?;
            URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|_| format!("key {kid:?}: {name} is not base64url"))
        };
        let key = match (jwk["kty"].as_str(), jwk["crv"].as_str()) {
            (Some("RSA"), _) => {
                let n = rsa::BigUint::from_bytes_be(&field("n")?);
                let e = rsa::BigUint::from_bytes_be(&field("e")?);
                let key = rsa::RsaPublicKey::new(n, e).map_err(|e| format!("key {kid:?}: {e}"))?;
                if rsa::traits::PublicKeyParts::size(&key) < 256 {
                    return Err(format!("key {kid:?}: RSA keys need 2048 bits or more"));
                }
                PublicKey::Rsa(rsa::pkcs1v15::VerifyingKey::new(key))
            }
            (Some("EC"), Some("P-256")) => {
                let point = p256::EncodedPoint::from_affine_coordinates(
                    p256::FieldBytes::from_slice(&fixed32(&field("x")?)?),
                    p256::FieldBytes::from_slice(&fixed32(&field("y")?)?),
                    false,
                );
                PublicKey::Ec(
                    p256::ecdsa::VerifyingKey::from_encoded_point(&point)
                        .map_err(|_| format!("key {kid:?}: not a P-256 point"))?,
                )
            }
            (kty, crv) => {
                tracing::warn!(
                    kid,
                    ?kty,
                    ?crv,
                    "JWKS key skipped: only RSA and EC P-256 keys are used"
                );
                continue;
            }
        };
        keys.insert(kid, key);
    }
    Ok(keys)
}

/// A P-256 coordinate: exactly 32 bytes.
fn fixed32(bytes: &[u8]) -> Result<[u8; 32], String> {
    bytes
        .try_into()
        .map_err(|_| "a P-256 coordinate is 32 bytes".to_owned())
}

/// A short, stable name for a token's "session" (stream caps, sign-out): never the token.
pub fn session_of(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    format!("jwt-{}", crate::ids::hex(&digest[..16]))
}
