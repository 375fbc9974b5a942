//! The API's endpoints as the widget calls them, each written once: a typed [`Get`] for what
//! it reads (so a retrying caller keeps the answer's type) and a typed method on [`Api`] for
//! what it changes. Paths come from `farm_chat_protocol::paths`; queries and bodies are built
//! here and nowhere else.

use std::marker::PhantomData;

use farm_chat_protocol::{
    ConversationId, Health,
    chat::{ConversationList, HistoryPage, SendResponse},
    paths,
    read::FromJson,
    session::{SessionInfo, StreamTicket},
    task::TaskSnapshot,
};
use wasm_bindgen::JsValue;

use super::{Api, ApiFailure, Ignored, json_body};

/// How many conversations a page of the list holds.
pub const LIST_PAGE: u32 = 50;
/// How many messages a page of history holds when opening or scrolling up.
pub const HISTORY_PAGE: u32 = 50;
/// How many messages a catch-up page holds (after a reconnect, many may have come).
pub const CATCH_UP_PAGE: u32 = 100;

/// A GET of one endpoint whose answer is a `T`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Get<T> {
    path: String,
    answer: PhantomData<fn() -> T>,
}

impl<T> Get<T> {
    fn at(path: String) -> Self {
        Self {
            path,
            answer: PhantomData,
        }
    }

    /// The path and query, relative to the API's base.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// Which page of a conversation's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// The newest messages (opening a conversation).
    Latest,
    /// The messages after this seq (catching up).
    After(u64),
    /// The messages before this seq (scrolling up).
    Before(u64),
}

impl Get<Health> {
    /// `GET /health`.
    pub fn health() -> Self {
        Self::at(paths::HEALTH.to_owned())
    }
}

impl Get<SessionInfo> {
    /// `GET /session`: who is signed in (401 when nobody).
    pub fn session() -> Self {
        Self::at(paths::SESSION.to_owned())
    }
}

impl Get<ConversationList> {
    /// `GET /conversations`: the first page, or the page after the list's `cursor`.
    pub fn conversations(cursor: Option<&str>) -> Self {
        let mut path = format!("{}?limit={LIST_PAGE}", paths::CONVERSATIONS);
        if let Some(cursor) = cursor {
            path.push_str("&before=");
            path.push_str(&encode_component(cursor));
        }
        Self::at(path)
    }
}

impl Get<HistoryPage> {
    /// `GET /chat/history` of `conversation`: the page `page` names.
    pub fn history(conversation: &ConversationId, page: Page) -> Self {
        let id = encode_component(conversation.as_str());
        let (which, limit) = match page {
            Page::Latest => (String::new(), HISTORY_PAGE),
            Page::After(seq) => (format!("&after={seq}"), CATCH_UP_PAGE),
            Page::Before(seq) => (format!("&before={seq}"), HISTORY_PAGE),
        };
        Self::at(format!(
            "{}?conversationId={id}{which}&limit={limit}",
            paths::HISTORY
        ))
    }
}

impl Get<TaskSnapshot> {
    /// `GET /tasks/{taskId}`.
    pub fn task(task: &str) -> Self {
        Self::at(paths::task(&encode_component(task)))
    }
}

impl Api {
    /// The answer of `get`, once.
    pub async fn fetch<T: FromJson>(&self, get: &Get<T>) -> Result<T, ApiFailure> {
        self.get(get.path()).await
    }

    /// `POST /chat/send`: stores `text` in `conversation` once per `key` (a retry with the
    /// same key answers the stored message); the assistant answers in `locale`.
    pub async fn send_message(
        &self,
        conversation: &ConversationId,
        text: &str,
        key: &str,
        locale: &str,
    ) -> Result<SendResponse, ApiFailure> {
        let body = [
            ("conversationId", conversation.as_str()),
            ("text", text),
            ("idempotencyKey", key),
            ("locale", locale),
        ];
        Ok(self.post::<SendResponse>(paths::SEND, &body).await?.1)
    }

    /// `POST /chat/read`: the user has seen `conversation` up to `seq`.
    pub async fn mark_read(
        &self,
        conversation: &ConversationId,
        seq: u64,
    ) -> Result<(), ApiFailure> {
        // `seq` is a JSON number: the one body of the widget that is not all strings.
        let body = json_body(&[
            ("conversationId", JsValue::from_str(conversation.as_str())),
            ("seq", JsValue::from_f64(seq as f64)),
        ]);
        self.call("POST", paths::READ, Some(body)).await.map(drop)
    }

    /// `POST /chat/typing`: the user is typing in `conversation`.
    pub async fn typing(&self, conversation: &ConversationId) -> Result<(), ApiFailure> {
        let body = [("conversationId", conversation.as_str())];
        self.post::<Ignored>(paths::TYPING, &body).await.map(drop)
    }

    /// `POST /tasks/{taskId}/cancel`: stops a running task.
    pub async fn cancel_task(&self, task: &str) -> Result<(), ApiFailure> {
        let path = paths::task_cancel(&encode_component(task));
        self.post_empty::<Ignored>(&path).await.map(drop)
    }

    /// `POST /chat/stream-ticket`: a single-use ticket to open the stream with.
    pub async fn stream_ticket(&self) -> Result<StreamTicket, ApiFailure> {
        self.post_empty(paths::STREAM_TICKET).await
    }

    /// `POST /session`: signs `user` in (the demo pages' stand-in for the host's sign-on).
    pub async fn sign_in(&self, user: &str) -> Result<(), ApiFailure> {
        let body = [("userId", user)];
        self.post::<Ignored>(paths::SESSION, &body).await.map(drop)
    }

    /// The URL of the stream, resuming after `last_event_id` and opened with `ticket` when
    /// given.
    pub fn stream_url(&self, last_event_id: Option<&str>, ticket: Option<&str>) -> String {
        let mut url = self.url(paths::STREAM);
        let mut sep = '?';
        for (name, value) in [("lastEventId", last_event_id), ("ticket", ticket)] {
            if let Some(value) = value {
                url.push(sep);
                url.push_str(name);
                url.push('=');
                url.push_str(&encode_component(value));
                sep = '&';
            }
        }
        url
    }
}

/// `value` as a URL query component, as `encodeURIComponent` writes it.
pub fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(byte >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(byte & 15)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_written_once_here() {
        let c = ConversationId("c-u-farmer-support".into());
        assert_eq!(Get::session().path(), "/session");
        assert_eq!(Get::conversations(None).path(), "/conversations?limit=50");
        assert_eq!(
            Get::conversations(Some("2026-12-01T00:00:00.000Z|c 1")).path(),
            "/conversations?limit=50&before=2026-12-01T00%3A00%3A00.000Z%7Cc%201"
        );
        assert_eq!(
            Get::history(&c, Page::Latest).path(),
            "/chat/history?conversationId=c-u-farmer-support&limit=50"
        );
        assert_eq!(
            Get::history(&c, Page::After(7)).path(),
            "/chat/history?conversationId=c-u-farmer-support&after=7&limit=100"
        );
        assert_eq!(
            Get::history(&c, Page::Before(51)).path(),
            "/chat/history?conversationId=c-u-farmer-support&before=51&limit=50"
        );
        assert_eq!(Get::task("t-1").path(), "/tasks/t-1");
    }

    #[test]
    fn components_are_encoded_as_encode_uri_component_does() {
        assert_eq!(encode_component("a-Z_0.~!*'()"), "a-Z_0.~!*'()");
        assert_eq!(encode_component("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
