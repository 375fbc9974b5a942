//! One stream per browser: what the tabs of one user say to each other.
//!
//! Widgets of the same user on the same origin elect a leader with the Web Locks API (the lock
//! is named by [`lock_name`]); only the leader holds an EventSource. It passes every event, its
//! connection status and its "refetch history" moments to the other tabs over a
//! `BroadcastChannel` of the same name, as the [`Wire`] messages here. Followers render from
//! those and send REST themselves. Every tab remembers the newest event id it has seen, so the
//! tab that takes the lock over (the leader closed, crashed or froze) resumes after it: nothing
//! lost; and dedup by messageId and by (taskId, part) in the store makes replays harmless.
//!
//! The messages are plain arrays of strings (cheap to post, no serde in the wasm for them).

use std::time::Duration;

use super::Status;

/// The lock and channel name for `user`'s stream from the API at `api_url` (absolute).
pub fn lock_name(api_url: &str, user: &str) -> String {
    format!("farm-chat:{}:{user}", api_url.trim_end_matches('/'))
}

/// What tabs post on the channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wire {
    /// The leader received this stream event.
    Event {
        /// Its `id:` (empty when it had none).
        id: String,
        /// Its event name.
        name: String,
        /// Its `data:`.
        data: String,
    },
    /// The leader's connection status changed (or a new tab asked).
    Status(Status),
    /// The leader reconnected or saw `reset`: history must be refetched.
    Refetch,
    /// A new tab asks the leader for its status.
    Hello,
}

impl Wire {
    /// The message as posted.
    pub fn encode(&self) -> Vec<String> {
        match self {
            Self::Event { id, name, data } => {
                vec!["event".into(), id.clone(), name.clone(), data.clone()]
            }
            Self::Status(status) => {
                let (kind, attempt, retry_ms) = match status {
                    Status::Connecting => ("connecting", 0, 0),
                    Status::Connected => ("connected", 0, 0),
                    Status::Reconnecting { attempt, retry_in } => {
                        ("reconnecting", *attempt, retry_in.as_millis() as u64)
                    }
                    Status::Offline => ("offline", 0, 0),
                    Status::SignedOut => ("signed-out", 0, 0),
                    Status::Closed => ("closed", 0, 0),
                };
                vec![
                    "status".into(),
                    kind.into(),
                    attempt.to_string(),
                    retry_ms.to_string(),
                ]
            }
            Self::Refetch => vec!["refetch".into()],
            Self::Hello => vec!["hello".into()],
        }
    }

    /// A posted message, or `None` for anything else (another version, another app).
    pub fn decode(parts: &[String]) -> Option<Self> {
        let part = |i: usize| parts.get(i).map(String::as_str);
        Some(match (part(0)?, parts.len()) {
            ("event", 4) => Self::Event {
                id: parts[1].clone(),
                name: parts[2].clone(),
                data: parts[3].clone(),
            },
            ("status", 4) => Self::Status(match part(1)? {
                "connecting" => Status::Connecting,
                "connected" => Status::Connected,
                "reconnecting" => Status::Reconnecting {
                    attempt: part(2)?.parse().ok()?,
                    retry_in: Duration::from_millis(part(3)?.parse().ok()?),
                },
                "offline" => Status::Offline,
                "signed-out" => Status::SignedOut,
                "closed" => Status::Closed,
                _ => return None,
            }),
            ("refetch", 1) => Self::Refetch,
            ("hello", 1) => Self::Hello,
            _ => return None,
        })
    }
}

/// A tab's part in the sharing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sharing is off or unsupported: this tab has its own stream.
    Solo,
    /// Another tab leads (or the election is pending): render what it sends.
    Follower,
    /// This tab holds the lock and the stream.
    Leader,
}

impl Role {
    /// Whether this tab drives its own connection (and so its own status).
    pub fn streams(self) -> bool {
        matches!(self, Self::Solo | Self::Leader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::Connection;
    use farm_chat_protocol::EventId;

    fn round_trip(wire: Wire) {
        assert_eq!(Wire::decode(&wire.encode()), Some(wire));
    }

    #[test]
    fn every_message_survives_the_channel() {
        round_trip(Wire::Event {
            id: "1099511627777".into(),
            name: "message.created".into(),
            data: r#"{"type":"message.created","data":{}}"#.into(),
        });
        round_trip(Wire::Event {
            id: String::new(),
            name: "ping".into(),
            data: String::new(),
        });
        for status in [
            Status::Connecting,
            Status::Connected,
            Status::Reconnecting {
                attempt: 3,
                retry_in: Duration::from_millis(1750),
            },
            Status::Offline,
            Status::SignedOut,
            Status::Closed,
        ] {
            round_trip(Wire::Status(status));
        }
        round_trip(Wire::Refetch);
        round_trip(Wire::Hello);
    }

    #[test]
    fn foreign_or_broken_messages_are_ignored() {
        let parts = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(Wire::decode(&[]), None);
        assert_eq!(Wire::decode(&parts(&["event", "1", "ping"])), None);
        assert_eq!(Wire::decode(&parts(&["status", "dancing", "0", "0"])), None);
        assert_eq!(
            Wire::decode(&parts(&["status", "reconnecting", "x", "0"])),
            None
        );
        assert_eq!(Wire::decode(&parts(&["hello", "extra"])), None);
        assert_eq!(Wire::decode(&parts(&["launch-missiles"])), None);
    }

    #[test]
    fn lock_names_are_scoped_to_api_and_user() {
        let a = lock_name("http://farm.example/api/", "u-farmer");
        assert_eq!(a, "farm-chat:http://farm.example/api:u-farmer");
        assert_ne!(a, lock_name("http://farm.example/api", "u-other"));
        assert_ne!(a, lock_name("http://other.example/api", "u-farmer"));
    }

    #[test]
    fn a_follower_resumes_after_the_newest_id_any_tab_saw() {
        let mut c = Connection::default();
        c.saw_elsewhere(EventId(7));
        c.saw_elsewhere(EventId(9));
        c.saw_elsewhere(EventId(8)); // late, older: ignored
        assert_eq!(c.last_event_id(), Some(EventId(9)));
        let effects = c.handle(super::super::Input::Open, 0.0, 0.5);
        assert!(
            effects.contains(&super::super::Effect::Connect {
                last_event_id: Some(EventId(9))
            }),
            "{effects:?}"
        );
    }

    #[test]
    fn only_solo_and_leader_tabs_stream() {
        assert!(Role::Solo.streams());
        assert!(Role::Leader.streams());
        assert!(!Role::Follower.streams());
    }
}
