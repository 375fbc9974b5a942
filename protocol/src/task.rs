//! Assistant tasks: what a task is, the parts of its reply and the typed results.
//!
//! A task's reply is a list of parts keyed by `(taskId, part)`: status and intermediate lines,
//! one progress part that later updates replace, then a result or an error. The stream sends
//! each part as it happens; the snapshot (`GET /api/tasks/{id}`, and history) holds them all,
//! so a reload restores everything.

use serde::{Deserialize, Serialize};

use crate::ids::{ConversationId, MessageId, TaskId};

/// Which job a task does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Cows due for estrus, as a table.
    CowList,
    /// One cow's health analysis.
    HealthReport,
    /// This month's shipment report with a PDF.
    ShipmentReport,
    /// What the assistant can do.
    Help,
    /// A model's answer: its text, and the results of the tools it called.
    Answer,
}

/// Where a task stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Still working.
    Running,
    /// Finished with a result.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Stopped by the user.
    Cancelled,
}

impl TaskState {
    /// Whether the task has finished.
    pub fn is_final(self) -> bool {
        self != Self::Running
    }
}

/// How far a task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Steps done.
    pub current: u32,
    /// Steps in all.
    pub total: u32,
    /// `current / total` in whole percent, 0–100.
    pub percentage: u8,
}

impl Progress {
    /// Progress at `current` of `total` (percentage rounded down, clamped to 0–100).
    pub fn new(current: u32, total: u32) -> Self {
        let percentage = if total == 0 {
            100
        } else {
            (u64::from(current.min(total)) * 100 / u64::from(total)) as u8
        };
        Self {
            current,
            total,
            percentage,
        }
    }
}

/// One row of a cow list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct CowRow {
    /// Ear-tag number.
    pub tag: u32,
    /// The cow's name.
    pub name: String,
    /// Last insemination (YYYY-MM-DD).
    pub last_insemination: String,
    /// Days since then.
    pub days_since: u32,
    /// Expected estrus (YYYY-MM-DD).
    pub expected_date: String,
}

/// Result of an estrus search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct CowList {
    /// The condition the cows meet, in the user's language.
    pub criteria: String,
    /// The cows, soonest expected first.
    pub cows: Vec<CowRow>,
}

/// A health risk level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    /// Nothing to worry about.
    Low,
    /// Watch closely.
    Medium,
    /// Act now.
    High,
}

/// Result of a health analysis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    /// Ear-tag number.
    pub tag: u32,
    /// The cow's name.
    pub name: String,
    /// Average daily milk over the last 30 days (kg).
    pub milk_average_kg: f64,
    /// The cow's own average over the 30 days before that (kg).
    pub milk_baseline_kg: f64,
    /// Average activity index over the last 30 days (100 = the herd's normal).
    pub activity_index: f64,
    /// Whether activity is in the normal range.
    pub activity_normal: bool,
    /// The overall risk.
    pub risk: RiskLevel,
    /// What was found, in the user's language.
    pub findings: Vec<String>,
    /// What to do, in the user's language.
    pub recommended_actions: Vec<String>,
}

/// One shipment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Shipment {
    /// When (YYYY-MM-DD).
    pub date: String,
    /// How many head.
    pub head: u32,
    /// Total weight (kg).
    pub kg: f64,
    /// Where to.
    pub destination: String,
}

/// Result of the monthly shipment report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ShipmentReport {
    /// First day of the period (YYYY-MM-DD).
    pub period_start: String,
    /// Last day of the period (YYYY-MM-DD).
    pub period_end: String,
    /// Head shipped.
    pub head: u32,
    /// Total kg shipped.
    pub total_kg: f64,
    /// Each shipment.
    pub shipments: Vec<Shipment>,
    /// The report's id.
    pub report_id: String,
    /// Where its PDF is (`/api/reports/{reportId}.pdf`).
    pub pdf_url: String,
}

/// What the assistant can do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Help {
    /// Example requests, in the user's language.
    pub examples: Vec<String>,
}

/// An offer to hand the question to a person: the widget shows a button that opens the
/// support conversation with `summary` in its composer, sent only when the farmer taps send.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct SupportOffer {
    /// The question, as the assistant summed it up for the support staff.
    pub summary: String,
}

/// A task's final result, by kind: `{"kind":"cow_list","data":{…}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum ResultData {
    /// Cows due for estrus.
    CowList(CowList),
    /// One cow's health.
    HealthReport(HealthReport),
    /// The monthly shipment report.
    ShipmentReport(ShipmentReport),
    /// What the assistant can do.
    Help(Help),
    /// The way to a person.
    SupportOffer(SupportOffer),
}

/// What one part of a reply says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PartBody {
    /// What the assistant is doing now.
    Status {
        /// The line.
        text: String,
    },
    /// Something found on the way.
    Intermediate {
        /// The line.
        text: String,
    },
    /// How far the work is; later updates of the same part replace earlier ones.
    Progress {
        /// Current, total and percentage.
        #[serde(flatten)]
        progress: Progress,
        /// What is being counted.
        text: String,
    },
    /// The final result.
    Result {
        /// A one-line summary.
        text: String,
        /// The typed result.
        #[serde(flatten)]
        data: ResultData,
    },
    /// The answer's text (markdown). On the stream a delta: `text` follows the part's first
    /// `offset` bytes (UTF-8); in a snapshot the whole text, at offset 0. A client applies a
    /// delta whose `offset` is what it holds, skips what it already holds, and refetches the
    /// task when a delta starts beyond it.
    Text {
        /// UTF-8 bytes of this part's text before `text`.
        offset: u64,
        /// The delta (or the whole text).
        text: String,
    },
    /// Why the task failed or stopped, and what the user can do.
    Error {
        /// Stable code (`unknown_cow`, `cancelled`, `interrupted`, …).
        code: String,
        /// For people.
        text: String,
    },
}

/// One part of a task's reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TaskPart {
    /// Its number within the task: the key, with the task id.
    pub part: u32,
    /// What it says.
    #[serde(flatten)]
    pub body: PartBody,
}

/// Everything known about a task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TaskSnapshot {
    /// The task.
    pub task_id: TaskId,
    /// Its conversation.
    pub conversation_id: ConversationId,
    /// The assistant message the task's reply belongs to.
    pub message_id: MessageId,
    /// Which job.
    pub kind: TaskKind,
    /// Where it stands.
    pub state: TaskState,
    /// The latest progress, if it reported any.
    pub progress: Option<Progress>,
    /// The parts so far, by part number (one entry per part: the latest).
    pub parts: Vec<TaskPart>,
    /// When it started (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
}

impl TaskSnapshot {
    /// Adds `part`, replacing an earlier part with the same number.
    pub fn upsert_part(&mut self, part: TaskPart) {
        if let PartBody::Progress { progress, .. } = &part.body {
            self.progress = Some(*progress);
        }
        match self.parts.iter_mut().find(|p| p.part == part.part) {
            Some(existing) => *existing = part,
            None => {
                let at = self.parts.partition_point(|p| p.part < part.part);
                self.parts.insert(at, part);
            }
        }
    }
}

/// What [`TaskSnapshot::apply_text`] did with a text part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextApplied {
    /// The text grew.
    Grew,
    /// Nothing new: the snapshot already held all of it.
    Held,
    /// It starts beyond the text held (a delta went missing): refetch the task.
    Gap,
}

impl TaskSnapshot {
    /// The text of part `part` so far (empty if there is none yet).
    pub fn text(&self, part: u32) -> &str {
        self.parts
            .iter()
            .find_map(|p| match &p.body {
                PartBody::Text { text, .. } if p.part == part => Some(text.as_str()),
                _ => None,
            })
            .unwrap_or("")
    }

    /// Applies `text` at `offset` to text part `part`: the bytes beyond what is held are
    /// appended, so a duplicate, a replay or a whole snapshot (offset 0) never doubles text.
    pub fn apply_text(&mut self, part: u32, offset: u64, text: &str) -> TextApplied {
        let held = self.text(part).len() as u64;
        if offset > held {
            return TextApplied::Gap;
        }
        let end = offset.saturating_add(text.len() as u64);
        if end <= held {
            return TextApplied::Held;
        }
        let from = (held - offset) as usize;
        let Some(new) = text.get(from..) else {
            // Not on a character boundary: not a text this protocol writes.
            return TextApplied::Gap;
        };
        match self.parts.iter_mut().find(|p| p.part == part) {
            Some(TaskPart {
                body: PartBody::Text { text, .. },
                ..
            }) => text.push_str(new),
            Some(_) => return TextApplied::Gap,
            None => self.upsert_part(TaskPart {
                part,
                body: PartBody::Text {
                    offset: 0,
                    text: new.to_owned(),
                },
            }),
        }
        TextApplied::Grew
    }
}

/// `GET /api/tasks` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TaskList {
    /// The user's tasks, newest first.
    pub tasks: Vec<TaskSnapshot>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_percentage_is_whole_and_clamped() {
        assert_eq!(Progress::new(1, 3).percentage, 33);
        assert_eq!(Progress::new(3, 3).percentage, 100);
        assert_eq!(Progress::new(5, 3).percentage, 100);
        assert_eq!(Progress::new(0, 0).percentage, 100);
    }

    #[test]
    fn parts_golden_json() {
        let progress = TaskPart {
            part: 3,
            body: PartBody::Progress {
                progress: Progress::new(2, 4),
                text: "生成中".into(),
            },
        };
        assert_eq!(
            serde_json::to_string(&progress).unwrap(),
            r#"{"part":3,"type":"progress","current":2,"total":4,"percentage":50,"text":"生成中"}"#
        );
        let result = TaskPart {
            part: 4,
            body: PartBody::Result {
                text: "2頭".into(),
                data: ResultData::Help(Help {
                    examples: vec!["発情予定の牛は？".into()],
                }),
            },
        };
        let json = r#"{"part":4,"type":"result","text":"2頭","kind":"help","data":{"examples":["発情予定の牛は？"]}}"#;
        assert_eq!(serde_json::to_string(&result).unwrap(), json);
        assert_eq!(serde_json::from_str::<TaskPart>(json).unwrap(), result);
    }

    fn answer() -> TaskSnapshot {
        TaskSnapshot {
            task_id: "t".into(),
            conversation_id: "c".into(),
            message_id: "m".into(),
            kind: TaskKind::Answer,
            state: TaskState::Running,
            progress: None,
            parts: Vec::new(),
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn text_deltas_apply_once_by_byte_offset() {
        let mut snap = answer();
        assert_eq!(snap.apply_text(1, 0, "牛は"), TextApplied::Grew);
        assert_eq!(snap.apply_text(1, 6, "元気"), TextApplied::Grew);
        assert_eq!(snap.apply_text(1, 6, "元気"), TextApplied::Held, "a replay");
        assert_eq!(snap.apply_text(1, 0, "牛は元"), TextApplied::Held);
        assert_eq!(snap.apply_text(1, 15, "!"), TextApplied::Gap);
        // A longer copy from an earlier offset (a snapshot, a merged replay) adds its tail.
        assert_eq!(snap.apply_text(1, 0, "牛は元気です"), TextApplied::Grew);
        assert_eq!(snap.text(1), "牛は元気です");
        // An offset inside a character is not ours.
        assert_eq!(snap.apply_text(1, 1, "a牛牛牛牛牛牛"), TextApplied::Gap);
        assert_eq!(snap.text(1), "牛は元気です");
        assert_eq!(snap.text(2), "");
        assert_eq!(
            serde_json::to_string(&snap.parts[0]).unwrap(),
            r#"{"part":1,"type":"text","offset":0,"text":"牛は元気です"}"#
        );
    }

    #[test]
    fn a_later_part_with_the_same_number_replaces_the_earlier_one() {
        let mut snap = TaskSnapshot {
            task_id: "t".into(),
            conversation_id: "c".into(),
            message_id: "m".into(),
            kind: TaskKind::CowList,
            state: TaskState::Running,
            progress: None,
            parts: Vec::new(),
            created_at: String::new(),
            updated_at: String::new(),
        };
        let progress = |n| TaskPart {
            part: 2,
            body: PartBody::Progress {
                progress: Progress::new(n, 4),
                text: String::new(),
            },
        };
        snap.upsert_part(TaskPart {
            part: 0,
            body: PartBody::Status { text: "a".into() },
        });
        snap.upsert_part(progress(1));
        snap.upsert_part(TaskPart {
            part: 1,
            body: PartBody::Status { text: "b".into() },
        });
        snap.upsert_part(progress(3));
        assert_eq!(
            snap.parts.iter().map(|p| p.part).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(snap.progress, Some(Progress::new(3, 4)));
    }
}
