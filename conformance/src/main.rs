//! `farm-chat-conformance --base-url URL`: the rules the widget relies on, checked against a
//! live server. Prints a table, writes `--json FILE`, exits 0 only when no rule failed.

use std::{io::Write, process::ExitCode, time::Duration};

use clap::Parser;
use farm_chat_conformance::{
    client::Target,
    report,
    rules::{self, Credentials, Options},
};

/// Checks a farm-chat server against the rules the widget relies on.
#[derive(Debug, Parser)]
#[command(name = "farm-chat-conformance", version, about)]
struct Args {
    /// The server's root (the API is under /api), e.g. http://127.0.0.1:3000.
    #[arg(long)]
    base_url: String,
    /// Demo sign-in: the farmer (a user with an assistant and a support conversation).
    #[arg(long, default_value = "u-farmer")]
    user_a: String,
    /// Demo sign-in: support staff of the farmer's tenant.
    #[arg(long, default_value = "u-support")]
    user_b: String,
    /// Demo sign-in: a user of another tenant.
    #[arg(long, default_value = "u-other")]
    user_other: String,
    /// The farmer's Bearer token (instead of the demo sign-in; give all three).
    #[arg(long, requires_all = ["token_b", "token_other"])]
    token: Option<String>,
    /// Support staff's Bearer token.
    #[arg(long)]
    token_b: Option<String>,
    /// Another tenant's user's Bearer token.
    #[arg(long)]
    token_other: Option<String>,
    /// The server has no assistant: its rules are reported as skipped.
    #[arg(long)]
    no_assistant: bool,
    /// The longest wait for a `ping` on an idle stream, in seconds.
    #[arg(long, default_value_t = 20)]
    ping_within: u64,
    /// An origin the server allows with credentials (checked when given).
    #[arg(long)]
    allowed_origin: Option<String>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let target = match Target::resolve(&args.base_url).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("farm-chat-conformance: {e}");
            return ExitCode::from(2);
        }
    };
    let credentials = match (args.token, args.token_b, args.token_other) {
        (Some(a), Some(b), Some(other)) => Credentials::Tokens { a, b, other },
        _ => Credentials::Demo {
            a: args.user_a,
            b: args.user_b,
            other: args.user_other,
        },
    };
    let options = Options {
        assistant: !args.no_assistant,
        ping_within: Duration::from_secs(args.ping_within),
        allowed_origin: args.allowed_origin,
    };
    let results = rules::run(target, credentials, options).await;
    print!("{}", report::table(&results));
    let _ = std::io::stdout().flush();
    if let Some(path) = args.json {
        let text = report::json(&results).to_string();
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!(
                "farm-chat-conformance: cannot write {}: {e}",
                path.display()
            );
            return ExitCode::from(2);
        }
    }
    let (_, failed, _) = report::counts(&results);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
