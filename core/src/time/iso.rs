//! The `iso8601` format: RFC 3339 and the extended ISO 8601 forms people
//! actually write.
//!
//! Accepted, in order:
//! - a date `YYYY-MM-DD` (four-digit year);
//! - optionally `T`, `t` or one space, then `HH:MM`, optionally `:SS`,
//!   optionally `.` or `,` and 1 to 9 fraction digits;
//! - optionally an offset: `Z`, `z`, `+HH`, `+HHMM`, `+HH:MM` (or `-`);
//! - optionally a bracketed zone id as java.time writes it:
//!   `2026-03-01T10:00+01:00[Europe/Paris]`. The offset, when present, wins.
//!
//! A date alone is midnight in the zone; a value without offset or zone is
//! read in the job's default zone. Not accepted: basic forms (`20260301`),
//! week dates, ordinal dates, hour 24, leap second 60.

use super::fields::Fields;
use super::scan::{self, Colon, OffsetSyntax};

const ISO_OFFSET: OffsetSyntax = OffsetSyntax {
    colon: Colon::Either,
    minutes_optional: true,
    seconds_allowed: false,
    zulu: true,
};

pub(crate) fn fields(s: &[u8]) -> Option<Fields> {
    let mut f = Fields::default();
    let (year, pos) = scan::digits(s, 0, 4, 4)?;
    let pos = scan::literal(s, pos, b"-")?;
    let (month, pos) = scan::digits(s, pos, 2, 2)?;
    let pos = scan::literal(s, pos, b"-")?;
    let (day, mut pos) = scan::digits(s, pos, 2, 2)?;
    // Four and two digits always fit.
    f.year = Some(year as i32);
    f.month = Some(month as u32);
    f.day = Some(day as u32);
    if pos == s.len() {
        return Some(f);
    }
    if !matches!(s[pos], b'T' | b't' | b' ') {
        return None;
    }
    let (hour, p) = scan::digits(s, pos + 1, 2, 2)?;
    let p = scan::literal(s, p, b":")?;
    let (minute, p) = scan::digits(s, p, 2, 2)?;
    pos = p;
    f.hour = Some(hour as u32);
    f.minute = Some(minute as u32);
    if let Some(p) = scan::literal(s, pos, b":") {
        let (second, p) = scan::digits(s, p, 2, 2)?;
        f.second = Some(second as u32);
        pos = p;
        if matches!(s.get(pos), Some(b'.' | b',')) {
            let (nanos, p) = scan::fraction(s, pos + 1, 1, 9)?;
            f.nanos = Some(nanos);
            pos = p;
        }
    }
    if let Some((offset, p)) = scan::offset(s, pos, ISO_OFFSET) {
        f.offset = Some(offset);
        pos = p;
    }
    if let Some(p) = scan::literal(s, pos, b"[") {
        let (zone, p) = scan::zone_id(s, p)?;
        pos = scan::literal(s, p, b"]")?;
        f.zone = Some(zone);
    }
    (pos == s.len()).then_some(f)
}
