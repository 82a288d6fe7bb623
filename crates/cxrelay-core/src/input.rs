//! Streaming input: a JSON array or NDJSON becomes one raw item at a time, with positions.
//!
//! The whole input is never held in memory: items are handed to a callback as their raw JSON
//! text as soon as they are parsed. Errors name the line and column where the input went wrong.

use std::cell::Cell;
use std::io::{BufRead, BufReader, Read};
use std::rc::Rc;

use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// The shape of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputFormat {
    /// One JSON array of items.
    JsonArray,
    /// One JSON value per line (blank lines are skipped).
    Ndjson,
}

impl InputFormat {
    /// Parses `json` / `ndjson` (also `jsonl`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "json" => Some(Self::JsonArray),
            "ndjson" | "jsonl" => Some(Self::Ndjson),
            _ => None,
        }
    }

    /// Guesses from a file name: `.ndjson`/`.jsonl` → NDJSON, anything else → JSON array.
    pub fn from_path(path: &str) -> Self {
        if path.ends_with(".ndjson") || path.ends_with(".jsonl") {
            Self::Ndjson
        } else {
            Self::JsonArray
        }
    }
}

/// One item read from the input.
#[derive(Debug)]
pub struct RawItem {
    /// Position in the input array (0-based).
    pub index: u64,
    /// The item's JSON text, exactly as written.
    pub json: Box<RawValue>,
    /// Line (1-based) where the item ends.
    pub line: u64,
    /// Column (1-based) where the item ends.
    pub column: u64,
}

/// Why the input cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Malformed JSON (truncated, invalid UTF-8, syntax error…).
    #[error("malformed input at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column (0 when at the very end of a line).
        column: usize,
        /// What the parser found.
        message: String,
    },
    /// The input is valid JSON but not an array.
    #[error("input must be a JSON array of objects, found {found} at line {line}, column {column} (use --format ndjson for one object per line)")]
    NotAnArray {
        /// What was found.
        found: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// Reading failed.
    #[error("reading input: {0}")]
    Io(#[from] std::io::Error),
    /// The consumer asked to stop.
    #[error("stopped: {0}")]
    Stopped(String),
}

/// Tracks line and column of the bytes the parser has consumed.
struct PositionReader<R> {
    inner: R,
    /// (line, column) of the last byte consumed, shared with the item visitor.
    pos: Rc<Cell<(u64, u64)>>,
}

impl<R: BufRead> Read for PositionReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // serde_json pulls one byte at a time from a reader; serve from the BufReader.
        let n = {
            let avail = self.inner.fill_buf()?;
            let n = avail.len().min(buf.len());
            buf[..n].copy_from_slice(&avail[..n]);
            let (mut line, mut column) = self.pos.get();
            for &b in &avail[..n] {
                if b == b'\n' {
                    line += 1;
                    column = 0;
                } else {
                    column += 1;
                }
            }
            self.pos.set((line, column));
            n
        };
        self.inner.consume(n);
        Ok(n)
    }
}

fn syntax(e: serde_json::Error) -> InputError {
    if e.is_io() {
        return InputError::Io(std::io::Error::other(e.to_string()));
    }
    let (line, column) = (e.line(), e.column());
    let full = e.to_string();
    // serde_json appends " at line L column C"; we print the position ourselves.
    let message = match full.rfind(" at line ") {
        Some(cut) => full[..cut].to_owned(),
        None => full,
    };
    InputError::Syntax { line, column, message }
}

/// Reads every item, calling `on_item` for each; returns how many items were read.
///
/// `on_item` returning `Err(reason)` stops reading with [`InputError::Stopped`].
pub fn read_items<R, F>(reader: R, format: InputFormat, on_item: F) -> Result<u64, InputError>
where
    R: Read,
    F: FnMut(RawItem) -> Result<(), String>,
{
    match format {
        InputFormat::JsonArray => read_array(reader, on_item),
        InputFormat::Ndjson => read_ndjson(reader, on_item),
    }
}

fn read_array<R: Read, F: FnMut(RawItem) -> Result<(), String>>(reader: R, on_item: F) -> Result<u64, InputError> {
    let pos = Rc::new(Cell::new((1, 0)));
    let reader = PositionReader { inner: BufReader::with_capacity(64 * 1024, reader), pos: pos.clone() };
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut stopped = None;
    let seed = ArraySeed { on_item, count: 0, stopped: &mut stopped, pos };
    let result = seed.deserialize(&mut de);
    if let Some(reason) = stopped {
        return Err(InputError::Stopped(reason));
    }
    let count = result.map_err(|e| {
        let (line, column) = (e.line(), e.column());
        let msg = e.to_string();
        if let Some(found) = msg.strip_prefix("invalid type: ").and_then(|m| m.split(", expected").next()) {
            InputError::NotAnArray { found: found.to_owned(), line, column }
        } else {
            syntax(e)
        }
    })?;
    de.end().map_err(syntax)?;
    Ok(count)
}

struct ArraySeed<'a, F> {
    on_item: F,
    pos: Rc<Cell<(u64, u64)>>,
    count: u64,
    stopped: &'a mut Option<String>,
}

impl<'de, F: FnMut(RawItem) -> Result<(), String>> DeserializeSeed<'de> for ArraySeed<'_, F> {
    type Value = u64;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(RawItem) -> Result<(), String>> Visitor<'de> for ArraySeed<'_, F> {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<u64, A::Error> {
        while let Some(json) = seq.next_element::<Box<RawValue>>()? {
            let (line, column) = self.pos.get();
            let item = RawItem { index: self.count, json, line, column };
            if let Err(reason) = (self.on_item)(item) {
                *self.stopped = Some(reason.clone());
                return Err(de::Error::custom(reason));
            }
            self.count += 1;
        }
        Ok(self.count)
    }
}

fn read_ndjson<R: Read, F: FnMut(RawItem) -> Result<(), String>>(reader: R, mut on_item: F) -> Result<u64, InputError> {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut line = Vec::new();
    let mut line_no = 0u64;
    let mut count = 0u64;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(count);
        }
        line_no += 1;
        let text = trim_ascii(&line);
        if text.is_empty() {
            continue;
        }
        let json: Box<RawValue> = serde_json::from_slice(text).map_err(|e| {
            let InputError::Syntax { column, message, .. } = syntax(e) else { unreachable!("from_slice has no I/O") };
            InputError::Syntax { line: line_no as usize, column, message }
        })?;
        on_item(RawItem { index: count, json, line: line_no, column: 1 }).map_err(InputError::Stopped)?;
        count += 1;
    }
}

fn trim_ascii(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if first.is_ascii_whitespace() { b = rest } else { break }
    }
    while let [rest @ .., last] = b {
        if last.is_ascii_whitespace() { b = rest } else { break }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &[u8], format: InputFormat) -> Result<Vec<String>, InputError> {
        let mut out = Vec::new();
        read_items(input, format, |it| {
            out.push(it.json.get().to_owned());
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn array_items_carry_their_end_position() {
        let mut pos = Vec::new();
        read_items(&b"[{},\n  \"x\"]"[..], InputFormat::JsonArray, |it| {
            pos.push((it.line, it.column));
            Ok(())
        })
        .unwrap();
        assert_eq!(pos, vec![(1, 3), (2, 5)]);
    }

    #[test]
    fn reads_array_items_raw() {
        let items = collect(b" [ {\"a\": 1}, {\"b\":[1,2]} ,\"x\"] ", InputFormat::JsonArray).unwrap();
        assert_eq!(items, vec!["{\"a\": 1}", "{\"b\":[1,2]}", "\"x\""]);
        assert!(collect(b"[]", InputFormat::JsonArray).unwrap().is_empty());
    }

    #[test]
    fn not_an_array_names_what_it_found() {
        let e = collect(b"{\"a\":1}", InputFormat::JsonArray).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, InputError::NotAnArray { line: 1, .. }), "{msg}");
        assert!(msg.contains("map") && msg.contains("JSON array"), "{msg}");
    }

    #[test]
    fn truncated_input_has_a_position() {
        let e = collect(b"[{\"a\":1},\n{\"b\":", InputFormat::JsonArray).unwrap_err();
        match e {
            InputError::Syntax { line, message, .. } => {
                assert_eq!(line, 2);
                assert!(message.contains("EOF"), "{message}");
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn invalid_utf8_has_a_position() {
        let e = collect(b"[{\"a\":\"\xff\xfe\"}]", InputFormat::JsonArray).unwrap_err();
        assert!(matches!(e, InputError::Syntax { line: 1, .. }), "{e}");
        let e = collect(b"{\"a\":1}\n{\"a\":\"\xff\"}\n", InputFormat::Ndjson).unwrap_err();
        assert!(matches!(e, InputError::Syntax { line: 2, .. }), "{e}");
    }

    #[test]
    fn trailing_garbage_is_rejected() {
        let e = collect(b"[{}] x", InputFormat::JsonArray).unwrap_err();
        assert!(matches!(e, InputError::Syntax { .. }), "{e}");
    }

    #[test]
    fn ndjson_skips_blank_lines_and_reports_lines() {
        let items = collect(b"{\"a\":1}\n\n  {\"b\":2}\r\n", InputFormat::Ndjson).unwrap();
        assert_eq!(items, vec!["{\"a\":1}", "{\"b\":2}"]);
        let e = collect(b"{\"a\":1}\n{\"b\":\n", InputFormat::Ndjson).unwrap_err();
        assert!(matches!(e, InputError::Syntax { line: 2, .. }), "{e}");
    }

    #[test]
    fn callback_can_stop() {
        let e = read_items(&b"[{},{}]"[..], InputFormat::JsonArray, |_| Err("full".into())).unwrap_err();
        assert!(matches!(e, InputError::Stopped(r) if r == "full"));
    }
}
