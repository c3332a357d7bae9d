//! A push decoder: bytes in (any chunking), UTF-8 records out.
use alloc::string::String;
use alloc::vec::Vec;

use crate::config::Charset;
use crate::error::Result;

/// One decoded record, its fields as UTF-8 text.
#[derive(Debug, Default, Clone)]
pub struct Record {
    text: String,
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
pub enum DecodeEvent<'a> {
    Record(&'a Record),
    /// The record starting at `line` has bytes that are invalid in the charset.
    InvalidEncoding { line: u64 },
}

pub struct CsvDecoder {
    _delimiter: u8,
    _charset: Charset,
}

impl CsvDecoder {
    pub fn new(delimiter: u8, charset: Charset) -> Self {
        CsvDecoder { _delimiter: delimiter, _charset: charset }
    }
    /// Decodes what `input` completes, calling `on` once per record.
    pub fn push<F>(&mut self, input: &[u8], on: &mut F) -> Result<()>
    where
        F: FnMut(DecodeEvent<'_>) -> Result<()>,
    {
        let _ = (input, on);
        todo!()
    }
    /// End of input: emits a last record that had no line end.
    pub fn finish<F>(&mut self, on: &mut F) -> Result<()>
    where
        F: FnMut(DecodeEvent<'_>) -> Result<()>,
    {
        let _ = on;
        todo!()
    }
}
