//! Every case of libcalico-go's selector parser tests (transcribed in
//! `tests/data/calico-parser-cases.json`): matches and non-matches (also after re-parsing the
//! canonical form), bad selectors, and canonical forms that round-trip.

use netfence_selector::calico::Selector;
use netfence_selector::Labels;
use serde_json::Value;

fn labels(value: &Value) -> Labels {
    value
        .as_object()
        .expect("label map")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string").to_string()))
        .collect()
}

#[test]
fn upstream_selector_cases() {
    let data: Value =
        serde_json::from_str(include_str!("data/calico-parser-cases.json")).expect("data");
    let mut checked = 0;
    for case in data["match_cases"].as_array().unwrap() {
        let text = case["selector"].as_str().unwrap();
        let selector = Selector::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        let reparsed = Selector::parse(&selector.to_string())
            .unwrap_or_else(|e| panic!("canonical of {text:?}: {e}"));
        for (key, expected) in [("matches", true), ("non_matches", false)] {
            for l in case[key].as_array().unwrap() {
                let l = labels(l);
                assert_eq!(selector.matches(&l), expected, "{text:?} on {l:?}");
                assert_eq!(
                    reparsed.matches(&l),
                    expected,
                    "canonical {} on {l:?}",
                    selector
                );
                checked += 1;
            }
        }
    }
    for bad in data["bad_selectors"].as_array().unwrap() {
        let text = bad.as_str().unwrap();
        let error = Selector::parse(text).expect_err(text);
        assert!(
            error.column >= 1 && error.column <= text.chars().count() + 1,
            "{text:?}: column {}",
            error.column
        );
        checked += 1;
    }
    for case in data["canonical"].as_array().unwrap() {
        let input = case["input"].as_str().unwrap();
        let expected = case["expected"].as_str().unwrap();
        let canonical = Selector::parse(input)
            .unwrap_or_else(|e| panic!("{input:?}: {e}"))
            .to_string();
        assert_eq!(canonical, expected, "canonical form of {input:?}");
        assert_eq!(
            Selector::parse(&canonical).unwrap().to_string(),
            canonical,
            "round trip"
        );
        checked += 1;
    }
    println!("calico selector conformance: {checked} upstream checks pass");
}

#[test]
fn parse_errors_point_at_the_column() {
    assert_eq!(Selector::parse("a == \"b\" && %").unwrap_err().column, 13);
    assert_eq!(Selector::parse("a ==").unwrap_err().column, 5);
    assert_eq!(Selector::parse("(a == \"foo\"").unwrap_err().column, 12);
    assert_eq!(Selector::parse("foo in \"\"").unwrap_err().column, 8);
    assert_eq!(
        Selector::parse("'b1' == b").unwrap_err().column,
        9,
        "a label running to the end is not a label"
    );
}

// libcalico-go updateprocessors/rules.go and selectors.go: a rule's namespaceSelector is
// rewritten with `pcns.` keys, `all()` becomes has(projectcalico.org/namespace) and `global()`
// its negation; a global network set has no pcns labels.
#[test]
fn namespace_selectors_see_global_sets_as_in_no_namespace() {
    let labels: netfence_selector::Labels = [("env".to_string(), "dev".to_string())].into();
    let cases = [
        ("all()", true, false),
        ("global()", false, true),
        ("env == \"dev\"", true, false),
        ("env != \"prod\"", true, true),
        ("!has(env)", false, true),
        ("has(env)", true, false),
        ("!global()", true, false),
    ];
    for (text, namespaced, global) in cases {
        let selector = Selector::parse(text).unwrap();
        assert_eq!(
            selector.matches_namespace_of(Some(&labels)),
            namespaced,
            "{text} in a namespace"
        );
        assert_eq!(
            selector.matches_namespace_of(None),
            global,
            "{text} for a global set"
        );
    }
}
