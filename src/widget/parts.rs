//! An assistant's reply to a task: its status and intermediate lines ([`StreamingMessage`],
//! typed out unless the user prefers reduced motion), a [`ProgressBar`], the typed result
//! ([`DataRenderer`]), an inline error, and a stop button while it runs.

use std::time::Duration;

use farm_chat_protocol::task::{
    CowList, CowRow, HealthReport, PartBody, Progress, ResultData, RiskLevel, ShipmentReport,
    TaskSnapshot, TaskState,
};
use leptos::prelude::*;

use super::Ctl;
use crate::{
    format,
    i18n::{Locale, Text},
};

/// Whether the user asked for less motion.
pub fn prefers_reduced_motion() -> bool {
    web_sys::window()
        .and_then(|w| {
            w.match_media("(prefers-reduced-motion: reduce)")
                .ok()
                .flatten()
        })
        .is_some_and(|m| m.matches())
}

/// A line typed out a few characters at a time (at once under reduced motion). Screen readers
/// get the whole line at once.
#[component]
pub fn StreamingMessage(
    /// The line.
    #[prop(into)]
    text: String,
    /// Type it out (a new line of a running task) or show it whole (from history).
    #[prop(optional)]
    animate: bool,
) -> impl IntoView {
    let chars: Vec<char> = text.chars().collect();
    let total = chars.len();
    let shown = RwSignal::new(if animate && !prefers_reduced_motion() {
        0
    } else {
        total
    });
    if shown.get_untracked() < total {
        let handle = StoredValue::new(None::<IntervalHandle>);
        let tick = move || {
            shown.update(|n| *n = (*n + 2).min(total));
            if shown.get_untracked() >= total
                && let Some(h) = handle.get_value()
            {
                h.clear();
            }
        };
        if let Ok(h) = set_interval_with_handle(tick, Duration::from_millis(30)) {
            handle.set_value(Some(h));
            on_cleanup(move || {
                if let Some(h) = handle.try_get_value().flatten() {
                    h.clear();
                }
            });
        } else {
            shown.set(total);
        }
    }
    let visible = move || chars.iter().take(shown.get()).collect::<String>();
    view! {
        <p class="fc-line" data-testid="streaming-line" data-done=move || (shown.get() >= total).to_string()>
            <span aria-hidden="true">{visible}</span>
            <span class="fc-sr-only">{text}</span>
        </p>
    }
}

/// `role="progressbar"` with its ARIA values, current / total and the percentage.
#[component]
pub fn ProgressBar(
    /// How far.
    progress: Progress,
    /// What is being counted.
    #[prop(into)]
    label: String,
) -> impl IntoView {
    let text = format!(
        "{} / {} ({}%)",
        progress.current, progress.total, progress.percentage
    );
    let value_text = text.clone();
    view! {
        <div class="fc-progress" data-testid="progress" role="progressbar"
            aria-label=label aria-valuemin="0"
            aria-valuemax=progress.total.to_string()
            aria-valuenow=progress.current.to_string()
            aria-valuetext=value_text>
            <div class="fc-progress__track">
                <div class="fc-progress__bar" style=format!("width: {}%", progress.percentage)></div>
            </div>
            <span class="fc-progress__text">{text}</span>
        </div>
    }
}

/// The reply of one task, kept up to date from the store.
#[component]
pub fn TaskReply(ctl: Ctl, task: Memo<Option<TaskSnapshot>>, locale: Locale) -> impl IntoView {
    let lines = move || {
        task.with(|t| {
            t.iter()
                .flat_map(|t| t.parts.iter())
                .filter_map(|p| match &p.body {
                    PartBody::Status { text } | PartBody::Intermediate { text } => {
                        Some((p.part, text.clone()))
                    }
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
    };
    let running = Memo::new(move |_| {
        task.with(|t| t.as_ref().is_some_and(|t| t.state == TaskState::Running))
    });
    let progress = Memo::new(move |_| task.with(|t| t.as_ref().and_then(|t| t.progress)));
    // A planner's reply has one result; a model's has one per tool it called.
    let results = Memo::new(move |_| {
        task.with(|t| {
            t.iter()
                .flat_map(|t| t.parts.iter())
                .filter_map(|p| match &p.body {
                    PartBody::Result { text, data } => Some((p.part, text.clone(), data.clone())),
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
    });
    let texts = Memo::new(move |_| {
        task.with(|t| {
            t.iter()
                .flat_map(|t| t.parts.iter())
                .filter(|p| matches!(p.body, PartBody::Text { .. }))
                .map(|p| p.part)
                .collect::<Vec<_>>()
        })
    });
    let error = Memo::new(move |_| {
        task.with(|t| {
            t.as_ref()?.parts.iter().find_map(|p| match &p.body {
                PartBody::Error { code, text } => Some((code.clone(), text.clone())),
                _ => None,
            })
        })
    });
    let state = move || match task.with(|t| t.as_ref().map(|t| t.state)) {
        Some(TaskState::Running) => "running",
        Some(TaskState::Succeeded) => "succeeded",
        Some(TaskState::Failed) => "failed",
        Some(TaskState::Cancelled) => "cancelled",
        None => "",
    };
    let task_id = move || task.with_untracked(|t| t.as_ref().map(|t| t.task_id.to_string()));
    view! {
        <div class="fc-task" data-testid="task" data-state=state>
            <For each=lines key=|(n, _)| *n let:((_, text))>
                <StreamingMessage text=text animate=running.get_untracked() />
            </For>
            {move || progress.get().map(|p| view! { <ProgressBar progress=p label=locale.text(Text::Progress) /> })}
            <For each=move || results.get() key=|(n, _, _)| *n let:((_, text, data))>
                <div class="fc-result" data-testid="result">
                    <p class="fc-result__title">{text}</p>
                    <DataRenderer ctl=ctl data=data locale=locale />
                </div>
            </For>
            <For each=move || texts.get() key=|n| *n let:part>
                <super::answer::AnswerText task=task part=part running=running locale=locale />
            </For>
            {move || error.get().map(|(code, text)| view! {
                <p class="fc-error" data-testid="task-error" data-code=code role="alert">{text}</p>
            })}
            {move || running.get().then(|| view! {
                <button type="button" class="fc-button fc-stop" data-testid="stop"
                    on:click=move |_| if let Some(id) = task_id() { ctl.with_value(|c| c.cancel(id)) }>
                    {locale.text(Text::Stop)}
                </button>
            })}
        </div>
    }
}

/// A typed result: a cow table, a health report, a shipment report, or what the assistant can do.
#[component]
pub fn DataRenderer(ctl: Ctl, data: ResultData, locale: Locale) -> impl IntoView {
    match data {
        ResultData::CowList(list) => view! { <CowTable list=list locale=locale /> }.into_any(),
        ResultData::HealthReport(report) => view! { <HealthCards report=report locale=locale /> }.into_any(),
        ResultData::ShipmentReport(report) => view! { <ShipmentSummary ctl=ctl report=report locale=locale /> }.into_any(),
        ResultData::SupportOffer(offer) => view! {
            <div class="fc-offer" data-testid="support-offer">
                <p class="fc-offer__summary">{offer.summary.clone()}</p>
                <button type="button" class="fc-button" data-testid="ask-support"
                    on:click=move |_| { ctl.with_value(|c| c.offer_support(&offer.summary)); }>
                    {locale.text(Text::AskSupport)}
                </button>
            </div>
        }
        .into_any(),
        ResultData::Help(help) => view! {
            <div class="fc-help" data-testid="help">
                <p>{locale.text(Text::TryAsking)}</p>
                <ul>
                    {help.examples.into_iter().map(|example| {
                        let send = example.clone();
                        view! {
                            <li><button type="button" class="fc-link" on:click=move |_| { ctl.with_value(|c| c.send(send.clone())); }>
                                {example}
                            </button></li>
                        }
                    }).collect_view()}
                </ul>
            </div>
        }
        .into_any(),
    }
}

/// Which column the cow table is sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CowColumn {
    /// Ear tag.
    Tag,
    /// Name.
    Name,
    /// Last insemination.
    LastInsemination,
    /// Days since.
    DaysSince,
    /// Expected estrus.
    ExpectedDate,
}

/// Sorts rows by a column (ties by tag), ascending or descending.
pub fn sort_cows(rows: &mut [CowRow], column: CowColumn, ascending: bool) {
    rows.sort_by(|a, b| {
        let order = match column {
            CowColumn::Tag => a.tag.cmp(&b.tag),
            CowColumn::Name => a.name.cmp(&b.name),
            CowColumn::LastInsemination => a.last_insemination.cmp(&b.last_insemination),
            CowColumn::DaysSince => a.days_since.cmp(&b.days_since),
            CowColumn::ExpectedDate => a.expected_date.cmp(&b.expected_date),
        }
        .then(a.tag.cmp(&b.tag));
        if ascending { order } else { order.reverse() }
    });
}

/// The cow list as CSV (with a BOM, so spreadsheet programs read the Japanese names).
pub fn cows_csv(list: &CowList, locale: Locale) -> String {
    let header = [
        Text::Tag,
        Text::Name,
        Text::LastInsemination,
        Text::DaysSince,
        Text::ExpectedDate,
    ]
    .map(|t| locale.text(t))
    .join(",");
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let rows = list.cows.iter().map(|c| {
        format!(
            "{},{},{},{},{}",
            c.tag,
            quote(&c.name),
            c.last_insemination,
            c.days_since,
            c.expected_date
        )
    });
    std::iter::once(header)
        .chain(rows)
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[component]
fn CowTable(list: CowList, locale: Locale) -> impl IntoView {
    let sort = RwSignal::new((CowColumn::ExpectedDate, true));
    let csv = format!(
        "data:text/csv;charset=utf-8,{}",
        js_sys::encode_uri_component(&format!("\u{feff}{}", cows_csv(&list, locale)))
    );
    let rows = list.cows.clone();
    let sorted = move || {
        let mut rows = rows.clone();
        let (column, ascending) = sort.get();
        sort_cows(&mut rows, column, ascending);
        rows
    };
    let header = move |column: CowColumn, label: Text| {
        let aria = move || match sort.get() {
            (c, true) if c == column => "ascending",
            (c, false) if c == column => "descending",
            _ => "none",
        };
        view! {
            <th scope="col" aria-sort=aria>
                <button type="button" class="fc-sort" data-testid="sort"
                    on:click=move |_| sort.update(|(c, asc)| if *c == column { *asc = !*asc } else { *c = column; *asc = true })>
                    {locale.text(label)}
                </button>
            </th>
        }
    };
    view! {
        <div class="fc-table-wrap">
            <table class="fc-table" data-testid="cow-table">
                <thead><tr>
                    {header(CowColumn::Tag, Text::Tag)}
                    {header(CowColumn::Name, Text::Name)}
                    {header(CowColumn::LastInsemination, Text::LastInsemination)}
                    {header(CowColumn::DaysSince, Text::DaysSince)}
                    {header(CowColumn::ExpectedDate, Text::ExpectedDate)}
                </tr></thead>
                <tbody>
                    {move || sorted().into_iter().map(|c| view! {
                        <tr data-testid="cow-row">
                            <td>{c.tag}</td><td>{c.name}</td><td>{format::day(locale, &c.last_insemination)}</td>
                            <td>{c.days_since}</td><td>{format::day(locale, &c.expected_date)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
        <a class="fc-link" data-testid="csv" href=csv download="cows.csv">{locale.text(Text::DownloadCsv)}</a>
    }
}

#[component]
fn HealthCards(report: HealthReport, locale: Locale) -> impl IntoView {
    let (risk, risk_text) = match report.risk {
        RiskLevel::Low => ("low", Text::RiskLow),
        RiskLevel::Medium => ("medium", Text::RiskMedium),
        RiskLevel::High => ("high", Text::RiskHigh),
    };
    view! {
        <div class="fc-cards" data-testid="health-report">
            <div class="fc-card">
                <p class="fc-card__title">{format!("{} ({})", report.name, report.tag)}</p>
                <p>
                    {locale.text(Text::Risk)}": "
                    <span class="fc-badge" data-testid="risk" data-risk=risk>{locale.text(risk_text)}</span>
                </p>
                <p>{format!("{}: {} kg / {}: {} kg", locale.text(Text::MilkAverage), format::number(locale, report.milk_average_kg), locale.text(Text::Baseline), format::number(locale, report.milk_baseline_kg))}</p>
                <p>{format!("{}: {}", locale.text(Text::Activity), format::number(locale, report.activity_index))}</p>
            </div>
            <div class="fc-card">
                <p class="fc-card__title">{locale.text(Text::Findings)}</p>
                <ul>{report.findings.into_iter().map(|f| view! { <li>{f}</li> }).collect_view()}</ul>
            </div>
            <div class="fc-card">
                <p class="fc-card__title">{locale.text(Text::Actions)}</p>
                <ul>{report.recommended_actions.into_iter().map(|a| view! { <li>{a}</li> }).collect_view()}</ul>
            </div>
        </div>
    }
}

#[component]
fn ShipmentSummary(ctl: Ctl, report: ShipmentReport, locale: Locale) -> impl IntoView {
    let href = ctl.with_value(|c| c.link(&report.pdf_url));
    view! {
        <dl class="fc-figures" data-testid="shipment-report">
            <div><dt>{locale.text(Text::Period)}</dt><dd>{format!("{} – {}", format::day(locale, &report.period_start), format::day(locale, &report.period_end))}</dd></div>
            <div><dt>{locale.text(Text::HeadShipped)}</dt><dd>{format::number(locale, f64::from(report.head))}</dd></div>
            <div><dt>{locale.text(Text::TotalShipped)}</dt><dd>{format!("{} kg", format::number(locale, report.total_kg))}</dd></div>
        </dl>
        <a class="fc-link" data-testid="pdf" href=href target="_blank" rel="noopener">{locale.text(Text::OpenPdf)}</a>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tag: u32, name: &str, days: u32, expected: &str) -> CowRow {
        CowRow {
            tag,
            name: name.into(),
            last_insemination: "2026-10-01".into(),
            days_since: days,
            expected_date: expected.into(),
        }
    }

    #[test]
    fn the_cow_table_sorts_by_any_column_both_ways() {
        let mut rows = vec![
            row(3, "もも", 30, "2026-11-25"),
            row(1, "はな", 50, "2026-11-23"),
            row(2, "さくら", 30, "2026-11-24"),
        ];
        sort_cows(&mut rows, CowColumn::Tag, true);
        assert_eq!(rows.iter().map(|r| r.tag).collect::<Vec<_>>(), [1, 2, 3]);
        sort_cows(&mut rows, CowColumn::DaysSince, false);
        assert_eq!(
            rows.iter().map(|r| r.tag).collect::<Vec<_>>(),
            [1, 3, 2],
            "ties keep tag order, reversed"
        );
        sort_cows(&mut rows, CowColumn::ExpectedDate, true);
        assert_eq!(rows.iter().map(|r| r.tag).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn csv_quotes_names_and_has_a_header_in_the_locale() {
        let list = CowList {
            criteria: String::new(),
            cows: vec![row(7, "は\"な", 22, "2026-11-30")],
        };
        let csv = cows_csv(&list, Locale::Ja);
        assert_eq!(
            csv,
            "耳標,名前,最終種付日,経過日数,発情予定日\r\n7,\"は\"\"な\",2026-10-01,22,2026-11-30"
        );
        assert!(cows_csv(&list, Locale::En).starts_with("Tag,Name"));
    }
}
