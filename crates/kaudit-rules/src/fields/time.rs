//! The texts of the `evt.time*` and `evt.datetime*` fields, from the event time in
//! nanoseconds. Falco holds event times as unsigned 64-bit nanoseconds, so a time before 1970
//! wraps around as it does there. kaudit formats in UTC (Falco uses the local time zone for
//! all but `evt.time.iso8601`).

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// A broken-down UTC time.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    minute: u64,
    second: u64,
    nanos: u64,
}

fn civil(nanos: i64) -> Civil {
    // Falco's timestamps are uint64: reinterpret, as the plugin's conversion does.
    let ts = nanos as u64;
    let seconds = ts / NANOS_PER_SECOND;
    let days = (seconds / 86_400) as i64;
    let of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: of_day / 3600,
        minute: of_day % 3600 / 60,
        second: of_day % 60,
        nanos: ts % NANOS_PER_SECOND,
    }
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (the "days from civil" inverse
/// published by Howard Hinnant).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `evt.time`: `HH:MM:SS.nnnnnnnnn`.
pub(super) fn time(nanos: i64) -> String {
    let c = civil(nanos);
    format!("{:02}:{:02}:{:02}.{:09}", c.hour, c.minute, c.second, c.nanos)
}

/// `evt.time.s`: `HH:MM:SS`.
pub(super) fn time_s(nanos: i64) -> String {
    let c = civil(nanos);
    format!("{:02}:{:02}:{:02}", c.hour, c.minute, c.second)
}

/// `evt.time.iso8601`: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnn+0000`.
pub(super) fn iso8601(nanos: i64) -> String {
    let c = civil(nanos);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}+0000",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.nanos
    )
}

/// `evt.datetime`: `YYYY-MM-DD HH:MM:SS.nnnnnnnnn`.
pub(super) fn datetime(nanos: i64) -> String {
    let c = civil(nanos);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:09}",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.nanos
    )
}

/// `evt.datetime.s`: `YYYY-MM-DD HH:MM:SS`.
pub(super) fn datetime_s(nanos: i64) -> String {
    let c = civil(nanos);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// `json.rawtime`: the unsigned nanoseconds in decimal.
pub(super) fn raw(nanos: i64) -> String {
    (nanos as u64).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        // 2026-11-21T09:00:00.04Z
        let t = 1_795_251_600_040_000_000;
        assert_eq!(time(t), "09:00:00.040000000");
        assert_eq!(time_s(t), "09:00:00");
        assert_eq!(iso8601(t), "2026-11-21T09:00:00.040000000+0000");
        assert_eq!(datetime(t), "2026-11-21 09:00:00.040000000");
        assert_eq!(datetime_s(t), "2026-11-21 09:00:00");
        assert_eq!(raw(t), "1795251600040000000");
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000000000+0000");
        assert_eq!(datetime(951_782_400_500_000_000), "2000-02-29 00:00:00.500000000");
        assert_eq!(raw(-1), "18446744073709551615");
    }
}
