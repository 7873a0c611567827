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
            out.push_str(&yaml_scalar(other));
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
                        out.push_str(&yaml_scalar(scalar));
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
                    out.push_str(&yaml_scalar(item));
                    out.push('\n');
                }
            }
        }
        scalar => {
            out.push_str(&pad);
            out.push_str(&yaml_scalar(scalar));
            out.push('\n');
        }
    }
}

fn yaml_scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => yaml_string(s),
        Value::Array(_) => "[]".to_string(),
        Value::Object(_) => "{}".to_string(),
    }
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
    // Anything that starts like a number (including dates and versions
    // such as 1.2.3) is quoted rather than risk a numeric reading.
    let mut chars = s.chars();
    let lead = if matches!(first, '+' | '.') {
        chars.nth(1)
    } else {
        Some(first)
    };
    !matches!(lead, Some(c) if c.is_ascii_digit() || c == '.')
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
        assert_eq!(yaml(&json!("1.2.3")), "\"1.2.3\"\n");
        assert_eq!(yaml(&json!("a: b")), "\"a: b\"\n");
        assert_eq!(yaml(&json!("- x")), "\"- x\"\n");
        assert_eq!(yaml(&json!("line1\nline2")), "\"line1\\nline2\"\n");
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
