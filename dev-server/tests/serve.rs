//! The server on a real loopback port: what the browser tests and `cargo xtask run` rely on.

mod common;

use common::{TestApp, call};
use farm_chat_protocol::paths;
use tokio::net::TcpStream;

#[tokio::test]
async fn health_on_a_real_port_then_a_graceful_stop() {
    let server = TestApp::new().serve().await;
    let addr = server.addr;
    let res = call(addr, "GET", paths::api::HEALTH, &[], None).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body, r#"{"status":"ok"}"#);
    server.stop().await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the port is closed after shutdown"
    );
}
