//! A fast path for the plain YAML that generators and `kubectl` write, tried before libyaml.
//!
//! Lines end in `\n` or `\r\n`. Most of a large manifest is the simplest YAML: block mappings and sequences of ASCII plain
//! scalars, single-line flow collections (`{app: web}`, `[{port: 80}]`) and single-line
//! quoted scalars, and comments. This parser reads exactly that subset straight into a JSON value and
//! gives up (`None`) on anything else: tabs, anchors, aliases, tags, block and
//! multi-line scalars, escapes in double quotes, complex keys, directives, non-ASCII text, duplicate keys, any
//! syntax error, and plain scalars it cannot type with certainty. A document it gives up on
//! is parsed by libyaml as before, so every error message, and everything outside the
//! subset, is exactly libyaml's. Inside the subset the value is the one the strict visitor
//! builds from libyaml's events (tested against it in `parse`'s tests): plain scalars are
//! typed as serde_yaml_ng types them (YAML 1.2 core schema: `null`, `true`, decimal
//! integers, and the rest text), and quoted scalars are text.
//!
//! References: YAML 1.2.2 §6.1 (indentation), §7.3.1-7.3.3 (quoted and plain scalars, and
//! `ns-plain-safe`), §7.4 (flow collections), §8.2 (block collections; a sequence may sit at
//! its parent key's indentation, "compact" notation of §8.2.1 examples 8.22).

use serde_json::{Map, Number, Value};

/// Deepest nesting the fast path builds; deeper documents go to the strict parser, which
/// enforces [`crate::parse::MAX_DEPTH`] with its own message.
const MAX_FAST_DEPTH: usize = 64;

// Giving up well before the strict limits means every document past them reaches the strict
// parser and its flow-depth pre-scan, and gets their errors.
const _: () = assert!(
    MAX_FAST_DEPTH < crate::parse::MAX_DEPTH && MAX_FAST_DEPTH < crate::parse::MAX_FLOW_DEPTH
);

/// Parse `text`, one YAML document, or `None` when it is outside the subset.
/// `budget`: expansion units left, charged as the strict visitor charges them.
pub(crate) fn document(text: &str, budget: u64) -> Option<Value> {
    let bytes = text.as_bytes();
    // Printable ASCII and line breaks (`\n`, `\r\n`) only: no tabs, lone carriage returns,
    // or the Unicode line breaks libyaml also honours. Indicators that start other constructs (`&`, `*`, `!`,
    // `|`, `>`, `?`, `%`, `@`, `` ` ``, `-` and `+` before a number) are refused where a node
    // starts (see `plain_start`); inside a plain or quoted scalar they are text.
    let allowed = |i: usize, b: u8| {
        b == b'\n' || (b' '..=b'~').contains(&b) || b == b'\r' && bytes.get(i + 1) == Some(&b'\n')
    };
    if !bytes.iter().enumerate().all(|(i, &b)| allowed(i, b)) {
        return None;
    }
    let mut parser = Parser {
        bytes,
        pos: 0,
        budget,
    };
    let indent = parser.next_content_line()?;
    let value = parser.block_node(indent, 0)?;
    // Nothing may follow the root node.
    match parser.next_content_line() {
        None if parser.pos >= bytes.len() => Some(value),
        _ => None,
    }
}

struct Parser<'a> {
    bytes: &'a [u8],
    /// The next byte to read.
    pos: usize,
    budget: u64,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.pos + offset).copied()
    }

    fn charge(&mut self, units: usize) -> Option<()> {
        let units = units as u64 + 1;
        self.budget = self.budget.checked_sub(units)?;
        Some(())
    }

    /// From the start of a line (or the end of the last value on a line), skip to the first
    /// content of the next line that has any, and return its indentation. `None` at the end
    /// of the text; lines that start a document marker are refused (`None` with `pos` short
    /// of the end).
    fn next_content_line(&mut self) -> Option<usize> {
        loop {
            let start = self.pos;
            while self.peek() == Some(b' ') {
                self.pos += 1;
            }
            match self.peek() {
                None => return None,
                Some(b'\n' | b'\r') => self.pos += 1,
                // A comment line, whatever its indentation (§6.6).
                Some(b'#') => self.skip_comment(),
                Some(_) => {
                    let indent = self.pos - start;
                    let line = &self.bytes[self.pos..];
                    if indent == 0 && (line.starts_with(b"---") || line.starts_with(b"...")) {
                        self.pos = start;
                        return None;
                    }
                    return Some(indent);
                }
            }
        }
    }

    /// Skip to the end of the line (not past it).
    fn skip_comment(&mut self) {
        while self.peek().is_some_and(|b| !is_break(b)) {
            self.pos += 1;
        }
    }

    /// After a value on a line: only spaces, and a comment after at least one space, up to
    /// the end of the line (or text).
    fn end_of_line(&mut self) -> Option<()> {
        let start = self.pos;
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
        if self.peek() == Some(b'#') && (self.pos > start || self.at_line_start_or_space()) {
            self.skip_comment();
        }
        match self.peek() {
            None => Some(()),
            Some(b'\n') => {
                self.pos += 1;
                Some(())
            }
            Some(b'\r') => {
                self.pos += 2;
                Some(())
            }
            Some(_) => None,
        }
    }

    /// Where the next content line starts, without consuming anything: its indentation and
    /// whether it is a sequence entry (`- ` or a lone `-`).
    fn look_ahead(&mut self) -> Option<(usize, bool)> {
        let saved = self.pos;
        let found = self.next_content_line();
        let dash = found.is_some() && self.is_entry();
        let reached = self.pos;
        self.pos = saved;
        match found {
            Some(indent) => Some((indent, dash)),
            // A document marker inside: give up on the whole document.
            None if reached < self.bytes.len() => Some((usize::MAX, false)),
            None => None,
        }
    }

    /// Whether the byte before `pos` is white space or a line break (or there is none).
    fn at_line_start_or_space(&self) -> bool {
        self.pos == 0 || matches!(self.bytes[self.pos - 1], b' ' | b'\n')
    }

    /// Whether the byte `offset` after `pos` is a space, a line break or the end.
    fn blank_at(&self, offset: usize) -> bool {
        matches!(self.peek_at(offset), None | Some(b' ' | b'\n' | b'\r'))
    }

    /// Whether `pos` is at a block sequence entry indicator.
    fn is_entry(&self) -> bool {
        self.peek() == Some(b'-') && self.blank_at(1)
    }

    /// A block node whose first content is at `pos`, at column `indent`.
    fn block_node(&mut self, indent: usize, depth: usize) -> Option<Value> {
        if depth > MAX_FAST_DEPTH {
            return None;
        }
        if self.is_entry() {
            self.block_sequence(indent, depth)
        } else {
            self.block_mapping(indent, depth)
        }
    }

    /// The value after `key:` or `-` at the end of a line: a nested block, a sequence at the
    /// parent's indentation (mappings only), or nothing (null).
    fn value_below(&mut self, indent: usize, depth: usize, in_mapping: bool) -> Option<Value> {
        match self.look_ahead() {
            Some((next, _)) if next == usize::MAX => None,
            Some((next, _)) if next > indent => {
                self.next_content_line();
                self.block_node(next, depth + 1)
            }
            Some((next, true)) if next == indent && in_mapping => {
                self.next_content_line();
                self.block_sequence(next, depth + 1)
            }
            _ => {
                self.charge(0)?;
                Some(Value::Null)
            }
        }
    }

    /// After a value that ended its line: the next content line must not be indented deeper
    /// than `indent` (it would continue a multi-line scalar, or be an error).
    fn not_continued(&mut self, indent: usize) -> Option<()> {
        match self.look_ahead() {
            Some((next, _)) if next > indent => None,
            _ => Some(()),
        }
    }

    fn block_mapping(&mut self, indent: usize, depth: usize) -> Option<Value> {
        self.charge(0)?;
        let mut map = Map::new();
        loop {
            let key = self.key()?;
            self.charge(key.len())?;
            if map.contains_key(&key) {
                return None;
            }
            // `key:` then a space or the end of the line.
            while self.peek() == Some(b' ') {
                self.pos += 1;
            }
            let value = match self.peek() {
                None | Some(b'\n' | b'\r' | b'#') => {
                    self.end_of_line()?;
                    self.value_below(indent, depth, true)?
                }
                Some(_) => {
                    let value = self.inline_value(depth + 1)?;
                    self.end_of_line()?;
                    self.not_continued(indent)?;
                    value
                }
            };
            map.insert(key, value);
            match self.look_ahead() {
                Some((next, false)) if next == indent => {
                    self.next_content_line();
                }
                Some((next, _)) if next > indent => return None,
                _ => return Some(Value::Object(map)),
            }
        }
    }

    fn block_sequence(&mut self, indent: usize, depth: usize) -> Option<Value> {
        self.charge(0)?;
        let mut items = Vec::new();
        loop {
            // At `-`.
            self.pos += 1;
            while self.peek() == Some(b' ') {
                self.pos += 1;
            }
            let item = match self.peek() {
                None | Some(b'\n' | b'\r' | b'#') => {
                    self.end_of_line()?;
                    self.value_below(indent, depth, false)?
                }
                Some(b'-') => return None,
                Some(_) => {
                    let column = self.pos - self.line_start();
                    if self.starts_key() {
                        self.block_node(column, depth + 1)?
                    } else {
                        let value = self.inline_value(depth + 1)?;
                        self.end_of_line()?;
                        self.not_continued(indent)?;
                        value
                    }
                }
            };
            items.push(item);
            match self.look_ahead() {
                Some((next, true)) if next == indent => {
                    self.next_content_line();
                }
                Some((next, _)) if next > indent => return None,
                _ => return Some(Value::Array(items)),
            }
        }
    }

    fn line_start(&self) -> usize {
        self.bytes[..self.pos]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1)
    }

    /// Whether a mapping key (`key:` followed by a space or the end of the line) starts at
    /// `pos`.
    fn starts_key(&mut self) -> bool {
        let saved = self.pos;
        let found = self.key().is_some();
        self.pos = saved;
        found
    }

    /// A block mapping key and its `:`; `pos` ends after the `:`, which is followed by a
    /// space or the end of the line.
    fn key(&mut self) -> Option<String> {
        let key = match self.peek()? {
            b'"' | b'\'' => self.quoted()?,
            first if plain_start(first) => {
                let start = self.pos;
                while let Some(b) = self.peek() {
                    if b == b':' && self.blank_at(1) {
                        break;
                    }
                    if !plain_key_byte(b) || b == b'#' {
                        return None;
                    }
                    self.pos += 1;
                }
                text(&self.bytes[start..self.pos])?
            }
            _ => return None,
        };
        if self.peek() != Some(b':') || !self.blank_at(1) {
            return None;
        }
        self.pos += 1;
        Some(key)
    }

    /// A value that starts and ends on this line: a flow collection, a quoted scalar or a
    /// plain scalar (block context: up to the end of the line).
    fn inline_value(&mut self, depth: usize) -> Option<Value> {
        match self.peek()? {
            b'[' | b'{' => self.flow_node(depth),
            b'"' | b'\'' => {
                let text = self.quoted()?;
                self.charge(text.len())?;
                Some(Value::String(text))
            }
            first if plain_start(first) => {
                let start = self.pos;
                while let Some(b) = self.peek() {
                    if is_break(b)
                        || b == b':' && self.blank_at(1)
                        || b == b'#' && self.bytes[self.pos - 1] == b' '
                    {
                        break;
                    }
                    if matches!(b, b'[' | b']' | b'{' | b'}') {
                        return None;
                    }
                    self.pos += 1;
                }
                let raw = trim_spaces(&self.bytes[start..self.pos]);
                self.plain(raw)
            }
            _ => None,
        }
    }

    /// A flow collection on one line, `pos` at its `[` or `{`.
    fn flow_node(&mut self, depth: usize) -> Option<Value> {
        if depth > MAX_FAST_DEPTH {
            return None;
        }
        let mapping = self.peek()? == b'{';
        let close = if mapping { b'}' } else { b']' };
        self.pos += 1;
        self.charge(0)?;
        let mut map = Map::new();
        let mut items = Vec::new();
        self.skip_spaces();
        if self.peek()? == close {
            self.pos += 1;
            return Some(if mapping {
                Value::Object(map)
            } else {
                Value::Array(items)
            });
        }
        loop {
            if mapping {
                let key = match self.peek()? {
                    b'"' | b'\'' => self.quoted()?,
                    first if plain_start(first) => text(untrimmed(self.flow_plain())?)?,
                    _ => return None,
                };
                self.charge(key.len())?;
                if self.peek()? != b':' || self.peek_at(1)? != b' ' || map.contains_key(&key) {
                    return None;
                }
                self.pos += 1;
                self.skip_spaces();
                let value = self.flow_value(depth + 1)?;
                map.insert(key, value);
            } else {
                items.push(self.flow_value(depth + 1)?);
            }
            self.skip_spaces();
            match self.peek()? {
                b',' => {
                    self.pos += 1;
                    self.skip_spaces();
                    // No trailing comma, no empty entry.
                    if matches!(self.peek()?, b',' | b']' | b'}') {
                        return None;
                    }
                }
                b if b == close => {
                    self.pos += 1;
                    return Some(if mapping {
                        Value::Object(map)
                    } else {
                        Value::Array(items)
                    });
                }
                _ => return None,
            }
        }
    }

    /// A value inside a flow collection.
    fn flow_value(&mut self, depth: usize) -> Option<Value> {
        match self.peek()? {
            b'[' | b'{' => self.flow_node(depth),
            b'"' | b'\'' => {
                let text = self.quoted()?;
                self.charge(text.len())?;
                Some(Value::String(text))
            }
            first if plain_start(first) => {
                let raw = self.flow_plain();
                // A `:` would make a single-pair mapping (or be an error): not handled here.
                if self.peek() == Some(b':') {
                    return None;
                }
                self.plain(untrimmed(raw)?)
            }
            _ => None,
        }
    }

    /// The bytes of a plain scalar in a flow collection (a key or a value) that starts here,
    /// read past; it ends before the first byte that ends it as libyaml reads it, or that
    /// the fast path leaves to libyaml. A `:` followed by a byte that neither ends the
    /// scalar nor is a flow indicator is text (unsafe-libyaml 0.2.11, scanner.rs,
    /// `yaml_parser_scan_plain_scalar`): an IPv6 address (`{podIP: fd00::1}`) or a CIDR.
    /// Followed by `,`, `?` or a bracket, libyaml refuses it; followed by a space it is the
    /// `:` before a value. Either way the scalar ends before it.
    fn flow_plain(&mut self) -> &'a [u8] {
        let start = self.pos;
        loop {
            match self.peek() {
                Some(b) if plain_flow_byte(b) => self.pos += 1,
                Some(b':') if self.peek_at(1).is_some_and(plain_after_colon) => self.pos += 1,
                _ => break,
            }
        }
        &self.bytes[start..self.pos]
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    /// A quoted scalar that closes on its line (`'it''s'`, `"text"` without escapes).
    fn quoted(&mut self) -> Option<String> {
        let quote = self.peek()?;
        self.pos += 1;
        let mut out = String::new();
        let mut start = self.pos;
        loop {
            match self.peek()? {
                // Escapes and line folding are libyaml's.
                b'\n' | b'\r' => return None,
                b'\\' if quote == b'"' => return None,
                b if b == quote => {
                    out.push_str(std::str::from_utf8(&self.bytes[start..self.pos]).ok()?);
                    self.pos += 1;
                    if quote == b'\'' && self.peek() == Some(b'\'') {
                        // `''` is one quote.
                        start = self.pos;
                        self.pos += 1;
                        continue;
                    }
                    return Some(out);
                }
                _ => self.pos += 1,
            }
        }
    }

    /// A plain scalar, typed as serde_yaml_ng types it, or `None` when that is not certain.
    fn plain(&mut self, raw: &[u8]) -> Option<Value> {
        if raw.is_empty() || raw.contains(&b':') && raw.ends_with(b":") {
            return None;
        }
        let value = plain_value(raw)?;
        self.charge(match &value {
            Value::String(text) => text.len(),
            _ => 0,
        })?;
        Some(value)
    }
}

/// A line break: `\n`, or the `\r` of `\r\n` (a lone `\r` was refused before parsing).
fn is_break(b: u8) -> bool {
    b == b'\n' || b == b'\r'
}

/// The first byte of a plain scalar the fast path reads: a letter, a digit, `.`, `/` or `_`.
/// (`-`, `+` and the YAML indicators start other things or other numbers.)
fn plain_start(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'_')
}

/// A byte of a plain key: no spaces, quotes, flow indicators or `,`.
fn plain_key_byte(b: u8) -> bool {
    (b'!'..=b'~').contains(&b) && !matches!(b, b'[' | b']' | b'{' | b'}' | b',' | b'"' | b'\'')
}

/// A byte of a plain scalar in a flow collection (spaces inside are trimmed at the ends).
fn plain_flow_byte(b: u8) -> bool {
    (b' '..=b'~').contains(&b) && !matches!(b, b'[' | b']' | b'{' | b'}' | b',' | b':' | b'#')
}

/// A byte after which a `:` in a plain scalar of a flow collection stays in the scalar (a
/// narrower set than libyaml's: `#` and the rest are left to it).
fn plain_after_colon(b: u8) -> bool {
    b == b':' || plain_flow_byte(b) && !matches!(b, b' ' | b'?')
}

fn trim_spaces(mut raw: &[u8]) -> &[u8] {
    while let [rest @ .., b' '] = raw {
        raw = rest;
    }
    raw
}

/// A plain scalar in a flow collection, refused when spaces end it (`[a , b]`): what
/// libyaml makes of those is not worth the risk of getting it wrong.
fn untrimmed(raw: &[u8]) -> Option<&[u8]> {
    (trim_spaces(raw).len() == raw.len()).then_some(raw)
}

fn text(raw: &[u8]) -> Option<String> {
    (!raw.is_empty())
        .then(|| std::str::from_utf8(raw).ok().map(str::to_string))
        .flatten()
}

/// serde_yaml_ng's typing of an untagged plain scalar (`visit_untagged_scalar`), for the
/// cases that can be decided here: null and booleans by their spellings, decimal integers
/// without a leading zero that fit in a `u64`, and text that cannot be a number. Anything
/// that might be a number in another form (`1.5`, `1e3`, `0x1f`, `+1`, `.inf`, `0777`)
/// gives `None`.
fn plain_value(raw: &[u8]) -> Option<Value> {
    match raw {
        b"null" | b"Null" | b"NULL" | b"~" => return Some(Value::Null),
        b"true" | b"True" | b"TRUE" => return Some(Value::Bool(true)),
        b"false" | b"False" | b"FALSE" => return Some(Value::Bool(false)),
        _ => {}
    }
    let text = std::str::from_utf8(raw).ok()?;
    if raw.iter().all(u8::is_ascii_digit) {
        if raw.len() > 1 && raw[0] == b'0' {
            // Leading zeros: serde_yaml_ng reads a string, but keep clear of octal forms.
            return None;
        }
        return text
            .parse::<u64>()
            .ok()
            .map(|n| Value::Number(Number::from(n)));
    }
    // Integers and floats in every form serde_yaml_ng reads (0x, 0o, 0b, signs, exponents,
    // `inf`, `nan`) use only these bytes and at most one `.`; a letter first rules out all
    // but the special float words, which are not finite and so read as text, except `.inf`
    // and `.nan`, which start with a dot.
    let numeric_bytes = raw
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'));
    let dots = raw.iter().filter(|&&b| b == b'.').count();
    let could_be_number = numeric_bytes && dots <= 1 && !raw[0].is_ascii_alphabetic();
    if could_be_number {
        return None;
    }
    Some(Value::String(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::strict_yaml_document;

    /// The fast path either gives up or gives exactly what libyaml and the strict visitor give.
    fn agrees(text: &str) -> bool {
        let budget = 1_000_000 + 8 * text.len() as u64;
        match document(text, budget) {
            Some(fast) => {
                assert_eq!(Ok(fast), strict_yaml_document(text), "{text}");
                true
            }
            None => false,
        }
    }

    fn documents(text: &str) -> Vec<&str> {
        crate::load::split_yaml_documents(text)
            .into_iter()
            .map(|(_, document)| document)
            .collect()
    }

    /// IPv6 addresses and CIDRs inside flow collections (as an IPv6 cluster's manifests
    /// written in flow style hold them) take the fast path and read as libyaml reads them;
    /// a colon libyaml refuses or reads otherwise is left to it.
    #[test]
    fn ipv6_addresses_in_flow_collections_take_the_fast_path() {
        for text in [
            "status: {podIP: fd00:10::a00:1, podIPs: [{ip: fd00:10::a00:1}, {ip: 10.0.0.1}]}\n",
            "spec: {ingress: [{from: [{ipBlock: {cidr: fd00:10::/96, except: [fd00:10::a00:0/104]}}]}]}\n",
            "k: [2001:DB8::1, 1:20, a:b:c]\n",
            "k: {fd00::1: x, a:b: c}\n",
        ] {
            assert!(agrees(text), "{text}");
        }
        for text in [
            "k: [a:, b]\n",
            "k: {x: a:?b}\n",
            "k: [a:#b]\n",
            "k: [::1]\n",
        ] {
            assert!(!agrees(text), "{text}");
        }
    }

    #[test]
    fn generated_clusters_take_the_fast_path_and_agree() {
        let files = netfence_gen::generate(&netfence_gen::GenOptions {
            pods: 300,
            namespaces: 5,
            policies: 60,
            calico: 20,
            admin: 0,
            seed: 3,
        })
        .unwrap();
        let mut count = 0;
        for (_, text) in &files {
            for document in documents(text) {
                assert!(agrees(document), "fell back on:\n{document}");
                count += 1;
            }
        }
        assert!(count > 300);
    }

    #[test]
    fn conformance_inputs_agree() {
        let mut fast = 0;
        let mut total = 0;
        let mut pending = vec![netfence_conformance::conformance_dir()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else if matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml")
                ) {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for document in documents(&text) {
                        total += 1;
                        fast += usize::from(agrees(document));
                    }
                }
            }
        }
        // Hand-written inputs have block scalars and other things the fast path leaves to
        // libyaml, but most of them are plain (2,163 of 2,623 documents when written).
        assert!(total > 2000 && fast * 4 > total * 3, "{fast} of {total}");
    }

    #[test]
    fn scalars_are_typed_as_serde_yaml_ng_types_them_or_left_to_it() {
        let scalars = [
            "1",
            "0",
            "01",
            "0777",
            "1.5",
            "10.0.0.1",
            "0.0.0.0/0",
            "0x1f",
            "0o17",
            "0b1",
            "+1",
            "-1",
            "1e3",
            "1E3",
            ".5",
            "5.",
            ".inf",
            ".NaN",
            "inf",
            "nan",
            "NaN",
            "Infinity",
            "true",
            "True",
            "TRUE",
            "tRUE",
            "false",
            "yes",
            "no",
            "on",
            "off",
            "y",
            "n",
            "null",
            "Null",
            "NULL",
            "~",
            "a b",
            "a:b",
            "a, b",
            "1_000",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999",
            "'q'",
            "''",
            "'it''s'",
            "\"d\"",
            "\"\"",
            "\"a: b\"",
            "'#'",
            "a #b",
            "8443abc",
            "1.2.3",
            "1-2",
            "e5",
            "_x",
            "/x",
            "./x",
            ".x",
            "x.",
            "2024-01-01T00:00:00Z",
            "nginx:1.25",
            "fd00::1",
            "fd00:10::a00:18e6",
            "fd00:10::a00:0/104",
            "2001:DB8::/32",
            "a:b",
            "a:b:c",
            "a::",
            "a:",
            "a:,b",
            "a:?b",
            "a:]",
            "a:}",
            "a:[b]",
            "a:{b}",
            "a:#b",
            "a: :b",
            "a:: b",
            "::1",
            ":a",
            "1:20",
            "190:20:30",
            "1:2.5",
            "0x1:2",
            "-",
            "a: b",
            "[a]",
            "{a: b}",
            "[]",
            "{}",
            "[a, b]",
            "[a , b]",
            "[a,b]",
            "{a: [b, {c: d}]}",
            "{a: 1, a: 2}",
            "[a, ]",
            "{a: }",
            "{a:b}",
            "{\"a\": 1}",
            "{'a': 'b'}",
            "[1.5]",
            "[01]",
            "[true, null, ~]",
            "[a: b]",
            "{a: b, c: [d, e]}",
            "*x",
            "&x a",
            "!!str 1",
            "|",
            ">",
            "a\tb",
            "a &b",
            "a *b",
            "a !b",
            "a | b",
            "a > b",
            "a ? b",
            "a % b",
            "a == \"x\" && b != 'y'",
            "!a",
            "?a",
            "%a",
            "@a",
            "`a",
            "\"a\\nb\"",
            "'a\\nb'",
            "a \"b\"",
            "a 'b'",
            "\"a\" b",
            "a\\b",
            "a@b",
            "a`b",
        ];
        let mut fast = 0;
        for scalar in scalars {
            for text in [
                format!("k: {scalar}\n"),
                format!("- {scalar}\n"),
                format!("k: [{scalar}]\n"),
                format!("k: {{x: {scalar}}}\n"),
                format!("{scalar}: v\n"),
                format!("a:\n  {scalar}: v\n  b: {scalar}\n"),
            ] {
                fast += usize::from(agrees(&text));
            }
        }
        assert!(fast > 200, "{fast}");
    }

    #[test]
    fn block_structure_agrees_or_falls_back() {
        let texts = [
            "a:\n  b: 1\n  c:\n  - x\n  - y\nd: e\n",
            "a:\n- x\n- y\nb: 2\n",
            "a:\n  - x\n  -\n  - {y: 1}\n",
            "- a: 1\n  b: 2\n- c: 3\n-\n- - x\n",
            "- a: 1\n   b: 2\n",
            "- a: 1\n - b\n",
            "a: 1\n  b: 2\n",
            "a: x\n  y\n",
            "a:\n  x\n",
            "a:\nb:\n",
            "a: 1\n- b\n",
            "- a\nb: 1\n",
            "a:\n  b:\n    c:\n      d: [1, 2]\n",
            "  a: 1\n  b: 2\n",
            "  a: 1\nb: 2\n",
            "a: 1\n\n\nb: 2\n\n",
            "a: 1   \nb: 'x'  \n",
            "a: 1\nb: 2\na: 3\n",
            "a:\n  b: 1\n  b: 2\n",
            "a: {b: 1,\n  c: 2}\n",
            "a: [1,\n  2]\n",
            "a: 'multi\n  line'\n",
            "a: \"x\" y\n",
            "a: b: c\n",
            "a:b\n",
            "'a': 1\n\"b\": 2\n",
            "'a' : 1\n",
            "a: 1 # comment\n",
            "# head\na: 1 # one\n  # indented\nb: # below\n  - x # item\n  - # empty\nc: [1, 2] # flow\n",
            "a: b#c\nd: 'e'#f\n",
            "a: b #c\n#\n",
            "a: [b#c]\n",
            "a#b: 1\n",
            "- # c\n  a: 1\n",
            "a: {b: c} d\n",
            "? a\n: b\n",
            "a: |\n  text\n",
            "x\n",
            "[a, b]\n",
            "{a: b}\n",
            "a: -1\n",
            "a: - b\n",
            "-\n-\n",
            "- \n- x\n",
            "a:\n-\n  b: 1\n",
            "...\n",
            "a: 1\n---\nb: 2\n",
            "a: 1\n...\n",
            "a: 1\n--- b\n",
            "a: 1\n----\n",
            "a: 1\n.... : 2\n",
            "a: é\n",
            "a: 1\r\nb: 2\r\n",
            "a:\r\n  - x\r\n  - {y: 1}\r\nb: 'c' # d\r\n\r\n",
            "a: 1\rb: 2\n",
            "a: 'x\r\n  y'\r\n",
        ];
        let fast = texts.iter().filter(|text| agrees(text)).count();
        assert!(fast >= 12, "{fast}");
    }

    /// Random documents from fragments of plain and not-so-plain YAML: every one the fast
    /// path reads must agree with libyaml.
    #[test]
    fn random_documents_agree() {
        let keys = [
            "a", "b", "'a'", "\"b c\"", "1", "true", "a.b/c", "x-y", "a:b", "-k",
        ];
        let scalars = [
            "v",
            "1",
            "01",
            "1.5",
            "10.0.0.1",
            "true",
            "null",
            "~",
            "'q'",
            "\"d\"",
            "a b",
            "x#y",
            "x #c",
            "[]",
            "{}",
            "[a, b]",
            "{k: v}",
            "[{k: 1}, {k: 2}]",
            "-1",
            "a: b",
            "&x v",
            "*x",
            "!t v",
            "|",
            "''",
            "'a''b'",
            "\"a\\tb\"",
            "a,b",
            "[a,b]",
            "{a: b, a: c}",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let (mut fast, mut total) = (0, 0);
        for _ in 0..20_000 {
            let mut text = String::new();
            let mut indent = 0usize;
            for _ in 0..1 + next(8) {
                let pad = " ".repeat(indent);
                match next(10) {
                    0..=3 => text.push_str(&format!(
                        "{pad}{}: {}\n",
                        keys[next(keys.len())],
                        scalars[next(scalars.len())]
                    )),
                    4 | 5 => {
                        text.push_str(&format!("{pad}{}:\n", keys[next(keys.len())]));
                        indent += [0, 1, 2, 4][next(4)];
                    }
                    6 => text.push_str(&format!("{pad}- {}\n", scalars[next(scalars.len())])),
                    7 => {
                        text.push_str(&format!("{pad}- {}: ", keys[next(keys.len())]));
                        text.push_str(&format!("{}\n", scalars[next(scalars.len())]));
                        indent += 2;
                    }
                    8 => indent = indent.saturating_sub([1, 2, 4][next(3)]),
                    _ => text.push_str(["\n", "# c\n", "  \n", "---\n", " x\n"][next(5)]),
                }
            }
            total += 1;
            fast += usize::from(agrees(&text));
        }
        assert!(fast * 10 > total, "{fast} of {total}");
    }

    #[test]
    fn depth_and_budget_are_left_to_the_strict_parser() {
        let mut deep = String::new();
        for level in 0..200 {
            deep.push_str(&" ".repeat(level));
            deep.push_str("a:\n");
        }
        assert_eq!(document(&deep, u64::MAX), None);
        let nested = format!("a: {}{}\n", "[".repeat(100), "]".repeat(100));
        assert_eq!(document(&nested, u64::MAX), None);
        // Charged as the strict visitor charges: a mapping (1), a key (1 + 1), a value (1 + 1).
        assert!(document("a: b\n", 5).is_some());
        assert_eq!(document("a: b\n", 4), None);
    }
}
