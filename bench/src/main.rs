//! `farm-chat-bench`: load generator for any server that speaks the farm-chat protocol.
//!
//! It signs in with `POST /api/session` and uses only the documented routes
//! (`/api/conversations`, `/api/chat/send`, `/api/chat/stream`). Scenarios:
//! - `idle_streams`: hold N SSE streams; the server's memory per stream and the connect rate;
//! - `fanout`: one message to K participants' streams; 201 → receipt p50 / p99 / max;
//! - `throughput`: R sends/s from many users, each listening; send → receipt p50 / p99 / p999
//!   and the server's CPU.
//!
//! Prints a table and writes `--out FILE` (JSON, one object per run). Memory and CPU figures
//! need `--server-pid` (a server on this machine). Against the dev-server, start it with
//! `--load-users N --load-support K` so the synthetic users exist; `cargo xtask bench` does all
//! of that (and the widget's benchmarks).

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;
use farm_chat_bench::{http, scenarios, system};
use serde_json::Value;

/// Load generator for a farm-chat server.
#[derive(Debug, Parser)]
#[command(name = "farm-chat-bench", version, about)]
struct Args {
    /// The server, e.g. http://127.0.0.1:3000 (its API under /api).
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    base_url: String,
    /// The server's pid, for its memory (/proc/PID/status) and CPU time (/proc/PID/stat).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Which scenarios, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "idle_streams,fanout,throughput"
    )]
    scenarios: Vec<String>,
    /// idle_streams: how many streams.
    #[arg(long, default_value_t = 2_000)]
    streams: usize,
    /// idle_streams: streams per user (the dev-server allows 10).
    #[arg(long, default_value_t = 8)]
    streams_per_user: usize,
    /// idle_streams: skip the reconnect storm that follows (for profiling the held streams).
    #[arg(long)]
    no_storm: bool,
    /// idle_streams: how long to hold them before reading the server's memory.
    #[arg(long, default_value = "3", value_parser = parse_secs)]
    hold: Duration,
    /// fanout: participant counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    fanout: Vec<usize>,
    /// fanout: messages per run.
    #[arg(long, default_value_t = 5)]
    fanout_messages: usize,
    /// throughput: rates (messages per second), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    rates: Vec<usize>,
    /// throughput: how long each rate runs.
    #[arg(long, default_value = "5", value_parser = parse_secs)]
    duration: Duration,
    /// answers: how many farmers ask at once (the server's assistant on the scripted model).
    #[arg(long, default_value_t = 100)]
    answers: usize,
    /// answers: tokens in each answer.
    #[arg(long, default_value_t = 200)]
    answer_tokens: usize,
    /// answers: tokens a second the model writes each answer at.
    #[arg(long, default_value_t = 50)]
    answer_rate: usize,
    /// Farmers' user ids: this prefix and a number (the dev-server's `--load-users`).
    #[arg(long, default_value = "u-load-")]
    farmer_prefix: String,
    /// Support staff's user ids: this prefix and a number (the dev-server's `--load-support`).
    #[arg(long, default_value = "u-load-support-")]
    support_prefix: String,
    /// Write the results as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Raise this process's open-files limit to this (with prlimit) first.
    #[arg(long, default_value_t = 1_048_576)]
    nofile: u64,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    s.trim_end_matches('s')
        .parse::<f64>()
        .map(Duration::from_secs_f64)
        .map_err(|e| format!("{s}: {e}"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = system::raise_nofile(std::process::id(), args.nofile) {
        eprintln!(
            "farm-chat-bench: could not raise the open-files limit ({e}); large runs may fail"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("farm-chat-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("farm-chat-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), String> {
    let common = scenarios::Common {
        target: http::Target::parse(&args.base_url)?,
        server_pid: args.server_pid,
        farmer_prefix: args.farmer_prefix.clone(),
        support_prefix: args.support_prefix.clone(),
    };
    let mut results: Vec<Value> = Vec::new();
    for scenario in &args.scenarios {
        match scenario.as_str() {
            "idle_streams" => {
                eprintln!("idle_streams: {} streams…", args.streams);
                results.push(
                    scenarios::idle_streams(
                        &common,
                        args.streams,
                        args.streams_per_user,
                        args.hold,
                        !args.no_storm,
                    )
                    .await?,
                );
            }
            "fanout" => {
                for &k in &args.fanout {
                    eprintln!("fanout: {k} participants…");
                    results.push(scenarios::fanout(&common, k, args.fanout_messages).await?);
                }
            }
            "throughput" => {
                for &rate in &args.rates {
                    eprintln!("throughput: {rate} msg/s…");
                    results.push(scenarios::throughput(&common, rate, args.duration).await?);
                }
            }
            "answers" => {
                eprintln!(
                    "answers: {} at once, {} tokens each at {}/s…",
                    args.answers, args.answer_tokens, args.answer_rate
                );
                results.push(
                    scenarios::answers(&common, args.answers, args.answer_tokens, args.answer_rate)
                        .await?,
                );
            }
            other => return Err(format!("unknown scenario {other}")),
        }
    }
    let cores = system::cores();
    for r in &mut results {
        r["cores"] = cores.into();
        r["base_url"] = args.base_url.clone().into();
    }
    print_table(&results);
    if let Some(out) = &args.out {
        let text = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
        std::fs::write(out, text).map_err(|e| format!("write {}: {e}", out.display()))?;
        println!("results: {}", out.display());
    }
    Ok(())
}

/// One line per run with its headline figures.
fn print_table(results: &[Value]) {
    println!("\n{:<14} {:<34} figures", "scenario", "parameters");
    for r in results {
        let p = &r["params"];
        let f = &r["figures"];
        let ms = |v: &Value| format!("{:.2}", v.as_f64().unwrap_or(f64::NAN));
        let (params, figures) = match r["scenario"].as_str().unwrap_or("") {
            "idle_streams" => (
                format!("{} streams, {}/user", p["streams"], p["streams_per_user"]),
                format!(
                    "open {} failed {}, {:.0} streams/s, server {} B/stream (RSS {} → {} KiB, \
                     {} KiB after all closed); storm: {} of {} back in {:.1} s, listen drops {}",
                    f["open"],
                    f["failed"],
                    f["connect_rate_per_s"].as_f64().unwrap_or(0.0),
                    f["server_bytes_per_stream"]
                        .as_f64()
                        .map_or("?".into(), |b| format!("{b:.0}")),
                    f["server_rss_before_kib"],
                    f["server_rss_after_kib"],
                    f["server_rss_after_all_closed_kib"],
                    f["reconnect_storm"]["reconnected"],
                    f["reconnect_storm"]["streams"],
                    f["reconnect_storm"]["seconds"].as_f64().unwrap_or(0.0),
                    f["reconnect_storm"]["listen_overflows"],
                ),
            ),
            "fanout" => (
                format!(
                    "K = {}, {} messages",
                    p["participants_with_streams"], p["messages"]
                ),
                format!(
                    "201→receipt p50 {} p99 {} max {} ms; last receipt p50 {} ms; \
                     send start→last receipt p50 {} max {} ms; lost {}",
                    ms(&f["receipt_after_201"]["p50_ms"]),
                    ms(&f["receipt_after_201"]["p99_ms"]),
                    ms(&f["receipt_after_201"]["max_ms"]),
                    ms(&f["last_receipt_after_201"]["p50_ms"]),
                    ms(&f["last_receipt_after_send_start"]["p50_ms"]),
                    ms(&f["last_receipt_after_send_start"]["max_ms"]),
                    f["lost"],
                ),
            ),
            "throughput" => (
                format!(
                    "R = {}/s for {} s, {} users",
                    p["rate_per_s"], p["duration_s"], p["senders"]
                ),
                format!(
                    "achieved {:.0}/s; send→receipt p50 {} p99 {} p999 {} ms; lost {}; failed {}; server CPU {}",
                    f["achieved_rate_per_s"].as_f64().unwrap_or(0.0),
                    ms(&f["send_to_receipt"]["p50_ms"]),
                    ms(&f["send_to_receipt"]["p99_ms"]),
                    ms(&f["send_to_receipt"]["p999_ms"]),
                    f["lost"],
                    f["failed"],
                    f["server_cpu_percent"]
                        .as_f64()
                        .map_or("?".into(), |c| format!("{c:.0} %")),
                ),
            ),
            "answers" => (
                format!(
                    "{} answers × {} tokens at {}/s",
                    p["answers"], p["tokens_each"], p["tokens_per_second_each"]
                ),
                format!(
                    "model chunk→receipt p50 {} p99 {} max {} ms; tokens lost {}; deltas out of place {}; finished {}; server CPU {}",
                    ms(&f["added_latency_ms"]["p50_ms"]),
                    ms(&f["added_latency_ms"]["p99_ms"]),
                    ms(&f["added_latency_ms"]["max_ms"]),
                    f["lost"],
                    f["deltas_out_of_place"],
                    f["answers_finished"],
                    f["server_cpu_percent"]
                        .as_f64()
                        .map_or("?".into(), |c| format!("{c:.0} %")),
                ),
            ),
            other => (other.to_owned(), f.to_string()),
        };
        println!(
            "{:<14} {:<34} {}",
            r["scenario"].as_str().unwrap_or(""),
            params,
            figures
        );
    }
}
