//! Conversations, sending and history: `GET /api/conversations`, `POST /api/chat/send`,
//! `GET /api/chat/history`.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use farm_chat_protocol::{
    ConversationId, MessageId, UserId,
    chat::{
        ConversationKind, ConversationList, ConversationSummary, HistoryPage, SendRequest,
        SendResponse, Sender, SenderKind,
    },
    session::Role,
    stream::{MessageCreated, StreamEvent},
};
use serde::Deserialize;

use crate::{
    ApiError, AppState,
    auth::AuthUser,
    directory,
    error::{ApiJson, ApiQuery},
    store::{Appended, ConversationRecord, Cursor, Idempotency, NewMessage},
    validate,
};

/// The conversations every farmer of a tenant has: their assistant chat and a support chat
/// with the tenant's support staff.
fn farmer_conversations(tenant: &str, farmer: &directory::DirUser) -> [ConversationRecord; 2] {
    let support_staff = directory::users_of(tenant, Role::Support).map(|u| UserId(u.id.into()));
    [
        ConversationRecord {
            id: ConversationId(format!("c-{}-assistant", farmer.id)),
            tenant_id: tenant.into(),
            kind: ConversationKind::Assistant,
            title: "牧場アシスタント".into(),
            owner: farmer.id.into(),
            participants: vec![farmer.id.into()],
        },
        ConversationRecord {
            id: ConversationId(format!("c-{}-support", farmer.id)),
            tenant_id: tenant.into(),
            kind: ConversationKind::Support,
            title: format!("サポート: {}", farmer.display_name),
            owner: farmer.id.into(),
            participants: std::iter::once(UserId(farmer.id.into()))
                .chain(support_staff)
                .collect(),
        },
    ]
}

/// Creates the tenant's farmers' conversations on first use (support staff see the support
/// chats of every farmer of their tenant).
async fn ensure_tenant_conversations(
    state: &AppState,
    tenant: &'static str,
) -> Result<(), ApiError> {
    state
        .db(move |s| {
            for farmer in directory::users_of(tenant, Role::Farmer) {
                for conversation in farmer_conversations(tenant, farmer) {
                    s.ensure_conversation(&conversation)?;
                }
            }
            Ok(())
        })
        .await
}

/// `GET /api/conversations`.
pub async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<ConversationList>, ApiError> {
    ensure_tenant_conversations(&state, auth.user.tenant).await?;
    let (tenant, user) = (auth.tenant_id(), auth.user_id());
    let conversations = state
        .db(move |s| {
            s.conversations_of(&tenant, &user)?
                .into_iter()
                .map(|c| {
                    Ok(ConversationSummary {
                        last_message: s.last_message(&c.id)?,
                        unread: s.unread(&c.id, &user)?,
                        id: c.id,
                        kind: c.kind,
                        title: c.title,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    Ok(Json(ConversationList { conversations }))
}

/// The conversation, if the user may use it: 404 when it does not exist in their tenant (other
/// tenants' conversations are not revealed), 403 when they do not take part in it.
async fn participant_conversation(
    state: &AppState,
    auth: &AuthUser,
    id: &ConversationId,
) -> Result<ConversationRecord, ApiError> {
    ensure_tenant_conversations(state, auth.user.tenant).await?;
    let (tenant, lookup) = (auth.tenant_id(), id.clone());
    let Some(conversation) = state.db(move |s| s.conversation(&tenant, &lookup)).await? else {
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
    validate::id("conversationId", req.conversation_id.as_str())?;
    validate::id("idempotencyKey", &req.idempotency_key)?;
    let text = validate::text(&req.text)?.to_owned();
    let conversation = participant_conversation(&state, &auth, &req.conversation_id).await?;

    let sender_kind = match auth.user.role {
        Role::Farmer => SenderKind::User,
        Role::Support => SenderKind::Support,
    };
    let message = NewMessage {
        message_id: MessageId(format!("m-{}", crate::auth::random_id())),
        conversation_id: conversation.id.clone(),
        sender: Sender {
            id: auth.user_id(),
            kind: sender_kind,
            display_name: auth.user.display_name.to_owned(),
        },
        text,
        created_at: crate::now_rfc3339(),
    };
    let idempotency = Idempotency {
        user_id: auth.user_id(),
        key: req.idempotency_key.clone(),
        // The body as sent (untrimmed): a retry sends the very same bytes.
        fingerprint: format!("{}\u{1f}{}", req.conversation_id, req.text),
    };
    let appended = state
        .db(move |s| s.append_message(&message, Some(&idempotency)))
        .await?;
    let (status, stored) = match appended {
        Appended::Created(stored) => {
            let (conv, user, seq) = (stored.conversation_id.clone(), auth.user_id(), stored.seq);
            state.db(move |s| s.mark_read(&conv, &user, seq)).await?;
            for participant in &conversation.participants {
                state.hub.publish(
                    participant,
                    StreamEvent::MessageCreated(MessageCreated {
                        conversation_id: stored.conversation_id.clone(),
                        message_id: stored.message_id.clone(),
                        seq: stored.seq,
                    }),
                );
            }
            state.metrics.messages_sent.inc();
            tracing::info!(messageId = %stored.message_id, seq = stored.seq, "message stored");
            (StatusCode::CREATED, stored)
        }
        Appended::Replayed(stored) => {
            tracing::info!(messageId = %stored.message_id, "idempotent retry answered");
            (StatusCode::OK, stored)
        }
        Appended::Conflict => return Err(ApiError::IdempotencyConflict),
    };
    let body = SendResponse {
        message_id: stored.message_id,
        conversation_id: stored.conversation_id,
        seq: stored.seq,
        created_at: stored.created_at,
        task_id: None,
    };
    Ok((status, Json(body)).into_response())
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
    let user = auth.user_id();
    let (messages, has_more) = state
        .db(move |s| {
            let page = s.history(&conversation.id, cursor, limit)?;
            if let Some(last) = page.0.last() {
                s.mark_read(&conversation.id, &user, last.seq)?;
            }
            Ok(page)
        })
        .await?;
    Ok(Json(HistoryPage { messages, has_more }))
}
