//! The stream connection's logic as a plain state machine: [`Connection::handle`] takes what
//! happened ([`Input`]) and answers what to do ([`Effect`]). The browser hook
//! ([`hook::use_chat_stream_with_options`]) only feeds it events and carries out its effects, so every rule
//! here is tested natively:
//!
//! - On an error the stream is closed and reopened with exponential backoff and full jitter,
//!   passing the last event id (a new EventSource does not send `Last-Event-ID` by itself).
//! - A fatal error (the browser gave up: a non-200 answer) first asks whether the session is
//!   still valid; signed out means no more retries, just the sign-in state.
//! - Going online, becoming visible again or a `pageshow` reconnect at once; offline waits.
//! - 45 s without any event (pings included) is a dead stream.
//! - The last event id only moves to ids the server wrote; it is never lost.
//! - After every reconnect (its `ready`) and on `reset`, history is refetched.

pub mod hook;
pub mod share;

use std::time::Duration;

use farm_chat_protocol::EventId;

use crate::backoff::Backoff;

/// What the user is shown about the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Opening the stream.
    Connecting,
    /// Live.
    Connected,
    /// Lost; trying again (attempt `attempt`, next try after `retry_in`).
    Reconnecting {
        /// Failed attempts so far.
        attempt: u32,
        /// How long until the next try.
        retry_in: Duration,
    },
    /// The browser is offline; reconnects when it is back.
    Offline,
    /// The session ended: the user must sign in again.
    SignedOut,
    /// Closed on purpose.
    Closed,
}

/// The answer of `GET /api/session` after a fatal stream error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionCheck {
    /// Still signed in: the stream failed for another reason.
    SignedIn,
    /// 401: signed out.
    SignedOut,
    /// No answer: treat like a network error.
    Unknown,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input<'a> {
    /// Open the stream (mount or `open()`).
    Open,
    /// The EventSource opened.
    Opened,
    /// A named event arrived with this `lastEventId` (empty when it carried none).
    Event {
        /// The event's name.
        name: &'a str,
        /// `MessageEvent.lastEventId`.
        id: &'a str,
    },
    /// The EventSource failed; `fatal` when it gave up by itself (readyState CLOSED).
    Error {
        /// The browser will not retry (non-200 answer, wrong content type).
        fatal: bool,
    },
    /// The session check after a fatal error answered.
    Session(SessionCheck),
    /// The retry timer fired.
    RetryDue,
    /// `online`.
    Online,
    /// `offline`.
    Offline,
    /// `visibilitychange` to visible, or `pageshow`.
    Visible,
    /// No event for the dead-stream time.
    Silence,
    /// Close on purpose (`close()` or unmount).
    Close,
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Close any open EventSource and open a new one resuming after this id.
    Connect {
        /// The id to resume after (`?lastEventId=`).
        last_event_id: Option<EventId>,
    },
    /// Close the EventSource.
    Disconnect,
    /// Ask `GET /api/session`.
    CheckSession,
    /// Fire [`Input::RetryDue`] after this long (replacing any pending retry).
    RetryIn(Duration),
    /// Forget a pending retry.
    CancelRetry,
    /// Fetch history after the last known seq of each open conversation.
    Refetch,
    /// Log a warning (once per problem).
    Warn(String),
}

/// One stream connection.
#[derive(Clone, Debug)]
pub struct Connection {
    status: Status,
    backoff: Backoff,
    last_event_id: Option<EventId>,
    opened_at_ms: Option<f64>,
    ready_seen: bool,
    online: bool,
    warned_bad_id: bool,
}

impl Default for Connection {
    fn default() -> Self {
        Self::new(Backoff::default())
    }
}

impl Connection {
    /// A closed connection with these backoff settings.
    pub fn new(backoff: Backoff) -> Self {
        Self {
            status: Status::Closed,
            backoff,
            last_event_id: None,
            opened_at_ms: None,
            ready_seen: false,
            online: true,
            warned_bad_id: false,
        }
    }

    /// What to show.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// The id to resume after.
    pub fn last_event_id(&self) -> Option<EventId> {
        self.last_event_id
    }

    /// Another tab's stream delivered event `id` (this tab follows a leader): remember it, so
    /// that if this tab takes over it resumes after the newest id any tab saw.
    pub fn saw_elsewhere(&mut self, id: EventId) {
        if self.last_event_id.is_none_or(|last| id > last) {
            self.last_event_id = Some(id);
        }
    }

    fn connect(&mut self) -> Vec<Effect> {
        self.opened_at_ms = None;
        if !self.online {
            self.status = Status::Offline;
            return vec![Effect::Disconnect, Effect::CancelRetry];
        }
        self.status = Status::Connecting;
        vec![
            Effect::CancelRetry,
            Effect::Connect {
                last_event_id: self.last_event_id,
            },
        ]
    }

    fn retry_later(&mut self, unit: f64) -> Vec<Effect> {
        self.opened_at_ms = None;
        if !self.online {
            self.status = Status::Offline;
            return vec![Effect::Disconnect, Effect::CancelRetry];
        }
        let retry_in = self.backoff.next_delay(unit);
        self.status = Status::Reconnecting {
            attempt: self.backoff.attempt(),
            retry_in,
        };
        vec![Effect::Disconnect, Effect::RetryIn(retry_in)]
    }

    /// Handles `input` at `now_ms` (milliseconds, any monotonic origin); `unit` is a uniform
    /// random number in `[0, 1)` for the jitter.
    pub fn handle(&mut self, input: Input<'_>, now_ms: f64, unit: f64) -> Vec<Effect> {
        let ended = matches!(self.status, Status::SignedOut | Status::Closed);
        match input {
            Input::Open => self.connect(),
            Input::Close => {
                self.status = Status::Closed;
                vec![Effect::Disconnect, Effect::CancelRetry]
            }
            _ if ended => Vec::new(),
            Input::Opened => {
                self.status = Status::Connected;
                self.opened_at_ms = Some(now_ms);
                Vec::new()
            }
            Input::Event { name, id } => {
                let mut effects = Vec::new();
                if !id.is_empty() {
                    match id.parse::<EventId>() {
                        Ok(id) => self.last_event_id = Some(id),
                        Err(_) if !self.warned_bad_id => {
                            self.warned_bad_id = true;
                            effects.push(Effect::Warn(format!(
                                "ignoring an event id the server could not have written: \"{}\"",
                                id.escape_default()
                            )));
                        }
                        Err(_) => {}
                    }
                }
                if let Some(opened) = self.opened_at_ms {
                    self.backoff.stream_up_for(Duration::from_secs_f64(
                        ((now_ms - opened) / 1000.0).max(0.0),
                    ));
                }
                if self.status == Status::Connecting {
                    // Some browsers deliver the first event before `open`.
                    self.status = Status::Connected;
                    self.opened_at_ms = Some(now_ms);
                }
                match name {
                    "ready" => {
                        if self.ready_seen {
                            effects.push(Effect::Refetch);
                        }
                        self.ready_seen = true;
                    }
                    "reset" => effects.push(Effect::Refetch),
                    _ => {}
                }
                effects
            }
            Input::Error { fatal: true } => {
                self.status = Status::Reconnecting {
                    attempt: self.backoff.attempt(),
                    retry_in: Duration::ZERO,
                };
                vec![
                    Effect::Disconnect,
                    Effect::CancelRetry,
                    Effect::CheckSession,
                ]
            }
            Input::Error { fatal: false } => self.retry_later(unit),
            Input::Session(SessionCheck::SignedOut) => {
                self.status = Status::SignedOut;
                vec![Effect::Disconnect, Effect::CancelRetry]
            }
            Input::Session(_) => self.retry_later(unit),
            Input::RetryDue => match self.status {
                Status::Reconnecting { .. } => self.connect(),
                _ => Vec::new(),
            },
            Input::Online => {
                self.online = true;
                match self.status {
                    Status::Offline | Status::Reconnecting { .. } => self.connect(),
                    _ => Vec::new(),
                }
            }
            Input::Offline => {
                self.online = false;
                self.status = Status::Offline;
                vec![Effect::Disconnect, Effect::CancelRetry]
            }
            Input::Visible => match self.status {
                Status::Reconnecting { .. } | Status::Offline if self.online => self.connect(),
                _ => Vec::new(),
            },
            Input::Silence => match self.status {
                Status::Connected | Status::Connecting => {
                    let mut effects = vec![Effect::Warn(
                        "no event for 45 s: the stream is dead, reconnecting".into(),
                    )];
                    effects.extend(self.retry_later(unit));
                    effects
                }
                _ => Vec::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev<'a>(name: &'a str, id: &'a str) -> Input<'a> {
        Input::Event { name, id }
    }

    fn connected(c: &mut Connection) {
        c.handle(Input::Open, 0.0, 0.5);
        c.handle(Input::Opened, 0.0, 0.5);
        c.handle(ev("ready", "100"), 0.0, 0.5);
    }

    #[test]
    fn opening_connects_without_an_id_then_goes_live() {
        let mut c = Connection::default();
        assert_eq!(
            c.handle(Input::Open, 0.0, 0.5),
            [
                Effect::CancelRetry,
                Effect::Connect {
                    last_event_id: None
                }
            ]
        );
        assert_eq!(c.status(), &Status::Connecting);
        c.handle(Input::Opened, 0.0, 0.5);
        assert_eq!(c.status(), &Status::Connected);
        assert_eq!(
            c.handle(ev("ready", "100"), 1.0, 0.5),
            [],
            "the first ready needs no refetch"
        );
    }

    #[test]
    fn an_error_reconnects_with_backoff_and_the_last_id() {
        let mut c = Connection::default();
        connected(&mut c);
        c.handle(ev("message.created", "105"), 5.0, 0.5);
        let effects = c.handle(Input::Error { fatal: false }, 6.0, 0.5);
        assert_eq!(
            effects,
            [
                Effect::Disconnect,
                Effect::RetryIn(Duration::from_millis(250))
            ]
        );
        assert_eq!(
            c.status(),
            &Status::Reconnecting {
                attempt: 1,
                retry_in: Duration::from_millis(250)
            }
        );
        assert_eq!(
            c.handle(Input::RetryDue, 300.0, 0.5),
            [
                Effect::CancelRetry,
                Effect::Connect {
                    last_event_id: Some(EventId(105))
                }
            ]
        );
        // It fails again: the ceiling doubled.
        assert_eq!(
            c.handle(Input::Error { fatal: false }, 400.0, 0.5),
            [
                Effect::Disconnect,
                Effect::RetryIn(Duration::from_millis(500))
            ]
        );
        c.handle(Input::RetryDue, 1000.0, 0.5);
        c.handle(Input::Opened, 1000.0, 0.5);
        assert_eq!(
            c.handle(ev("ready", "105"), 1001.0, 0.5),
            [Effect::Refetch],
            "history is refetched after every reconnect"
        );
    }

    #[test]
    fn the_last_id_is_never_lost_or_replaced_by_garbage() {
        let mut c = Connection::default();
        connected(&mut c);
        c.handle(ev("message.created", "107"), 1.0, 0.5);
        let warn = c.handle(ev("message.created", "1\u{0}7"), 2.0, 0.5);
        assert!(matches!(warn.as_slice(), [Effect::Warn(_)]));
        assert_eq!(
            c.handle(ev("task.status", "-3"), 2.0, 0.5),
            [],
            "one warning per problem, not a loop"
        );
        c.handle(ev("ping", ""), 3.0, 0.5);
        assert_eq!(c.last_event_id(), Some(EventId(107)));
        c.handle(Input::Error { fatal: false }, 4.0, 0.5);
        assert_eq!(
            c.handle(Input::RetryDue, 5.0, 0.5)[1],
            Effect::Connect {
                last_event_id: Some(EventId(107))
            }
        );
    }

    #[test]
    fn a_fatal_error_checks_the_session_and_stops_when_signed_out() {
        let mut c = Connection::default();
        connected(&mut c);
        assert_eq!(
            c.handle(Input::Error { fatal: true }, 1.0, 0.5),
            [
                Effect::Disconnect,
                Effect::CancelRetry,
                Effect::CheckSession
            ]
        );
        assert_eq!(
            c.handle(Input::Session(SessionCheck::SignedOut), 2.0, 0.5),
            [Effect::Disconnect, Effect::CancelRetry]
        );
        assert_eq!(c.status(), &Status::SignedOut);
        for input in [
            Input::Online,
            Input::Visible,
            Input::RetryDue,
            Input::Silence,
            Input::Error { fatal: false },
        ] {
            assert_eq!(
                c.handle(input, 3.0, 0.5),
                [],
                "no retry storm once signed out"
            );
        }
        assert_eq!(
            c.handle(Input::Open, 4.0, 0.5)[1],
            Effect::Connect {
                last_event_id: Some(EventId(100))
            },
            "signing in again resumes"
        );
    }

    #[test]
    fn a_fatal_error_while_still_signed_in_retries_with_backoff() {
        let mut c = Connection::default();
        connected(&mut c);
        c.handle(Input::Error { fatal: true }, 1.0, 0.5);
        assert!(matches!(
            c.handle(Input::Session(SessionCheck::SignedIn), 2.0, 0.5)
                .as_slice(),
            [Effect::Disconnect, Effect::RetryIn(_)]
        ));
        c.handle(Input::RetryDue, 3.0, 0.5);
        c.handle(Input::Error { fatal: true }, 4.0, 0.5);
        assert!(matches!(
            c.handle(Input::Session(SessionCheck::Unknown), 5.0, 0.5)
                .as_slice(),
            [Effect::Disconnect, Effect::RetryIn(_)]
        ));
    }

    #[test]
    fn offline_waits_and_online_reconnects_at_once() {
        let mut c = Connection::default();
        connected(&mut c);
        assert_eq!(
            c.handle(Input::Offline, 1.0, 0.5),
            [Effect::Disconnect, Effect::CancelRetry]
        );
        assert_eq!(c.status(), &Status::Offline);
        assert_eq!(
            c.handle(Input::Error { fatal: false }, 2.0, 0.5),
            [Effect::Disconnect, Effect::CancelRetry],
            "no retries while offline"
        );
        assert_eq!(
            c.handle(Input::Visible, 2.5, 0.5),
            [],
            "visible but offline: wait"
        );
        assert_eq!(
            c.handle(Input::Online, 3.0, 0.5),
            [
                Effect::CancelRetry,
                Effect::Connect {
                    last_event_id: Some(EventId(100))
                }
            ]
        );
    }

    #[test]
    fn becoming_visible_skips_the_remaining_backoff() {
        let mut c = Connection::default();
        connected(&mut c);
        c.handle(Input::Error { fatal: false }, 1.0, 0.9);
        assert_eq!(
            c.handle(Input::Visible, 2.0, 0.5)[1],
            Effect::Connect {
                last_event_id: Some(EventId(100))
            }
        );
        assert_eq!(c.handle(Input::Visible, 2.0, 0.5), [], "already connecting");
    }

    #[test]
    fn silence_is_a_dead_stream() {
        let mut c = Connection::default();
        connected(&mut c);
        let effects = c.handle(Input::Silence, 45_000.0, 0.5);
        assert!(matches!(
            effects.as_slice(),
            [Effect::Warn(_), Effect::Disconnect, Effect::RetryIn(_)]
        ));
    }

    #[test]
    fn reset_refetches_and_a_healthy_stream_resets_the_backoff() {
        let mut c = Connection::default();
        connected(&mut c);
        assert_eq!(c.handle(ev("reset", "100"), 1.0, 0.5), [Effect::Refetch]);
        for _ in 0..4 {
            c.handle(Input::Error { fatal: false }, 2.0, 0.5);
            c.handle(Input::RetryDue, 3.0, 0.5);
        }
        c.handle(Input::Opened, 10_000.0, 0.5);
        c.handle(ev("ping", "100"), 19_000.0, 0.5);
        c.handle(Input::Error { fatal: false }, 19_500.0, 0.5);
        assert_eq!(
            c.status(),
            &Status::Reconnecting {
                attempt: 5,
                retry_in: Duration::from_secs(4)
            },
            "9 s up: still backing off"
        );
        c.handle(Input::RetryDue, 20_000.0, 0.5);
        c.handle(Input::Opened, 20_000.0, 0.5);
        c.handle(ev("ping", "100"), 30_000.0, 0.5);
        c.handle(Input::Error { fatal: false }, 30_100.0, 0.5);
        assert_eq!(
            c.status(),
            &Status::Reconnecting {
                attempt: 1,
                retry_in: Duration::from_millis(250)
            },
            "10 s up: reset"
        );
    }

    #[test]
    fn closing_stops_everything() {
        let mut c = Connection::default();
        connected(&mut c);
        assert_eq!(
            c.handle(Input::Close, 1.0, 0.5),
            [Effect::Disconnect, Effect::CancelRetry]
        );
        assert_eq!(c.handle(Input::Online, 2.0, 0.5), []);
        assert_eq!(c.status(), &Status::Closed);
    }
}
