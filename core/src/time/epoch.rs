//! `epoch_millis` and `epoch_seconds` values: signed decimal numbers.

use super::scan;

/// An integer number of milliseconds: `1700000000000`, `-86400000`, `+5`.
/// A fraction is refused: a millisecond column with decimals is more likely
/// a seconds column under the wrong format than a sub-millisecond instant.
pub(crate) fn parse_millis(value: &[u8]) -> Option<i64> {
    let (negative, start) = sign(value);
    let (magnitude, end) = scan::digits(value, start, 1, 18)?;
    if end != value.len() {
        return None;
    }
    let magnitude = i64::try_from(magnitude).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

/// Seconds with an optional fraction: `1700000000`, `1700000000.123`, `-1.5`.
pub(crate) fn parse_seconds(value: &[u8]) -> Option<i64> {
    let (negative, start) = sign(value);
    let (magnitude, mut end) = scan::digits(value, start, 1, 18)?;
    let mut nanos = 0;
    if value.get(end) == Some(&b'.') {
        // Any number of digits; those past the ninth cannot move a millisecond.
        let (n, after) = scan::fraction(value, end + 1, 1, usize::MAX)?;
        nanos = n;
        end = after;
    }
    if end != value.len() {
        return None;
    }
    seconds_to_millis(negative, magnitude, nanos)
}

fn sign(value: &[u8]) -> (bool, usize) {
    match value.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    }
}

/// `±(seconds + nanos/10^9)` in milliseconds, floored like every other
/// format: `-1.0005` s is -1000.5 ms, which lies in millisecond -1001.
pub(crate) fn seconds_to_millis(negative: bool, seconds: u64, nanos: u32) -> Option<i64> {
    let whole = i64::try_from(seconds).ok()?.checked_mul(1000)?;
    let millis = i64::from(nanos / 1_000_000);
    if !negative {
        return whole.checked_add(millis);
    }
    // Round the magnitude up when it has a sub-millisecond part, so the
    // negated value is the floor.
    let up = i64::from(nanos % 1_000_000 != 0);
    whole.checked_add(millis)?.checked_add(up).map(|m| -m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_fractions_floor() {
        assert_eq!(parse_seconds(b"-1.5"), Some(-1500));
        assert_eq!(parse_seconds(b"-1.0005"), Some(-1001));
        assert_eq!(parse_seconds(b"-0.0001"), Some(-1));
        assert_eq!(parse_seconds(b"1.0005"), Some(1000));
    }

    #[test]
    fn overflow_is_none() {
        assert_eq!(parse_seconds(b"999999999999999999"), None);
        assert_eq!(parse_millis(b"9999999999999999999"), None);
    }
}
