//! The writer of every output (SPEC section 6 dialect).
//!
//! `Always` is STRM's writer (every field quoted, `""` for empty, CRLF by
//! default), kept so existing readers of STRM's files see the same bytes.
//! `Necessary` is minimal CSV, with two exceptions that keep it lossless:
//! an empty *first* field is written `""` (if it were the only field, the
//! record would be a blank line, which readers skip; the encoder cannot see
//! whether more fields follow), and a first field starting with a UTF-8 BOM
//! is quoted (at the start of a file a reader would strip it).
use alloc::vec::Vec;

use crate::config::{LineEnd, QuoteStyle};

#[derive(Debug, Clone, Copy)]
pub struct CsvEncoder {
    pub delimiter: u8,
    pub quote: QuoteStyle,
    pub line_end: LineEnd,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl CsvEncoder {
    pub fn new(delimiter: u8, quote: QuoteStyle, line_end: LineEnd) -> Self {
        CsvEncoder { delimiter, quote, line_end }
    }

    /// Appends a field (preceded by the delimiter unless `first`).
    pub fn field(&self, out: &mut Vec<u8>, value: &[u8], first: bool) {
        if !first {
            out.push(self.delimiter);
        }
        let quote = match self.quote {
            QuoteStyle::Always => true,
            QuoteStyle::Necessary => {
                self.needs_quotes(value) || (first && (value.is_empty() || value.starts_with(BOM)))
            }
        };
        if quote {
            write_quoted(out, value);
        } else {
            out.extend_from_slice(value);
        }
    }

    /// Appends a value that does not exist (written as nothing, even when
    /// every other field is quoted). Never use it for the only field of a
    /// record: that record would read back as a blank line, i.e. not at all.
    pub fn missing(&self, out: &mut Vec<u8>, first: bool) {
        if !first {
            out.push(self.delimiter);
        }
    }

    pub fn end_record(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(match self.line_end {
            LineEnd::CrLf => b"\r\n",
            LineEnd::Lf => b"\n",
        });
    }

    /// One scan for the bytes a reader would take as structure.
    fn needs_quotes(&self, value: &[u8]) -> bool {
        let d = self.delimiter;
        value.iter().any(|&b| b == d || b == b'"' || b == b'\r' || b == b'\n')
    }
}

/// `"` + value with each `"` doubled + `"`, copying the runs between quotes
/// in one go.
fn write_quoted(out: &mut Vec<u8>, value: &[u8]) {
    out.reserve(value.len() + 2);
    out.push(b'"');
    if !value.contains(&b'"') {
        // The common case: one copy.
        out.extend_from_slice(value);
        out.push(b'"');
        return;
    }
    let mut parts = value.split(|&b| b == b'"');
    if let Some(part) = parts.next() {
        out.extend_from_slice(part);
    }
    for part in parts {
        out.extend_from_slice(b"\"\"");
        out.extend_from_slice(part);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_embedded_quotes() {
        for (value, want) in [
            (&b""[..], &b"\"\""[..]),
            (b"a", b"\"a\""),
            (b"\"", b"\"\"\"\""),
            (b"a\"b\"\"c", b"\"a\"\"b\"\"\"\"c\""),
        ] {
            let mut out = Vec::new();
            write_quoted(&mut out, value);
            assert_eq!(out, want, "{value:?}");
        }
    }
}
