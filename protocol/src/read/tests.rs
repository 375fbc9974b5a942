//! Golden tests: every type a client reads, written by serde (the server's own serialisation)
//! and read back by the readers, must come back equal.

use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::*;

/// serde writes `value`; the reader must read it back equal, and so must serde.
fn round_trip<T>(value: &T)
where
    T: FromJson + Serialize + DeserializeOwned + PartialEq + fmt::Debug,
{
    let json = serde_json::to_value(value).expect("serialises");
    assert_eq!(&T::from_json(&json).expect("reads"), value, "{json}");
    assert_eq!(
        &serde_json::from_value::<T>(json).expect("serde reads"),
        value
    );
}

fn snapshot(state: TaskState, parts: Vec<TaskPart>) -> TaskSnapshot {
    TaskSnapshot {
        task_id: "t-1".into(),
        conversation_id: "c-u-farmer-assistant".into(),
        message_id: "m-2".into(),
        kind: TaskKind::HealthReport,
        state,
        progress: Some(Progress::new(2, 4)),
        parts,
        created_at: "2026-11-30T00:00:00.000Z".into(),
        updated_at: "2026-11-30T00:00:01.500Z".into(),
    }
}

fn every_part() -> Vec<TaskPart> {
    let results = [
        ResultData::CowList(CowList {
            criteria: "21日以内".into(),
            cows: vec![CowRow {
                tag: 14,
                name: "はな".into(),
                last_insemination: "2026-11-01".into(),
                days_since: 29,
                expected_date: "2026-12-02".into(),
            }],
        }),
        ResultData::HealthReport(HealthReport {
            tag: 14,
            name: "はな".into(),
            milk_average_kg: 28.4,
            milk_baseline_kg: 31.25,
            activity_index: 87.0,
            activity_normal: false,
            risk: RiskLevel::Medium,
            findings: vec!["乳量が減っています".into()],
            recommended_actions: vec!["獣医に相談".into(), "体温を測る".into()],
        }),
        ResultData::ShipmentReport(ShipmentReport {
            period_start: "2026-11-01".into(),
            period_end: "2026-11-30".into(),
            head: 7,
            total_kg: 5_012.5,
            shipments: vec![Shipment {
                date: "2026-11-12".into(),
                head: 3,
                kg: 2_100.0,
                destination: "十勝".into(),
            }],
            report_id: "shipments-2026-11".into(),
            pdf_url: "/api/reports/shipments-2026-11.pdf".into(),
        }),
        ResultData::Help(Help {
            examples: vec!["発情予定の牛は？".into()],
        }),
        ResultData::SupportOffer(SupportOffer {
            summary: "14番の咳が続く".into(),
        }),
    ];
    let mut parts = vec![
        PartBody::Status {
            text: "検索中…".into(),
        },
        PartBody::Intermediate {
            text: "120頭を確認".into(),
        },
        PartBody::Progress {
            progress: Progress::new(3, 4),
            text: "分析中".into(),
        },
        PartBody::Text {
            offset: 7,
            text: "**元気**です。\n\n| 牛 | 乳量 |".into(),
        },
        PartBody::Error {
            code: "unknown_cow".into(),
            text: "その番号の牛はいません".into(),
        },
    ];
    parts.extend(results.into_iter().map(|data| PartBody::Result {
        text: "結果".into(),
        data,
    }));
    parts
        .into_iter()
        .enumerate()
        .map(|(i, body)| TaskPart {
            part: i as u32,
            body,
        })
        .collect()
}

fn message(task: Option<TaskSnapshot>, key: Option<&str>) -> Message {
    Message {
        message_id: "m-2".into(),
        conversation_id: "c-u-farmer-assistant".into(),
        seq: 9_007_199_254_740_991,
        sender: Sender {
            id: "assistant".into(),
            kind: SenderKind::Assistant,
            display_name: "牧場アシスタント".into(),
        },
        text: "<script>alert(1)</script> \u{202e}".into(),
        created_at: "2026-11-30T00:00:00.000Z".into(),
        task,
        idempotency_key: key.map(str::to_owned),
    }
}

#[test]
fn every_answer_reads_back_what_serde_wrote() {
    round_trip(&ErrorBody::new("not_found", "no route"));
    round_trip(&Health {
        status: HealthStatus::Ok,
    });
    for token in [None, Some("tok".to_owned())] {
        round_trip(&SessionInfo {
            user_id: "u-farmer".into(),
            tenant_id: "demo-farm".into(),
            display_name: "山田 太郎".into(),
            role: Role::Farmer,
            token,
        });
    }
    round_trip(&StreamTicket {
        ticket: "abc".into(),
        expires_in: 30,
    });
    for task_id in [None, Some(TaskId::from("t-1"))] {
        round_trip(&SendResponse {
            message_id: "m-1".into(),
            conversation_id: "c-1".into(),
            seq: 3,
            created_at: "2026-11-30T00:00:00Z".into(),
            task_id,
        });
    }
    let with_task = message(Some(snapshot(TaskState::Running, every_part())), None);
    let plain = message(None, Some("k-1"));
    round_trip(&HistoryPage {
        messages: vec![with_task.clone(), plain.clone()],
        has_more: true,
    });
    round_trip(&ConversationList {
        conversations: vec![
            ConversationSummary {
                id: "c-1".into(),
                kind: ConversationKind::Assistant,
                title: "牧場アシスタント".into(),
                last_message: Some(plain),
                unread: 2,
                owner_name: "山田 太郎".into(),
                read_up_to: 3,
                others_read_up_to: 0,
            },
            ConversationSummary {
                id: "c-2".into(),
                kind: ConversationKind::Support,
                title: "サポート".into(),
                last_message: None,
                unread: 0,
                owner_name: "山田 太郎".into(),
                read_up_to: 0,
                others_read_up_to: 5,
            },
        ],
        next_cursor: Some("2026-11-22T00:00:00Z~c-2".into()),
    });
    round_trip(&ReadMark {
        conversation_id: "c-2".into(),
        seq: 5,
    });
    let mut no_progress = snapshot(TaskState::Succeeded, Vec::new());
    no_progress.progress = None;
    round_trip(&TaskList {
        tasks: vec![snapshot(TaskState::Running, every_part()), no_progress],
    });
}

#[test]
fn every_stream_event_reads_back_what_the_server_sends() {
    let ids = |part| TaskPartEvent {
        task_id: "t-1".into(),
        message_id: "m-2".into(),
        conversation_id: "c-1".into(),
        part,
    };
    let mut events = vec![
        StreamEvent::Ready(Ready {
            last_event_id: EventId::new(9000, 5),
            server_time: "t".into(),
        }),
        StreamEvent::MessageCreated(MessageCreated {
            conversation_id: "c-1".into(),
            message_id: "m-7".into(),
            seq: 7,
        }),
        StreamEvent::Ping(Ping {
            server_time: "t".into(),
        }),
        StreamEvent::Typing(Typing {
            conversation_id: "c-2".into(),
            user_id: "u-support".into(),
            display_name: "サポート 佐藤".into(),
        }),
        StreamEvent::ConversationRead(ConversationRead {
            conversation_id: "c-2".into(),
            user_id: "u-support".into(),
            seq: 9,
        }),
        StreamEvent::TaskDone(TaskDone {
            task_id: "t-1".into(),
            message_id: "m-2".into(),
            conversation_id: "c-1".into(),
            state: TaskState::Cancelled,
        }),
    ];
    events.extend(
        ResetReason::ALL
            .iter()
            .map(|&reason| StreamEvent::Reset(Reset { reason })),
    );
    events.extend(
        every_part()
            .into_iter()
            .map(|part| StreamEvent::task_part(ids(part))),
    );
    for event in events {
        // Exactly what the dev-server writes on the `data:` line, parsed as a browser would.
        assert!(
            StreamEvent::NAMES.contains(&event.name()),
            "{}",
            event.name()
        );
        let data: Value = serde_json::from_str(&event.data()).expect("JSON");
        assert_eq!(StreamEvent::read(event.name(), &data), Ok(event.clone()));
        assert_eq!(StreamEvent::decode(event.name(), &event.data()), Ok(event));
    }
}

#[test]
fn every_event_name_is_known_to_the_reader_and_data_that_is_not_json_says_so() {
    for &name in StreamEvent::NAMES {
        assert!(
            matches!(
                StreamEvent::read(name, &json!({})),
                Err(DecodeError::BadData { .. })
            ),
            "{name}"
        );
        assert_eq!(
            StreamEvent::decode(name, "{not json"),
            Err(DecodeError::BadData {
                event: name.to_owned(),
                reason: "the data is not JSON".to_owned()
            })
        );
    }
    assert_eq!(StreamEvent::NAMES.len(), 13);
    assert_eq!(
        StreamEvent::decode("message.deleted", "{not json"),
        Err(DecodeError::UnknownEvent("message.deleted".into()))
    );
}

#[test]
fn each_enum_has_one_spelling_and_serde_uses_it() {
    fn check<T: Copy + Serialize + FromJson + PartialEq + fmt::Debug>(
        all: &[T],
        name: fn(T) -> &'static str,
    ) {
        assert!(!all.is_empty());
        for &v in all {
            assert_eq!(serde_json::to_value(v).unwrap(), json!(name(v)), "{v:?}");
            assert_eq!(T::from_json(&json!(name(v))), Ok(v));
        }
    }
    check(TaskKind::ALL, TaskKind::as_str);
    check(TaskState::ALL, TaskState::as_str);
    check(RiskLevel::ALL, RiskLevel::as_str);
    check(ResetReason::ALL, ResetReason::as_str);
    check(ConversationKind::ALL, ConversationKind::as_str);
    check(SenderKind::ALL, SenderKind::as_str);
    check(Role::ALL, Role::as_str);
    check(HealthStatus::ALL, HealthStatus::as_str);
    check(ReplyLanguage::ALL, ReplyLanguage::as_str);
    assert_eq!(TaskKind::ALL.len(), 5);
    assert_eq!(TaskState::ALL.len(), 4);
}

#[test]
fn wrong_input_is_an_error_that_names_the_field() {
    let err = HistoryPage::from_json(&json!({"messages": [{"messageId": "m"}], "hasMore": false}))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "field messages.conversationId: expected a value"
    );
    let err = Health::from_json(&json!({"status": "degraded"})).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("field status: expected a HealthStatus"),
        "{err}"
    );
    assert!(Progress::from_json(&json!({"current": 1.5, "total": 2, "percentage": 50})).is_err());
    assert!(Progress::from_json(&json!({"current": -1, "total": 2, "percentage": 50})).is_err());
    assert!(Progress::from_json(&json!({"current": 1, "total": 2, "percentage": 300})).is_err());
    assert!(
        MessageId::from_json(&json!(42)).is_err(),
        "an id is not a number"
    );
    assert!(EventId::from_json(&json!("4 2")).is_err());
    assert_eq!(EventId::from_json(&json!(42)), Ok(EventId(42)));
    assert_eq!(
        StreamEvent::read("message.deleted", &json!({})),
        Err(DecodeError::UnknownEvent("message.deleted".into()))
    );
    let status = json!({"taskId":"t","messageId":"m","conversationId":"c","part":0,"type":"status","text":"x"});
    assert!(
        matches!(
            StreamEvent::read("task.result", &status),
            Err(DecodeError::BadData { .. })
        ),
        "a status part under the task.result name is rejected"
    );
    let unknown_part = json!({"taskId":"t","messageId":"m","conversationId":"c","part":0,"type":"poem","text":"x"});
    assert!(StreamEvent::read("task.status", &unknown_part).is_err());
}

#[test]
fn null_optional_fields_are_absent_and_unknown_fields_are_ignored() {
    let json = json!({
        "messageId": "m-1", "conversationId": "c-1", "seq": 1,
        "sender": {"id": "u", "kind": "user", "displayName": "u", "avatar": "x.png"},
        "text": "hi", "createdAt": "t", "task": null, "addedLater": [1, 2]
    });
    let message = Message::from_json(&json).unwrap();
    assert_eq!(message.task, None);
    assert_eq!(message.idempotency_key, None);
}
