//! `cargo xtask test`: every suite, each runner's own output, then one summary table.
//! A failing suite does not stop the others; the command fails if any failed.

use std::{path::Path, time::Duration};

use crate::{
    proc::{cmd, http_get, root, run},
    product,
    server::DevServer,
    tools::{self, Browser},
};

pub(crate) fn test() -> Result<(), String> {
    let browser = tools::bootstrap()?;
    let mut results: Vec<(&str, Result<(), String>)> = Vec::new();

    banner("native: unit and integration tests of every crate (cargo test)");
    results.push((
        "native (cargo test --workspace)",
        run(cmd("cargo").args(["test", "--workspace"])),
    ));

    banner("browser: wasm-bindgen-test in headless Chromium, against a dev-server");
    results.push(("browser (wasm-bindgen-test)", browser_tests(&browser)));

    banner("page: the run command's build, served and loaded in headless Chromium");
    results.push(("page smoke (release build)", page_smoke(&browser)));

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
    let server = DevServer::start(&[
        "--addr".into(),
        "127.0.0.1:0".into(),
        "--test-mode".into(),
        "--db".into(),
        ":memory:".into(),
        "--assistant-speed".into(),
        "fast".into(),
        "--static-dir".into(),
        empty.display().to_string(),
    ])?;
    let result = run(cmd("cargo")
        .args([
            "test",
            "-p",
            "farm-chat",
            "--target",
            "wasm32-unknown-unknown",
            "--test",
            "browser",
        ])
        .env("CHROMEDRIVER", &browser.chromedriver)
        .env(
            "WASM_BINDGEN_TEST_WEBDRIVER_JSON",
            root().join("webdriver.json"),
        )
        .env("WASM_BINDGEN_TEST_TIMEOUT", "120")
        .env("FARM_CHAT_TEST_API_BASE", server.api_base()));
    if result.is_err() {
        println!("dev-server log: {}", server.log.display());
    }
    result
}

/// What a user gets from `cargo xtask run`: the release build served by the dev-server, the
/// page answering 200, its wasm served as `application/wasm`, and the widget mounted in a real
/// browser and talking to the API of the same origin.
fn page_smoke(browser: &Browser) -> Result<(), String> {
    product::build_release()?;
    // As `run` serves it, but with a throwaway store: tests leave no files behind.
    let server = DevServer::start(&[
        "--addr".into(),
        "127.0.0.1:0".into(),
        "--db".into(),
        ":memory:".into(),
        "--static-dir".into(),
        "dist".into(),
    ])?;
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
        "the page's wasm is served as application/wasm",
        match wasm_path(&html) {
            None => Err("no .wasm referenced by the page".into()),
            Some(path) => match http_get(server.addr, &path) {
                Ok((200, head, body))
                    if head.contains("content-type: application/wasm")
                        && body.starts_with(b"\0asm") =>
                {
                    Ok(())
                }
                Ok((status, head, _)) => Err(format!("GET {path}: HTTP {status}\n{head}")),
                Err(e) => Err(e),
            },
        },
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
        "in Chromium both pages' widgets mount, sign in (token, then cookie) and go live",
        page_in_browser(browser, &format!("http://{}", server.addr)),
    ));

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
        println!("dev-server log: {}", server.log.display());
        Err(format!("{failed} page check(s) failed"))
    }
}

/// The first `/….wasm` path the page references (trunk writes it into a module script).
fn wasm_path(html: &str) -> Option<String> {
    let end = html.find(".wasm")? + ".wasm".len();
    let start = html[..end].rfind(['\'', '"'])? + 1;
    let path = &html[start..end];
    path.starts_with('/').then(|| path.to_owned())
}

/// Loads the pages in headless Chromium (WebDriver) and waits for each widget to be live: first
/// `public/embed.html` (no cookie yet: it must work on the token alone), then `/` (cookie sign-in).
/// Opens each chat panel and saves screenshots in `target/xtask/`.
fn page_in_browser(browser: &Browser, origin: &str) -> Result<(), String> {
    let dir = root().join("target").join("xtask");
    let profile = dir.join(format!("chromium-profile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let result = (|| {
        let session = crate::webdriver::Session::start(browser, &profile)?;
        let live = "const q = (id) => document.querySelector(`[data-testid=${id}]`);\
            return q('farm-chat-launcher') !== null && q('server-health')?.dataset.state === 'ok' \
            && q('connection-status')?.dataset.state === 'connected';";
        for (path, shot) in [("/public/embed.html", "embed.png"), ("/", "page.png")] {
            session.open(&format!("{origin}{path}"))?;
            session
                .wait_for(live, Duration::from_secs(30))
                .map_err(|e| format!("{path}: {e}"))?;
            session.script(
                "document.querySelector('[data-testid=launcher-toggle]').click(); return true;",
            )?;
            session.wait_for(
                "return !document.querySelector('[data-testid=chat-panel]').hidden;",
                Duration::from_secs(10),
            )?;
            let shot = dir.join(shot);
            session.screenshot(&shot)?;
            println!(
                "  (screenshot of {path} with the chat open: {})",
                shot.display()
            );
        }
        Ok(())
    })();
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
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(std::iter::once(format!(
        "--user-data-dir={}",
        profile.display()
    )))
    .collect()
}
