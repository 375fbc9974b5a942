//! Conversations, sending and history: `GET /api/conversations`, `POST /api/chat/send`,
//! `GET /api/chat/history`.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use farm_chat_protocol::{
    ConversationId, MessageId, TaskId, UserId,
    chat::{
        ConversationKind, ConversationList, ConversationSummary, HistoryPage, ReadMark,
        ReadRequest, ReplyLanguage, SendRequest, SendResponse, Sender, SenderKind, TypingRequest,
    },
    session::Role,
    stream::{ConversationRead, StreamEvent, Typing},
    task::{TaskSnapshot, TaskState},
};
use serde::Deserialize;

use crate::{
    announce,
    assistant::{self, Ask, Lang, Opening},
    auth::AuthUser,
    directory,
    error::ApiError,
    error::{ApiJson, ApiQuery},
    runner,
    state::AppState,
    store::{Appended, ConversationRecord, Cursor, Idempotency, NewMessage, Reply, TaskRecord},
    validate,
};

/// `GET /api/conversations` query: `kind`, `limit` (1–100, default 50) and `before` (the
/// `nextCursor` of the previous page). All strings, parsed strictly by hand.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    kind: Option<String>,
    limit: Option<String>,
    before: Option<String>,
}

/// Where a conversation stands in the list: its newest message's time (`""` without one) and
/// its id. The list runs newest activity first, ids ascending among equals.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ListKey {
    activity: String,
    id: String,
}

impl ListKey {
    fn of(summary: &ConversationSummary) -> Self {
        Self {
            activity: summary
                .last_message
                .as_ref()
                .map(|m| m.created_at.clone())
                .unwrap_or_default(),
            id: summary.id.to_string(),
        }
    }

    /// The cursor: `<activity>~<id>` (neither contains `~`).
    fn cursor(&self) -> String {
        format!("{}~{}", self.activity, self.id)
    }

    fn parse(cursor: &str) -> Result<Self, ApiError> {
        let bad =
            || ApiError::bad_request("invalid_query", "before is not a cursor this list gave");
        let (activity, id) = cursor.split_once('~').ok_or_else(bad)?;
        validate::id("before", id).map_err(|_| bad())?;
        if activity.len() > 40 || !activity.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad());
        }
        Ok(Self {
            activity: activity.to_owned(),
            id: id.to_owned(),
        })
    }

    /// Newest activity first; among equals, ids ascending.
    fn order(a: &Self, b: &Self) -> std::cmp::Ordering {
        b.activity.cmp(&a.activity).then_with(|| a.id.cmp(&b.id))
    }
}

/// `GET /api/conversations?kind=&limit=&before=`: the user's conversations, newest activity
/// first, a page at a time (support staff have one per farmer of their farm).
pub async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ConversationList>, ApiError> {
    let kind: Option<ConversationKind> =
        validate::query_enum(q.kind.as_deref(), "kind must be assistant or support")?;
    let limit = match q.limit.as_deref() {
        None => 50,
        Some(l) => match validate::number("limit", l)? {
            n @ 1..=100 => n as usize,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    "limit must be 1–100",
                ));
            }
        },
    };
    let before = q.before.as_deref().map(ListKey::parse).transpose()?;
    state
        .tenants
        .ensure(&*state.common.store, auth.user.tenant)
        .await?;
    let (tenant, user) = (auth.tenant_id(), auth.user_id());
    let mut conversations: Vec<_> = state
        .common
        .store
        .overviews(&tenant, &user, kind)
        .await?
        .into_iter()
        .map(|o| summary(o, &user))
        .collect();
    conversations.sort_by(|a, b| ListKey::order(&ListKey::of(a), &ListKey::of(b)));
    if let Some(before) = before {
        conversations
            .retain(|c| ListKey::order(&before, &ListKey::of(c)) == std::cmp::Ordering::Less);
    }
    let next_cursor = (conversations.len() > limit).then(|| {
        conversations.truncate(limit);
        conversations
            .last()
            .map(|c| ListKey::of(c).cursor())
            .unwrap_or_default()
    });
    Ok(Json(ConversationList {
        conversations,
        next_cursor,
    }))
}

/// One conversation as `user` sees it in the list.
fn summary(o: crate::store::Overview, user: &UserId) -> ConversationSummary {
    let c = o.conversation;
    let mark_of = |mine: bool| {
        o.read_marks
            .iter()
            .filter(|(u, _)| (u == user) == mine)
            .map(|(_, seq)| *seq)
            .max()
            .unwrap_or(0)
    };
    ConversationSummary {
        last_message: o.last_message.map(|m| for_reader(m, user)),
        unread: o.unread,
        owner_name: directory::user(c.owner.as_str())
            .map_or_else(|| c.owner.to_string(), |u| u.display_name.to_owned()),
        read_up_to: mark_of(true),
        others_read_up_to: mark_of(false),
        id: c.id,
        kind: c.kind,
        title: c.title,
    }
}

/// `POST /api/chat/read`: the reader has seen the conversation up to `seq`. Every participant
/// (the reader's other tabs too) gets `conversation.read`.
pub async fn read(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<ReadRequest>,
) -> Result<Json<ReadMark>, ApiError> {
    signal_allowed(&state, &auth).await?;
    validate::id("conversationId", req.conversation_id.as_str())?;
    if i64::try_from(req.seq).is_err() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "seq must be at most 9223372036854775807",
        ));
    }
    let conversation = participant_conversation(&state, &auth, &req.conversation_id).await?;
    let (id, user, asked) = (conversation.id.clone(), auth.user_id(), req.seq);
    let seq = state.common.store.mark_read(&id, &user, asked).await?;
    let event = StreamEvent::ConversationRead(ConversationRead {
        conversation_id: conversation.id.clone(),
        user_id: auth.user_id(),
        seq,
    });
    let dedupe = format!("r:{}:{}:{seq}", conversation.id, auth.user.id);
    announce::announce(
        &*state.common.bus,
        &conversation.participants,
        &event,
        Some(&dedupe),
    )
    .await;
    Ok(Json(ReadMark {
        conversation_id: conversation.id,
        seq,
    }))
}

/// `POST /api/chat/typing`: the other participants of a human conversation get `typing` on
/// their open streams (never stored). 204 also in the assistant conversation, where nobody
/// else is there to tell.
pub async fn typing(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<TypingRequest>,
) -> Result<StatusCode, ApiError> {
    signal_allowed(&state, &auth).await?;
    validate::id("conversationId", req.conversation_id.as_str())?;
    let conversation = participant_conversation(&state, &auth, &req.conversation_id).await?;
    let event = StreamEvent::Typing(Typing {
        conversation_id: conversation.id.clone(),
        user_id: auth.user_id(),
        display_name: auth.user.display_name.to_owned(),
    });
    for participant in &conversation.participants {
        if participant.as_str() != auth.user.id {
            state.common.bus.notify(participant, &event).await;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Typing and read calls per user: a burst of 20, then 2 a second (a widget sends one every
/// few seconds at most), so nobody can make every participant's stream busy.
async fn signal_allowed(state: &AppState, auth: &AuthUser) -> Result<(), ApiError> {
    state
        .local
        .signal_limit
        .check_shared(&*state.common.shared, "signal", &auth.user_id())
        .await
        .map_err(|retry_after| ApiError::rate_limited(retry_after, "操作", "requests"))
}

/// The conversation, if the user may use it: 404 when it does not exist in their tenant (other
/// tenants' conversations are not revealed), 403 when they do not take part in it.
async fn participant_conversation(
    state: &AppState,
    auth: &AuthUser,
    id: &ConversationId,
) -> Result<ConversationRecord, ApiError> {
    state
        .tenants
        .ensure(&*state.common.store, auth.user.tenant)
        .await?;
    let Some(conversation) = state
        .common
        .store
        .conversation(&auth.tenant_id(), id)
        .await?
    else {
        return Err(ApiError::NotFound(format!(
            "会話 {id} は見つかりません / no conversation {id}"
        )));
    };
    if !conversation
        .participants
        .iter()
        .any(|p| p.as_str() == auth.user.id)
    {
        return Err(ApiError::Forbidden {
            code: "not_a_participant",
            message: format!("you do not take part in conversation {id}"),
        });
    }
    tracing::Span::current().record("conversationId", id.as_str());
    Ok(conversation)
}

/// `POST /api/chat/send`: 201 for a new message, 200 for a retry with the same key and body,
/// 409 for the same key with another body.
pub async fn send(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<SendRequest>,
) -> Result<Response, ApiError> {
    if let Err(retry_after) = state
        .local
        .send_limit
        .check_shared(&*state.common.shared, "send", &auth.user_id())
        .await
    {
        return Err(ApiError::rate_limited(retry_after, "送信", "messages"));
    }
    validate::id("conversationId", req.conversation_id.as_str())?;
    validate::id("idempotencyKey", &req.idempotency_key)?;
    let text = validate::text(&req.text)?.to_owned();
    let conversation = participant_conversation(&state, &auth, &req.conversation_id).await?;

    let sender_kind = SenderKind::from(auth.user.role);
    let now = crate::ids::now_rfc3339();
    let message = NewMessage {
        message_id: MessageId(format!("m-{}", crate::ids::random_id())),
        conversation_id: conversation.id.clone(),
        sender: Sender {
            id: auth.user_id(),
            kind: sender_kind,
            display_name: auth.user.display_name.to_owned(),
        },
        text,
        created_at: now.clone(),
        task_id: None,
    };
    // In the assistant conversation the farmer's message starts a task: its reply message and
    // task are stored in the same transaction as the message, so neither exists without the other.
    let assistant =
        if conversation.kind == ConversationKind::Assistant && auth.user.role == Role::Farmer {
            let ask = ask(&state, &auth, &message, req.locale).await?;
            Some(assistant_reply(&state, &auth, &message, &now, ask)?)
        } else {
            None
        };
    let idempotency = Idempotency {
        user_id: auth.user_id(),
        key: req.idempotency_key.clone(),
        // The body as sent (untrimmed): a retry sends the very same bytes.
        fingerprint: format!("{}\u{1f}{}", req.conversation_id, req.text),
    };
    // Storing and announcing run apart from this request: when the client's connection drops
    // (a phone losing signal) axum drops the handler, and a message committed but never
    // announced would reach the other participants only at their next refetch.
    let task = tokio::spawn(commit_and_announce(
        state,
        conversation,
        message,
        idempotency,
        assistant,
    ));
    task.await
        .map_err(|e| ApiError::Internal(format!("the send task failed: {e}")))?
}

/// Stores the message (and the assistant's reply and task), then announces it to every
/// participant's streams and starts the task.
async fn commit_and_announce(
    state: AppState,
    conversation: ConversationRecord,
    message: NewMessage,
    idempotency: Idempotency,
    assistant: Option<(Reply, Ask)>,
) -> Result<Response, ApiError> {
    let reply = assistant.as_ref().map(|(reply, _)| reply.clone());
    let appended = state
        .common
        .store
        .append_message(&message, Some(&idempotency), reply.as_ref())
        .await?;
    let (status, stored, task_id) = match appended {
        Appended::Created {
            message: stored,
            reply,
        } => {
            for message in std::iter::once(&stored).chain(reply.as_ref()) {
                announce::message(
                    &*state.common.bus,
                    &*state.common.store,
                    &conversation.participants,
                    &message.message_id,
                    &message.conversation_id,
                    message.seq,
                )
                .await;
            }
            state.local.metrics.messages_sent.inc();
            tracing::info!(messageId = %stored.message_id, seq = stored.seq, "message stored");
            let task_id = assistant.map(|(reply, ask)| {
                let id = reply.task.snapshot.task_id.clone();
                state.local.metrics.task_finished(TaskState::Running);
                tracing::info!(taskId = %id, kind = ?reply.task.snapshot.kind, engine = state.common.assistant.name(), "task started");
                runner::start(&state, reply.task, conversation.participants.clone(), ask);
                id
            });
            (StatusCode::CREATED, stored, task_id)
        }
        Appended::Replayed {
            message: stored,
            task_id,
        } => {
            tracing::info!(messageId = %stored.message_id, "idempotent retry answered");
            (StatusCode::OK, stored, task_id)
        }
        Appended::Conflict => return Err(ApiError::IdempotencyConflict),
    };
    let body = SendResponse {
        message_id: stored.message_id,
        conversation_id: stored.conversation_id,
        seq: stored.seq,
        created_at: stored.created_at,
        task_id,
    };
    Ok((status, Json(body)).into_response())
}

/// The conversation's messages before a new one that an engine reads: the newest 20, and
/// of those only as many (newest first) as fit in about 8,000 characters.
const CONTEXT_MESSAGES: u32 = 20;
const CONTEXT_CHARS: usize = 8_000;

/// What the engine gets for a farmer's message: the question, the language, the recent
/// conversation (bounded). The reply is in the widget's language when it said which
/// (`locale`); only without it does the text's own script decide.
async fn ask(
    state: &AppState,
    auth: &AuthUser,
    message: &NewMessage,
    locale: Option<ReplyLanguage>,
) -> Result<Ask, ApiError> {
    let lang = match locale {
        Some(ReplyLanguage::Ja) => Lang::Ja,
        Some(ReplyLanguage::En) => Lang::En,
        None => assistant::intent::lang(&message.text),
    };
    let mut history = Vec::new();
    if state.common.assistant.is_model() {
        let (recent, _) = state
            .common
            .store
            .history(&message.conversation_id, Cursor::Latest, CONTEXT_MESSAGES)
            .await?;
        let mut budget = CONTEXT_CHARS;
        for m in recent.into_iter().rev() {
            let n = m.text.chars().count();
            if n > budget {
                break;
            }
            budget -= n;
            history.push((m.sender.kind, m.text));
        }
        history.reverse();
    }
    Ok(Ask {
        tenant: auth.user.tenant,
        user: auth.user_id(),
        lang,
        question: message.text.clone(),
        history,
    })
}

/// The assistant's reply message and its task (running, no parts yet) for a farmer's message;
/// 429 when the user already has as many model answers running as they may.
fn assistant_reply(
    state: &AppState,
    auth: &AuthUser,
    message: &NewMessage,
    now: &str,
    ask: Ask,
) -> Result<(Reply, Ask), ApiError> {
    let engine = &state.common.assistant;
    let limit = state.config.model.model_max_concurrent_per_user as usize;
    if engine.is_model() && state.local.tasks.running_for(&ask.user) >= limit {
        return Err(ApiError::TooMany {
            code: "too_many_answers",
            message: format!(
                "回答中の質問が{limit}件あります。終わるのを待つか停止してください / {limit} answers are still running; wait for one or stop it"
            ),
            retry_after: 5,
        });
    }
    let Opening { kind, title } = engine.open(&ask);
    let lang = ask.lang;
    let task_id = TaskId(format!("t-{}", crate::ids::random_id()));
    let reply_id = MessageId(format!("m-{}", crate::ids::random_id()));
    let snapshot = TaskSnapshot {
        task_id: task_id.clone(),
        conversation_id: message.conversation_id.clone(),
        message_id: reply_id.clone(),
        kind,
        state: TaskState::Running,
        progress: None,
        parts: Vec::new(),
        created_at: now.to_owned(),
        updated_at: now.to_owned(),
    };
    let reply = Reply {
        message: NewMessage {
            message_id: reply_id,
            conversation_id: message.conversation_id.clone(),
            sender: Sender {
                id: UserId("assistant".into()),
                kind: SenderKind::Assistant,
                display_name: match lang {
                    Lang::Ja => "牧場アシスタント".into(),
                    Lang::En => "Farm assistant".into(),
                },
            },
            text: title,
            created_at: now.to_owned(),
            task_id: Some(task_id),
        },
        task: TaskRecord {
            snapshot,
            owner: auth.user_id(),
            source_message_id: message.message_id.clone(),
            version: 0,
        },
    };
    Ok((reply, ask))
}

/// A message as `reader` may see it: the idempotency key only on their own messages.
fn for_reader(
    mut message: farm_chat_protocol::chat::Message,
    reader: &UserId,
) -> farm_chat_protocol::chat::Message {
    if &message.sender.id != reader {
        message.idempotency_key = None;
    }
    message
}

/// `GET /api/chat/history` query. All strings: parsed strictly by hand, so a bad value gets
/// a precise 400.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryQuery {
    conversation_id: Option<String>,
    limit: Option<String>,
    before: Option<String>,
    after: Option<String>,
}

/// `GET /api/chat/history?conversationId=&limit=&before=&after=`.
pub async fn history(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<HistoryPage>, ApiError> {
    let Some(conversation_id) = q.conversation_id else {
        return Err(ApiError::bad_request(
            "invalid_query",
            "conversationId is required",
        ));
    };
    validate::id("conversationId", &conversation_id)?;
    let limit = match q.limit.as_deref() {
        None => 50,
        Some(l) => match validate::number("limit", l)? {
            n @ 1..=100 => n as u32,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    "limit must be 1–100",
                ));
            }
        },
    };
    let cursor = match (q.before.as_deref(), q.after.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "give before or after, not both",
            ));
        }
        (Some(b), None) => Cursor::Before(validate::number("before", b)?),
        (None, Some(a)) => Cursor::After(validate::number("after", a)?),
        (None, None) => Cursor::Latest,
    };
    let conversation =
        participant_conversation(&state, &auth, &ConversationId(conversation_id)).await?;
    // Reading history marks nothing read: a widget says what its user saw (`POST /api/chat/read`).
    let (messages, has_more) = state
        .common
        .store
        .history(&conversation.id, cursor, limit)
        .await?;
    // A running task's hot snapshot is fresher than the stored one.
    let reader = auth.user_id();
    let mut messages = messages;
    let with_task: Vec<usize> = (0..messages.len())
        .filter(|&i| messages[i].task.is_some())
        .collect();
    let stored: Vec<_> = with_task
        .iter()
        .filter_map(|&i| messages[i].task.clone())
        .map(|snapshot| crate::store::TaskRecord {
            // History carries no version: any hot copy newer than "stored" wins below.
            owner: UserId(String::new()),
            source_message_id: MessageId(String::new()),
            version: 0,
            snapshot,
        })
        .collect();
    for (i, fresh) in with_task
        .into_iter()
        .zip(runner::fresher(&state, stored).await)
    {
        messages[i].task = Some(fresh.snapshot);
    }
    let messages = messages
        .into_iter()
        .map(|m| for_reader(m, &reader))
        .collect();
    Ok(Json(HistoryPage { messages, has_more }))
}
