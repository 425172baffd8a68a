//! The Calico selector language, as libcalico-go implements it
//! (`libcalico-go/lib/selector/{tokenizer,parser}` in projectcalico/calico): a tokenizer, a
//! recursive-descent parser (`||` lowest, then `&&`, then an optionally negated operation),
//! an AST, evaluation, and the canonical rendering of the parser's `String()`.
//!
//! Quirks kept on purpose, because Calico has them:
//! - only space and tab are whitespace; a label that runs to the very end of the input is not
//!   recognised (`findIdentifier` returns nothing), so a trailing bare label is an error;
//! - leading `!`s collapse (`!!has(a)` is `has(a)`), and `!` binds to one operation
//!   (`!a == "b"` is `!(a == "b")`);
//! - `!=` and `not in` are true when the label is absent;
//! - `&&`/`||` render parenthesised even at the top level; set members render sorted and
//!   de-duplicated; a value renders in `"` unless it contains `"`, then in `'`;
//! - the empty selector means `all()`.
//!
//! One limit Calico does not have: parentheses nest at most [`MAX_NESTING`] deep. The parser
//! recurses once per `(`, as libcalico-go's does (`parseOperation` calls `parseOrExpression`),
//! and a Rust thread's stack, unlike a goroutine's, does not grow: 20,000 `(` would overflow it
//! and abort the process. Everything that walks the AST (`matches`, `Display`, `label_keys`,
//! the derived traits) recurses too, and relies on this bound for parsed selectors.

use crate::{LabelLookup, Labels};
use std::collections::BTreeSet;
use std::fmt;

/// A parse error, with the 1-based column where it was found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ParseError {
    /// 1-based column (in characters) of the offending input.
    pub column: usize,
    /// What was wrong.
    pub message: String,
}

/// A parsed Calico selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Selector {
    /// `label == "value"`.
    Eq(String, String),
    /// `label != "value"`: true when the label is absent.
    Ne(String, String),
    /// `label contains "value"`.
    Contains(String, String),
    /// `label starts with "value"`.
    StartsWith(String, String),
    /// `label ends with "value"`.
    EndsWith(String, String),
    /// `label in {"a", "b"}`.
    In(String, BTreeSet<String>),
    /// `label not in {"a", "b"}`: true when the label is absent.
    NotIn(String, BTreeSet<String>),
    /// `has(label)`.
    Has(String),
    /// `!operation`.
    Not(Box<Selector>),
    /// `a && b && …` (two or more).
    And(Vec<Selector>),
    /// `a || b || …` (two or more).
    Or(Vec<Selector>),
    /// `all()`: everything.
    All,
    /// `global()`: everything, but in a namespace selector it means "the non-namespaced
    /// network sets" (see [`Selector::is_global`]).
    Global,
}

/// How deep parentheses may nest in a selector; deeper input is a [`ParseError`] at the
/// first `(` past the limit. Real selectors nest a handful of levels; this leaves ample room
/// while keeping the parser's (and every AST walk's) recursion far from the stack's end.
pub const MAX_NESTING: usize = 128;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Label(String),
    Str(String),
    LBrace,
    RBrace,
    Comma,
    Eq,
    Ne,
    In,
    Not,
    NotIn,
    Contains,
    StartsWith,
    EndsWith,
    All,
    Has(String),
    LParen,
    RParen,
    And,
    Or,
    Global,
    Eof,
}

#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    /// Byte offset of the token in the input.
    at: usize,
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-')
}

/// libcalico-go's `findIdentifier`: the identifier at the start of `s`, or "" when there is
/// none — and also "" when identifier characters run to the end of the input.
fn find_identifier(s: &str) -> &str {
    for (i, b) in s.bytes().enumerate() {
        if !is_ident_byte(b) {
            return &s[..i];
        }
    }
    ""
}

fn tokenize(input: &str) -> Result<Vec<Token>, ParseError> {
    let mut tokens: Vec<Token> = Vec::new();
    let mut pos = 0;
    let err = |at: usize, message: &str| ParseError {
        column: input[..at.min(input.len())].chars().count() + 1,
        message: message.to_string(),
    };
    loop {
        let rest = &input[pos..];
        let trimmed = rest.trim_start_matches([' ', '\t']);
        pos += rest.len() - trimmed.len();
        let rest = &input[pos..];
        if rest.is_empty() {
            tokens.push(Token {
                kind: Kind::Eof,
                at: pos,
            });
            return Ok(tokens);
        }
        let after_label = matches!(
            tokens.last(),
            Some(Token {
                kind: Kind::Label(_),
                ..
            })
        );
        let start = pos;
        let bytes = rest.as_bytes();
        let simple = |kind: Kind, len: usize| (kind, len);
        let (kind, len) = match bytes[0] {
            b'(' => simple(Kind::LParen, 1),
            b')' => simple(Kind::RParen, 1),
            b'{' => simple(Kind::LBrace, 1),
            b'}' => simple(Kind::RBrace, 1),
            b',' => simple(Kind::Comma, 1),
            quote @ (b'"' | b'\'') => {
                let body = &rest[1..];
                match body.find(quote as char) {
                    Some(end) => (Kind::Str(body[..end].to_string()), end + 2),
                    None => return Err(err(start, "unterminated string")),
                }
            }
            b'=' if bytes.get(1) == Some(&b'=') => simple(Kind::Eq, 2),
            b'=' => return Err(err(start, "expected ==")),
            b'!' if bytes.get(1) == Some(&b'=') => simple(Kind::Ne, 2),
            b'!' => simple(Kind::Not, 1),
            b'&' if bytes.get(1) == Some(&b'&') => simple(Kind::And, 2),
            b'&' => return Err(err(start, "expected &&")),
            b'|' if bytes.get(1) == Some(&b'|') => simple(Kind::Or, 2),
            b'|' => return Err(err(start, "expected ||")),
            _ if after_label => {
                let expecting = || {
                    err(
                        start,
                        "unexpected characters after label, was expecting an operator",
                    )
                };
                // `starts with`, `ends with` and `not in` allow whitespace between the words.
                let two_words = |first: &str, second: &str, kind: Kind| {
                    let after = rest[first.len()..].trim_start_matches([' ', '\t']);
                    if after.starts_with(second) {
                        Ok((kind, rest.len() - after.len() + second.len()))
                    } else {
                        Err(expecting())
                    }
                };
                if rest.starts_with("contains") {
                    (Kind::Contains, "contains".len())
                } else if rest.starts_with("starts") {
                    two_words("starts", "with", Kind::StartsWith)?
                } else if rest.starts_with("ends") {
                    two_words("ends", "with", Kind::EndsWith)?
                } else if rest.starts_with("not") {
                    two_words("not", "in", Kind::NotIn)?
                } else if rest.starts_with("in") {
                    (Kind::In, 2)
                } else {
                    return Err(expecting());
                }
            }
            _ if rest.starts_with("has(") => {
                let inner = &rest[4..];
                let inner_trimmed = inner.trim_start_matches([' ', '\t']);
                let ident = find_identifier(inner_trimmed);
                if ident.is_empty() {
                    return Err(err(start, "no label name in has( expression"));
                }
                let after = inner_trimmed[ident.len()..].trim_start_matches([' ', '\t']);
                if !after.starts_with(')') {
                    return Err(err(start, "no closing ')' after has("));
                }
                (Kind::Has(ident.to_string()), rest.len() - after.len() + 1)
            }
            _ if rest.starts_with("all(") || rest.starts_with("global(") => {
                let (kind, word) = if rest.starts_with("all(") {
                    (Kind::All, "all(")
                } else {
                    (Kind::Global, "global(")
                };
                let after = rest[word.len()..].trim_start_matches([' ', '\t']);
                if !after.starts_with(')') {
                    return Err(err(start, &format!("no closing ')' after {word}")));
                }
                (kind, rest.len() - after.len() + 1)
            }
            _ => {
                let ident = find_identifier(rest);
                if ident.is_empty() {
                    return Err(err(start, "unexpected characters"));
                }
                (Kind::Label(ident.to_string()), ident.len())
            }
        };
        tokens.push(Token { kind, at: start });
        pos += len;
    }
}

/// A parsed subtree and how deep its canonical form nests parentheses.
type Parsed = (Selector, usize);

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Token>,
    next: usize,
    /// Parentheses open around the current position.
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.next.min(self.tokens.len() - 1)]
    }

    fn error(&self, token: &Token, message: impl Into<String>) -> ParseError {
        ParseError {
            column: self.input[..token.at.min(self.input.len())].chars().count() + 1,
            message: message.into(),
        }
    }

    fn or_expression(&mut self) -> Result<Parsed, ParseError> {
        self.list(Kind::Or, Selector::Or, Self::and_expression)
    }

    fn and_expression(&mut self) -> Result<Parsed, ParseError> {
        self.list(Kind::And, Selector::And, Self::operation)
    }

    /// `operand (separator operand)*`: one operand alone, or `make` of all of them.
    fn list(
        &mut self,
        separator: Kind,
        make: fn(Vec<Selector>) -> Selector,
        operand: fn(&mut Self) -> Result<Parsed, ParseError>,
    ) -> Result<Parsed, ParseError> {
        let (first, mut nesting) = operand(self)?;
        let mut operands = vec![first];
        let mut first_separator = None;
        while self.peek().kind == separator {
            first_separator.get_or_insert_with(|| self.peek().clone());
            self.next += 1;
            let (next, inner) = operand(self)?;
            nesting = nesting.max(inner);
            operands.push(next);
        }
        let Some(separator) = first_separator else {
            return Ok((operands.remove(0), nesting));
        };
        // The canonical form wraps every `&&`/`||` in parentheses, one level more than the
        // input may have (`a && (b || c)`): bound that too, so that it always parses again.
        if nesting >= MAX_NESTING {
            return Err(self.error(
                &separator,
                format!("expression nested more than {MAX_NESTING} deep (counting the parentheses of its canonical form)"),
            ));
        }
        Ok((make(operands), nesting + 1))
    }

    fn string_after(
        &mut self,
        label: String,
        make: fn(String, String) -> Selector,
    ) -> Result<Selector, ParseError> {
        let token = self.peek().clone();
        match token.kind {
            Kind::Str(value) => {
                self.next += 1;
                Ok(make(label, value))
            }
            _ => Err(self.error(&token, "expected string")),
        }
    }

    /// `label op value` or `label (not) in {…}`, after the label. Kept out of `operation` so
    /// that the frame the parser recurses through stays small.
    fn comparison(&mut self, label: String) -> Result<Selector, ParseError> {
        let operator = self.peek().clone();
        if matches!(operator.kind, Kind::Eof) || self.tokens.len() - self.next < 2 {
            return Err(self.error(&operator, "unexpected end of string looking for op"));
        }
        self.next += 1;
        let selector = match operator.kind {
            Kind::Eq => self.string_after(label, Selector::Eq)?,
            Kind::Ne => self.string_after(label, Selector::Ne)?,
            Kind::Contains => self.string_after(label, Selector::Contains)?,
            Kind::StartsWith => self.string_after(label, Selector::StartsWith)?,
            Kind::EndsWith => self.string_after(label, Selector::EndsWith)?,
            Kind::In | Kind::NotIn => {
                let brace = self.peek().clone();
                if brace.kind != Kind::LBrace {
                    return Err(self.error(&brace, "expected set literal"));
                }
                self.next += 1;
                let mut values = BTreeSet::new();
                while let Kind::Str(value) = &self.peek().kind {
                    values.insert(value.clone());
                    self.next += 1;
                    if self.peek().kind == Kind::Comma {
                        self.next += 1;
                    } else {
                        break;
                    }
                }
                let close = self.peek().clone();
                if close.kind != Kind::RBrace {
                    return Err(self.error(&close, "expected }"));
                }
                self.next += 1;
                if operator.kind == Kind::In {
                    Selector::In(label, values)
                } else {
                    Selector::NotIn(label, values)
                }
            }
            _ => {
                return Err(self.error(
                    &operator,
                    "expected ==, !=, in, not in, contains, starts with or ends with",
                ))
            }
        };
        Ok(selector)
    }

    fn operation(&mut self) -> Result<Parsed, ParseError> {
        let mut negated = false;
        while self.peek().kind == Kind::Not {
            negated = !negated;
            self.next += 1;
        }
        let token = self.peek().clone();
        self.next += 1;
        let mut nesting = 0;
        let selector = match token.kind {
            Kind::Has(label) => Selector::Has(label),
            Kind::All => Selector::All,
            Kind::Global => Selector::Global,
            Kind::Label(label) => self.comparison(label)?,
            Kind::LParen => {
                if self.depth >= MAX_NESTING {
                    return Err(self.error(
                        &token,
                        format!("parentheses nested more than {MAX_NESTING} deep"),
                    ));
                }
                self.depth += 1;
                let (inner, inner_nesting) = self.or_expression()?;
                self.depth -= 1;
                nesting = inner_nesting;
                let close = self.peek().clone();
                if close.kind != Kind::RParen {
                    return Err(self.error(&close, "expected )"));
                }
                self.next += 1;
                inner
            }
            _ => return Err(self.error(&token, "unexpected token")),
        };
        let selector = if negated {
            Selector::Not(Box::new(selector))
        } else {
            selector
        };
        Ok((selector, nesting))
    }
}

impl Selector {
    /// Parse a selector; the empty (or all-blank) selector is `all()`. Parentheses may nest
    /// at most [`MAX_NESTING`] deep.
    ///
    /// ```
    /// use netfence_selector::calico::Selector;
    /// let s = Selector::parse("role == 'db' && !has(legacy)").unwrap();
    /// assert_eq!(s.to_string(), "(role == \"db\" && !has(legacy))");
    /// assert_eq!(Selector::parse("a ==").unwrap_err().column, 5);
    /// ```
    pub fn parse(input: &str) -> Result<Selector, ParseError> {
        let tokens = tokenize(input)?;
        if tokens[0].kind == Kind::Eof {
            return Ok(Selector::All);
        }
        let mut parser = Parser {
            input,
            tokens,
            next: 0,
            depth: 0,
        };
        let (selector, _) = parser.or_expression()?;
        let rest = parser.peek().clone();
        if rest.kind != Kind::Eof {
            return Err(parser.error(&rest, "unexpected content at end of selector"));
        }
        Ok(selector)
    }

    /// Evaluate against a label set.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matches_with(labels)
    }

    /// Evaluate against any label lookup (a label set, or one with labels added on top).
    pub fn matches_with<L: LabelLookup + ?Sized>(&self, labels: &L) -> bool {
        match self {
            Selector::Eq(k, v) => labels.label(k) == Some(v.as_str()),
            Selector::Ne(k, v) => labels.label(k) != Some(v.as_str()),
            Selector::Contains(k, v) => labels.label(k).is_some_and(|x| x.contains(v.as_str())),
            Selector::StartsWith(k, v) => {
                labels.label(k).is_some_and(|x| x.starts_with(v.as_str()))
            }
            Selector::EndsWith(k, v) => labels.label(k).is_some_and(|x| x.ends_with(v.as_str())),
            Selector::In(k, set) => labels.label(k).is_some_and(|x| set.contains(x)),
            Selector::NotIn(k, set) => labels.label(k).is_none_or(|x| !set.contains(x)),
            Selector::Has(k) => labels.label(k).is_some(),
            Selector::Not(inner) => !inner.matches_with(labels),
            Selector::And(all) => all.iter().all(|s| s.matches_with(labels)),
            Selector::Or(any) => any.iter().any(|s| s.matches_with(labels)),
            Selector::All | Selector::Global => true,
        }
    }

    /// Evaluate as a rule's `namespaceSelector` against one endpoint or network set, the way
    /// libcalico-go rewrites it (`lib/backend/syncersv1/updateprocessors/rules.go`
    /// `getEndpointSelector` and `selectors.go` `parseSelectorAttachPrefix`): every key reads
    /// the labels of the member's namespace (`namespace_labels`; `None` for a non-namespaced
    /// member, which has none), `all()` means "in some namespace" and `global()` means "in
    /// none". So a selector that holds on an empty label set, such as `env != "prod"`, also
    /// selects the global network sets.
    pub fn matches_namespace_of(&self, namespace_labels: Option<&Labels>) -> bool {
        self.matches_namespace_with(namespace_labels)
    }

    /// [`Selector::matches_namespace_of`] over any label lookup.
    pub fn matches_namespace_with<L: LabelLookup + ?Sized>(
        &self,
        namespace_labels: Option<&L>,
    ) -> bool {
        static EMPTY: Labels = Labels::new();
        match self {
            Selector::All => namespace_labels.is_some(),
            Selector::Global => namespace_labels.is_none(),
            Selector::Not(inner) => !inner.matches_namespace_with(namespace_labels),
            Selector::And(all) => all
                .iter()
                .all(|s| s.matches_namespace_with(namespace_labels)),
            Selector::Or(any) => any
                .iter()
                .any(|s| s.matches_namespace_with(namespace_labels)),
            leaf => match namespace_labels {
                Some(labels) => leaf.matches_with(labels),
                None => leaf.matches_with(&EMPTY),
            },
        }
    }

    /// Every label key the selector reads.
    pub fn label_keys(&self) -> Vec<&str> {
        match self {
            Selector::Eq(k, _)
            | Selector::Ne(k, _)
            | Selector::Contains(k, _)
            | Selector::StartsWith(k, _)
            | Selector::EndsWith(k, _)
            | Selector::In(k, _)
            | Selector::NotIn(k, _)
            | Selector::Has(k) => vec![k.as_str()],
            Selector::Not(inner) => inner.label_keys(),
            Selector::And(all) | Selector::Or(all) => {
                all.iter().flat_map(|s| s.label_keys()).collect()
            }
            Selector::All | Selector::Global => Vec::new(),
        }
    }

    /// Whether this is exactly `global()` (in a namespace selector: non-namespaced sets).
    pub fn is_global(&self) -> bool {
        matches!(self, Selector::Global)
    }

    /// Whether this is exactly `all()`.
    pub fn is_all(&self) -> bool {
        matches!(self, Selector::All)
    }
}

fn quoted(value: &str) -> String {
    if value.contains('"') {
        format!("'{value}'")
    } else {
        format!("\"{value}\"")
    }
}

/// The canonical form, as libcalico-go's `String()` renders it.
impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |values: &BTreeSet<String>| {
            values
                .iter()
                .map(|v| quoted(v))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let join = |f: &mut fmt::Formatter<'_>, operands: &[Selector], op: &str| {
            write!(f, "(")?;
            for (i, operand) in operands.iter().enumerate() {
                if i > 0 {
                    write!(f, " {op} ")?;
                }
                write!(f, "{operand}")?;
            }
            write!(f, ")")
        };
        match self {
            Selector::Eq(k, v) => write!(f, "{k} == {}", quoted(v)),
            Selector::Ne(k, v) => write!(f, "{k} != {}", quoted(v)),
            Selector::Contains(k, v) => write!(f, "{k} contains {}", quoted(v)),
            Selector::StartsWith(k, v) => write!(f, "{k} starts with {}", quoted(v)),
            Selector::EndsWith(k, v) => write!(f, "{k} ends with {}", quoted(v)),
            Selector::In(k, values) => write!(f, "{k} in {{{}}}", set(values)),
            Selector::NotIn(k, values) => write!(f, "{k} not in {{{}}}", set(values)),
            Selector::Has(k) => write!(f, "has({k})"),
            Selector::Not(inner) => write!(f, "!{inner}"),
            Selector::And(operands) => join(f, operands, "&&"),
            Selector::Or(operands) => join(f, operands, "||"),
            Selector::All => write!(f, "all()"),
            Selector::Global => write!(f, "global()"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run `f` on a thread with a 1 MiB stack (half a test thread's): enough for
    /// [`MAX_NESTING`] levels even unoptimised (a few KiB each), while the 20,000 levels the
    /// limit prevents would overflow it and abort the test process.
    fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .stack_size(1024 * 1024)
            .spawn(f)
            .expect("spawn")
            .join()
            .expect("no panic")
    }

    fn nested(depth: usize, inner: &str) -> String {
        format!("{}{inner}{}", "(".repeat(depth), ")".repeat(depth))
    }

    #[test]
    fn twenty_thousand_parentheses_are_a_parse_error_with_the_column() {
        let error = on_small_stack(|| Selector::parse(&nested(20_000, "a == \"b\"")))
            .expect_err("too deep");
        assert_eq!(error.column, MAX_NESTING + 1, "{error}");
        assert!(error.message.contains("nested more than 128"), "{error}");
        let unbalanced = on_small_stack(|| Selector::parse(&"(".repeat(20_000)));
        assert_eq!(unbalanced.expect_err("too deep").column, MAX_NESTING + 1);
    }

    #[test]
    fn deep_negated_groups_are_a_parse_error() {
        let text = format!("{}has(a){}", "!(".repeat(20_000), ")".repeat(20_000));
        let error = on_small_stack(move || Selector::parse(&text)).expect_err("too deep");
        // The 129th `(` is at column 2 * 129.
        assert_eq!(error.column, 2 * (MAX_NESTING + 1), "{error}");
    }

    #[test]
    fn long_negation_chains_collapse_without_recursion() {
        let (even, odd) = on_small_stack(|| {
            (
                Selector::parse(&format!("{}has(a)", "!".repeat(20_000))),
                Selector::parse(&format!("{}has(a)", "!".repeat(20_001))),
            )
        });
        assert_eq!(even.unwrap(), Selector::Has("a".into()));
        assert_eq!(odd.unwrap().to_string(), "!has(a)");
    }

    #[test]
    fn nesting_at_the_limit_parses_evaluates_and_round_trips() {
        // Every level an `||` whose right side is the next group, ending in a leaf: the AST,
        // `matches`, `Display` and the re-parse all recurse MAX_NESTING levels deep.
        let mut text = "has(z)".to_string();
        for level in (0..MAX_NESTING - 1).rev() {
            text = format!("!(a{level} == \"x\" || {text})");
        }
        let text = format!("b == \"y\" && {text}");
        let (parsed, canonical, reparsed, matched) = on_small_stack(move || {
            let parsed = Selector::parse(&text).expect("at the limit");
            let canonical = parsed.to_string();
            let reparsed = Selector::parse(&canonical).expect("the canonical form parses");
            let labels: Labels = [("b".to_string(), "y".to_string())].into();
            let matched = parsed.matches(&labels);
            (parsed, canonical, reparsed, matched)
        });
        assert_eq!(parsed, reparsed);
        // One `(` per `&&`/`||`, and has(z)'s.
        assert_eq!(
            canonical.matches('(').count(),
            MAX_NESTING + 1,
            "{canonical}"
        );
        // b == "y", then 127 negations of false-or-(…): has(z) is false, so the innermost
        // `!(a126 == "x" || has(z))` is true, the next false, …: odd count of `!`s → true.
        assert_eq!(matched, (MAX_NESTING - 1) % 2 == 1);
        assert_eq!(parsed.label_keys().len(), MAX_NESTING + 1);
    }

    #[test]
    fn parentheses_past_the_limit_are_an_error_at_the_first_one_too_deep() {
        assert!(Selector::parse(&nested(MAX_NESTING, "a == \"b\"")).is_ok());
        let error = Selector::parse(&nested(MAX_NESTING + 1, "a == \"b\"")).expect_err("deep");
        assert_eq!(error.column, MAX_NESTING + 1);
    }

    #[test]
    fn a_canonical_form_one_level_too_deep_is_refused_at_its_operator() {
        // `c == "d" || x == "y" && (x == "y" && (…(a == "b" || e == "f")…))` with the
        // innermost `||` inside MAX_NESTING - 1 parentheses: the input is within the limit,
        // but the canonical form parenthesises the top-level `||` and `&&` too, MAX_NESTING + 1
        // levels, which would not parse again.
        let deep = |levels: usize| {
            let mut inner = "a == \"b\" || e == \"f\"".to_string();
            for _ in 0..levels {
                inner = format!("x == \"y\" && ({inner})");
            }
            format!("c == \"d\" || {inner}")
        };
        let error = Selector::parse(&deep(MAX_NESTING - 1)).expect_err("canonical too deep");
        assert_eq!(error.column, "c == \"d\" ".len() + 1, "{error}");
        assert!(error.message.contains("canonical form"), "{error}");
        let parsed = Selector::parse(&deep(MAX_NESTING - 2)).expect("within the limit");
        let canonical = parsed.to_string();
        assert_eq!(Selector::parse(&canonical).unwrap(), parsed, "{canonical}");
    }
}
