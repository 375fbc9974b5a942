//! The built-in farm planner, the embedded default engine: no keys, no network. A message
//! becomes a plan computed from the tenant's herd, played at a human pace, and a short
//! explanation of its result streamed as text (so the widget's streaming text shows without a
//! model).
//!
//! - [`intent`]: what the message asks for, and in which language to answer.
//! - [`plan`]: the parts the task will send, computed from the herd (pure).

pub mod intent;
pub mod plan;

use std::time::Duration;

use farm_chat_protocol::task::{PartBody, ResultData, RiskLevel, TaskState};
use intent::Lang;
use plan::Plan;

use super::{Ask, Assistant, Opening, Parts};

/// The plan for a farmer's message in `tenant`, as of today.
pub fn plan_for(tenant: &str, text: &str, lang: Lang) -> Plan {
    let herd = crate::herd::herd(tenant, crate::herd::Date::today());
    plan::plan(intent::route(text), lang, &herd)
}

/// The farm planner as an [`Assistant`].
#[derive(Debug)]
pub struct Farm {
    /// The pause before each step (`--assistant-speed`).
    step: Duration,
}

impl Farm {
    /// The planner, pausing `step` before each part.
    pub fn new(step: Duration) -> Self {
        Self { step }
    }

    /// The planner as a shared engine, pausing `step` before each part (tests set the pace).
    pub fn paced(step: Duration) -> std::sync::Arc<dyn Assistant> {
        std::sync::Arc::new(Self::new(step))
    }
}

#[async_trait::async_trait]
impl Assistant for Farm {
    fn name(&self) -> &'static str {
        "farm"
    }

    fn open(&self, ask: &Ask) -> Opening {
        let plan = plan_for(ask.tenant, &ask.question, ask.lang);
        Opening {
            kind: plan.kind,
            title: plan.title,
        }
    }

    fn is_model(&self) -> bool {
        false
    }

    async fn answer(&self, ask: Ask, out: Parts) -> TaskState {
        let plan = plan_for(ask.tenant, &ask.question, ask.lang);
        let next = plan.steps.iter().map(|p| p.part + 1).max().unwrap_or(0);
        let text = explain(&plan, ask.lang);
        for part in plan.steps {
            tokio::time::sleep(self.step).await;
            if !out.part(part).await {
                return TaskState::Cancelled;
            }
        }
        if let Some(text) = text {
            // A few characters at a time, as a model would write it.
            let chars: Vec<char> = text.chars().collect();
            for chunk in chars.chunks(4) {
                tokio::time::sleep(self.step / 8).await;
                if !out.text(next, chunk.iter().collect::<String>()).await {
                    return TaskState::Cancelled;
                }
            }
        }
        plan.outcome
    }
}

/// A short markdown explanation of a plan's result, in `lang`; none for help or a failure.
pub fn explain(plan: &Plan, lang: Lang) -> Option<String> {
    let ja = lang == Lang::Ja;
    let data = plan.steps.iter().find_map(|p| match &p.body {
        PartBody::Result { data, .. } => Some(data),
        _ => None,
    })?;
    Some(match data {
        ResultData::CowList(list) => match list.cows.first() {
            None if ja => "今後の発情予定の牛はいません。".to_owned(),
            None => "No cows are due for estrus soon.".to_owned(),
            Some(first) if ja => format!(
                "**{}頭**が発情予定です。最も早いのは**{}番（{}）**で、{}の見込みです。\n\n表の見出しで並べ替えられます。",
                list.cows.len(),
                first.tag,
                first.name,
                first.expected_date
            ),
            Some(first) => format!(
                "**{} cows** are due. The first is **No. {} ({})**, expected on {}.\n\nSort the table by its headings.",
                list.cows.len(),
                first.tag,
                first.name,
                first.expected_date
            ),
        },
        ResultData::HealthReport(r) => {
            let risk = match (r.risk, ja) {
                (RiskLevel::Low, true) => "低",
                (RiskLevel::Medium, true) => "中",
                (RiskLevel::High, true) => "高",
                (RiskLevel::Low, false) => "low",
                (RiskLevel::Medium, false) => "medium",
                (RiskLevel::High, false) => "high",
            };
            let mut text = if ja {
                format!("{}番（{}）のリスクは**{risk}**です。", r.tag, r.name)
            } else {
                format!("The risk for No. {} ({}) is **{risk}**.", r.tag, r.name)
            };
            if !r.recommended_actions.is_empty() {
                text.push_str(if ja {
                    "\n\nおすすめの対応:\n"
                } else {
                    "\n\nWhat to do:\n"
                });
                for action in &r.recommended_actions {
                    text.push_str(&format!("\n- {action}"));
                }
            }
            text
        }
        ResultData::ShipmentReport(r) if ja => format!(
            "{}〜{}の出荷は**{}頭・{} kg**でした。PDFは上のボタンから開けます。",
            r.period_start,
            r.period_end,
            r.head,
            plan::thousands(r.total_kg)
        ),
        ResultData::ShipmentReport(r) => format!(
            "From {} to {}, **{} head, {} kg** were shipped. Open the PDF with the button above.",
            r.period_start,
            r.period_end,
            r.head,
            plan::thousands(r.total_kg)
        ),
        ResultData::Help(_) | ResultData::SupportOffer(_) => return None,
    })
}
