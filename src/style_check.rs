//! The widget's stylesheet stays inside its namespace: every selector starts at `:host` (the
//! shadow host), `farm-chat` or an `fc-` class, so even where a page forces the light-DOM
//! fallback the host page's styles and the widget's never meet by accident.
//! (A test-only module: it reads `style/farm-chat.css` at compile time.)

/// The selectors of a stylesheet (comments and at-rule preludes skipped).
pub(crate) fn selectors(css: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = css;
    // Drop comments.
    while let Some(start) = rest.find("/*") {
        text.push_str(&rest[..start]);
        rest = rest[start..]
            .find("*/")
            .map_or("", |end| &rest[start + end + 2..]);
    }
    text.push_str(rest);
    for block in text.split('}') {
        // The rule's selector is what stands before its block's last `{`; inside
        // `@media (...) { .x { … } }` it follows the at-rule's brace.
        let Some((before, _)) = block.rsplit_once('{') else {
            continue;
        };
        let prelude = before.rsplit('{').next().unwrap_or(before).trim();
        if prelude.is_empty() || prelude.starts_with('@') {
            continue;
        }
        out.extend(
            prelude
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_widget_selector_is_namespaced() {
        let css = include_str!("../style/farm-chat.css");
        let all = selectors(css);
        assert!(all.len() > 20, "{all:?}");
        for selector in all {
            assert!(
                selector.starts_with(":host")
                    || selector.starts_with("farm-chat")
                    || selector.starts_with(".fc-"),
                "selector {selector:?} is not scoped to the widget"
            );
        }
    }

    #[test]
    fn the_parser_sees_media_rules_and_skips_comments() {
        let css = "/* p { x } */ .fc-a, .fc-b:hover { x: 1 } @media (prefers-reduced-motion: reduce) { .fc-c { y: 2 } }";
        assert_eq!(selectors(css), [".fc-a", ".fc-b:hover", ".fc-c"]);
        assert_eq!(selectors("p { color: red }"), ["p"]);
    }
}
