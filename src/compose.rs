//! Composer rules. Japanese users confirm IME conversions with Enter, so Enter must never send
//! while a composition is active.

use farm_chat_protocol::chat::MAX_TEXT_CHARS;

/// What a keydown in the composer does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAction {
    /// Send the message (and keep the key from inserting a line break).
    Send,
    /// Let the browser handle the key (typing, IME, Shift+Enter for a new line).
    Default,
}

/// A keydown's relevant fields.
#[derive(Clone, Copy, Debug)]
pub struct KeyDown<'a> {
    /// `KeyboardEvent.key`.
    pub key: &'a str,
    /// `KeyboardEvent.shiftKey`.
    pub shift: bool,
    /// `KeyboardEvent.isComposing`.
    pub is_composing: bool,
    /// `KeyboardEvent.keyCode` (229 while an IME processes the key, also in browsers that
    /// don't set `isComposing` on the confirming Enter).
    pub key_code: u32,
}

/// Enter sends, Shift+Enter adds a line, and nothing sends during an IME composition.
pub fn on_keydown(k: KeyDown<'_>) -> KeyAction {
    if k.is_composing || k.key_code == 229 {
        return KeyAction::Default;
    }
    if k.key == "Enter" && !k.shift {
        KeyAction::Send
    } else {
        KeyAction::Default
    }
}

/// Whether `text` can be sent: something besides white space, and not too long.
pub fn can_send(text: &str) -> bool {
    let chars = text.trim().chars().count();
    chars > 0 && chars <= MAX_TEXT_CHARS
}

/// `(used, limit)` once the text is within 10 % of the limit (the counter appears then).
pub fn counter(text: &str) -> Option<(usize, usize)> {
    let used = text.trim().chars().count();
    (used * 10 >= MAX_TEXT_CHARS * 9).then_some((used, MAX_TEXT_CHARS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(key: &str, shift: bool, is_composing: bool, key_code: u32) -> KeyAction {
        on_keydown(KeyDown {
            key,
            shift,
            is_composing,
            key_code,
        })
    }

    #[test]
    fn enter_sends_shift_enter_does_not() {
        assert_eq!(key("Enter", false, false, 13), KeyAction::Send);
        assert_eq!(key("Enter", true, false, 13), KeyAction::Default);
        assert_eq!(key("a", false, false, 65), KeyAction::Default);
    }

    #[test]
    fn no_send_while_an_ime_composition_is_active() {
        assert_eq!(
            key("Enter", false, true, 13),
            KeyAction::Default,
            "isComposing"
        );
        assert_eq!(
            key("Enter", false, false, 229),
            KeyAction::Default,
            "keyCode 229 (Safari's confirming Enter)"
        );
        assert_eq!(key("Process", false, true, 229), KeyAction::Default);
    }

    #[test]
    fn only_real_text_within_the_limit_can_be_sent() {
        assert!(can_send("牛"));
        assert!(!can_send(" \n\t"));
        assert!(can_send(&"あ".repeat(4000)));
        assert!(!can_send(&"あ".repeat(4001)));
    }

    #[test]
    fn the_counter_appears_near_the_limit() {
        assert_eq!(counter(&"あ".repeat(3599)), None);
        assert_eq!(counter(&"あ".repeat(3600)), Some((3600, 4000)));
        assert_eq!(counter(&"あ".repeat(4100)), Some((4100, 4000)));
    }
}
