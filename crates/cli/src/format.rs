//! Output rendering: Vault-style aligned tables, Go `fmt`-style value text,
//! Go duration strings, pretty JSON and a small YAML emitter. Scripts parse
//! these outputs, so everything here is deterministic.

use serde_json::Value;

/// The `-format` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

impl Format {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "table" => Some(Format::Table),
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }
}

/// Space between columns.
const GLUE: &str = "    ";
/// Shown for empty cells so a column never looks shifted.
const EMPTY: &str = "n/a";
/// Where prose is wrapped.
const LINE_WIDTH: usize = 78;

/// Aligns rows into columns: every column but the last is padded to its
/// widest cell, then followed by four spaces. Cells are trimmed and empty
/// cells read `n/a`. No trailing newline.
pub fn columns(rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| {
                    let cell = cell.trim();
                    if cell.is_empty() {
                        EMPTY.to_string()
                    } else {
                        cell.to_string()
                    }
                })
                .collect()
        })
        .collect();
    let count = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; count];
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut lines = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[i] - cell.chars().count();
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(GLUE);
            }
        }
        lines.push(line);
    }
    lines.join("\n")
}

/// Like [`columns`], with a header row and a rule of dashes under each
/// header cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut all = Vec::with_capacity(rows.len() + 2);
    all.push(header.iter().map(|h| h.to_string()).collect());
    all.push(
        header
            .iter()
            .map(|h| "-".repeat(h.chars().count()))
            .collect(),
    );
    all.extend(rows.iter().cloned());
    columns(&all)
}

/// A `Key`/`Value` table of pairs, in the given order.
pub fn key_value_table(rows: &[(String, String)]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(k, v)| vec![k.clone(), v.clone()])
        .collect();
    table(&["Key", "Value"], &rows)
}

/// Pairs aligned in two columns without a header.
pub fn pairs(rows: &[(String, String)]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(k, v)| vec![k.clone(), v.clone()])
        .collect();
    columns(&rows)
}

/// Renders a JSON value the way Go's `%v` renders the equivalent decoded
/// value: strings raw, `[a b]` for lists, `map[k:v]` with sorted keys,
/// `<nil>` for null.
pub fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_value).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", k, go_value(&map[k.as_str()])))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
    }
}

/// Renders a list of strings the way Go's `%q` renders a `[]string`:
/// `["a" "b"]`. Non-list values render as an empty list.
pub fn go_quoted_list(v: &Value) -> String {
    let items: Vec<String> = match v {
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => go_quote(s),
                other => go_quote(&go_value(other)),
            })
            .collect(),
        _ => Vec::new(),
    };
    format!("[{}]", items.join(" "))
}

/// A double-quoted string with Go-style escapes.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whole seconds as Go's `time.Duration` string: `0s`, `45s`, `1m0s`,
/// `768h0m0s`.
pub fn go_duration(seconds: i64) -> String {
    if seconds == 0 {
        return "0s".to_string();
    }
    let sign = if seconds < 0 { "-" } else { "" };
    let total = seconds.unsigned_abs();
    let (h, m, s) = (total / 3600, (total / 60) % 60, total % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{sign}{m}m{s}s")
    } else {
        format!("{sign}{s}s")
    }
}

/// Whole seconds the way the Vault CLI shows TTLs: Go's duration text
/// without the noise zeros, so `1h`, `768h`, `1h30m`, `5m`, `45s`.
pub fn human_duration(seconds: i64) -> String {
    let mut s = go_duration(seconds);
    if s.ends_with("m0s") {
        s.truncate(s.len() - 2);
    }
    if let Some(idx) = s.find("h0m").filter(|&i| i > 0) {
        s.replace_range(idx + 1..idx + 3, "");
    }
    s
}

/// An RFC 3339 timestamp as Go's `time.Time.String()` prints it:
/// `2024-01-02 03:04:05.123456789 +0000 UTC`. Anything unparsable is
/// returned unchanged.
pub fn go_time(timestamp: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    let Ok(t) = time::OffsetDateTime::parse(timestamp, &Rfc3339) else {
        return timestamp.to_string();
    };
    let mut out = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if t.nanosecond() > 0 {
        let frac = format!("{:09}", t.nanosecond());
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    let offset = t.offset().whole_seconds();
    let sign = if offset < 0 { '-' } else { '+' };
    let zone = format!(
        "{sign}{:02}{:02}",
        offset.unsigned_abs() / 3600,
        (offset.unsigned_abs() / 60) % 60
    );
    // Go names the zone UTC only for UTC; a parsed fixed offset has no
    // name, so the offset is printed twice.
    let name = if offset == 0 {
        "UTC".to_string()
    } else {
        zone.clone()
    };
    format!("{out} {zone} {name}")
}

/// Pretty JSON with two-space indentation.
pub fn json(v: &Value) -> String {
    // Serializing a `Value` cannot fail: its keys are always strings.
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// `value` rendered for `-format=json` or `-format=yaml`; tables have no
/// generic rendering, so they fall back to JSON.
pub fn data(format: Format, v: &Value) -> String {
    match format {
        Format::Yaml => yaml(v),
        Format::Json | Format::Table => json(v),
    }
}

/// Greedy word wrap for prose paragraphs.
pub fn wrap(text: &str) -> String {
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        for word in paragraph.split(' ').filter(|w| !w.is_empty()) {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > LINE_WIDTH {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines.join("\n")
}

/// YAML for a JSON value in block style, keys sorted and sequences not
/// indented under their key, which is how Vault's YAML output looks. Ends
/// with a newline.
pub fn yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => yaml_block(v, 0, &mut out),
        Value::Array(a) if !a.is_empty() => yaml_block(v, 0, &mut out),
        other => {
            out.push_str(&yaml_scalar(other, 2));
            out.push('\n');
        }
    }
    out
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    }
}

fn yaml_block(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for key in keys {
                let child = &map[key.as_str()];
                out.push_str(&pad);
                out.push_str(&yaml_string(key));
                out.push(':');
                match child {
                    Value::Object(_) if is_block(child) => {
                        out.push('\n');
                        yaml_block(child, indent + 2, out);
                    }
                    Value::Array(_) if is_block(child) => {
                        out.push('\n');
                        yaml_block(child, indent, out);
                    }
                    scalar => {
                        out.push(' ');
                        out.push_str(&yaml_scalar(scalar, indent + 2));
                        out.push('\n');
                    }
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                out.push_str(&pad);
                out.push_str("- ");
                if is_block(item) {
                    // The first line of a nested block shares the line with
                    // the dash, so render it indented and drop that indent.
                    let mut nested = String::new();
                    yaml_block(item, indent + 2, &mut nested);
                    out.push_str(&nested[indent + 2..]);
                } else {
                    out.push_str(&yaml_scalar(item, indent + 2));
                    out.push('\n');
                }
            }
        }
        scalar => {
            out.push_str(&pad);
            out.push_str(&yaml_scalar(scalar, indent + 2));
            out.push('\n');
        }
    }
}

/// A scalar; multi-line strings become literal blocks whose lines are
/// indented by `content_indent`.
fn yaml_scalar(v: &Value, content_indent: usize) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if literal_ok(s) => yaml_literal(s, content_indent),
        Value::String(s) => yaml_string(s),
        Value::Array(_) => "[]".to_string(),
        Value::Object(_) => "{}".to_string(),
    }
}

/// Whether a string can be written as a literal block (`|`), which is
/// how Go's YAML encoder writes multi-line text such as policies: it must
/// span lines and hold nothing a block cannot carry verbatim.
fn literal_ok(s: &str) -> bool {
    s.contains('\n')
        && !s.ends_with(' ')
        && !s.contains(" \n")
        && !s
            .chars()
            .any(|c| (c.is_control() && c != '\n') || c == '\u{feff}')
}

/// A literal block: `|` keeps one final newline, `|-` strips a missing
/// one, `|+` keeps several. Text starting with a space or an empty line
/// needs the indentation spelled out (`|2`), since it cannot be inferred.
fn yaml_literal(s: &str, content_indent: usize) -> String {
    let (chomp, body) = if s.ends_with("\n\n") {
        ("+", &s[..s.len() - 1])
    } else if let Some(body) = s.strip_suffix('\n') {
        ("", body)
    } else {
        ("-", s)
    };
    let hint = if s.starts_with([' ', '\n']) { "2" } else { "" };
    let pad = " ".repeat(content_indent);
    let mut out = format!("|{hint}{chomp}");
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
    }
    out
}

/// A string plain when YAML would read it back unchanged as a string,
/// double-quoted otherwise.
fn yaml_string(s: &str) -> String {
    if yaml_plain_ok(s) {
        s.to_string()
    } else {
        yaml_quote(s)
    }
}

fn yaml_plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if first.is_whitespace() || s.ends_with(char::is_whitespace) {
        return false;
    }
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return false;
    }
    if s.chars().any(|c| c.is_control() || c == '\u{feff}') {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    const RESERVED: &[&str] = &[
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", ".inf", ".nan",
    ];
    if RESERVED.contains(&lower.as_str()) {
        return false;
    }
    // Quoted exactly when YAML 1.1 would read a number or a timestamp,
    // which is when Go's YAML encoder (and so Vault) quotes.
    !(matches!(first, '+' | '-' | '.' | '0'..='9') && yaml_non_string(s))
}

/// Whether a plain scalar starting like a number would resolve to an
/// int, float, sexagesimal number or timestamp.
fn yaml_non_string(s: &str) -> bool {
    let plain = s.replace('_', "");
    go_int(&plain) || plain.parse::<f64>().is_ok() || yaml_timestamp(s) || base60(s)
}

/// Go's `strconv.ParseInt(s, 0, 64)` syntax: sign, then decimal, `0x`,
/// `0o`, `0b` or leading-zero octal digits.
fn go_int(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (body, radix) = match digits.get(..2).map(str::to_ascii_lowercase).as_deref() {
        Some("0x") => (&digits[2..], 16),
        Some("0o") => (&digits[2..], 8),
        Some("0b") => (&digits[2..], 2),
        _ if digits.len() > 1 && digits.starts_with('0') => (&digits[1..], 8),
        _ => (digits, 10),
    };
    !body.is_empty() && body.chars().all(|c| c.is_digit(radix))
}

/// `YYYY-M-D`, optionally followed by a time, as YAML 1.1 timestamps go.
fn yaml_timestamp(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes.len() < 8 || !bytes[..4].iter().all(u8::is_ascii_digit) || bytes[4] != b'-' {
        return false;
    }
    let rest = &s[5..];
    let date_end = rest.find(['T', 't', ' ']).unwrap_or(rest.len());
    let mut parts = rest[..date_end].split('-');
    let valid = |p: Option<&str>| {
        p.is_some_and(|p| (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    };
    if !(valid(parts.next()) && valid(parts.next()) && parts.next().is_none()) {
        return false;
    }
    let time = &rest[date_end..];
    time.is_empty() || time[1..].contains(':')
}

/// YAML 1.1 sexagesimal numbers such as `1:20` or `-3:25:45.5`.
fn base60(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    let mut groups = whole.split(':');
    let first_ok = groups.next().is_some_and(|g| {
        g.starts_with(|c: char| c.is_ascii_digit())
            && g.chars().all(|c| c.is_ascii_digit() || c == '_')
    });
    let mut rest_count = 0;
    let rest_ok = groups.all(|g| {
        rest_count += 1;
        let digits_ok = (1..=2).contains(&g.len()) && g.bytes().all(|b| b.is_ascii_digit());
        let leading_ok = g.len() < 2 || g.as_bytes()[0] <= b'5';
        digits_ok && leading_ok
    });
    first_ok
        && rest_count > 0
        && rest_ok
        && fraction.chars().all(|c| c.is_ascii_digit() || c == '_')
}

fn yaml_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() || c == '\u{feff}' => {
                let code = c as u32;
                if code <= 0xff {
                    out.push_str(&format!("\\x{code:02x}"));
                } else {
                    out.push_str(&format!("\\u{code:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_value_table_aligns_values() {
        let rows = vec![
            ("Seal Type".to_string(), "shamir".to_string()),
            ("Sealed".to_string(), "false".to_string()),
            ("Unseal Nonce".to_string(), String::new()),
        ];
        assert_eq!(
            key_value_table(&rows),
            "Key             Value\n\
             ---             -----\n\
             Seal Type       shamir\n\
             Sealed          false\n\
             Unseal Nonce    n/a"
        );
    }

    #[test]
    fn short_keys_still_pad_to_header() {
        let rows = vec![("a".to_string(), "1".to_string())];
        assert_eq!(
            key_value_table(&rows),
            "Key    Value\n---    -----\na      1"
        );
    }

    #[test]
    fn single_column_table() {
        let rows = vec![vec!["foo".to_string()], vec!["bar/".to_string()]];
        assert_eq!(table(&["Keys"], &rows), "Keys\n----\nfoo\nbar/");
    }

    #[test]
    fn pairs_without_header() {
        let rows = vec![
            ("Key Term".to_string(), "1".to_string()),
            ("Encryption Count".to_string(), "12".to_string()),
        ];
        assert_eq!(
            pairs(&rows),
            "Key Term            1\nEncryption Count    12"
        );
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let rows = vec![
            vec!["ключ".to_string(), "x".to_string()],
            vec!["k".to_string(), "y".to_string()],
        ];
        assert_eq!(columns(&rows), "ключ    x\nk       y");
    }

    #[test]
    fn go_values() {
        assert_eq!(go_value(&json!("raw text")), "raw text");
        assert_eq!(go_value(&json!(42)), "42");
        assert_eq!(go_value(&json!(1.5)), "1.5");
        assert_eq!(go_value(&json!(true)), "true");
        assert_eq!(go_value(&json!(null)), "<nil>");
        assert_eq!(go_value(&json!(["a", "b", 3])), "[a b 3]");
        assert_eq!(go_value(&json!([])), "[]");
        assert_eq!(go_value(&json!({"z": 1, "a": "x"})), "map[a:x z:1]");
        assert_eq!(
            go_value(&json!({"l": [1, {"k": null}]})),
            "map[l:[1 map[k:<nil>]]]"
        );
    }

    #[test]
    fn go_quoting() {
        assert_eq!(
            go_quoted_list(&json!(["default", "root"])),
            r#"["default" "root"]"#
        );
        assert_eq!(go_quoted_list(&json!(null)), "[]");
        assert_eq!(go_quote("a\"b\\c\n"), r#""a\"b\\c\n""#);
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(45), "45s");
        assert_eq!(go_duration(60), "1m0s");
        assert_eq!(go_duration(3601), "1h0m1s");
        assert_eq!(go_duration(2_764_800), "768h0m0s");
        assert_eq!(go_duration(-90), "-1m30s");
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(3600), "1h");
        assert_eq!(human_duration(2_764_800), "768h");
        assert_eq!(human_duration(5400), "1h30m");
        assert_eq!(human_duration(3601), "1h1s");
        assert_eq!(human_duration(300), "5m");
        assert_eq!(human_duration(7199), "1h59m59s");
        assert_eq!(human_duration(45), "45s");
    }

    #[test]
    fn go_times() {
        assert_eq!(
            go_time("2024-01-02T03:04:05.123456789Z"),
            "2024-01-02 03:04:05.123456789 +0000 UTC"
        );
        assert_eq!(
            go_time("2024-01-02T03:04:05Z"),
            "2024-01-02 03:04:05 +0000 UTC"
        );
        assert_eq!(
            go_time("2024-01-02T03:04:05.5+01:30"),
            "2024-01-02 03:04:05.5 +0130 +0130"
        );
        assert_eq!(go_time("garbage"), "garbage");
    }

    #[test]
    fn format_names() {
        assert_eq!(Format::parse("JSON"), Some(Format::Json));
        assert_eq!(Format::parse("yaml"), Some(Format::Yaml));
        assert_eq!(Format::parse("table"), Some(Format::Table));
        assert_eq!(Format::parse("xml"), None);
    }

    #[test]
    fn json_is_two_space_indented() {
        assert_eq!(json(&json!({"a": [1]})), "{\n  \"a\": [\n    1\n  ]\n}");
    }

    #[test]
    fn yaml_scalars_and_quoting() {
        assert_eq!(yaml(&json!("plain")), "plain\n");
        assert_eq!(yaml(&json!("")), "\"\"\n");
        assert_eq!(yaml(&json!("true")), "\"true\"\n");
        assert_eq!(yaml(&json!("123")), "\"123\"\n");
        assert_eq!(yaml(&json!("1.2.3")), "1.2.3\n");
        for quoted in [
            "0x1F",
            "2024-01-02",
            "2024-01-02T03:04:05Z",
            "1:20",
            "1e3",
            "007",
            "1_000",
            ".5",
            "-3",
            "+1",
            "0o17",
            "0b101",
            "1.",
        ] {
            assert_eq!(yaml(&json!(quoted)), format!("\"{quoted}\"\n"), "{quoted}");
        }
        for plain in ["1h", "12abc", "25301fa1-ac64-4d0e", "nan", "1.2.3", "v1.2"] {
            assert_eq!(yaml(&json!(plain)), format!("{plain}\n"), "{plain}");
        }
        assert_eq!(yaml(&json!("a: b")), "\"a: b\"\n");
        assert_eq!(yaml(&json!("- x")), "\"- x\"\n");
        assert_eq!(yaml(&json!("line1\nline2")), "|-\n  line1\n  line2\n");
        assert_eq!(
            yaml(&json!({"policy": "path \"a\" {\n}\n", "l": ["x\n\ny\n\n"]})),
            "l:\n- |+\n  x\n\n  y\n\npolicy: |\n  path \"a\" {\n  }\n"
        );
        assert_eq!(yaml(&json!("tab\there\n")), "\"tab\\there\\n\"\n");
        assert_eq!(yaml(&json!({"p": "\n# c\n"})), "p: |2\n\n  # c\n");
        assert_eq!(yaml(&json!("trailing \nspace")), "\"trailing \\nspace\"\n");
        assert_eq!(yaml(&json!("hvs.abc")), "hvs.abc\n");
        assert_eq!(yaml(&json!(null)), "null\n");
        assert_eq!(yaml(&json!(7)), "7\n");
        assert_eq!(yaml(&json!({})), "{}\n");
        assert_eq!(yaml(&json!([])), "[]\n");
    }

    #[test]
    fn yaml_nested_structures() {
        let v = json!({
            "zeta": 1,
            "alpha": {"inner": "x", "empty": {}, "list": []},
            "keys": ["a", "b"],
            "objs": [{"b": 2, "a": 1}, ["x", "y"], "s"],
        });
        let expected = "\
alpha:
  empty: {}
  inner: x
  list: []
keys:
- a
- b
objs:
- a: 1
  b: 2
- - x
  - \"y\"
- s
zeta: 1
";
        assert_eq!(yaml(&v), expected);
    }

    #[test]
    fn yaml_deeply_nested_map_in_list() {
        let v = json!({"outer": [{"m": {"k": "v"}, "l": [1]}]});
        let expected = "\
outer:
- l:
  - 1
  m:
    k: v
";
        assert_eq!(yaml(&v), expected);
    }

    #[test]
    fn wrapping() {
        let text = "word ".repeat(30);
        for line in wrap(&text).lines() {
            assert!(line.len() <= LINE_WIDTH);
        }
        assert_eq!(wrap("a b\n\nc"), "a b\n\nc");
    }
}
