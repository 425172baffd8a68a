//! The self-contained page: the hand-written stylesheet and script (in `assets/`, no
//! framework, no network access) with the data inline as JSON.
//!
//! The data sits in a `<script type="application/json">` block. Inside a script element the
//! HTML parser only looks for `</script` (and `<!--`), so every `<`, `>` and `&` in the JSON is
//! written as a `\u00XX` escape (valid JSON inside strings, the only place they can occur),
//! and U+2028/U+2029 too: no label can close the block or open a comment.

use crate::data::ViewData;
use std::io::{self, Write};

const STYLE: &str = include_str!("../assets/page.css");
const SCRIPT: &str = include_str!("../assets/page.js");
const BODY: &str = include_str!("../assets/body.html");

/// Write the page for `data`.
pub fn write_page(out: &mut impl Write, data: &ViewData) -> io::Result<()> {
    let json = serde_json::to_string(data).map_err(io::Error::other)?;
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"color-scheme\" content=\"light dark\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; connect-src 'self'\">\n\
         <title>netfence view: {}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n{BODY}\
         <script type=\"application/json\" id=\"netfence-data\">",
        text(&data.title)
    )?;
    out.write_all(script_safe(&json).as_bytes())?;
    write!(
        out,
        "</script>\n<script>\n{SCRIPT}</script>\n</body>\n</html>\n"
    )
}

/// The page as a string.
pub fn page(data: &ViewData) -> String {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail; serialization of these types cannot either.
    let _ = write_page(&mut out, data);
    String::from_utf8(out).unwrap_or_default()
}

/// JSON made safe to sit inside a `<script>` element (see the module comment). Copies
/// runs of ordinary bytes at once: the page of a 10k-pod cluster is megabytes.
pub fn script_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 64);
    let bytes = json.as_bytes();
    let mut start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let escape = match byte {
            b'<' => "\\u003c",
            b'>' => "\\u003e",
            b'&' => "\\u0026",
            // U+2028 and U+2029 are E2 80 A8 and E2 80 A9 in UTF-8.
            0xE2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xA8) => "\\u2028",
            0xE2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xA9) => "\\u2029",
            _ => continue,
        };
        out.push_str(&json[start..i]);
        out.push_str(escape);
        start = i + if byte == 0xE2 { 3 } else { 1 };
    }
    out.push_str(&json[start..]);
    out
}

/// Text escaped for HTML element content and attribute values.
pub fn text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_safe_json_cannot_close_the_script_block() {
        let value = serde_json::json!({"label": "</script><script>alert(1)</script><!-- & \u{2028}é\u{2029}"});
        let safe = script_safe(&value.to_string());
        assert!(!safe.contains('<') && !safe.contains('>') && !safe.contains('&'));
        assert!(!safe.contains('\u{2028}') && !safe.contains('\u{2029}') && safe.contains('é'));
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn text_escapes_markup() {
        assert_eq!(text("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
    }
}
