//! # xtask — farm-chat's project command
//!
//! `cargo xtask <command>` (an alias in `.cargo/config.toml`). Plain Rust with no
//! dependencies, so it compiles in seconds on a fresh machine and runs wherever cargo does.
//!
//! - [`tools`]: `bootstrap`, installing only what is missing (wasm32 target, Chromium +
//!   chromedriver, wasm-opt, the wasm-bindgen CLI of the locked version, trunk) into the
//!   project-local `.tools/` folder.
//! - [`cluster`]: `run --cluster N`: instances on a throwaway PostgreSQL and Redis behind the
//!   chaos proxy as a balancer.
//! - [`server`]: starts the dev-server on a free loopback port and stops it when dropped
//!   (also when a test fails or panics).
//! - [`suites`]: `test`, every suite with each runner's own summary, then a table.
//! - [`product`]: `run` (build the widget, serve it with the API), `dev` (trunk serve with
//!   hot reload, `/api` proxied) and `size` (transfer size of the release build).
//! - [`bundle`]: trunk's post-build hook: the launcher script and the precompressed files.
//! - [`bench`]: `bench`, every benchmark with one command (server load through
//!   `farm-chat-bench`, the widget in Chromium, the bundle size) into one JSON file.
//! - [`e2e`]: `e2e`, the end-to-end fault suite through `farm-chat-chaos` (part of `test`).
//! - [`fuzz`]: `fuzz`, the cargo fuzz targets of `fuzz/` for a given time (part of `test`,
//!   20 s each).
//! - [`font`]: `report-font`, the PDF report's embedded font subset.
//! - [`pageload`]: a real page load in Chromium: the launcher before `load`, the wasm
//!   compressed after it, and the bench's throttled click-to-composer timing.
//! - [`webdriver`]: just enough WebDriver to load a page in headless Chromium and check it.
//! - [`proc`]: running commands with the tools on `PATH`, and a tiny HTTP/1.1 GET.

mod bench;
mod bundle;
mod cluster;
mod e2e;
mod font;
mod fuzz;
mod pageload;
/// The API's paths, spelled once: the protocol crate's own file, compiled in here so the
/// project command stays free of the protocol's dependencies.
#[path = "../../protocol/src/paths.rs"]
#[expect(
    dead_code,
    unreachable_pub,
    reason = "xtask names only the routes it drives"
)]
mod paths;
mod proc;
mod product;
mod server;
mod suites;
mod support_chat;
mod tools;
mod webdriver;

use std::process::ExitCode;

const USAGE: &str = "\
cargo xtask <command> [options]

Commands:
  bootstrap        Install what is missing (idempotent): wasm32 target, Chromium + chromedriver,
                   wasm-opt, wasm-bindgen CLI (locked version), trunk. Tools go into .tools/.
  run [ARGS…]      Build the widget (release) and serve it with the API on
                   http://127.0.0.1:3000/ (ARGS go to farm-chat-dev-server, e.g. --addr).
  run --cluster [N] [--no-tls] [ARGS…]
                   The same as N instances (default 3) on a throwaway PostgreSQL and Redis
                   under target/, both on TLS only (a CA made for the run; --no-tls: Unix
                   sockets), behind a round-robin balancer on http://127.0.0.1:3000/.
  test [--e2e-runs N] [--e2e-cluster-runs N] [--only native|browser|page|cluster|e2e|fuzz]
                   Run every suite: native unit + integration tests, browser tests in headless
                   Chromium against a dev-server it starts, a smoke test of the built page, and
                   the end-to-end fault suite (N seeded fault runs, default 3).
  dev              trunk serve (hot reload) on http://127.0.0.1:8080/ with /api proxied to a
                   dev-server on 127.0.0.1:3000.
  size             Transfer size of the release build in dist/: raw, gzip -9 and Brotli per file,
                   what the host page fetches before its load event, and the whole widget.
  bundle           trunk's post-build hook: writes the launcher farm-chat.js and (release) the
                   .br/.gz variants the dev-server serves.
  bench [--big] [--cluster N] [--out FILE] [-- FLAGS]
                   Every benchmark (server load, widget in Chromium, bundle size) into
                   target/bench/results.json; FLAGS go to farm-chat-bench. Not run by test.
  e2e [--runs N] [--seed S] [--cluster N]
                   End-to-end fault suite in Chromium through the chaos proxy (test runs it
                   with 3 seeded runs; `test --e2e-runs 100` for the full count). With
                   --cluster N: against N instances on PostgreSQL + Redis, random instances
                   killed and restarted (test: 2 runs; `e2e --cluster 3 --runs 100`).
  fuzz [--minutes N | --seconds N] [TARGET…]
                   Coverage-guided fuzzing (cargo fuzz, libFuzzer) of every parser that takes
                   outside input, each target for N (default 60 s); test runs each for 20 s.
                   Targets: api_request, event_decoder, sse_framing, ids_and_tokens.
  report-font      Rebuild the PDF report's embedded font subset (dev-server/assets).

Environment:
  FARM_CHAT_TOOLS_DIR   where tools are installed (default: <repo>/.tools)
  CHROMIUM, CHROMEDRIVER  browser and driver (default: /usr/bin/chromium, /usr/bin/chromedriver)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((c, rest)) => (c.as_str(), rest),
        None => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        "bootstrap" => tools::bootstrap().map(|_| ()),
        "run" => product::run(rest),
        "test" => suites::test(rest),
        "dev" => product::dev(),
        "bench" => bench::bench(rest),
        "e2e" => e2e::e2e(rest),
        "fuzz" => fuzz::fuzz(rest),
        "size" => tools::bootstrap()
            .and_then(|_| product::build_release())
            .and_then(|()| product::size().map(|_| ())),
        "report-font" => font::report_font(),
        "bundle" => bundle::bundle(),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
