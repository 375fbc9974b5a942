//! The built-in demo directory: tenants (farms) and their users. It stands in for the host
//! site's user database; sign-in (`POST /api/session`) only accepts these users.

use std::{collections::HashSet, sync::Mutex};

use farm_chat_protocol::{ConversationId, UserId, chat::ConversationKind, session::Role};

use crate::store::{ConversationRecord, Store, StoreResult};

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
        id: "u-farmer-2",
        tenant: "demo-farm",
        display_name: "田中 花子",
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
    USERS
        .iter()
        .find(|u| u.id == id)
        .or_else(|| load::user(id))
        .or_else(|| provisioned::user(id))
}

/// The users of a tenant with a role.
pub fn users_of(tenant: &str, role: Role) -> Vec<&'static DirUser> {
    let mut users: Vec<_> = USERS
        .iter()
        .filter(|u| u.tenant == tenant && u.role == role)
        .collect();
    users.extend(load::users_of(tenant, role));
    users.extend(provisioned::users_of(tenant, role));
    users
}

/// The conversations every farmer of a tenant has: their assistant chat and a support chat
/// with the tenant's support staff.
pub fn farmer_conversations(tenant: &str, farmer: &DirUser) -> [ConversationRecord; 2] {
    let support_staff = users_of(tenant, Role::Support)
        .into_iter()
        .map(|u| UserId(u.id.into()));
    [
        ConversationRecord {
            id: ConversationId(format!("c-{}-assistant", farmer.id)),
            tenant_id: tenant.into(),
            kind: ConversationKind::Assistant,
            title: "牧場アシスタント".into(),
            owner: farmer.id.into(),
            participants: vec![farmer.id.into()],
        },
        ConversationRecord {
            id: ConversationId(format!("c-{}-support", farmer.id)),
            tenant_id: tenant.into(),
            kind: ConversationKind::Support,
            title: format!("サポート: {}", farmer.display_name),
            owner: farmer.id.into(),
            participants: std::iter::once(UserId(farmer.id.into()))
                .chain(support_staff)
                .collect(),
        },
    ]
}

/// The directory's tenants provisioned in the store: each farmer's conversations created on
/// the tenant's first request (support staff see the support chats of every farmer of their
/// tenant). Conversations are durable, so this is once per tenant and process, and later
/// requests pay only a lock (not a transaction of `INSERT … ON CONFLICT DO NOTHING`s).
#[derive(Debug, Default)]
pub struct Tenants {
    ensured: Mutex<HashSet<&'static str>>,
}

impl Tenants {
    /// Creates `tenant`'s farmers' conversations unless this process already has.
    pub async fn ensure(&self, store: &dyn Store, tenant: &'static str) -> StoreResult<()> {
        if self.ensured.lock().is_ok_and(|t| t.contains(tenant)) {
            return Ok(());
        }
        let conversations: Vec<_> = users_of(tenant, Role::Farmer)
            .into_iter()
            .flat_map(|farmer| farmer_conversations(tenant, farmer))
            .collect();
        store.ensure_conversations(&conversations).await?;
        if let Ok(mut tenants) = self.ensured.lock() {
            tenants.insert(tenant);
        }
        Ok(())
    }
}

/// Users the platform's JWTs brought in (`--jwt-jwks`, `--jwt-secret`): built from the token's
/// claims on first use and kept for the life of the process (a changed name or role builds a
/// new entry). Their conversations and memberships are durable in the store; this is only
/// the process's view of who they are.
pub mod provisioned {
    use std::{collections::HashMap, sync::Mutex};

    use super::{DirUser, Role};

    static USERS: Mutex<Option<HashMap<String, &'static DirUser>>> = Mutex::new(None);

    /// Why a token's user can't be taken in.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct OtherFarm;

    /// The user of a token's claims, and whether they are new (or changed) to this process.
    /// A user id that already belongs to another farm is refused: ids are global here.
    pub fn provision(
        id: &str,
        tenant: &str,
        role: Role,
        display_name: &str,
    ) -> Result<(&'static DirUser, bool), OtherFarm> {
        if let Some(known) = super::USERS
            .iter()
            .find(|u| u.id == id)
            .or_else(|| super::load::user(id))
        {
            return if known.tenant == tenant {
                Ok((known, false))
            } else {
                Err(OtherFarm)
            };
        }
        let mut users = USERS.lock().unwrap_or_else(|p| p.into_inner());
        let users = users.get_or_insert_with(HashMap::new);
        if let Some(user) = users.get(id) {
            if user.tenant != tenant {
                return Err(OtherFarm);
            }
            if user.role == role && user.display_name == display_name {
                return Ok((user, false));
            }
        }
        let leak = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
        let user: &'static DirUser = Box::leak(Box::new(DirUser {
            id: leak(id),
            tenant: leak(tenant),
            display_name: leak(display_name),
            role,
        }));
        users.insert(id.to_owned(), user);
        Ok((user, true))
    }

    pub(super) fn user(id: &str) -> Option<&'static DirUser> {
        let users = USERS.lock().unwrap_or_else(|p| p.into_inner());
        users.as_ref()?.get(id).copied()
    }

    pub(super) fn users_of(tenant: &str, role: Role) -> Vec<&'static DirUser> {
        let users = USERS.lock().unwrap_or_else(|p| p.into_inner());
        users.as_ref().map_or_else(Vec::new, |users| {
            let mut found: Vec<_> = users
                .values()
                .filter(|u| u.tenant == tenant && u.role == role)
                .copied()
                .collect();
            found.sort_by_key(|u| u.id);
            found
        })
    }
}

/// Synthetic users for load tests, enabled by `--load-users N --load-support K` (off by default):
/// farmers `u-load-0` … `u-load-{N-1}`, each alone in a farm `load-<n>` (so a farm's setup
/// work stays small), and support staff `u-load-support-0` … `u-load-support-{K-1}` in farm
/// `load-0`, so one message in `c-u-load-0-support` reaches K + 1 users (the fan-out benchmark).
///
/// The sizes are process-wide (the largest enabled wins); each user is built once, on first
/// use, and kept for the life of the process.
pub mod load {
    use std::{
        collections::HashMap,
        sync::{Mutex, RwLock},
    };

    use super::{DirUser, Role};

    static SIZES: RwLock<(u32, u32)> = RwLock::new((0, 0));
    static BUILT: Mutex<Option<HashMap<String, &'static DirUser>>> = Mutex::new(None);

    /// Allows `farmers` load farmers and `support` load support users.
    pub fn enable(farmers: u32, support: u32) {
        if let Ok(mut sizes) = SIZES.write() {
            *sizes = (sizes.0.max(farmers), sizes.1.max(support));
        }
    }

    fn sizes() -> (u32, u32) {
        SIZES.read().map(|s| *s).unwrap_or((0, 0))
    }

    /// `u-load-<n>` → (Farmer, n); `u-load-support-<n>` → (Support, n), if enabled.
    fn parse(id: &str) -> Option<(Role, u32)> {
        let (farmers, support) = sizes();
        let rest = id.strip_prefix("u-load-")?;
        let (role, number, limit) = match rest.strip_prefix("support-") {
            Some(n) => (Role::Support, n, support),
            None => (Role::Farmer, rest, farmers),
        };
        // Canonical decimal only, so one user has one id.
        if number.is_empty() || (number.len() > 1 && number.starts_with('0')) {
            return None;
        }
        let n: u32 = number.parse().ok()?;
        (n < limit).then_some((role, n))
    }

    /// The load user with this id, if it exists.
    pub(super) fn user(id: &str) -> Option<&'static DirUser> {
        let (role, n) = parse(id)?;
        let mut built = BUILT.lock().ok()?;
        let built = built.get_or_insert_with(HashMap::new);
        if let Some(user) = built.get(id) {
            return Some(user);
        }
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let user: &'static DirUser = Box::leak(Box::new(DirUser {
            id: leak(id.to_owned()),
            tenant: match role {
                Role::Farmer => leak(format!("load-{n}")),
                Role::Support => "load-0",
            },
            display_name: leak(match role {
                Role::Farmer => format!("負荷試験 {n}"),
                Role::Support => format!("負荷試験サポート {n}"),
            }),
            role,
        }));
        built.insert(id.to_owned(), user);
        Some(user)
    }

    /// The load users of a tenant with a role.
    pub(super) fn users_of(tenant: &str, role: Role) -> Vec<&'static DirUser> {
        let (farmers, support) = sizes();
        let Some(n) = tenant
            .strip_prefix("load-")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            return Vec::new();
        };
        match role {
            Role::Farmer if n < farmers => user(&format!("u-load-{n}")).into_iter().collect(),
            Role::Support if n == 0 => (0..support)
                .filter_map(|k| user(&format!("u-load-support-{k}")))
                .collect(),
            _ => Vec::new(),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn load_users_exist_only_when_enabled_and_in_range() {
            assert!(super::user("u-load-99999999").is_none());
            enable(3, 2);
            let farmer = super::user("u-load-2").unwrap();
            assert_eq!((farmer.tenant, farmer.role), ("load-2", Role::Farmer));
            assert!(
                std::ptr::eq(farmer, super::user("u-load-2").unwrap()),
                "built once"
            );
            assert!(super::user("u-load-3").is_none(), "out of range");
            assert!(super::user("u-load-02").is_none(), "not canonical");
            assert!(super::user("u-load-").is_none());
            let staff = super::user("u-load-support-1").unwrap();
            assert_eq!((staff.tenant, staff.role), ("load-0", Role::Support));
            assert!(super::user("u-load-support-2").is_none());
            assert_eq!(users_of("load-0", Role::Support).len(), 2);
            assert_eq!(users_of("load-1", Role::Support).len(), 0);
            assert_eq!(users_of("load-1", Role::Farmer)[0].id, "u-load-1");
            assert!(users_of("demo-farm", Role::Farmer).is_empty());
        }
    }
}
