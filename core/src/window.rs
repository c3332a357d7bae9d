//! Key windows: `floor(epoch_ms / window_ms)`, aligned to UTC. A window
//! depends on the record's own time only, never on the order of rows.

/// The index of a key window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyWindow(pub i64);

impl KeyWindow {
    /// The window holding `epoch_ms` (floor division: times before 1970 fall
    /// in negative windows, not in window 0).
    pub fn of(epoch_ms: i64, window_ms: i64) -> KeyWindow {
        KeyWindow(epoch_ms.div_euclid(window_ms))
    }
    /// The first millisecond of the window.
    pub fn start_ms(self, window_ms: i64) -> i64 {
        self.0.saturating_mul(window_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const DAY: i64 = 86_400_000;

    #[test]
    fn boundaries() {
        // 2026-03-01T23:59:59.999Z and 2026-03-02T00:00:00.000Z
        let midnight = 1_772_409_600_000;
        assert_eq!(KeyWindow::of(midnight - 1, DAY).0 + 1, KeyWindow::of(midnight, DAY).0);
        assert_eq!(KeyWindow::of(midnight, DAY).start_ms(DAY), midnight);
        assert_eq!(KeyWindow::of(-1, DAY), KeyWindow(-1));
        assert_eq!(KeyWindow::of(0, DAY), KeyWindow(0));
        assert_eq!(KeyWindow::of(3_600_000 * 5, 3_600_000 * 6), KeyWindow(0));
    }
}
