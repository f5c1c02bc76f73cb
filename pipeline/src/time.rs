//! Packet time: nanoseconds since the Unix epoch, taken from capture headers only.

use std::fmt;

/// A point in packet time, in nanoseconds since the Unix epoch (UTC).
///
/// The engine never reads a clock: every timestamp comes from a capture record header
/// (pcap, pcapng, or the TPACKET_V3 ring), so the same packets always give the same output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The zero timestamp (the epoch); also used as "unknown".
    pub const ZERO: Timestamp = Timestamp(0);

    /// Builds a timestamp from seconds and nanoseconds.
    pub fn from_secs_nanos(secs: u64, nanos: u64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
    }

    /// Nanoseconds since the epoch.
    pub fn as_nanos(self) -> u64 {
        self.0
    }

    /// Microseconds since the epoch, as Parquet's TIMESTAMP(us) wants them.
    pub fn as_micros(self) -> i64 {
        (self.0 / 1_000) as i64
    }

    /// Nanoseconds from `earlier` to `self`; zero when `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// `self + nanos`, saturating.
    pub fn plus_nanos(self, nanos: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(nanos))
    }

    /// Civil date and hour (UTC) of this timestamp, for Hive partitions: (year, month, day, hour).
    pub fn civil_date_hour(self) -> (i32, u32, u32, u32) {
        let secs = (self.0 / 1_000_000_000) as i64;
        let days = secs.div_euclid(86_400);
        let hour = (secs.rem_euclid(86_400) / 3_600) as u32;
        let (y, m, d) = civil_from_days(days);
        (y, m, d, hour)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:09}", self.0 / 1_000_000_000, self.0 % 1_000_000_000)
    }
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian, UTC).
fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((if m <= 2 { y + 1 } else { y }) as i32, m, d)
}

/// Nanoseconds per second.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_date_of_known_instants() {
        assert_eq!(Timestamp::ZERO.civil_date_hour(), (1970, 1, 1, 0));
        // 2024-02-29T13:05:00Z = 1709211900
        assert_eq!(Timestamp::from_secs_nanos(1_709_211_900, 5).civil_date_hour(), (2024, 2, 29, 13));
        // 2000-12-31T23:59:59Z = 978307199
        assert_eq!(Timestamp::from_secs_nanos(978_307_199, 0).civil_date_hour(), (2000, 12, 31, 23));
    }

    #[test]
    fn since_saturates() {
        let a = Timestamp(10);
        let b = Timestamp(25);
        assert_eq!(b.saturating_since(a), 15);
        assert_eq!(a.saturating_since(b), 0);
        assert_eq!(Timestamp(7).to_string(), "0.000000007");
    }
}
