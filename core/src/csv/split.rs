//! Cutting a CSV byte stream into chunks that end on record boundaries, so
//! that parallel jobs can take chunks independently (the CLI's `--workers`,
//! the JS SDK's worker threads).
//!
//! The boundaries are found by csv-core itself, configured as the decoder
//! configures it ([`super::decode`]), so a cut is exactly where the decoder
//! sees a record end: quotes count only at the start of a field (a quote
//! inside an unquoted field, as in `5'10"`, is data), doubled quotes, CR, LF
//! and CRLF terminators, blank lines. A cut that disagreed with the decoder
//! would glue the half of a record left at the end of one chunk to a record
//! of another part of the file.
//!
//! Per chunk the splitter also counts the records and line feeds, so a job's
//! row and line numbers can be mapped back to the whole file.
use csv_core::{ReadRecordResult, Reader};

use super::decode::primed_reader;

/// Counts of a scanned span.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SpanCounts {
    /// Records that end in the span (blank lines are not records).
    pub records: u64,
    /// Line feeds in the span.
    pub lines: u64,
}

/// Finds record boundaries for one dialect (its delimiter).
#[derive(Debug, Clone)]
pub struct Splitter {
    delimiter: u8,
}

/// Scratch buffers for csv-core's field output, which the splitter discards.
struct Scratch {
    out: [u8; 512],
    ends: [usize; 64],
}

impl Splitter {
    pub fn new(delimiter: u8) -> Splitter {
        Splitter { delimiter }
    }

    /// The length of the longest prefix of `block` that ends on a record
    /// boundary (0 if none), with the counts of that prefix. `block` must
    /// start at a record boundary (after the header, or where the previous
    /// cut ended): call again with the rest prepended to more input.
    pub fn cut(&self, block: &[u8]) -> (usize, SpanCounts) {
        let mut reader = primed_reader(self.delimiter);
        let mut s = Scratch { out: [0; 512], ends: [0; 64] };
        let mut pos = 0;
        let mut records = 0;
        let mut best = (0, 0);
        while pos < block.len() {
            let (res, nin, _, _) = reader.read_record(&block[pos..], &mut s.out, &mut s.ends);
            pos += nin;
            match res {
                ReadRecordResult::Record => {
                    records += 1;
                    best = (pos, records);
                }
                ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull => {}
                ReadRecordResult::InputEmpty | ReadRecordResult::End => break,
            }
        }
        let (end, records) = best;
        (end, SpanCounts { records, lines: line_feeds(&block[..end]) })
    }

    /// Counts of the input's final span (what `cut` left over at the end):
    /// its last record ends with the input.
    pub fn finish(&self, tail: &[u8]) -> SpanCounts {
        let mut reader = primed_reader(self.delimiter);
        let mut s = Scratch { out: [0; 512], ends: [0; 64] };
        let records = count_to_end(&mut reader, tail, &mut s);
        SpanCounts { records, lines: line_feeds(tail) }
    }

    /// The end of the first record of `bytes` (just past its terminator), if
    /// complete: the header. A UTF-8 byte-order mark is part of it.
    pub fn first_record_end(&self, bytes: &[u8]) -> Option<usize> {
        let skip = if bytes.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
        let mut reader = primed_reader(self.delimiter);
        let mut s = Scratch { out: [0; 512], ends: [0; 64] };
        let mut pos = skip;
        while pos < bytes.len() {
            let (res, nin, _, _) = reader.read_record(&bytes[pos..], &mut s.out, &mut s.ends);
            pos += nin;
            match res {
                ReadRecordResult::Record => return Some(pos),
                ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull => {}
                ReadRecordResult::InputEmpty | ReadRecordResult::End => return None,
            }
        }
        None
    }
}

/// Records in `input` when it is the end of the data.
fn count_to_end(reader: &mut Reader, input: &[u8], s: &mut Scratch) -> u64 {
    let mut pos = 0;
    let mut records = 0;
    loop {
        // Past the input, an empty slice tells csv-core the data ended.
        let (res, nin, _, _) = reader.read_record(&input[pos..], &mut s.out, &mut s.ends);
        pos += nin;
        match res {
            ReadRecordResult::Record => records += 1,
            ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull | ReadRecordResult::InputEmpty => {}
            ReadRecordResult::End => return records,
        }
    }
}

fn line_feeds(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_after_the_last_record_end() {
        let s = Splitter::new(b',');
        assert_eq!(s.cut(b"a,b\n1,\"x\ny\"\n2,3"), (12, SpanCounts { records: 2, lines: 3 }));
        // CRLF: the cut may fall between CR and LF; the LF then starts the next chunk.
        let (n, c) = s.cut(b"2,3\r\n\r\n4,\"a\"\"b");
        assert!(n == 4 || n == 5 || n == 7, "{n}");
        assert_eq!(c.records, 1);
        assert_eq!(s.finish(b"4,\"a\"\"b\""), SpanCounts { records: 1, lines: 0 });
        assert_eq!(s.finish(b""), SpanCounts::default());
        assert_eq!(s.finish(b"\r\n\n"), SpanCounts { records: 0, lines: 2 });
    }

    #[test]
    fn an_open_quote_holds_the_cut_and_a_quote_inside_a_field_does_not() {
        let s = Splitter::new(b',');
        assert_eq!(s.cut(b"x\n\"open\nstill"), (2, SpanCounts { records: 1, lines: 1 }));
        assert_eq!(s.cut(b"\"open\nstill\",1\n").0, 15);
        // 5'10" is data: the line feed after it ends the record.
        assert_eq!(s.cut(b"a,5'10\",b\nc,d\n"), (14, SpanCounts { records: 2, lines: 2 }));
        assert_eq!(s.cut(b"a,5'10\",b\nc,d"), (10, SpanCounts { records: 1, lines: 1 }));
    }

    #[test]
    fn header_end() {
        let s = Splitter::new(b',');
        assert_eq!(s.first_record_end(b"\n\"a\nb\",c\r\nrow"), Some(9));
        assert_eq!(s.first_record_end(b"\xEF\xBB\xBFa,b\nrow"), Some(7));
        assert_eq!(s.first_record_end(b"a,b"), None);
        assert_eq!(Splitter::new(b';').first_record_end(b"a;\"x\ny\"\nz"), Some(8));
    }
}
