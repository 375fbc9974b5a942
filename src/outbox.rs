//! The outbox: messages the user sent that the server has not stored yet, kept in the
//! browser's `localStorage` per API and user, so a reload or a crashed tab loses none of them.
//! After a reload they show as sending and go out once, with their original idempotency key
//! (a send that did reach the server is answered with the stored message, not stored twice);
//! they leave the outbox once stored or refused, and when the user signs out.
//!
//! `localStorage`, not IndexedDB: an entry must be on disk before the send's request leaves,
//! and `localStorage` writes synchronously (IndexedDB's transactions finish later, so a tab
//! closed right after the tap could lose the message). The entries are small (4,000
//! characters at most each) and few.
//!
//! Two tabs of one user share the outbox. A tab that takes an entry on (after a reload) claims
//! it for [`LEASE_MS`] and renews the claim with every attempt, so another tab that loads
//! meanwhile leaves it alone; a tab that died frees its entries when the lease runs out.
//!
//! [`Outbox`] is the pure logic, tested natively; [`storage`] reads and writes it.

use farm_chat_protocol::ConversationId;

/// How long a tab's claim on an entry lasts without being renewed.
pub const LEASE_MS: f64 = 30_000.0;

/// One unsent message.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The idempotency key it was first sent with (and always will be).
    pub key: String,
    /// Where.
    pub conversation: ConversationId,
    /// What.
    pub text: String,
    /// The tab delivering it.
    pub claimed_by: String,
    /// Until when that tab's claim holds (ms since the epoch).
    pub claimed_until: f64,
}

/// A user's unsent messages, oldest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outbox {
    /// The entries.
    pub entries: Vec<Entry>,
}

impl Outbox {
    /// A new send by `tab`, claimed by it.
    pub fn add(
        &mut self,
        key: &str,
        conversation: &ConversationId,
        text: &str,
        tab: &str,
        now: f64,
    ) {
        if self.entries.iter().any(|e| e.key == key) {
            return;
        }
        self.entries.push(Entry {
            key: key.to_owned(),
            conversation: conversation.clone(),
            text: text.to_owned(),
            claimed_by: tab.to_owned(),
            claimed_until: now + LEASE_MS,
        });
    }

    /// The message is stored (or refused for good): it leaves the outbox.
    pub fn remove(&mut self, key: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.key != key);
        before != self.entries.len()
    }

    /// `tab` is still working on `key`.
    pub fn renew(&mut self, key: &str, tab: &str, now: f64) {
        if let Some(entry) = self
            .entries
            .iter_mut()
            .find(|e| e.key == key && e.claimed_by == tab)
        {
            entry.claimed_until = now + LEASE_MS;
        }
    }

    /// The entries `tab` takes on now: its own, and those whose claim ran out (a tab that
    /// reloaded or died). Each is claimed for `tab`.
    pub fn take_over(&mut self, tab: &str, now: f64) -> Vec<Entry> {
        self.entries
            .iter_mut()
            .filter(|e| e.claimed_by == tab || e.claimed_until <= now)
            .map(|e| {
                e.claimed_by = tab.to_owned();
                e.claimed_until = now + LEASE_MS;
                e.clone()
            })
            .collect()
    }
}

/// The outbox in `localStorage`, as JSON: `[{key, conversationId, text, claimedBy,
/// claimedUntil}, …]` under `farm-chat:outbox:<api base>:<user id>`.
pub mod storage {
    use farm_chat_protocol::read::Json;
    use wasm_bindgen::JsValue;

    use super::{ConversationId, Entry, Outbox};
    use crate::api::Js;

    fn local() -> Option<web_sys::Storage> {
        web_sys::window()?.local_storage().ok().flatten()
    }

    /// The storage key of a user's outbox.
    pub fn name(api_base: &str, user: &str) -> String {
        format!("farm-chat:outbox:{api_base}:{user}")
    }

    /// The stored outbox (empty when there is none, or it is unreadable).
    pub fn load(name: &str) -> Outbox {
        let Some(text) = local().and_then(|s| s.get_item(name).ok().flatten()) else {
            return Outbox::default();
        };
        let Some(list) = js_sys::JSON::parse(&text)
            .ok()
            .map(Js)
            .and_then(|j| j.elements())
        else {
            return Outbox::default();
        };
        let entries = list
            .iter()
            .filter_map(|e| {
                Some(Entry {
                    key: e.field("key")?.string()?,
                    conversation: ConversationId(e.field("conversationId")?.string()?),
                    text: e.field("text")?.string()?,
                    claimed_by: e.field("claimedBy")?.string()?,
                    claimed_until: e.field("claimedUntil")?.number()?,
                })
            })
            .collect();
        Outbox { entries }
    }

    /// Writes the outbox (removes the item when it is empty).
    pub fn save(name: &str, outbox: &Outbox) {
        let Some(storage) = local() else { return };
        if outbox.entries.is_empty() {
            let _ = storage.remove_item(name);
            return;
        }
        let list = js_sys::Array::new();
        for e in &outbox.entries {
            let object = js_sys::Object::new();
            for (k, v) in [
                ("key", JsValue::from_str(&e.key)),
                ("conversationId", JsValue::from_str(e.conversation.as_str())),
                ("text", JsValue::from_str(&e.text)),
                ("claimedBy", JsValue::from_str(&e.claimed_by)),
                ("claimedUntil", JsValue::from_f64(e.claimed_until)),
            ] {
                let _ = js_sys::Reflect::set(&object, &JsValue::from_str(k), &v);
            }
            list.push(&object);
        }
        if let Some(text) = js_sys::JSON::stringify(&list)
            .ok()
            .and_then(|s| s.as_string())
        {
            // A full storage only loses the reload safety net, never the send itself.
            let _ = storage.set_item(name, &text);
        }
    }

    /// Reads, changes and writes the outbox in one go.
    pub fn update<T>(name: &str, change: impl FnOnce(&mut Outbox) -> T) -> T {
        let mut outbox = load(name);
        let out = change(&mut outbox);
        save(name, &outbox);
        out
    }

    /// This tab's id: kept in `sessionStorage`, which lives as long as the tab, across
    /// reloads, so a reloaded tab takes its own unsent messages on at once.
    pub fn tab_id() -> String {
        let storage = web_sys::window().and_then(|w| w.session_storage().ok().flatten());
        if let Some(id) = storage
            .as_ref()
            .and_then(|s| s.get_item("farm-chat:tab").ok().flatten())
        {
            return id;
        }
        let id = format!(
            "tab-{}-{}",
            js_sys::Date::now() as u64,
            (js_sys::Math::random() * 1e12) as u64
        );
        if let Some(storage) = storage {
            let _ = storage.set_item("farm-chat:tab", &id);
        }
        id
    }

    /// Forgets a user's outbox (sign-out).
    pub fn clear(name: &str) {
        if let Some(storage) = local() {
            let _ = storage.remove_item(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox() -> Outbox {
        let mut o = Outbox::default();
        o.add("k1", &"c-1".into(), "一通目", "tab-a", 0.0);
        o.add("k2", &"c-2".into(), "二通目", "tab-a", 0.0);
        o
    }

    #[test]
    fn a_send_is_kept_once_until_it_is_stored() {
        let mut o = outbox();
        o.add("k1", &"c-1".into(), "一通目", "tab-a", 1.0);
        assert_eq!(o.entries.len(), 2, "the same key once");
        assert!(o.remove("k1"));
        assert!(!o.remove("k1"));
        assert_eq!(o.entries[0].key, "k2");
    }

    #[test]
    fn after_a_reload_the_messages_go_out_with_their_keys_and_two_tabs_never_both_take_one() {
        let mut o = outbox();
        // Tab A reloaded (a new tab id); within the lease, a new tab leaves them alone.
        assert!(o.take_over("tab-b", 10_000.0).is_empty());
        // Once the old claims ran out, the first tab to look takes both, in order...
        let taken = o.take_over("tab-b", LEASE_MS + 1.0);
        let keys: Vec<&str> = taken.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["k1", "k2"]);
        // ...and a third tab loading a moment later gets none.
        assert!(o.take_over("tab-c", LEASE_MS + 2.0).is_empty());
        // While B keeps renewing, C still gets none; when B stops, C takes over.
        o.renew("k1", "tab-b", 2.0 * LEASE_MS);
        assert_eq!(
            o.take_over("tab-c", 2.0 * LEASE_MS + 5.0).len(),
            1,
            "only k2's claim ran out"
        );
        assert_eq!(o.take_over("tab-c", 4.0 * LEASE_MS).len(), 2);
    }

    #[test]
    fn a_tab_takes_its_own_entries_again() {
        let mut o = outbox();
        assert_eq!(o.take_over("tab-a", 5.0).len(), 2);
    }
}
