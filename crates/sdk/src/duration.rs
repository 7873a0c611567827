//! Go-style duration strings (`768h`, `1h30m`, `1.5s`) as used throughout Vault's configuration and API.
//!
//! Vault is written in Go and its users write durations the way Go's `time.ParseDuration` reads
//! them, with the addition that a bare integer means seconds. This module reproduces those rules
//! without pulling in a dependency, so any crate in the workspace can share it.

use std::time::Duration;

const NANOS_PER_MICRO: u128 = 1_000;
const NANOS_PER_MILLI: u128 = 1_000_000;
const NANOS_PER_SEC: u128 = 1_000_000_000;
const NANOS_PER_MIN: u128 = 60 * NANOS_PER_SEC;
const NANOS_PER_HOUR: u128 = 60 * NANOS_PER_MIN;

const VALID_UNITS: &str = "valid units are ns, us, ms, s, m, h";
const INVALID: &str = "expected a number followed by a unit, e.g. 90s or 1h30m";
const OUT_OF_RANGE: &str = "duration is out of range";

/// Go durations are an `int64` of nanoseconds; staying within that range keeps values we accept
/// interchangeable with what a Go client or server would accept.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Parses a Go duration string such as `768h`, `1h30m`, `1.5h`, `300ms` or `2h45m30s`.
///
/// A string consisting only of digits is taken as whole seconds, as Vault does for TTL fields.
/// Negative durations are rejected because nothing in the configuration can use them, and the
/// non-Go `d` unit is rejected with a hint rather than silently misread. Error messages describe
/// the problem without repeating the input so callers can prefix their own context.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".to_string());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map_err(|_| OUT_OF_RANGE.to_string())
            .and_then(seconds);
    }

    let rest = match s.as_bytes()[0] {
        b'-' => return Err("negative durations are not allowed".to_string()),
        b'+' => &s[1..],
        _ => s,
    };
    // Go accepts a lone zero without a unit, with or without a sign.
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(INVALID.to_string());
    }

    let mut total: u128 = 0;
    let mut rest = rest;
    while !rest.is_empty() {
        let (int_part, after_int) = split_digits(rest);
        let (frac_part, after_frac) = match after_int.strip_prefix('.') {
            Some(after_dot) => split_digits(after_dot),
            None => ("", after_int),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(INVALID.to_string());
        }

        let unit_len = after_frac
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after_frac.len());
        let (unit, after_unit) = after_frac.split_at(unit_len);
        let unit_nanos = unit_nanos(unit).ok_or_else(|| {
            if unit.is_empty() {
                format!("missing unit ({VALID_UNITS})")
            } else if unit == "d" || unit == "w" || unit == "y" {
                format!("unknown unit {unit:?}; write days as hours, e.g. 24h ({VALID_UNITS})")
            } else {
                format!("unknown unit {unit:?} ({VALID_UNITS})")
            }
        })?;

        let overflow = || OUT_OF_RANGE.to_string();
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse::<u128>().map_err(|_| overflow())?
        };
        let mut nanos = whole.checked_mul(unit_nanos).ok_or_else(overflow)?;
        if !frac_part.is_empty() {
            // Digits beyond nanosecond precision of the largest unit cannot change the result,
            // and capping them keeps the scale within u128.
            let frac = &frac_part[..frac_part.len().min(20)];
            let scale = 10u128.pow(u32::try_from(frac.len()).map_err(|_| overflow())?);
            let numerator = frac.parse::<u128>().map_err(|_| overflow())?;
            nanos = nanos
                .checked_add(numerator * unit_nanos / scale)
                .ok_or_else(overflow)?;
        }
        total = total.checked_add(nanos).ok_or_else(overflow)?;
        if total > MAX_NANOS {
            return Err(overflow());
        }
        rest = after_unit;
    }

    nanos_to_duration(total).ok_or_else(|| OUT_OF_RANGE.to_string())
}

/// Parses a duration written either as a JSON/HCL number of seconds or as a string accepted by
/// [`parse_duration`].
pub fn parse_duration_value(v: &serde_json::Value) -> Result<Duration, String> {
    match v {
        serde_json::Value::String(s) => parse_duration(s),
        serde_json::Value::Number(n) => {
            if let Some(secs) = n.as_u64() {
                seconds(secs)
            } else if n.as_i64().is_some() {
                Err("negative durations are not allowed".to_string())
            } else {
                match n.as_f64() {
                    Some(f) if f < 0.0 => Err("negative durations are not allowed".to_string()),
                    Some(f) if f.fract() == 0.0 && f <= u64::MAX as f64 => seconds(f as u64),
                    // Silently truncating would surprise; the string form expresses fractions
                    // unambiguously.
                    _ => Err(
                        "a number must be whole seconds; write fractions as a string such as \"1.5s\""
                            .to_string(),
                    ),
                }
            }
        }
        other => Err(format!(
            "expected a duration string or a number of seconds, got {}",
            json_type_name(other)
        )),
    }
}

/// Formats a duration the way Go's `time.Duration.String` does (`768h0m0s`, `1m30s`, `1.5s`,
/// `300ms`), which is what Vault clients expect to see echoed back.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < NANOS_PER_SEC {
        return if nanos < NANOS_PER_MICRO {
            format!("{nanos}ns")
        } else if nanos < NANOS_PER_MILLI {
            format!("{}µs", with_fraction(nanos, NANOS_PER_MICRO, 3))
        } else {
            format!("{}ms", with_fraction(nanos, NANOS_PER_MILLI, 6))
        };
    }

    let secs_nanos = nanos % NANOS_PER_MIN;
    let minutes = (nanos / NANOS_PER_MIN) % 60;
    let hours = nanos / NANOS_PER_HOUR;
    let secs = with_fraction(secs_nanos, NANOS_PER_SEC, 9);
    if hours > 0 {
        format!("{hours}h{minutes}m{secs}s")
    } else if minutes > 0 {
        format!("{minutes}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

/// Renders `value / unit` with up to `digits` decimals, dropping trailing zeros like Go does.
fn with_fraction(value: u128, unit: u128, digits: usize) -> String {
    let whole = value / unit;
    let frac = value % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0digits$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

fn split_digits(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        // Go accepts both the micro sign (U+00B5) and the Greek small mu (U+03BC).
        "us" | "\u{b5}s" | "\u{3bc}s" => NANOS_PER_MICRO,
        "ms" => NANOS_PER_MILLI,
        "s" => NANOS_PER_SEC,
        "m" => NANOS_PER_MIN,
        "h" => NANOS_PER_HOUR,
        _ => return None,
    })
}

fn seconds(secs: u64) -> Result<Duration, String> {
    if u128::from(secs) * NANOS_PER_SEC > MAX_NANOS {
        return Err(OUT_OF_RANGE.to_string());
    }
    Ok(Duration::from_secs(secs))
}

fn nanos_to_duration(nanos: u128) -> Option<Duration> {
    let secs = u64::try_from(nanos / NANOS_PER_SEC).ok()?;
    let sub = u32::try_from(nanos % NANOS_PER_SEC).ok()?;
    Some(Duration::new(secs, sub))
}

fn json_type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const H: u64 = 3600;

    #[test]
    fn parses_go_durations() {
        let table: &[(&str, Duration)] = &[
            ("768h", Duration::from_secs(768 * H)),
            ("1h30m", Duration::from_secs(H + 30 * 60)),
            ("90s", Duration::from_secs(90)),
            ("1.5h", Duration::from_secs(H + 30 * 60)),
            ("300ms", Duration::from_millis(300)),
            ("2h45m30s", Duration::from_secs(2 * H + 45 * 60 + 30)),
            ("3600", Duration::from_secs(3600)),
            ("0", Duration::ZERO),
            ("+5s", Duration::from_secs(5)),
            (".5s", Duration::from_millis(500)),
            ("1.s", Duration::from_secs(1)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            ("10μs", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("1m0.000000001s", Duration::new(60, 1)),
            (" 15m ", Duration::from_secs(900)),
        ];
        for (input, want) in table {
            assert_eq!(parse_duration(input).as_ref(), Ok(want), "input {input:?}");
        }
    }

    #[test]
    fn rejects_bad_durations() {
        for input in [
            "", "  ", "-1s", "-1", "5x", "abc", "1d", "h", ".s", "1h-5m", "1.2.3s", "++1s", "1.5",
        ] {
            assert!(
                parse_duration(input).is_err(),
                "input {input:?} should fail"
            );
        }
        let err = parse_duration("1d").unwrap_err();
        assert!(err.contains("\"d\"") && err.contains("24h"), "{err}");
        let err = parse_duration("5x").unwrap_err();
        assert!(err.contains("\"x\""), "{err}");
        assert!(parse_duration("90").is_ok(), "bare integers are seconds");
        assert!(parse_duration("-1s").unwrap_err().contains("negative"));
        assert!(parse_duration("").unwrap_err().contains("empty"));
    }

    #[test]
    fn rejects_overflow() {
        assert!(parse_duration("2562048h").is_err());
        assert!(parse_duration("99999999999999999999999999999999999999999h").is_err());
        assert!(parse_duration("2562047h").is_ok());
        assert!(parse_duration("9223372036").is_ok());
        assert!(parse_duration("9223372037").is_err());
        assert!(parse_duration_value(&json!(9_223_372_037_u64)).is_err());
    }

    #[test]
    fn parses_values() {
        assert_eq!(
            parse_duration_value(&json!(3600)),
            Ok(Duration::from_secs(3600))
        );
        assert_eq!(
            parse_duration_value(&json!("3600")),
            Ok(Duration::from_secs(3600))
        );
        assert_eq!(
            parse_duration_value(&json!("1h")),
            Ok(Duration::from_secs(3600))
        );
        assert_eq!(
            parse_duration_value(&json!(60.0)),
            Ok(Duration::from_secs(60))
        );
        assert!(parse_duration_value(&json!(-1)).is_err());
        assert!(parse_duration_value(&json!(1.5)).is_err());
        assert!(
            parse_duration_value(&json!(true))
                .unwrap_err()
                .contains("boolean")
        );
        assert!(parse_duration_value(&json!(null)).is_err());
    }

    #[test]
    fn formats_like_go() {
        let table: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_secs(768 * H), "768h0m0s"),
            (Duration::from_secs(H), "1h0m0s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(5), "5s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(300), "300ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_micros(10), "10µs"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::new(2 * H + 45 * 60 + 30, 1), "2h45m30.000000001s"),
        ];
        for (d, want) in table {
            assert_eq!(format_duration(*d), *want, "{d:?}");
        }
    }

    #[test]
    fn format_round_trips() {
        for input in [
            "768h", "1h30m", "90s", "1.5h", "300ms", "2h45m30s", "1.5s", "10us",
        ] {
            let d = parse_duration(input).unwrap();
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d, "{input}");
        }
    }
}
