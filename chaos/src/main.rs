//! `farm-chat-chaos --upstream 127.0.0.1:3000 --seed 42`: the fault proxy as a process. Prints
//! `listening on http://ADDR` once it accepts; control it at `/__chaos/…` (see the lib docs).
//! Several `--upstream`s make it a balancer over a cluster's instances (`--balance`).

use std::{net::SocketAddr, process::ExitCode};

use clap::Parser;

/// A seeded fault-injecting proxy for farm-chat's end-to-end tests.
#[derive(Debug, Parser)]
#[command(name = "farm-chat-chaos", version, about)]
struct Args {
    /// Where to listen (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The dev-server; repeat it for the instances of a cluster.
    #[arg(long, required = true)]
    upstream: Vec<SocketAddr>,
    /// How connections spread over several upstreams: `round-robin` or `random` (seeded).
    #[arg(long, default_value = "round-robin", value_parser = ["round-robin", "random"])]
    balance: String,
    /// Seeds every random choice: the same seed replays the same faults.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("farm-chat-chaos: bind {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("listening on http://{addr}"),
        Err(e) => {
            eprintln!("farm-chat-chaos: {e}");
            return ExitCode::FAILURE;
        }
    }
    let balance = if args.balance == "random" {
        farm_chat_chaos::Balance::Random
    } else {
        farm_chat_chaos::Balance::RoundRobin
    };
    let chaos = farm_chat_chaos::Chaos::balancing(args.upstream, balance, args.seed);
    match farm_chat_chaos::serve(listener, chaos).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("farm-chat-chaos: {e}");
            ExitCode::FAILURE
        }
    }
}
