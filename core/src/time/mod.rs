//! Timestamps: from a cell to epoch milliseconds (SPEC section 3).
//!
//! # Design
//!
//! A job file's `format` is compiled once, in [`TimestampFormat::parse`], and
//! every row then goes through [`TimestampFormat::epoch_millis`], which must
//! not allocate: it runs once per row, millions of times.
//!
//! - `iso8601` has a hand-written reader (`iso.rs`);
//! - `epoch_millis` / `epoch_seconds` are signed decimals (`epoch.rs`);
//! - Java `DateTimeFormatter` patterns (`java.rs`) and strftime patterns
//!   (`strftime.rs`) compile to one token list (`pattern.rs`) read by one
//!   matcher.
//!
//! Every textual reader fills the same `Fields`, and `fields.rs` turns those
//! into an instant: validation (Feb 30, hour 25), the 12-hour clock, and the
//! default zone with java.time's daylight-saving rules (`zone.rs`).
//!
//! Readers work on the cell's bytes, never slicing a `str`, so no input can
//! hit a char boundary panic. Leading and trailing whitespace is trimmed from
//! every value, and from patterns too so the two stay in step. Results are floored to the millisecond, like java.time's
//! `Instant.toEpochMilli`, also for instants before 1970.

use alloc::format;
use alloc::string::String;

mod epoch;
mod fields;
mod iso;
mod java;
mod pattern;
mod scan;
mod strftime;
mod zone;

pub use pattern::CompiledPattern;

/// A compiled timestamp format.
///
/// ```
/// use keylink_core::time::{parse_zone, TimestampFormat};
/// let format = TimestampFormat::parse("yyyy-MM-dd HH:mm:ss").unwrap();
/// let amsterdam = parse_zone("Europe/Amsterdam").unwrap();
/// assert_eq!(format.epoch_millis("2010-12-01 08:26:00", amsterdam), Some(1_291_188_360_000));
/// assert_eq!(format.epoch_millis("2010-12-01 08:26", amsterdam), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampFormat {
    Iso8601,
    EpochMillis,
    EpochSeconds,
    /// A Java `DateTimeFormatter` pattern.
    Java(CompiledPattern),
    /// A strftime pattern (the format contains `%`).
    Strftime(CompiledPattern),
}

impl TimestampFormat {
    /// Compiles a format from the job file: `iso8601`, `epoch_millis`,
    /// `epoch_seconds`, a Java DateTimeFormatter pattern, or a strftime
    /// pattern (when it contains `%`).
    ///
    /// The three names are matched ignoring ASCII case; none of them is a
    /// valid pattern, so this cannot shadow one.
    ///
    /// # Errors
    /// A message naming what is wrong with the pattern: the letter or
    /// specifier and its position, an unclosed quote, or a missing field.
    pub fn parse(spec: &str) -> Result<TimestampFormat, String> {
        let name = spec.trim();
        if name.eq_ignore_ascii_case("iso8601") {
            return Ok(TimestampFormat::Iso8601);
        }
        if name.eq_ignore_ascii_case("epoch_millis") {
            return Ok(TimestampFormat::EpochMillis);
        }
        if name.eq_ignore_ascii_case("epoch_seconds") {
            return Ok(TimestampFormat::EpochSeconds);
        }
        if name.is_empty() {
            return Err(String::from(
                "the timestamp format is empty; use iso8601, epoch_millis, epoch_seconds or a pattern",
            ));
        }
        // Values are trimmed before matching, so the pattern is too: a
        // pattern's leading space would otherwise never match anything.
        let compiled = if name.contains('%') {
            strftime::compile(name).map(TimestampFormat::Strftime)
        } else {
            java::compile(name).map(TimestampFormat::Java)
        };
        compiled.map_err(|message| format!("invalid timestamp format: {message}"))
    }

    /// The epoch milliseconds (floored) of `value`, with `zone` applied
    /// when the value carries no offset or zone. None if it does not parse.
    #[must_use]
    pub fn epoch_millis(&self, value: &str, zone: chrono_tz::Tz) -> Option<i64> {
        let bytes = value.trim().as_bytes();
        match self {
            TimestampFormat::Iso8601 => iso::fields(bytes)?.epoch_millis(zone),
            TimestampFormat::EpochMillis => epoch::parse_millis(bytes),
            TimestampFormat::EpochSeconds => epoch::parse_seconds(bytes),
            TimestampFormat::Java(pattern) | TimestampFormat::Strftime(pattern) => {
                pattern.fields(bytes)?.epoch_millis(zone)
            }
        }
    }
}

/// An IANA zone by name (`Europe/Amsterdam`, `UTC`).
#[must_use]
pub fn parse_zone(id: &str) -> Option<chrono_tz::Tz> {
    id.parse().ok()
}
