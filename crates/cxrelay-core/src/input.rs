//! Streaming input: a JSON array or NDJSON becomes one raw item at a time, with positions.
//!
//! The whole input is never held in memory: items are handed to a callback as their raw JSON
//! text as soon as they are parsed. Errors name the line and column where the input went wrong,
//! in JSON's words ("object", not serde's "map"). A UTF-8 byte order mark at the start is
//! skipped (spreadsheet exports write one); bytes that are not UTF-8 are reported as such, with
//! their offset, rather than as whatever syntax error the parser would trip over next.

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
    /// A header row, then one item per row: an object of the header's names to the row's
    /// values (strings), read with the `csv` crate (quoted fields, embedded newlines and
    /// delimiters handled).
    Csv {
        /// Field delimiter: `,` `;` tab or `|`.
        delimiter: u8,
    },
}

impl InputFormat {
    /// Parses `json` / `ndjson` (also `jsonl`) / `csv` (comma-delimited).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "json" => Some(Self::JsonArray),
            "ndjson" | "jsonl" => Some(Self::Ndjson),
            "csv" => Some(Self::Csv { delimiter: b',' }),
            _ => None,
        }
    }

    /// Guesses from a file name: `.ndjson`/`.jsonl` → NDJSON, `.csv` → CSV, anything else → JSON array.
    pub fn from_path(path: &str) -> Self {
        if path.ends_with(".ndjson") || path.ends_with(".jsonl") {
            Self::Ndjson
        } else if path.ends_with(".csv") {
            Self::Csv { delimiter: b',' }
        } else {
            Self::JsonArray
        }
    }

    /// A CSV delimiter by name: `,` `;` `|` (or `pipe`) and `tab` (or a tab character).
    pub fn csv_delimiter(name: &str) -> Option<u8> {
        match name {
            "," | "comma" => Some(b','),
            ";" | "semicolon" => Some(b';'),
            "|" | "pipe" => Some(b'|'),
            "tab" | "\t" => Some(b'\t'),
            _ => None,
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
    /// Why the item is unusable although the input goes on (a CSV row whose field count does
    /// not match the header): a validation failure of that item alone.
    pub invalid: Option<String>,
}

/// Why the input cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Malformed JSON (truncated, syntax error…).
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
    #[error("input must be a JSON array of objects, found {found} at line {line}, column {column}{}", ndjson_hint(.found))]
    NotAnArray {
        /// What was found.
        found: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// The input is not UTF-8 text.
    #[error(
        "malformed input at line {line}, column {column}: invalid UTF-8 (byte 0x{byte:02X} at offset {offset}){}",
        utf16_hint(*.offset, *.byte)
    )]
    InvalidUtf8 {
        /// 1-based line.
        line: usize,
        /// 1-based column, in bytes (a skipped byte order mark is not counted).
        column: usize,
        /// 0-based byte offset from the start of the input (a byte order mark included), where
        /// the offending character begins.
        offset: u64,
        /// The byte at that offset.
        byte: u8,
    },
    /// Reading failed.
    #[error("reading input: {0}")]
    Io(#[from] std::io::Error),
    /// The consumer asked to stop.
    #[error("stopped: {0}")]
    Stopped(String),
    /// A CSV header that cannot name items' fields, or CSV that cannot be read.
    #[error("malformed CSV at line {line}: {message}")]
    Csv {
        /// 1-based line.
        line: u64,
        /// What is wrong.
        message: String,
    },
}

/// Suggests NDJSON when the input starts with an object (most likely one object per line).
fn ndjson_hint(found: &str) -> &'static str {
    if found == "an object" {
        " (use --format ndjson for one object per line)"
    } else {
        ""
    }
}

/// The UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads the first bytes of `reader` and drops them if they are a byte order mark; returns the
/// reader to go on with and how many bytes were dropped (0 or 3).
fn skip_bom<R: Read>(mut reader: R) -> std::io::Result<(impl Read, u64)> {
    // A pipe may hand over fewer than three bytes per read: gather them first.
    let mut head = [0u8; 3];
    let mut n = 0;
    while n < head.len() {
        match reader.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let bom = &head[..n] == BOM;
    let kept = if bom { Vec::new() } else { head[..n].to_vec() };
    Ok((std::io::Cursor::new(kept).chain(reader), if bom { BOM.len() as u64 } else { 0 }))
}

/// Where a character that is not UTF-8 begins.
#[derive(Clone, Copy, Debug)]
struct Utf8Fault {
    offset: u64,
    line: u64,
    column: u64,
    byte: u8,
}

impl From<Utf8Fault> for InputError {
    fn from(f: Utf8Fault) -> Self {
        InputError::InvalidUtf8 { line: f.line as usize, column: f.column as usize, offset: f.offset, byte: f.byte }
    }
}

/// A hint for the commonest cause: a UTF-16 file (what Windows tools often write) starts with
/// the byte 0xFF or 0xFE, never valid in UTF-8.
fn utf16_hint(offset: u64, byte: u8) -> &'static str {
    if offset == 0 && matches!(byte, 0xFF | 0xFE) {
        "; the input looks like UTF-16: save it as UTF-8"
    } else {
        "; the input must be UTF-8 text"
    }
}

/// An I/O error standing for a [`Utf8Fault`] (which the reader also records, with its position,
/// for the error the caller gets).
fn invalid_data() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, "invalid UTF-8")
}

/// Tracks line and column of the bytes the parser has consumed, and checks they are UTF-8.
///
/// serde_json checks UTF-8 only inside strings, once the whole string is read, and calls a
/// stray byte elsewhere a syntax error; so each non-ASCII character is read whole and checked
/// here before the parser sees any of it, and the first bad one is reported where it starts.
struct PositionReader<R> {
    inner: R,
    /// (line, column) of the last byte consumed, shared with the item visitor.
    pos: Rc<Cell<(u64, u64)>>,
    /// Bytes served so far, counted from the start of the input (a byte order mark included).
    offset: u64,
    /// A checked multi-byte character not yet (fully) served, and how much of it is left.
    pending: [u8; 4],
    pending_range: std::ops::Range<usize>,
    /// Set at the first character that is not UTF-8; every later read fails.
    fault: Rc<Cell<Option<Utf8Fault>>>,
}

impl<R: BufRead> PositionReader<R> {
    /// Reads the character starting with the non-ASCII byte `lead` into `pending`, or records
    /// a fault if it is not UTF-8 (overlong, surrogate, beyond U+10FFFF, cut short…).
    fn take_char(&mut self, lead: u8) -> std::io::Result<()> {
        let width = match lead {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => 1,
        };
        let mut got = 0;
        while got < width {
            let Some(&b) = self.inner.fill_buf()?.first() else { break };
            // A byte that cannot continue the character is not part of it.
            if got > 0 && !(0x80..=0xBF).contains(&b) {
                break;
            }
            self.pending[got] = b;
            got += 1;
            self.inner.consume(1);
        }
        if std::str::from_utf8(&self.pending[..got]).is_err() {
            let (line, column) = self.pos.get();
            self.fault.set(Some(Utf8Fault { offset: self.offset, line, column: column + 1, byte: lead }));
            return Err(invalid_data());
        }
        self.pending_range = 0..got;
        Ok(())
    }
}

impl<R: BufRead> Read for PositionReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.fault.get().is_some() {
            return Err(invalid_data());
        }
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pending_range.is_empty() {
            // serde_json pulls one byte at a time from a reader; serve from the BufReader.
            let avail = self.inner.fill_buf()?;
            let Some(&lead) = avail.first() else { return Ok(0) };
            if lead.is_ascii() {
                let n = avail.iter().take(buf.len()).take_while(|b| b.is_ascii()).count();
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
                self.inner.consume(n);
                self.offset += n as u64;
                return Ok(n);
            }
            self.take_char(lead)?;
        }
        // The rest of a multi-byte character: no newline in it.
        let n = self.pending_range.len().min(buf.len());
        let start = self.pending_range.start;
        buf[..n].copy_from_slice(&self.pending[start..start + n]);
        self.pending_range.start += n;
        let (line, column) = self.pos.get();
        self.pos.set((line, column + n as u64));
        self.offset += n as u64;
        Ok(n)
    }
}

/// What serde's `Unexpected` text (`map`, `integer `5``…) is called in JSON, as in
/// [`crate::payload`]'s item check.
fn json_kind(serde_name: &str) -> String {
    match serde_name {
        "map" => "an object".into(),
        "sequence" => "an array".into(),
        "unit value" => "null".into(),
        s if s.starts_with("string ") => "a string".into(),
        s if s.starts_with("integer ") || s.starts_with("floating point ") => "a number".into(),
        s if s.starts_with("boolean ") => format!("a boolean ({})", s["boolean ".len()..].trim_matches('`')),
        other => other.to_owned(),
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
        InputFormat::Csv { delimiter } => read_csv(reader, delimiter, on_item),
    }
}

fn csv_error(e: csv::Error) -> InputError {
    let line = e.position().map_or(0, |p| p.line());
    match e.kind() {
        csv::ErrorKind::Io(_) => match e.into_kind() {
            csv::ErrorKind::Io(io) => InputError::Io(io),
            _ => unreachable!("matched above"),
        },
        csv::ErrorKind::Utf8 { err, .. } => InputError::Csv { line, message: format!("invalid UTF-8 in field {}", err.field() + 1) },
        _ => InputError::Csv { line, message: e.to_string() },
    }
}

fn read_csv<R: Read, F: FnMut(RawItem) -> Result<(), String>>(reader: R, delimiter: u8, mut on_item: F) -> Result<u64, InputError> {
    let (reader, _) = skip_bom(reader)?;
    let reader = crate::csv_quotes::QuoteTracker::new(reader, delimiter);
    let mut csv = csv::ReaderBuilder::new().delimiter(delimiter).has_headers(false).flexible(true).from_reader(reader);
    let mut record = csv::StringRecord::new();
    if !csv.read_record(&mut record).map_err(csv_error)? {
        return Ok(0);
    }
    let header: Vec<String> = record.iter().map(|h| h.trim().to_owned()).collect();
    let mut seen = std::collections::HashSet::new();
    for (n, name) in header.iter().enumerate() {
        if name.is_empty() {
            return Err(InputError::Csv { line: 1, message: format!("header column {} has no name", n + 1) });
        }
        if !seen.insert(name.as_str()) {
            return Err(InputError::Csv { line: 1, message: format!("header column {} repeats the name {name:?}", n + 1) });
        }
    }
    let mut count = 0u64;
    while csv.read_record(&mut record).map_err(csv_error)? {
        let line = record.position().map_or(0, |p| p.line());
        let (json, invalid) = if record.len() == header.len() {
            let object: serde_json::Map<String, serde_json::Value> =
                header.iter().zip(record.iter()).map(|(k, v)| (k.clone(), serde_json::Value::String(v.to_owned()))).collect();
            (serde_json::value::to_raw_value(&object).expect("strings serialize"), None)
        } else {
            let why = format!("row at line {line} has {} fields; the header has {}", record.len(), header.len());
            (serde_json::value::to_raw_value(&serde_json::Map::new()).expect("serializes"), Some(why))
        };
        on_item(RawItem { index: count, json, line, column: 1, invalid }).map_err(InputError::Stopped)?;
        count += 1;
    }
    // The parser takes an unclosed quote for a field that runs to the end of the input.
    if let Some(line) = csv.get_ref().unclosed_quote_line() {
        return Err(InputError::Csv { line, message: "a quoted field opens here and is never closed (a missing \")".into() });
    }
    Ok(count)
}

fn read_array<R: Read, F: FnMut(RawItem) -> Result<(), String>>(reader: R, on_item: F) -> Result<u64, InputError> {
    let (reader, bom) = skip_bom(reader)?;
    let pos = Rc::new(Cell::new((1, 0)));
    let fault = Rc::new(Cell::new(None));
    let reader = PositionReader {
        inner: BufReader::with_capacity(64 * 1024, reader),
        pos: pos.clone(),
        offset: bom,
        pending: [0; 4],
        pending_range: 0..0,
        fault: fault.clone(),
    };
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut stopped = None;
    let seed = ArraySeed { on_item, count: 0, stopped: &mut stopped, pos };
    let result = seed.deserialize(&mut de);
    if let Some(reason) = stopped {
        return Err(InputError::Stopped(reason));
    }
    // A byte that is not UTF-8 is the cause of whatever error the parser then reports.
    let count = result.map_err(|e| {
        if let Some(f) = fault.get() {
            return f.into();
        }
        let (line, column) = (e.line(), e.column());
        let msg = e.to_string();
        if let Some(found) = msg.strip_prefix("invalid type: ").and_then(|m| m.split(", expected").next()) {
            InputError::NotAnArray { found: json_kind(found), line, column }
        } else {
            syntax(e)
        }
    })?;
    de.end().map_err(|e| fault.get().map_or_else(|| syntax(e), InputError::from))?;
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
            let item = RawItem { index: self.count, json, line, column, invalid: None };
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
    let (reader, bom) = skip_bom(reader)?;
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut line = Vec::new();
    let mut line_no = 0u64;
    // Offset of the current line's first byte (the byte order mark counted).
    let mut offset = bom;
    let mut count = 0u64;
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(count);
        }
        line_no += 1;
        if let Err(e) = std::str::from_utf8(&line) {
            let at = e.valid_up_to();
            return Err(InputError::InvalidUtf8 { line: line_no as usize, column: at + 1, offset: offset + at as u64, byte: line[at] });
        }
        offset += read as u64;
        let text = trim_ascii(&line);
        if text.is_empty() {
            continue;
        }
        let json: Box<RawValue> = serde_json::from_slice(text).map_err(|e| {
            let InputError::Syntax { column, message, .. } = syntax(e) else { unreachable!("from_slice has no I/O") };
            InputError::Syntax { line: line_no as usize, column, message }
        })?;
        on_item(RawItem { index: count, json, line: line_no, column: 1, invalid: None }).map_err(InputError::Stopped)?;
        count += 1;
    }
}

fn trim_ascii(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if first.is_ascii_whitespace() {
            b = rest
        } else {
            break;
        }
    }
    while let [rest @ .., last] = b {
        if last.is_ascii_whitespace() {
            b = rest
        } else {
            break;
        }
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
        // Columns count bytes; a multi-byte character read whole does not shift them.
        let mut pos = Vec::new();
        read_items(SlowReader("[\"é€\",\n\"𝄞\"]".as_bytes()), InputFormat::JsonArray, |it| {
            pos.push((it.line, it.column));
            Ok(())
        })
        .unwrap();
        assert_eq!(pos, vec![(1, 8), (2, 6)]);
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
        assert!(msg.contains("found an object") && msg.contains("JSON array"), "{msg}");
        assert!(!msg.contains("map"), "{msg}");
        // Every JSON type in JSON's words, not serde's.
        for (input, found) in [
            (&b"\"text\""[..], "found a string"),
            (b"12", "found a number"),
            (b"-1.5", "found a number"),
            (b"true", "found a boolean (true)"),
            (b"null", "found null"),
        ] {
            let msg = collect(input, InputFormat::JsonArray).unwrap_err().to_string();
            assert!(msg.contains(found), "{msg}");
        }
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
    fn invalid_utf8_is_named_with_its_position() {
        // Inside a string: the first bad byte, not the end of the string.
        let e = collect(b"[{\"a\":\"\xff\xfe\"}]", InputFormat::JsonArray).unwrap_err();
        assert!(matches!(e, InputError::InvalidUtf8 { line: 1, column: 8, offset: 7, byte: 0xFF }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("line 1, column 8") && msg.contains("invalid UTF-8") && msg.contains("0xFF at offset 7"), "{msg}");
        // Outside a string, on a later line.
        let e = collect(b"[{},\n \xc3(]", InputFormat::JsonArray).unwrap_err();
        assert!(matches!(e, InputError::InvalidUtf8 { line: 2, column: 2, offset: 6, byte: 0xC3 }), "{e:?}");
        let e = collect(b"{\"a\":1}\n{\"a\":\"\xff\"}\n", InputFormat::Ndjson).unwrap_err();
        assert!(matches!(e, InputError::InvalidUtf8 { line: 2, column: 7, offset: 14, .. }), "{e:?}");
    }

    #[test]
    fn utf8_is_checked_to_the_standard() {
        // Overlong, surrogate, above U+10FFFF, a lone continuation byte, a truncated character.
        for bad in [&b"\xc0\xaf"[..], b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xe2\x82"] {
            let input = [&b"[\""[..], bad, b"\"]"].concat();
            let e = collect(&input, InputFormat::JsonArray).unwrap_err();
            assert!(matches!(e, InputError::InvalidUtf8 { offset: 2, .. }), "{bad:x?}: {e:?}");
            let e = collect(&input[1..input.len() - 1], InputFormat::Ndjson).unwrap_err();
            assert!(matches!(e, InputError::InvalidUtf8 { offset: 1, .. }), "{bad:x?}: {e:?}");
        }
        // Cut off at the very end of the input.
        let e = collect(b"[\"a\"]\xe2\x82", InputFormat::JsonArray).unwrap_err();
        assert!(matches!(e, InputError::InvalidUtf8 { offset: 5, .. }), "{e:?}");
        let good = "[\"é€𝄞\u{10FFFF}\"]";
        assert_eq!(collect(good.as_bytes(), InputFormat::JsonArray).unwrap().len(), 1);
    }

    #[test]
    fn utf16_input_gets_a_hint() {
        let e = collect(b"\xff\xfe[\x00]\x00", InputFormat::JsonArray).unwrap_err();
        assert!(e.to_string().contains("looks like UTF-16"), "{e}");
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        assert_eq!(collect(b"\xef\xbb\xbf[{\"a\":1}]", InputFormat::JsonArray).unwrap(), vec!["{\"a\":1}"]);
        assert_eq!(collect(b"\xef\xbb\xbf{\"a\":1}\n{}\n", InputFormat::Ndjson).unwrap(), vec!["{\"a\":1}", "{}"]);
        // Columns do not count it; offsets do.
        let e = collect(b"\xef\xbb\xbf[\xff]", InputFormat::JsonArray).unwrap_err();
        assert!(matches!(e, InputError::InvalidUtf8 { line: 1, column: 2, offset: 4, .. }), "{e:?}");
        let e = collect(b"\xef\xbb\xbf{\"a\":\xff}", InputFormat::Ndjson).unwrap_err();
        assert!(matches!(e, InputError::InvalidUtf8 { line: 1, column: 6, offset: 8, .. }), "{e:?}");
        // Only at the start, and only whole.
        assert!(collect(b"[\xef\xbb\xbf{}]", InputFormat::JsonArray).is_err());
        assert!(collect(b"\xef\xbb[]", InputFormat::JsonArray).is_err());
        // A reader handing over one byte at a time.
        let slow = SlowReader(&b"\xef\xbb\xbf[1]"[..]);
        assert_eq!(read_items(slow, InputFormat::JsonArray, |_| Ok(())).unwrap(), 1);
        assert!(collect(b"\xef\xbb\xbf", InputFormat::JsonArray).is_err(), "a mark alone is empty input");
    }

    /// Serves one byte per read, like a slow pipe.
    struct SlowReader<'a>(&'a [u8]);

    impl Read for SlowReader<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let Some((first, rest)) = self.0.split_first() else { return Ok(0) };
            if buf.is_empty() {
                return Ok(0);
            }
            buf[0] = *first;
            self.0 = rest;
            Ok(1)
        }
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

    fn csv(text: &[u8]) -> Result<Vec<(u64, String, Option<String>)>, InputError> {
        let mut out = Vec::new();
        read_items(text, InputFormat::Csv { delimiter: b',' }, |it| {
            out.push((it.line, it.json.get().to_owned(), it.invalid));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn csv_rows_become_objects() {
        let rows = csv(b"\xEF\xBB\xBFid,name,note\n1,Ann,plain\n2,\"Bo, Jr\",\"two\nlines\"\n3,Cy\n4,Di,ok\n").unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].1, r#"{"id":"1","name":"Ann","note":"plain"}"#);
        assert_eq!(rows[1].1, r#"{"id":"2","name":"Bo, Jr","note":"two\nlines"}"#, "quoted delimiter and newline");
        assert_eq!(
            (rows[2].0, rows[2].2.as_deref()),
            (5, Some("row at line 5 has 2 fields; the header has 3")),
            "a ragged row is that item's failure"
        );
        assert!(rows[3].2.is_none());
        let semi = read_items(&b"a;b\n1;2\n"[..], InputFormat::Csv { delimiter: b';' }, |it| {
            assert_eq!(it.json.get(), r#"{"a":"1","b":"2"}"#);
            Ok(())
        });
        assert_eq!(semi.unwrap(), 1);
    }

    #[test]
    fn unusable_csv_headers_are_input_errors() {
        let e = csv(b"id,,name\n1,2,3\n").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("column 2 has no name"), "{e}");
        let e = csv(b"id,name,id\n1,2,3\n").unwrap_err().to_string();
        assert!(e.contains("repeats the name \"id\""), "{e}");
        assert_eq!(csv(b"").unwrap().len(), 0);
        let e = csv(b"id,note\n1,ok\n2,\"open\n3,x\n").unwrap_err().to_string();
        assert!(e.contains("malformed CSV at line 3") && e.contains("never closed"), "{e}");
        assert_eq!(InputFormat::csv_delimiter("tab"), Some(b'\t'));
        assert_eq!(InputFormat::from_path("x.csv"), InputFormat::Csv { delimiter: b',' });
    }
}
