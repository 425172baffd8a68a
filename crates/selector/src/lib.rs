//! Label selectors, parsed once into a small AST and evaluated against label maps.
//!
//! This crate holds the Kubernetes `LabelSelector` (`matchLabels` AND `matchExpressions`) and,
//! in [`calico`], the Calico selector language. Nothing here knows about pods or
//! policies: a selector only answers "do these labels match?".

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod calico;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A set of labels, ordered so that output is deterministic.
pub type Labels = BTreeMap<String, String>;

/// Read access to a label set: selectors match through it, so a label set that is a base
/// plus a few labels on top (Calico's implicit labels) need not be copied to be matched.
pub trait LabelLookup {
    /// The value of `key`, if the set has it.
    fn label(&self, key: &str) -> Option<&str>;
}

impl LabelLookup for Labels {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// A label set seen with some labels added on top (they win over the base's own), without
/// copying the base.
#[derive(Clone, Copy, Debug)]
pub struct WithLabels<'a> {
    /// The labels underneath.
    pub base: &'a Labels,
    /// Labels on top, checked first.
    pub extra: &'a [(&'a str, &'a str)],
}

impl LabelLookup for WithLabels<'_> {
    fn label(&self, key: &str) -> Option<&str> {
        match self.extra.iter().find(|(k, _)| *k == key) {
            Some((_, value)) => Some(value),
            None => self.base.label(key),
        }
    }
}

/// One requirement of a Kubernetes label selector.
///
/// Semantics follow `k8s.io/apimachinery/pkg/labels/selector.go` (`Requirement.Matches`):
/// `NotIn` and `DoesNotExist` are true when the key is absent.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Requirement {
    /// `key in (v1, v2)`; `matchLabels` entries become `In` with one value.
    In(String, BTreeSet<String>),
    /// `key notin (v1, v2)`: true when the key is absent.
    NotIn(String, BTreeSet<String>),
    /// `key`: the key is present with any value.
    Exists(String),
    /// `!key`: the key is absent.
    DoesNotExist(String),
}

impl Requirement {
    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        match self {
            Requirement::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
            Requirement::NotIn(key, values) => labels.get(key).is_none_or(|v| !values.contains(v)),
            Requirement::Exists(key) => labels.contains_key(key),
            Requirement::DoesNotExist(key) => !labels.contains_key(key),
        }
    }

    /// The label key this requirement constrains.
    pub fn key(&self) -> &str {
        match self {
            Requirement::In(k, _)
            | Requirement::NotIn(k, _)
            | Requirement::Exists(k)
            | Requirement::DoesNotExist(k) => k,
        }
    }
}

/// A Kubernetes label selector: the AND of its requirements. No requirement matches everything.
///
/// ```
/// use netfence_selector::{LabelSelector, Labels};
/// let selector = LabelSelector::from_parts(
///     [("app".to_string(), "web".to_string())],
///     [("tier", "NotIn", vec!["db".to_string()])],
/// ).unwrap();
/// let labels: Labels = [("app".to_string(), "web".to_string())].into();
/// assert!(selector.matches(&labels));
/// assert_eq!(selector.to_string(), "app=web,tier notin (db)");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

/// Why a selector was rejected. `field` is relative to the selector (`matchExpressions[0].operator`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SelectorError {
    /// Path of the offending field, relative to the selector object.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl LabelSelector {
    /// The selector that matches every label set (`{}`).
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    /// Build from requirements directly (already validated).
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort();
        requirements.dedup();
        LabelSelector { requirements }
    }

    /// Build and validate a selector from `matchLabels` and `matchExpressions`
    /// (`(key, operator, values)`), as `metav1.LabelSelectorAsSelector` does.
    pub fn from_parts<'a>(
        match_labels: impl IntoIterator<Item = (String, String)>,
        match_expressions: impl IntoIterator<Item = (&'a str, &'a str, Vec<String>)>,
    ) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in match_labels {
            validate_key(&key).map_err(|m| SelectorError {
                field: format!("matchLabels.{key}"),
                message: m,
            })?;
            validate_value(&value).map_err(|m| SelectorError {
                field: format!("matchLabels.{key}"),
                message: m,
            })?;
            requirements.push(Requirement::In(key, BTreeSet::from([value])));
        }
        for (index, (key, operator, values)) in match_expressions.into_iter().enumerate() {
            let field = |leaf: &str| format!("matchExpressions[{index}].{leaf}");
            validate_key(key).map_err(|m| SelectorError {
                field: field("key"),
                message: m,
            })?;
            for value in &values {
                validate_value(value).map_err(|m| SelectorError {
                    field: field("values"),
                    message: m,
                })?;
            }
            let key = key.to_string();
            let requirement = match operator {
                "In" | "NotIn" => {
                    if values.is_empty() {
                        return Err(SelectorError {
                            field: field("values"),
                            message: format!("must be non-empty when operator is {operator}"),
                        });
                    }
                    let set: BTreeSet<String> = values.into_iter().collect();
                    if operator == "In" {
                        Requirement::In(key, set)
                    } else {
                        Requirement::NotIn(key, set)
                    }
                }
                "Exists" | "DoesNotExist" => {
                    if !values.is_empty() {
                        return Err(SelectorError {
                            field: field("values"),
                            message: format!("must be empty when operator is {operator}"),
                        });
                    }
                    if operator == "Exists" {
                        Requirement::Exists(key)
                    } else {
                        Requirement::DoesNotExist(key)
                    }
                }
                other => {
                    return Err(SelectorError {
                        field: field("operator"),
                        message: format!(
                        "unknown operator {other:?} (expected In, NotIn, Exists or DoesNotExist)"
                    ),
                    })
                }
            };
            requirements.push(requirement);
        }
        Ok(LabelSelector::from_requirements(requirements))
    }

    /// Whether the selector matches these labels.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True for the empty selector, which matches everything.
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |values: &BTreeSet<String>| values.iter().cloned().collect::<Vec<_>>().join(",");
        match self {
            Requirement::In(key, values) if values.len() == 1 => {
                write!(f, "{key}={}", join(values))
            }
            Requirement::In(key, values) => write!(f, "{key} in ({})", join(values)),
            Requirement::NotIn(key, values) => write!(f, "{key} notin ({})", join(values)),
            Requirement::Exists(key) => write!(f, "{key}"),
            Requirement::DoesNotExist(key) => write!(f, "!{key}"),
        }
    }
}

/// Renders in `kubectl`'s selector syntax; the empty selector renders as `{}`
/// (everything), unlike kubectl's empty string, so that explanations stay readable.
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.requirements.is_empty() {
            return write!(f, "{{}}");
        }
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                write!(f, ",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

/// Validate a label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63
/// characters of `[A-Za-z0-9_.-]`, starting and ending alphanumeric
/// (apimachinery `validation.IsQualifiedName`).
pub fn validate_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() || prefix.len() > 253 {
            return Err(format!(
                "invalid label key {key:?}: prefix must be 1-253 characters"
            ));
        }
        let ok = prefix.split('.').all(|part| {
            !part.is_empty()
                && part.len() <= 63
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
        if !ok {
            return Err(format!(
                "invalid label key {key:?}: prefix must be a lowercase DNS subdomain"
            ));
        }
    }
    if name.is_empty() {
        return Err(format!(
            "invalid label key {key:?}: name part must not be empty"
        ));
    }
    check_name_chars(name).map_err(|m| format!("invalid label key {key:?}: {m}"))
}

/// Validate a label value: empty, or at most 63 characters of `[A-Za-z0-9_.-]`
/// starting and ending alphanumeric (apimachinery `validation.IsValidLabelValue`).
pub fn validate_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    check_name_chars(value).map_err(|m| format!("invalid label value {value:?}: {m}"))
}

fn check_name_chars(name: &str) -> Result<(), String> {
    if name.len() > 63 {
        return Err("must be at most 63 characters".into());
    }
    let bytes = name.as_bytes();
    let alnum = |b: u8| b.is_ascii_alphanumeric();
    if !bytes
        .iter()
        .all(|&b| alnum(b) || b == b'-' || b == b'_' || b == b'.')
    {
        return Err("may contain only letters, digits, '-', '_' and '.'".into());
    }
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err("must start and end with a letter or digit".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn labels_on_top_win_and_the_rest_come_from_the_base() {
        let base: Labels = [("app", "web"), ("projectcalico.org/namespace", "forged")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let view = WithLabels {
            base: &base,
            extra: &[("projectcalico.org/namespace", "shop")],
        };
        assert_eq!(view.label("projectcalico.org/namespace"), Some("shop"));
        assert_eq!(view.label("app"), Some("web"));
        assert_eq!(view.label("tier"), None);
        let selector =
            calico::Selector::parse("app == 'web' && projectcalico.org/namespace == 'shop'")
                .unwrap_or_else(|e| panic!("{e}"));
        assert!(selector.matches_with(&view));
        assert!(!selector.matches(&base));
    }

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(
        key: &'static str,
        op: &'static str,
        values: &[&str],
    ) -> (&'static str, &'static str, Vec<String>) {
        (key, op, values.iter().map(|v| v.to_string()).collect())
    }

    // Semantics from k8s.io/apimachinery/pkg/labels/selector.go, Requirement.Matches.
    #[test]
    fn not_in_and_does_not_exist_match_absent_keys() {
        let empty = labels(&[]);
        let not_in = LabelSelector::from_parts([], [expr("env", "NotIn", &["prod"])]).unwrap();
        let absent = LabelSelector::from_parts([], [expr("env", "DoesNotExist", &[])]).unwrap();
        let exists = LabelSelector::from_parts([], [expr("env", "Exists", &[])]).unwrap();
        assert!(not_in.matches(&empty));
        assert!(absent.matches(&empty));
        assert!(!exists.matches(&empty));
        assert!(!not_in.matches(&labels(&[("env", "prod")])));
        assert!(not_in.matches(&labels(&[("env", "dev")])));
    }

    #[test]
    fn match_labels_and_expressions_are_anded() {
        let selector = LabelSelector::from_parts(
            [("app".into(), "web".into())],
            [expr("tier", "In", &["a", "b"])],
        )
        .unwrap();
        assert!(selector.matches(&labels(&[("app", "web"), ("tier", "a")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("tier", "c")])));
        assert!(!selector.matches(&labels(&[("tier", "a")])));
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(LabelSelector::everything().matches(&labels(&[("a", "b")])));
        assert_eq!(LabelSelector::everything().to_string(), "{}");
    }

    #[test]
    fn invalid_selectors_name_the_field() {
        let err = LabelSelector::from_parts([], [expr("k", "Within", &["x"])]).unwrap_err();
        assert_eq!(err.field, "matchExpressions[0].operator");
        let err = LabelSelector::from_parts([], [expr("k", "In", &[])]).unwrap_err();
        assert_eq!(err.field, "matchExpressions[0].values");
        let err = LabelSelector::from_parts([], [expr("k", "Exists", &["x"])]).unwrap_err();
        assert_eq!(err.field, "matchExpressions[0].values");
        let err = LabelSelector::from_parts([("bad key!".into(), "v".into())], []).unwrap_err();
        assert_eq!(err.field, "matchLabels.bad key!");
        let err = LabelSelector::from_parts([("k".into(), "-v".into())], []).unwrap_err();
        assert!(err.message.contains("start and end"));
    }

    #[test]
    fn keys_with_prefixes_validate() {
        assert!(validate_key("kubernetes.io/metadata.name").is_ok());
        assert!(validate_key("app.kubernetes.io/name").is_ok());
        assert!(validate_key("/name").is_err());
        assert!(validate_key("UPPER.io/name").is_err());
        assert!(validate_key(&"a".repeat(64)).is_err());
    }
}
