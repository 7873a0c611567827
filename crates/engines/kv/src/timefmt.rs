//! Timestamps and durations rendered the way Vault's KV engine renders them.
//!
//! Clients compare and parse these strings, so they follow Go's formatting exactly:
//! `time.RFC3339Nano` (fraction without trailing zeros, UTC as `Z`) and `time.Duration.String`.

use std::time::Duration;

use mayfly_sdk::duration::format_duration;
use time::OffsetDateTime;

/// Nanoseconds since the Unix epoch, now.
pub(crate) fn now_nanos() -> i64 {
    // i64 nanoseconds last until 2262; saturating keeps a broken clock from wrapping around.
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

/// Formats a Unix-nanosecond timestamp as Go's `RFC3339Nano` in UTC.
pub(crate) fn rfc3339_nano(nanos: i64) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    let fraction = at.nanosecond();
    if fraction != 0 {
        let digits = format!("{fraction:09}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Formats whole seconds as Go's `time.Duration.String` (`0s`, `1h30m0s`, `-1s`).
pub(crate) fn go_duration(seconds: i64) -> String {
    let text = format_duration(Duration::from_secs(seconds.unsigned_abs()));
    if seconds < 0 {
        format!("-{text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (1_521_685_446_945_319_214, "2018-03-22T02:24:06.945319214Z"),
            (1_521_685_446_945_319_000, "2018-03-22T02:24:06.945319Z"),
            (1_521_685_446_100_000_000, "2018-03-22T02:24:06.1Z"),
            (1_521_685_446_000_000_000, "2018-03-22T02:24:06Z"),
        ];
        for (nanos, want) in cases {
            assert_eq!(rfc3339_nano(nanos), want, "{nanos}");
        }
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(5400), "1h30m0s");
        assert_eq!(go_duration(-1), "-1s");
        assert_eq!(go_duration(200), "3m20s");
    }
}
