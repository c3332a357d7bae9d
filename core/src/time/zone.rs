//! From a local date-time in a zone to an instant, the way java.time does it.
//!
//! `ZonedDateTime.ofLocal(local, zone, null)` is the rule SPEC section 3 asks
//! for, because the job files we must stay compatible with were run on the
//! JVM:
//! - the local time exists once: use its offset;
//! - it exists twice (a fold, clocks go back): use the *earlier* offset, the
//!   one in force before the transition, which gives the earlier instant;
//! - it does not exist (a gap, clocks go forward): move it forward by the
//!   length of the gap, which is the same as reading it with the offset in
//!   force *before* the transition. 02:30 in Amsterdam on the spring-forward
//!   day becomes 03:30 CEST, 01:30Z.

use chrono::{LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone};
use chrono_tz::Tz;

/// The epoch milliseconds of `local` read in `zone`, floored to the
/// millisecond. None only if the date is outside chrono's range.
pub(crate) fn local_to_epoch_millis(local: NaiveDateTime, zone: Tz) -> Option<i64> {
    // The local time read as if it were UTC; the offset is subtracted below.
    let as_utc = local.and_utc().timestamp_millis();
    if zone == Tz::UTC {
        return Some(as_utc);
    }
    let offset_seconds = match zone.offset_from_local_datetime(&local) {
        LocalResult::Single(offset) => offset.fix().local_minus_utc(),
        LocalResult::Ambiguous(a, b) => {
            // The earlier offset is the larger one east of UTC.
            a.fix().local_minus_utc().max(b.fix().local_minus_utc())
        }
        LocalResult::None => offset_before_gap(local, zone)?,
    };
    as_utc.checked_sub(i64::from(offset_seconds) * 1000)
}

/// The offset in force just before the gap that swallows `local`.
///
/// chrono does not expose the transition itself, so we ask for the offset at
/// an instant certainly before it. Offsets lie within -12 h..+14 h, so the
/// transition instant is no earlier than `local` minus 14 h read as UTC;
/// 18 h before that is safely on the old side, and no zone has had two
/// transitions that close together.
fn offset_before_gap(local: NaiveDateTime, zone: Tz) -> Option<i32> {
    let probe = local.checked_sub_signed(TimeDelta::try_hours(18)?)?;
    Some(zone.offset_from_utc_datetime(&probe).fix().local_minus_utc())
}
