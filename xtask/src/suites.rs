//! `cargo xtask test`: every suite, each runner's own output, then one summary table.
//! A failing suite does not stop the others; the command fails if any failed.

use std::{net::SocketAddr, path::Path, time::Duration, time::Instant};

use crate::{
    proc::{cmd, http_get, root, run},
    product,
    server::{DevServer, Store},
    tools::{self, Browser},
};

/// `--e2e-runs N` sets the fault suite's seeded runs (default 3, so CI stays quick; the issue's
/// 100 runs: `cargo xtask test --e2e-runs 100`). `--only native|browser|page|e2e` runs one
/// suite (while working on it; CI runs them all).
pub(crate) fn test(args: &[String]) -> Result<(), String> {
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let runs = flag("--e2e-runs").unwrap_or_else(|| "3".into());
    let cluster_runs = flag("--e2e-cluster-runs").unwrap_or_else(|| "2".into());
    let only = flag("--only");
    let wanted = |suite: &str| only.as_deref().is_none_or(|o| o == suite);
    let browser = tools::bootstrap()?;
    let mut results: Vec<(&str, Result<(), String>)> = Vec::new();

    if wanted("native") {
        banner("native: unit and integration tests of every crate (cargo test)");
        results.push((
            "native (cargo test --workspace)",
            run(cmd("cargo").args(["test", "--workspace"])),
        ));
    }
    if wanted("browser") {
        banner("browser: wasm-bindgen-test in headless Chromium, against a dev-server");
        results.push(("browser (wasm-bindgen-test)", browser_tests(&browser)));
    }
    if wanted("page") {
        banner("page: the run command's build, served and loaded in headless Chromium");
        results.push(("page smoke (release build)", page_smoke(&browser)));
    }
    if wanted("cluster") {
        banner(
            "cluster: the conformance rules against 3 instances on PostgreSQL + Redis, each \
             request to a random one",
        );
        results.push(("cluster conformance (3 instances)", cluster_conformance()));
    }
    if wanted("e2e") {
        banner("e2e: the fault suite in headless Chromium, through the chaos proxy");
        results.push((
            "e2e fault suite",
            crate::e2e::e2e(&["--runs".into(), runs, "--seed".into(), "1".into()]),
        ));
        banner(
            "e2e cluster: the fault suite against 3 instances on PostgreSQL + Redis, each \
             connection to a random one, instances killed and restarted",
        );
        results.push((
            "e2e fault suite, cluster of 3",
            crate::e2e::e2e(&[
                "--cluster".into(),
                "3".into(),
                "--runs".into(),
                cluster_runs,
                "--seed".into(),
                "101".into(),
            ]),
        ));
    }
    if wanted("fuzz") {
        banner("fuzz: every fuzz target, 20 s each (cargo fuzz, libFuzzer)");
        results.push((
            "fuzz (20 s per target)",
            crate::fuzz::run_targets(&crate::fuzz::TARGETS.map(String::from), 20)
                .and_then(|outcomes| crate::fuzz::report(&outcomes)),
        ));
    }
    if results.is_empty() {
        return Err("--only takes native, browser, page, cluster, e2e or fuzz".into());
    }

    banner("summary");
    let mut failed = 0;
    for (suite, result) in &results {
        match result {
            Ok(()) => println!("  ok      {suite}"),
            Err(e) => {
                failed += 1;
                println!("  FAILED  {suite}: {e}");
            }
        }
    }
    println!("suites: {} passed, {failed} failed", results.len() - failed);
    if failed == 0 {
        Ok(())
    } else {
        Err(format!("{failed} suite(s) failed"))
    }
}

fn banner(title: &str) {
    println!("\n==== {title}");
}

fn browser_tests(browser: &Browser) -> Result<(), String> {
    // The runner serves the test page from its own random loopback port, so the server runs in
    // test mode (loopback origins allowed) and the test learns its URL at compile time.
    let empty = root().join("target").join("xtask").join("no-static");
    std::fs::create_dir_all(&empty).map_err(|e| e.to_string())?;
    let args = |extra: &[String]| {
        let mut args: Vec<String> = vec![
            "--addr".into(),
            "127.0.0.1:0".into(),
            "--test-mode".into(),
            "--db".into(),
            ":memory:".into(),
            "--assistant-speed".into(),
            "fast".into(),
            "--static-dir".into(),
            empty.display().to_string(),
        ];
        args.extend_from_slice(extra);
        args
    };
    let server = DevServer::start(&args(&[]))?;
    // A second server whose assistant is a model: the scripted one, on OpenAI's wire.
    let model =
        farm_chat_testenv::model::ModelServer::start(farm_chat_testenv::model::Wire::OpenAi)
            .map_err(|e| format!("the scripted model server: {e}"))?;
    let model_server = DevServer::start(&args(&[
        "--assistant".into(),
        "openai".into(),
        "--model-base-url".into(),
        model.openai_base(),
        "--model".into(),
        "farm-test-model".into(),
    ]))?;
    let mut test = cmd("cargo");
    test.args([
        "test",
        "-p",
        "farm-chat",
        "--target",
        "wasm32-unknown-unknown",
        "--test",
        "browser",
    ]);
    browser_test_env(&mut test, browser);
    let result = run(test
        .env("FARM_CHAT_TEST_API_BASE", server.api_base())
        .env("FARM_CHAT_TEST_MODEL_API_BASE", model_server.api_base())
        .env("FARM_CHAT_TEST_METRICS_TOKEN", crate::server::METRICS_TOKEN));
    if result.is_err() {
        println!("dev-server log: {}", server.log.display());
        println!("dev-server (model) log: {}", model_server.log.display());
    }
    result
}

/// `farm-chat-conformance --base-url` against `addr`, its table printed as it comes, its JSON
/// kept in `target/xtask/conformance.json`.
fn conformance(addr: std::net::SocketAddr) -> Result<(), String> {
    run(cmd("cargo").args(["build", "--quiet", "-p", "farm-chat-conformance"]))?;
    let bin = crate::server::target_dir()
        .join("debug")
        .join("farm-chat-conformance");
    let json = root().join("target").join("xtask").join("conformance.json");
    run(std::process::Command::new(bin)
        .arg("--base-url")
        .arg(format!("http://{addr}"))
        .arg("--json")
        .arg(&json))
}

/// The conformance rules against a cluster: three instances on one PostgreSQL and Redis,
/// behind the chaos proxy sending each connection to a random instance. A client's send, its
/// stream and its resume land on different instances, and every rule must still hold.
fn cluster_conformance() -> Result<(), String> {
    let bin = crate::server::build()?;
    run(cmd("cargo").args(["build", "--quiet", "-p", "farm-chat-chaos"]))?;
    let mut cluster = crate::cluster::Cluster::start(3, &bin, &[])?;
    cluster.balance("127.0.0.1:0", "random", 7)?;
    let front = cluster.front.ok_or("the balancer has no address")?;
    conformance(front)
}

/// What a user gets from `cargo xtask run`: the release build served by the dev-server, the
/// page answering 200, its wasm served as `application/wasm`, and the widget mounted in a real
/// browser and talking to the API of the same origin.
fn page_smoke(browser: &Browser) -> Result<(), String> {
    product::build_release()?;
    // As `run` serves it, on a store of its own (a file, so the server can be killed and
    // restarted on it mid-test), removed afterwards.
    let dir = root().join("target").join("xtask");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let store = Store::new(&dir, "page-smoke");
    let args = |addr: &str| -> Vec<String> {
        ["--addr", addr, "--db", &store.arg(), "--static-dir", "dist"]
            .map(String::from)
            .to_vec()
    };
    let mut server = DevServer::start(&args("127.0.0.1:0"))?;
    let mut checks: Vec<(&str, Result<(), String>)> = Vec::new();

    let page = http_get(server.addr, "/");
    let html = match &page {
        Ok((200, _, body)) => String::from_utf8_lossy(body).into_owned(),
        Ok((status, _, _)) => format!("<!-- HTTP {status} -->"),
        Err(_) => String::new(),
    };
    checks.push((
        "GET / answers 200 with a <farm-chat> host",
        match &page {
            Ok((200, _, _)) if html.contains("<farm-chat") => Ok(()),
            Ok((status, _, _)) => Err(format!(
                "HTTP {status}, <farm-chat> present: {}",
                html.contains("<farm-chat")
            )),
            Err(e) => Err(e.clone()),
        },
    ));

    checks.push((
        "the page loads only the launcher, which names the hashed wasm: served as \
         application/wasm, Brotli or gzip by Accept-Encoding, cached for a year",
        wasm_served(server.addr, &html),
    ));
    checks.push((
        "in Chromium the launcher's button shows before the page's load event with no wasm \
         fetched; then the widget loads by itself, its wasm Brotli-compressed",
        crate::pageload::check(browser, server.addr),
    ));

    checks.push((
        "in Chromium a host page on another origin loads the launcher and the widget from the \
         widget's server (CORS), signs in with its token provider and goes live",
        crate::pageload::cross_origin(browser),
    ));
    checks.push((
        "GET /public/embed.html (the token-provider host page) answers 200",
        match http_get(server.addr, "/public/embed.html") {
            Ok((200, _, body)) if String::from_utf8_lossy(&body).contains("token-provider") => {
                Ok(())
            }
            Ok((status, _, _)) => Err(format!("HTTP {status}")),
            Err(e) => Err(e),
        },
    ));
    checks.push((
        "in Chromium both pages' widgets mount, sign in (token, then cookie) and go live; \
         in ja and en the assistant streams progress, a cow table and a health report; \
         after a kill -9 and restart of the server the widget reconnects",
        page_in_browser(browser, &mut server, &args),
    ));
    checks.push((
        "ten tabs of one user share one stream; closing the leader tab hands it over \
         without losing or duplicating a message",
        tabs_in_browser(browser, server.addr),
    ));
    checks.push((
        "in two browsers, at 390×844 and 1280×900, in ja and en: a farmer writes to support from \
         the widget's home; support sees it in the inbox with its unread count, opens it, sees \
         the farmer typing and replies; the farmer sees the reply and the read receipt",
        crate::support_chat::two_browsers(browser, server.addr),
    ));
    checks.push((
        "in Chromium the example platform page (public/platform.html) drives the widget through \
         its JS API with an async token provider: a send called before the widget is ready \
         resolves with the stored id; open, close and openConversation work and fire their \
         events; a runtime locale change mounts the widget again in English",
        platform_page(browser, server.addr),
    ));
    checks.push((
        "farm-chat-conformance passes every rule against the server as `run` serves it",
        conformance(server.addr),
    ));
    let log = server.log.clone();
    drop(server);
    drop(store);

    let mut failed = 0;
    for (check, result) in &checks {
        match result {
            Ok(()) => println!("  ok      {check}"),
            Err(e) => {
                failed += 1;
                println!("  FAILED  {check}: {e}");
            }
        }
    }
    println!(
        "page smoke: {} passed, {failed} failed",
        checks.len() - failed
    );
    if failed == 0 {
        Ok(())
    } else {
        println!("dev-server log: {}", log.display());
        Err(format!("{failed} page check(s) failed"))
    }
}

/// The page references the launcher and no wasm; the launcher names the content-hashed wasm,
/// which the server sends as each `Accept-Encoding` asks.
fn wasm_served(addr: std::net::SocketAddr, html: &str) -> Result<(), String> {
    if !html.contains("src=\"/farm-chat.js\"") || html.contains(".wasm") {
        return Err("the page should load /farm-chat.js and name no wasm".into());
    }
    let launcher = match http_get(addr, "/farm-chat.js")? {
        (200, _, body) => String::from_utf8_lossy(&body).into_owned(),
        (status, ..) => return Err(format!("GET /farm-chat.js: HTTP {status}")),
    };
    let end = launcher
        .find("_bg.wasm")
        .ok_or("the launcher names no wasm")?
        + "_bg.wasm".len();
    let start = launcher[..end].rfind('"').ok_or("no quoted wasm name")? + 1;
    let path = format!("/{}", &launcher[start..end]);
    for (accept, encoding) in [("br, gzip", Some("br")), ("gzip", Some("gzip")), ("", None)] {
        let (status, head, body) =
            crate::proc::http_with(addr, "GET", &path, None, &[("Accept-Encoding", accept)])?;
        let has = |h: &str| head.lines().any(|l| l.trim().eq_ignore_ascii_case(h));
        let ok = status == 200
            && has("content-type: application/wasm")
            && has("cache-control: public, max-age=31536000, immutable")
            && has("vary: accept-encoding")
            && match encoding {
                Some(e) => has(&format!("content-encoding: {e}")),
                None => !head.contains("content-encoding") && body.starts_with(b"\0asm"),
            };
        if !ok {
            return Err(format!(
                "GET {path} (Accept-Encoding: {accept:?}): HTTP {status}\n{head}"
            ));
        }
    }
    Ok(())
}

/// In-page helpers for scripts: `q(testid)` / `qa(testid)` look inside the (first) widget's
/// shadow root.
pub(crate) const IN_WIDGET: &str = "const w = document.querySelector('farm-chat')?.shadowRoot; \
    const q = (id) => w?.querySelector(`[data-testid=${id}]`); \
    const qa = (id) => w ? [...w.querySelectorAll(`[data-testid=${id}]`)] : [];";

/// What the page smoke asks the assistant, per language: the estrus list, then a health report.
const QUESTIONS: [(&str, &str, [&str; 2]); 2] = [
    (
        "ja",
        "u-farmer",
        [
            "発情予定の牛のリストを作って",
            "14番の牛の健康状態を分析して",
        ],
    ),
    (
        "en",
        "u-other",
        [
            "Which cows are due for estrus?",
            "Analyse the health of cow 14",
        ],
    ),
];

/// Loads the pages in headless Chromium (WebDriver) and uses them as a user would:
/// - `public/embed.html` first (no cookie yet: it must work on the token alone);
/// - then the dashboard `/` in ja (u-farmer) and en (u-other): ask for the estrus list and a
///   health report, then kill -9 the dev-server, see the widget reconnecting, restart the
///   server on the same port and store, and see it live again.
///
/// Saves a screenshot of each state in `target/xtask/` (they are the widget's documentation).
fn page_in_browser(
    browser: &Browser,
    server: &mut DevServer,
    args: &dyn Fn(&str) -> Vec<String>,
) -> Result<(), String> {
    let origin = format!("http://{}", server.addr);
    let dir = root().join("target").join("xtask");
    let profile = dir.join(format!("chromium-profile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let session = crate::webdriver::Session::start(browser, &profile)?;
    let result = (|| {
        let run = |script: &str| session.script(&format!("{IN_WIDGET} {script}"));
        let wait = |what: &str, script: &str, secs: u64| {
            session
                .wait_for(&format!("{IN_WIDGET} {script}"), Duration::from_secs(secs))
                .map_err(|_| format!("{what}: not within {secs} s"))
        };
        let shot = |name: &str| -> Result<(), String> {
            let path = dir.join(name);
            session.screenshot(&path)?;
            println!("  (screenshot: {})", path.display());
            Ok(())
        };
        let live = "return q('farm-chat-launcher') != null \
            && q('connection-status')?.dataset.state === 'connected';";
        let open_panel = || -> Result<(), String> {
            run("q('launcher-toggle').click(); return true;")?;
            wait(
                "the chat panel opens",
                "return !q('chat-panel').hidden;",
                10,
            )
        };
        let ask = |text: &str| -> Result<(), String> {
            run(&format!(
                "const t = q('composer'); t.value = {text:?}; \
                 t.dispatchEvent(new Event('input', {{bubbles: true}})); return true;"
            ))?;
            // The button enables once the widget has seen the input (a render later).
            wait("the send button enables", "return !q('send').disabled;", 5)?;
            run("q('send').click(); return true;").map(drop)
        };

        session.open(&format!("{origin}/public/embed.html"))?;
        wait("embed.html: the widget goes live on a token", live, 30)?;
        open_panel()?;
        shot("embed.png")?;

        for (lang, user, [estrus, health]) in QUESTIONS {
            session.open(&format!("{origin}/?lang={lang}&demo-user={user}"))?;
            wait(&format!("/ ({lang}): the widget goes live"), live, 30)?;
            wait(
                &format!("/ ({lang}): the widget speaks {lang}"),
                &format!("return q('chat-widget')?.lang === '{lang}';"),
                5,
            )?;
            open_panel()?;
            shot(&format!("page-{lang}.png"))?;
            ask(estrus)?;
            wait(
                "the estrus task's progress bar, mid-way",
                "const p = qa('progress').at(-1); if (!p) return false; \
                 const v = +p.getAttribute('aria-valuenow'); \
                 return v > 0 && v < +p.getAttribute('aria-valuemax');",
                30,
            )?;
            shot(&format!("{lang}-progress.png"))?;
            wait("the cow table", "return qa('cow-row').length > 0;", 60)?;
            shot(&format!("{lang}-cow-table.png"))?;
            ask(health)?;
            wait(
                "the health report",
                "return q('health-report') != null;",
                60,
            )?;
            shot(&format!("{lang}-health.png"))?;
            // The explanation after it streams in as markdown: caught mid-stream when the
            // poll is quick enough (best effort), and always once finished, at a desktop's
            // and a phone's size.
            if wait(
                "the answer streaming",
                "const a = qa('answer').at(-1);                  return !!a && a.dataset.streaming === 'true' && a.textContent.length > 12;",
                10,
            )
            .is_ok()
            {
                shot(&format!("{lang}-answer-streaming.png"))?;
            }
            wait(
                "the answer's markdown, finished",
                "const a = qa('answer').at(-1);                  return !!a && a.dataset.streaming === 'false'                    && a.querySelectorAll('strong').length > 0 && a.querySelectorAll('li').length > 0;",
                30,
            )?;
            shot(&format!("{lang}-answer-desktop.png"))?;
            session.set_size(390, 844)?;
            run("qa('answer').at(-1).scrollIntoView({block: 'end'}); return true;")?;
            shot(&format!("{lang}-answer-phone.png"))?;
            session.set_size(1280, 900)?;

            server.kill();
            wait(
                "the reconnecting state after a kill -9 of the server",
                "return q('connection-status')?.dataset.state === 'reconnecting';",
                30,
            )?;
            shot(&format!("{lang}-reconnecting.png"))?;
            *server = DevServer::start(&args(&server.addr.to_string()))?;
            wait(
                "connected again after the restart",
                "return q('connection-status')?.dataset.state === 'connected';",
                60,
            )?;
            wait(
                "one cow table and one health report after the reconnect",
                "return qa('cow-table').length === 1 && qa('health-report').length === 1;",
                10,
            )?;
        }
        Ok(())
    })();
    if result.is_err() {
        let path = dir.join("page-failure.png");
        if session.screenshot(&path).is_ok() {
            println!("  (the page when it failed: {})", path.display());
        }
    }
    drop(session);
    let _ = std::fs::remove_dir_all(&profile);
    result
}

/// The example platform page (`public/platform.html`) in Chromium, through its own buttons.
fn platform_page(browser: &Browser, addr: SocketAddr) -> Result<(), String> {
    let dir = root().join("target").join("xtask");
    let profile = dir.join(format!("chromium-platform-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let session = crate::webdriver::Session::start(browser, &profile)?;
    let result = (|| {
        let page = crate::support_chat::Side {
            session: &session,
            who: "platform page",
        };
        let run = |script: &str| page.run(script);
        let wait = |what: &str, script: &str, secs: u64| page.wait(what, script, secs);
        let events =
            |name: &str| format!("(window.platformEvents || []).filter(e => e.name === '{name}')");
        session.open(&format!("http://{addr}/public/platform.html"))?;
        wait(
            "the element is defined",
            "return customElements.get('farm-chat') != null;",
            20,
        )?;
        // Called before the widget is ready: queued, then sent.
        run(
            "window.__sent = null; document.querySelector('farm-chat').send('埋め込みAPIから送信') \
             .then(id => window.__sent = id, e => window.__sent = 'error: ' + e.message); return true;",
        )?;
        wait(
            "the queued send resolves with the stored id",
            "return (window.__sent || '').startsWith('m-');",
            30,
        )?;
        wait(
            "farm-chat:ready, then farm-chat:message for that send",
            &format!(
                "return {}.length === 1 && {}.some(e => e.detail.messageId === window.__sent);",
                events("farm-chat:ready"),
                events("farm-chat:message")
            ),
            20,
        )?;
        let click = |id: &str| {
            run(&format!(
                "document.getElementById('{id}').click(); return true;"
            ))
        };
        click("open")?;
        wait(
            "open() opens the panel and fires farm-chat:open",
            &format!(
                "return !q('chat-panel').hidden && {}.length === 1;",
                events("farm-chat:open")
            ),
            10,
        )?;
        click("support")?;
        wait(
            "openConversation('support')",
            "return q('conversation-title')?.textContent === 'サポート';",
            10,
        )?;
        click("close")?;
        wait(
            "close() fires farm-chat:close",
            &format!(
                "return q('chat-panel').hidden && {}.length === 1;",
                events("farm-chat:close")
            ),
            10,
        )?;
        wait(
            "farm-chat:unread for the assistant's reply, which came while the panel was closed",
            &format!(
                "return {}.some(e => e.detail.count >= 1);",
                events("farm-chat:unread")
            ),
            20,
        )?;
        click("toggle")?;
        wait(
            "toggle() opens",
            &format!(
                "return !q('chat-panel').hidden && {}.length === 2;",
                events("farm-chat:open")
            ),
            10,
        )?;
        click("assistant")?;
        wait(
            "openConversation('assistant')",
            "return q('conversation-title')?.textContent === '牧場アシスタント';",
            10,
        )?;
        click("toggle")?;
        wait(
            "toggle() closes",
            &format!(
                "return q('chat-panel').hidden && {}.length === 2;",
                events("farm-chat:close")
            ),
            10,
        )?;
        click("english")?;
        wait(
            "locale=en at runtime: the widget again, in English",
            &format!(
                "return q('farm-chat-launcher')?.lang === 'en' && {}.length === 2;",
                events("farm-chat:ready")
            ),
            30,
        )?;
        session.screenshot(&dir.join("platform.png"))?;
        click("sign-out")?;
        wait(
            "the platform signs out: farm-chat:signed-out",
            &format!("return {}.length === 1;", events("farm-chat:signed-out")),
            30,
        )?;
        Ok(())
    })();
    if result.is_err() {
        let _ = session.screenshot(&dir.join("platform-failure.png"));
    }
    drop(session);
    let _ = std::fs::remove_dir_all(&profile);
    result
}

/// What wasm-bindgen-test needs to drive our Chromium.
pub(crate) fn browser_test_env(test: &mut std::process::Command, browser: &Browser) {
    test.env("CHROMEDRIVER", &browser.chromedriver)
        .env(
            "WASM_BINDGEN_TEST_WEBDRIVER_JSON",
            root().join("webdriver.json"),
        )
        .env("WASM_BINDGEN_TEST_TIMEOUT", "300");
}

/// A number from the dev-server's `/metrics`.
fn metric(addr: SocketAddr, name: &str) -> Result<i64, String> {
    let token = format!("Bearer {}", crate::server::METRICS_TOKEN);
    let (_, _, body) =
        crate::proc::http_with(addr, "GET", "/metrics", None, &[("Authorization", &token)])?;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .ok_or_else(|| format!("no {name} in /metrics"))
}

/// Issue 6 with real tabs: 1, 5 and 10 tabs of the dashboard (one user) must hold one stream
/// between them; then the leader tab is closed three times while messages are sent, and each
/// time a new tab must take over (the gap, from closing the tab to the server accepting the
/// new leader's stream, is printed) and every remaining tab must show every message once.
fn tabs_in_browser(browser: &Browser, addr: SocketAddr) -> Result<(), String> {
    let dir = root().join("target").join("xtask");
    let profile = dir.join(format!("chromium-tabs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let session = crate::webdriver::Session::start(browser, &profile)?;
    let result = (|| {
        let url = format!("http://{addr}/?demo-user=u-farmer");
        let live = format!(
            "{IN_WIDGET} const s = q('connection-status'); \
             return s?.dataset.state === 'connected' && ['leader', 'follower'].includes(s?.dataset.role);"
        );
        let mut tabs = vec![session.current_tab()?];
        session.open(&url)?;
        session.wait_for(&live, Duration::from_secs(30))?;
        let mut counts = Vec::new();
        for target in [1, 5, 10] {
            while tabs.len() < target {
                let tab = session.new_tab()?;
                session.switch_to(&tab)?;
                session.open(&url)?;
                session.wait_for(&live, Duration::from_secs(30))?;
                tabs.push(tab);
            }
            // Every tab is live (checked as it opened); give the server a moment to see closes.
            std::thread::sleep(Duration::from_millis(500));
            counts.push((target, metric(addr, "farm_chat_open_streams")?));
        }
        let shown: Vec<String> = counts
            .iter()
            .map(|(t, n)| format!("{t} tabs → {n}"))
            .collect();
        println!("  (server-side streams: {})", shown.join(", "));
        if counts.iter().any(|&(_, n)| n != 1) {
            return Err(format!("expected one stream: {}", shown.join(", ")));
        }

        let (_, _, body) = crate::proc::http(
            addr,
            "POST",
            "/api/session",
            Some(r#"{"userId":"u-farmer"}"#),
        )?;
        let token = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["token"].as_str().map(str::to_owned))
            .ok_or("no token from POST /api/session")?;
        let bearer = format!("Bearer {token}");
        let mut texts = Vec::new();
        let mut gaps = Vec::new();
        for round in 0..3 {
            let mut leader = None;
            for tab in &tabs {
                session.switch_to(tab)?;
                let role = session.script(&format!(
                    "{IN_WIDGET} return q('connection-status')?.dataset.role ?? '';"
                ))?;
                if role == "leader" {
                    leader = Some(tab.clone());
                }
            }
            let leader = leader.ok_or("no tab is the leader")?;
            let opened = metric(addr, "farm_chat_streams_opened_total")?;
            session.switch_to(&leader)?;
            session.close_tab()?;
            let closed = Instant::now();
            tabs.retain(|t| *t != leader);
            // Messages sent while the lock changes hands.
            for i in 0..2 {
                let text = format!("引き継ぎ {round}-{i} ({})", std::process::id());
                let body = serde_json::json!({
                    "conversationId": "c-u-farmer-assistant",
                    "text": text,
                    "idempotencyKey": format!("handover-{}-{round}-{i}", std::process::id()),
                });
                let (status, _, _) = crate::proc::http_with(
                    addr,
                    "POST",
                    crate::paths::api::SEND,
                    Some(&body.to_string()),
                    &[("Authorization", &bearer)],
                )?;
                if status != 201 {
                    return Err(format!("send during the handover: HTTP {status}"));
                }
                texts.push(text);
            }
            let gap = loop {
                if metric(addr, "farm_chat_streams_opened_total")? > opened {
                    break closed.elapsed();
                }
                if closed.elapsed() > Duration::from_secs(10) {
                    return Err("no tab took the stream over within 10 s".into());
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            gaps.push(gap);
            session.switch_to(&tabs[0])?;
            session.wait_for(&live, Duration::from_secs(10))?;
        }
        let shown: Vec<String> = gaps
            .iter()
            .map(|g| format!("{} ms", g.as_millis()))
            .collect();
        println!(
            "  (handover gap, leader tab closed → new leader's stream accepted: {})",
            shown.join(", ")
        );
        // Every remaining tab shows every message exactly once.
        let list = serde_json::to_string(&texts).map_err(|e| e.to_string())?;
        for tab in &tabs {
            session.switch_to(tab)?;
            session
                .wait_for(
                    &format!(
                        "{IN_WIDGET} const texts = {list}; \
                         return texts.every(t => qa('bubble').filter(b => b.textContent.includes(t)).length === 1);"
                    ),
                    Duration::from_secs(20),
                )
                .map_err(|_| format!("tab {tab}: not every message exactly once"))?;
        }
        if metric(addr, "farm_chat_open_streams")? != 1 {
            return Err("more than one stream after the handovers".into());
        }
        Ok(())
    })();
    drop(session);
    let _ = std::fs::remove_dir_all(&profile);
    result
}

/// Headless Chromium as root on a machine without network: no sandbox, no background traffic.
pub(crate) fn chromium_flags(profile: &Path) -> Vec<String> {
    [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(std::iter::once(format!(
        "--user-data-dir={}",
        profile.display()
    )))
    .collect()
}
