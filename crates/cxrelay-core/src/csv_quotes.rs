//! Whether CSV input ends inside a quoted field.
//!
//! The `csv` crate, like most CSV readers, ends an unclosed quoted field at the end of the input
//! without complaint: one stray `"` silently merges the rest of the file into one field of one
//! row. [`QuoteTracker`] watches the bytes on their way to the parser with the same rules
//! (RFC 4180 as `csv-core` reads it: a quote opens a quoted field only at a field's start, `""`
//! inside one is a literal quote, a quote elsewhere is a literal character) and says, at the end,
//! on which line the unclosed field opened.

use std::io::Read;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a field (after a delimiter, a line end, or at the beginning).
    FieldStart,
    /// Inside an unquoted field: quotes are literal.
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// Just after a quote inside a quoted field: another quote is a literal one; anything else
    /// means the field's quoting ended.
    QuoteInQuoted,
}

/// A reader that passes bytes through unchanged while following CSV quoting.
#[derive(Debug)]
pub struct QuoteTracker<R> {
    inner: R,
    delimiter: u8,
    state: State,
    /// Line (1-based) of the byte about to be read.
    line: u64,
    /// Line where the quoted field now open began.
    opened_at: u64,
}

impl<R> QuoteTracker<R> {
    /// Tracks `inner`, whose fields are separated by `delimiter`.
    pub fn new(inner: R, delimiter: u8) -> Self {
        Self { inner, delimiter, state: State::FieldStart, line: 1, opened_at: 0 }
    }

    /// After the last byte: the line where a quoted field opened and never closed, if one did.
    pub fn unclosed_quote_line(&self) -> Option<u64> {
        (self.state == State::Quoted).then_some(self.opened_at)
    }

    fn follow(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let ends_field = b == self.delimiter || b == b'\n' || b == b'\r';
            self.state = match self.state {
                State::FieldStart | State::Unquoted | State::QuoteInQuoted if ends_field => State::FieldStart,
                State::FieldStart if b == b'"' => {
                    self.opened_at = self.line;
                    State::Quoted
                }
                State::FieldStart | State::Unquoted => State::Unquoted,
                State::Quoted if b == b'"' => State::QuoteInQuoted,
                State::Quoted => State::Quoted,
                State::QuoteInQuoted if b == b'"' => State::Quoted,
                State::QuoteInQuoted => State::Unquoted,
            };
            if b == b'\n' {
                self.line += 1;
            }
        }
    }
}

impl<R: Read> Read for QuoteTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.follow(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unclosed(text: &str, delimiter: u8) -> Option<u64> {
        let mut t = QuoteTracker::new(text.as_bytes(), delimiter);
        std::io::copy(&mut t, &mut std::io::sink()).unwrap();
        t.unclosed_quote_line()
    }

    #[test]
    fn well_formed_quoting_is_closed() {
        for text in [
            "a,b\n1,2\n",
            "a,b\n\"x, y\",2\n",
            "a,b\n\"multi\nline\",2\n",
            "a,b\n\"say \"\"hi\"\"\",2",
            "a,b\n5\" screen,2\n",
            "a,b\n\"\",\"\"\r\n",
            "a,b\n\"q\"tail,2\n",
        ] {
            assert_eq!(unclosed(text, b','), None, "{text:?}");
        }
    }

    #[test]
    fn an_unclosed_quote_names_the_line_it_opened_on() {
        assert_eq!(unclosed("a,b\n1,2\n\"open,3\n4,5\n6,7\n", b','), Some(3));
        assert_eq!(unclosed("a,b\n1,\"x\"\"\n", b','), Some(2));
        assert_eq!(unclosed("a;b\n\"x\ny\";\"z\n", b';'), Some(3), "the second field opens on line 3");
    }

    #[test]
    fn the_delimiter_decides_where_fields_start() {
        // With `;` as delimiter, the quote after a comma is inside an unquoted field: literal.
        assert_eq!(unclosed("a;b\nx,\"y;2\n", b';'), None);
        assert_eq!(unclosed("a,b\nx,\"y;2\n", b','), Some(2));
    }

    #[test]
    fn split_reads_give_the_same_answer() {
        let text = "a,b\n\"one\n\"\"two\",3\n\"open\n";
        let mut t = QuoteTracker::new(text.as_bytes(), b',');
        let mut buf = [0u8; 1];
        while t.read(&mut buf).unwrap() > 0 {}
        assert_eq!(t.unclosed_quote_line(), Some(4));
    }
}
