//! Liveness and readiness as a load balancer and Kubernetes see them: readiness follows the
//! store and the bus (stopped, then back), and on SIGTERM it fails before any stream closes.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

mod common;
use common::{Process, Sse, TestApp, call, login};

use std::time::{Duration, Instant};

use farm_chat_protocol::{CheckName, Health, HealthStatus, Readiness, paths};
use farm_chat_testenv::{Postgres, Redis};

async fn readiness(addr: std::net::SocketAddr) -> (u16, Readiness) {
    let reply = call(addr, "GET", paths::api::HEALTH_READY, &[], None).await;
    (reply.status, serde_json::from_str(&reply.body).unwrap())
}

fn failing(r: &Readiness) -> Vec<CheckName> {
    r.checks.iter().filter(|c| !c.ok).map(|c| c.name).collect()
}

/// Asks readiness every 100 ms until it answers `status`, at most 100 times.
async fn until_ready_is(addr: std::net::SocketAddr, status: u16) -> Readiness {
    for _ in 0..100 {
        let (code, body) = readiness(addr).await;
        if code == status {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "readiness never answered {status}: {:?}",
        readiness(addr).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_follows_postgres_and_redis_going_away_and_coming_back() {
    let pg = Postgres::start().expect("a throwaway PostgreSQL");
    let redis = Redis::start().expect("a throwaway Redis");
    let (db, bus) = (pg.fresh_database("ready").unwrap(), redis.url(0));
    let s = TestApp::new()
        .config(|c| {
            c.database_url = Some(db);
            c.redis_url = Some(bus);
        })
        .serve()
        .await;
    let (code, ready) = readiness(s.addr).await;
    assert_eq!(code, 200, "{ready:?}");
    assert_eq!(ready.status, HealthStatus::Ok);
    let names: Vec<CheckName> = ready.checks.iter().map(|c| c.name).collect();
    assert_eq!(names, CheckName::ALL, "every check, in order");

    // PostgreSQL stops: the very next probe says so (each check waits at most a second).
    pg.stop().unwrap();
    let asked = Instant::now();
    let (code, ready) = readiness(s.addr).await;
    println!(
        "PostgreSQL stopped: readiness answered 503 in {:?}",
        asked.elapsed()
    );
    assert_eq!(code, 503, "{ready:?}");
    assert_eq!(failing(&ready), [CheckName::Store]);
    // `/api/health` keeps its shape and tells the same truth; liveness does not care.
    let health = call(s.addr, "GET", paths::api::HEALTH, &[], None).await;
    assert_eq!(health.status, 503);
    let health: Health = serde_json::from_str(&health.body).unwrap();
    assert_eq!(health.status, HealthStatus::Unavailable);
    assert_eq!(
        call(s.addr, "GET", paths::api::HEALTH_LIVE, &[], None)
            .await
            .status,
        200
    );
    pg.restart().unwrap();
    until_ready_is(s.addr, 200).await;

    // Redis goes away: the bus check fails, and the store's stays green.
    redis.kill();
    let (code, ready) = readiness(s.addr).await;
    assert_eq!(code, 503, "{ready:?}");
    assert_eq!(failing(&ready), [CheckName::Bus]);
    redis.restart_empty().unwrap();
    until_ready_is(s.addr, 200).await;
    assert_eq!(
        call(s.addr, "GET", paths::api::HEALTH, &[], None)
            .await
            .status,
        200
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sigterm_readiness_fails_before_the_first_stream_closes() {
    let server = Process::start(&["--drain-delay", "1s", "--drain-window", "1s"]);
    let addr = server.addr;
    assert_eq!(readiness(addr).await.0, 200);
    let token = login(addr, "u-farmer").await;
    let mut sse = Sse::open_as(addr, &token, "").await;
    assert_eq!(sse.next().await.unwrap().event, "ready");
    // The stream's end, when it comes.
    let closed = tokio::spawn(async move {
        while sse.next_within(Duration::from_secs(10)).await.is_some() {}
        Instant::now()
    });
    server.terminate();
    let not_ready = loop {
        let (code, ready) = readiness(addr).await;
        if code == 503 {
            assert_eq!(failing(&ready), [CheckName::Draining], "{ready:?}");
            break Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let closed = closed.await.unwrap();
    assert!(
        not_ready < closed,
        "readiness failed {:?} before the stream closed",
        closed - not_ready
    );
    let mut server = server;
    assert!(server.wait(), "a clean exit after the drain");
}
