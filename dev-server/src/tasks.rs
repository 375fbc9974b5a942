//! The assistant tasks this instance runs, hot: each one's latest snapshot in memory (kept
//! [`KEEP_HOT`] after it ends), and the changes to it.
//!
//! Every change to a task (a part, its end, a cancel) happens under one lock, which also
//! publishes the change's events: a cancelled task never sends another part, and `task.done`
//! is always last. The snapshot is then written to the store with a version that only grows,
//! so writes that finish out of order can't bring back an older snapshot.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use farm_chat_protocol::{
    StreamEvent, TaskId, UserId,
    stream::{TaskDone, TaskPartEvent},
    task::{PartBody, TaskPart, TaskSnapshot, TaskState},
};

use crate::{assistant::Lang, bus::EventBus, metrics::Metrics, store::TaskRecord};

/// How long a finished task stays hot: readers that saw it running get its last parts from
/// memory for a while; after that the durable store (which has the final snapshot) answers.
pub const KEEP_HOT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug)]
struct Hot {
    record: TaskRecord,
    participants: Vec<UserId>,
    lang: Lang,
    finished_at: Option<Instant>,
    /// Held from a change until its events are published, so a task's events go out in the
    /// order of its changes (`task.done` last) while publishing awaits the bus.
    order: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Becomes `true` when the task ends, however it ends: its runner stops its engine (and
    /// with it any request to a model).
    stop: tokio::sync::watch::Sender<bool>,
}

/// The hot snapshots.
#[derive(Debug, Default)]
pub struct Tasks {
    hot: Mutex<HashMap<TaskId, Hot>>,
}

impl Tasks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TaskId, Hot>> {
        self.hot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The hot snapshot of a task, if it is hot.
    pub fn hot(&self, id: &TaskId) -> Option<TaskRecord> {
        self.lock().get(id).map(|h| h.record.clone())
    }

    /// Evicts the finished tasks hot for longer than [`KEEP_HOT`]; returns how many.
    pub fn sweep(&self) -> usize {
        let mut hot = self.lock();
        let before = hot.len();
        let now = Instant::now();
        hot.retain(|_, h| {
            h.finished_at
                .is_none_or(|t| now.duration_since(t) < KEEP_HOT)
        });
        if hot.capacity() > 2 * hot.len() + 16 {
            hot.shrink_to_fit();
        }
        before - hot.len()
    }

    /// How many tasks are hot (for tests of eviction).
    pub fn hot_count(&self) -> usize {
        self.lock().len()
    }

    /// How many tasks of `user` run here now.
    pub fn running_for(&self, user: &UserId) -> usize {
        self.lock()
            .values()
            .filter(|h| &h.record.owner == user && h.finished_at.is_none())
            .count()
    }

    /// Holds a task this instance starts running; the receiver turns `true` when it ends.
    pub fn insert(
        &self,
        record: TaskRecord,
        participants: Vec<UserId>,
        lang: Lang,
    ) -> tokio::sync::watch::Receiver<bool> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut hot = self.lock();
        let now = Instant::now();
        hot.retain(|_, h| {
            h.finished_at
                .is_none_or(|t| now.duration_since(t) < KEEP_HOT)
        });
        hot.insert(
            record.snapshot.task_id.clone(),
            Hot {
                record,
                participants,
                lang,
                finished_at: None,
                order: std::sync::Arc::default(),
                stop,
            },
        );
        stopped
    }

    /// Applies `change` to a running task and publishes the events it returns, in turn with
    /// the task's other changes. `None` if the task is not hot or no longer running.
    pub async fn change(
        &self,
        bus: &dyn EventBus,
        metrics: &Metrics,
        id: &TaskId,
        change: impl FnOnce(&mut TaskSnapshot, Lang) -> Vec<StreamEvent>,
    ) -> Option<TaskRecord> {
        let order = self.lock().get(id)?.order.clone();
        let _turn = order.lock().await;
        let (record, participants, events) = {
            let mut hot = self.lock();
            let entry = hot.get_mut(id)?;
            if entry.record.snapshot.state.is_final() {
                return None;
            }
            let events = change(&mut entry.record.snapshot, entry.lang);
            entry.record.version += 1;
            entry.record.snapshot.updated_at = crate::ids::now_rfc3339();
            if entry.record.snapshot.state.is_final() {
                entry.finished_at = Some(Instant::now());
                metrics.task_finished(entry.record.snapshot.state);
                let _ = entry.stop.send(true);
            }
            (entry.record.clone(), entry.participants.clone(), events)
        };
        for (i, event) in events.iter().enumerate() {
            if matches!(event, StreamEvent::TaskText(_)) {
                // Text deltas are live only: kept in the resume log they would push the other
                // events out of it (an answer is hundreds of them). A client that missed some
                // sees the next one start past its text, or the task end, and reads the text
                // so far from the task's snapshot (hot here, or in Redis across instances).
                for user in &participants {
                    bus.notify(user, event).await;
                }
                continue;
            }
            let dedupe = format!("t:{id}:{}:{i}", record.version);
            crate::announce::announce(bus, &participants, event, Some(&dedupe)).await;
        }
        Some(record)
    }
}

pub fn part_event(snapshot: &TaskSnapshot, part: TaskPart) -> StreamEvent {
    StreamEvent::task_part(TaskPartEvent {
        task_id: snapshot.task_id.clone(),
        message_id: snapshot.message_id.clone(),
        conversation_id: snapshot.conversation_id.clone(),
        part,
    })
}

pub fn done_event(snapshot: &TaskSnapshot) -> StreamEvent {
    StreamEvent::TaskDone(TaskDone {
        task_id: snapshot.task_id.clone(),
        message_id: snapshot.message_id.clone(),
        conversation_id: snapshot.conversation_id.clone(),
        state: snapshot.state,
    })
}

/// Marks a running task failed (`interrupted`) in the store; `None` when it had ended
/// meanwhile.
pub async fn interrupt(
    store: &dyn crate::store::Store,
    mut record: TaskRecord,
) -> crate::store::StoreResult<Option<TaskRecord>> {
    if record.snapshot.state.is_final() {
        return Ok(None);
    }
    let part = TaskPart {
        part: record.snapshot.parts.iter().map(|p| p.part + 1).max().unwrap_or(0),
        body: PartBody::Error {
            code: "interrupted".into(),
            text: "サーバーの再起動で中断しました。もう一度お試しください。 / Interrupted by a server restart; please ask again."
                .into(),
        },
    };
    record.snapshot.upsert_part(part);
    record.snapshot.state = TaskState::Failed;
    record.snapshot.updated_at = crate::ids::now_rfc3339();
    record.version += 1;
    store.save_task(&record).await?;
    Ok(Some(record))
}

/// Marks tasks left running by a previous server process as failed (`interrupted`): nobody
/// is running them any more. Called at start-up of a single instance (several instances use
/// leases instead: [`reap_orphans`]).
pub async fn interrupt_orphans(
    store: &dyn crate::store::Store,
) -> crate::store::StoreResult<usize> {
    let mut interrupted = 0;
    for record in store.running_tasks().await? {
        interrupted += usize::from(interrupt(store, record).await?.is_some());
    }
    Ok(interrupted)
}
