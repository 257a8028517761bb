//! How the CLI prints: times as UTC RFC 3339 (`2026-11-24T07:35:00Z`), lists as aligned
//! text or JSON lines (`--json`), and every text from the database escaped.
pub use hearth::domain::validate::printable;

/// Unix milliseconds as UTC RFC 3339, to the second.
pub fn time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Prints one JSON object per line.
pub fn json_lines(rows: impl IntoIterator<Item = serde_json::Value>) {
    for row in rows {
        println!("{row}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(super::time(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::time(1_704_067_200_000), "2024-01-01T00:00:00Z");
        // Checked against `date -u -d @…`: a time of day, and a leap day.
        assert_eq!(super::time(1_795_500_900_123), "2026-11-24T06:15:00Z");
        assert_eq!(super::time(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
