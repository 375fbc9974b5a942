//! The monthly shipment report as a real PDF with Japanese text: `GET /api/reports/{id}.pdf`.
//!
//! The PDF is written by hand (a dozen objects) with an embedded TrueType font: a subset of
//! VL Gothic (BSD-3-Clause / M+ / Sazanami licences, see `assets/LICENSE-VLGothic.txt`) that
//! covers every character this report can print. `cargo xtask report-font` rebuilds the subset
//! from the characters used in the sources; a test checks that nothing the report prints is
//! missing from it.

use std::fmt::Write as _;

use crate::{
    assistant::plan::thousands,
    herd::{Date, Herd},
};

/// The embedded font (a subset of VL Gothic Regular).
pub static FONT: &[u8] = include_bytes!("../assets/report-font.ttf");

/// One piece of text on the page.
#[derive(Clone, Debug, PartialEq)]
pub struct Text {
    /// From the left edge (pt).
    pub x: f64,
    /// From the bottom edge (pt).
    pub y: f64,
    /// Font size (pt).
    pub size: f64,
    /// What.
    pub text: String,
}

/// A table rule from `(x1, y1)` to `(x2, y2)` (pt).
pub type Rule = (f64, f64, f64, f64);

/// A4 in points.
const PAGE: (f64, f64) = (595.0, 842.0);

/// The report's texts and table rules for the shipments of the month of `herd.today`.
pub fn layout(farm: &str, report_id: &str, herd: &Herd) -> (Vec<Text>, Vec<Rule>) {
    let mut texts = Vec::new();
    let mut rules = Vec::new();
    let mut put = |x: f64, y: f64, size: f64, text: String| texts.push(Text { x, y, size, text });
    let (first, last) = (herd.today.first_of_month(), herd.today.last_of_month());
    let (y, m, _) = first.ymd();
    let head: u32 = herd.shipments.iter().map(|s| s.head).sum();
    let kg: f64 = herd.shipments.iter().map(|s| s.kg).sum();

    put(56.0, 780.0, 22.0, format!("{y}年{m}月 出荷報告書"));
    put(56.0, 760.0, 10.0, "Monthly shipment report".into());
    put(56.0, 728.0, 12.0, format!("牧場: {farm}"));
    put(
        56.0,
        710.0,
        12.0,
        format!("対象期間: {}〜{}", first.ja(), last.ja()),
    );
    put(
        56.0,
        692.0,
        12.0,
        format!("出荷回数: {}回", herd.shipments.len()),
    );
    put(56.0, 674.0, 12.0, format!("出荷頭数: {head}頭"));
    put(56.0, 656.0, 12.0, format!("総出荷量: {}kg", thousands(kg)));

    let columns = [56.0, 176.0, 256.0, 356.0];
    let mut row_y = 616.0;
    rules.push((56.0, row_y + 16.0, 539.0, row_y + 16.0));
    for (x, label) in columns
        .iter()
        .zip(["出荷日", "頭数", "重量 (kg)", "出荷先"])
    {
        put(*x, row_y, 11.0, label.into());
    }
    rules.push((56.0, row_y - 6.0, 539.0, row_y - 6.0));
    if herd.shipments.is_empty() {
        row_y -= 22.0;
        put(56.0, row_y, 11.0, "今月の出荷はまだありません".into());
    }
    for s in &herd.shipments {
        row_y -= 22.0;
        put(columns[0], row_y, 11.0, s.date.ja());
        put(columns[1], row_y, 11.0, format!("{}頭", s.head));
        put(columns[2], row_y, 11.0, thousands(s.kg));
        put(columns[3], row_y, 11.0, s.destination.to_owned());
    }
    rules.push((56.0, row_y - 8.0, 539.0, row_y - 8.0));
    row_y -= 26.0;
    put(columns[0], row_y, 11.0, "合計".into());
    put(columns[1], row_y, 11.0, format!("{head}頭"));
    put(columns[2], row_y, 11.0, thousands(kg));

    put(
        56.0,
        60.0,
        9.0,
        format!(
            "報告書ID: {report_id}  作成日: {}  farm-chat",
            Date::today().ja()
        ),
    );
    (texts, rules)
}

/// The PDF for `texts` and `rules` with the embedded font.
pub fn pdf(texts: &[Text], rules: &[Rule]) -> Result<Vec<u8>, String> {
    let face = ttf_parser::Face::parse(FONT, 0).map_err(|e| format!("embedded font: {e}"))?;
    let upem = f64::from(face.units_per_em());
    let scale = |v: f64| (v * 1000.0 / upem).round() as i64;

    // Glyphs: content strings are 2-byte glyph ids (Identity-H, CIDToGIDMap Identity).
    let mut used: std::collections::BTreeMap<u16, char> = std::collections::BTreeMap::new();
    let mut content = String::new();
    for t in texts {
        let mut hex = String::new();
        for c in t.text.chars() {
            let gid = face
                .glyph_index(c)
                .ok_or_else(|| format!("the report font has no glyph for {c:?}"))?;
            used.insert(gid.0, c);
            let _ = write!(hex, "{:04X}", gid.0);
        }
        let _ = writeln!(
            content,
            "BT /F1 {} Tf {:.1} {:.1} Td <{hex}> Tj ET",
            t.size, t.x, t.y
        );
    }
    content.push_str("0.5 w\n");
    for (x1, y1, x2, y2) in rules {
        let _ = writeln!(content, "{x1:.1} {y1:.1} m {x2:.1} {y2:.1} l S");
    }

    let widths: String = used
        .keys()
        .map(|gid| {
            let advance = face
                .glyph_hor_advance(ttf_parser::GlyphId(*gid))
                .unwrap_or(0);
            format!("{gid} [{}]", scale(f64::from(advance)))
        })
        .collect::<Vec<_>>()
        .join(" ");
    let mut to_unicode = String::from(
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n\
         /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
         /CMapName /Adobe-Identity-UCS def /CMapType 2 def\n\
         1 begincodespacerange <0000> <FFFF> endcodespacerange\n",
    );
    for chunk in used.iter().collect::<Vec<_>>().chunks(100) {
        let _ = writeln!(to_unicode, "{} beginbfchar", chunk.len());
        for (gid, c) in chunk {
            let mut utf16 = [0u16; 2];
            let units: String = c
                .encode_utf16(&mut utf16)
                .iter()
                .map(|u| format!("{u:04X}"))
                .collect();
            let _ = writeln!(to_unicode, "<{gid:04X}> <{units}>");
        }
        to_unicode.push_str("endbfchar\n");
    }
    to_unicode.push_str("endcmap CMapName currentdict /CMap defineresource pop end end\n");

    let bbox = face.global_bounding_box();
    let mut w = PdfWriter::default();
    w.object(1, "<< /Type /Catalog /Pages 2 0 R >>");
    w.object(2, "<< /Type /Pages /Kids [3 0 R] /Count 1 >>");
    w.object(
        3,
        &format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {} {}] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
            PAGE.0, PAGE.1
        ),
    );
    w.stream(4, "", content.as_bytes());
    w.object(
        5,
        "<< /Type /Font /Subtype /Type0 /BaseFont /VLGothic-Subset /Encoding /Identity-H /DescendantFonts [6 0 R] /ToUnicode 9 0 R >>",
    );
    w.object(
        6,
        &format!(
            "<< /Type /Font /Subtype /CIDFontType2 /BaseFont /VLGothic-Subset \
             /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> \
             /FontDescriptor 7 0 R /DW 1000 /W [{widths}] /CIDToGIDMap /Identity >>"
        ),
    );
    w.object(
        7,
        &format!(
            "<< /Type /FontDescriptor /FontName /VLGothic-Subset /Flags 4 /FontBBox [{} {} {} {}] \
             /ItalicAngle 0 /Ascent {} /Descent {} /CapHeight {} /StemV 80 /FontFile2 8 0 R >>",
            scale(f64::from(bbox.x_min)),
            scale(f64::from(bbox.y_min)),
            scale(f64::from(bbox.x_max)),
            scale(f64::from(bbox.y_max)),
            scale(f64::from(face.ascender())),
            scale(f64::from(face.descender())),
            scale(f64::from(face.capital_height().unwrap_or(face.ascender()))),
        ),
    );
    w.stream(8, &format!("/Length1 {}", FONT.len()), FONT);
    w.stream(9, "", to_unicode.as_bytes());
    Ok(w.finish(1))
}

/// Just enough of a PDF writer: numbered objects, streams, the xref table.
#[derive(Default)]
struct PdfWriter {
    out: Vec<u8>,
    offsets: Vec<(u32, usize)>,
}

impl PdfWriter {
    fn start(&mut self) {
        if self.out.is_empty() {
            self.out.extend_from_slice(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n");
        }
    }

    fn object(&mut self, id: u32, body: &str) {
        self.start();
        self.offsets.push((id, self.out.len()));
        self.out
            .extend_from_slice(format!("{id} 0 obj\n{body}\nendobj\n").as_bytes());
    }

    fn stream(&mut self, id: u32, extra: &str, data: &[u8]) {
        self.start();
        self.offsets.push((id, self.out.len()));
        self.out.extend_from_slice(
            format!("{id} 0 obj\n<< /Length {} {extra} >>\nstream\n", data.len()).as_bytes(),
        );
        self.out.extend_from_slice(data);
        self.out.extend_from_slice(b"\nendstream\nendobj\n");
    }

    fn finish(mut self, root: u32) -> Vec<u8> {
        self.offsets.sort_unstable();
        let xref = self.out.len();
        let count = self.offsets.len() + 1;
        let mut table = format!("xref\n0 {count}\n0000000000 65535 f \n");
        for (_, offset) in &self.offsets {
            let _ = writeln!(table, "{offset:010} 00000 n ");
        }
        let _ = write!(
            table,
            "trailer\n<< /Size {count} /Root {root} 0 R >>\nstartxref\n{xref}\n%%EOF\n"
        );
        self.out.extend_from_slice(table.as_bytes());
        self.out
    }
}

/// The month a report id names: `shipments-YYYY-MM`.
pub fn parse_report_id(id: &str) -> Option<(i32, u32)> {
    let rest = id.strip_prefix("shipments-")?;
    let (y, m) = rest.split_once('-')?;
    if y.len() != 4 || m.len() != 2 || !(y.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
    (2000..=9999).contains(&y).then_some(())?;
    (1..=12).contains(&m).then_some((y, m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::herd::herd;

    #[test]
    fn every_character_the_report_can_print_is_in_the_embedded_font() {
        let face = ttf_parser::Face::parse(FONT, 0).unwrap();
        let mut missing = std::collections::BTreeSet::new();
        for tenant in ["demo-farm", "other-farm"] {
            for month in 1..=12 {
                let h = herd(tenant, Date::from_ymd(2026, month, 28));
                let (texts, _) =
                    layout(crate::directory::farm_name(tenant), "shipments-2026-01", &h);
                let empty = Herd {
                    shipments: Vec::new(),
                    ..h
                };
                let (more, _) = layout(crate::directory::farm_name(tenant), "x", &empty);
                for t in texts.iter().chain(&more) {
                    missing.extend(t.text.chars().filter(|c| face.glyph_index(*c).is_none()));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "missing glyphs {missing:?}: run `cargo xtask report-font`"
        );
    }

    #[test]
    fn the_pdf_is_well_formed_and_carries_the_text() {
        let h = herd("demo-farm", Date::from_ymd(2026, 11, 22));
        let (texts, rules) = layout("山田牧場", "shipments-2026-11", &h);
        let bytes = pdf(&texts, &rules).unwrap();
        assert!(bytes.starts_with(b"%PDF-1.7"));
        assert!(bytes.ends_with(b"%%EOF\n"));
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("/FontFile2 8 0 R") && text.contains("/ToUnicode 9 0 R"));
        // The xref points at each object (offsets are bytes: the font makes the file binary).
        let find = |needle: &[u8]| {
            bytes
                .windows(needle.len())
                .rposition(|w| w == needle)
                .unwrap()
        };
        let after = find(b"startxref\n") + b"startxref\n".len();
        let xref_at: usize = std::str::from_utf8(&bytes[after..])
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let xref = std::str::from_utf8(&bytes[xref_at..]).unwrap();
        assert!(xref.starts_with("xref\n0 10\n"), "{xref}");
        for (i, line) in xref.lines().skip(3).take(9).enumerate() {
            let offset: usize = line[..10].parse().unwrap();
            assert!(
                bytes[offset..].starts_with(format!("{} 0 obj", i + 1).as_bytes()),
                "object {}",
                i + 1
            );
        }
        // The title's glyphs are in the content, and ToUnicode maps them back.
        let face = ttf_parser::Face::parse(FONT, 0).unwrap();
        let hex: String = "出荷報告書"
            .chars()
            .map(|c| format!("{:04X}", face.glyph_index(c).unwrap().0))
            .collect();
        assert!(text.contains(&hex));
        let gid = face.glyph_index('牧').unwrap().0;
        assert!(
            text.contains(&format!("<{gid:04X}> <7267>")),
            "牧 is U+7267 in ToUnicode"
        );
        // Every shipment appears.
        assert_eq!(
            texts.iter().filter(|t| t.text.ends_with('頭')).count(),
            h.shipments.len() + 2
        );
    }

    #[test]
    fn report_ids_are_strict() {
        assert_eq!(parse_report_id("shipments-2026-11"), Some((2026, 11)));
        for bad in [
            "shipments-2026-13",
            "shipments-26-11",
            "shipments-2026-1",
            "report-2026-11",
            "shipments-2026-11x",
            "shipments-１２３４-11",
        ] {
            assert_eq!(parse_report_id(bad), None, "{bad}");
        }
    }
}
