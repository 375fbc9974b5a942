//! The suite against the dev-server on a real port: every rule passes (none skipped but by
//! choice), so the rules describe what the reference backend does.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

use std::time::Duration;

use farm_chat_conformance::{
    client::Target,
    report,
    rules::{self, Credentials, Options, Outcome},
};
use farm_chat_dev_server::{AppState, Config, run};

async fn dev_server() -> (String, tokio::sync::oneshot::Sender<()>) {
    let mut state = AppState::new(Config::for_tests()).await.unwrap();
    state.ping_every = Duration::from_secs(1);
    // Slow enough that a cancel arrives while the task runs.
    state.common.assistant =
        farm_chat_dev_server::assistant::farm::Farm::paced(Duration::from_millis(150));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(run(listener, state, async {
        let _ = stopped.await;
    }));
    (format!("http://{addr}"), stop)
}

fn demo() -> Credentials {
    Credentials::Demo {
        a: "u-farmer".into(),
        b: "u-support".into(),
        other: "u-other".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_server_passes_every_rule() {
    let (url, _stop) = dev_server().await;
    let target = Target::resolve(&url).await.unwrap();
    let options = Options {
        ping_within: Duration::from_secs(5),
        // Test mode allows loopback origins with credentials.
        allowed_origin: Some("http://127.0.0.1:9".into()),
        ..Options::default()
    };
    let results = rules::run(target, demo(), options).await;
    println!("{}", report::table(&results));
    assert_eq!(results.len(), rules::RULES.len(), "every rule is reported");
    for c in &results {
        assert_eq!(c.outcome, Outcome::Pass, "{}", c.rule.id);
    }
}

#[tokio::test]
async fn rules_the_server_does_not_claim_are_skipped_never_passed() {
    let (url, _stop) = dev_server().await;
    let target = Target::resolve(&url).await.unwrap();
    let options = Options {
        assistant: false,
        ping_within: Duration::from_secs(5),
        allowed_origin: None,
    };
    let results = rules::run(target, demo(), options).await;
    let assistant: Vec<_> = results
        .iter()
        .filter(|c| c.rule.id.starts_with("assistant."))
        .collect();
    assert_eq!(assistant.len(), 3);
    assert!(
        assistant
            .iter()
            .all(|c| matches!(c.outcome, Outcome::Skip(_)))
    );
    let json = report::json(&results);
    assert_eq!(json["skipped"], 3);
    assert_eq!(json["failed"], 0);
}

#[tokio::test]
async fn without_a_server_sign_in_fails_and_the_rest_is_skipped() {
    let target = Target::resolve("http://127.0.0.1:9").await.unwrap();
    let results = rules::run(target, demo(), Options::default()).await;
    assert!(matches!(results[0].outcome, Outcome::Fail(_)));
    assert!(
        results[1..]
            .iter()
            .all(|c| matches!(c.outcome, Outcome::Skip(_)))
    );
    assert_eq!(report::counts(&results).1, 1);
}

#[test]
fn the_docs_list_every_rule() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/conformance.md"
    ))
    .unwrap();
    for rule in rules::RULES {
        assert!(
            doc.contains(&format!("`{}`", rule.id)),
            "{} is not in docs/conformance.md",
            rule.id
        );
    }
}
