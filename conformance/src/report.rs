//! The results as a table for people and JSON for machines.

use serde_json::{Value, json};

use crate::rules::{Checked, Outcome};

/// Counts of passed, failed and skipped rules.
pub fn counts(results: &[Checked]) -> (usize, usize, usize) {
    results
        .iter()
        .fold((0, 0, 0), |(p, f, s), c| match c.outcome {
            Outcome::Pass => (p + 1, f, s),
            Outcome::Fail(_) => (p, f + 1, s),
            Outcome::Skip(_) => (p, f, s + 1),
        })
}

/// One line per rule, then the summary line.
pub fn table(results: &[Checked]) -> String {
    let mut out = String::new();
    for c in results {
        let (word, why) = match &c.outcome {
            Outcome::Pass => ("PASS", String::new()),
            Outcome::Fail(e) => ("FAIL", format!(": {e}")),
            Outcome::Skip(e) => ("SKIP", format!(": {e}")),
        };
        out.push_str(&format!("{word}  {}{why}\n", c.rule.id));
    }
    let (p, f, s) = counts(results);
    out.push_str(&format!(
        "conformance: {p} passed, {f} failed, {s} skipped\n"
    ));
    out
}

/// `{"rules":[{"id","outcome","reason","protects"}],"passed","failed","skipped"}`.
pub fn json(results: &[Checked]) -> Value {
    let (p, f, s) = counts(results);
    let rules: Vec<Value> = results
        .iter()
        .map(|c| {
            let (outcome, reason) = match &c.outcome {
                Outcome::Pass => ("pass", None),
                Outcome::Fail(e) => ("fail", Some(e.clone())),
                Outcome::Skip(e) => ("skip", Some(e.clone())),
            };
            json!({"id": c.rule.id, "outcome": outcome, "reason": reason, "protects": c.rule.protects})
        })
        .collect();
    json!({"rules": rules, "passed": p, "failed": f, "skipped": s})
}
