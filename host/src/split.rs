//! Cutting a CSV byte stream into chunks that end on record boundaries, so
//! that workers can process chunks independently.
//!
//! A record ends at a line feed outside quotes. Quote state is tracked by
//! parity: a doubled quote inside a quoted field flips it twice, so parity
//! is exact for RFC 4180 input (and for any charset that encodes `"` and
//! LF as single ASCII bytes, as UTF-8 and ISO-8859-1 do). The splitter also
//! counts, per chunk, the records (non-blank lines, as the CSV reader skips
//! blank ones) and line feeds, so workers' row and line numbers can be
//! mapped back to the whole file.

/// Scanning state carried from one block to the next.
#[derive(Debug, Default, Clone)]
pub struct Splitter {
    in_quotes: bool,
    /// Whether the current (unfinished) line has a byte other than CR.
    line_has_content: bool,
}

/// Counts for a scanned span.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SpanCounts {
    pub records: u64,
    pub lines: u64,
}

impl Splitter {
    /// Scans `block`, returning the length of its longest prefix that ends on
    /// a record boundary (0 if none), with the counts of that prefix. The
    /// state only advances over the returned prefix: call again with the
    /// remainder prepended to more input.
    pub fn cut(&mut self, block: &[u8]) -> (usize, SpanCounts) {
        let mut st = self.clone();
        let mut counts = SpanCounts::default();
        let mut best = (0usize, SpanCounts::default(), self.clone());
        for (i, &b) in block.iter().enumerate() {
            match b {
                b'"' => {
                    st.in_quotes = !st.in_quotes;
                    st.line_has_content = true;
                }
                b'\n' => {
                    counts.lines += 1;
                    if !st.in_quotes {
                        if st.line_has_content {
                            counts.records += 1;
                        }
                        st.line_has_content = false;
                        best = (i + 1, counts, st.clone());
                    }
                }
                b'\r' => {}
                _ => st.line_has_content = true,
            }
        }
        *self = best.2;
        (best.0, best.1)
    }

    /// Counts of the final span of the input, which has no record end
    /// outside quotes (what `cut` left over at the end).
    pub fn finish(&self, tail: &[u8]) -> SpanCounts {
        let content = self.line_has_content || tail.iter().any(|&b| b != b'\r' && b != b'\n');
        SpanCounts { records: u64::from(content), lines: tail.iter().filter(|&&b| b == b'\n').count() as u64 }
    }
}

/// The index of the end of the first record of `bytes` (just past its line
/// feed), if complete: the header.
pub fn first_record_end(bytes: &[u8]) -> Option<usize> {
    let mut in_quotes = false;
    let mut content = false;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => {
                in_quotes = !in_quotes;
                content = true;
            }
            b'\n' if !in_quotes && content => return Some(i + 1),
            b'\r' | b'\n' => {}
            _ => content = true,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_after_the_last_record_end_outside_quotes() {
        let mut s = Splitter::default();
        let (n, c) = s.cut(b"a,b\n1,\"x\ny\"\n2,3");
        assert_eq!(n, 12);
        assert_eq!(c, SpanCounts { records: 2, lines: 3 });
        let (n, c) = s.cut(b"2,3\r\n\r\n4,\"a\"\"b");
        assert_eq!(n, 7);
        assert_eq!(c, SpanCounts { records: 1, lines: 2 });
        assert_eq!(s.finish(b"4,\"a\"\"b\""), SpanCounts { records: 1, lines: 0 });
    }

    #[test]
    fn an_open_quote_holds_the_cut() {
        let mut s = Splitter::default();
        assert_eq!(s.cut(b"x\n\"open\nstill"), (2, SpanCounts { records: 1, lines: 1 }));
        let (n, _) = s.cut(b"\"open\nstill\",1\n");
        assert_eq!(n, 15);
    }

    #[test]
    fn header_end() {
        assert_eq!(first_record_end(b"\n\"a\nb\",c\r\nrow"), Some(10));
        assert_eq!(first_record_end(b"a,b"), None);
    }
}
