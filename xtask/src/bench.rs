//! `cargo xtask bench [--big] [--out FILE] [-- FLAGS…]`: every benchmark, with one command.
//!
//! 1. The server scenarios: a release dev-server with load-test users on a free port and its
//!    own store, measured by `farm-chat-bench` (`--server-pid` for memory and CPU). Flags after
//!    `--` go to `farm-chat-bench` (e.g. `-- --rates 2000`).
//! 2. `answers`: the assistant on the scripted model, 100 answers at once.
//! 3. `bundle_size`: the release build's transfer size.
//! 4. `widget_apply`, `widget_history` and `widget_answer`: `tests/bench_widget.rs` in
//!    headless Chromium (release build), whose `BENCH {json}` lines are collected.
//!
//! `--only server,answers,bundle,widget` runs some of the parts.
//!
//! Writes every scenario to one JSON file (default `target/bench/results.json`). `--big`
//! runs the large sizes (idle streams up to the open-files limit, fan-out to 10,000, 5,000
//! messages/s); the default finishes in a few minutes.
//!
//! `--cluster N` also runs fan-out and throughput against N release instances on a throwaway
//! PostgreSQL and Redis, behind the chaos proxy as a round-robin balancer; every server
//! scenario's `params.deployment` says `single` or `cluster-N`.

use std::process::Stdio;

use serde_json::{Value, json};

use crate::{
    proc::{cmd, root, run},
    product,
    server::DevServer,
    suites::browser_test_env,
    tools,
};

/// The hard open-files limit of this process (what `prlimit` may raise the soft one to
/// without privileges).
fn nofile_hard() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(4)?.parse().ok()
}

/// The flags of a benchmarked dev-server: load-test users, fast assistant.
fn load_args() -> Vec<String> {
    [
        "--load-users",
        "30000",
        "--load-support",
        "10000",
        // The open-files limit is raised after the start (prlimit below), so the default cap
        // (derived from the limit at start) would be too low.
        "--max-connections",
        "50000",
        // Every benchmark client comes from this machine's few loopback addresses.
        "--max-connections-per-client",
        "100000",
        "--sign-in-per-minute",
        "100000000",
        "--sign-in-per-user-per-minute",
        "100000000",
        "--assistant-speed",
        "fast",
    ]
    .map(String::from)
    .to_vec()
}

/// How the benchmarked server runs.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// One process: SQLite and the in-process bus (the embedded default).
    Single,
    /// One instance of a scale-out deployment: PostgreSQL and the Redis bus.
    Redis,
}

impl Mode {
    fn describe(self) -> &'static str {
        match self {
            Mode::Single => "single (SQLite, in-process bus)",
            Mode::Redis => "redis (one instance on PostgreSQL + Redis bus)",
        }
    }
}

/// Starts a fresh release server in `mode`, runs `farm-chat-bench` against it with `args`
/// (and `extra`, the flags given after `--`) and returns its results, each tagged with the
/// deployment.
fn measure(
    mode: Mode,
    server_bin: &std::path::Path,
    bench_bin: &std::path::Path,
    dir: &std::path::Path,
    hard: u64,
    args: &[String],
    extra: &[String],
) -> Result<Vec<Value>, String> {
    let out = dir.join("server.json");
    let _ = std::fs::remove_file(&out);
    let db = dir.join(format!("bench-{}.sqlite", std::process::id()));
    let remove_db = || {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
    };
    remove_db();
    // Either server stops when this goes out of scope (the cluster also stops its databases).
    let (addr, pid, running): (std::net::SocketAddr, u32, Box<dyn std::any::Any>) = match mode {
        Mode::Single => {
            let server = DevServer::start_bin(
                server_bin,
                &[
                    "--addr".into(),
                    "127.0.0.1:0".into(),
                    "--db".into(),
                    db.display().to_string(),
                ]
                .into_iter()
                .chain(load_args())
                .collect::<Vec<_>>(),
            )?;
            (server.addr, server.pid(), Box::new(server))
        }
        Mode::Redis => {
            let cluster = crate::cluster::Cluster::start(1, server_bin, &load_args())?;
            let pid = cluster.pid(0).ok_or("the instance did not start")?;
            (cluster.addrs[0], pid, Box::new(cluster))
        }
    };
    let _ = run(cmd("prlimit").args([format!("--pid={pid}"), format!("--nofile={hard}:{hard}")]));
    let measured = run(cmd(&bench_bin.display().to_string())
        .args([
            "--base-url".into(),
            format!("http://{addr}"),
            "--server-pid".into(),
            pid.to_string(),
            "--nofile".into(),
            hard.to_string(),
            "--out".into(),
            out.display().to_string(),
        ])
        .args(args)
        .args(extra));
    drop(running);
    remove_db();
    measured?;
    let text = std::fs::read_to_string(&out).map_err(|e| e.to_string())?;
    let mut results = serde_json::from_str::<Vec<Value>>(&text).map_err(|e| e.to_string())?;
    for r in &mut results {
        r["params"]["deployment"] = mode.describe().into();
    }
    Ok(results)
}

pub(crate) fn bench(args: &[String]) -> Result<(), String> {
    let (ours, extra) = match args.iter().position(|a| a == "--") {
        Some(at) => (&args[..at], &args[at + 1..]),
        None => (args, &[][..]),
    };
    let big = ours.iter().any(|a| a == "--big");
    // `--only server,answers,bundle,widget`: some of the parts (default: all).
    let only: Option<Vec<String>> = ours
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| ours.get(i + 1))
        .map(|list| list.split(',').map(str::to_owned).collect());
    let want = |part: &str| only.as_ref().is_none_or(|o| o.iter().any(|p| p == part));
    let cluster = ours
        .iter()
        .position(|a| a == "--cluster")
        .filter(|_| want("server"))
        .map(|i| {
            ours.get(i + 1)
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(3)
        });
    let dir = root().join("target").join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let out = ours
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| ours.get(i + 1))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.join("results.json"));
    let browser = tools::bootstrap()?;
    run(cmd("cargo").args([
        "build",
        "--release",
        "-p",
        "farm-chat-dev-server",
        "-p",
        "farm-chat-bench",
        "-p",
        "farm-chat-chaos",
    ]))?;
    let release = root().join("target").join("release");
    let hard = nofile_hard().unwrap_or(1024);
    // Both ends of every stream live on this machine, each needing a descriptor.
    let most = hard.saturating_sub(2_000).min(100_000) as usize;
    let idle_sizes: Vec<usize> = if big {
        vec![1_000, 5_000, most]
    } else {
        vec![1_000, 5_000]
    };
    println!(
        "xtask: open-files limit {hard} (hard; raising it needs CAP_SYS_RESOURCE): idle streams up to {}",
        idle_sizes.iter().max().unwrap_or(&0)
    );
    let (fanout, rates, duration) = if big {
        ("100,1000,10000", "100,1000,5000", "10")
    } else {
        ("100,1000", "100,1000", "5")
    };
    let mut results: Vec<Value> = Vec::new();
    let bench_bin = release.join("farm-chat-bench");
    let server_bin = release.join("farm-chat-dev-server");

    // 1. The server, in both modes: one process on SQLite with the in-process bus, and one
    //    instance on PostgreSQL with the Redis bus. Each idle-stream size gets a fresh server,
    //    so one run's freed memory does not hide the next one's growth.
    let run_in = |mode: Mode, args: &[String], extra: &[String]| {
        measure(mode, &server_bin, &bench_bin, &dir, hard, args, extra)
    };
    for mode in [Mode::Single, Mode::Redis]
        .into_iter()
        .filter(|_| want("server"))
    {
        for per_user in [1, 8] {
            for &streams in &idle_sizes {
                let args = [
                    "--scenarios".to_owned(),
                    "idle_streams".to_owned(),
                    "--streams".to_owned(),
                    streams.to_string(),
                    "--streams-per-user".to_owned(),
                    per_user.to_string(),
                ];
                results.extend(run_in(mode, &args, &[])?);
            }
        }
        let args = [
            "--scenarios".to_owned(),
            "fanout,throughput".to_owned(),
            "--fanout".to_owned(),
            fanout.to_owned(),
            "--rates".to_owned(),
            rates.to_owned(),
            "--duration".to_owned(),
            duration.to_owned(),
        ];
        results.extend(run_in(mode, &args, extra)?);
    }

    // 1b. The same sends and streams spread over a cluster.
    if let Some(n) = cluster {
        let cluster_json = dir.join("cluster.json");
        let mut cluster = crate::cluster::Cluster::start(n, &server_bin, &load_args())?;
        cluster.balance_with(
            &release.join("farm-chat-chaos"),
            "127.0.0.1:0",
            "round-robin",
            1,
        )?;
        let front = cluster.front.ok_or("the balancer has no address")?;
        run(cmd(&bench_bin.display().to_string())
            .args([
                "--base-url".into(),
                format!("http://{front}"),
                "--scenarios".into(),
                "fanout,throughput".into(),
                "--fanout".into(),
                fanout.into(),
                "--rates".into(),
                rates.into(),
                "--duration".into(),
                duration.into(),
                "--nofile".into(),
                hard.to_string(),
                "--out".into(),
                cluster_json.display().to_string(),
            ])
            .args(extra))?;
        drop(cluster);
        let text = std::fs::read_to_string(&cluster_json).map_err(|e| e.to_string())?;
        let mut spread = serde_json::from_str::<Vec<Value>>(&text).map_err(|e| e.to_string())?;
        for r in &mut spread {
            r["params"]["deployment"] = format!(
                "cluster-{n} (PostgreSQL, Redis bus, behind the chaos proxy as a round-robin \
                 balancer)"
            )
            .into();
        }
        results.extend(spread);
    }

    // 1c. Model answers: the server's assistant on the scripted model (OpenAI's wire), 100
    //     farmers asking at once, each answer 200 tokens at 50 a second; with every chunk
    //     sent at once (the pipeline's own latency) and with the default 50 ms coalescing.
    if want("answers") {
        let model =
            farm_chat_testenv::model::ModelServer::start(farm_chat_testenv::model::Wire::OpenAi)
                .map_err(|e| format!("the scripted model server: {e}"))?;
        for flush in ["0ms", "50ms"] {
            let out = dir.join("answers.json");
            let _ = std::fs::remove_file(&out);
            let db = dir.join(format!("answers-{}.sqlite", std::process::id()));
            let server = DevServer::start_bin(
                &server_bin,
                &[
                    "--addr".into(),
                    "127.0.0.1:0".into(),
                    "--db".into(),
                    db.display().to_string(),
                    "--assistant".into(),
                    "openai".into(),
                    "--model-base-url".into(),
                    model.openai_base(),
                    "--model".into(),
                    "bench-model".into(),
                    "--model-flush-interval".into(),
                    flush.into(),
                ]
                .into_iter()
                .chain(load_args())
                .collect::<Vec<_>>(),
            )?;
            let measured = run(cmd(&bench_bin.display().to_string()).args([
                "--base-url".into(),
                format!("http://{}", server.addr),
                "--server-pid".into(),
                server.pid().to_string(),
                "--scenarios".into(),
                "answers".into(),
                "--answers".into(),
                "100".into(),
                "--answer-tokens".into(),
                "200".into(),
                "--answer-rate".into(),
                "50".into(),
                "--out".into(),
                out.display().to_string(),
            ]));
            drop(server);
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
            measured?;
            let text = std::fs::read_to_string(&out).map_err(|e| e.to_string())?;
            let mut answers =
                serde_json::from_str::<Vec<Value>>(&text).map_err(|e| e.to_string())?;
            for r in &mut answers {
                r["params"]["deployment"] = Mode::Single.describe().into();
                r["params"]["model_flush_interval"] = flush.into();
                r["params"]["model"] =
                    "farm_chat_testenv::model (OpenAI SSE, on this machine)".into();
            }
            results.extend(answers);
        }
    }

    // 2. The bundle.
    if want("bundle") {
        product::build_release()?;
        let files = product::size()?;
        let sum = |pick: &dyn Fn(&product::WireFile) -> u64, critical: bool| -> u64 {
            files
                .iter()
                .filter(|f| f.critical || !critical)
                .map(pick)
                .sum()
        };
        // A farmer's phone in a barn: 1.6 Mbps, 150 ms round trips.
        let page_load = crate::pageload::measure(&browser, 150, 1600)?;
        println!("page load (1.6 Mbps, 150 ms): {page_load}");
        let bundle = json!({
            "scenario": "bundle_size",
            "params": {"build": "trunk build --release (wasm-opt -Oz)", "compression": "gzip -9, Brotli q11 (the variants the dev-server serves)"},
            "figures": {
                "files": files.iter().map(|f| json!({"name": f.name, "raw_bytes": f.raw, "gzip_bytes": f.gzip, "brotli_bytes": f.brotli, "before_load_event": f.critical})).collect::<Vec<_>>(),
                "raw_bytes": sum(&|f| f.raw, false),
                "gzip_bytes": sum(&|f| f.gzip, false),
                "brotli_bytes": sum(&|f| f.brotli, false),
                "critical_path_brotli_bytes": sum(&|f| f.brotli, true),
                "goal_brotli_bytes": 100 * 1024, "goal_gzip_bytes": 120 * 1024, "goal_critical_path_bytes": 15 * 1024,
                "page_load": page_load,
            },
        });
        results.push(bundle);
    }

    // 3. The widget in Chromium.
    if want("widget") {
        let mut test = cmd("cargo");
        test.args([
            "test",
            "--profile",
            "wasm-release",
            "-p",
            "farm-chat",
            "--target",
            "wasm32-unknown-unknown",
            "--test",
            "bench_widget",
            "--",
            "--nocapture",
        ]);
        browser_test_env(&mut test, &browser);
        let output = test
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cargo test --test bench_widget: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let widget: Vec<Value> = stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l.trim().strip_prefix("BENCH ")?).ok())
            .collect();
        if !output.status.success() || widget.len() != 3 {
            println!("{stdout}");
            return Err("the widget benchmarks failed".into());
        }
        results.extend(widget);
    }

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for r in &mut results {
        r["cores"] = cores.into();
    }
    for r in results.iter().filter(|r| {
        r["scenario"] != "idle_streams"
            && r["scenario"] != "fanout"
            && r["scenario"] != "throughput"
    }) {
        println!(
            "{:<16} {}",
            r["scenario"].as_str().unwrap_or(""),
            r["figures"]
        );
    }
    let text = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
    std::fs::write(&out, text).map_err(|e| format!("write {}: {e}", out.display()))?;
    println!(
        "bench: {} scenarios written to {}",
        results.len(),
        out.display()
    );
    Ok(())
}
