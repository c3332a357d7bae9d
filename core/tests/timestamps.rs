//! Timestamps (SPEC section 3 and the vectors of section 9).
//!
//! Most tables state the expected instant as an RFC 3339 UTC string read by
//! chrono's own parser, an oracle independent of ours, so a reader can check
//! a case by eye. The SPEC vectors keep their published numbers.

use std::cell::Cell;

use chrono_tz::Tz;
use keylink_core::time::{parse_zone, TimestampFormat};
use proptest::prelude::*;

/// One row of a table: a named value read with a format in a default zone.
struct Case {
    name: &'static str,
    format: &'static str,
    value: &'static str,
    zone: &'static str,
    /// An RFC 3339 instant, or None when the value must not parse.
    expected: Option<&'static str>,
}

const fn ok(
    name: &'static str,
    format: &'static str,
    value: &'static str,
    zone: &'static str,
    expected: &'static str,
) -> Case {
    Case { name, format, value, zone, expected: Some(expected) }
}

const fn bad(name: &'static str, format: &'static str, value: &'static str) -> Case {
    Case { name, format, value, zone: "UTC", expected: None }
}

fn millis_of(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("bad oracle instant {rfc3339}: {e}"))
        .timestamp_millis()
}

fn zone(id: &str) -> Tz {
    parse_zone(id).unwrap_or_else(|| panic!("unknown zone {id}"))
}

/// Runs every case and reports all failures at once, by name.
fn run(cases: &[Case]) {
    let mut failures = Vec::new();
    for case in cases {
        let format = match TimestampFormat::parse(case.format) {
            Ok(format) => format,
            Err(e) => {
                failures.push(format!("{}: format {:?} rejected: {e}", case.name, case.format));
                continue;
            }
        };
        let got = format.epoch_millis(case.value, zone(case.zone));
        let want = case.expected.map(millis_of);
        if got != want {
            failures.push(format!(
                "{}: {:?} with {:?} in {}: got {got:?}, want {want:?} ({:?})",
                case.name, case.value, case.format, case.zone, case.expected
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

// ---------------------------------------------------------------- SPEC 9

#[test]
fn spec_vector_local_pattern_in_amsterdam() {
    let format = TimestampFormat::parse("yyyy-MM-dd HH:mm:ss").unwrap();
    let got = format.epoch_millis("2010-12-01 08:26:00", zone("Europe/Amsterdam"));
    assert_eq!(got, Some(1_291_188_360_000));
}

#[test]
fn spec_vector_nano_of_second_with_offset() {
    // `n` is nano-of-second: 962083 ns is 0.96 ms, truncated away.
    let format = TimestampFormat::parse("yyyy-MM-dd HH.mm.ss.nnnnnn:Z").unwrap();
    let got = format.epoch_millis("2022-02-06 06.43.12.962083:+0100", zone("Europe/Amsterdam"));
    assert_eq!(got, Some(1_644_126_192_000));
    // The offset in the value wins over any default zone.
    assert_eq!(
        format.epoch_millis("2022-02-06 06.43.12.962083:+0100", zone("America/New_York")),
        Some(1_644_126_192_000)
    );
}

// ---------------------------------------------------------------- iso8601

#[test]
fn iso8601_values() {
    const F: &str = "iso8601";
    run(&[
        ok("zulu", F, "2026-03-01T12:00:00Z", "Europe/Amsterdam", "2026-03-01T12:00:00Z"),
        ok("lowercase t and z", F, "2026-03-01t12:00:00z", "UTC", "2026-03-01T12:00:00Z"),
        ok("offset +05:45", F, "2026-03-01T12:00:00+05:45", "UTC", "2026-03-01T06:15:00Z"),
        ok("offset -03:30", F, "2026-03-01T12:00:00-03:30", "UTC", "2026-03-01T15:30:00Z"),
        ok("offset +0200 without colon", F, "2026-03-01T12:00:00+0200", "UTC", "2026-03-01T10:00:00Z"),
        ok("offset +02 hours only", F, "2026-03-01T12:00:00+02", "UTC", "2026-03-01T10:00:00Z"),
        ok("space separator", F, "2026-03-01 12:00:00+01:00", "UTC", "2026-03-01T11:00:00Z"),
        ok("no seconds", F, "2026-03-01T12:00Z", "UTC", "2026-03-01T12:00:00Z"),
        ok("no offset uses zone", F, "2026-03-01T12:00:00", "Europe/Amsterdam", "2026-03-01T11:00:00Z"),
        ok("date only is local midnight", F, "2026-03-01", "Europe/Amsterdam", "2026-02-28T23:00:00Z"),
        ok("fraction 1 digit", F, "2026-03-01T12:00:00.5Z", "UTC", "2026-03-01T12:00:00.5Z"),
        ok("fraction 9 digits truncated", F, "2026-03-01T12:00:00.123999999Z", "UTC", "2026-03-01T12:00:00.123Z"),
        ok("fraction with comma", F, "2026-03-01T12:00:00,25Z", "UTC", "2026-03-01T12:00:00.25Z"),
        ok("window end", F, "2026-03-01T23:59:59.999Z", "UTC", "2026-03-01T23:59:59.999Z"),
        ok("window start", F, "2026-03-02T00:00:00.000Z", "UTC", "2026-03-02T00:00:00Z"),
        ok("bracketed zone", F, "2026-07-01T12:00:00[Europe/Paris]", "UTC", "2026-07-01T10:00:00Z"),
        ok("offset beats bracketed zone", F, "2026-07-01T12:00:00+00:00[Europe/Paris]", "UTC", "2026-07-01T12:00:00Z"),
        ok("surrounding whitespace trimmed", F, "  2026-03-01T12:00:00Z\t", "UTC", "2026-03-01T12:00:00Z"),
        ok("leap day", F, "2024-02-29T00:00:00Z", "UTC", "2024-02-29T00:00:00Z"),
        ok("before 1970 floors", F, "1969-12-31T23:59:59.9995Z", "UTC", "1969-12-31T23:59:59.999Z"),
        bad("empty", F, ""),
        bad("letters", F, "yesterday"),
        bad("month 13", F, "2026-13-01T00:00:00Z"),
        bad("february 30", F, "2026-02-30T00:00:00Z"),
        bad("february 29 in a common year", F, "2026-02-29"),
        bad("hour 25", F, "2026-03-01T25:00:00Z"),
        bad("hour 24", F, "2026-03-01T24:00:00Z"),
        bad("minute 60", F, "2026-03-01T12:60:00Z"),
        bad("second 60", F, "2026-03-01T12:00:60Z"),
        bad("trailing junk", F, "2026-03-01T12:00:00Zjunk"),
        bad("ten fraction digits", F, "2026-03-01T12:00:00.1234567890Z"),
        bad("empty fraction", F, "2026-03-01T12:00:00.Z"),
        bad("offset beyond 18 hours", F, "2026-03-01T12:00:00+19:00"),
        bad("two-digit year", F, "26-03-01"),
        bad("unknown bracketed zone", F, "2026-03-01T12:00:00[Mars/Olympus]"),
        bad("non-ascii digits", F, "２０２６-03-01"),
        bad("emoji after date", F, "2026-03-01🙂"),
    ]);
}

// ---------------------------------------------------------------- DST

#[test]
fn daylight_saving_gaps_shift_forward_and_folds_take_the_earlier_offset() {
    const F: &str = "yyyy-MM-dd HH:mm";
    const AMS: &str = "Europe/Amsterdam";
    const NY: &str = "America/New_York";
    run(&[
        // Amsterdam: 2026-03-29 02:00 CET -> 03:00 CEST.
        ok("amsterdam gap 02:30 is 03:30 CEST", F, "2026-03-29 02:30", AMS, "2026-03-29T01:30:00Z"),
        ok("amsterdam gap start 02:00", F, "2026-03-29 02:00", AMS, "2026-03-29T01:00:00Z"),
        ok("amsterdam just after gap", F, "2026-03-29 03:00", AMS, "2026-03-29T01:00:00Z"),
        ok("amsterdam just before gap", F, "2026-03-29 01:59", AMS, "2026-03-29T00:59:00Z"),
        // Amsterdam: 2026-10-25 03:00 CEST -> 02:00 CET.
        ok("amsterdam fold 02:30 takes CEST", F, "2026-10-25 02:30", AMS, "2026-10-25T00:30:00Z"),
        ok("amsterdam fold start 02:00", F, "2026-10-25 02:00", AMS, "2026-10-25T00:00:00Z"),
        ok("amsterdam after fold", F, "2026-10-25 03:00", AMS, "2026-10-25T02:00:00Z"),
        // New York: 2026-03-08 02:00 EST -> 03:00 EDT.
        ok("new york gap 02:30 is 03:30 EDT", F, "2026-03-08 02:30", NY, "2026-03-08T07:30:00Z"),
        ok("new york before gap", F, "2026-03-08 01:59", NY, "2026-03-08T06:59:00Z"),
        // New York: 2026-11-01 02:00 EDT -> 01:00 EST.
        ok("new york fold 01:30 takes EDT", F, "2026-11-01 01:30", NY, "2026-11-01T05:30:00Z"),
        ok("new york after fold", F, "2026-11-01 02:00", NY, "2026-11-01T07:00:00Z"),
        ok("new york summer", F, "2026-07-04 15:07", NY, "2026-07-04T19:07:00Z"),
        // Samoa skipped 2011-12-30 entirely (-10 -> +14): a 24 h gap.
        ok("apia skipped day", F, "2011-12-30 12:00", "Pacific/Apia", "2011-12-30T22:00:00Z"),
        ok("utc has no gaps", F, "2026-03-29 02:30", "UTC", "2026-03-29T02:30:00Z"),
    ]);
}

#[test]
fn daylight_saving_rules_apply_to_iso8601_without_offset() {
    run(&[
        ok("iso gap", "iso8601", "2026-03-29T02:30:00", "Europe/Amsterdam", "2026-03-29T01:30:00Z"),
        ok("iso fold", "iso8601", "2026-10-25T02:30:00", "Europe/Amsterdam", "2026-10-25T00:30:00Z"),
        ok("iso offset ignores zone", "iso8601", "2026-10-25T02:30:00+01:00", "Europe/Amsterdam", "2026-10-25T01:30:00Z"),
    ]);
}

// ---------------------------------------------------------------- Java

#[test]
fn java_patterns() {
    run(&[
        ok("M/d/yyyy H:m single digits", "M/d/yyyy H:m", "3/1/2026 9:5", "UTC", "2026-03-01T09:05:00Z"),
        ok("M/d/yyyy H:m two digits", "M/d/yyyy H:m", "12/31/2026 23:59", "UTC", "2026-12-31T23:59:00Z"),
        ok("SSSXXX with Z", "yyyy-MM-dd'T'HH:mm:ss.SSSXXX", "2026-03-01T23:59:59.999Z", "Europe/Amsterdam", "2026-03-01T23:59:59.999Z"),
        ok("SSSXXX with offset", "yyyy-MM-dd'T'HH:mm:ss.SSSXXX", "2026-03-01T12:00:00.250+05:45", "UTC", "2026-03-01T06:15:00.250Z"),
        ok("SSSXXX negative offset", "yyyy-MM-dd'T'HH:mm:ss.SSSXXX", "2026-03-01T12:00:00.000-03:30", "UTC", "2026-03-01T15:30:00Z"),
        ok("h:mm a PM", "yyyy-MM-dd h:mm a", "2026-03-01 3:07 PM", "UTC", "2026-03-01T15:07:00Z"),
        ok("h:mm a noon", "yyyy-MM-dd h:mm a", "2026-03-01 12:00 PM", "UTC", "2026-03-01T12:00:00Z"),
        ok("h:mm a midnight", "yyyy-MM-dd h:mm a", "2026-03-01 12:30 AM", "UTC", "2026-03-01T00:30:00Z"),
        ok("h:mm a lowercase", "yyyy-MM-dd h:mm a", "2026-03-01 11:59 pm", "UTC", "2026-03-01T23:59:00Z"),
        ok("hh two digits", "MM/dd/yyyy hh:mm:ss a", "03/01/2026 09:05:01 AM", "UTC", "2026-03-01T09:05:01Z"),
        ok("MMM short month", "dd-MMM-yyyy HH:mm", "01-Mar-2026 12:00", "UTC", "2026-03-01T12:00:00Z"),
        ok("MMM any case", "dd-MMM-yyyy HH:mm", "01-MAR-2026 12:00", "UTC", "2026-03-01T12:00:00Z"),
        ok("MMMM full month", "d MMMM yyyy", "5 September 2026", "UTC", "2026-09-05T00:00:00Z"),
        ok("VV zone id", "yyyy-MM-dd HH:mm VV", "2026-07-01 12:00 Europe/Paris", "UTC", "2026-07-01T10:00:00Z"),
        ok("VV overrides default zone", "yyyy-MM-dd HH:mm VV", "2026-01-01 12:00 UTC", "America/New_York", "2026-01-01T12:00:00Z"),
        ok("VV with DST gap", "yyyy-MM-dd HH:mm VV", "2026-03-08 02:30 America/New_York", "UTC", "2026-03-08T07:30:00Z"),
        ok("Z +HHMM", "yyyy-MM-dd HH:mm:ss Z", "2026-03-01 12:00:00 -0800", "UTC", "2026-03-01T20:00:00Z"),
        ok("ZZZZZ with colon", "yyyy-MM-dd HH:mm:ss ZZZZZ", "2026-03-01 12:00:00 +01:00", "UTC", "2026-03-01T11:00:00Z"),
        ok("ZZZZZ Z", "yyyy-MM-dd HH:mm:ss ZZZZZ", "2026-03-01 12:00:00 Z", "UTC", "2026-03-01T12:00:00Z"),
        ok("ZZZZ localized", "yyyy-MM-dd HH:mm ZZZZ", "2026-03-01 12:00 GMT+05:30", "UTC", "2026-03-01T06:30:00Z"),
        ok("ZZZZ plain GMT", "yyyy-MM-dd HH:mm ZZZZ", "2026-03-01 12:00 GMT", "Europe/Amsterdam", "2026-03-01T12:00:00Z"),
        ok("X hours only", "yyyy-MM-dd HH:mmX", "2026-03-01 12:00+01", "UTC", "2026-03-01T11:00:00Z"),
        ok("X hours and minutes", "yyyy-MM-dd HH:mmX", "2026-03-01 12:00+0545", "UTC", "2026-03-01T06:15:00Z"),
        ok("XX", "yyyy-MM-dd HH:mmXX", "2026-03-01 12:00-0330", "UTC", "2026-03-01T15:30:00Z"),
        ok("xxx zero", "yyyy-MM-dd HH:mmxxx", "2026-03-01 12:00+00:00", "Europe/Amsterdam", "2026-03-01T12:00:00Z"),
        ok("quoted literal with quote", "yyyy-MM-dd 'at' HH 'o''clock'", "2026-03-01 at 12 o'clock", "UTC", "2026-03-01T12:00:00Z"),
        ok("doubled quote outside", "yyyy-MM-dd''HH", "2026-03-01'12", "UTC", "2026-03-01T12:00:00Z"),
        ok("compact yyyyMMddHHmmss", "yyyyMMddHHmmss", "20260301120000", "UTC", "2026-03-01T12:00:00Z"),
        ok("yy is 2000s", "dd.MM.yy", "01.03.26", "UTC", "2026-03-01T00:00:00Z"),
        ok("S single digit", "yyyy-MM-dd HH:mm:ss.S", "2026-03-01 12:00:00.7", "UTC", "2026-03-01T12:00:00.7Z"),
        ok("SSSSSS truncates", "yyyy-MM-dd HH:mm:ss.SSSSSS", "2026-03-01 12:00:00.123999", "UTC", "2026-03-01T12:00:00.123Z"),
        ok("nnnnnnnnn whole nanos", "yyyy-MM-dd HH:mm:ss.nnnnnnnnn", "2026-03-01 12:00:00.123999999", "UTC", "2026-03-01T12:00:00.123Z"),
        ok("optional section present", "yyyy-MM-dd HH:mm[:ss]", "2026-03-01 12:00:30", "UTC", "2026-03-01T12:00:30Z"),
        ok("optional section absent", "yyyy-MM-dd HH:mm[:ss]", "2026-03-01 12:00", "UTC", "2026-03-01T12:00:00Z"),
        ok("date only pattern", "yyyy-MM-dd", "2026-03-01", "Europe/Amsterdam", "2026-02-28T23:00:00Z"),
        ok("non-ascii literal", "yyyy年MM月dd日", "2026年03月01日", "UTC", "2026-03-01T00:00:00Z"),
        ok("whitespace trimmed", "yyyy-MM-dd HH:mm", " 2026-03-01 12:00 ", "UTC", "2026-03-01T12:00:00Z"),
        ok("pattern whitespace trimmed too", " yyyy-MM-dd HH:mm ", "2026-03-01 12:00", "UTC", "2026-03-01T12:00:00Z"),
        bad("empty", "yyyy-MM-dd HH:mm:ss", ""),
        bad("letters", "yyyy-MM-dd HH:mm:ss", "not a date"),
        bad("month 13", "yyyy-MM-dd HH:mm:ss", "2026-13-01 00:00:00"),
        bad("february 30", "yyyy-MM-dd HH:mm:ss", "2026-02-30 00:00:00"),
        bad("hour 25", "yyyy-MM-dd HH:mm:ss", "2026-03-01 25:00:00"),
        bad("trailing junk", "yyyy-MM-dd HH:mm:ss", "2026-03-01 12:00:00x"),
        bad("missing seconds", "yyyy-MM-dd HH:mm:ss", "2026-03-01 12:00"),
        bad("MM needs two digits", "yyyy-MM-dd", "2026-3-01"),
        bad("single letter takes at most two digits", "M/d/yyyy", "123/1/2026"),
        bad("clock hour 13", "yyyy-MM-dd h:mm a", "2026-03-01 13:00 PM"),
        bad("clock hour 0", "yyyy-MM-dd h:mm a", "2026-03-01 0:00 AM"),
        bad("HH disagrees with a", "yyyy-MM-dd HH:mm a", "2026-03-01 15:00 AM"),
        bad("unknown month name", "dd-MMM-yyyy", "01-Foo-2026"),
        bad("unknown zone id", "yyyy-MM-dd HH:mm VV", "2026-03-01 12:00 Europe/Atlantis"),
        bad("XXX needs colon", "yyyy-MM-dd HH:mmXXX", "2026-03-01 12:00+0100"),
        bad("xxx rejects Z", "yyyy-MM-dd HH:mmxxx", "2026-03-01 12:00Z"),
        bad("Z rejects colon", "yyyy-MM-dd HH:mm Z", "2026-03-01 12:00 +01:00"),
        bad("SSS needs three digits", "yyyy-MM-dd HH:mm:ss.SSS", "2026-03-01 12:00:00.12"),
        bad("nano too large", "yyyy-MM-dd HH:mm:ss.n", "2026-03-01 12:00:00.1000000000"),
        bad("literal case matters", "yyyy-MM-dd'T'HH:mm", "2026-03-01t12:00"),
    ]);
}

#[test]
fn java_patterns_rejected_when_compiled() {
    let cases: &[(&str, &str)] = &[
        ("yyyy-QQ", "'Q'"),
        ("yyyy-MM-dd'T", "never closed"),
        ("yyyy-MM-dd HH:mm:ss.SSS E", "'E'"),
        ("yyyy-MM-ddd", "too many"),
        ("yyyy-MM-dd HHH", "too many"),
        ("yyyy-MMMMM-dd", "narrow"),
        ("yyyy-MM-dd HH:mm V", "VV"),
        ("yyyy-MM-dd aa", "too many"),
        ("yyyy-MM-dd h:mm", "needs 'a'"),
        ("HH:mm", "no year"),
        ("yyyy-dd", "no month"),
        ("yyyy-MM", "no day"),
        ("yyyy-MM-dd [HH", "never closed"),
        ("yyyy-MM-dd HH]", "closes no optional"),
        ("yyyy-MM-dd #", "reserved"),
        ("", "empty"),
    ];
    for (pattern, hint) in cases {
        match TimestampFormat::parse(pattern) {
            Ok(format) => panic!("{pattern:?} compiled to {format:?}"),
            Err(message) => assert!(
                message.contains(hint),
                "{pattern:?}: message {message:?} does not mention {hint:?}"
            ),
        }
    }
}

// ---------------------------------------------------------------- strftime

#[test]
fn strftime_patterns() {
    run(&[
        ok("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "2026-03-01 12:34:56", "Europe/Amsterdam", "2026-03-01T11:34:56Z"),
        ok("%F %T", "%F %T", "2026-03-01 12:34:56", "UTC", "2026-03-01T12:34:56Z"),
        ok("%FT%T%z", "%FT%T%z", "2026-03-01T12:00:00+0545", "UTC", "2026-03-01T06:15:00Z"),
        ok("%z with colon", "%FT%T%z", "2026-03-01T12:00:00-03:30", "UTC", "2026-03-01T15:30:00Z"),
        ok("%z Z", "%FT%T%z", "2026-03-01T12:00:00Z", "Europe/Amsterdam", "2026-03-01T12:00:00Z"),
        ok("%:z", "%FT%T%:z", "2026-03-01T12:00:00+01:00", "UTC", "2026-03-01T11:00:00Z"),
        ok("%f fraction", "%Y-%m-%d %H:%M:%S.%f", "2026-03-01 12:00:00.123456", "UTC", "2026-03-01T12:00:00.123Z"),
        ok("%.f present", "%Y-%m-%d %H:%M:%S%.f", "2026-03-01 12:00:00.5", "UTC", "2026-03-01T12:00:00.5Z"),
        ok("%.f absent", "%Y-%m-%d %H:%M:%S%.f", "2026-03-01 12:00:00", "UTC", "2026-03-01T12:00:00Z"),
        ok("%Z UTC", "%Y-%m-%d %H:%M:%S %Z", "2026-03-01 12:00:00 UTC", "Europe/Amsterdam", "2026-03-01T12:00:00Z"),
        ok("%Z zone id", "%Y-%m-%d %H:%M:%S %Z", "2026-07-01 12:00:00 Europe/Paris", "UTC", "2026-07-01T10:00:00Z"),
        ok("%b abbreviated", "%d %b %Y %H:%M", "01 Mar 2026 12:00", "UTC", "2026-03-01T12:00:00Z"),
        ok("%b accepts full", "%d %b %Y", "01 March 2026", "UTC", "2026-03-01T00:00:00Z"),
        ok("%B full", "%B %d, %Y", "September 5, 2026", "UTC", "2026-09-05T00:00:00Z"),
        ok("%a weekday ignored", "%a, %d %b %Y %H:%M:%S %z", "Sun, 01 Mar 2026 12:00:00 +0000", "UTC", "2026-03-01T12:00:00Z"),
        ok("%y 2000s", "%m/%d/%y", "03/01/26", "UTC", "2026-03-01T00:00:00Z"),
        ok("%y 1900s", "%m/%d/%y", "03/01/99", "UTC", "1999-03-01T00:00:00Z"),
        ok("%D", "%D", "03/01/26", "UTC", "2026-03-01T00:00:00Z"),
        ok("%j day of year", "%Y-%j", "2024-060", "UTC", "2024-02-29T00:00:00Z"),
        ok("%e space padded", "%b %e %Y", "Mar  1 2026", "UTC", "2026-03-01T00:00:00Z"),
        ok("%I %p", "%Y-%m-%d %I:%M %p", "2026-03-01 03:07 PM", "UTC", "2026-03-01T15:07:00Z"),
        ok("%I %p midnight", "%Y-%m-%d %I:%M %p", "2026-03-01 12:00 am", "UTC", "2026-03-01T00:00:00Z"),
        ok("unpadded numbers", "%Y-%m-%d %H:%M:%S", "2026-3-1 9:5:7", "UTC", "2026-03-01T09:05:07Z"),
        ok("compact", "%Y%m%d%H%M%S", "20260301120000", "UTC", "2026-03-01T12:00:00Z"),
        ok("%s", "%s", "1772366400", "Europe/Amsterdam", "2026-03-01T12:00:00Z"),
        ok("%s negative with fraction", "%s.%f", "-1.5", "UTC", "1969-12-31T23:59:58.5Z"),
        ok("%% literal", "%Y-%m-%d 100%%", "2026-03-01 100%", "UTC", "2026-03-01T00:00:00Z"),
        ok("whitespace run", "%Y-%m-%d %H:%M", "2026-03-01   12:00", "UTC", "2026-03-01T12:00:00Z"),
        ok("strftime DST gap", "%Y-%m-%d %H:%M", "2026-03-29 02:30", "Europe/Amsterdam", "2026-03-29T01:30:00Z"),
        ok("strftime DST fold", "%Y-%m-%d %H:%M", "2026-11-01 01:30", "America/New_York", "2026-11-01T05:30:00Z"),
        bad("month 13", "%Y-%m-%d", "2026-13-01"),
        bad("february 30", "%Y-%m-%d", "2026-02-30"),
        bad("hour 25", "%Y-%m-%d %H:%M", "2026-03-01 25:00"),
        bad("trailing junk", "%Y-%m-%d", "2026-03-01!"),
        bad("%Z abbreviation", "%Y-%m-%d %Z", "2026-03-01 PST"),
        bad("%j 366 in common year", "%Y-%j", "2026-366"),
        bad("empty", "%Y-%m-%d", ""),
    ]);
}

#[test]
fn strftime_patterns_rejected_when_compiled() {
    let cases: &[(&str, &str)] = &[
        ("%Y-%m-%d %Q", "%Q"),
        ("%Y-%m-%d %", "lone '%'"),
        ("%H:%M", "no year"),
        ("%Y-%d", "no month"),
        ("%Y-%m", "no day"),
        ("%F %I:%M", "needs %p"),
        ("%Y-%m-%d %.2f", "%.2f"),
    ];
    for (pattern, hint) in cases {
        match TimestampFormat::parse(pattern) {
            Ok(format) => panic!("{pattern:?} compiled to {format:?}"),
            Err(message) => assert!(
                message.contains(hint),
                "{pattern:?}: message {message:?} does not mention {hint:?}"
            ),
        }
    }
}

// ---------------------------------------------------------------- epochs

#[test]
fn epoch_formats() {
    let cases: &[(&str, &str, Option<i64>)] = &[
        ("epoch_millis", "1700000000123", Some(1_700_000_000_123)),
        ("epoch_millis", "-86400000", Some(-86_400_000)),
        ("epoch_millis", "+5", Some(5)),
        ("epoch_millis", "0", Some(0)),
        ("epoch_millis", " 42 ", Some(42)),
        ("epoch_millis", "1700000000000.5", None),
        ("epoch_millis", "", None),
        ("epoch_millis", "-", None),
        ("epoch_millis", "12a", None),
        ("epoch_millis", "1e12", None),
        ("epoch_millis", "99999999999999999999", None),
        ("epoch_seconds", "1700000000", Some(1_700_000_000_000)),
        ("epoch_seconds", "1700000000.123", Some(1_700_000_000_123)),
        ("epoch_seconds", "1700000000.1239", Some(1_700_000_000_123)),
        ("epoch_seconds", "1700000000.1", Some(1_700_000_000_100)),
        ("epoch_seconds", "-1", Some(-1000)),
        ("epoch_seconds", "-1.5", Some(-1500)),
        // Floored: -1000.5 ms lies in millisecond -1001.
        ("epoch_seconds", "-1.0005", Some(-1001)),
        ("epoch_seconds", "1700000000.", None),
        ("epoch_seconds", ".5", None),
        ("epoch_seconds", "1,5", None),
        ("epoch_seconds", "abc", None),
        ("epoch_seconds", "999999999999999999", None),
    ];
    for (name, value, want) in cases {
        let format = TimestampFormat::parse(name).unwrap();
        assert_eq!(format.epoch_millis(value, Tz::UTC), *want, "{name} {value:?}");
    }
}

#[test]
fn format_names_compile_to_their_variants() {
    assert_eq!(TimestampFormat::parse("iso8601"), Ok(TimestampFormat::Iso8601));
    assert_eq!(TimestampFormat::parse("ISO8601"), Ok(TimestampFormat::Iso8601));
    assert_eq!(TimestampFormat::parse("epoch_millis"), Ok(TimestampFormat::EpochMillis));
    assert_eq!(TimestampFormat::parse("epoch_seconds"), Ok(TimestampFormat::EpochSeconds));
    assert!(matches!(TimestampFormat::parse("yyyy-MM-dd"), Ok(TimestampFormat::Java(_))));
    assert!(matches!(TimestampFormat::parse("%Y-%m-%d"), Ok(TimestampFormat::Strftime(_))));
}

#[test]
fn zones_parse_by_iana_name() {
    assert_eq!(parse_zone("Europe/Amsterdam"), Some(Tz::Europe__Amsterdam));
    assert_eq!(parse_zone("UTC"), Some(Tz::UTC));
    assert_eq!(parse_zone("Europe/Atlantis"), None);
    assert_eq!(parse_zone(""), None);
}

// ---------------------------------------------------------------- hot path

/// Counts allocations made by the current thread, so a test can prove the
/// per-row call allocates nothing (tests run on several threads at once).
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl std::alloc::GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn reading_a_value_does_not_allocate() {
    // The counter works: a box is one allocation.
    let before = ALLOCATIONS.with(Cell::get);
    let boxed = std::hint::black_box(Box::new(7u64));
    assert_eq!(ALLOCATIONS.with(Cell::get) - before, 1);
    drop(boxed);

    let cases = [
        ("iso8601", "2026-03-29T02:30:00.123", "Europe/Amsterdam"),
        ("epoch_millis", "1700000000123", "UTC"),
        ("epoch_seconds", "1700000000.123", "UTC"),
        ("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", "2026-03-01T12:00:00.250+05:45", "UTC"),
        ("yyyy-MM-dd HH:mm VV", "2026-07-01 12:00 Europe/Paris", "UTC"),
        ("%d %b %Y %H:%M:%S %Z", "01 Mar 2026 12:00:00 Europe/Paris", "UTC"),
    ];
    for (spec, value, zone_id) in cases {
        let format = TimestampFormat::parse(spec).unwrap();
        let tz = zone(zone_id);
        let before = ALLOCATIONS.with(Cell::get);
        let got = format.epoch_millis(value, tz);
        let after = ALLOCATIONS.with(Cell::get);
        assert!(got.is_some(), "{spec} {value}");
        assert_eq!(after - before, 0, "{spec} allocated while reading {value:?}");
    }
}

// ---------------------------------------------------------------- robustness

fn every_format() -> Vec<TimestampFormat> {
    [
        "iso8601",
        "epoch_millis",
        "epoch_seconds",
        "yyyy-MM-dd HH:mm:ss",
        "M/d/yyyy h:mm a",
        "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
        "yyyy-MM-dd HH.mm.ss.nnnnnn:Z",
        "dd MMM yyyy[ HH:mm[:ss]] VV",
        "yyyy-MM-dd ZZZZ",
        "%Y-%m-%d %H:%M:%S%.f %z",
        "%d %b %Y %I:%M %p %Z",
        "%s.%f",
        "%Y-%j %e",
    ]
    .iter()
    .map(|spec| TimestampFormat::parse(spec).unwrap())
    .collect()
}

proptest! {
    #[test]
    fn any_text_never_panics(value in any::<String>()) {
        for format in every_format() {
            let _ = format.epoch_millis(&value, Tz::Europe__Amsterdam);
        }
    }

    #[test]
    fn date_like_text_never_panics(value in "[0-9 :.+\\-TZ/ap\\[\\]é年]{0,40}") {
        for format in every_format() {
            let _ = format.epoch_millis(&value, Tz::America__New_York);
        }
    }

    #[test]
    fn any_pattern_compiles_or_errs_without_panic(spec in any::<String>()) {
        if let Ok(format) = TimestampFormat::parse(&spec) {
            let _ = format.epoch_millis("2026-03-01 12:00:00", Tz::UTC);
        }
    }

    #[test]
    fn iso8601_round_trips_any_instant(millis in -62_135_596_800_000i64..253_402_300_799_999) {
        let text = chrono::DateTime::from_timestamp_millis(millis)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S%.3f+00:00")
            .to_string();
        let format = TimestampFormat::Iso8601;
        prop_assert_eq!(format.epoch_millis(&text, Tz::Asia__Kathmandu), Some(millis));
    }
}
