//! `bundle`: trunk's post-build hook (`Trunk.toml`), run on trunk's staging folder before it
//! becomes `dist/`.
//!
//! 1. Writes the launcher `farm-chat.js` from `launcher/farm-chat.js`: the content-hashed
//!    names of the widget's files (wasm-bindgen's module and the wasm) and the widget's
//!    stylesheet go in, so a host page loads one stable name and the rest can be cached for a
//!    year.
//! 2. In release builds, minifies the launcher and wasm-bindgen's module (esbuild), then
//!    writes a Brotli (`.br`, quality 11) and a gzip (`.gz`, level 9)
//!    variant beside every text or wasm file, which the dev-server serves by
//!    `Accept-Encoding`. Compressing once at build time costs no CPU per request and allows
//!    the slowest, smallest settings. A variant that is not smaller is not kept.

use std::{
    fs,
    path::{Path, PathBuf},
};

use crate::proc::{cmd, root, show};

/// The file name of the launcher, the one name host pages load.
pub(crate) const LAUNCHER: &str = "farm-chat.js";

/// Files worth compressing, by extension.
const COMPRESSIBLE: &[&str] = &["wasm", "js", "css", "html", "svg", "json", "txt"];

pub(crate) fn bundle() -> Result<(), String> {
    let staging = std::env::var_os("TRUNK_STAGING_DIR")
        .map(PathBuf::from)
        .ok_or("`cargo xtask bundle` is trunk's post-build hook (TRUNK_STAGING_DIR is not set)")?;
    write_launcher(&staging)?;
    if std::env::var("TRUNK_PROFILE").as_deref() == Ok("release") {
        let (js, _) = app_files(&staging)?;
        for name in [LAUNCHER, js.as_str()] {
            minify(&staging.join(name))?;
        }
        precompress(&staging)?;
    }
    Ok(())
}

/// The widget's files trunk wrote: (wasm-bindgen's module, the wasm), both content-hashed.
pub(crate) fn app_files(dir: &Path) -> Result<(String, String), String> {
    let names: Vec<String> = fs::read_dir(dir)
        .map_err(|e| format!("read {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let one = |what: &str, pick: &dyn Fn(&str) -> bool| {
        let found: Vec<&String> = names.iter().filter(|n| pick(n)).collect();
        match found.as_slice() {
            [name] => Ok((*name).clone()),
            _ => Err(format!(
                "expected one {what} in {}, found {found:?}",
                dir.display()
            )),
        }
    };
    let js = one("farm-chat-<hash>.js", &|n| {
        n.starts_with("farm-chat-") && n.ends_with(".js")
    })?;
    let wasm = one("farm-chat-<hash>_bg.wasm", &|n| {
        n.starts_with("farm-chat-") && n.ends_with("_bg.wasm")
    })?;
    Ok((js, wasm))
}

fn write_launcher(dir: &Path) -> Result<(), String> {
    let (js, wasm) = app_files(dir)?;
    let read = |path: PathBuf| {
        fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))
    };
    let template = read(root().join("launcher").join(LAUNCHER))?;
    let css = read(root().join("style").join("farm-chat.css"))?;
    // Comment lines are for the source, not for every farmer's download.
    let code: String = template
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| format!("{}\n", l.trim_end()))
        .collect();
    let launcher = code
        .replace("__FC_APP_JS__", &js)
        .replace("__FC_APP_WASM__", &wasm)
        .replace("__FC_STYLESHEET__", &json_string(&minify_css(&css)));
    if launcher.contains("__FC_") {
        return Err("launcher/farm-chat.js has a placeholder bundle does not fill".into());
    }
    let out = dir.join(LAUNCHER);
    fs::write(&out, launcher).map_err(|e| format!("write {}: {e}", out.display()))?;
    println!("bundle: {LAUNCHER} → {js}, {wasm}");
    // The element's TypeScript declarations, next to the script they describe.
    let types = root().join("launcher").join("farm-chat.d.ts");
    fs::copy(&types, dir.join("farm-chat.d.ts"))
        .map_err(|e| format!("copy {}: {e}", types.display()))?;
    Ok(())
}

/// Minifies a JavaScript module in place (esbuild: names, white space, comments). Its exports
/// keep their names: the launcher imports wasm-bindgen's module by them.
fn minify(file: &Path) -> Result<(), String> {
    let before = fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let tmp = with_suffix(file, "min");
    run_quiet(
        cmd("esbuild")
            .arg(file)
            .args([
                "--minify",
                "--format=esm",
                "--target=es2020",
                "--log-level=warning",
            ])
            .arg(format!("--outfile={}", tmp.display())),
    )?;
    fs::rename(&tmp, file).map_err(|e| format!("rename {}: {e}", tmp.display()))?;
    let after = fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    println!(
        "bundle: minified {} ({before} → {after} B)",
        file.file_name().unwrap_or_default().to_string_lossy()
    );
    Ok(())
}

/// CSS without comments and runs of white space (what a browser ignores anyway).
fn minify_css(css: &str) -> String {
    let mut out = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        rest = rest[start..]
            .find("*/")
            .map_or("", |end| &rest[start + end + 2..]);
    }
    out.push_str(rest);
    let collapsed = out.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut tight = collapsed;
    for punct in ["{", "}", ";", ","] {
        tight = tight
            .replace(&format!(" {punct}"), punct)
            .replace(&format!("{punct} "), punct);
    }
    tight
}

/// `text` as a JSON (and so JavaScript) string literal.
fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// Brotli and gzip variants of every compressible file under `dir`.
fn precompress(dir: &Path) -> Result<(), String> {
    let mut files = Vec::new();
    collect(dir, &mut files)?;
    for file in &files {
        let br = with_suffix(file, "br");
        let gz = with_suffix(file, "gz");
        run_quiet(
            cmd("brotli")
                .args(["-f", "-q", "11", "-o"])
                .arg(&br)
                .arg(file),
        )?;
        let out = fs::File::create(&gz).map_err(|e| format!("write {}: {e}", gz.display()))?;
        run_quiet(cmd("gzip").args(["-9", "-n", "-c"]).arg(file).stdout(out))?;
        let size = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(u64::MAX);
        for variant in [br, gz] {
            if size(&variant) >= size(file) {
                fs::remove_file(&variant).map_err(|e| e.to_string())?;
            }
        }
    }
    println!("bundle: Brotli and gzip variants of {} files", files.len());
    Ok(())
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), String> {
    for entry in fs::read_dir(dir).map_err(|e| format!("read {}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else if path
            .extension()
            .is_some_and(|x| COMPRESSIBLE.iter().any(|c| x == *c))
        {
            files.push(path);
        }
    }
    Ok(())
}

/// `file.ext` → `file.ext.suffix`.
pub(crate) fn with_suffix(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

fn run_quiet(c: &mut std::process::Command) -> Result<(), String> {
    let shown = show(c);
    let status = c
        .status()
        .map_err(|e| format!("cannot start `{shown}`: {e} (is Debian's `brotli` installed? `cargo xtask bootstrap` installs it)"))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("`{shown}` failed ({status})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn css_loses_comments_and_white_space_but_not_meaning() {
        let css = "/* a */\n.a  .b {\n  color: red;  /* b */\n  margin: 0 auto;\n}\n.c:hover , .d { x: y }";
        assert_eq!(
            minify_css(css),
            ".a .b{color: red;margin: 0 auto;}.c:hover,.d{x: y}"
        );
    }

    #[test]
    fn the_stylesheet_becomes_a_string_literal() {
        assert_eq!(json_string("a \"b\"\n</style>"), r#""a \"b\"\n</style>""#);
    }
}
