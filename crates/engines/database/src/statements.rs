//! Role statements: how one configured string becomes the queries a plugin runs, and the
//! `{{name}}`-style substitutions.
//!
//! Each configured statement may be base64, a JSON array of strings, or SQL with several
//! `;`-separated queries (Vault's `ParseArbitraryStringSlice`). Splitting respects quoted
//! strings, quoted identifiers and PostgreSQL dollar-quoted bodies, so a `DO $$ … $$` block or
//! a function body stays whole. Substitution happens after splitting, so a `;` inside a
//! generated password can never split a query.

use base64::Engine;

/// Which quoting rules apply when splitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    MySql,
}

/// The individual queries of a list of configured statements, in order, without empty ones.
pub fn expand(statements: &[String], dialect: Dialect) -> Vec<String> {
    let mut queries = Vec::new();
    for statement in statements {
        let decoded = decode_base64(statement);
        let text = decoded.as_deref().unwrap_or(statement);
        // Only a JSON array can be one; SQL never starts with `[`.
        let items = text
            .trim()
            .starts_with('[')
            .then(|| serde_json::from_str::<Vec<String>>(text.trim()).ok())
            .flatten();
        match items {
            Some(items) => {
                for item in items {
                    queries.extend(split(&item, dialect));
                }
            }
            None => queries.extend(split(text, dialect)),
        }
    }
    queries
}

fn decode_base64(text: &str) -> Option<String> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.contains(char::is_whitespace) {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(trimmed)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// Splits on `;` outside quotes and dollar-quoted bodies; trims and drops empty pieces.
pub fn split(text: &str, dialect: Dialect) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                current.push(c);
                // Doubled quotes escape themselves in SQL; MySQL also allows backslashes.
                while let Some((_, inner)) = chars.next() {
                    current.push(inner);
                    if inner == '\\' && dialect == Dialect::MySql && c != '`' {
                        if let Some((_, escaped)) = chars.next() {
                            current.push(escaped);
                        }
                    } else if inner == c {
                        if chars.peek().map(|(_, next)| *next) == Some(c) {
                            let (_, doubled) = chars.next().unwrap_or((0, c));
                            current.push(doubled);
                        } else {
                            break;
                        }
                    }
                }
            }
            '$' if dialect == Dialect::Postgres => {
                match dollar_tag(&text[at..]) {
                    Some(tag) => {
                        // Copy through the closing tag, or to the end if it never closes.
                        let body_start = at + tag.len();
                        let end = text[body_start..]
                            .find(&tag)
                            .map(|i| body_start + i + tag.len())
                            .unwrap_or(text.len());
                        current.push_str(&text[at..end]);
                        while chars.peek().is_some_and(|(i, _)| *i < end) {
                            chars.next();
                        }
                    }
                    None => current.push(c),
                }
            }
            '-' if chars.peek().map(|(_, n)| *n) == Some('-') => {
                // A line comment may contain quotes or semicolons; keep it verbatim.
                current.push(c);
                for (_, inner) in chars.by_ref() {
                    current.push(inner);
                    if inner == '\n' {
                        break;
                    }
                }
            }
            ';' => {
                push_trimmed(&mut out, &current);
                current.clear();
            }
            _ => current.push(c),
        }
    }
    push_trimmed(&mut out, &current);
    out
}

fn push_trimmed(out: &mut Vec<String>, piece: &str) {
    let trimmed = piece.trim();
    if !trimmed.is_empty() {
        out.push(trimmed.to_owned());
    }
}

/// `$$` or `$tag$` at the start of `text`, if it opens a dollar-quoted string.
fn dollar_tag(text: &str) -> Option<String> {
    let rest = text.strip_prefix('$')?;
    let end = rest.find('$')?;
    let tag = &rest[..end];
    let valid = tag
        .chars()
        .enumerate()
        .all(|(i, c)| c == '_' || c.is_alphabetic() || (i > 0 && c.is_ascii_digit()));
    valid.then(|| format!("${tag}$"))
}

/// Refuses a value that could end the quoting it is placed in: a generated username or
/// password goes inside `"…"`, `'…'` or backticks in configured statements, so a quote, a
/// backslash (an escape in MySQL strings) or a control character could turn it into SQL.
/// The value itself is never put in the error: it may be a password.
pub fn check_substitution(what: &str, value: &str) -> Result<(), String> {
    match value
        .chars()
        .find(|c| matches!(c, '\'' | '"' | '`' | '\\') || c.is_control())
    {
        Some(c) => Err(format!(
            "the {what} contains {}, which cannot be placed in a statement safely",
            if c.is_control() {
                "a control character".to_owned()
            } else {
                format!("{c:?}")
            }
        )),
        None => Ok(()),
    }
}

/// Replaces `{{key}}` with each value (Vault's `QueryHelper`).
pub fn render(query: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(query.len() + 64);
    let mut rest = query;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let known = after.find("}}").and_then(|close| {
            let key = &after[..close];
            vars.iter()
                .find(|(name, _)| *name == key)
                .map(|(_, value)| (*value, close))
        });
        match known {
            Some((value, close)) => {
                out.push_str(value);
                rest = &after[close + 2..];
            }
            None => {
                out.push('{');
                rest = &rest[open + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The queries of configured statements with `vars` substituted: [`expand`], then [`render`].
pub fn render_all(statements: &[String], dialect: Dialect, vars: &[(&str, &str)]) -> Vec<String> {
    expand(statements, dialect)
        .iter()
        .map(|query| render(query, vars))
        .collect()
}

/// Coerces a statements field from a request: a string is one statement (an empty string is
/// none), a list is several. Vault's `TypeStringSlice` does the same.
pub fn from_value(value: &serde_json::Value) -> Option<Vec<String>> {
    match value {
        serde_json::Value::Null => Some(Vec::new()),
        serde_json::Value::String(text) if text.trim().is_empty() => Some(Vec::new()),
        serde_json::Value::String(text) => Some(vec![text.trim().to_owned()]),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|item| match item {
                serde_json::Value::String(text) => Some(text.trim().to_owned()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(|items| items.into_iter().filter(|s| !s.is_empty()).collect()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_vaults_classic_statement() {
        let queries = expand(
            &[
                "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL \
               '{{expiration}}'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\";"
                    .to_owned(),
            ],
            Dialect::Postgres,
        );
        assert_eq!(queries.len(), 2);
        assert!(queries[1].starts_with("GRANT SELECT"));
    }

    #[test]
    fn quotes_and_dollar_bodies_stay_whole() {
        let text = "DO $body$ BEGIN PERFORM 1; END $body$; SELECT 'a;b', \"c;d\"; \
                    SELECT $$x;y$$; SELECT 'it''s;'";
        assert_eq!(
            split(text, Dialect::Postgres),
            [
                "DO $body$ BEGIN PERFORM 1; END $body$",
                "SELECT 'a;b', \"c;d\"",
                "SELECT $$x;y$$",
                "SELECT 'it''s;'"
            ]
        );
        assert_eq!(
            split(r"SELECT 'a\';b'; SELECT 2 -- no; split", Dialect::MySql),
            [r"SELECT 'a\';b'", "SELECT 2 -- no; split"]
        );
    }

    #[test]
    fn json_and_base64_forms() {
        let json = r#"["CREATE USER a; GRANT x", "SELECT 1"]"#.to_owned();
        assert_eq!(
            expand(&[json], Dialect::MySql),
            ["CREATE USER a", "GRANT x", "SELECT 1"]
        );
        let encoded = base64::engine::general_purpose::STANDARD.encode("SELECT 1; SELECT 2");
        assert_eq!(expand(&[encoded], Dialect::MySql), ["SELECT 1", "SELECT 2"]);
    }

    #[test]
    fn substitution_happens_per_query() {
        let query = render(
            "CREATE USER '{{name}}' IDENTIFIED BY '{{password}}' -- {{username}}",
            &[("name", "v-x"), ("username", "v-x"), ("password", "p;w")],
        );
        assert_eq!(query, "CREATE USER 'v-x' IDENTIFIED BY 'p;w' -- v-x");
        // Substituted values are never scanned again, unknown names stay, and stray braces
        // are kept around a known name.
        let vars = [("name", "{{password}}"), ("password", "secret")];
        assert_eq!(render("{{name}}", &vars), "{{password}}");
        assert_eq!(render("{{other}} {{name", &vars), "{{other}} {{name");
        assert_eq!(render("{{{password}}}", &vars), "{secret}");
        assert_eq!(render("é{{password}}é", &vars), "ésecreté");
    }

    #[test]
    fn request_values() {
        use serde_json::json;
        assert_eq!(from_value(&json!("a; b")), Some(vec!["a; b".to_owned()]));
        assert_eq!(from_value(&json!("")), Some(vec![]));
        assert_eq!(
            from_value(&json!(["a", " b "])),
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(from_value(&json!({"x": 1})), None);
    }
}
