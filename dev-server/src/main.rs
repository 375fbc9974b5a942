//! `farm-chat-dev-server`: parse the command line, bind, print the URL, serve until Ctrl-C or
//! SIGTERM. Everything else lives in the library (`app`, `run`) so tests drive the same code.

use clap::Parser;
use farm_chat_dev_server::{AppState, Config, run, serve};
use std::io::Write;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,tower_http=info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let db = config.store_name();
    let state = match AppState::new(config).await {
        Ok(state) => state,
        Err(e) => {
            eprintln!("farm-chat-dev-server: cannot start (database {db}): {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing::info!(db, epoch = state.common.bus.epoch(), "store open");
    let listener = match serve::listen(state.config.addr, state.config.listen_backlog) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!(
                "farm-chat-dev-server: cannot listen on {}: {e}",
                state.config.addr
            );
            return std::process::ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("farm-chat-dev-server: cannot read the bound address: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if !state.config.static_dir.join("index.html").is_file() {
        tracing::warn!(static_dir = %state.config.static_dir.display(), "no built widget here; `/` explains how to build it");
    }
    // The first line on stdout is the URL: people read it, and `cargo xtask` parses it.
    println!("farm-chat-dev-server listening on http://{addr}/");
    let _ = std::io::stdout().flush();

    match run(listener, state, shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("farm-chat-dev-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
