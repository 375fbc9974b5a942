//! `cargo xtask fuzz [--seconds N | --minutes N] [TARGET…]`: coverage-guided fuzzing with
//! cargo fuzz (libFuzzer) of the targets in `fuzz/` (every parser that takes outside input),
//! each for the given time, then a table of executions and crashes per target.
//!
//! The toolchain is the machine's stable one: cargo fuzz's `-Z` flags are allowed by
//! `RUSTC_BOOTSTRAP=1`, so no nightly toolchain has to be fetched. No sanitizer
//! (`--sanitizer none`): the code fuzzed forbids `unsafe`, and a build without one runs many
//! times more inputs per second; what it looks for is panics, 5xx answers and broken
//! properties. The corpus grows in `target/fuzz/corpus/TARGET` (starting from the committed
//! seeds in `fuzz/seeds/TARGET`); a crashing input is written to `target/fuzz/artifacts/`.
//! `cargo xtask test` runs each target for 20 s.

use std::path::Path;

use crate::{
    proc::{cmd, output, root},
    tools,
};

/// The targets, as named in `fuzz/Cargo.toml`.
pub(crate) const TARGETS: [&str; 4] = [
    "api_request",
    "event_decoder",
    "sse_framing",
    "ids_and_tokens",
];

/// cargo-fuzz, installed into the tools folder when missing.
const CARGO_FUZZ_VERSION: &str = "0.13.1";

/// What one target's run did.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) target: String,
    pub(crate) seconds: u64,
    pub(crate) executions: u64,
    pub(crate) crashed: bool,
}

/// `cargo xtask fuzz`.
pub(crate) fn fuzz(args: &[String]) -> Result<(), String> {
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let seconds = flag("--seconds")
        .or_else(|| flag("--minutes").map(|m| m * 60))
        .unwrap_or(60);
    let mut skip_next = false;
    let mut targets = Vec::new();
    for a in args {
        if std::mem::take(&mut skip_next) {
            continue;
        }
        if a == "--seconds" || a == "--minutes" {
            skip_next = true;
        } else if TARGETS.contains(&a.as_str()) {
            targets.push(a.clone());
        } else {
            return Err(format!(
                "unknown fuzz target `{a}` (targets: {})",
                TARGETS.join(", ")
            ));
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    }
    let outcomes = run_targets(&targets, seconds)?;
    report(&outcomes)
}

/// Prints the table; an error if any target crashed.
pub(crate) fn report(outcomes: &[Outcome]) -> Result<(), String> {
    println!("\n  target            seconds   executions   crashes");
    for o in outcomes {
        println!(
            "  {:<16}  {:>7}  {:>11}   {}",
            o.target,
            o.seconds,
            o.executions,
            u8::from(o.crashed)
        );
    }
    let crashed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.crashed)
        .map(|o| o.target.as_str())
        .collect();
    println!(
        "fuzz: {} targets, {} crashed",
        outcomes.len(),
        crashed.len()
    );
    if crashed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "crashed: {} (inputs in target/fuzz/artifacts/)",
            crashed.join(", ")
        ))
    }
}

/// Builds the targets once, then runs each for `seconds`.
pub(crate) fn run_targets(targets: &[String], seconds: u64) -> Result<Vec<Outcome>, String> {
    cargo_fuzz()?;
    let fuzz_target_dir = root().join("target").join("fuzz");
    let mut outcomes = Vec::new();
    for target in targets {
        let corpus = fuzz_target_dir.join("corpus").join(target);
        let artifacts = fuzz_target_dir.join("artifacts").join(target);
        let seeds = root().join("fuzz").join("seeds").join(target);
        for dir in [&corpus, &artifacts] {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        println!("xtask: fuzzing {target} for {seconds} s");
        let mut run = cargo_fuzz_cmd();
        run.args(["run", "--sanitizer", "none", "--release", "--target-dir"])
            .arg(&fuzz_target_dir)
            .arg(target)
            .arg(&corpus);
        if seeds.is_dir() {
            run.arg(&seeds);
        }
        run.arg("--").args([
            format!("-max_total_time={seconds}"),
            "-print_final_stats=1".into(),
            "-rss_limit_mb=4096".into(),
            "-timeout=10".into(),
            format!("-artifact_prefix={}/", artifacts.display()),
        ]);
        let out = run
            .stderr(std::process::Stdio::piped())
            .output()
            .map_err(|e| format!("cargo fuzz: {e}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let log_file = fuzz_target_dir.join(format!("{target}.log"));
        let _ = std::fs::write(&log_file, log.as_bytes());
        let executions = stat(&log, "stat::number_of_executed_units:");
        let crashed = !out.status.success();
        if crashed {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            println!("{}", tail.join("\n"));
        }
        if executions == 0 && !crashed {
            return Err(format!(
                "{target}: no executions reported (log: {})",
                log_file.display()
            ));
        }
        outcomes.push(Outcome {
            target: target.clone(),
            seconds,
            executions,
            crashed,
        });
    }
    Ok(outcomes)
}

fn stat(log: &str, name: &str) -> u64 {
    log.lines()
        .rev()
        .filter_map(|l| l.trim().strip_prefix(name))
        .find_map(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn cargo_fuzz_cmd() -> std::process::Command {
    let mut c = cmd("cargo");
    c.arg("fuzz")
        .current_dir(root())
        // cargo fuzz passes `-Z` flags; the stable toolchain takes them with this.
        .env("RUSTC_BOOTSTRAP", "1");
    c
}

/// Installs cargo-fuzz into the tools folder when it is missing.
fn cargo_fuzz() -> Result<(), String> {
    let bin = tools::tools_dir().join("bin").join("cargo-fuzz");
    if is_version(&bin) {
        return Ok(());
    }
    println!("xtask: installing cargo-fuzz {CARGO_FUZZ_VERSION} (cargo install, ~2 min)");
    crate::proc::run(
        cmd("cargo")
            .args([
                "install",
                "cargo-fuzz",
                "--locked",
                "--force",
                "--version",
                CARGO_FUZZ_VERSION,
                "--root",
            ])
            .arg(tools::tools_dir()),
    )
}

fn is_version(bin: &Path) -> bool {
    output(std::process::Command::new(bin).arg("--version"))
        .is_some_and(|v| v.contains(CARGO_FUZZ_VERSION))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_executions_stat_counts() {
        let log =
            "#2 INITED\nstat::number_of_executed_units: 12\nstat::number_of_executed_units: 345\n";
        assert_eq!(stat(log, "stat::number_of_executed_units:"), 345);
        assert_eq!(stat("", "stat::number_of_executed_units:"), 0);
    }
}
