//! Fuzz the defensive parser alone (fast, unlike `load`, which also compiles and audits):
//! arbitrary text as one YAML document and as JSON. Nothing may panic, and a document is
//! either refused or parsed within the expansion budget (the parser's own limits), with the
//! same result on the fast path for plain YAML as with libyaml alone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netfence_model::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The fast path for plain YAML gives what libyaml gives, errors included.
    assert_eq!(
        parse::yaml_document(text),
        parse::yaml_document_libyaml(text)
    );
    let _ = parse::json(text);
});
