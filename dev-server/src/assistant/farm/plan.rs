//! What a task will say, step by step, computed from the herd: pure, so the three flows are
//! tested without a server, and the runner only plays the plan with realistic pacing.

use farm_chat_protocol::task::{
    CowList, CowRow, HealthReport, Help, PartBody, Progress, ResultData, RiskLevel, Shipment,
    ShipmentReport, TaskKind, TaskPart, TaskState,
};

use super::intent::{Intent, Lang};
use crate::herd::{Cow, Herd};

/// A task's script.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Which job.
    pub kind: TaskKind,
    /// The assistant message's text (a one-line title of the reply).
    pub title: String,
    /// The parts in the order they are sent; progress parts repeat a part number.
    pub steps: Vec<TaskPart>,
    /// How the task ends when it plays to the end.
    pub outcome: TaskState,
}

fn tr(lang: Lang, ja: impl Into<String>, en: impl Into<String>) -> String {
    match lang {
        Lang::Ja => ja.into(),
        Lang::En => en.into(),
    }
}

fn status(part: u32, text: String) -> TaskPart {
    TaskPart {
        part,
        body: PartBody::Status { text },
    }
}

fn intermediate(part: u32, text: String) -> TaskPart {
    TaskPart {
        part,
        body: PartBody::Intermediate { text },
    }
}

fn progress(part: u32, current: u32, total: u32, text: String) -> TaskPart {
    TaskPart {
        part,
        body: PartBody::Progress {
            progress: Progress::new(current, total),
            text,
        },
    }
}

/// `1,250`.
pub fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.round());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The plan for `intent`, answered in `lang`, over `herd`. `tenant` scopes report ids.
pub fn plan(intent: Intent, lang: Lang, herd: &Herd) -> Plan {
    match intent {
        Intent::Estrus => estrus(lang, herd),
        Intent::Health(Some(tag)) => health(lang, herd, tag),
        Intent::Health(None) => failed(
            lang,
            TaskKind::HealthReport,
            tr(lang, "健康状態の分析", "Health analysis"),
            "missing_cow_number",
            tr(
                lang,
                "どの牛か分かりませんでした。「14番の牛の健康状態」のように耳標番号を添えてください。",
                "Which cow? Add its ear-tag number, e.g. \"health of cow 14\".",
            ),
        ),
        Intent::Report => report(lang, herd),
        Intent::Help => help(lang),
    }
}

fn failed(lang: Lang, kind: TaskKind, title: String, code: &str, text: String) -> Plan {
    let _ = lang;
    Plan {
        kind,
        title,
        steps: vec![TaskPart {
            part: 0,
            body: PartBody::Error {
                code: code.to_owned(),
                text,
            },
        }],
        outcome: TaskState::Failed,
    }
}

/// When `cow`'s next estrus is expected (21-day cycles from the last insemination).
pub fn expected_estrus(cow: &Cow, herd: &Herd) -> Option<(crate::herd::Date, u32)> {
    let inseminated = cow.last_insemination?;
    let days = herd.today.days_since(inseminated);
    if cow.pregnant || days < 21 {
        return None;
    }
    let cycles = (days + 20) / 21;
    Some((inseminated.add_days(cycles * 21), days as u32))
}

fn estrus(lang: Lang, herd: &Herd) -> Plan {
    let mut due: Vec<(&Cow, crate::herd::Date, u32)> = herd
        .cows
        .iter()
        .filter_map(|c| expected_estrus(c, herd).map(|(date, days)| (c, date, days)))
        .collect();
    due.sort_by_key(|(c, date, _)| (*date, c.tag));
    let n = due.len() as u32;
    let criteria = tr(
        lang,
        "最終種付日から21日以上経過",
        "21 days or more since the last insemination",
    );
    let mut steps = vec![
        status(
            0,
            tr(
                lang,
                "発情予定の牛を検索中...",
                "Searching for cows due for estrus...",
            ),
        ),
        status(
            1,
            tr(
                lang,
                format!("検索条件: {criteria}"),
                format!("Criteria: {criteria}"),
            ),
        ),
        intermediate(
            2,
            tr(
                lang,
                format!("該当個体: {n}頭見つかりました"),
                format!("Found {n} cows"),
            ),
        ),
    ];
    let updates = n.clamp(1, 5);
    for k in 1..=updates {
        let current = (n * k).div_ceil(updates);
        steps.push(progress(
            3,
            current,
            n,
            tr(lang, "個体リストを生成中...", "Building the list..."),
        ));
    }
    let cows = due
        .iter()
        .map(|(c, date, days)| CowRow {
            tag: c.tag,
            name: c.name.clone(),
            last_insemination: c
                .last_insemination
                .map(|d| d.to_string())
                .unwrap_or_default(),
            days_since: *days,
            expected_date: date.to_string(),
        })
        .collect();
    let text = if n == 0 {
        tr(lang, "該当する牛はいません", "No cows are due")
    } else {
        tr(
            lang,
            format!("発情予定の牛 {n}頭のリストです"),
            format!("{n} cows due for estrus"),
        )
    };
    steps.push(TaskPart {
        part: 4,
        body: PartBody::Result {
            text,
            data: ResultData::CowList(CowList { criteria, cows }),
        },
    });
    Plan {
        kind: TaskKind::CowList,
        title: tr(lang, "発情予定の牛の検索", "Estrus search"),
        steps,
        outcome: TaskState::Succeeded,
    }
}

fn average(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// The health analysis of one cow (shared by the plan and its tests).
pub fn analyse(cow: &Cow, herd: &Herd, lang: Lang) -> HealthReport {
    let (older, recent) = cow.milk.split_at(cow.milk.len() / 2);
    let (milk_average_kg, milk_baseline_kg) = (round1(average(recent)), round1(average(older)));
    let activity_index = round1(average(&cow.activity[cow.activity.len() / 2..]));
    let activity_normal = (85.0..=115.0).contains(&activity_index);
    let milking = milk_baseline_kg > 0.0;
    let drop = if milking {
        (milk_baseline_kg - milk_average_kg) / milk_baseline_kg
    } else {
        0.0
    };
    let recent_events: Vec<_> = cow
        .health_events
        .iter()
        .filter(|e| herd.today.days_since(e.date) <= 30)
        .collect();
    let risk =
        if drop >= 0.25 || activity_index < 80.0 || (!recent_events.is_empty() && drop >= 0.15) {
            RiskLevel::High
        } else if drop >= 0.15 || !activity_normal || !recent_events.is_empty() {
            RiskLevel::Medium
        } else {
            RiskLevel::Low
        };
    let pct = (drop * 100.0).round();
    let mut findings = Vec::new();
    let mut actions = Vec::new();
    if !milking {
        findings.push(tr(
            lang,
            "搾乳していません（乾乳中または未経産）",
            "Not milking (dry or heifer)",
        ));
    } else if drop >= 0.05 {
        findings.push(tr(
            lang,
            format!("乳量が基準値より{pct}%低下しています"),
            format!("Milk is {pct}% below baseline"),
        ));
        actions.push(tr(
            lang,
            "乳量の推移を毎日確認してください",
            "Check the milk yield every day",
        ));
    }
    if !activity_normal {
        findings.push(tr(
            lang,
            format!("活動量が正常範囲外です（指数 {activity_index}）"),
            format!("Activity is outside the normal range (index {activity_index})"),
        ));
        actions.push(tr(
            lang,
            "歩様と食欲を確認してください",
            "Check gait and appetite",
        ));
    }
    for e in &recent_events {
        findings.push(tr(
            lang,
            format!("{}: {}", e.date.ja(), e.what.0),
            format!("{}: {}", e.date.en(), e.what.1),
        ));
    }
    if !recent_events.is_empty() {
        actions.push(tr(
            lang,
            "治療記録を確認してください",
            "Review the treatment records",
        ));
    }
    if risk != RiskLevel::Low && (drop >= 0.15 || activity_index < 80.0) {
        actions.push(tr(
            lang,
            "獣医師に相談してください",
            "Consult the veterinarian",
        ));
    }
    if findings.is_empty() {
        findings.push(tr(
            lang,
            "異常は見つかりませんでした",
            "Nothing unusual found",
        ));
    }
    if actions.is_empty() {
        actions.push(tr(
            lang,
            "通常どおり観察を続けてください",
            "Keep observing as usual",
        ));
    }
    HealthReport {
        tag: cow.tag,
        name: cow.name.clone(),
        milk_average_kg,
        milk_baseline_kg,
        activity_index,
        activity_normal,
        risk,
        findings,
        recommended_actions: actions,
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn risk_words(lang: Lang, risk: RiskLevel) -> String {
    match risk {
        RiskLevel::Low => tr(lang, "低", "low"),
        RiskLevel::Medium => tr(lang, "中", "medium"),
        RiskLevel::High => tr(lang, "高", "high"),
    }
}

fn health(lang: Lang, herd: &Herd, tag: u32) -> Plan {
    let title = tr(
        lang,
        format!("{tag}番の牛の健康状態"),
        format!("Health of cow {tag}"),
    );
    let Some(cow) = herd.cow(tag) else {
        return Plan {
            steps: vec![
                status(
                    0,
                    tr(
                        lang,
                        format!("{tag}番の牛のデータを取得中..."),
                        format!("Fetching data for cow {tag}..."),
                    ),
                ),
                TaskPart {
                    part: 1,
                    body: PartBody::Error {
                        code: "unknown_cow".into(),
                        text: tr(
                            lang,
                            format!(
                                "{tag}番の牛は見つかりません。耳標番号（1〜{}）を確かめてください。",
                                herd.cows.len()
                            ),
                            format!(
                                "There is no cow {tag}. Check the ear-tag number (1–{}).",
                                herd.cows.len()
                            ),
                        ),
                    },
                },
            ],
            ..failed(lang, TaskKind::HealthReport, title, "", String::new())
        };
    };
    let report = analyse(cow, herd, lang);
    let milk_line = if report.milk_baseline_kg > 0.0 {
        tr(
            lang,
            format!(
                "乳量: 平均{}kg/日 (基準値: {}kg/日)",
                report.milk_average_kg, report.milk_baseline_kg
            ),
            format!(
                "Milk: {} kg/day on average (baseline {} kg/day)",
                report.milk_average_kg, report.milk_baseline_kg
            ),
        )
    } else {
        tr(lang, "乳量: 搾乳していません", "Milk: not milking")
    };
    let activity_line = if report.activity_normal {
        tr(
            lang,
            "活動量: 正常範囲内",
            "Activity: within the normal range",
        )
    } else {
        tr(
            lang,
            format!("活動量: 正常範囲外 (指数 {})", report.activity_index),
            format!(
                "Activity: outside the normal range (index {})",
                report.activity_index
            ),
        )
    };
    let drop =
        report.milk_baseline_kg > 0.0 && report.milk_average_kg < report.milk_baseline_kg * 0.95;
    let risk_line = match (lang, drop) {
        (Lang::Ja, true) => format!(
            "健康リスク: {} (乳量低下の可能性)",
            risk_words(lang, report.risk)
        ),
        (Lang::Ja, false) => format!("健康リスク: {}", risk_words(lang, report.risk)),
        (Lang::En, true) => format!(
            "Health risk: {} (possible milk decline)",
            risk_words(lang, report.risk)
        ),
        (Lang::En, false) => format!("Health risk: {}", risk_words(lang, report.risk)),
    };
    let analysing = || tr(lang, "分析中", "Analysing");
    let steps = vec![
        status(
            0,
            tr(
                lang,
                format!("{tag}番の牛のデータを取得中..."),
                format!("Fetching data for cow {tag}..."),
            ),
        ),
        status(
            1,
            tr(
                lang,
                "過去30日間のデータを分析中...",
                "Analysing the last 30 days...",
            ),
        ),
        progress(2, 1, 3, analysing()),
        intermediate(3, milk_line),
        progress(2, 2, 3, analysing()),
        intermediate(4, activity_line),
        progress(2, 3, 3, analysing()),
        intermediate(5, risk_line),
        TaskPart {
            part: 6,
            body: PartBody::Result {
                text: tr(
                    lang,
                    format!("{}（{tag}番）の健康レポート", cow.name),
                    format!("Health report for {} (cow {tag})", cow.name),
                ),
                data: ResultData::HealthReport(report),
            },
        },
    ];
    Plan {
        kind: TaskKind::HealthReport,
        title,
        steps,
        outcome: TaskState::Succeeded,
    }
}

/// The id of the monthly shipment report of the herd's month.
pub fn report_id(herd: &Herd) -> String {
    let (y, m, _) = herd.today.ymd();
    format!("shipments-{y:04}-{m:02}")
}

fn report(lang: Lang, herd: &Herd) -> Plan {
    let (first, last) = (herd.today.first_of_month(), herd.today.last_of_month());
    let head: u32 = herd.shipments.iter().map(|s| s.head).sum();
    let total_kg: f64 = herd.shipments.iter().map(|s| s.kg).sum();
    let (y, m, _) = herd.today.ymd();
    let report_id = report_id(herd);
    let period = tr(
        lang,
        format!("{}〜{}日", first.ja(), last.ymd().2),
        format!("{} – {}", first.en(), last.en()),
    );
    let mut steps = vec![
        status(
            0,
            tr(lang, "出荷データを収集中...", "Collecting shipment data..."),
        ),
        status(
            1,
            tr(
                lang,
                format!("データ期間: {period}"),
                format!("Period: {period}"),
            ),
        ),
        intermediate(
            2,
            tr(
                lang,
                format!("出荷頭数: {head}頭"),
                format!("Head shipped: {head}"),
            ),
        ),
        intermediate(
            3,
            tr(
                lang,
                format!("総出荷量: {}kg", thousands(total_kg)),
                format!("Total shipped: {} kg", thousands(total_kg)),
            ),
        ),
        status(
            4,
            tr(
                lang,
                "報告書テンプレートを適用中...",
                "Applying the report template...",
            ),
        ),
    ];
    for k in 1..=3 {
        steps.push(progress(
            5,
            k,
            3,
            tr(lang, "PDFを生成中...", "Generating the PDF..."),
        ));
    }
    steps.push(TaskPart {
        part: 6,
        body: PartBody::Result {
            text: tr(
                lang,
                format!("{y}年{m}月の出荷報告書を作成しました"),
                format!(
                    "The shipment report for {} is ready",
                    first.en().replace(" 1,", "")
                ),
            ),
            data: ResultData::ShipmentReport(ShipmentReport {
                period_start: first.to_string(),
                period_end: last.to_string(),
                head,
                total_kg,
                shipments: herd
                    .shipments
                    .iter()
                    .map(|s| Shipment {
                        date: s.date.to_string(),
                        head: s.head,
                        kg: s.kg,
                        destination: s.destination.to_owned(),
                    })
                    .collect(),
                pdf_url: format!("/api/reports/{report_id}.pdf"),
                report_id,
            }),
        },
    });
    Plan {
        kind: TaskKind::ShipmentReport,
        title: tr(lang, "今月の出荷報告書", "This month's shipment report"),
        steps,
        outcome: TaskState::Succeeded,
    }
}

fn help(lang: Lang) -> Plan {
    let examples = match lang {
        Lang::Ja => vec![
            "発情予定の牛のリストを作って",
            "14番の牛の健康状態を分析して",
            "今月の出荷報告書を作成して",
        ],
        Lang::En => vec![
            "List the cows due for estrus",
            "Analyse the health of cow 14",
            "Make this month's shipment report",
        ],
    };
    Plan {
        kind: TaskKind::Help,
        title: tr(lang, "できること", "What I can do"),
        steps: vec![TaskPart {
            part: 0,
            body: PartBody::Result {
                text: tr(
                    lang,
                    "次のようなご依頼にお応えできます",
                    "I can help with requests like these",
                ),
                data: ResultData::Help(Help {
                    examples: examples.into_iter().map(str::to_owned).collect(),
                }),
            },
        }],
        outcome: TaskState::Succeeded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::herd::{Date, herd};

    fn demo() -> Herd {
        herd("demo-farm", Date::from_ymd(2026, 11, 22))
    }

    fn texts(plan: &Plan) -> Vec<String> {
        plan.steps
            .iter()
            .filter_map(|p| match &p.body {
                PartBody::Status { text } | PartBody::Intermediate { text } => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn estrus_lists_exactly_the_open_cows_past_21_days() {
        let h = demo();
        let plan = plan(Intent::Estrus, Lang::Ja, &h);
        let expected: Vec<u32> = h
            .cows
            .iter()
            .filter(|c| {
                !c.pregnant
                    && c.last_insemination
                        .is_some_and(|d| h.today.days_since(d) >= 21)
            })
            .map(|c| c.tag)
            .collect();
        let n = expected.len();
        assert!(n > 0);
        assert_eq!(
            texts(&plan),
            [
                "発情予定の牛を検索中...",
                "検索条件: 最終種付日から21日以上経過",
                &format!("該当個体: {n}頭見つかりました")
            ]
        );
        let PartBody::Result {
            data: ResultData::CowList(list),
            ..
        } = &plan.steps.last().unwrap().body
        else {
            panic!()
        };
        let mut tags: Vec<u32> = list.cows.iter().map(|c| c.tag).collect();
        tags.sort_unstable();
        assert_eq!(tags, expected);
        assert!(
            list.cows
                .windows(2)
                .all(|w| w[0].expected_date <= w[1].expected_date),
            "soonest first"
        );
        for row in &list.cows {
            assert!(row.days_since >= 21);
            assert!(
                row.expected_date.as_str() >= "2026-11-22",
                "expected estrus is today or later"
            );
        }
        let last_progress = plan.steps.iter().rev().find_map(|p| match &p.body {
            PartBody::Progress { progress, .. } => Some(*progress),
            _ => None,
        });
        assert_eq!(
            last_progress,
            Some(Progress::new(n as u32, n as u32)),
            "progress reaches 100 %"
        );
        assert_eq!(plan.outcome, TaskState::Succeeded);
    }

    #[test]
    fn health_of_cow_14_follows_the_design_sequence_with_computed_figures() {
        let h = demo();
        let plan = plan(Intent::Health(Some(14)), Lang::Ja, &h);
        let cow = h.cow(14).unwrap();
        let recent: f64 = cow.milk[30..].iter().sum::<f64>() / 30.0;
        let lines = texts(&plan);
        assert_eq!(lines[0], "14番の牛のデータを取得中...");
        assert_eq!(lines[1], "過去30日間のデータを分析中...");
        assert_eq!(
            lines[2],
            format!(
                "乳量: 平均{}kg/日 (基準値: {}kg/日)",
                round1(recent),
                round1(cow.milk[..30].iter().sum::<f64>() / 30.0)
            )
        );
        assert!(lines[3].starts_with("活動量: "));
        assert!(lines[4].starts_with("健康リスク: "));
        let PartBody::Result {
            data: ResultData::HealthReport(report),
            ..
        } = &plan.steps.last().unwrap().body
        else {
            panic!()
        };
        assert_eq!((report.tag, report.name.as_str()), (14, cow.name.as_str()));
        assert!(
            report.milk_average_kg < report.milk_baseline_kg,
            "cow 14 is the demo's mild decline"
        );
        assert!(!report.recommended_actions.is_empty());
    }

    #[test]
    fn an_unknown_cow_or_no_cow_is_a_clear_error() {
        let h = demo();
        let unknown = plan(Intent::Health(Some(999)), Lang::Ja, &h);
        assert_eq!(unknown.outcome, TaskState::Failed);
        assert!(
            matches!(&unknown.steps.last().unwrap().body, PartBody::Error { code, text } if code == "unknown_cow" && text.contains("999番"))
        );
        let none = plan(Intent::Health(None), Lang::En, &h);
        assert!(
            matches!(&none.steps[0].body, PartBody::Error { code, .. } if code == "missing_cow_number")
        );
    }

    #[test]
    fn the_report_adds_up_this_months_shipments() {
        let h = demo();
        let plan = plan(Intent::Report, Lang::Ja, &h);
        let head: u32 = h.shipments.iter().map(|s| s.head).sum();
        let kg: f64 = h.shipments.iter().map(|s| s.kg).sum();
        assert_eq!(
            texts(&plan),
            [
                "出荷データを収集中...".to_owned(),
                "データ期間: 2026年11月1日〜30日".to_owned(),
                format!("出荷頭数: {head}頭"),
                format!("総出荷量: {}kg", thousands(kg)),
                "報告書テンプレートを適用中...".to_owned(),
            ]
        );
        let PartBody::Result {
            data: ResultData::ShipmentReport(r),
            ..
        } = &plan.steps.last().unwrap().body
        else {
            panic!()
        };
        assert_eq!(
            (r.head, r.total_kg, r.shipments.len()),
            (head, kg, h.shipments.len())
        );
        assert_eq!(r.pdf_url, "/api/reports/shipments-2026-11.pdf");
    }

    #[test]
    fn english_in_english_out() {
        let plan = plan(Intent::Estrus, Lang::En, &demo());
        assert_eq!(texts(&plan)[0], "Searching for cows due for estrus...");
        let help = super::plan(Intent::Help, Lang::En, &demo());
        assert!(
            matches!(&help.steps[0].body, PartBody::Result { data: ResultData::Help(h), .. } if h.examples[0].starts_with("List"))
        );
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(1250.0), "1,250");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1234567.0), "1,234,567");
    }
}
