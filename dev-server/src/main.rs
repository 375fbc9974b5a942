//! `farm-chat-dev-server`: parse the command line, bind, print the URL, serve until Ctrl-C or
//! SIGTERM. Everything else lives in the library (`app`, `run`) so tests drive the same code.

use clap::Parser;
use farm_chat_dev_server::{AppState, Config, config::LogFormat, ids::now_rfc3339, run, serve};
use std::io::{IsTerminal, Write};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    let format = config.log_format;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=info"));
    match format {
        // Colour codes only for a person at a terminal, never into a file or a pipe.
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .init(),
        // The request's span (instance, requestId, userId, conversationId, …) rides along
        // under `span`; the event's own fields are at the top.
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init(),
    }
    let fail = |message: String| {
        match format {
            LogFormat::Text => eprintln!("farm-chat-dev-server: {message}"),
            LogFormat::Json => eprintln!(
                "{}",
                serde_json::json!({"timestamp": now_rfc3339(), "level": "ERROR", "message": message})
            ),
        }
        std::process::ExitCode::FAILURE
    };

    let db = config.store_name();
    let state = match AppState::new(config).await {
        Ok(state) => state,
        Err(e) => return fail(format!("cannot start (database {db}): {e}")),
    };
    tracing::info!(db, epoch = state.common.bus.epoch(), "store open");
    let listener = match serve::listen(state.config.addr, state.config.listen_backlog) {
        Ok(listener) => listener,
        Err(e) => return fail(format!("cannot listen on {}: {e}", state.config.addr)),
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => return fail(format!("cannot read the bound address: {e}")),
    };
    if !state.config.static_dir.join("index.html").is_file() {
        tracing::warn!(static_dir = %state.config.static_dir.display(), "no built widget here; `/` explains how to build it");
    }
    // The first line on stdout is the URL: people read it, and `cargo xtask` parses it.
    match format {
        LogFormat::Text => println!("farm-chat-dev-server listening on http://{addr}/"),
        LogFormat::Json => println!(
            "{}",
            serde_json::json!({
                "timestamp": now_rfc3339(),
                "level": "INFO",
                "message": "farm-chat-dev-server listening",
                "url": format!("http://{addr}/"),
                "instance": &*state.local.instance,
            })
        ),
    }
    let _ = std::io::stdout().flush();

    match run(listener, state, shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => fail(e.to_string()),
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
