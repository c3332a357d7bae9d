//! Small readers over the bytes of a cell, shared by the ISO 8601 parser and
//! the compiled patterns.
//!
//! They work on `&[u8]` with a byte position rather than on `&str`: a cell may
//! hold any UTF-8, and byte slices can be cut anywhere without the
//! char-boundary panics of `str` slicing. Every reader consumes only ASCII or
//! whole literals, so a position they return always sits on a char boundary.
//! None of them allocates: they run once or more per CSV row.

/// Reads `min..=max` ASCII digits starting at `pos`, greedily.
/// Returns the value and the position after the last digit.
/// At most 18 digits are allowed so the value always fits in a `u64`.
pub(crate) fn digits(s: &[u8], pos: usize, min: usize, max: usize) -> Option<(u64, usize)> {
    let max = max.min(18);
    let mut value: u64 = 0;
    let mut end = pos;
    while end < s.len() && end - pos < max && s[end].is_ascii_digit() {
        value = value * 10 + u64::from(s[end] - b'0');
        end += 1;
    }
    if end - pos < min {
        return None;
    }
    Some((value, end))
}

/// Reads `min..=max` digits as a decimal fraction and returns nanoseconds.
/// Digits after the ninth are read but dropped: sub-nanosecond precision
/// cannot change a millisecond result, and truncation is what we promise.
pub(crate) fn fraction(s: &[u8], pos: usize, min: usize, max: usize) -> Option<(u32, usize)> {
    let mut nanos: u32 = 0;
    let mut end = pos;
    while end < s.len() && end - pos < max && s[end].is_ascii_digit() {
        if end - pos < 9 {
            nanos = nanos * 10 + u32::from(s[end] - b'0');
        }
        end += 1;
    }
    let count = end - pos;
    if count < min {
        return None;
    }
    let mut scale = count;
    while scale < 9 {
        nanos *= 10;
        scale += 1;
    }
    Some((nanos, end))
}

/// Whether the bytes at `pos` start with `lit`; returns the position after it.
pub(crate) fn literal(s: &[u8], pos: usize, lit: &[u8]) -> Option<usize> {
    let end = pos.checked_add(lit.len())?;
    if s.get(pos..end)? == lit {
        Some(end)
    } else {
        None
    }
}

/// Like [`literal`] but ignoring ASCII case (month names, AM/PM, `UTC`).
pub(crate) fn literal_ignore_case(s: &[u8], pos: usize, lit: &[u8]) -> Option<usize> {
    let end = pos.checked_add(lit.len())?;
    if s.get(pos..end)?.eq_ignore_ascii_case(lit) {
        Some(end)
    } else {
        None
    }
}

/// Skips ASCII and Unicode-free whitespace (space, tab, CR, LF).
pub(crate) fn skip_whitespace(s: &[u8], mut pos: usize) -> usize {
    while pos < s.len() && matches!(s[pos], b' ' | b'\t' | b'\r' | b'\n') {
        pos += 1;
    }
    pos
}

/// How a UTC offset is written. One description covers java.time's `X`, `x`
/// and `Z` letters, strftime's `%z` and ISO 8601, which differ only in these
/// four choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetSyntax {
    pub colon: Colon,
    /// `+01` alone is accepted (java `X`/`x` with one letter, ISO 8601).
    pub minutes_optional: bool,
    /// `+01:00:30` is accepted (java four and five letters).
    pub seconds_allowed: bool,
    /// `Z` (either case) means +00:00.
    pub zulu: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Colon {
    Required,
    Forbidden,
    Either,
}

/// The largest offset java.time accepts; beyond it the value is garbage.
const MAX_OFFSET_SECONDS: i32 = 18 * 3600;

/// Reads a UTC offset; returns seconds east of UTC.
pub(crate) fn offset(s: &[u8], pos: usize, syntax: OffsetSyntax) -> Option<(i32, usize)> {
    match s.get(pos)? {
        b'Z' | b'z' if syntax.zulu => return Some((0, pos + 1)),
        _ => {}
    }
    let sign: i32 = match s.get(pos)? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (hours, mut end) = digits(s, pos + 1, 2, 2)?;
    let mut minutes = 0;
    let mut seconds = 0;
    // Whether the minutes were written with a colon decides the seconds' form.
    let mut used_colon = false;
    let colon_at = |p: usize| s.get(p) == Some(&b':');
    let minutes_start = match syntax.colon {
        Colon::Required if colon_at(end) => Some(end + 1),
        Colon::Either if colon_at(end) => Some(end + 1),
        Colon::Forbidden | Colon::Either => Some(end),
        Colon::Required => None,
    };
    if let Some(start) = minutes_start {
        used_colon = start != end;
        if let Some((m, after)) = digits(s, start, 2, 2) {
            minutes = m;
            end = after;
        } else if !syntax.minutes_optional {
            return None;
        } else {
            used_colon = false;
        }
    } else if !syntax.minutes_optional {
        return None;
    }
    if syntax.seconds_allowed && end > pos + 3 {
        let start = if used_colon {
            if colon_at(end) { Some(end + 1) } else { None }
        } else {
            Some(end)
        };
        if let Some((sec, after)) = start.and_then(|st| digits(s, st, 2, 2)) {
            seconds = sec;
            end = after;
        }
    }
    if minutes > 59 || seconds > 59 {
        return None;
    }
    // All three are at most two digits, so the arithmetic cannot overflow.
    let total = (hours * 3600 + minutes * 60 + seconds) as i32;
    if total > MAX_OFFSET_SECONDS {
        return None;
    }
    Some((sign * total, end))
}

/// Reads an IANA zone id (`Europe/Paris`, `UTC`, `Etc/GMT+1`) and looks it up.
/// The id's extent is its run of id characters; a longer run that is not a
/// zone is not cut down to a shorter one, so `Europe/Parisx` fails.
pub(crate) fn zone_id(s: &[u8], pos: usize) -> Option<(chrono_tz::Tz, usize)> {
    let mut end = pos;
    while end < s.len()
        && (s[end].is_ascii_alphanumeric() || matches!(s[end], b'/' | b'_' | b'-' | b'+'))
    {
        end += 1;
    }
    // Ids start with a letter; this keeps `+01:00` from being read as an id.
    if end == pos || !s[pos].is_ascii_alphabetic() {
        return None;
    }
    // The run is ASCII, so this cannot fail; `ok()?` keeps it panic-free anyway.
    let id = core::str::from_utf8(&s[pos..end]).ok()?;
    let zone = id.parse::<chrono_tz::Tz>().ok()?;
    Some((zone, end))
}

const MONTHS: [&[u8]; 12] = [
    b"January",
    b"February",
    b"March",
    b"April",
    b"May",
    b"June",
    b"July",
    b"August",
    b"September",
    b"October",
    b"November",
    b"December",
];

/// Reads an English month name, full (`full`) or its three-letter form.
/// Case is ignored: exports write `JAN` as often as `Jan`.
pub(crate) fn month_name(s: &[u8], pos: usize, full: bool) -> Option<(u32, usize)> {
    for (index, name) in MONTHS.iter().enumerate() {
        let text = if full { name } else { &name[..3] };
        if let Some(end) = literal_ignore_case(s, pos, text) {
            return Some((index as u32 + 1, end));
        }
    }
    None
}

const WEEKDAYS: [&[u8]; 7] = [
    b"Monday",
    b"Tuesday",
    b"Wednesday",
    b"Thursday",
    b"Friday",
    b"Saturday",
    b"Sunday",
];

/// Reads an English weekday name, full or three-letter (strptime's `%a`/`%A`
/// accept either). The day is not checked against the date: it carries no
/// information the date does not.
pub(crate) fn weekday_name(s: &[u8], pos: usize) -> Option<usize> {
    for name in WEEKDAYS {
        if let Some(end) = literal_ignore_case(s, pos, name) {
            return Some(end);
        }
    }
    for name in WEEKDAYS {
        if let Some(end) = literal_ignore_case(s, pos, &name[..3]) {
            return Some(end);
        }
    }
    None
}

/// Reads `AM` or `PM` (any case); returns whether it is PM.
pub(crate) fn am_pm(s: &[u8], pos: usize) -> Option<(bool, usize)> {
    if let Some(end) = literal_ignore_case(s, pos, b"AM") {
        return Some((false, end));
    }
    literal_ignore_case(s, pos, b"PM").map(|end| (true, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISO: OffsetSyntax = OffsetSyntax {
        colon: Colon::Either,
        minutes_optional: true,
        seconds_allowed: false,
        zulu: true,
    };

    #[test]
    fn offsets() {
        assert_eq!(offset(b"+05:45", 0, ISO), Some((20700, 6)));
        assert_eq!(offset(b"-0330", 0, ISO), Some((-12600, 5)));
        assert_eq!(offset(b"+01", 0, ISO), Some((3600, 3)));
        assert_eq!(offset(b"Z", 0, ISO), Some((0, 1)));
        assert_eq!(offset(b"+19:00", 0, ISO), None);
        assert_eq!(offset(b"+01:60", 0, ISO), None);
        assert_eq!(offset(b"+", 0, ISO), None);
    }

    #[test]
    fn fractions_scale_to_nanos() {
        assert_eq!(fraction(b"5", 0, 1, 9), Some((500_000_000, 1)));
        assert_eq!(fraction(b"123456789123", 0, 1, 12), Some((123_456_789, 12)));
        assert_eq!(fraction(b"x", 0, 1, 9), None);
    }
}
