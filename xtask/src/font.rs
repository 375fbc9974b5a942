//! `cargo xtask report-font`: rebuilds the PDF report's embedded font, a subset of VL Gothic
//! (Debian's fonts-vlgothic; BSD-3-Clause / M+ / Sazanami licences) holding every character
//! that appears in the sources the report's text comes from, plus printable ASCII.
//! Needs Debian's fonts-vlgothic and fonttools' pyftsubset (PyPI); it installs them when it can.

use std::{collections::BTreeSet, path::Path};

use crate::proc::{cmd, output, root, run};

const SYSTEM_FONT: &str = "/usr/share/fonts/truetype/vlgothic/VL-Gothic-Regular.ttf";
/// The sources whose string literals the report prints.
const SOURCES: [&str; 4] = [
    "dev-server/src/report.rs",
    "dev-server/src/herd.rs",
    "dev-server/src/herd/date.rs",
    "dev-server/src/directory.rs",
];

pub(crate) fn report_font() -> Result<(), String> {
    if !Path::new(SYSTEM_FONT).is_file() {
        run(cmd("apt-get").args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "fonts-vlgothic",
        ]))
        .map_err(|e| format!("{e}\nInstall Debian's fonts-vlgothic."))?;
    }
    if output(cmd("pyftsubset").arg("--help")).is_none() {
        run(cmd("python3").args(["-m", "pip", "install", "--quiet", "fonttools"]))?;
    }
    let mut chars: BTreeSet<char> = (' '..='~').collect();
    for source in SOURCES {
        let text = std::fs::read_to_string(root().join(source))
            .map_err(|e| format!("read {source}: {e}"))?;
        chars.extend(text.chars().filter(|c| !c.is_ascii() && !c.is_control()));
    }
    let assets = root().join("dev-server/assets");
    let charset = assets.join("report-charset.txt");
    std::fs::write(&charset, chars.iter().collect::<String>()).map_err(|e| e.to_string())?;
    run(cmd("pyftsubset")
        .arg(SYSTEM_FONT)
        .arg(format!("--text-file={}", charset.display()))
        .arg(format!(
            "--output-file={}",
            assets.join("report-font.ttf").display()
        ))
        .args([
            "--no-hinting",
            "--layout-features=",
            "--name-IDs=*",
            "--notdef-outline",
        ]))?;
    println!(
        "report-font: {} characters → dev-server/assets/report-font.ttf",
        chars.len()
    );
    Ok(())
}
