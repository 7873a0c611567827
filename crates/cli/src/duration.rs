//! Durations the way the Vault CLI reads and writes them: flags accept Go
//! duration strings, bare integers as seconds and `Nd` for days, and
//! requests carry Go's `time.Duration` text (`1h0m0s`), which servers and
//! scripts already expect.

/// Nanoseconds per second.
pub const SECOND: i64 = 1_000_000_000;

/// Parses a duration into nanoseconds: empty is zero, a bare integer is
/// seconds, `Nd` is days, anything else is a Go duration string. Errors
/// use Go's wording.
pub fn parse(text: &str) -> Result<i64, String> {
    if text.is_empty() {
        return Ok(0);
    }
    if let Ok(seconds) = text.parse::<i64>() {
        return seconds
            .checked_mul(SECOND)
            .ok_or_else(|| format!("time: invalid duration {text:?}"));
    }
    if let Some(days) = text.strip_suffix('d') {
        let days: i64 = days
            .parse()
            .map_err(|_| format!("strconv.ParseInt: parsing {days:?}: invalid syntax"))?;
        return days
            .checked_mul(24 * 3600 * SECOND)
            .ok_or_else(|| format!("time: invalid duration {text:?}"));
    }
    parse_go(text)
}

/// Go's `time.ParseDuration`: a sequence of decimal numbers with units
/// `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, optionally signed.
fn parse_go(text: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {text:?}");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "" => return Err(format!("time: missing unit in duration {text:?}")),
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            other => return Err(format!("time: unknown unit {other:?} in duration {text:?}")),
        };
        total += value * scale;
    }
    if total > i64::MAX as f64 {
        return Err(invalid());
    }
    let nanos = total.round() as i64;
    Ok(if negative { -nanos } else { nanos })
}

/// Go's `time.Duration.String()`: `0s`, `1.5s`, `2m0s`, `1h0m0s`, `250ms`.
pub fn go_string(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    if u < SECOND as u64 {
        let (unit, scale, digits) = if u < 1_000 {
            ("ns", 1, 0)
        } else if u < 1_000_000 {
            ("µs", 1_000, 3)
        } else {
            ("ms", 1_000_000, 6)
        };
        return format!("{sign}{}{unit}", fraction(u, scale, digits));
    }
    let seconds = u / SECOND as u64;
    let (h, m, s) = (seconds / 3600, (seconds / 60) % 60, seconds % 60);
    let secs = fraction(s * SECOND as u64 + u % SECOND as u64, SECOND as u64, 9);
    if h > 0 {
        format!("{sign}{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{sign}{m}m{secs}s")
    } else {
        format!("{sign}{secs}s")
    }
}

/// `value / scale` with the remainder as trimmed decimal digits.
fn fraction(value: u64, scale: u64, digits: usize) -> String {
    let whole = value / scale;
    let rest = value % scale;
    if rest == 0 {
        return whole.to_string();
    }
    let decimals = format!("{rest:0digits$}");
    format!("{whole}.{}", decimals.trim_end_matches('0'))
}

/// Whole seconds, dropping any fraction the way the Vault CLI does before
/// sending an increment.
pub fn whole_seconds(nanos: i64) -> i64 {
    nanos / SECOND
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        assert_eq!(parse(""), Ok(0));
        assert_eq!(parse("30"), Ok(30 * SECOND));
        assert_eq!(parse("2d"), Ok(48 * 3600 * SECOND));
        assert_eq!(parse("1h30m"), Ok(5400 * SECOND));
        assert_eq!(parse("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse("250ms"), Ok(250_000_000));
        assert_eq!(parse("-1"), Ok(-SECOND));
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(
            parse("abc"),
            Err("time: invalid duration \"abc\"".to_string())
        );
        assert_eq!(
            parse("1.5"),
            Err("time: missing unit in duration \"1.5\"".to_string())
        );
        assert_eq!(
            parse("3x"),
            Err("time: unknown unit \"x\" in duration \"3x\"".to_string())
        );
        assert!(parse("xd").is_err());
    }

    #[test]
    fn go_strings() {
        assert_eq!(go_string(0), "0s");
        assert_eq!(go_string(30 * SECOND), "30s");
        assert_eq!(go_string(300 * SECOND), "5m0s");
        assert_eq!(go_string(3600 * SECOND), "1h0m0s");
        assert_eq!(go_string(90_061 * SECOND), "25h1m1s");
        assert_eq!(go_string(1_500_000_000), "1.5s");
        assert_eq!(go_string(250_000_000), "250ms");
        assert_eq!(go_string(1_500), "1.5µs");
        assert_eq!(go_string(-SECOND), "-1s");
    }

    #[test]
    fn truncation() {
        assert_eq!(whole_seconds(1_999_999_999), 1);
        assert_eq!(whole_seconds(3600 * SECOND), 3600);
    }
}
