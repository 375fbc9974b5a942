//! Id newtypes. On the wire each is a plain JSON string; in Rust each is its own type.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The id as it travels on the wire.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

string_id!(
    /// A user of a tenant, e.g. `u-farmer`.
    UserId
);
string_id!(
    /// A tenant (one farm), e.g. `demo-farm`.
    TenantId
);
string_id!(
    /// A conversation (the assistant chat or the support chat of one farmer).
    ConversationId
);
string_id!(
    /// A message, assigned by the server when a send is accepted.
    MessageId
);
string_id!(
    /// An assistant task (one farm job with progress and a result).
    TaskId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_json_strings() {
        let id = MessageId::from("m-42");
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""m-42""#);
        let back: MessageId = serde_json::from_str(r#""m-42""#).unwrap();
        assert_eq!(back, id);
        assert_eq!(back.to_string(), "m-42");
    }

    #[test]
    fn an_id_is_not_a_number() {
        assert!(serde_json::from_str::<TaskId>("42").is_err());
    }
}
