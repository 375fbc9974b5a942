//! The built-in demo directory: tenants (farms) and their users. It stands in for the host
//! site's user database; sign-in (`POST /api/session`) only accepts these users.

use farm_chat_protocol::session::Role;

/// A user of the directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirUser {
    /// `u-farmer`, …
    pub id: &'static str,
    /// The farm.
    pub tenant: &'static str,
    /// How the chat shows them.
    pub display_name: &'static str,
    /// Farmer or support.
    pub role: Role,
}

/// Every user. `other-farm` exists so tests can prove tenants can't see each other.
pub const USERS: &[DirUser] = &[
    DirUser {
        id: "u-farmer",
        tenant: "demo-farm",
        display_name: "山田 太郎",
        role: Role::Farmer,
    },
    DirUser {
        id: "u-support",
        tenant: "demo-farm",
        display_name: "サポート 佐藤",
        role: Role::Support,
    },
    DirUser {
        id: "u-other",
        tenant: "other-farm",
        display_name: "鈴木 花子",
        role: Role::Farmer,
    },
];

/// A farm's name, for documents such as the shipment report.
pub fn farm_name(tenant: &str) -> &'static str {
    match tenant {
        "demo-farm" => "山田牧場",
        "other-farm" => "鈴木牧場",
        _ => "牧場",
    }
}

/// The user with this id.
pub fn user(id: &str) -> Option<&'static DirUser> {
    USERS.iter().find(|u| u.id == id)
}

/// The users of a tenant with a role.
pub fn users_of(tenant: &str, role: Role) -> impl Iterator<Item = &'static DirUser> {
    USERS
        .iter()
        .filter(move |u| u.tenant == tenant && u.role == role)
}
