//! Fuzz the defensive parser alone (fast, unlike `load`, which also compiles and audits):
//! arbitrary text as one YAML document and as JSON. Nothing may panic, and a document is
//! either refused or parsed within the expansion budget (the parser's own limits).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netfence_model::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse::yaml_document(text);
    let _ = parse::json(text);
});
