//! The writer of every output (SPEC section 6 dialect).
use alloc::vec::Vec;

use crate::config::{LineEnd, QuoteStyle};

#[derive(Debug, Clone, Copy)]
pub struct CsvEncoder {
    pub delimiter: u8,
    pub quote: QuoteStyle,
    pub line_end: LineEnd,
}

impl CsvEncoder {
    pub fn new(delimiter: u8, quote: QuoteStyle, line_end: LineEnd) -> Self {
        CsvEncoder { delimiter, quote, line_end }
    }
    /// Appends a field (preceded by the delimiter unless `first`).
    pub fn field(&self, out: &mut Vec<u8>, value: &[u8], first: bool) {
        let _ = (out, value, first);
        todo!()
    }
    /// Appends a value that does not exist (written as nothing, even when
    /// every other field is quoted).
    pub fn missing(&self, out: &mut Vec<u8>, first: bool) {
        let _ = (out, first);
        todo!()
    }
    pub fn end_record(&self, out: &mut Vec<u8>) {
        let _ = out;
        todo!()
    }
}
