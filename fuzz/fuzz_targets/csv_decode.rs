//! The CSV decoder on arbitrary bytes: it must never panic, and a push split
//! anywhere (or one byte per push) must give the same events as one push.
//!
//! Input layout: byte 0 picks the delimiter, byte 1 the split point, the rest
//! is the CSV. Both charsets run on every input.
#![no_main]

use keylink_core::config::Charset;
use keylink_core::csv::{CsvDecoder, DecodeEvent};
use libfuzzer_sys::fuzz_target;

/// (start line, fields), or (line, None) for an InvalidEncoding event.
type Event = (u64, Option<Vec<String>>);

/// Decodes with `decoder`, which `finish` leaves as new for the next call.
fn decode<'a>(decoder: &mut CsvDecoder, chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Event> {
    let mut events = Vec::new();
    let mut on = |ev: DecodeEvent<'_>| {
        events.push(match ev {
            DecodeEvent::Record(r) => {
                // Every record has a field, and every field is reachable.
                assert!(!r.is_empty());
                let fields: Vec<String> = (0..r.len()).map(|i| r.get(i).to_owned()).collect();
                assert_eq!(fields.iter().map(String::len).sum::<usize>(), r.fields().map(str::len).sum());
                (r.line(), Some(fields))
            }
            DecodeEvent::InvalidEncoding { line } => (line, None),
        });
        Ok(())
    };
    for chunk in chunks {
        decoder.push(chunk, &mut on).expect("the callback never fails");
    }
    decoder.finish(&mut on).expect("the callback never fails");
    events
}

fuzz_target!(|data: &[u8]| {
    let [pick, cut, csv @ ..] = data else { return };
    // The dialects the job file allows, plus now and then any byte at all
    // (a quote, a line end, a non-ASCII byte) to prove those cannot panic.
    let delimiter = match pick % 8 {
        0..=1 => b',',
        2 => b';',
        3 => b'\t',
        4 => b'|',
        _ => *pick,
    };
    let cut = usize::from(*cut) * csv.len() / 255;
    let (head, tail) = csv.split_at(cut);
    let newlines = csv.iter().filter(|&&b| b == b'\n').count() as u64;
    for charset in [Charset::Utf8, Charset::Iso8859_1] {
        // One decoder reused: building csv-core's table dominates a run
        // under coverage instrumentation, and reuse checks `finish`'s reset.
        let mut decoder = CsvDecoder::new(delimiter, charset);
        let whole = decode(&mut decoder, [csv]);
        assert_eq!(decode(&mut decoder, [head, tail]), whole, "split at {cut}");
        assert_eq!(decode(&mut decoder, csv.chunks(1)), whole, "one byte per push");
        // Lines start at 1, never go back, and never pass the last line.
        let mut last = 1;
        for (line, _) in &whole {
            assert!(*line >= last && *line <= newlines + 1, "line {line}");
            last = *line;
        }
        if charset == Charset::Iso8859_1 {
            assert!(whole.iter().all(|(_, fields)| fields.is_some()), "Latin-1 is never invalid");
        }
    }
});
