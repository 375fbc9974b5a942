//! `POST /api/session` (sign in), `GET /api/session` (who am I), `DELETE /api/session`.

use serde::{Deserialize, Serialize};

use crate::ids::{TenantId, UserId};

/// `POST /api/session` body: the stand-in for the host site's single sign-on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    /// Who signs in, e.g. `u-farmer`.
    pub user_id: UserId,
}

/// What a user is on their farm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs the farm; has an assistant and a support conversation.
    Farmer,
    /// The farm's support staff; answers farmers' support conversations.
    Support,
}

/// The signed-in user, as `POST` and `GET /api/session` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    /// The user.
    pub user_id: UserId,
    /// Their farm; everything they see is scoped to it.
    pub tenant_id: TenantId,
    /// How the chat shows them, e.g. 「山田 太郎」.
    pub display_name: String,
    /// Farmer or support.
    pub role: Role,
    /// For `Authorization: Bearer` where cookies can't reach the API (cross-origin pages).
    /// Present only in the answer to `POST /api/session`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// `POST /api/chat/stream-ticket` answer: a single-use ticket for `GET /api/chat/stream?ticket=`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct StreamTicket {
    /// Opaque, single use.
    pub ticket: String,
    /// Seconds it stays valid.
    pub expires_in: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_info_golden_json() {
        let golden = r#"{"userId":"u-farmer","tenantId":"demo-farm","displayName":"山田 太郎","role":"farmer"}"#;
        let info = SessionInfo {
            user_id: "u-farmer".into(),
            tenant_id: "demo-farm".into(),
            display_name: "山田 太郎".into(),
            role: Role::Farmer,
            token: None,
        };
        assert_eq!(serde_json::to_string(&info).unwrap(), golden);
        assert_eq!(serde_json::from_str::<SessionInfo>(golden).unwrap(), info);
    }

    #[test]
    fn login_rejects_unknown_fields_and_wrong_types() {
        assert!(serde_json::from_str::<LoginRequest>(r#"{"userId":"u-farmer"}"#).is_ok());
        assert!(serde_json::from_str::<LoginRequest>(r#"{"userId":"u","tenantId":"x"}"#).is_err());
        assert!(serde_json::from_str::<LoginRequest>(r#"{"userId":7}"#).is_err());
    }
}
