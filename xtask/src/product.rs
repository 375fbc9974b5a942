//! `run`, `dev` and `size`: the product as a user starts it.

use std::process::Command;

use crate::{
    proc::{cmd, root, run as run_cmd},
    server::{self, DevServer},
    tools,
};

/// `trunk build --release` into `dist/` (offline: trunk uses our tools, downloads nothing).
pub(crate) fn build_release() -> Result<(), String> {
    run_cmd(cmd("trunk").args(["build", "--release"]))
}

/// Builds the widget, then runs the dev-server in the foreground with `args`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    tools::bootstrap()?;
    build_release()?;
    size()?;
    if let Some(at) = args.iter().position(|a| a == "--cluster") {
        let mut rest = args.to_vec();
        rest.remove(at);
        let n = match rest.get(at).map(|n| n.parse::<usize>()) {
            Some(Ok(n)) if n >= 1 => {
                rest.remove(at);
                n
            }
            Some(Ok(_)) => return Err("--cluster needs at least 1 instance".into()),
            _ => 3,
        };
        return crate::cluster::run_cluster(n, &rest);
    }
    let bin = server::build_release()?;
    let mut server = Command::new(bin);
    server.current_dir(root());
    if !args
        .iter()
        .any(|a| a == "--static-dir" || a.starts_with("--static-dir="))
    {
        server.args(["--static-dir", "dist"]);
    }
    server.args(args);
    println!("xtask: starting the dev-server (Ctrl-C stops it)");
    run_cmd(&mut server)
}

/// trunk serve with hot reload; `/api` goes to a dev-server on 127.0.0.1:3000 (Trunk.toml).
pub(crate) fn dev() -> Result<(), String> {
    tools::bootstrap()?;
    let _server = DevServer::start(&[
        "--addr".into(),
        "127.0.0.1:3000".into(),
        "--test-mode".into(),
    ])?;
    run_cmd(cmd("trunk").arg("serve"))
}

/// A file of the widget as it goes over the wire.
#[derive(Clone, Debug)]
pub(crate) struct WireFile {
    pub(crate) name: String,
    pub(crate) raw: u64,
    /// `gzip -9`: the `.gz` the dev-server serves.
    pub(crate) gzip: u64,
    /// Brotli quality 11: the `.br` the dev-server serves.
    pub(crate) brotli: u64,
    /// Fetched by the host page before its `load` event (the launcher); the rest loads later.
    pub(crate) critical: bool,
}

/// The widget's files in `dist/` (the launcher, wasm-bindgen's module and the wasm; the demo
/// page's own files are not the widget's), with the sizes of the variants the dev-server
/// serves, printed as a table.
pub(crate) fn size() -> Result<Vec<WireFile>, String> {
    let dist = root().join("dist");
    let (js, wasm) = crate::bundle::app_files(&dist)
        .map_err(|e| format!("{e} (build first: cargo xtask size)"))?;
    let mut rows = Vec::new();
    for name in [crate::bundle::LAUNCHER.to_owned(), js, wasm] {
        let file = dist.join(&name);
        let raw = std::fs::metadata(&file)
            .map_err(|e| format!("{}: {e}", file.display()))?
            .len();
        let variant = |suffix: &str| {
            std::fs::metadata(crate::bundle::with_suffix(&file, suffix))
                .map(|m| m.len())
                .map_err(|e| format!("{name}.{suffix}: {e} (a release build writes it)"))
        };
        let (gzip, brotli) = (variant("gz")?, variant("br")?);
        rows.push(WireFile {
            critical: name == crate::bundle::LAUNCHER,
            name,
            raw,
            gzip,
            brotli,
        });
    }
    println!(
        "\n{:<44} {:>9} {:>9} {:>9}",
        "release transfer size of the widget", "raw B", "gzip -9 B", "Brotli B"
    );
    for f in &rows {
        println!("{:<44} {:>9} {:>9} {:>9}", f.name, f.raw, f.gzip, f.brotli);
    }
    let total = |pick: &dyn Fn(&WireFile) -> bool| -> (u64, u64, u64) {
        rows.iter()
            .filter(|f| pick(f))
            .fold((0, 0, 0), |(r, g, b), f| {
                (r + f.raw, g + f.gzip, b + f.brotli)
            })
    };
    let (cr, cg, cb) = total(&|f| f.critical);
    let (r, g, b) = total(&|_| true);
    println!(
        "{:<44} {cr:>9} {cg:>9} {cb:>9}",
        "before the page's load event (launcher)"
    );
    println!(
        "{:<44} {r:>9} {g:>9} {b:>9}  ({:.1} KB Brotli, {:.1} KB gzip)\n",
        "whole widget",
        b as f64 / 1024.0,
        g as f64 / 1024.0
    );
    Ok(rows)
}
