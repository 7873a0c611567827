//! Vault's lenient input conversions for the KV fields that the sdk's field kinds do not cover.
//!
//! Clients send `cas`, `versions`, `ttl` and `delete_version_after` in several shapes (numbers,
//! numeric strings, comma lists, `"1d"`), and Vault accepts each of them through Go's
//! `mapstructure` weak decoding or `parseutil.ParseDurationSecond`. These functions accept the
//! same shapes so that requests which work against Vault work here.

use mayfly_sdk::duration::parse_duration;
use serde_json::Value;

const SECONDS_PER_DAY: i64 = 86_400;

/// A duration in whole seconds, possibly negative, as `parseutil.ParseDurationSecond` reads it:
/// a JSON integer, an integer string, `"<n>d"`, or a Go duration such as `"1h30m"` or `"-5s"`.
/// `null` and `""` mean zero.
pub(crate) fn duration_seconds(value: &Value) -> Result<i64, String> {
    match value {
        Value::Null => Ok(0),
        Value::Number(number) => number
            .as_i64()
            .ok_or_else(|| format!("cannot parse {number} as a duration: missing unit")),
        Value::String(text) => duration_text_seconds(text),
        other => Err(format!(
            "could not parse duration from input of type {}",
            json_type(other)
        )),
    }
}

fn duration_text_seconds(text: &str) -> Result<i64, String> {
    if text.is_empty() {
        return Ok(0);
    }
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    if let Some(days) = text.strip_suffix('d') {
        return days
            .parse::<i64>()
            .ok()
            .and_then(|days| days.checked_mul(SECONDS_PER_DAY))
            .ok_or_else(|| format!("cannot parse {text:?} as a number of days"));
    }
    // The sdk parser refuses signs because configuration never needs them; Vault's signed
    // duration fields do, so the sign is handled here.
    let (negative, magnitude) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let parsed =
        parse_duration(magnitude).map_err(|err| format!("cannot parse {text:?}: {err}"))?;
    let seconds = i64::try_from(parsed.as_secs()).map_err(|_| "duration is out of range")?;
    Ok(if negative { -seconds } else { seconds })
}

/// An integer as Go's weak decoding reads it (`cas`): integers, integer strings in any Go base
/// prefix, booleans as 0/1, and `null` or `""` as 0. Fractions are refused.
pub(crate) fn weak_int(value: &Value) -> Result<i64, String> {
    match value {
        Value::Null => Ok(0),
        Value::Bool(flag) => Ok(i64::from(*flag)),
        Value::Number(number) => number
            .as_i64()
            .ok_or_else(|| format!("cannot parse {number} as an integer")),
        Value::String(text) if text.is_empty() => Ok(0),
        Value::String(text) => {
            go_int(text).ok_or_else(|| format!("cannot parse {text:?} as an integer"))
        }
        other => Err(format!("cannot parse {} as an integer", json_type(other))),
    }
}

/// Go's `strconv.ParseInt(text, 0, 64)`: an optional sign, then decimal or a `0x`/`0o`/`0b`/`0`
/// prefixed literal.
fn go_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if let Some(hex) = lower.strip_prefix("0x") {
        (16, hex)
    } else if let Some(octal) = lower.strip_prefix("0o") {
        (8, octal)
    } else if let Some(binary) = lower.strip_prefix("0b") {
        (2, binary)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if body.is_empty() || body.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = i128::from_str_radix(body, radix).ok()?;
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// A list of integers as Vault's comma-int-slice fields read it (`versions`): a JSON list of
/// integers or integer strings, a comma-separated string, or a single integer.
pub(crate) fn int_list(value: &Value) -> Result<Vec<i64>, String> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(weak_int).collect(),
        Value::String(text) if text.is_empty() => Ok(Vec::new()),
        Value::String(text) => text
            .split(',')
            .map(|part| weak_int(&Value::String(part.to_owned())))
            .collect(),
        Value::Number(_) | Value::Bool(_) => weak_int(value).map(|number| vec![number]),
        Value::Object(_) => Err("expected a list of integers".to_owned()),
    }
}

/// A string as Go's weak decoding reads it (`custom_metadata` values): numbers as written,
/// booleans as `1`/`0`, `null` as the empty string. Lists and objects are refused.
pub(crate) fn weak_string(value: &Value) -> Result<String, String> {
    match value {
        Value::Null => Ok(String::new()),
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(if *flag { "1" } else { "0" }.to_owned()),
        Value::Array(_) => {
            Err("'' expected type 'string', got unconvertible type '[]interface {}'".to_owned())
        }
        Value::Object(_) => Err(
            "'' expected type 'string', got unconvertible type 'map[string]interface {}'"
                .to_owned(),
        ),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_read_like_parseutil() {
        let cases = [
            (json!(90), Ok(90)),
            (json!("90"), Ok(90)),
            (json!("1d"), Ok(86_400)),
            (json!("-5"), Ok(-5)),
            (json!("-1s"), Ok(-1)),
            (json!("1.5h"), Ok(5400)),
            (json!("1h30m"), Ok(5400)),
            (json!(""), Ok(0)),
            (json!(null), Ok(0)),
        ];
        for (input, want) in cases {
            assert_eq!(duration_seconds(&input), want, "{input}");
        }
        for bad in [
            json!(1.7),
            json!("xyz"),
            json!(true),
            json!("1.5"),
            json!("xd"),
        ] {
            assert!(duration_seconds(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn weak_ints_and_lists() {
        let cases = [
            (json!(3), Some(3)),
            (json!("3"), Some(3)),
            (json!("0x10"), Some(16)),
            (json!("-1"), Some(-1)),
            (json!(true), Some(1)),
            (json!(null), Some(0)),
            (json!(""), Some(0)),
            (json!(1.5), None),
            (json!("x"), None),
            (json!("2.0"), None),
            (json!([1]), None),
        ];
        for (input, want) in cases {
            assert_eq!(weak_int(&input).ok(), want, "{input}");
        }
        assert_eq!(int_list(&json!([1, "2"])), Ok(vec![1, 2]));
        assert_eq!(int_list(&json!("1,3")), Ok(vec![1, 3]));
        assert_eq!(int_list(&json!(4)), Ok(vec![4]));
        assert_eq!(int_list(&json!(null)), Ok(vec![]));
        assert!(int_list(&json!("1,x")).is_err());
        assert!(int_list(&json!([1.5])).is_err());
    }

    #[test]
    fn weak_strings() {
        assert_eq!(weak_string(&json!(5)).as_deref(), Ok("5"));
        assert_eq!(weak_string(&json!(true)).as_deref(), Ok("1"));
        assert_eq!(weak_string(&json!(null)).as_deref(), Ok(""));
        assert!(weak_string(&json!({"a": 1})).is_err());
    }
}
