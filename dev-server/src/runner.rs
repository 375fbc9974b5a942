//! Assistant tasks at run time: the runner that runs an engine's answer (its parts, and its
//! text coalesced into `task.text` deltas), the snapshots written hot and durable, cancel (here, or by a signal to the instance running it), task
//! leases and the reaper of tasks whose instance died.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use farm_chat_protocol::{
    TaskId, UserId,
    task::{PartBody, TaskPart, TaskSnapshot, TaskState},
};

use crate::{
    assistant::{Ask, Lang, Parts, Report},
    auth::AuthUser,
    error::ApiError,
    state::AppState,
    store::TaskRecord,
    tasks::{KEEP_HOT, done_event, interrupt, part_event},
    validate,
};

/// Writes a changed snapshot: hot into [`Shared`](crate::shared::Shared) first, and when every
/// instance reads it there, behind into the store (awaited only for the final one); else
/// into the store.
async fn persist(state: &AppState, record: TaskRecord) {
    let hot_everywhere = keep_hot(state, &record).await;
    store(state, record, hot_everywhere).await;
}

/// Puts a snapshot where every instance reads hot tasks; `true` if they all read it there.
async fn keep_hot(state: &AppState, record: &TaskRecord) -> bool {
    let ttl = if record.snapshot.state.is_final() {
        KEEP_HOT
    } else {
        Duration::from_secs(3600)
    };
    match state.common.shared.put_task(record, ttl).await {
        Ok(kept) => kept,
        Err(e) => {
            let id = &record.snapshot.task_id;
            tracing::warn!(taskId = %id, error = %e, "could not keep the task snapshot hot");
            false
        }
    }
}

async fn store(state: &AppState, record: TaskRecord, hot_everywhere: bool) {
    let id = record.snapshot.task_id.clone();
    if hot_everywhere && !record.snapshot.state.is_final() {
        // Write-behind: versions only grow, so a late write never undoes a newer one.
        let store = state.common.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.save_task(&record).await {
                tracing::warn!(taskId = %id, error = %e, "could not store the task snapshot");
            }
        });
        return;
    }
    if let Err(e) = state.common.store.save_task(&record).await {
        // The hot copy still serves; the next change writes again.
        tracing::error!(taskId = %id, error = %e, "could not store the task snapshot");
    }
}

/// How often a streaming answer's text is written to the store at most (it is hot at once):
/// an instance that dies mid-answer leaves at most this much unwritten.
const STORE_TEXT_EVERY: Duration = Duration::from_secs(1);

/// Starts answering `ask` for a task already stored (running, no parts) with its messages:
/// the engine runs inside the runner, so ending the task (a cancel, here or signalled from
/// another instance) drops it, and with it any request to a model.
pub fn start(state: &AppState, record: TaskRecord, participants: Vec<UserId>, ask: Ask) {
    let id = record.snapshot.task_id.clone();
    let mut stopped = state.local.tasks.insert(record, participants, ask.lang);
    // Leases are read only by the reaper, which runs when instances share the work.
    if state.common.shared.spans_instances() {
        tokio::spawn(keep_lease(state.clone(), id.clone()));
    }
    let state = state.clone();
    tokio::spawn(async move {
        let engine = state.common.assistant.clone();
        let (out, mut reports) = Parts::channel();
        let answer = engine.answer(ask, out);
        tokio::pin!(answer);
        let mut run = Run {
            state: &state,
            id: &id,
            text: BTreeMap::new(),
            flush_at: None,
            stored_at: Instant::now(),
            flush_every: state.config.model.model_flush_interval,
        };
        let mut outcome = None;
        loop {
            let flush_at = run.flush_at;
            tokio::select! {
                biased;
                () = ended(&mut stopped) => return,
                report = reports.recv() => match report {
                    Some(Report::Part(part)) => {
                        // Text first: events keep the order the engine reported in.
                        if !run.flush().await || !run.part(part).await {
                            return;
                        }
                    }
                    Some(Report::Text { part, delta }) => run.text(part, delta),
                    None => break,
                },
                () = sleep_until_some(flush_at) => {
                    if !run.flush().await {
                        return;
                    }
                }
                ended = &mut answer, if outcome.is_none() => outcome = Some(ended),
            }
        }
        let outcome = match outcome {
            Some(outcome) => outcome,
            None => tokio::select! {
                () = ended(&mut stopped) => return,
                ended = &mut answer => ended,
            },
        };
        if run.flush().await {
            run.finish(outcome).await;
        }
    });
}

/// Until the task ends (however it ends).
async fn ended(stopped: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// One running answer: the text not yet sent, per part, coalesced.
struct Run<'a> {
    state: &'a AppState,
    id: &'a TaskId,
    text: BTreeMap<u32, String>,
    flush_at: Option<Instant>,
    stored_at: Instant,
    flush_every: Duration,
}

impl Run<'_> {
    /// Changes the task and publishes the events `f` returns (`None`: it ended meanwhile).
    async fn change(
        &self,
        f: impl FnOnce(&mut TaskSnapshot, Lang) -> Vec<farm_chat_protocol::StreamEvent>,
    ) -> Option<TaskRecord> {
        self.state
            .local
            .tasks
            .change(
                &*self.state.common.bus,
                &self.state.local.metrics,
                self.id,
                f,
            )
            .await
    }

    /// Adds text; the first delta of a burst goes out at once (the time to the first word
    /// is what a reader waits for), the rest at most once per flush interval.
    fn text(&mut self, part: u32, delta: String) {
        self.text.entry(part).or_default().push_str(&delta);
        if self.flush_at.is_none() {
            self.flush_at = Some(Instant::now());
        }
    }

    /// Sends the coalesced text (`false`: the task ended meanwhile).
    async fn flush(&mut self) -> bool {
        if self.text.is_empty() {
            self.flush_at = None;
            return true;
        }
        let pending = std::mem::take(&mut self.text);
        self.flush_at = Some(Instant::now() + self.flush_every);
        let changed = self
            .change(|snapshot, _| {
                pending
                    .into_iter()
                    .filter_map(|(part, delta)| {
                        let offset = snapshot.text(part).len() as u64;
                        snapshot.apply_text(part, offset, &delta);
                        (!delta.is_empty()).then(|| {
                            part_event(
                                snapshot,
                                TaskPart {
                                    part,
                                    body: PartBody::Text {
                                        offset,
                                        text: delta,
                                    },
                                },
                            )
                        })
                    })
                    .collect()
            })
            .await;
        let Some(record) = changed else {
            return false;
        };
        let hot_everywhere = keep_hot(self.state, &record).await;
        if hot_everywhere || self.stored_at.elapsed() >= STORE_TEXT_EVERY {
            self.stored_at = Instant::now();
            store(self.state, record, hot_everywhere).await;
        }
        true
    }

    /// Sends a part (`false`: the task ended meanwhile).
    async fn part(&mut self, part: TaskPart) -> bool {
        let changed = self
            .change(|snapshot, _| {
                snapshot.upsert_part(part.clone());
                vec![part_event(snapshot, part)]
            })
            .await;
        match changed {
            Some(record) => {
                self.stored_at = Instant::now();
                persist(self.state, record).await;
                true
            }
            None => false,
        }
    }

    /// Ends the task as the engine said, with `task.done`.
    async fn finish(&mut self, outcome: TaskState) {
        let outcome = if outcome.is_final() {
            outcome
        } else {
            TaskState::Failed
        };
        let changed = self
            .change(|snapshot, _| {
                snapshot.state = outcome;
                vec![done_event(snapshot)]
            })
            .await;
        if let Some(record) = changed {
            persist(self.state, record).await;
        }
    }
}

/// Cancels a running task: `task.error` (`cancelled`) then `task.done`, keeping the parts so
/// far. Answers the snapshot; 409 if the task already ended.
pub async fn cancel_task(
    state: &AppState,
    auth: &AuthUser,
    id: &TaskId,
) -> Result<TaskSnapshot, ApiError> {
    let record = visible_task(state, auth, id).await?;
    if state.local.tasks.hot(id).is_none() && record.snapshot.state == TaskState::Running {
        // Another instance runs it: ask it, and answer what it stored.
        return cancel_elsewhere(state, id).await;
    }
    let Some(snapshot) = cancel_here(state, id).await else {
        return Err(not_running(id, record.snapshot.state));
    };
    Ok(snapshot)
}

fn not_running(id: &TaskId, state: TaskState) -> ApiError {
    ApiError::Conflict {
        code: "task_not_running",
        message: format!("task {id} has already ended ({state:?})").to_lowercase(),
    }
}

/// Cancels a task running on this instance; `None` if it isn't (or has ended).
pub async fn cancel_here(state: &AppState, id: &TaskId) -> Option<TaskSnapshot> {
    let changed = state
        .local
        .tasks
        .change(
            &*state.common.bus,
            &state.local.metrics,
            id,
            |snapshot, lang| {
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
            },
        )
        .await?;
    tracing::info!(taskId = %id, "task cancelled");
    let snapshot = changed.snapshot.clone();
    persist(state, changed).await;
    Some(snapshot)
}

/// Signals the instance running the task to cancel it, then waits (up to 5 s) for the
/// stored snapshot to end.
async fn cancel_elsewhere(state: &AppState, id: &TaskId) -> Result<TaskSnapshot, ApiError> {
    state
        .common
        .bus
        .signal(crate::bus::Signal::CancelTask(id.clone()))
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(stored) = state.common.store.task(id).await?
            && stored.snapshot.state.is_final()
        {
            return match stored.snapshot.state {
                TaskState::Cancelled => Ok(stored.snapshot),
                other => Err(not_running(id, other)),
            };
        }
    }
    Err(ApiError::Unavailable(format!(
        "task {id}: the instance running it did not answer the cancel"
    )))
}

/// Acts on the signals of every instance that concern this one's tasks, until shutdown.
pub async fn follow_signals(state: AppState) {
    let mut signals = state.common.bus.signals();
    let mut shutdown = state.shutdown.clone();
    loop {
        let signal = tokio::select! {
            signal = signals.recv() => signal,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        match signal {
            Ok(crate::bus::Signal::CancelTask(id)) => {
                if state.local.tasks.hot(&id).is_some() {
                    cancel_here(&state, &id).await;
                }
            }
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "signals missed");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// A task the user may see: hot or stored, owned by them. Others' tasks are 404.
pub async fn visible_task(
    state: &AppState,
    auth: &AuthUser,
    id: &TaskId,
) -> Result<TaskRecord, ApiError> {
    validate::id("taskId", id.as_str())?;
    let record = match state.local.tasks.hot(id) {
        Some(record) => Some(record),
        None => {
            let stored = state.common.store.task(id).await?;
            match stored {
                Some(stored) => Some(fresher(state, vec![stored]).await.remove(0)),
                None => None,
            }
        }
    };
    match record {
        Some(record) if record.owner.as_str() == auth.user.id => Ok(record),
        _ => Err(ApiError::NotFound(format!(
            "タスク {id} は見つかりません / no task {id}"
        ))),
    }
}

/// The freshest copy of each stored task: hot in this instance, else hot in what instances
/// share (another instance runs it), else the stored one. Same order.
pub async fn fresher(state: &AppState, stored: Vec<TaskRecord>) -> Vec<TaskRecord> {
    let mut out: Vec<TaskRecord> = stored
        .into_iter()
        .map(|r| state.local.tasks.hot(&r.snapshot.task_id).unwrap_or(r))
        .collect();
    let shared = &state.common.shared;
    // Only copies that may be stale: still running as far as this instance knows.
    let stale: Vec<usize> = (0..out.len())
        .filter(|&i| !out[i].snapshot.state.is_final())
        .collect();
    let ids: Vec<TaskId> = stale
        .iter()
        .map(|&i| out[i].snapshot.task_id.clone())
        .collect();
    match shared.tasks(&ids).await {
        Ok(hot) => {
            for (i, hot) in stale.into_iter().zip(hot) {
                if let Some(hot) = hot.filter(|h| h.version > out[i].version) {
                    out[i] = hot;
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "hot task snapshots unavailable; stored ones serve"),
    }
    out
}

/// How long a runner's lease lasts unless renewed; it is renewed every third of that.
pub const LEASE: Duration = Duration::from_secs(9);

/// Renews the lease of a task this instance runs until it ends (or this instance dies, and
/// the lease runs out: then another instance marks the task interrupted).
async fn keep_lease(state: AppState, id: TaskId) {
    let shared = state.common.shared.clone();
    loop {
        let running = state
            .local
            .tasks
            .hot(&id)
            .is_some_and(|r| !r.snapshot.state.is_final());
        if !running {
            return;
        }
        if let Err(e) = shared.hold_lease(id.as_str(), LEASE).await {
            tracing::warn!(taskId = %id, error = %e, "could not renew the task's lease");
        }
        tokio::time::sleep(LEASE / 3).await;
    }
}

/// With several instances: every few seconds, tasks stored as running whose runner's lease ran
/// out (that instance died) are marked interrupted, and their participants are told. A task
/// younger than a lease is left alone (its runner may not have taken the lease yet).
pub async fn reap_orphans(state: AppState) {
    let shared = state.common.shared.clone();
    let mut shutdown = state.shutdown.clone();
    let mut every = tokio::time::interval(LEASE / 3);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let running = match state.common.store.running_tasks().await {
            Ok(running) => running,
            Err(e) => {
                tracing::warn!(error = %e, "could not list running tasks");
                continue;
            }
        };
        for record in running {
            let young = humantime::parse_rfc3339(&record.snapshot.created_at)
                .ok()
                .and_then(|at| at.elapsed().ok())
                .is_none_or(|age| age < LEASE);
            if young || state.local.tasks.hot(&record.snapshot.task_id).is_some() {
                continue;
            }
            if !matches!(
                shared.has_lease(record.snapshot.task_id.as_str()).await,
                Ok(false)
            ) {
                continue;
            }
            let id = record.snapshot.task_id.clone();
            // The hot copy in Redis may hold more of an answer's text than the store.
            let record = fresher(&state, vec![record]).await.remove(0);
            match interrupt(&*state.common.store, record).await {
                Ok(Some(interrupted)) => {
                    tracing::warn!(taskId = %id, "task interrupted: its instance stopped running it");
                    tell_interrupted(&state, &interrupted).await;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(taskId = %id, error = %e, "could not interrupt a task"),
            }
        }
    }
}

/// Publishes an interrupted task's last part and end to the participants of its conversation.
async fn tell_interrupted(state: &AppState, record: &TaskRecord) {
    let Some(owner) = crate::directory::user(record.owner.as_str()) else {
        return;
    };
    let tenant = farm_chat_protocol::TenantId(owner.tenant.to_owned());
    let Ok(Some(conversation)) = state
        .common
        .store
        .conversation(&tenant, &record.snapshot.conversation_id)
        .await
    else {
        return;
    };
    let snapshot = &record.snapshot;
    let mut events = Vec::new();
    if let Some(last) = snapshot.parts.last() {
        events.push(part_event(snapshot, last.clone()));
    }
    events.push(done_event(snapshot));
    for (i, event) in events.iter().enumerate() {
        let dedupe = format!("t:{}:{}:{i}", snapshot.task_id, record.version);
        crate::announce::announce(
            &*state.common.bus,
            &conversation.participants,
            event,
            Some(&dedupe),
        )
        .await;
    }
}
