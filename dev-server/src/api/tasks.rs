//! `/api/tasks`: the user's assistant tasks, one task, and cancelling one.

use axum::{Json, extract::State};

use farm_chat_protocol::{
    TaskId,
    task::{TaskList, TaskSnapshot, TaskState},
};

use serde::Deserialize;

use crate::{
    auth::AuthUser,
    error::{ApiError, ApiPath, ApiQuery},
    runner::{cancel_task, fresher, visible_task},
    state::AppState,
    validate,
};

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
    let filter: Option<TaskState> = validate::query_enum(
        q.state.as_deref(),
        "state must be running, succeeded, failed or cancelled",
    )?;
    let owner = auth.user_id();
    let stored = state.common.store.tasks_of(&owner, filter).await?;
    let tasks = fresher(&state, stored)
        .await
        .into_iter()
        .map(|r| r.snapshot)
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
