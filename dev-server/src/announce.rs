//! Announcing: what was stored goes out on the event bus to every participant's streams, and
//! the outbox announces what an instance stored but never announced (it died between the
//! commit and the publish, or the bus was out of reach).

use std::time::{Duration, SystemTime};

use farm_chat_protocol::{
    ConversationId, MessageId, UserId,
    stream::{MessageCreated, StreamEvent},
};
use tokio::sync::watch;

use crate::{bus::EventBus, store::Store};

/// Publishes `event` to each of `users`. A failure is logged: what it announces is stored, and
/// every client refetches on its next `reset` or reconnect.
/// Returns whether every publish succeeded.
pub async fn announce(
    bus: &dyn EventBus,
    users: &[UserId],
    event: &StreamEvent,
    dedupe: Option<&str>,
) -> bool {
    let mut all = true;
    let published = bus.publish_many(users, event, dedupe).await;
    for (user, result) in users.iter().zip(published) {
        if let Err(e) = result {
            tracing::error!(userId = %user, event = event.name(), error = %e, "event not published");
            all = false;
        }
    }
    all
}

/// `message.created` for each participant, deduplicated by the message id, so announcing a
/// message twice (the outbox after a crash) delivers it once. Notes it announced.
pub async fn message(
    bus: &dyn EventBus,
    store: &dyn Store,
    participants: &[UserId],
    message_id: &MessageId,
    conversation_id: &ConversationId,
    seq: u64,
) {
    let event = StreamEvent::MessageCreated(MessageCreated {
        conversation_id: conversation_id.clone(),
        message_id: message_id.clone(),
        seq,
    });
    let dedupe = format!("m:{message_id}");
    if announce(bus, participants, &event, Some(&dedupe)).await
        && let Err(e) = store.mark_announced(std::slice::from_ref(message_id)).await
    {
        // The outbox announces it again; the dedupe makes that harmless.
        tracing::warn!(messageId = %message_id, error = %e, "could not note the announcement");
    }
}

/// The outbox: every `after / 2`, messages stored more than `after` ago (5 s) but never
/// announced are announced now, until `shutdown`. Runs on every instance; the dedupe makes a
/// double announcement harmless.
pub async fn outbox(
    bus: &dyn EventBus,
    store: &dyn Store,
    after: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(after / 2);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let before = humantime::format_rfc3339_millis(SystemTime::now() - after).to_string();
        let stragglers = match store.unannounced(&before, 200).await {
            Ok(stragglers) => stragglers,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the outbox");
                continue;
            }
        };
        for m in stragglers {
            tracing::warn!(messageId = %m.message_id, "announcing a message stored but never announced");
            message(
                bus,
                store,
                &m.participants,
                &m.message_id,
                &m.conversation_id,
                m.seq,
            )
            .await;
        }
    }
}
