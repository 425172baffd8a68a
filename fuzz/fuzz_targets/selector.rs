//! Fuzz the Calico selector parser: arbitrary bytes as a selector. Nothing may panic or
//! overflow the stack (deep nesting is a parse error); a selector that parses renders to a
//! canonical form that parses again and gives the same answer on a few label sets built from
//! the keys and values it mentions; re-rendering that is a fixed point.
//!
//! Not one round trip to the same AST: like libcalico-go's `String()`, `!(!x)` renders as
//! `!!x`, which the parser collapses to `x` (a quirk Calico has too). The second round trip
//! is exact.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netfence_selector::calico::Selector;
use netfence_selector::Labels;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(selector) = Selector::parse(text) else {
        return;
    };
    let canonical = selector.to_string();
    let reparsed = Selector::parse(&canonical)
        .unwrap_or_else(|e| panic!("canonical form {canonical:?} of {text:?} does not parse: {e}"));
    let again = reparsed.to_string();
    assert_eq!(
        Selector::parse(&again).as_ref(),
        Ok(&reparsed),
        "{text:?} → {canonical:?} → {again:?}"
    );
    let keys: Vec<String> = selector
        .label_keys()
        .iter()
        .map(|k| k.to_string())
        .collect();
    // Values: the empty string, a word, and the quoted literals of the input (so that ==,
    // in, contains, starts with and ends with can be true).
    let mut values = vec![String::new(), "a".to_string()];
    for quote in ['"', '\''] {
        values.extend(
            text.split(quote)
                .skip(1)
                .step_by(2)
                .take(8)
                .map(str::to_string),
        );
    }
    let mut label_sets = vec![Labels::new()];
    for (v, value) in values.iter().enumerate() {
        // Every key with this value; and every other key only, so that has() and != vary.
        label_sets.push(keys.iter().map(|k| (k.clone(), value.clone())).collect());
        label_sets.push(
            keys.iter()
                .enumerate()
                .filter(|(k, _)| (k + v) % 2 == 0)
                .map(|(_, k)| (k.clone(), value.clone()))
                .collect(),
        );
    }
    for labels in &label_sets {
        assert_eq!(
            selector.matches(labels),
            reparsed.matches(labels),
            "{text:?} and its canonical form {canonical:?} disagree on {labels:?}"
        );
    }
});
