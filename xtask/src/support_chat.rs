//! The support chat end to end in two browsers (two Chromium profiles, so two signed-in users):
//! a farmer writes to support from the widget's home; the support user sees the conversation
//! appear in their inbox with its unread count, opens it, sees 入力中… while the farmer types,
//! and replies; the farmer sees the reply and 既読 on their message. At a phone's 390×844 (the
//! panel is then a full-screen sheet and the page never scrolls sideways) and at 1280×900 (where
//! the expand control widens the panel), in ja and in en. Screenshots of each state go to
//! `target/xtask/support-*.png`.

use std::{net::SocketAddr, time::Duration};

use crate::{proc::root, suites::IN_WIDGET, tools::Browser, webdriver::Session};

/// One user's browser: scripts run with the widget's `q` / `qa` helpers ([`IN_WIDGET`]).
pub(crate) struct Side<'a> {
    pub(crate) session: &'a Session,
    pub(crate) who: &'static str,
}

impl Side<'_> {
    pub(crate) fn run(&self, script: &str) -> Result<serde_json::Value, String> {
        self.session.script(&format!("{IN_WIDGET} {script}"))
    }

    pub(crate) fn wait(&self, what: &str, script: &str, secs: u64) -> Result<(), String> {
        self.session
            .wait_for(&format!("{IN_WIDGET} {script}"), Duration::from_secs(secs))
            .map_err(|_| format!("{}: {what}: not within {secs} s", self.who))
    }

    fn shot(&self, name: &str) -> Result<(), String> {
        let path = root().join("target").join("xtask").join(name);
        self.session.screenshot(&path)?;
        println!("  (screenshot: {})", path.display());
        Ok(())
    }

    /// Types `text` into the composer (an `input` event, as a keyboard would).
    fn type_text(&self, text: &str) -> Result<(), String> {
        self.run(&format!(
            "const t = q('composer'); t.value = {text:?}; \
             t.dispatchEvent(new Event('input', {{bubbles: true}})); return true;"
        ))
        .map(drop)
    }

    fn send(&self, text: &str) -> Result<(), String> {
        self.type_text(text)?;
        self.wait("the send button enables", "return !q('send').disabled;", 10)?;
        self.run("q('send').click(); return true;")?;
        self.wait(
            "the message is stored",
            &format!(
                "return qa('bubble').some(b => b.dataset.state === 'sent' && b.textContent.includes({text:?}));"
            ),
            20,
        )
    }

    /// Opens the page as `user` in `lang` and the panel, and waits for the widget to be live.
    fn open(&self, addr: SocketAddr, user: &str, lang: &str) -> Result<(), String> {
        self.session
            .open(&format!("http://{addr}/?demo-user={user}&lang={lang}"))?;
        self.wait(
            "the widget goes live",
            "return q('connection-status')?.dataset.state === 'connected';",
            30,
        )?;
        self.run("q('launcher-toggle').click(); return true;")?;
        self.wait("the panel opens", "return !q('chat-panel').hidden;", 10)
    }

    /// On a phone: the panel fills the screen and nothing scrolls sideways.
    fn check_sheet(&self) -> Result<(), String> {
        let layout = self.run(
            "const r = q('chat-panel').getBoundingClientRect(); \
             return [Math.round(r.left), Math.round(r.width), innerWidth, \
                     document.documentElement.scrollWidth];",
        )?;
        let n = |i: usize| layout[i].as_i64().unwrap_or(-1);
        if n(0) != 0 || n(1) != n(2) || n(3) > n(2) {
            return Err(format!(
                "{}: on a phone the panel is not a full-width sheet or the page scrolls sideways \
                 (left, width, innerWidth, scrollWidth = {layout})",
                self.who
            ));
        }
        Ok(())
    }
}

/// One run: `lang` at `width`×`height`.
fn run(
    farmer: &Side,
    support: &Side,
    addr: SocketAddr,
    lang: &str,
    (width, height): (u32, u32),
) -> Result<(), String> {
    let size = if width < 600 { "phone" } else { "desktop" };
    let name = |what: &str| format!("support-{lang}-{size}-{what}.png");
    for side in [farmer, support] {
        // The last run's page is gone first: a support chat left open there would read the
        // new message at once.
        side.session.open("about:blank")?;
        side.session.set_size(width, height)?;
    }
    let (typing, read) = match lang {
        "ja" => ("入力中…", "既読"),
        _ => ("is typing…", "Read"),
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());

    // The farmer: from the assistant back to the home, into support, and writes.
    farmer.open(addr, "u-farmer", lang)?;
    if width < 600 {
        farmer.check_sheet()?;
    } else {
        let before = farmer.run("return q('chat-panel').getBoundingClientRect().width;")?;
        farmer.run("q('expand').click(); return true;")?;
        farmer.wait(
            "the expand control widens the panel",
            &format!("return q('chat-panel').getBoundingClientRect().width > {before} + 100;"),
            5,
        )?;
    }
    farmer.wait("the assistant chat", "return q('back') != null;", 20)?;
    farmer.run("q('back').click(); return true;")?;
    farmer.wait(
        "the home lists the assistant and support",
        "return q('chat-widget').dataset.view === 'home' && qa('conversation').length === 2;",
        10,
    )?;
    farmer.shot(&name("home"))?;
    farmer.run(
        "qa('conversation').find(c => c.dataset.conversationId === 'c-u-farmer-support').click(); \
         return true;",
    )?;
    farmer.wait(
        "the support chat's history",
        "return q('chat-widget').dataset.view === 'chat' && !q('composer-wait');",
        20,
    )?;
    let question = format!("#{stamp} 牛舎の換気扇が止まりました / the barn fan stopped");
    farmer.send(&question)?;

    // Support: the conversation is in the inbox with its count; open it.
    support.open(addr, "u-support", lang)?;
    if width < 600 {
        support.check_sheet()?;
    }
    support.wait(
        "the inbox shows the farmer's message, unread",
        &format!(
            "const c = qa('conversation').find(c => c.dataset.conversationId === 'c-u-farmer-support'); \
             return c != null && c.textContent.includes({question:?}) \
                 && +(c.querySelector('[data-testid=conversation-unread]')?.textContent ?? 0) >= 1;"
        ),
        20,
    )?;
    support.shot(&name("inbox"))?;
    support.run(
        "qa('conversation').find(c => c.dataset.conversationId === 'c-u-farmer-support').click(); \
         return true;",
    )?;
    support.wait(
        "the farmer's message in the chat",
        &format!("return qa('bubble').some(b => b.textContent.includes({question:?}));"),
        20,
    )?;

    // The farmer types: support sees it; support replies.
    farmer.type_text("もう少し詳しく")?;
    support.wait(
        "the typing line",
        &format!("return q('typing')?.textContent.includes({typing:?});"),
        10,
    )?;
    support.shot(&name("support-chat"))?;
    let reply = format!("#{stamp} すぐ伺います / on my way");
    support.send(&reply)?;

    // The farmer: the reply, and 既読 on their message.
    farmer.wait(
        "the reply",
        &format!("return qa('bubble').some(b => b.textContent.includes({reply:?}));"),
        20,
    )?;
    farmer.wait(
        "the read receipt on the farmer's message",
        &format!(
            "const b = qa('bubble').find(b => b.textContent.includes({question:?})); \
             return b?.querySelector('[data-testid=read-receipt]')?.textContent === {read:?};"
        ),
        20,
    )?;
    support.wait(
        "support's typing line clears once the farmer stops",
        "return (q('typing')?.textContent ?? '') === '';",
        15,
    )?;
    farmer.shot(&name("farmer-chat"))?;
    Ok(())
}

/// Every run; the sessions (and their browsers) end with it.
pub(crate) fn two_browsers(browser: &Browser, addr: SocketAddr) -> Result<(), String> {
    let dir = root().join("target").join("xtask");
    let profile = |who: &str| dir.join(format!("chromium-{who}-{}", std::process::id()));
    let (a, b) = (profile("farmer"), profile("support"));
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
    let result = (|| {
        let farmer_session = Session::start(browser, &a)?;
        let support_session = Session::start(browser, &b)?;
        let farmer = Side {
            session: &farmer_session,
            who: "farmer",
        };
        let support = Side {
            session: &support_session,
            who: "support",
        };
        for (lang, size) in [
            ("ja", (390, 844)),
            ("ja", (1280, 900)),
            ("en", (390, 844)),
            ("en", (1280, 900)),
        ] {
            let outcome = run(&farmer, &support, addr, lang, size);
            if let Err(e) = outcome {
                let _ = farmer.shot("support-failure-farmer.png");
                let _ = support.shot("support-failure-support.png");
                return Err(format!("{lang} at {}×{}: {e}", size.0, size.1));
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
    result
}
