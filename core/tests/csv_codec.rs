//! The CSV codec (SPEC sections 2 and 6): every decoder case runs through
//! every chunking mode (one push, one byte per push, every two-way split),
//! because the caller may push any slicing of a file.
use keylink_core::config::{Charset, LineEnd, QuoteStyle};
use keylink_core::csv::{CsvDecoder, CsvEncoder, DecodeEvent};
use keylink_core::error::{Error, Result};
use proptest::prelude::*;

/// A decode event, owned, for comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    /// (start line, fields)
    Rec(u64, Vec<String>),
    /// InvalidEncoding at line
    Bad(u64),
}

fn rec(line: u64, fields: &[&str]) -> Ev {
    Ev::Rec(line, fields.iter().map(|f| f.to_string()).collect())
}

fn collect(events: &mut Vec<Ev>) -> impl FnMut(DecodeEvent<'_>) -> Result<()> + '_ {
    move |ev| {
        events.push(match ev {
            DecodeEvent::Record(r) => Ev::Rec(r.line(), r.fields().map(String::from).collect()),
            DecodeEvent::InvalidEncoding { line } => Ev::Bad(line),
        });
        Ok(())
    }
}

fn decode_chunks<'a>(delimiter: u8, charset: Charset, chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Ev> {
    let mut events = Vec::new();
    let mut on = collect(&mut events);
    let mut dec = CsvDecoder::new(delimiter, charset);
    for chunk in chunks {
        dec.push(chunk, &mut on).unwrap();
    }
    dec.finish(&mut on).unwrap();
    drop(on);
    events
}

/// Decodes `input` whole, byte by byte and split at every position; all must
/// agree. Returns the events of the whole push.
fn decode_all_ways(delimiter: u8, charset: Charset, input: &[u8]) -> Vec<Ev> {
    let whole = decode_chunks(delimiter, charset, [input]);
    let bytes = decode_chunks(delimiter, charset, input.chunks(1));
    assert_eq!(bytes, whole, "one byte per push differs for {input:?}");
    for cut in 0..=input.len() {
        let (a, b) = input.split_at(cut);
        let split = decode_chunks(delimiter, charset, [a, b]);
        assert_eq!(split, whole, "split at {cut} differs for {input:?}");
    }
    whole
}

/// (name, delimiter, charset, input, expected events)
type DecodeCase = (&'static str, u8, Charset, &'static [u8], Vec<Ev>);
/// (name, quote, line end, delimiter, rows, expected output)
type EncodeCase = (&'static str, QuoteStyle, LineEnd, u8, Vec<&'static [Option<&'static str>]>, &'static str);

const U: Charset = Charset::Utf8;
const L: Charset = Charset::Iso8859_1;

#[test]
fn decoder_cases() {
    #[rustfmt::skip]
    let cases: Vec<DecodeCase> = vec![
        ("empty input", b',', U, b"", vec![]),
        ("LF", b',', U, b"a,b\n1,2\n", vec![rec(1, &["a", "b"]), rec(2, &["1", "2"])]),
        ("CRLF", b',', U, b"a,b\r\n1,2\r\n", vec![rec(1, &["a", "b"]), rec(2, &["1", "2"])]),
        ("mixed line ends", b',', U, b"a\r\nb\nc\r\n", vec![rec(1, &["a"]), rec(2, &["b"]), rec(3, &["c"])]),
        ("final record without line end", b',', U, b"a,b\n1,2", vec![rec(1, &["a", "b"]), rec(2, &["1", "2"])]),
        ("final quoted field without line end", b',', U, b"a\n\"x\"", vec![rec(1, &["a"]), rec(2, &["x"])]),
        ("unterminated quote runs to the end", b',', U, b"a\n\"x,y\n", vec![rec(1, &["a"]), rec(2, &["x,y\n"])]),
        ("quoted newline", b',', U, b"h,i\n\"x\ny\",z\nnext,1\n",
            vec![rec(1, &["h", "i"]), rec(2, &["x\ny", "z"]), rec(4, &["next", "1"])]),
        ("quoted CRLF", b',', U, b"\"x\r\ny\"\r\nb\r\n", vec![rec(1, &["x\r\ny"]), rec(3, &["b"])]),
        ("line numbers after several multi-line fields", b',', U, b"\"1\n2\n3\",\"4\n5\"\nz\n",
            vec![rec(1, &["1\n2\n3", "4\n5"]), rec(5, &["z"])]),
        ("doubled quotes", b',', U, b"\"a\"\"b\",\"\"\"\"\n", vec![rec(1, &["a\"b", "\""])]),
        ("embedded delimiter", b',', U, b"\"a,b\",c\n", vec![rec(1, &["a,b", "c"])]),
        ("empty quoted field", b',', U, b"\"\"\n", vec![rec(1, &[""])]),
        ("empty fields", b',', U, b",\na,,b\n", vec![rec(1, &["", ""]), rec(2, &["a", "", "b"])]),
        ("spaces are kept", b',', U, b" a , b \n", vec![rec(1, &[" a ", " b "])]),
        ("BOM", b',', U, b"\xEF\xBB\xBFa,b\n1,2\n", vec![rec(1, &["a", "b"]), rec(2, &["1", "2"])]),
        ("BOM only", b',', U, b"\xEF\xBB\xBF", vec![]),
        ("BOM then quoted field", b',', U, b"\xEF\xBB\xBF\"a\"\n", vec![rec(1, &["a"])]),
        ("only the first BOM is skipped", b',', U, b"\xEF\xBB\xBF\xEF\xBB\xBFa\n", vec![rec(1, &["\u{FEFF}a"])]),
        ("BOM later is data", b',', U, b"a\n\xEF\xBB\xBFb\n", vec![rec(1, &["a"]), rec(2, &["\u{FEFF}b"])]),
        ("BOM prefix is not a BOM (Latin-1)", b',', L, b"\xEF\xBBx\n", vec![rec(1, &["ï»x"])]),
        ("BOM prefix is not a BOM (UTF-8)", b',', U, b"\xEF\xBBx\ny\n", vec![Ev::Bad(1), rec(2, &["y"])]),
        ("short input like a BOM", b',', L, b"\xEF\xBB", vec![rec(1, &["ï»"])]),
        ("semicolon", b';', U, b"a;b,c\n\"x;y\";z\n", vec![rec(1, &["a", "b,c"]), rec(2, &["x;y", "z"])]),
        ("tab", b'\t', U, b"a\tb c\n\"x\ty\"\tz\n", vec![rec(1, &["a", "b c"]), rec(2, &["x\ty", "z"])]),
        ("pipe", b'|', U, b"a|b\n\"x|y\"|z\n", vec![rec(1, &["a", "b"]), rec(2, &["x|y", "z"])]),
        ("ragged rows keep their own counts", b',', U, b"a,b,c\n1\n1,2,3,4\n",
            vec![rec(1, &["a", "b", "c"]), rec(2, &["1"]), rec(3, &["1", "2", "3", "4"])]),
        ("blank lines are skipped, lines still counted", b',', U, b"a\n\n\nb\r\n\r\nc",
            vec![rec(1, &["a"]), rec(4, &["b"]), rec(6, &["c"])]),
        ("leading blank lines", b',', U, b"\n\r\n\na\n", vec![rec(4, &["a"])]),
        ("trailing blank lines", b',', U, b"a\n\n\n", vec![rec(1, &["a"])]),
        ("bare CR ends a record but not a line", b',', U, b"a\rb\r\nc\n", vec![rec(1, &["a"]), rec(1, &["b"]), rec(2, &["c"])]),
        ("invalid UTF-8 names its line, decoding continues", b',', U, b"a\nb\xFF\nc\n",
            vec![rec(1, &["a"]), Ev::Bad(2), rec(3, &["c"])]),
        ("invalid UTF-8 in a multi-line field", b',', U, b"a\n\"x\n\xFF\"\nc\n",
            vec![rec(1, &["a"]), Ev::Bad(2), rec(4, &["c"])]),
        ("invalid UTF-8 in the last record", b',', U, b"a\n\xC3", vec![rec(1, &["a"]), Ev::Bad(2)]),
        ("a char split by a delimiter is invalid", b',', U, b"\xC3,\xA9\nok\n", vec![Ev::Bad(1), rec(2, &["ok"])]),
        ("a char split by a quote is invalid", b',', U, b"\"\xC3\"\"\xA9\"\n", vec![Ev::Bad(1)]),
        ("valid UTF-8", b',', U, b"caf\xC3\xA9,\xF0\x9F\x94\x91\n", vec![rec(1, &["café", "🔑"])]),
        ("ISO-8859-1", b',', L, b"caf\xE9,\xFF\n", vec![rec(1, &["café", "ÿ"])]),
        ("ISO-8859-1 multi-field offsets", b';', L, b"\xE9\xE9;x;\xE0\n", vec![rec(1, &["éé", "x", "à"])]),
    ];
    for (name, delimiter, charset, input, want) in cases {
        let got = decode_all_ways(delimiter, charset, input);
        assert_eq!(got, want, "case `{name}`");
    }
}

#[test]
fn bom_split_one_byte_per_push() {
    let input = b"\xEF\xBB\xBFid,name\n1,x\n";
    let got = decode_chunks(b',', U, input.chunks(1));
    assert_eq!(got, vec![rec(1, &["id", "name"]), rec(2, &["1", "x"])]);
}

#[test]
fn long_fields_and_many_fields_grow_the_buffers() {
    let long = "x".repeat(10_000);
    let wide: Vec<String> = (0..500).map(|i| i.to_string()).collect();
    let mut input = format!("\"{long}\",{long}\n");
    input.push_str(&wide.join(","));
    input.push('\n');
    input.push_str(&wide.join(",")); // and once more without a line end
    for chunk in [1, 7, 1000, input.len()] {
        let got = decode_chunks(b',', U, input.as_bytes().chunks(chunk));
        assert_eq!(
            got,
            vec![Ev::Rec(1, vec![long.clone(), long.clone()]), Ev::Rec(2, wide.clone()), Ev::Rec(3, wide.clone())],
            "chunk {chunk}"
        );
    }
}

#[test]
fn record_accessors() {
    let mut dec = CsvDecoder::new(b',', U);
    let mut seen = 0;
    let mut on = |ev: DecodeEvent<'_>| {
        let DecodeEvent::Record(r) = ev else { panic!("not a record") };
        assert_eq!((r.len(), r.is_empty(), r.line()), (3, false, 1));
        assert_eq!((r.get(0), r.get(1), r.get(2)), ("a", "", "é"));
        seen += 1;
        Ok(())
    };
    dec.push("a,,é".as_bytes(), &mut on).unwrap();
    dec.finish(&mut on).unwrap();
    assert_eq!(seen, 1);
}

#[test]
fn errors_from_the_callback_stop_decoding_unchanged() {
    let stop = Error::state("stop here");
    // From push: the second record stops it; the third is never seen.
    let mut dec = CsvDecoder::new(b',', U);
    let mut seen = Vec::new();
    let err = dec
        .push(b"a\nb\nc\n", &mut |ev| {
            if let DecodeEvent::Record(r) = ev {
                seen.push(r.get(0).to_string());
            }
            if seen.len() == 2 { Err(stop.clone()) } else { Ok(()) }
        })
        .unwrap_err();
    assert_eq!((err, seen), (stop.clone(), vec!["a".to_string(), "b".to_string()]));
    // From an InvalidEncoding event, and from finish.
    let mut dec = CsvDecoder::new(b',', U);
    let mut on = |_: DecodeEvent<'_>| Err(stop.clone());
    assert_eq!(dec.push(b"\xFF\n", &mut on), Err(stop.clone()));
    let mut dec = CsvDecoder::new(b',', U);
    dec.push(b"last", &mut on).unwrap();
    assert_eq!(dec.finish(&mut on), Err(stop.clone()));
}

#[test]
fn decoder_is_new_after_finish() {
    let mut events = Vec::new();
    let mut on = collect(&mut events);
    let mut dec = CsvDecoder::new(b',', U);
    dec.push(b"\xEF\xBB\xBFa\nb", &mut on).unwrap();
    dec.finish(&mut on).unwrap();
    dec.push(b"\xEF\xBB\xBFc\n", &mut on).unwrap();
    dec.finish(&mut on).unwrap();
    drop(on);
    assert_eq!(events, vec![rec(1, &["a"]), rec(2, &["b"]), rec(1, &["c"])]);
}

/// A record to write: `None` is a value that does not exist.
fn encode(enc: &CsvEncoder, rows: &[&[Option<&str>]]) -> Vec<u8> {
    let mut out = Vec::new();
    for row in rows {
        for (i, value) in row.iter().enumerate() {
            match value {
                Some(v) => enc.field(&mut out, v.as_bytes(), i == 0),
                None => enc.missing(&mut out, i == 0),
            }
        }
        enc.end_record(&mut out);
    }
    out
}

#[test]
fn encoder_cases() {
    use LineEnd::{CrLf, Lf};
    use QuoteStyle::{Always, Necessary};
    #[rustfmt::skip]
    let cases: Vec<EncodeCase> = vec![
        ("STRM default", Always, CrLf, b',', vec![&[Some("id"), Some("name")], &[Some("1"), Some("")]],
            "\"id\",\"name\"\r\n\"1\",\"\"\r\n"),
        ("always, LF", Always, Lf, b',', vec![&[Some("a"), Some("b")]], "\"a\",\"b\"\n"),
        ("always doubles quotes", Always, CrLf, b',', vec![&[Some("say \"hi\""), Some("\"")]],
            "\"say \"\"hi\"\"\",\"\"\"\"\r\n"),
        ("always keeps newlines inside quotes", Always, CrLf, b',', vec![&[Some("a\r\nb")]], "\"a\r\nb\"\r\n"),
        ("missing value in always mode", Always, CrLf, b',', vec![&[Some("a"), None, Some("")]], "\"a\",,\"\"\r\n"),
        ("missing value first", Always, Lf, b',', vec![&[None, Some("b")]], ",\"b\"\n"),
        ("necessary, LF", Necessary, Lf, b',', vec![&[Some("a"), Some("b c"), Some("")]], "a,b c,\n"),
        ("necessary, CRLF", Necessary, CrLf, b',', vec![&[Some("a"), Some("b")], &[Some("1"), Some("2")]], "a,b\r\n1,2\r\n"),
        ("necessary quotes structure", Necessary, Lf, b',',
            vec![&[Some("x"), Some("a,b"), Some("q\"r"), Some("c\nd"), Some("e\rf")]],
            "x,\"a,b\",\"q\"\"r\",\"c\nd\",\"e\rf\"\n"),
        ("necessary follows the delimiter", Necessary, Lf, b';', vec![&[Some("a,b"), Some("c;d")]], "a,b;\"c;d\"\n"),
        ("necessary, tab", Necessary, Lf, b'\t', vec![&[Some("a b"), Some("c\td")]], "a b\t\"c\td\"\n"),
        ("necessary, pipe", Necessary, CrLf, b'|', vec![&[Some("a"), Some("b|c")]], "a|\"b|c\"\r\n"),
        ("necessary missing value", Necessary, Lf, b',', vec![&[Some("a"), None, Some("c")]], "a,,c\n"),
        ("an empty only field is not a blank line", Necessary, Lf, b',', vec![&[Some("")]], "\"\"\n"),
        ("an empty first field is quoted", Necessary, Lf, b',', vec![&[Some(""), Some("")]], "\"\",\n"),
        ("a leading BOM is quoted", Necessary, Lf, b',', vec![&[Some("\u{FEFF}a"), Some("\u{FEFF}b")]],
            "\"\u{FEFF}a\",\u{FEFF}b\n"),
    ];
    for (name, quote, line_end, delimiter, rows, want) in cases {
        let enc = CsvEncoder::new(delimiter, quote, line_end);
        let got = encode(&enc, &rows);
        assert_eq!(String::from_utf8(got).unwrap(), want, "case `{name}`");
    }
}

/// Bytes that look like CSV more often than uniform noise does.
fn csvish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => prop::sample::select(b"ab,;|\t\"\r\n ".to_vec()),
        1 => prop::sample::select(b"\xEF\xBB\xBF\xC3\xA9\xFF".to_vec()),
        1 => any::<u8>(),
    ];
    prop::collection::vec(byte, 0..200)
}

fn delimiter() -> impl Strategy<Value = u8> {
    prop::sample::select(b",;\t|".to_vec())
}

fn charset() -> impl Strategy<Value = Charset> {
    prop_oneof![Just(U), Just(L)]
}

fn quote_style() -> impl Strategy<Value = QuoteStyle> {
    prop_oneof![Just(QuoteStyle::Always), Just(QuoteStyle::Necessary)]
}

fn line_end() -> impl Strategy<Value = LineEnd> {
    prop_oneof![Just(LineEnd::CrLf), Just(LineEnd::Lf)]
}

/// Field text with plenty of the characters that need quoting.
fn field_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-c,;|\t\"\r\n \u{FEFF}é]{0,8}",
        1 => any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_chunking_gives_the_same_records(
        input in csvish_bytes(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        delimiter in delimiter(),
        charset in charset(),
    ) {
        let whole = decode_chunks(delimiter, charset, [&input[..]]);
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
        at.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for cut in at {
            chunks.push(&input[start..cut]);
            start = cut;
        }
        chunks.push(&input[start..]);
        prop_assert_eq!(&decode_chunks(delimiter, charset, chunks), &whole);
        prop_assert_eq!(&decode_chunks(delimiter, charset, input.chunks(1)), &whole);
    }

    #[test]
    fn encode_then_decode_round_trips(
        rows in prop::collection::vec(prop::collection::vec(field_text(), 1..5), 0..6),
        delimiter in delimiter(),
        quote in quote_style(),
        line_end in line_end(),
    ) {
        let enc = CsvEncoder::new(delimiter, quote, line_end);
        let mut out = Vec::new();
        for row in &rows {
            for (i, value) in row.iter().enumerate() {
                enc.field(&mut out, value.as_bytes(), i == 0);
            }
            enc.end_record(&mut out);
        }
        let got: Vec<Vec<String>> = decode_chunks(delimiter, U, [&out[..]])
            .into_iter()
            .map(|ev| match ev {
                Ev::Rec(_, fields) => fields,
                Ev::Bad(line) => panic!("invalid UTF-8 at line {line}"),
            })
            .collect();
        prop_assert_eq!(got, rows);
    }
}

/// Records of `input` decoded by a fresh decoder, without ending the input
/// (what a parallel job has seen of a chunk before its next chunk).
fn decode_open(input: &[u8]) -> Vec<Ev> {
    let mut events = Vec::new();
    let mut on = collect(&mut events);
    let mut dec = CsvDecoder::new(b',', Charset::Utf8);
    dec.push(input, &mut on).unwrap();
    drop(on);
    events
}

fn shifted(events: Vec<Ev>, lines: u64) -> Vec<Ev> {
    events
        .into_iter()
        .map(|e| match e {
            Ev::Rec(l, f) => Ev::Rec(l + lines, f),
            Ev::Bad(l) => Ev::Bad(l + lines),
        })
        .collect()
}

proptest! {
    /// The splitter cuts exactly where the decoder ends records: chunks
    /// decoded apart, by decoders that never see the input end, give the
    /// records of the whole input, and the counts map their lines back.
    #[test]
    fn splitter_cuts_where_the_decoder_ends_records(
        input in proptest::collection::vec(proptest::sample::select(b"ab,\"'\r\n".to_vec()), 0..160),
        block in 1usize..48,
    ) {
        use keylink_core::csv::split::Splitter;
        let whole = decode_chunks(b',', Charset::Utf8, [&input[..]]);
        let s = Splitter::new(b',');
        let mut rest: &[u8] = &input;
        let mut got = Vec::new();
        let mut lines_before = 0;
        loop {
            let mut w = block.min(rest.len());
            let (n, c) = loop {
                let (n, c) = s.cut(&rest[..w]);
                if n > 0 || w == rest.len() {
                    break (n, c);
                }
                w = (w + block).min(rest.len());
            };
            if n == 0 {
                let c = s.finish(rest);
                let tail = decode_chunks(b',', Charset::Utf8, [rest]);
                prop_assert_eq!(tail.len() as u64, c.records, "tail {:?}", rest);
                got.extend(shifted(tail, lines_before));
                break;
            }
            let chunk = &rest[..n];
            let open = decode_open(chunk);
            prop_assert_eq!(&open, &decode_chunks(b',', Charset::Utf8, [chunk]), "records left pending at a cut: {:?}", chunk);
            prop_assert_eq!(open.len() as u64, c.records);
            prop_assert_eq!(c.lines, chunk.iter().filter(|&&b| b == b'\n').count() as u64);
            got.extend(shifted(open, lines_before));
            lines_before += c.lines;
            rest = &rest[n..];
        }
        prop_assert_eq!(got, whole);
    }
}
