//! `cargo xtask bootstrap`: install what is missing, idempotently, and say what it does.
//!
//! Versions and commands follow `shared/TOOLCHAIN.md` (checked on this machine kind):
//! trunk 0.21.14 (0.22 needs a newer rustc), the wasm-bindgen CLI of exactly the version in
//! Cargo.lock (installed without `--locked`, whose lockfile names a crate the registry lacks),
//! wasm-opt from npm's binaryen 132 (Debian's binaryen 108 silently breaks the output), esbuild
//! from npm (minifies the launcher and wasm-bindgen's module).
//! Everything cargo or npm installs goes into the project-local `.tools/`, never global; Debian
//! packages (Chromium, its driver, a Japanese font, `brotli`, PostgreSQL, Redis) come from apt.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use crate::proc::{cmd, output, root, run};

/// The trunk version that works with this toolchain.
pub(crate) const TRUNK_VERSION: &str = "0.21.14";
/// npm's binaryen package whose wasm-opt produces working output.
pub(crate) const BINARYEN_VERSION: &str = "132";
/// npm's esbuild, which minifies the launcher and wasm-bindgen's module for release.
pub(crate) const ESBUILD_VERSION: &str = "0.28.2";

/// The browser and driver the tests use.
pub(crate) struct Browser {
    pub(crate) chromium: PathBuf,
    pub(crate) chromedriver: PathBuf,
}

/// Where cargo/npm-installed tools live: `$FARM_CHAT_TOOLS_DIR`, else `<repo>/.tools`.
pub(crate) fn tools_dir() -> PathBuf {
    std::env::var_os("FARM_CHAT_TOOLS_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".tools"))
}

/// `PATH` with the project's tools first, so trunk finds exactly our wasm-bindgen and wasm-opt.
pub(crate) fn path_with_tools() -> OsString {
    let dir = tools_dir();
    let mut parts = vec![dir.join("bin"), dir.join("node_modules").join(".bin")];
    if let Some(path) = std::env::var_os("PATH") {
        parts.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(parts).unwrap_or_default()
}

fn say(what: &str, state: &str) {
    println!("bootstrap: {what:<28} {state}");
}

/// Installs whatever is missing and returns the browser paths.
pub(crate) fn bootstrap() -> Result<Browser, String> {
    wasm_target()?;
    let browser = chromium()?;
    brotli()?;
    databases()?;
    wasm_opt()?;
    esbuild()?;
    wasm_bindgen_cli()?;
    trunk()?;
    // Trunk builds with `cargo --offline` (Trunk.toml: offline = true): fetch everything first.
    let mut fetch = cmd("cargo");
    fetch.args(["fetch", "--quiet"]);
    run(&mut fetch)?;
    say("all tools", "ready");
    Ok(browser)
}

fn wasm_target() -> Result<(), String> {
    const TARGET: &str = "wasm32-unknown-unknown";
    let installed = output(cmd("rustc").args(["--print", "sysroot"]))
        .map(|sysroot| {
            Path::new(&sysroot)
                .join("lib/rustlib")
                .join(TARGET)
                .is_dir()
        })
        .unwrap_or(false);
    if installed {
        say(TARGET, "present");
        return Ok(());
    }
    say(TARGET, "installing (rustup target add)");
    run(cmd("rustup").args(["target", "add", TARGET]))
        .map_err(|e| format!("{e}\nInstall the target with `rustup target add {TARGET}`."))
}

fn chromium() -> Result<Browser, String> {
    let chromium = env_path("CHROMIUM", "/usr/bin/chromium");
    let chromedriver = env_path("CHROMEDRIVER", "/usr/bin/chromedriver");
    let have_browser = chromium.is_file() && chromedriver.is_file();
    let have_font = has_japanese_font();
    if have_browser && (have_font || !can_apt()) {
        say("chromium + chromedriver", "present");
        // Without one, screenshots show boxes for Japanese text; the tests still hold.
        say(
            "a Japanese font",
            if have_font {
                "present"
            } else {
                "missing (fonts-ipafont-gothic)"
            },
        );
        return Ok(Browser {
            chromium,
            chromedriver,
        });
    }
    if !can_apt() {
        return Err(format!(
            "Chromium and ChromeDriver are missing ({} / {}).\n\
             Install the Debian packages `chromium` and `chromium-driver` (as root: \
             apt-get install chromium chromium-driver fonts-ipafont-gothic), or point CHROMIUM \
             and CHROMEDRIVER at them.",
            chromium.display(),
            chromedriver.display()
        ));
    }
    say("chromium, driver, ja font", "installing (apt-get)");
    run(cmd("apt-get").args(["update", "-qq"]))?;
    run(cmd("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(["chromium", "chromium-driver", "fonts-ipafont-gothic"])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    if chromium.is_file() && chromedriver.is_file() {
        Ok(Browser {
            chromium,
            chromedriver,
        })
    } else {
        Err(
            "apt-get finished but /usr/bin/chromium or /usr/bin/chromedriver is still missing"
                .into(),
        )
    }
}

/// Root on a Debian-like system: the bootstrap may install system packages itself.
/// Debian's `brotli`, which `cargo xtask bundle` uses for the precompressed `.br` files.
fn brotli() -> Result<(), String> {
    if output(std::process::Command::new("brotli").arg("--version")).is_some() {
        say("brotli", "present");
        return Ok(());
    }
    if !can_apt() {
        return Err(
            "The `brotli` command is missing: install the Debian package `brotli` \
             (as root: apt-get install brotli)."
                .into(),
        );
    }
    say("brotli", "installing (apt-get)");
    run(cmd("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends", "brotli"])
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .or_else(|_| {
        run(cmd("apt-get").args(["update", "-qq"]))?;
        run(cmd("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends", "brotli"])
            .env("DEBIAN_FRONTEND", "noninteractive"))
    })
}

/// Debian's PostgreSQL and Redis: the store conformance suite, the scale-out tests and
/// `cargo xtask run --cluster` start throwaway servers of both (`farm-chat-testenv`), and
/// `openssl`, which makes the test CA their TLS runs use.
fn databases() -> Result<(), String> {
    let have_postgres = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .any(|v| v.path().join("bin/initdb").is_file());
    let have_redis = output(std::process::Command::new("redis-server").arg("--version")).is_some();
    let have_openssl = output(std::process::Command::new("openssl").arg("version")).is_some();
    if have_postgres && have_redis && have_openssl {
        say("postgresql + redis-server + openssl", "present");
        return Ok(());
    }
    if !can_apt() {
        return Err(
            "PostgreSQL, Redis or openssl is missing: install the Debian packages `postgresql`, \
             `redis-server` and `openssl` (as root: apt-get install postgresql redis-server \
             openssl)."
                .into(),
        );
    }
    say(
        "postgresql + redis-server + openssl",
        "installing (apt-get)",
    );
    let install = || {
        run(cmd("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(["postgresql", "redis-server", "openssl"])
            .env("DEBIAN_FRONTEND", "noninteractive"))
    };
    install().or_else(|_| {
        run(cmd("apt-get").args(["update", "-qq"]))?;
        install()
    })
}

fn can_apt() -> bool {
    let is_root = output(std::process::Command::new("id").arg("-u")).as_deref() == Some("0");
    is_root && Path::new("/usr/bin/apt-get").is_file()
}

/// Whether fontconfig knows a font with Japanese glyphs.
fn has_japanese_font() -> bool {
    output(std::process::Command::new("fc-list").arg(":lang=ja")).is_some_and(|f| !f.is_empty())
}

fn env_path(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

fn wasm_opt() -> Result<(), String> {
    npm_tool("wasm-opt", "binaryen", BINARYEN_VERSION, &|version| {
        version.contains(&format!("version {BINARYEN_VERSION}"))
    })
}

fn esbuild() -> Result<(), String> {
    npm_tool("esbuild", "esbuild", ESBUILD_VERSION, &|version| {
        version == ESBUILD_VERSION
    })
}

/// `bin` from npm's `package@version` in `.tools/`, unless `--version` already satisfies `ok`.
fn npm_tool(
    bin: &str,
    package: &str,
    version: &str,
    ok: &dyn Fn(&str) -> bool,
) -> Result<(), String> {
    let path = tools_dir().join("node_modules/.bin").join(bin);
    if let Some(found) = output(std::process::Command::new(&path).arg("--version"))
        && ok(&found)
    {
        say(bin, &format!("present ({package}@{version})"));
        return Ok(());
    }
    say(bin, &format!("installing (npm {package}@{version})"));
    let dir = tools_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    run(cmd("npm")
        .arg("install")
        .arg("--prefix")
        .arg(&dir)
        .args(["--no-audit", "--no-fund", "--loglevel=error"])
        .arg(format!("{package}@{version}")))
    .map_err(|e| {
        format!("{e}\n{bin} comes from npm's {package} package: is Node.js/npm installed?")
    })
}

/// The wasm-bindgen version Cargo.lock pins (the CLI must match it exactly).
pub(crate) fn locked_wasm_bindgen_version() -> Result<String, String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock"))
        .map_err(|e| format!("read Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == r#"name = "wasm-bindgen""#
            && let Some(version) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = \""))
                .and_then(|v| v.strip_suffix('"'))
        {
            return Ok(version.to_owned());
        }
    }
    Err("Cargo.lock has no wasm-bindgen package".into())
}

fn wasm_bindgen_cli() -> Result<(), String> {
    let version = locked_wasm_bindgen_version()?;
    let bin = tools_dir().join("bin");
    let have = output(std::process::Command::new(bin.join("wasm-bindgen")).arg("--version"));
    if have.as_deref() == Some(&format!("wasm-bindgen {version}"))
        && bin.join("wasm-bindgen-test-runner").is_file()
    {
        say("wasm-bindgen-cli", &format!("present ({version})"));
        return Ok(());
    }
    say(
        "wasm-bindgen-cli",
        &format!("installing {version} (cargo install, ~4 min)"),
    );
    // No `--locked`: the CLI's own lockfile names a crate version the registry lacks.
    run(cmd("cargo")
        .args([
            "install",
            "wasm-bindgen-cli",
            "--force",
            "--version",
            &version,
            "--root",
        ])
        .arg(tools_dir()))
}

fn trunk() -> Result<(), String> {
    let bin = tools_dir().join("bin/trunk");
    if output(std::process::Command::new(&bin).arg("--version")).as_deref()
        == Some(&format!("trunk {TRUNK_VERSION}"))
    {
        say("trunk", &format!("present ({TRUNK_VERSION})"));
        return Ok(());
    }
    say(
        "trunk",
        &format!("installing {TRUNK_VERSION} (cargo install, ~12 min)"),
    );
    run(cmd("cargo")
        .args([
            "install",
            "trunk",
            "--locked",
            "--force",
            "--version",
            TRUNK_VERSION,
            "--root",
        ])
        .arg(tools_dir()))
}
