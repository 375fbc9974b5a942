//! Assistant tasks at run time: the runner that plays a [`Plan`] with pacing, the hot
//! snapshots (kept in memory, evicted an hour after the task ends) backed by the durable store,
//! cancel, and the `/api/tasks` routes.
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

use axum::{Json, extract::State};
use farm_chat_protocol::{
    StreamEvent, TaskId, UserId,
    stream::{TaskDone, TaskPartEvent},
    task::{PartBody, TaskList, TaskPart, TaskSnapshot, TaskState},
};
use serde::Deserialize;

use crate::{
    ApiError, AppState,
    assistant::{Lang, Plan},
    auth::AuthUser,
    error::{ApiPath, ApiQuery},
    store::TaskRecord,
    validate,
};

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

    fn insert(&self, record: TaskRecord, participants: Vec<UserId>, lang: Lang) {
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
            },
        );
    }

    /// Applies `change` to a running task and publishes the events it returns, in turn with
    /// the task's other changes. `None` if the task is not hot or no longer running.
    async fn change(
        &self,
        state: &AppState,
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
            entry.record.snapshot.updated_at = crate::now_rfc3339();
            if entry.record.snapshot.state.is_final() {
                entry.finished_at = Some(Instant::now());
                state.metrics.task_finished(entry.record.snapshot.state);
            }
            (entry.record.clone(), entry.participants.clone(), events)
        };
        for (i, event) in events.iter().enumerate() {
            let dedupe = format!("t:{id}:{}:{i}", record.version);
            crate::chat::announce(state, &participants, event, Some(&dedupe)).await;
        }
        Some(record)
    }
}

fn part_event(snapshot: &TaskSnapshot, part: TaskPart) -> StreamEvent {
    StreamEvent::task_part(TaskPartEvent {
        task_id: snapshot.task_id.clone(),
        message_id: snapshot.message_id.clone(),
        conversation_id: snapshot.conversation_id.clone(),
        part,
    })
}

fn done_event(snapshot: &TaskSnapshot) -> StreamEvent {
    StreamEvent::TaskDone(TaskDone {
        task_id: snapshot.task_id.clone(),
        message_id: snapshot.message_id.clone(),
        conversation_id: snapshot.conversation_id.clone(),
        state: snapshot.state,
    })
}

async fn persist(state: &AppState, record: TaskRecord) {
    let id = record.snapshot.task_id.clone();
    if let Err(e) = state.store.save_task(&record).await {
        // The hot copy still serves; the next change writes again.
        tracing::error!(taskId = %id, error = %e, "could not store the task snapshot");
    }
}

/// Starts playing `plan` for a task already stored (running, no parts) with its messages.
pub fn start(
    state: &AppState,
    record: TaskRecord,
    participants: Vec<UserId>,
    lang: Lang,
    plan: Plan,
) {
    let id = record.snapshot.task_id.clone();
    state.tasks.insert(record, participants, lang);
    let state = state.clone();
    tokio::spawn(async move {
        let step = state.assistant_step;
        let mut steps = plan.steps.into_iter().peekable();
        while let Some(part) = steps.next() {
            tokio::time::sleep(step).await;
            let last = steps.peek().is_none();
            let Some(record) = state
                .tasks
                .change(&state, &id, |snapshot, _| {
                    snapshot.upsert_part(part.clone());
                    let mut events = vec![part_event(snapshot, part)];
                    if last {
                        snapshot.state = plan.outcome;
                        events.push(done_event(snapshot));
                    }
                    events
                })
                .await
            else {
                return; // cancelled meanwhile
            };
            persist(&state, record).await;
        }
    });
}

/// Cancels a running task: `task.error` (`cancelled`) then `task.done`, keeping the parts so
/// far. Answers the snapshot; 409 if the task already ended.
pub async fn cancel_task(
    state: &AppState,
    auth: &AuthUser,
    id: &TaskId,
) -> Result<TaskSnapshot, ApiError> {
    let record = visible_task(state, auth, id).await?;
    let changed = state
        .tasks
        .change(state, id, |snapshot, lang| {
            let part = TaskPart {
                part: snapshot.parts.iter().map(|p| p.part + 1).max().unwrap_or(0),
                body: PartBody::Error {
                    code: "cancelled".into(),
                    text: match lang {
                        Lang::Ja => "キャンセルしました。もう一度お試しいただけます。".into(),
                        Lang::En => "Cancelled. You can ask again at any time.".into(),
                    },
                },
            };
            snapshot.upsert_part(part.clone());
            snapshot.state = TaskState::Cancelled;
            vec![part_event(snapshot, part), done_event(snapshot)]
        })
        .await;
    let Some(changed) = changed else {
        return Err(ApiError::Conflict {
            code: "task_not_running",
            message: format!("task {id} has already ended ({:?})", record.snapshot.state)
                .to_lowercase(),
        });
    };
    tracing::info!(taskId = %id, "task cancelled");
    let snapshot = changed.snapshot.clone();
    persist(state, changed).await;
    Ok(snapshot)
}

/// A task the user may see: hot or stored, owned by them. Others' tasks are 404.
async fn visible_task(
    state: &AppState,
    auth: &AuthUser,
    id: &TaskId,
) -> Result<TaskRecord, ApiError> {
    validate::id("taskId", id.as_str())?;
    let record = match state.tasks.hot(id) {
        Some(record) => Some(record),
        None => state.store.task(id).await?,
    };
    match record {
        Some(record) if record.owner.as_str() == auth.user.id => Ok(record),
        _ => Err(ApiError::NotFound(format!(
            "タスク {id} は見つかりません / no task {id}"
        ))),
    }
}

/// The freshest snapshot of a stored task: the hot one when it is hot.
pub fn freshest(state: &AppState, stored: TaskSnapshot) -> TaskSnapshot {
    match state.tasks.hot(&stored.task_id) {
        Some(hot) => hot.snapshot,
        None => stored,
    }
}

/// Marks tasks left running by a previous server process as failed (`interrupted`): nobody
/// is running them any more. Called at start-up.
pub async fn interrupt_orphans(
    store: &dyn crate::store::Store,
) -> crate::store::StoreResult<usize> {
    let orphans = store.running_tasks().await?;
    for mut record in orphans.iter().cloned() {
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
        record.snapshot.updated_at = crate::now_rfc3339();
        record.version += 1;
        store.save_task(&record).await?;
    }
    Ok(orphans.len())
}

/// `GET /api/tasks` query.
#[derive(Debug, Deserialize)]
pub struct TasksQuery {
    state: Option<String>,
}

/// `GET /api/tasks?state=running|succeeded|failed|cancelled`: the user's tasks, newest first.
pub async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<TasksQuery>,
) -> Result<Json<TaskList>, ApiError> {
    let filter = match q.state.as_deref() {
        None => None,
        Some("running") => Some(TaskState::Running),
        Some("succeeded") => Some(TaskState::Succeeded),
        Some("failed") => Some(TaskState::Failed),
        Some("cancelled") => Some(TaskState::Cancelled),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "state must be running, succeeded, failed or cancelled",
            ));
        }
    };
    let owner = auth.user_id();
    let stored = state.store.tasks_of(&owner, filter).await?;
    let tasks = stored
        .into_iter()
        .map(|r| freshest(&state, r.snapshot))
        .filter(|s| filter.is_none_or(|f| s.state == f))
        .collect();
    Ok(Json(TaskList { tasks }))
}

/// `GET /api/tasks/{taskId}`.
pub async fn get(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TaskSnapshot>, ApiError> {
    Ok(Json(
        visible_task(&state, &auth, &TaskId(id)).await?.snapshot,
    ))
}

/// `POST /api/tasks/{taskId}/cancel`.
pub async fn cancel(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TaskSnapshot>, ApiError> {
    Ok(Json(cancel_task(&state, &auth, &TaskId(id)).await?))
}
