//! RFC 3339 timestamps as nanoseconds since the Unix epoch, without a calendar library:
//! audit events carry two per event and parsing them is on the hot path.

/// A timestamp that is not RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("parsing time {text:?}: {reason}")]
pub struct TimeError {
    /// The text that failed.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parses an RFC 3339 timestamp with an optional fraction of up to nine digits and a `Z` or
/// numeric offset, as Go's `time.RFC3339Nano` layout accepts it, into nanoseconds since the
/// Unix epoch (UTC).
pub fn parse_rfc3339_nanos(text: &str) -> Result<i64, TimeError> {
    let err = |reason| TimeError {
        text: text.to_owned(),
        reason,
    };
    let b = text.as_bytes();
    if b.len() < 20 {
        return Err(err("too short"));
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, TimeError> {
        let mut v = 0i64;
        for &c in &b[range] {
            if !c.is_ascii_digit() {
                return Err(err("expected a digit"));
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Ok(v)
    };
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return Err(err("expected YYYY-MM-DDTHH:MM:SS"));
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(err("day out of range"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(err("time of day out of range"));
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || digits > 9 {
            return Err(err("fraction must have 1 to 9 digits"));
        }
        nanos = num(start..i)? * 10i64.pow(9 - digits as u32);
    }
    let offset_seconds = match b.get(i) {
        Some(b'Z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return Err(err("offset out of range"));
            }
            let off = oh * 3600 + om * 60;
            if sign == b'+' { off } else { -off }
        }
        _ => return Err(err("expected Z or a ±HH:MM offset at the end")),
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Ok(seconds * 1_000_000_000 + nanos)
}

/// Formats nanoseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (UTC, nine
/// fraction digits), the shape of Falco's JSON alert `time`.
pub fn format_rfc3339_nanos(nanos: i64) -> String {
    let seconds = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let days = seconds.div_euclid(86_400);
    let sod = seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:09}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
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
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_apiserver_shape_and_offsets() {
        assert_eq!(parse_rfc3339_nanos("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_rfc3339_nanos("2024-05-01T10:11:12.123456Z"),
            Ok(1_714_558_272_123_456_000)
        );
        assert_eq!(
            parse_rfc3339_nanos("2024-05-01T11:11:12.123456+01:00"),
            parse_rfc3339_nanos("2024-05-01T10:11:12.123456Z")
        );
        assert_eq!(
            parse_rfc3339_nanos("2000-02-29T00:00:00.5Z"),
            Ok(951_782_400_500_000_000)
        );
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            "yesterday",
            "",
            "2024-05-01 10:11:12Z",
            "2024-02-30T00:00:00Z",
            "2024-05-01T10:11:12",
            "2024-05-01T10:11:12.Z",
        ] {
            assert!(parse_rfc3339_nanos(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_round_trip() {
        let n = 1_714_558_272_123_456_789;
        assert_eq!(format_rfc3339_nanos(n), "2024-05-01T10:11:12.123456789Z");
        assert_eq!(parse_rfc3339_nanos(&format_rfc3339_nanos(n)), Ok(n));
    }
}
