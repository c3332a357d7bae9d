//! A push decoder: bytes in (any chunking), UTF-8 records out.
//!
//! # Design note (for the next maintainer)
//!
//! `csv_core::Reader` does the RFC 4180 work (quotes, doubled quotes, CRLF and
//! LF, embedded newlines) and consumes whole slices; we never call it per
//! byte. Around it this module adds four things csv-core leaves to callers,
//! each of which must give the *same records for every chunking of the input*
//! (the property tests and the `csv_decode` fuzz target check exactly that):
//!
//! 1. **Partial records across pushes.** Field bytes and field ends are written
//!    into `raw` / `ends`, which live in the decoder and keep a half-read record
//!    between pushes. They grow on `OutputFull` / `OutputEndsFull` and are never
//!    shrunk, so after warm-up the hot path allocates nothing.
//! 2. **The BOM.** csv-core strips a BOM only when its *first* read holds all
//!    three bytes, so a BOM split across pushes would leak into the first
//!    field. We match the BOM ourselves (holding up to two bytes between
//!    pushes) and switch csv-core's own stripping off by priming it once with a
//!    read into an empty buffer (which consumes nothing). Without the priming a
//!    second BOM right after the first would be stripped or kept depending on
//!    chunk sizes.
//! 3. **The start line of a record.** csv-core counts `\n` but cannot tell where
//!    a record began, because it silently skips blank lines before it. So at a
//!    record boundary we skip `\r`/`\n` bytes ourselves (exactly what csv-core
//!    would do in its start state: it discards terminators there) and add the
//!    skipped `\n`s to its line counter; the first byte we then hand over starts
//!    the record, and `reader.line()` at that moment is its line.
//! 4. **Charsets.** UTF-8 is validated per record, *and* every field end must
//!    be a char boundary: `\xC3,\xA9` is valid UTF-8 once the delimiter is
//!    removed, but neither field is, and slicing it would panic. ISO-8859-1
//!    maps each byte to the same code point.
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};

use crate::config::Charset;
use crate::error::Result;

/// One decoded record, its fields as UTF-8 text.
///
/// The decoder reuses one `Record` for every record it reads: clone it if you
/// need to keep it past the callback.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Record {
    /// Every field's text, one after the other.
    text: String,
    /// The end offset in `text` of each field; always char boundaries.
    ends: Vec<usize>,
    line: u64,
}

impl Record {
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
    /// Field `i` (panics if out of range: check `len` first).
    pub fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).map(move |i| self.get(i))
    }
    /// The physical line (1-based) the record starts on.
    pub fn line(&self) -> u64 {
        self.line
    }
}

/// What the decoder hands to its caller, one per record (header included).
#[derive(Debug)]
pub enum DecodeEvent<'a> {
    Record(&'a Record),
    /// The record starting at `line` has bytes that are invalid in the charset.
    InvalidEncoding { line: u64 },
}

const BOM: &[u8; 3] = b"\xEF\xBB\xBF";
/// First sizes of the reusable buffers; they double when csv-core fills them.
const RAW_START: usize = 1024;
const ENDS_START: usize = 32;

pub struct CsvDecoder {
    charset: Charset,
    reader: Reader,
    /// How many leading bytes of the input matched the BOM so far; `None` once
    /// the question is settled.
    bom_seen: Option<usize>,
    /// True once the first byte of the current record went to csv-core.
    in_record: bool,
    /// The line the current record started on.
    record_line: u64,
    /// csv-core's output: the unescaped field bytes of the current record.
    /// Its length is its capacity; `raw_len` bytes are used.
    raw: Vec<u8>,
    raw_len: usize,
    /// csv-core's field ends (offsets in `raw`); `ends_len` are used.
    ends: Vec<usize>,
    ends_len: usize,
    /// The record handed out, reused.
    record: Record,
}

impl CsvDecoder {
    pub fn new(delimiter: u8, charset: Charset) -> Self {
        CsvDecoder {
            charset,
            reader: primed_reader(delimiter),
            bom_seen: Some(0),
            in_record: false,
            record_line: 1,
            raw: vec![0; RAW_START],
            raw_len: 0,
            ends: vec![0; ENDS_START],
            ends_len: 0,
            record: Record::default(),
        }
    }

    /// Decodes what `input` completes, calling `on` once per record.
    ///
    /// # Errors
    /// Only what `on` returns: the first error stops decoding and is returned
    /// unchanged. Invalid bytes are reported as [`DecodeEvent::InvalidEncoding`],
    /// never as an error, so the caller decides what a bad row means.
    pub fn push<F>(&mut self, input: &[u8], on: &mut F) -> Result<()>
    where
        F: FnMut(DecodeEvent<'_>) -> Result<()>,
    {
        let mut input = input;
        if let Some(seen) = self.bom_seen {
            let mut matched = seen;
            let mut used = 0;
            while matched < BOM.len() && used < input.len() && input[used] == BOM[matched] {
                matched += 1;
                used += 1;
            }
            if matched == BOM.len() {
                self.bom_seen = None;
                input = &input[used..];
            } else if used == input.len() {
                // Still a prefix of the BOM: wait for more bytes.
                self.bom_seen = Some(matched);
                return Ok(());
            } else {
                // Not a BOM. The bytes held from earlier pushes are data;
                // this push's matched bytes are still at the front of `input`.
                self.bom_seen = None;
                self.feed(&BOM[..seen], on)?;
            }
        }
        self.feed(input, on)
    }

    /// End of input: emits a last record that had no line end. The decoder is
    /// then as new, ready for another input.
    ///
    /// # Errors
    /// Only what `on` returns.
    pub fn finish<F>(&mut self, on: &mut F) -> Result<()>
    where
        F: FnMut(DecodeEvent<'_>) -> Result<()>,
    {
        let result = self.finish_input(on);
        self.reset();
        result
    }

    fn finish_input<F>(&mut self, on: &mut F) -> Result<()>
    where
        F: FnMut(DecodeEvent<'_>) -> Result<()>,
    {
        if let Some(seen) = self.bom_seen.take() {
            // An input shorter than a BOM that began like one.
            self.feed(&BOM[..seen], on)?;
        }
        if !self.in_record {
            return Ok(());
        }
        loop {
            // An empty input tells csv-core the data ended; it then closes the
            // last field, needing one slot in `ends`.
            let (res, _, nout, nend) = self.reader.read_record(
                &[],
                &mut self.raw[self.raw_len..],
                &mut self.ends[self.ends_len..],
            );
            self.raw_len += nout;
            self.ends_len += nend;
            match res {
                ReadRecordResult::OutputEndsFull => grow(&mut self.ends),
                ReadRecordResult::OutputFull => grow(&mut self.raw),
                ReadRecordResult::Record => {
                    self.in_record = false;
                    return self.emit(on);
                }
                ReadRecordResult::InputEmpty | ReadRecordResult::End => return Ok(()),
            }
        }
    }

    fn reset(&mut self) {
        // Keeps the built transition table; only the parse state goes.
        self.reader.reset();
        prime(&mut self.reader);
        self.bom_seen = Some(0);
        self.in_record = false;
        self.record_line = 1;
        self.raw_len = 0;
        self.ends_len = 0;
    }

    /// Runs csv-core over `input` (BOM already handled).
    fn feed<F>(&mut self, mut input: &[u8], on: &mut F) -> Result<()>
    where
        F: FnMut(DecodeEvent<'_>) -> Result<()>,
    {
        while !input.is_empty() {
            if !self.in_record {
                // Blank lines between records: see the design note, point 3.
                let skip = input
                    .iter()
                    .position(|&b| b != b'\n' && b != b'\r')
                    .unwrap_or(input.len());
                let newlines = input[..skip].iter().filter(|&&b| b == b'\n').count() as u64;
                self.reader.set_line(self.reader.line() + newlines);
                input = &input[skip..];
                if input.is_empty() {
                    break;
                }
                self.in_record = true;
                self.record_line = self.reader.line();
                self.raw_len = 0;
                self.ends_len = 0;
            }
            let (res, nin, nout, nend) = self.reader.read_record(
                input,
                &mut self.raw[self.raw_len..],
                &mut self.ends[self.ends_len..],
            );
            input = &input[nin..];
            self.raw_len += nout;
            self.ends_len += nend;
            match res {
                ReadRecordResult::InputEmpty | ReadRecordResult::End => break,
                ReadRecordResult::OutputFull => grow(&mut self.raw),
                ReadRecordResult::OutputEndsFull => grow(&mut self.ends),
                ReadRecordResult::Record => {
                    self.in_record = false;
                    self.emit(on)?;
                }
            }
        }
        Ok(())
    }

    /// Turns the completed record in `raw`/`ends` into text and hands it out.
    fn emit<F>(&mut self, on: &mut F) -> Result<()>
    where
        F: FnMut(DecodeEvent<'_>) -> Result<()>,
    {
        let raw = &self.raw[..self.raw_len];
        let ends = &self.ends[..self.ends_len];
        let line = self.record_line;
        let record = &mut self.record;
        record.text.clear();
        record.ends.clear();
        record.line = line;
        match self.charset {
            Charset::Utf8 => match core::str::from_utf8(raw) {
                Ok(text) if ends.iter().all(|&end| text.is_char_boundary(end)) => {
                    record.text.push_str(text);
                    record.ends.extend_from_slice(ends);
                }
                _ => return on(DecodeEvent::InvalidEncoding { line }),
            },
            Charset::Iso8859_1 => match core::str::from_utf8(raw) {
                // ASCII reads the same in both charsets: copy it at once.
                Ok(text) if raw.is_ascii() => {
                    record.text.push_str(text);
                    record.ends.extend_from_slice(ends);
                }
                _ => latin1_record_to_utf8(raw, ends, record),
            },
        }
        on(DecodeEvent::Record(&self.record))
    }
}

/// Transcodes a record field by field, so the ends follow the longer text.
fn latin1_record_to_utf8(raw: &[u8], ends: &[usize], record: &mut Record) {
    let mut start = 0;
    for &end in ends {
        // csv-core's ends are increasing and within the output; `get` keeps
        // a broken invariant from becoming a panic.
        let field = raw.get(start..end).unwrap_or_default();
        latin1_to_utf8(field, &mut record.text);
        record.ends.push(record.text.len());
        start = end;
    }
}

/// A csv-core reader for our dialect whose own BOM stripping is switched off.
pub(crate) fn primed_reader(delimiter: u8) -> Reader {
    let mut reader = ReaderBuilder::new().delimiter(delimiter).build();
    prime(&mut reader);
    reader
}

fn prime(reader: &mut Reader) {
    // A read into empty buffers consumes nothing but marks the reader as
    // having read, which disables its BOM check (design note, point 2). The
    // one-byte input must be non-empty (empty means end of data) and shorter
    // than a BOM.
    let _ = reader.read_record(b"x", &mut [], &mut []);
}

fn grow<T: Default + Clone>(buf: &mut Vec<T>) {
    let len = buf.len().max(1) * 2;
    buf.resize(len, T::default());
}

/// ISO-8859-1 is the first 256 code points of Unicode, byte for byte.
fn latin1_to_utf8(field: &[u8], out: &mut String) {
    match core::str::from_utf8(field) {
        // Pure ASCII (the common case) copies at once.
        Ok(ascii) if field.is_ascii() => out.push_str(ascii),
        _ => {
            out.reserve(field.len() * 2);
            out.extend(field.iter().map(|&b| char::from(b)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latin1(bytes: &[u8]) -> String {
        let mut out = String::new();
        latin1_to_utf8(bytes, &mut out);
        out
    }

    #[test]
    fn latin1_maps_bytes_to_code_points() {
        for (input, want) in [
            (&b""[..], ""),
            (b"abc", "abc"),
            (b"caf\xE9", "café"),
            (b"\xA0\xFF\x80", "\u{A0}ÿ\u{80}"),
        ] {
            assert_eq!(latin1(input), want, "{input:?}");
        }
    }

    #[test]
    fn primed_reader_does_not_strip_a_bom() {
        let mut reader = primed_reader(b',');
        let mut out = [0u8; 16];
        let mut ends = [0usize; 4];
        let (_, nin, nout, _) = reader.read_record(b"\xEF\xBB\xBFa\n", &mut out, &mut ends);
        assert_eq!((nin, &out[..nout]), (5, &b"\xEF\xBB\xBFa"[..]));
    }

    #[test]
    fn buffers_grow_from_empty() {
        let mut v: Vec<u8> = Vec::new();
        grow(&mut v);
        assert_eq!(v.len(), 2);
        grow(&mut v);
        assert_eq!(v.len(), 4);
    }
}
