//! A tiny run of every scenario against the dev-server in this process, so the harness can't
//! rot: each must finish with nothing lost. (Figures come from `cargo xtask bench`, not here.)

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

use std::time::Duration;

use farm_chat_bench::{http::Target, scenarios};
use farm_chat_dev_server::{AppState, Config};

async fn server() -> (Target, tokio::sync::oneshot::Sender<()>) {
    let config = Config {
        load_users: 40,
        load_support: 12,
        // Every synthetic user signs in from 127.0.0.1 within a second.
        sign_in_per_minute: u32::MAX,
        sign_in_per_user_per_minute: u32::MAX,
        ..Config::for_tests()
    };
    let state = AppState::new(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(farm_chat_dev_server::run(listener, state, async {
        let _ = stopped.await;
    }));
    (Target::parse(&format!("http://{addr}")).unwrap(), stop)
}

fn common(target: Target) -> scenarios::Common {
    scenarios::Common {
        target,
        server_pid: Some(std::process::id()),
        farmer_prefix: "u-load-".into(),
        support_prefix: "u-load-support-".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_and_loses_nothing() {
    let (target, _stop) = server().await;
    let common = common(target);

    let idle = scenarios::idle_streams(&common, 30, 3, Duration::from_millis(50), true)
        .await
        .unwrap();
    assert_eq!(idle["figures"]["open"], 30, "{idle}");
    assert_eq!(idle["params"]["users"], 10);
    assert!(
        idle["figures"]["server_bytes_per_stream"].is_number(),
        "{idle}"
    );
    let storm = &idle["figures"]["reconnect_storm"];
    assert_eq!(storm["reconnected"], 30, "{idle}");
    assert_eq!(storm["failed"], 0, "{idle}");
    assert!(storm["listen_overflows"].is_number(), "{idle}");

    let fanout = scenarios::fanout(&common, 12, 2).await.unwrap();
    assert_eq!(fanout["figures"]["receipts"], 24, "{fanout}");
    assert_eq!(fanout["figures"]["lost"], 0, "{fanout}");

    let throughput = scenarios::throughput(&common, 40, Duration::from_secs(1))
        .await
        .unwrap();
    let f = &throughput["figures"];
    assert!(f["sent"].as_u64().unwrap() >= 30, "{throughput}");
    assert_eq!(f["lost"], 0, "{throughput}");
    assert_eq!(f["received"], f["sent"], "{throughput}");
    assert!(f["server_cpu_percent"].is_number(), "{throughput}");
}

#[tokio::test]
async fn an_unknown_user_is_a_clear_error() {
    let (target, _stop) = server().await;
    let mut c = common(target);
    c.farmer_prefix = "u-nobody-".into();
    let error = scenarios::idle_streams(&c, 2, 1, Duration::ZERO, false)
        .await
        .unwrap_err();
    assert!(error.contains("sign in u-nobody-0: HTTP 401"), "{error}");
}
