//! The command line. The flag names are a contract: scripts, the test command and the docs use
//! them, so each is also readable from the environment variable named in `--help`.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Parser, ValueEnum};

/// How fast the assistant's tasks play.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum AssistantSpeed {
    /// Human pace: about 0.7 s between steps, so progress is visible.
    #[default]
    Realtime,
    /// A few milliseconds between steps (tests).
    Fast,
}

impl AssistantSpeed {
    /// The pause before each step.
    pub fn step(self) -> std::time::Duration {
        match self {
            Self::Realtime => std::time::Duration::from_millis(700),
            Self::Fast => std::time::Duration::from_millis(5),
        }
    }
}

/// farm-chat dev-server: the chat backend and the built widget on one local port.
#[derive(Clone, Debug, Parser)]
#[command(name = "farm-chat-dev-server", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on. Port 0 picks a free port (the chosen URL is printed).
    #[arg(long, env = "FARM_CHAT_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// The SQLite database file (created on first run); `:memory:` keeps everything in memory
    /// (lost on exit; for tests).
    #[arg(long, env = "FARM_CHAT_DB", default_value = "farm-chat-dev.sqlite")]
    pub db: PathBuf,

    /// Directory of the built widget (what `trunk build` writes), served at `/`.
    #[arg(long, env = "FARM_CHAT_STATIC_DIR", default_value = "dist")]
    pub static_dir: PathBuf,

    /// How fast assistant tasks play: `realtime` (human pace) or `fast` (tests).
    #[arg(long, env = "FARM_CHAT_ASSISTANT_SPEED", value_enum, default_value_t = AssistantSpeed::Realtime)]
    pub assistant_speed: AssistantSpeed,

    /// An origin allowed to call the API cross-origin with credentials (repeatable;
    /// comma-separated in the environment variable), e.g. `https://farm.example.jp`.
    #[arg(
        long = "allow-origin",
        env = "FARM_CHAT_ALLOW_ORIGIN",
        value_delimiter = ','
    )]
    pub allow_origins: Vec<String>,

    /// Test mode: any `http://127.0.0.1:*` / `http://localhost:*` origin is allowed (browser
    /// tests' pages come from a random loopback port), and the test-only switch
    /// `POST /api/test/drop-streams` exists. Off by default.
    #[arg(long, env = "FARM_CHAT_TEST_MODE")]
    pub test_mode: bool,

    /// Load-test farmers `u-load-0` … `u-load-{N-1}` who can sign in (each alone on a farm).
    /// For benchmarks (`cargo xtask bench`). Default 0: none.
    #[arg(long, env = "FARM_CHAT_LOAD_USERS", default_value_t = 0)]
    pub load_users: u32,

    /// Load-test support staff `u-load-support-0` … `u-load-support-{K-1}` on u-load-0's farm:
    /// each message in `c-u-load-0-support` reaches all of them (the fan-out benchmark).
    /// Default 0: none.
    #[arg(long, env = "FARM_CHAT_LOAD_SUPPORT", default_value_t = 0)]
    pub load_support: u32,
}

impl Config {
    /// The configuration for tests: port 0, test mode, in-memory store, no static files.
    pub fn for_tests() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            db: PathBuf::from(":memory:"),
            assistant_speed: AssistantSpeed::Fast,
            static_dir: PathBuf::from("/nonexistent/farm-chat-static"),
            allow_origins: Vec::new(),
            test_mode: true,
            load_users: 0,
            load_support: 0,
        }
    }
}
