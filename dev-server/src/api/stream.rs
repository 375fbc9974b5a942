//! `GET /api/chat/stream`: one SSE stream per user for all their conversations.
//!
//! The stream starts with `ready` (and `retry: 1000`), then replays the user's events after
//! the client's last id (`Last-Event-ID` header, else `?lastEventId=`) or sends `reset` when
//! the backlog can't fill the gap, then goes live. `ping` every 15 s. It ends when the client
//! goes away, falls too far behind (it will resume), its session ends, or the server stops.

use std::{collections::VecDeque, convert::Infallible, pin::Pin, sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, Method, header},
    response::{IntoResponse, Response},
};

use bytes::Bytes;

use farm_chat_protocol::{
    EventId, StreamEvent, UserId,
    stream::{Ping, Ready, Reset},
};

use futures_util::stream::{Stream, StreamExt};

use serde::Deserialize;

use tokio::sync::broadcast;

use crate::{
    api::auth,
    auth::AuthUser,
    bus::{EventBus, Live, LiveStream, Resume, Signal, sse_frame},
    error::{ApiError, ApiQuery},
    metrics::Metrics,
    state::AppState,
    streams::{
        Close, MAX_STREAMS_PER_SESSION, MAX_STREAMS_PER_USER, StreamSlot, evictee, jitter, member,
        parse_member,
    },
};

/// Query of the stream route.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamQuery {
    last_event_id: Option<String>,
    ticket: Option<String>,
}

/// `GET /api/chat/stream`.
pub async fn stream(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<StreamQuery>,
) -> Result<Response, ApiError> {
    let auth = match &query.ticket {
        Some(ticket) => auth::authenticate_ticket(&state, ticket).await?,
        None => auth::authenticate(&state, &method, &headers).await?,
    };
    // The header wins over the query: it is what EventSource itself sends on reconnect.
    let asked = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(query.last_event_id);
    let after = match asked.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => match text.parse::<EventId>() {
            Ok(id) => Some(id),
            Err(_) => {
                // Not an id we wrote: resume is impossible, so the client gets `reset`.
                tracing::warn!(
                    userId = auth.user.id,
                    "unparseable Last-Event-ID; sending reset"
                );
                Some(EventId(u64::MAX))
            }
        },
    };
    let user = auth.user_id();
    let (mut slot, evicted) =
        state
            .local
            .stream_counts
            .acquire(&user, &auth.session_id, &state.local.metrics);
    cap_across_instances(&state, &user, &auth.session_id, &mut slot).await;
    let subscription = state
        .common
        .bus
        .subscribe(&user, after)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    tracing::info!(userId = auth.user.id, after = ?after.map(|a| a.0), "stream opened");

    // `ready` carries the id the client stands at, so EventSource keeps a correct lastEventId.
    let start = match (&subscription.resume, after) {
        (Resume::Replay(_), Some(after)) => after,
        _ => subscription.latest,
    };
    let mut pending = VecDeque::new();
    let ready = StreamEvent::Ready(Ready {
        last_event_id: subscription.latest,
        server_time: crate::ids::now_rfc3339(),
    });
    pending.push_back(Bytes::from(
        sse_frame(
            Some(start),
            ready.name(),
            &ready.data(),
            Some(Duration::from_millis(1000)),
        )
        .0,
    ));
    let mut last_sent = start;
    match subscription.resume {
        Resume::Replay(entries) => {
            for entry in entries {
                last_sent = entry.id;
                pending.push_back(entry.frame());
            }
        }
        Resume::Reset(reason) => {
            tracing::info!(userId = auth.user.id, ?reason, "stream reset");
            pending.push_back(sse_event(start, &StreamEvent::Reset(Reset { reason })));
        }
    }
    let every = state.ping_every;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let session_end = Box::pin(tokio::time::sleep(Duration::from_secs(
        auth.expires_at.saturating_sub(crate::ids::unix_now()),
    )));
    let conn = Conn {
        pending,
        live: subscription.live,
        bus: state.common.bus.clone(),
        user,
        last_sent,
        ping,
        session_end,
        auth,
        metrics: state.local.metrics.clone(),
        closed: evicted,
        ended: false,
        _slot: slot,
    };
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, no-store"),
        ),
        (
            header::HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        ),
    ];
    Ok((headers, Body::from_stream(events(conn))).into_response())
}

/// The caps hold across instances: the new stream joins the user's shared registry (alone,
/// this instance's counts are all of it), and when that puts the user over a cap, the stream that gives way closes
/// wherever it is (here, or by a signal to its instance).
async fn cap_across_instances(
    state: &AppState,
    user: &UserId,
    session: &str,
    slot: &mut StreamSlot,
) {
    let shared = state.common.shared.clone();
    let mine = member(&state.local.instance, slot.id(), session);
    let members = match shared.open_stream(user, &mine).await {
        Ok(Some(members)) => members,
        // Alone: this instance's counts already applied the caps.
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "stream registry unavailable; this instance's caps apply");
            return;
        }
    };
    slot.registered(shared.clone(), mine.clone());
    state.local.stream_counts.set_member(user, slot.id(), &mine);
    let others: Vec<&String> = members.iter().filter(|m| **m != mine).collect();
    let sessions: Vec<&str> = others
        .iter()
        .map(|m| parse_member(m).map_or("", |(_, _, s)| s))
        .collect();
    let Some(at) = evictee(
        &sessions,
        session,
        MAX_STREAMS_PER_SESSION,
        MAX_STREAMS_PER_USER,
    ) else {
        return;
    };
    let old = others[at].clone();
    tracing::info!(userId = %user, "stream limit reached across instances: the oldest stream gives way");
    let _ = shared.close_stream(user, &old).await;
    match parse_member(&old) {
        Some((instance, id, _)) if instance == &*state.local.instance => {
            state.local.stream_counts.close(user, id);
        }
        Some(_) => {
            if let Err(e) = state
                .common
                .bus
                .signal(Signal::CloseStream(user.clone(), old))
                .await
            {
                tracing::warn!(error = %e, "could not close a stream on another instance");
            }
        }
        None => {}
    }
}

/// Closes the streams that signals end (another instance's cap, a sign-out, the test switch),
/// renews this instance's entries in the shared registry, and drains the streams when the
/// server stops: each closes at a random moment within the drain window, telling its client
/// when to come back, so they return spread out (to the other instances).
pub async fn follow_signals(state: AppState) {
    let shared = state.common.shared.clone();
    let counts = state.local.stream_counts.clone();
    let mut signals = state.common.bus.signals();
    let mut shutdown = state.shutdown.clone();
    let mut renew = tokio::time::interval(crate::shared::STREAM_STALE / 3);
    loop {
        tokio::select! {
            signal = signals.recv() => match signal {
                Ok(Signal::CloseStream(user, member)) => {
                    if let Some((instance, id, _)) = parse_member(&member)
                        && instance == &*state.local.instance
                    {
                        counts.close(&user, id);
                    }
                }
                Ok(Signal::SignedOut(session)) => {
                    counts.close_where(|o| o.session() == session, Close::SignedOut);
                }
                Ok(Signal::DropStreams) => counts.close_where(|_| true, Close::Dropped),
                Ok(Signal::CancelTask(_)) => {}
                // Missed signals may have held a sign-out: every stream ends, and each
                // client's reconnect checks its session again.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    counts.close_where(|_| true, Close::Dropped);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = renew.tick() => {
                let open = counts.members();
                if let Err(e) = shared.renew_streams(&open).await {
                    tracing::warn!(error = %e, "could not renew this instance's streams");
                }
            }
            () = async { let _ = shutdown.wait_for(|stop| *stop).await; } => {
                counts.drain(state.config.drain_window).await;
                return;
            }
        }
    }
}

/// An event of this stream alone (`ready`, `reset`, `ping`).
fn sse_event(id: EventId, event: &StreamEvent) -> Bytes {
    Bytes::from(sse_frame(Some(id), event.name(), &event.data(), None).0)
}

/// One open stream's state.
struct Conn {
    /// Frames to write before anything else; a bus event's frame is shared with every other
    /// stream that sends it.
    pending: VecDeque<Bytes>,
    live: LiveStream,
    /// To catch up from the backlog when the live feed ran ahead of this stream.
    bus: Arc<dyn EventBus>,
    user: UserId,
    last_sent: EventId,
    ping: tokio::time::Interval,
    /// When the session expires (one timer for the stream's life, not one per event).
    session_end: Pin<Box<tokio::time::Sleep>>,
    auth: AuthUser,
    metrics: Arc<Metrics>,
    /// Resolves when something outside closes this stream ([`StreamCounts`]).
    closed: tokio::sync::oneshot::Receiver<Close>,
    /// The last event was written: end.
    ended: bool,
    _slot: StreamSlot,
}

fn events(conn: Conn) -> impl Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::unfold(conn, |mut conn| async move {
        let event = next_event(&mut conn).await?;
        conn.metrics.events_sent.inc();
        Some((Ok(event), conn))
    })
}

/// The next event to write, or `None` to end the stream.
async fn next_event(conn: &mut Conn) -> Option<Bytes> {
    if let Some(event) = conn.pending.pop_front() {
        return Some(event);
    }
    if conn.ended {
        return None;
    }
    let user = conn.auth.user.id;
    loop {
        tokio::select! {
            biased;
            why = &mut conn.closed => {
                conn.ended = true;
                match why {
                    // The last word: come back after a random moment (to another instance).
                    Ok(Close::Drain) => {
                        tracing::info!(userId = user, "stream closed: server draining");
                        let retry = 500 + jitter(2500);
                        return Some(Bytes::from(format!(": draining\nretry: {retry}\n\n")));
                    }
                    Ok(why) => tracing::info!(userId = user, ?why, "stream closed"),
                    Err(_) => tracing::info!(userId = user, "stream closed"),
                }
                return None;
            }
            () = &mut conn.session_end => {
                tracing::info!(userId = user, "stream closed: session expired");
                return None;
            }
            live = conn.live.next() => match live {
                // No id line: the client's last id stays where it is.
                Some(Live::Event(entry)) if entry.live_only => return Some(entry.frame()),
                // Already sent as part of the replay (or by another instance's repair).
                Some(Live::Event(entry)) if entry.id <= conn.last_sent => continue,
                // Another epoch: the events between are gone (the bus lost its data). End; the
                // client's resume gets `reset` and refetches.
                Some(Live::Event(entry)) if entry.id.epoch() != conn.last_sent.epoch() => {
                    tracing::warn!(userId = user, "stream closed: the event log moved to a new epoch");
                    return None;
                }
                Some(Live::Event(entry)) => {
                    conn.last_sent = entry.id;
                    return Some(entry.frame());
                }
                // The live feed ran ahead (a burst, or a slow link): catch up from the backlog
                // and go on, as a resuming client would.
                Some(Live::Lagged(missed)) => {
                    if !catch_up(conn).await {
                        tracing::warn!(userId = user, missed, "stream closed: too far behind to catch up; it will resume");
                        return None;
                    }
                    if let Some(frame) = conn.pending.pop_front() {
                        return Some(frame);
                    }
                }
                None => {
                    tracing::info!(userId = user, "stream closed: the event bus ended it; it will resume");
                    return None;
                }
            },
            _ = conn.ping.tick() => {
                return Some(sse_event(conn.last_sent, &StreamEvent::Ping(Ping { server_time: crate::ids::now_rfc3339() })));
            }
        }
    }
}

/// After the live feed lagged: a new feed, and the backlog after the last event sent queued
/// up. `false` when the backlog no longer holds the gap (the stream ends; the client's resume
/// gets `reset`).
async fn catch_up(conn: &mut Conn) -> bool {
    let Ok(subscription) = conn.bus.subscribe(&conn.user, Some(conn.last_sent)).await else {
        return false;
    };
    let Resume::Replay(entries) = subscription.resume else {
        return false;
    };
    conn.live = subscription.live;
    for entry in entries {
        if entry.id > conn.last_sent {
            conn.last_sent = entry.id;
            conn.pending.push_back(entry.frame());
        }
    }
    conn.metrics.streams_caught_up.inc();
    true
}

/// `POST /api/test/drop-streams` (only with `--test-mode`, and only for a signed-in user):
/// ends every open stream, so tests can prove that clients reconnect and lose nothing.
pub async fn drop_streams(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<axum::http::StatusCode, ApiError> {
    state
        .common
        .bus
        .signal(Signal::DropStreams)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    tracing::warn!(
        userId = auth.user.id,
        "test mode: every open stream dropped"
    );
    Ok(axum::http::StatusCode::NO_CONTENT)
}
