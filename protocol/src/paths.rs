//! The API's paths, spelled once. Every crate names a route through these: the dev-server's
//! router, the widget's requests (relative to its `api-base`), the conformance rules, the
//! bench and the tests. Each constant is relative to the API's base; [`api`] has the same
//! paths under `/api`, where the dev-server mounts them. A path with a `{…}` segment is the
//! router's pattern; [`task`], [`task_cancel`] and [`report`] fill it in.

/// Defines each path once, relative to the base, and again under `/api` in [`api`].
macro_rules! paths {
    ($($(#[$doc:meta])* $name:ident = $path:literal;)*) => {
        $($(#[$doc])* pub const $name: &str = $path;)*

        /// The same paths under `/api`, where the dev-server serves the API.
        pub mod api {
            /// The API's base on the dev-server.
            pub const BASE: &str = "/api";
            $($(#[$doc])* pub const $name: &str = concat!("/api", $path);)*
        }
    };
}

paths! {
    /// `GET`: `{"status":"ok"}` while the server is ready, 503 `{"status":"unavailable"}`
    /// while a readiness check fails.
    HEALTH = "/health";
    /// `GET`: liveness: the process answers (`{"status":"ok"}`), whatever its dependencies.
    HEALTH_LIVE = "/health/live";
    /// `GET`: readiness: the store and the bus answered within a second, the JWT keys are
    /// loaded, the server is not draining (200, else 503, with each check).
    HEALTH_READY = "/health/ready";
    /// `GET`: the OpenAPI document of the REST API.
    OPENAPI = "/openapi.json";
    /// `GET`: the AsyncAPI document of the stream's events.
    ASYNCAPI = "/asyncapi.json";
    /// `POST` signs in, `GET` says who is signed in, `DELETE` signs out.
    SESSION = "/session";
    /// `GET`: the user's conversations, newest activity first, paged.
    CONVERSATIONS = "/conversations";
    /// `POST`: sends a message (idempotent by its key).
    SEND = "/chat/send";
    /// `GET`: a conversation's messages, paged.
    HISTORY = "/chat/history";
    /// `POST`: the reader has seen a conversation up to a seq.
    READ = "/chat/read";
    /// `POST`: the user is typing.
    TYPING = "/chat/typing";
    /// `POST`: a single-use ticket to open the stream with (for Bearer tokens).
    STREAM_TICKET = "/chat/stream-ticket";
    /// `GET`: the user's SSE stream of events.
    STREAM = "/chat/stream";
    /// `GET`: a shipment report's PDF (`{file}` is `<reportId>.pdf`).
    REPORT = "/reports/{file}";
    /// `GET`: the user's assistant tasks.
    TASKS = "/tasks";
    /// `GET`: one assistant task.
    TASK = "/tasks/{task_id}";
    /// `POST`: stops a running assistant task.
    TASK_CANCEL = "/tasks/{task_id}/cancel";
    /// `POST`, test mode only: ends every open stream.
    DROP_STREAMS = "/test/drop-streams";
}

/// `path` (relative, or under `/api`) with its `{name}` segment filled by `value`. Written
/// with character splits, not `str::replace`: a substring search would add kilobytes to the
/// widget's wasm.
pub fn fill(path: &str, name: &str, value: &str) -> String {
    let mut out = String::with_capacity(path.len() + value.len());
    let mut rest = path;
    while let Some((before, after)) = rest.split_once('{') {
        out.push_str(before);
        let Some((segment, tail)) = after.split_once('}') else {
            out.push('{');
            rest = after;
            break;
        };
        if segment == name {
            out.push_str(value);
        } else {
            out.push('{');
            out.push_str(segment);
            out.push('}');
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// [`TASK`] of task `id`, relative to the base.
pub fn task(id: &str) -> String {
    fill(TASK, "task_id", id)
}

/// [`TASK_CANCEL`] of task `id`, relative to the base.
pub fn task_cancel(id: &str) -> String {
    fill(TASK_CANCEL, "task_id", id)
}

/// [`REPORT`] of report `id` (its PDF), relative to the base.
pub fn report(id: &str) -> String {
    fill(REPORT, "file", &format!("{id}.pdf"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_api_are_the_relative_ones_prefixed() {
        assert_eq!(api::SEND, "/api/chat/send");
        assert_eq!(format!("{}{}", api::BASE, STREAM), api::STREAM);
    }

    #[test]
    fn patterns_are_filled_in() {
        assert_eq!(task("t-1"), "/tasks/t-1");
        assert_eq!(task_cancel("t-1"), "/tasks/t-1/cancel");
        assert_eq!(report("2026-11"), "/reports/2026-11.pdf");
        assert_eq!(fill(api::TASK, "task_id", "t-2"), "/api/tasks/t-2");
        assert_eq!(fill("/a/{x}/{y}", "y", "2"), "/a/{x}/2");
        assert_eq!(fill("/a/{x", "x", "1"), "/a/{x");
    }
}
