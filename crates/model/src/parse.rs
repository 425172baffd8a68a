//! Text to JSON values, defensively: every input is hostile until parsed.
//!
//! YAML and JSON documents become `serde_json::Value`s through one strict visitor that
//! rejects duplicate mapping keys (the API server's strict decoding does), bounds nesting
//! depth, and bounds the total size of what a document expands to, so that YAML aliases
//! ("billion laughs") cost at most a small multiple of the text's own size. Before libyaml
//! sees a YAML document, its flow nesting is measured: libyaml's scanner is quadratic in flow
//! depth, so a 400 KB `[[[[…` would take a minute before any limit of the deserializer fires.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::Cell;
use std::fmt;

/// Deepest nesting of mappings and lists a document may have. Kubernetes objects are far
/// shallower (a CronJob's container port is 10 levels down); serde_yaml_ng's own limit is 128.
pub const MAX_DEPTH: usize = 128;

/// Deepest flow nesting (`[`/`{`) handed to libyaml, measured before parsing.
pub const MAX_FLOW_DEPTH: usize = 256;

/// Largest input file or stdin, in bytes. The 100,000-pod synthetic cluster is 55 MB.
pub const MAX_INPUT_BYTES: u64 = 1 << 30;

/// The size a document may expand to, in units of one node or one byte of string: a fixed
/// allowance plus a multiple of its text. Without aliases a document is at most about twice
/// its text in these units (one node per value, one unit per string byte).
fn expansion_budget(text_len: usize) -> u64 {
    1_000_000 + 8 * text_len as u64
}

/// Read a whole input: a file (refused by its size before reading when it is larger than
/// [`MAX_INPUT_BYTES`]), a FIFO, or stdin for `-`; never more than [`MAX_INPUT_BYTES`] is
/// read. The error is the message to show after the input's name.
pub fn read_input(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let too_large = |bytes: u64| {
        format!(
            "larger than {} MiB ({bytes} bytes or more); refusing to read it",
            MAX_INPUT_BYTES >> 20
        )
    };
    // A regular file's size sizes the buffer: growing it by doubling copied a 42 MB input
    // several times over.
    let mut size_hint = 0;
    let reader: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
        if meta.is_dir() {
            return Err("a directory, not a file".into());
        }
        if meta.is_file() && meta.len() > MAX_INPUT_BYTES {
            return Err(too_large(meta.len()));
        }
        if meta.is_file() {
            // One byte more than the size: reading the end then needs no new buffer.
            size_hint = meta.len() as usize + 1;
        }
        Box::new(std::fs::File::open(path).map_err(|e| e.to_string())?)
    };
    let mut bytes = Vec::with_capacity(size_hint);
    let limit = MAX_INPUT_BYTES + 1;
    let mut reader = reader.take(limit);
    if size_hint > 0 {
        reader.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    } else {
        // No size to go by (stdin, a FIFO): the buffer doubles, but never past the limit.
        // `read_to_end`'s own doubling asks for 2 GiB to hold the byte after 1 GiB, and an
        // allocator that cannot grow a large block in place (mimalloc, the CLI's) holds the
        // old one beside it while copying: 3 GiB for an input that is refused anyway.
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        loop {
            let room = bytes.capacity().saturating_mul(2).clamp(1 << 16, limit);
            bytes
                .try_reserve_exact(room - bytes.len())
                .map_err(|_| "out of memory".to_string())?;
            let step = (bytes.capacity() - bytes.len()) as u64;
            let read = (&mut reader)
                .take(step)
                .read_to_end(&mut bytes)
                .map_err(|e| e.to_string())?;
            if (read as u64) < step || bytes.len() >= limit {
                break;
            }
        }
    }
    let read = bytes.len();
    if read as u64 > MAX_INPUT_BYTES {
        return Err(too_large(read as u64));
    }
    String::from_utf8(bytes).map_err(|_| "not valid UTF-8 text".to_string())
}

/// Why a document could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line within the parsed text, when the parser knows it.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "at line {line} column {column}: ")?,
            (Some(line), None) => write!(f, "at line {line}: ")?,
            _ => {}
        }
        f.write_str(&self.message)
    }
}

/// Parse one YAML document (no `---` separators inside) into a JSON value.
pub fn yaml_document(text: &str) -> Result<Value, ParseError> {
    // The plain YAML most manifests are made of is read without libyaml; anything else,
    // and every error, is libyaml's (see `fast_yaml`). The fast path is linear in the text
    // and gives up on flow nesting far shallower than [`MAX_FLOW_DEPTH`], so the flow-depth
    // check is needed, and run, only before libyaml sees the document: a document nested too
    // deeply gets the same error as before.
    if let Some(value) = crate::fast_yaml::document(text, expansion_budget(text.len())) {
        return Ok(value);
    }
    yaml_document_libyaml(text)
}

/// Parse one YAML document with libyaml only, without the fast path: what
/// [`yaml_document`] gives, more slowly (the load benchmark's baseline).
pub fn yaml_document_libyaml(text: &str) -> Result<Value, ParseError> {
    check_flow_depth(text)?;
    strict_yaml_document(text)
}

/// Parse one YAML document with libyaml and the strict visitor.
pub(crate) fn strict_yaml_document(text: &str) -> Result<Value, ParseError> {
    let budget = Cell::new(expansion_budget(text.len()));
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    StrictValue {
        budget: &budget,
        depth: 0,
        limit: MAX_DEPTH,
    }
    .deserialize(deserializer)
    .map_err(|e| {
        let location = e.location();
        let message = e.to_string();
        // serde_yaml_ng appends " at line L column C"; the location is reported separately.
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        ParseError {
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
            message,
        }
    })
}

/// Parse a JSON text into a value, with the same duplicate-key and size rules as YAML.
pub fn json(text: &str) -> Result<Value, ParseError> {
    let budget = Cell::new(expansion_budget(text.len()));
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = StrictValue {
        budget: &budget,
        depth: 0,
        limit: MAX_DEPTH,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value))
    .map_err(|e| ParseError {
        line: Some(e.line()),
        column: Some(e.column()),
        message: {
            let message = e.to_string();
            message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_string()
        },
    })?;
    Ok(value)
}

/// Parse a large JSON object whose `items` is a list (`kubectl get -o json`) on `threads`
/// threads: the items one by one, in runs, and the object around them with an empty list
/// in their place. `None` when the text is not such an object or any part does not parse:
/// then [`json`] parses the whole text, and reports its error as always.
///
/// The parts are cut by a scan that skips strings and counts brackets; each part must parse
/// whole, so a cut in a wrong place fails and falls back. The values equal those of [`json`]:
/// JSON has no aliases (the size budget cannot bind: a value is at most about two units per
/// byte of its text), duplicate keys are refused within each item and in the object around
/// them, and the items may nest at most 100 levels in the text (the whole text's limits,
/// serde_json's 128 and [`MAX_DEPTH`], then cannot be reached; deeper items fall back).
pub(crate) fn json_list(text: &str, threads: usize) -> Option<Value> {
    let (open, close, items) = json_items(text)?;
    let outer = format!("{}[]{}", &text[..open], &text[close + 1..]);
    let mut value = json(&outer).ok()?;
    let runs = threads.max(1);
    let per_run = items.len().div_ceil(runs);
    let parsed: Vec<Option<Vec<Value>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per_run.max(1))
            .map(|run| {
                scope.spawn(move || {
                    run.iter()
                        .map(|&(start, end)| json_part(&text[start..end], 100 - 2))
                        .collect::<Option<Vec<Value>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().ok().flatten())
            .collect()
    });
    let mut all = Vec::with_capacity(items.len());
    for run in parsed {
        all.extend(run?);
    }
    match value.get_mut("items") {
        Some(slot @ Value::Array(_)) => *slot = Value::Array(all),
        _ => return None,
    }
    Some(value)
}

/// A large JSON object whose `items` is a list, cut as [`json_list`] cuts it: the object
/// around the items (an empty list in their place) and each item's text, to be parsed with
/// [`json_item`]. `None` when [`json_list`] would give up before parsing the items.
pub(crate) fn json_list_parts(text: &str) -> Option<(Value, Vec<&str>)> {
    let (open, close, items) = json_items(text)?;
    let outer = format!("{}[]{}", &text[..open], &text[close + 1..]);
    let value = json(&outer).ok()?;
    Some((value, items.iter().map(|&(s, e)| &text[s..e]).collect()))
}

/// One item of [`json_list_parts`], parsed as [`json_list`] parses it.
pub(crate) fn json_item(text: &str) -> Option<Value> {
    json_part(text, 100 - 2)
}

/// One item of a list, parsed as [`json`] parses it, at most `limit` levels deep.
fn json_part(text: &str, limit: usize) -> Option<Value> {
    let budget = Cell::new(expansion_budget(text.len()));
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = StrictValue {
        budget: &budget,
        depth: 0,
        limit,
    }
    .deserialize(&mut deserializer)
    .ok()?;
    deserializer.end().ok()?;
    Some(value)
}

/// A byte range of a text: start, end.
type Span = (usize, usize);

/// Where the top-level `"items": [ … ]` of a JSON object is (its brackets), and each item's
/// byte range; `None` when there is none, it is empty, or `items` appears twice.
fn json_items(text: &str) -> Option<(usize, usize, Vec<Span>)> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    // The previous byte that is not white space, at this depth.
    let mut previous = 0u8;
    // (the list's `[`, its `]`, the items); while inside it: (`[`, the items, the next start).
    let mut found: Option<(usize, usize, Vec<Span>)> = None;
    let mut in_items: Option<(usize, Vec<Span>, usize)> = None;
    let mut key_is_items = false;
    while i < bytes.len() {
        let byte = bytes[i];
        match byte {
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if depth == 1 && matches!(previous, b'{' | b',') {
                    key_is_items = &bytes[start..=i.min(bytes.len() - 1)] == b"\"items\"";
                }
            }
            b'[' | b'{' => {
                if depth == 1 && byte == b'[' && previous == b':' && key_is_items {
                    if found.is_some() || in_items.is_some() {
                        return None;
                    }
                    in_items = Some((i, Vec::new(), i + 1));
                }
                depth += 1;
            }
            b']' | b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 1 {
                    if let Some((open, mut items, start)) = in_items.take() {
                        items.push((start, i));
                        found = Some((open, i, items));
                    }
                }
            }
            b',' if depth == 2 => {
                if let Some((_, items, start)) = in_items.as_mut() {
                    items.push((*start, i));
                    *start = i + 1;
                }
            }
            _ => {}
        }
        if !byte.is_ascii_whitespace() {
            previous = byte;
        }
        i += 1;
    }
    let (open, close, items) = found?;
    // `[]` holds one empty "item": nothing to share out.
    (items.len() > 1 || items.iter().any(|&(s, e)| !text[s..e].trim().is_empty()))
        .then_some((open, close, items))
}

/// Reject YAML whose flow collections nest deeper than [`MAX_FLOW_DEPTH`], before libyaml
/// scans it. The count errs high, never low: brackets inside plain scalars count too, while
/// quoted scalars and comments inside flow collections are skipped, as the YAML grammar says
/// they cannot open or close a collection.
fn check_flow_depth(text: &str) -> Result<(), ParseError> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut line = 1;
    let mut previous = b'\n';
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        match byte {
            b'\n' => line += 1,
            b'#' if previous.is_ascii_whitespace() => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Err(ParseError {
                        line: Some(line),
                        column: None,
                        message: format!(
                            "flow collections nest deeper than {MAX_FLOW_DEPTH} levels"
                        ),
                    });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'"' | b'\'' if depth > 0 && starts_flow_scalar(bytes, i) => {
                // Skip the quoted scalar: `\"` escapes in double quotes, `''` in single ones.
                i += 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' if byte == b'"' => i += 1,
                        b'\n' => line += 1,
                        b'\'' if byte == b'\'' && bytes.get(i + 1) == Some(&b'\'') => i += 1,
                        c if c == byte => break,
                        _ => {}
                    }
                    i += 1;
                }
            }
            _ => {}
        }
        previous = bytes.get(i).copied().unwrap_or(b'\n');
        i += 1;
    }
    Ok(())
}

/// Whether the quote at `at` begins a scalar in flow context: only white space since the last
/// `[`, `{`, `,` or `:`.
fn starts_flow_scalar(bytes: &[u8], at: usize) -> bool {
    bytes[..at]
        .iter()
        .rev()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_none_or(|b| matches!(b, b'[' | b'{' | b',' | b':' | b'?' | b'-'))
}

/// Deserializes any value into `serde_json::Value`, charging the shared budget one unit per
/// node and one per string byte, refusing duplicate keys and nesting beyond [`MAX_DEPTH`].
struct StrictValue<'a> {
    budget: &'a Cell<u64>,
    depth: usize,
    /// The deepest `depth` whose children may be read: [`MAX_DEPTH`], or less for a part
    /// of a text (see [`json_list`]).
    limit: usize,
}

impl StrictValue<'_> {
    fn charge<E: de::Error>(&self, units: usize) -> Result<(), E> {
        let left = self.budget.get();
        let units = units as u64 + 1;
        if units > left {
            return Err(E::custom(
                "the document expands to far more data than its text holds (YAML aliases?); refusing it",
            ));
        }
        self.budget.set(left - units);
        Ok(())
    }

    fn nested<E: de::Error>(&self) -> Result<StrictValue<'_>, E> {
        if self.depth >= self.limit {
            return Err(E::custom(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(StrictValue {
            budget: self.budget,
            depth: self.depth + 1,
            limit: self.limit,
        })
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML or JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.charge(0)?;
        // Not a JSON number (NaN, infinity): keep it as YAML wrote it, as text.
        Ok(Number::from_f64(v).map_or_else(|| Value::String(v.to_string()), Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.charge(v.len())?;
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.charge(v.len())?;
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.charge(0)?;
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.charge(0)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.nested()?)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.charge(0)?;
        let mut object = Map::new();
        while let Some(key) = map.next_key_seed(KeyText {
            budget: self.budget,
        })? {
            // One lookup per key: the vacant slot is filled once the value is read.
            match object.entry(key) {
                serde_json::map::Entry::Occupied(taken) => {
                    return Err(de::Error::custom(format!(
                        "duplicate key {:?} in one mapping",
                        taken.key()
                    )));
                }
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(map.next_value_seed(self.nested()?)?);
                }
            }
        }
        Ok(Value::Object(object))
    }
}

/// A mapping key as text. YAML allows numbers and booleans as keys; they become their text,
/// as the API server's YAML-to-JSON conversion makes them.
struct KeyText<'a> {
    budget: &'a Cell<u64>,
}

impl<'de> DeserializeSeed<'de> for KeyText<'_> {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        // As text: a YAML plain scalar key is taken as written, without first trying it as a
        // boolean, number or null (serde_yaml_ng's `deserialize_any` would, for every key).
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyText<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number or boolean as a mapping key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        StrictValue {
            budget: self.budget,
            depth: 0,
            limit: MAX_DEPTH,
        }
        .charge::<E>(v.len())?;
        Ok(v.to_string())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        self.visit_str(&v)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        self.visit_str("null")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_errors_in_yaml_and_json() {
        let error = yaml_document("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert!(error.message.contains("duplicate key \"a\""), "{error}");
        let error = json(r#"{"spec": {"x": 1, "x": 2}}"#).unwrap_err();
        assert!(error.message.contains("duplicate key \"x\""), "{error}");
        assert_eq!(error.line, Some(1));
        // The same key in two different mappings is fine.
        assert!(yaml_document("a: {x: 1}\nb: {x: 1}\n").is_ok());
    }

    #[test]
    fn values_keep_their_types() {
        let value = yaml_document("a: 1\nb: true\nc: x\nd: null\ne: [1.5]\n1: one\n").unwrap();
        assert_eq!(
            value,
            serde_json::json!({"a": 1, "b": true, "c": "x", "d": null, "e": [1.5], "1": "one"})
        );
    }

    #[test]
    fn alias_expansion_is_bounded_by_absolute_size() {
        // serde_yaml_ng's own guard bounds the number of alias jumps (100 per event), not
        // what they expand to: a flat anchor of 1,000 scalars fanned out 10-fold on four
        // levels is 11,110 jumps for 10 M scalars from 2.2 KB of text.
        let mut text = format!("a0: &a0 [{}]\n", vec!["x"; 1000].join(","));
        for level in 1..5 {
            let refs = vec![format!("*a{}", level - 1); 10].join(",");
            text.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
        }
        assert!(text.len() < 2_300, "{}", text.len());
        let started = std::time::Instant::now();
        let error = yaml_document(&text).unwrap_err();
        assert!(error.message.contains("expands to far more"), "{error}");
        assert!(started.elapsed().as_secs() < 5);
        // Modest alias use stays fine.
        assert!(yaml_document("a: &x {k: v}\nb: *x\nc: *x\n").is_ok());
    }

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing() {
        let deep = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let started = std::time::Instant::now();
        let error = yaml_document(&deep).unwrap_err();
        assert!(error.message.contains("nest deeper"), "{error}");
        assert!(started.elapsed().as_secs() < 2);
        // Quoted brackets and comments inside flow collections do not count.
        let quoted = format!(
            "a: [\"{}\", '{}'] # {}\n",
            "[".repeat(300),
            "{".repeat(300),
            "[".repeat(300)
        );
        assert!(yaml_document(&quoted).is_ok());
        // Closing brackets inside quotes cannot hide depth.
        let hidden = format!("a: {}\n", "[ \"]]\", ".repeat(MAX_FLOW_DEPTH + 1));
        assert!(check_flow_depth(&hidden).is_err());
    }

    #[test]
    fn json_lists_parsed_in_parts_equal_the_whole() {
        let item = |i: usize| {
            format!(
                r#"{{"kind": "Pod", "metadata": {{"name": "p{i}", "labels": {{"a,]}}": "\"[{{\\"}}}}, "spec": {{"x": [1, [2, {{}}], []], "y": null}}}}"#
            )
        };
        let items: Vec<String> = (0..50).map(item).collect();
        let list = format!(
            "{{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n{}\n    ],\n    \"kind\": \"List\"}}\n",
            items.join(",\n")
        );
        for threads in [1, 2, 3, 64] {
            assert_eq!(json_list(&list, threads), Some(json(&list).unwrap()));
        }
        // Anything the parts cannot give exactly goes back to the whole text.
        let one_item = list.replace(&items.join(",\n"), &item(0));
        assert_eq!(json_list(&one_item, 2), Some(json(&one_item).unwrap()));
        for bad in [
            list.replacen("\"y\": null", "\"y\": null, \"y\": 1", 1),
            list.replacen("\"kind\": \"List\"", "\"kind\": \"List\", \"items\": []", 1),
            list.replacen("\"apiVersion\"", "\"kind\": 1, \"apiVersion\"", 1),
            list.replacen("}},\n{", "}},,\n{", 1),
            list.replacen("\n    ]", ",\n    ]", 1),
            list.replacen("[]]", "[]}", 1),
            list.replacen("\"kind\": \"List\"}", "\"kind\": \"List\"", 1),
            list.replacen(
                "[1, [2",
                &format!("[{}1{}, [2", "[".repeat(99), "]".repeat(99)),
                1,
            ),
            "{\"items\": []}".to_string(),
            "[{\"items\": [1, 2]}]".to_string(),
        ] {
            assert_eq!(json_list(&bad, 2), None, "{bad}");
        }
        // A deep item the whole text still reads is read by it.
        let deep = list.replacen(
            "[1, [2",
            &format!("[{}1{}, [2", "[".repeat(99), "]".repeat(99)),
            1,
        );
        assert!(json(&deep).is_ok());
    }

    #[test]
    fn deep_block_nesting_is_an_error_not_a_crash() {
        let mut text = String::new();
        for level in 0..2_000 {
            text.push_str(&" ".repeat(level));
            text.push_str("a:\n");
        }
        assert!(yaml_document(&text).is_err());
        let json_deep = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
        assert!(json(&json_deep).is_err());
    }
}
