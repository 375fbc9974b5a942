//! The farm's tools a model may call, run against the signed-in user's tenant (never one the
//! model names): their names and JSON Schemas as the model sees them, and their results, typed
//! for the widget (the same cards and tables as the farm planner's) and compact JSON for the
//! model.

use farm_chat_protocol::task::{PartBody, ResultData, SupportOffer};
use serde_json::{Value, json};

use crate::{
    assistant::{Intent, Lang, plan},
    herd::{Date, herd},
};

/// A tool's name, description and parameters (a JSON Schema object).
#[derive(Clone, Debug)]
pub struct Tool {
    /// The name the model calls it by.
    pub name: &'static str,
    /// What it does, for the model.
    pub description: &'static str,
    /// Its arguments' JSON Schema.
    pub parameters: Value,
}

/// Every tool, in the order the model sees them.
pub fn all() -> Vec<Tool> {
    vec![
        Tool {
            name: "search_cows_in_heat",
            description: "List this farm's cows expected to come into estrus (heat) soon, soonest first, with their last insemination and expected date.",
            parameters: json!({"type": "object", "properties": {}, "additionalProperties": false}),
        },
        Tool {
            name: "cow_health",
            description: "Analyse one cow's health from its milk yield and activity over the last 60 days: risk level, findings and recommended actions.",
            parameters: json!({
                "type": "object",
                "properties": {"cow": {"type": "string", "description": "The cow's ear-tag number, e.g. \"14\"."}},
                "required": ["cow"],
                "additionalProperties": false
            }),
        },
        Tool {
            name: "shipment_report",
            description: "Build the monthly shipment report (head, weight, each shipment) with a PDF, for a month up to this one.",
            parameters: json!({
                "type": "object",
                "properties": {"month": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$", "description": "The month, YYYY-MM."}},
                "required": ["month"],
                "additionalProperties": false
            }),
        },
        Tool {
            name: "contact_support",
            description: "Offer the farmer a conversation with the human support staff, with a summary of their question that they can edit before sending. Use it when you cannot help, or when the farmer asks for a person.",
            parameters: json!({
                "type": "object",
                "properties": {"summary": {"type": "string", "maxLength": 1000, "description": "The farmer's question, summed up for the support staff, in the farmer's language."}},
                "required": ["summary"],
                "additionalProperties": false
            }),
        },
    ]
}

/// A tool's outcome: for the widget (a result part, when there is something to show) and for
/// the model (compact JSON); `is_error` when the call was wrong (the model may try again).
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The result part's body.
    pub part: Option<PartBody>,
    /// What goes back to the model.
    pub json: String,
    /// Whether the call failed.
    pub is_error: bool,
}

fn error(message: impl Into<String>) -> Outcome {
    Outcome {
        part: None,
        json: json!({"error": message.into()}).to_string(),
        is_error: true,
    }
}

fn result(text: String, data: ResultData) -> Outcome {
    Outcome {
        json: serde_json::to_string(&data).unwrap_or_else(|_| "{}".into()),
        part: Some(PartBody::Result { text, data }),
        is_error: false,
    }
}

/// The result part of a farm plan (its result, or its error as an error for the model).
fn from_plan(p: plan::Plan) -> Outcome {
    for step in p.steps.into_iter().rev() {
        match step.body {
            PartBody::Result { text, data } => return result(text, data),
            PartBody::Error { text, .. } => return error(text),
            _ => {}
        }
    }
    error("no result")
}

/// The status line shown while a tool runs.
pub fn running_line(name: &str, lang: Lang) -> String {
    let ja = lang == Lang::Ja;
    match name {
        "search_cows_in_heat" if ja => "発情予定の牛を検索中...",
        "search_cows_in_heat" => "Searching for cows due for estrus...",
        "cow_health" if ja => "牛の健康データを分析中...",
        "cow_health" => "Analysing the cow's health data...",
        "shipment_report" if ja => "出荷報告書を作成中...",
        "shipment_report" => "Building the shipment report...",
        "contact_support" if ja => "サポートへの相談を準備中...",
        "contact_support" => "Preparing a question for support...",
        _ if ja => "ツールを実行中...",
        _ => "Running a tool...",
    }
    .to_owned()
}

/// Runs tool `name` with `arguments` (JSON text, as the model wrote it) for `tenant`.
pub fn run(name: &str, arguments: &str, tenant: &str, lang: Lang, today: Date) -> Outcome {
    let args: Value = if arguments.trim().is_empty() {
        json!({})
    } else {
        match serde_json::from_str(arguments) {
            Ok(v @ Value::Object(_)) => v,
            _ => return error(format!("the arguments of {name} must be a JSON object")),
        }
    };
    match name {
        "search_cows_in_heat" => from_plan(plan::plan(Intent::Estrus, lang, &herd(tenant, today))),
        "cow_health" => {
            let tag = match &args["cow"] {
                Value::String(s) => s
                    .trim()
                    .trim_end_matches('番')
                    .trim_start_matches('#')
                    .parse::<u32>()
                    .ok(),
                Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
                _ => None,
            };
            let Some(tag) = tag else {
                return error("cow must be the cow's ear-tag number, e.g. \"14\"");
            };
            let farm = herd(tenant, today);
            if farm.cow(tag).is_none() {
                return error(format!("there is no cow {tag} on this farm"));
            }
            from_plan(plan::plan(Intent::Health(Some(tag)), lang, &farm))
        }
        "shipment_report" => {
            let month = args["month"].as_str().unwrap_or("");
            let parsed = month
                .split_once('-')
                .filter(|(y, m)| y.len() == 4 && m.len() == 2)
                .and_then(|(y, m)| Some((y.parse::<i32>().ok()?, m.parse::<u32>().ok()?)))
                .filter(|(_, m)| (1..=12).contains(m));
            let Some((y, m)) = parsed else {
                return error("month must be YYYY-MM, e.g. \"2026-11\"");
            };
            let start = Date::from_ymd(y, m, 1);
            if start > today {
                return error(format!("{month} has not happened yet"));
            }
            // A past month's report covers all of it; this month's covers up to today.
            let as_of = start.last_of_month().min(today);
            from_plan(plan::plan(Intent::Report, lang, &herd(tenant, as_of)))
        }
        "contact_support" => {
            let summary = args["summary"].as_str().unwrap_or("").trim();
            if summary.is_empty() {
                return error("summary must say what the farmer needs");
            }
            let summary: String = summary.chars().take(1000).collect();
            let text = match lang {
                Lang::Ja => "サポート担当者に相談できます".to_owned(),
                Lang::En => "You can ask the support staff".to_owned(),
            };
            Outcome {
                part: Some(PartBody::Result {
                    text,
                    data: ResultData::SupportOffer(SupportOffer { summary }),
                }),
                json: json!({"offered": true, "note": "The farmer sees a button that opens the support chat with the summary; nothing is sent until they tap send."}).to_string(),
                is_error: false,
            }
        }
        other => error(format!(
            "there is no tool {other}; the tools are search_cows_in_heat, cow_health, shipment_report and contact_support"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        Date::from_ymd(2026, 11, 20)
    }

    #[test]
    fn each_tool_answers_a_typed_result_and_compact_json() {
        let heat = run("search_cows_in_heat", "{}", "demo-farm", Lang::Ja, today());
        assert!(
            matches!(
                heat.part,
                Some(PartBody::Result {
                    data: ResultData::CowList(_),
                    ..
                })
            ),
            "{heat:?}"
        );
        assert!(!heat.is_error && heat.json.starts_with("{\"kind\":\"cow_list\""));
        let health = run(
            "cow_health",
            r#"{"cow":"14"}"#,
            "demo-farm",
            Lang::En,
            today(),
        );
        assert!(
            matches!(health.part, Some(PartBody::Result { data: ResultData::HealthReport(ref r), .. }) if r.tag == 14)
        );
        let report = run(
            "shipment_report",
            r#"{"month":"2026-10"}"#,
            "demo-farm",
            Lang::Ja,
            today(),
        );
        let Some(PartBody::Result {
            data: ResultData::ShipmentReport(r),
            ..
        }) = report.part
        else {
            panic!("{report:?}");
        };
        assert_eq!(
            (r.period_start.as_str(), r.period_end.as_str()),
            ("2026-10-01", "2026-10-31")
        );
        let offer = run(
            "contact_support",
            r#"{"summary":"14番の咳"}"#,
            "demo-farm",
            Lang::Ja,
            today(),
        );
        assert!(
            matches!(offer.part, Some(PartBody::Result { data: ResultData::SupportOffer(ref o), .. }) if o.summary == "14番の咳")
        );
        assert!(
            !heat.json.contains(' ') || heat.json.len() < 20_000,
            "compact"
        );
    }

    #[test]
    fn wrong_calls_go_back_to_the_model_as_errors() {
        for (name, args) in [
            ("cow_health", r#"{"cow":"999"}"#),
            ("cow_health", r#"{"cow":"すみれ"}"#),
            ("cow_health", "[1]"),
            ("cow_health", "{not json"),
            ("shipment_report", r#"{"month":"2026-13"}"#),
            ("shipment_report", r#"{"month":"2027-01"}"#),
            ("contact_support", r#"{"summary":"  "}"#),
            ("delete_herd", "{}"),
        ] {
            let out = run(name, args, "demo-farm", Lang::Ja, today());
            assert!(out.is_error && out.part.is_none(), "{name} {args}: {out:?}");
            assert!(out.json.starts_with("{\"error\":"), "{}", out.json);
        }
        assert!(
            run(
                "cow_health",
                r#"{"cow":"999"}"#,
                "demo-farm",
                Lang::Ja,
                today()
            )
            .json
            .contains("no cow 999")
        );
    }

    #[test]
    fn the_tenant_is_the_callers_whatever_the_arguments_say() {
        let mine = run(
            "search_cows_in_heat",
            r#"{"tenant":"other-farm"}"#,
            "demo-farm",
            Lang::Ja,
            today(),
        );
        let theirs = run("search_cows_in_heat", "{}", "other-farm", Lang::Ja, today());
        let plain = run("search_cows_in_heat", "{}", "demo-farm", Lang::Ja, today());
        assert_eq!(mine, plain);
        assert_ne!(mine.json, theirs.json);
    }
}
