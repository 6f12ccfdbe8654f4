//! Points in time written the ways `--since` and `--until` accept them.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds with nanoseconds as a fraction: `1795356300.250000000`.
pub fn unix_secs(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).expect("time after 1970");
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// RFC 3339 in UTC with nanoseconds: `2026-11-22T14:05:00.250000000Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).expect("time after 1970");
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Year, month, day of a count of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_times() {
        let t = UNIX_EPOCH + Duration::new(1_795_356_300, 250_000_000);
        assert_eq!(rfc3339(t), "2026-11-22T14:05:00.250000000Z");
        assert_eq!(unix_secs(t), "1795356300.250000000");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000000000Z"
        );
    }
}
