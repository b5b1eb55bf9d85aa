//! Calendar days for date fields (`YYYY-MM-DD`, UTC), without a date library: the
//! proleptic Gregorian conversions of Howard Hinnant's `days_from_civil` and
//! `civil_from_days`.

const DAY_SECS: u64 = 86_400;

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

/// The day of Unix time `secs`, as `YYYY-MM-DD`.
pub fn date_of(secs: u64) -> String {
    let (y, m, d) = civil_from_days((secs / DAY_SECS) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The last second of day `date` (`YYYY-MM-DD`, UTC), or `None` when it is not a
/// day of the calendar or is before 1970.
pub fn end_of_day(date: &str) -> Option<u64> {
    let bytes = date.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| date.get(range).filter(|s| s.bytes().all(|b| b.is_ascii_digit()))?.parse::<i64>().ok();
    let (y, m, d) = (number(0..4)?, number(5..7)?, number(8..10)?);
    if !(1..=12).contains(&m) || d < 1 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // A day past the month's end comes back as another date.
    if civil_from_days(days) != (y, m, d) || days < 0 {
        return None;
    }
    Some(days as u64 * DAY_SECS + DAY_SECS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip_and_bad_days_are_refused() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(951_782_400), "2000-02-29");
        assert_eq!(end_of_day("1970-01-01"), Some(86_399));
        assert_eq!(end_of_day("2000-02-29"), Some(951_782_400 + 86_399));
        for day in ["2001-02-29", "2024-13-01", "2024-00-10", "2024-04-31", "24-01-01", "2024-1-01", "1969-12-31", "2024-01-0x"] {
            assert_eq!(end_of_day(day), None, "{day}");
        }
        for secs in [0, 1_700_000_000, 4_102_444_800] {
            assert_eq!(end_of_day(&date_of(secs)).map(|end| end / DAY_SECS), Some(secs / DAY_SECS));
        }
    }
}
