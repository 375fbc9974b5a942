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
    let bin = server::build()?;
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

/// Transfer size of the widget in `dist/` (its wasm + js + css: the `farm-chat*` files; the demo
/// page's own stylesheet is not the widget's), raw and gzip -9. Returns the gzip total.
pub(crate) fn size() -> Result<u64, String> {
    Ok(size_table()?.iter().map(|(_, _, gz)| gz).sum())
}

/// The widget's files in `dist/` as (name, raw bytes, gzip -9 bytes), printed as a table.
pub(crate) fn size_table() -> Result<Vec<(String, u64, u64)>, String> {
    let dist = root().join("dist");
    let mut files: Vec<_> = std::fs::read_dir(&dist)
        .map_err(|e| {
            format!(
                "read {}: {e} (build first: cargo xtask run)",
                dist.display()
            )
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "wasm" || x == "js" || x == "css")
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("farm-chat"))
        })
        .collect();
    files.sort();
    let (mut raw_total, mut gz_total) = (0, 0);
    println!(
        "\n{:<48} {:>10} {:>10}",
        "release transfer size of the widget", "raw B", "gzip -9 B"
    );
    let mut rows = Vec::new();
    for file in &files {
        let raw = std::fs::metadata(file).map_err(|e| e.to_string())?.len();
        let gz = gzip_len(file)?;
        raw_total += raw;
        gz_total += gz;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!("{name:<48} {raw:>10} {gz:>10}");
        rows.push((name, raw, gz));
    }
    println!(
        "{:<48} {raw_total:>10} {gz_total:>10}  ({:.1} KB gzip)\n",
        "total",
        gz_total as f64 / 1024.0
    );
    Ok(rows)
}

fn gzip_len(file: &std::path::Path) -> Result<u64, String> {
    let out = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(file)
        .output()
        .map_err(|e| format!("gzip: {e}"))?;
    Ok(out.stdout.len() as u64)
}
