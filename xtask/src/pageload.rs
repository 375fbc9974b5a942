//! What a visitor of a host page downloads for the widget, and when, as the browser itself
//! reports it (Resource Timing's `transferSize`, `encodedBodySize`, `decodedBodySize`) in a real
//! page load of the release build in headless Chromium.
//!
//! - [`check`] (page smoke, part of `cargo xtask test`): the launcher's button shows before
//!   the page's `load` event while the widget's wasm is not fetched yet; the wasm then arrives
//!   Brotli-compressed (`Content-Encoding: br`); what the page fetched for the widget before
//!   `load` stays within its budget; a tap on the button on a phone-sized screen before the
//!   widget is there opens the panel, live and inside the screen, once it is; a download the network dropped shows on the button, and the
//!   next click tries again.
//! - [`cross_origin`] (page smoke): a host page on another origin loads the launcher and the
//!   widget from the widget's server and signs in with its own token provider.
//! - [`measure`] (`cargo xtask bench`, scenario `bundle_size`): the same page on a throttled
//!   link (Chromium's network emulation), with a click on the launcher at the `load` event,
//!   timed to the panel's text box and to a live stream.

use std::{net::SocketAddr, time::Duration};

use serde_json::{Value, json};

use crate::{proc::root, server::DevServer, tools::Browser, webdriver::Session};

/// The most the host page may fetch for the widget before its `load` event.
pub(crate) const CRITICAL_PATH_BUDGET: u64 = 15 * 1024;

/// Installed before any of the page's scripts: at `load`, notes the time and whether the
/// launcher's button is on screen; `__fcEntries()` lists the fetches with their start times
/// (Resource Timing lists a fetch only once it has finished, so "fetched before `load`" is
/// read afterwards, from the start times); with `__fcClickAtLoad`, clicks the button then and
/// times the panel's text box and the stream going live (in-page clock, so no WebDriver delay
/// counts).
const RECORDER: &str = r#"
// What the page's Content-Security-Policy blocked (nothing may be).
window.__fcCsp = [];
document.addEventListener('securitypolicyviolation', (e) =>
  window.__fcCsp.push(`${e.effectiveDirective} ${e.blockedURI}`));
addEventListener('load', () => {
  const host = document.querySelector('farm-chat');
  const shadow = () => host && host.shadowRoot;
  const stub = shadow() && shadow().querySelector('[data-testid=launcher-stub]');
  // Every fetch so far, finished or not yet: `start` says whether it began before `load`.
  const entries = () => performance.getEntriesByType('resource').map((e) => ({
    path: new URL(e.name).pathname, transfer: e.transferSize,
    encoded: e.encodedBodySize, decoded: e.decodedBodySize, start: e.startTime,
  }));
  window.__fcAtLoad = {
    at: performance.now(),
    stub: !!stub && stub.getBoundingClientRect().width > 0,
  };
  window.__fcEntries = entries;
  if (window.__fcClickAtLoad && stub) {
    const clicked = performance.now();
    stub.click();
    const poll = setInterval(() => {
      const s = shadow();
      const area = s && s.querySelector('[data-testid=chat-panel]:not([hidden]) textarea');
      const status = s && s.querySelector('[data-testid=connection-status]');
      if (area && window.__fcPanelAt === undefined) window.__fcPanelAt = performance.now() - clicked;
      if (area && status && status.dataset.state === 'connected') {
        window.__fcLiveAt = performance.now() - clicked;
        clearInterval(poll);
      }
    }, 5);
  }
});
"#;

/// Whether a resource path is one of the widget's files (the launcher, wasm-bindgen's module,
/// the wasm): `/farm-chat.js`, `/farm-chat-<hash>.js`, `/farm-chat-<hash>_bg.wasm`.
fn is_widget(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|name| name.starts_with("farm-chat"))
}

/// A browser with an empty profile (`target/<dir>/<name>`, removed first): no cache or
/// storage carries over from another scenario.
fn fresh_session(browser: &Browser, dir: &str, name: &str) -> Result<Session, String> {
    let profile = root().join("target").join(dir).join(name);
    let _ = std::fs::remove_dir_all(&profile);
    Session::start(browser, &profile)
}

/// A dev-server on a free port with a throwaway store, serving `static_dir`, plus `extra` flags.
fn serve(static_dir: &str, extra: &[&str]) -> Result<DevServer, String> {
    let args: Vec<String> = [
        "--addr",
        "127.0.0.1:0",
        "--db",
        ":memory:",
        "--static-dir",
        static_dir,
    ]
    .iter()
    .chain(extra)
    .map(|a| (*a).to_owned())
    .collect();
    DevServer::start(&args)
}

/// Opens `url` in a fresh tab of `session` with the recorder installed, and waits for `load`.
fn load(session: &Session, url: &str, click_at_load: bool) -> Result<Value, String> {
    let mut source = RECORDER.to_owned();
    if click_at_load {
        source.insert_str(0, "window.__fcClickAtLoad = true;\n");
    }
    session.cdp(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({ "source": source }),
    )?;
    session.open(url)?;
    session.wait_for("return !!window.__fcAtLoad", Duration::from_secs(60))?;
    session.script("return window.__fcAtLoad")
}

/// One of the widget's files as the browser fetched it.
#[derive(Clone, Debug)]
struct Fetched {
    path: String,
    transfer: u64,
    encoded: u64,
    decoded: u64,
    /// The request began before the page's `load` event.
    before_load: bool,
}

/// The widget's files among the page's fetches (`__fcEntries()`), told apart by whether their
/// request began before `load_at` (ms since navigation).
fn widget_resources(resources: &Value, load_at: f64) -> Vec<Fetched> {
    resources
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let path = r["path"].as_str()?.to_owned();
            is_widget(&path).then(|| {
                let n = |k: &str| r[k].as_f64().unwrap_or(0.0) as u64;
                Fetched {
                    transfer: n("transfer"),
                    encoded: n("encoded"),
                    decoded: n("decoded"),
                    before_load: r["start"].as_f64().unwrap_or(f64::MAX) < load_at,
                    path,
                }
            })
        })
        .collect()
}

/// The page smoke's check of the launcher and the compressed wasm (see the module's map).
pub(crate) fn check(browser: &Browser, addr: SocketAddr) -> Result<(), String> {
    let session = fresh_session(browser, "xtask", "chromium-pageload")?;
    let at_load = load(&session, &format!("http://{addr}/"), false)?;
    if at_load["stub"] != Value::Bool(true) {
        return Err("the launcher's button was not on screen at the page's load event".into());
    }
    // Then the widget loads by itself, when the browser is idle.
    session.wait_for(
        &format!(
            "{} return !!q('launcher-toggle') && !q('launcher-stub')",
            crate::suites::IN_WIDGET
        ),
        Duration::from_secs(60),
    )?;
    let load_at = at_load["at"].as_f64().unwrap_or(0.0);
    let all = widget_resources(&session.script("return window.__fcEntries()")?, load_at);
    if let Some(early) = all
        .iter()
        .find(|f| f.before_load && !f.path.ends_with("/farm-chat.js"))
    {
        return Err(format!(
            "{} was requested before the page's load event",
            early.path
        ));
    }
    let critical: u64 = all
        .iter()
        .filter(|f| f.before_load)
        .map(|f| f.transfer)
        .sum();
    if critical == 0 || critical > CRITICAL_PATH_BUDGET {
        return Err(format!(
            "the page fetched {critical} B for the widget before load (budget {CRITICAL_PATH_BUDGET} B)"
        ));
    }
    let Fetched {
        path: wasm,
        encoded,
        decoded,
        ..
    } = all
        .iter()
        .find(|f| f.path.ends_with("_bg.wasm"))
        .ok_or("the widget's wasm was never fetched")?
        .clone();
    if encoded == 0 || encoded >= decoded {
        return Err(format!(
            "{wasm} came uncompressed ({encoded} B on the wire for {decoded} B)"
        ));
    }
    let encoding = session.script_async(&format!(
        "const done = arguments[0]; fetch('{wasm}', {{cache: 'no-store'}}).then((r) => \
         done(r.headers.get('content-encoding') + ' ' + r.headers.get('content-type')))"
    ))?;
    if encoding.as_str() != Some("br application/wasm") {
        return Err(format!(
            "{wasm}: Content-Encoding and Content-Type were {encoding}"
        ));
    }
    println!(
        "  page load: {critical} B for the widget before load (launcher only), then {wasm} \
         {encoded} B Brotli for {decoded} B"
    );
    csp_enforced_and_unbroken(&session)?;
    drop(session);

    // A farmer on a phone who taps at once, before the widget is there: the panel opens when
    // it is, and fits the phone's screen.
    let session = fresh_session(browser, "xtask", "chromium-pageload")?;
    session.set_size(390, 844)?;
    load(&session, &format!("http://{addr}/"), true)?;
    session.wait_for(
        "return window.__fcLiveAt !== undefined",
        Duration::from_secs(60),
    )?;
    let fits = session.script(&format!(
        "{} const r = q('chat-panel').getBoundingClientRect(); \
         return [r.left, r.right, innerWidth, r.top, r.bottom, innerHeight]",
        crate::suites::IN_WIDGET
    ))?;
    let n = |i: usize| fits[i].as_f64().unwrap_or(f64::NAN);
    if !(n(0) >= 0.0 && n(1) <= n(2) && n(3) >= 0.0 && n(4) <= n(5)) {
        return Err(format!(
            "on a 390×844 screen the open panel [left, right, width, top, bottom, height] is {fits}"
        ));
    }
    drop(session);

    // The link drops the widget's download: the button says so, and a click tries again.
    let session = fresh_session(browser, "xtask", "chromium-pageload")?;
    session.cdp("Network.enable", json!({}))?;
    session.cdp("Network.setBlockedURLs", json!({"urls": ["*_bg.wasm"]}))?;
    load(&session, &format!("http://{addr}/"), false)?;
    let stub = format!("{} const b = q('launcher-stub');", crate::suites::IN_WIDGET);
    session
        .wait_for(
            &format!("{stub} return !!b && b.textContent === '読み込めませんでした'"),
            Duration::from_secs(30),
        )
        .map_err(|e| format!("a failed download was not shown on the button: {e}"))?;
    session.cdp("Network.setBlockedURLs", json!({"urls": []}))?;
    session.script(&format!("{stub} b.click(); return true"))?;
    session
        .wait_for(
            &format!(
                "{} return !!w.querySelector('[data-testid=chat-panel]:not([hidden]) textarea')",
                crate::suites::IN_WIDGET
            ),
            Duration::from_secs(60),
        )
        .map_err(|e| format!("a click after a failed download did not open the chat: {e}"))?;
    Ok(())
}

/// The page came with the dev-server's Content-Security-Policy, the browser enforces it (an
/// inline script is refused), and the widget ran under it without a single violation.
fn csp_enforced_and_unbroken(session: &Session) -> Result<(), String> {
    let policy = session.script_async(
        "const done = arguments[0]; fetch(location.href, {cache: 'no-store'}).then((r) => \
         done(r.headers.get('content-security-policy')))",
    )?;
    let policy = policy.as_str().unwrap_or_default();
    if !policy.contains("script-src 'self' 'wasm-unsafe-eval'") {
        return Err(format!("the page's policy is {policy:?}"));
    }
    let violations = session.script("return window.__fcCsp")?;
    if violations.as_array().is_none_or(|v| !v.is_empty()) {
        return Err(format!(
            "the policy blocked part of the widget: {violations}"
        ));
    }
    // WebDriver's own scripts are exempt from the policy, but an inline script they add to
    // the page is not: it must be refused, and reported.
    session.script(
        "const s = document.createElement('script'); \
         s.textContent = 'window.__fcInlineRan = true'; document.head.append(s); return true",
    )?;
    session.wait_for("return window.__fcCsp.length > 0", Duration::from_secs(5))?;
    let inline = session.script("return [window.__fcInlineRan === true, window.__fcCsp]")?;
    if inline[0] != Value::Bool(false)
        || !inline[1][0]
            .as_str()
            .is_some_and(|v| v.starts_with("script-src"))
    {
        return Err(format!("the page's policy is not enforced: {inline}"));
    }
    println!("  page load: the widget works under the page's CSP ({policy})");
    Ok(())
}

/// A farm platform on another origin embeds the widget: its page loads the launcher from the
/// widget's server (a module script, so CORS), the launcher loads the hashed files from there
/// too, and the widget authenticates with the host's token provider. It must go live. The page
/// calls the launcher's `init` the way pages written for the old build (wasm-bindgen's module
/// under the same name) did, so that keeps working too.
pub(crate) fn cross_origin(browser: &Browser) -> Result<(), String> {
    let dir = root()
        .join("target")
        .join("xtask")
        .join("cross-origin-host");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // The host's origin must be known before the widget's server starts (its allow-list), and
    // the widget's before the host's (the host page's policy names it): reserve a port.
    let host_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let host_origin = format!("http://127.0.0.1:{host_port}");
    let widget = serve("dist", &["--allow-origin", &host_origin])?;
    let w = format!("http://{}", widget.addr);
    // What a host page's policy needs to embed the widget from another origin
    // (docs: README, "Content-Security-Policy").
    let policy = format!(
        "default-src 'self'; script-src 'self' {w} 'wasm-unsafe-eval'; connect-src 'self' {w}; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'"
    );
    let host = DevServer::start(&[
        "--addr".into(),
        format!("127.0.0.1:{host_port}"),
        "--db".into(),
        ":memory:".into(),
        "--static-dir".into(),
        dir.display().to_string(),
        "--content-security-policy".into(),
        policy,
    ])?;
    let page = format!(
        r#"<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>host</title></head>
<body><h1>別のサイトの牧場ページ</h1>
<farm-chat api-base="{w}/api" locale="ja" token-provider="hostToken"></farm-chat>
<script type="module" src="/host.js"></script></body></html>"#
    );
    let script = format!(
        r#"const answer = await fetch("{w}/api/session", {{
  method: "POST", headers: {{ "Content-Type": "application/json" }},
  body: JSON.stringify({{ userId: "u-farmer" }}), credentials: "omit",
}});
const {{ token }} = await answer.json();
window.hostToken = () => token;
// The entry point as pages written for the old build call it: still loads the widget.
const {{ default: init }} = await import("{w}/farm-chat.js");
await init({{ module_or_path: "{w}/farm-chat_bg.wasm" }});
"#
    );
    std::fs::write(dir.join("index.html"), page).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("host.js"), script).map_err(|e| e.to_string())?;
    debug_assert_eq!(host.addr.port(), host_port);
    let session = fresh_session(browser, "xtask", "chromium-cross-origin")?;
    session.cdp(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({ "source": RECORDER }),
    )?;
    session.open(&format!("{host_origin}/"))?;
    session
        .wait_for(
            &format!(
                "{} return q('connection-status')?.dataset.state === 'connected'",
                crate::suites::IN_WIDGET
            ),
            Duration::from_secs(60),
        )
        .map_err(|e| format!("the widget on {host_origin} did not go live: {e}"))?;
    let wasm_from_widget = session.script(&format!(
        "return performance.getEntriesByType('resource').some((e) => \
         e.name.startsWith('{w}/') && e.name.endsWith('_bg.wasm') && e.encodedBodySize > 0 \
         && e.encodedBodySize < e.decodedBodySize)"
    ))?;
    if wasm_from_widget != Value::Bool(true) {
        return Err(format!(
            "the wasm did not come compressed from {w} (CORS exposes its sizes)"
        ));
    }
    let violations = session.script("return window.__fcCsp")?;
    if violations.as_array().is_none_or(|v| !v.is_empty()) {
        return Err(format!(
            "the host page's policy blocked part of the widget: {violations}"
        ));
    }
    Ok(())
}

/// The bench's page-load figures on an emulated thin link: `latency_ms` round trip,
/// `kbps` down and up.
pub(crate) fn measure(browser: &Browser, latency_ms: u32, kbps: u32) -> Result<Value, String> {
    let server = serve("dist", &[])?;
    let session = fresh_session(browser, "bench", "chromium-pageload")?;
    session.throttle(latency_ms, kbps * 1000 / 8)?;
    let at_load = load(&session, &format!("http://{}/", server.addr), true)?;
    session.wait_for(
        "return window.__fcLiveAt !== undefined",
        Duration::from_secs(120),
    )?;
    let panel = session.script("return window.__fcPanelAt")?;
    let live = session.script("return window.__fcLiveAt")?;
    let load_at = at_load["at"].as_f64().unwrap_or(0.0);
    let all = widget_resources(&session.script("return window.__fcEntries()")?, load_at);
    let files: Vec<Value> = all
        .iter()
        .map(|f| {
            json!({"path": f.path, "transfer_bytes": f.transfer, "encoded_bytes": f.encoded,
                   "decoded_bytes": f.decoded, "requested_before_load_event": f.before_load})
        })
        .collect();
    Ok(json!({
        "network": {"latency_ms": latency_ms, "down_kbps": kbps, "up_kbps": kbps,
                    "emulation": "chromedriver network_conditions (Chromium)"},
        "load_event_ms": at_load["at"],
        "widget_bytes_before_load_event": all.iter().filter(|f| f.before_load).map(|f| f.transfer).sum::<u64>(),
        "widget_bytes_transferred": all.iter().map(|f| f.transfer).sum::<u64>(),
        "files": files,
        "click_at_load_to_open_panel_ms": panel,
        "click_at_load_to_live_composer_ms": live,
    }))
}

#[cfg(test)]
mod tests {
    use super::is_widget;

    #[test]
    fn the_widgets_files_are_told_from_the_pages() {
        assert!(is_widget("/farm-chat.js"));
        assert!(is_widget("/farm-chat-d79b67d8744afa75_bg.wasm"));
        assert!(!is_widget("/dashboard-3f5095c0edd2b980.css"));
        assert!(!is_widget("/public/favicon.svg"));
        assert!(!is_widget("/api/session"));
    }
}
