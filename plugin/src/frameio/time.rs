//! Frame.io's timestamps (RFC 3339, UTC) as Unix seconds.

/// `2024-03-01T09:00:00.000000Z` (or with an offset) as Unix seconds; `None` when
/// it is not a timestamp.
pub fn unix_seconds(text: &str) -> Option<u64> {
    let (date, rest) = text.split_once('T')?;
    let mut date_parts = date.split('-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: u32 = date_parts.next()?.parse().ok()?;
    let day: u32 = date_parts.next()?.parse().ok()?;
    let time_end = rest.find(['Z', 'z', '+', '-']).unwrap_or(rest.len());
    let (time, zone) = rest.split_at(time_end);
    let mut time_parts = time.split(':');
    let hour: i64 = time_parts.next()?.parse().ok()?;
    let minute: i64 = time_parts.next()?.parse().ok()?;
    let second: f64 = time_parts.next().unwrap_or("0").parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || !(0.0..61.0).contains(&second) {
        return None;
    }
    let offset = zone_offset_seconds(zone)?;
    let total = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second as i64 - offset;
    u64::try_from(total).ok()
}

/// Unix seconds as an RFC 3339 timestamp in UTC (`2024-03-01T09:00:00Z`).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest / 60 % 60, rest % 60)
}

/// The date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `Z`, empty, or `±hh:mm` as seconds east of UTC.
fn zone_offset_seconds(zone: &str) -> Option<i64> {
    match zone {
        "" | "Z" | "z" => Some(0),
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (hours, minutes) = zone[1..].split_once(':').unwrap_or((&zone[1..], "0"));
            Some(sign * (hours.parse::<i64>().ok()? * 3600 + minutes.parse::<i64>().ok()? * 60))
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let m = i64::from(month);
    let day_of_year = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::{rfc3339, unix_seconds};

    #[test]
    fn unix_seconds_format_back_to_the_same_instant() {
        for secs in [0, 951_825_600, 1_709_283_600, 4_102_444_800] {
            assert_eq!(unix_seconds(&rfc3339(secs)), Some(secs), "{secs}");
        }
        assert_eq!(rfc3339(1_709_283_600), "2024-03-01T09:00:00Z");
    }

    #[test]
    fn rfc3339_timestamps_in_any_zone() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_seconds("2024-03-01T09:00:00.000000Z"), Some(1_709_283_600));
        assert_eq!(unix_seconds("2024-03-01T10:00:00+01:00"), Some(1_709_283_600));
        assert_eq!(unix_seconds("2000-02-29T12:00:00Z"), Some(951_825_600));
        for bad in ["", "yesterday", "2024-13-01T00:00:00Z", "2024-03-01"] {
            assert_eq!(unix_seconds(bad), None, "{bad}");
        }
    }
}
