//! What a parser read out of a cell, and how that becomes an instant.
//!
//! Every textual format (ISO 8601, Java patterns, strftime) fills the same
//! [`Fields`] and shares one [`Fields::epoch_millis`], so the checks (day in
//! month, hour range, 12-hour clock, AM/PM) and the zone rules are written
//! once. `Fields` is `Copy` and lives on the stack: optional sections in a
//! Java pattern back out by restoring a copy.

use chrono::NaiveDate;
use chrono_tz::Tz;

use super::epoch::seconds_to_millis;
use super::zone::local_to_epoch_millis;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Fields {
    pub year: Option<i32>,
    pub month: Option<u32>,
    pub day: Option<u32>,
    pub day_of_year: Option<u32>,
    /// 0..=23.
    pub hour: Option<u32>,
    /// 1..=12, meaningful only with `pm`.
    pub clock_hour: Option<u32>,
    pub pm: Option<bool>,
    pub minute: Option<u32>,
    pub second: Option<u32>,
    pub nanos: Option<u32>,
    /// Seconds east of UTC, when the value states it.
    pub offset: Option<i32>,
    /// A zone named in the value (`VV`, `%Z`, `[Europe/Paris]`).
    pub zone: Option<Tz>,
    /// strftime `%s`: the value is an instant already. The magnitude, with
    /// the sign apart so that `-0.5` keeps its sign for the fraction.
    pub epoch_seconds: Option<u64>,
    pub epoch_negative: bool,
}

/// Stores `value` in `slot`, failing when the value already named a different
/// one (`yyyy ... yyyy` with two years), as java.time does.
pub(crate) fn set<T: PartialEq + Copy>(slot: &mut Option<T>, value: T) -> Option<()> {
    match *slot {
        Some(existing) if existing != value => None,
        _ => {
            *slot = Some(value);
            Some(())
        }
    }
}

impl Fields {
    /// The instant these fields name, in epoch milliseconds.
    ///
    /// Milliseconds are floored (toward negative infinity), like java.time's
    /// `Instant.toEpochMilli`: the result is the millisecond that contains the
    /// instant, also before 1970.
    pub(crate) fn epoch_millis(&self, default_zone: Tz) -> Option<i64> {
        let nanos = self.nanos.unwrap_or(0);
        if nanos > 999_999_999 {
            return None;
        }
        if let Some(seconds) = self.epoch_seconds {
            return seconds_to_millis(self.epoch_negative, seconds, nanos);
        }
        let date = self.date()?;
        let hour = self.hour_of_day()?;
        let minute = self.minute.unwrap_or(0);
        let second = self.second.unwrap_or(0);
        let local = date.and_hms_nano_opt(hour, minute, second, nanos)?;
        if let Some(offset) = self.offset {
            return local
                .and_utc()
                .timestamp_millis()
                .checked_sub(i64::from(offset) * 1000);
        }
        local_to_epoch_millis(local, self.zone.unwrap_or(default_zone))
    }

    fn date(&self) -> Option<NaiveDate> {
        let year = self.year?;
        match (self.month, self.day, self.day_of_year) {
            (Some(month), Some(day), None) => NaiveDate::from_ymd_opt(year, month, day),
            (None, None, Some(ordinal)) => NaiveDate::from_yo_opt(year, ordinal),
            (Some(month), Some(day), Some(ordinal)) => {
                let date = NaiveDate::from_ymd_opt(year, month, day)?;
                // Both given: they must name the same day.
                (NaiveDate::from_yo_opt(year, ordinal)? == date).then_some(date)
            }
            _ => None,
        }
    }

    /// The 0..=23 hour from `H`, or from `h` with AM/PM; both must agree when
    /// both are present.
    fn hour_of_day(&self) -> Option<u32> {
        let from_clock = match (self.clock_hour, self.pm) {
            (Some(h), Some(pm)) if (1..=12).contains(&h) => Some(h % 12 + if pm { 12 } else { 0 }),
            (Some(_), _) => return None,
            (None, _) => None,
        };
        match (self.hour, from_clock) {
            (Some(h), _) if h > 23 => None,
            (Some(h), Some(c)) => (h == c).then_some(h),
            (Some(h), None) => match self.pm {
                // `HH ... a`: the marker must match the hour.
                Some(pm) if pm != (h >= 12) => None,
                _ => Some(h),
            },
            (None, Some(c)) => Some(c),
            (None, None) => Some(0),
        }
    }
}
