//! `cargo xtask bench [--big] [--out FILE] [-- FLAGS…]`: every benchmark, with one command.
//!
//! 1. The server scenarios: a release dev-server with load-test users on a free port and its
//!    own store, measured by `farm-chat-bench` (`--server-pid` for memory and CPU). Flags after
//!    `--` go to `farm-chat-bench` (e.g. `-- --rates 2000`).
//! 2. `bundle_size`: the release build's transfer size.
//! 3. `widget_apply` and `widget_history`: `tests/bench_widget.rs` in headless Chromium
//!    (release build), whose `BENCH {json}` lines are collected.
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
        "--assistant-speed",
        "fast",
    ]
    .map(String::from)
    .to_vec()
}

pub(crate) fn bench(args: &[String]) -> Result<(), String> {
    let (ours, extra) = match args.iter().position(|a| a == "--") {
        Some(at) => (&args[..at], &args[at + 1..]),
        None => (args, &[][..]),
    };
    let big = ours.iter().any(|a| a == "--big");
    let cluster = ours.iter().position(|a| a == "--cluster").map(|i| {
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
    let streams = if big {
        hard.saturating_sub(2_000).min(100_000)
    } else {
        2_000
    };
    let (fanout, rates, duration) = if big {
        ("100,1000,10000", "100,1000,5000", "10")
    } else {
        ("100,1000", "100,1000", "5")
    };
    let mut results: Vec<Value> = Vec::new();

    // 1. The server.
    let db = dir.join(format!("bench-{}.sqlite", std::process::id()));
    let remove_db = || {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
    };
    remove_db();
    let server_json = dir.join("server.json");
    let server = DevServer::start_bin(
        &release.join("farm-chat-dev-server"),
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
    let _ = run(cmd("prlimit").args([
        format!("--pid={}", server.pid()),
        format!("--nofile={hard}:{hard}"),
    ]));
    println!(
        "xtask: open-files limit {hard} (hard; raising it needs CAP_SYS_RESOURCE): idle streams {streams}"
    );
    let measured = run(cmd(&release.join("farm-chat-bench").display().to_string())
        .args([
            "--base-url".into(),
            format!("http://{}", server.addr),
            "--server-pid".into(),
            server.pid().to_string(),
            "--streams".into(),
            streams.to_string(),
            "--fanout".into(),
            fanout.into(),
            "--rates".into(),
            rates.into(),
            "--duration".into(),
            duration.into(),
            "--nofile".into(),
            hard.to_string(),
            "--out".into(),
            server_json.display().to_string(),
        ])
        .args(extra));
    drop(server);
    remove_db();
    measured?;
    let text = std::fs::read_to_string(&server_json).map_err(|e| e.to_string())?;
    let mut single = serde_json::from_str::<Vec<Value>>(&text).map_err(|e| e.to_string())?;
    for r in &mut single {
        r["params"]["deployment"] = "single (SQLite, in-process bus)".into();
    }
    results.extend(single);

    // 1b. The same sends and streams spread over a cluster.
    if let Some(n) = cluster {
        let cluster_json = dir.join("cluster.json");
        let mut cluster =
            crate::cluster::Cluster::start(n, &release.join("farm-chat-dev-server"), &load_args())?;
        cluster.balance_with(
            &release.join("farm-chat-chaos"),
            "127.0.0.1:0",
            "round-robin",
            1,
        )?;
        let front = cluster.front.ok_or("the balancer has no address")?;
        run(cmd(&release.join("farm-chat-bench").display().to_string())
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

    // 2. The bundle.
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

    // 3. The widget in Chromium.
    let mut test = cmd("cargo");
    test.args([
        "test",
        "--release",
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
    if !output.status.success() || widget.len() != 2 {
        println!("{stdout}");
        return Err("the widget benchmarks failed".into());
    }
    results.extend(widget);

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
