//! A compiled timestamp pattern: a list of tokens, matched left to right.
//!
//! Java `DateTimeFormatter` patterns (`java.rs`) and strftime patterns
//! (`strftime.rs`) compile to the same tokens, so one matcher serves both.
//! Compiling happens once per job; matching happens once per row and neither
//! allocates nor backtracks except into optional sections (`[...]`).

use alloc::string::String;
use alloc::vec::Vec;

use super::fields::{set, Fields};
use super::scan::{self, OffsetSyntax};

/// A timestamp pattern compiled from a job file's `format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledPattern {
    pub(crate) tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// Text that must appear as is (case-sensitive).
    Literal(String),
    /// strftime whitespace: any run of whitespace, possibly empty.
    Whitespace,
    Year { min: u8, max: u8 },
    /// Two digits; `00..=99` maps to `pivot..pivot+100`
    /// (java `yy`: 2000, strftime `%y`: 1969).
    YearTwoDigit { pivot: i32 },
    Month { min: u8, max: u8 },
    MonthName { full: bool },
    /// strftime `%b`/`%B`: glibc's strptime takes either form for both.
    MonthNameAny,
    WeekdayName,
    Day { min: u8, max: u8 },
    /// strftime `%e`: a day that may be padded with a space.
    DaySpacePadded,
    DayOfYear { min: u8, max: u8 },
    Hour { min: u8, max: u8 },
    ClockHour { min: u8, max: u8 },
    AmPm,
    Minute { min: u8, max: u8 },
    Second { min: u8, max: u8 },
    /// Fraction of a second (java `S`, strftime `%f`).
    Fraction { min: u8, max: u8 },
    /// strftime `%.f`: an optional `.` followed by fraction digits.
    DotFraction,
    /// Nano-of-second as an integer (java `n`): `962083` is 962,083 ns.
    Nano { min: u8, max: u8 },
    Offset(OffsetSyntax),
    /// java `ZZZZ`: `GMT`, `GMT+1`, `GMT+01:00`.
    LocalizedOffset,
    /// java `VV`: an IANA zone id.
    ZoneId,
    /// strftime `%Z`: `UTC`, `GMT`, `Z` or an IANA id.
    ZoneName,
    /// strftime `%s`: signed seconds since the epoch.
    EpochSeconds,
    /// java `[...]`: matched if possible, otherwise skipped.
    Optional(Vec<Token>),
}

impl Token {
    /// Whether the token reads leading digits; a variable-width field before
    /// one of these must not swallow its digits (`yyyyMMdd`).
    pub(crate) fn starts_with_digit(&self) -> bool {
        matches!(
            self,
            Token::Year { .. }
                | Token::YearTwoDigit { .. }
                | Token::Month { .. }
                | Token::Day { .. }
                | Token::DayOfYear { .. }
                | Token::Hour { .. }
                | Token::ClockHour { .. }
                | Token::Minute { .. }
                | Token::Second { .. }
                | Token::Fraction { .. }
                | Token::Nano { .. }
        )
    }
}

impl CompiledPattern {
    /// Matches the whole of `value`; the fields it names, or None.
    pub(crate) fn fields(&self, value: &[u8]) -> Option<Fields> {
        let mut fields = Fields::default();
        let end = match_tokens(&self.tokens, value, 0, &mut fields)?;
        (end == value.len()).then_some(fields)
    }
}

fn match_tokens(tokens: &[Token], s: &[u8], mut pos: usize, f: &mut Fields) -> Option<usize> {
    for token in tokens {
        pos = match_token(token, s, pos, f)?;
    }
    Some(pos)
}

/// A numeric field: `min..=max` digits, narrowed to `u32`.
fn number(s: &[u8], pos: usize, min: u8, max: u8) -> Option<(u32, usize)> {
    let (value, end) = scan::digits(s, pos, usize::from(min), usize::from(max))?;
    Some((u32::try_from(value).ok()?, end))
}

fn match_token(token: &Token, s: &[u8], pos: usize, f: &mut Fields) -> Option<usize> {
    match token {
        Token::Literal(text) => scan::literal(s, pos, text.as_bytes()),
        Token::Whitespace => Some(scan::skip_whitespace(s, pos)),
        Token::Year { min, max } => {
            let (year, end) = number(s, pos, *min, *max)?;
            set(&mut f.year, i32::try_from(year).ok()?)?;
            Some(end)
        }
        Token::YearTwoDigit { pivot } => {
            let (yy, end) = number(s, pos, 2, 2)?;
            // Years within 100 of the pivot, starting at the pivot.
            let base = pivot - pivot.rem_euclid(100);
            let mut year = base + yy as i32;
            if year < *pivot {
                year += 100;
            }
            set(&mut f.year, year)?;
            Some(end)
        }
        Token::Month { min, max } => numeric(s, pos, *min, *max, &mut f.month),
        Token::MonthName { full } => {
            let (month, end) = scan::month_name(s, pos, *full)?;
            set(&mut f.month, month)?;
            Some(end)
        }
        Token::MonthNameAny => {
            let (month, end) = scan::month_name(s, pos, true)
                .or_else(|| scan::month_name(s, pos, false))?;
            set(&mut f.month, month)?;
            Some(end)
        }
        Token::WeekdayName => scan::weekday_name(s, pos),
        Token::Day { min, max } => numeric(s, pos, *min, *max, &mut f.day),
        Token::DaySpacePadded => {
            let start = if s.get(pos) == Some(&b' ') { pos + 1 } else { pos };
            numeric(s, start, 1, 2, &mut f.day)
        }
        Token::DayOfYear { min, max } => numeric(s, pos, *min, *max, &mut f.day_of_year),
        Token::Hour { min, max } => numeric(s, pos, *min, *max, &mut f.hour),
        Token::ClockHour { min, max } => numeric(s, pos, *min, *max, &mut f.clock_hour),
        Token::AmPm => {
            let (pm, end) = scan::am_pm(s, pos)?;
            set(&mut f.pm, pm)?;
            Some(end)
        }
        Token::Minute { min, max } => numeric(s, pos, *min, *max, &mut f.minute),
        Token::Second { min, max } => numeric(s, pos, *min, *max, &mut f.second),
        Token::Fraction { min, max } => {
            let (nanos, end) = scan::fraction(s, pos, usize::from(*min), usize::from(*max))?;
            set(&mut f.nanos, nanos)?;
            Some(end)
        }
        Token::DotFraction => match scan::literal(s, pos, b".") {
            Some(after_dot) => {
                let (nanos, end) = scan::fraction(s, after_dot, 1, usize::MAX)?;
                set(&mut f.nanos, nanos)?;
                Some(end)
            }
            None => Some(pos),
        },
        Token::Nano { min, max } => numeric(s, pos, *min, *max, &mut f.nanos),
        Token::Offset(syntax) => {
            let (offset, end) = scan::offset(s, pos, *syntax)?;
            set(&mut f.offset, offset)?;
            Some(end)
        }
        Token::LocalizedOffset => {
            let after_gmt = scan::literal(s, pos, b"GMT")?;
            let (offset, end) = localized_offset(s, after_gmt).unwrap_or((0, after_gmt));
            set(&mut f.offset, offset)?;
            Some(end)
        }
        Token::ZoneId => {
            let (zone, end) = scan::zone_id(s, pos)?;
            set(&mut f.zone, zone)?;
            Some(end)
        }
        Token::ZoneName => {
            for utc in [&b"UTC"[..], b"GMT", b"Z"] {
                if let Some(end) = scan::literal_ignore_case(s, pos, utc) {
                    // Not followed by more id characters (`UTCx`, `GMT+1`).
                    if !s.get(end).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'/') {
                        set(&mut f.offset, 0)?;
                        return Some(end);
                    }
                }
            }
            let (zone, end) = scan::zone_id(s, pos)?;
            set(&mut f.zone, zone)?;
            Some(end)
        }
        Token::EpochSeconds => {
            let (negative, start) = match s.get(pos) {
                Some(b'-') => (true, pos + 1),
                Some(b'+') => (false, pos + 1),
                _ => (false, pos),
            };
            let (magnitude, end) = scan::digits(s, start, 1, 18)?;
            set(&mut f.epoch_seconds, magnitude)?;
            f.epoch_negative = negative;
            Some(end)
        }
        Token::Optional(inner) => {
            let mut attempt = *f;
            match match_tokens(inner, s, pos, &mut attempt) {
                Some(end) => {
                    *f = attempt;
                    Some(end)
                }
                None => Some(pos),
            }
        }
    }
}

fn numeric(s: &[u8], pos: usize, min: u8, max: u8, slot: &mut Option<u32>) -> Option<usize> {
    let (value, end) = number(s, pos, min, max)?;
    set(slot, value)?;
    Some(end)
}

/// The part of java's localized offset after `GMT`: `+H`, `+HH`, `+H:MM`,
/// `+HH:MM` (and seconds). None when there is no sign: plain `GMT` is zero.
fn localized_offset(s: &[u8], pos: usize) -> Option<(i32, usize)> {
    let sign = match s.get(pos)? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (hours, mut end) = scan::digits(s, pos + 1, 1, 2)?;
    let mut total = hours * 3600;
    let mut field = 60;
    while field >= 1 && s.get(end) == Some(&b':') {
        let (value, after) = scan::digits(s, end + 1, 2, 2)?;
        if value > 59 {
            return None;
        }
        total += value * field;
        end = after;
        field /= 60;
        if field == 0 {
            break;
        }
    }
    if total > 18 * 3600 {
        return None;
    }
    Some((sign * total as i32, end))
}
