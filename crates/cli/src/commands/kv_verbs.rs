//! The generic verbs `read`, `write`, `list` and `delete`, which work on any
//! API path, plus the `key=value` argument syntax they share.

use serde_json::{Map, Value};

use super::{
    EXIT_OK, EXIT_SERVER, EXIT_USAGE, Globals, Spec, api_error, arg_count_error, bool_field,
    int_field, parse, print_data, print_raw, print_warnings, str_field,
};
use crate::console::Console;
use crate::flags::FlagSet;
use crate::format::{self, Format};

pub const READ: Spec = Spec {
    help: "\
Usage: mayfly read [options] PATH [KEY=VALUE ...]

  Reads data from the server at PATH. KEY=VALUE pairs are sent as query
  parameters.

      $ mayfly read secret/my-secret
      $ mayfly read -field=password secret/my-secret",
};

pub const WRITE: Spec = Spec {
    help: "\
Usage: mayfly write [options] PATH [DATA KEY=VALUE...]

  Writes data to the server at PATH. KEY=@FILE takes the value from a file,
  KEY=- from standard input, and a lone - merges a JSON object read from
  standard input. A key given more than once becomes a list.

      $ mayfly write secret/my-secret foo=bar
      $ echo '{\"foo\":\"bar\"}' | mayfly write secret/my-secret -",
};

pub const LIST: Spec = Spec {
    help: "\
Usage: mayfly list [options] PATH

  Lists the keys under PATH.

      $ mayfly list secret/",
};

pub const DELETE: Spec = Spec {
    help: "\
Usage: mayfly delete [options] PATH [KEY=VALUE ...]

  Deletes the data at PATH. Deleting something that does not exist is not
  an error.

      $ mayfly delete secret/my-secret",
};

/// Leading and trailing slashes carry no meaning in an API path.
fn sanitize_path(path: &str) -> String {
    path.trim_matches('/').to_string()
}

pub async fn read(console: &mut Console, args: &[String]) -> i32 {
    let (parsed, globals) = match parse(console, &READ, FlagSet::new(), args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let Some((raw_path, rest)) = parsed.args.split_first() else {
        return arg_count_error(console, &READ, "1", 0);
    };
    let path = sanitize_path(raw_path);
    let query = match build_query(console, rest) {
        Ok(q) => q,
        Err(code) => return code,
    };
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client.request_optional("GET", &path, &query, None).await {
        Ok(Some(secret)) => output_secret(console, &globals, &secret),
        Ok(None) => {
            console.err(&format!("No value found at {path}"));
            EXIT_SERVER
        }
        Err(e) => api_error(console, &format!("Error reading {path}"), &e),
    }
}

pub async fn write(console: &mut Console, args: &[String]) -> i32 {
    let mut fs = FlagSet::new();
    fs.bool(
        "force",
        "Allow the operation to continue with no key=value pairs.",
    )
    .alias("f", "force");
    let (parsed, globals) = match parse(console, &WRITE, fs, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let Some((raw_path, rest)) = parsed.args.split_first() else {
        return arg_count_error(console, &WRITE, "1", 0);
    };
    let path = sanitize_path(raw_path);
    let data = match parse_kv(console, rest) {
        Ok(d) => d,
        Err(e) => {
            console.err(&format!("Failed to parse K=V data: {e}"));
            return EXIT_USAGE;
        }
    };
    if data.is_empty() && !parsed.bool("force") {
        console.err("Must supply data or use -force");
        return EXIT_USAGE;
    }
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let body = Value::Object(data);
    match client.request("PUT", &path, &[], Some(&body)).await {
        Ok(Some(secret)) if has_content(&secret) || globals.format != Format::Table => {
            output_secret(console, &globals, &secret)
        }
        Ok(_) => {
            if globals.format == Format::Table {
                console.out(&format!("Success! Data written to: {path}"));
            }
            EXIT_OK
        }
        Err(e) => api_error(console, &format!("Error writing data to {path}"), &e),
    }
}

pub async fn list(console: &mut Console, args: &[String]) -> i32 {
    let (parsed, globals) = match parse(console, &LIST, FlagSet::new(), args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if parsed.args.len() != 1 {
        return arg_count_error(console, &LIST, "1", parsed.args.len());
    }
    let path = format!("{}/", sanitize_path(&parsed.args[0]));
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let secret = match client.request_optional("LIST", &path, &[], None).await {
        Ok(s) => s,
        Err(e) => return api_error(console, &format!("Error listing {path}"), &e),
    };
    let keys = secret
        .as_ref()
        .and_then(|s| s.get("data"))
        .and_then(|d| d.get("keys"))
        .and_then(Value::as_array)
        .cloned();
    if globals.format != Format::Table {
        return match keys {
            Some(keys) => {
                print_data(console, globals.format, &Value::Array(keys));
                EXIT_OK
            }
            None => {
                print_data(console, globals.format, &Value::Object(Map::new()));
                EXIT_SERVER
            }
        };
    }
    let Some(secret) = secret.filter(|s| s.get("data").is_some_and(Value::is_object)) else {
        console.err(&format!("No value found at {path}"));
        return EXIT_SERVER;
    };
    let Some(keys) = keys else {
        console.err(&format!("No entries found at {path}"));
        return EXIT_SERVER;
    };
    print_warnings(console, &secret);
    let rows: Vec<Vec<String>> = keys.iter().map(|k| vec![format::go_value(k)]).collect();
    console.out(&format::table(&["Keys"], &rows));
    EXIT_OK
}

pub async fn delete(console: &mut Console, args: &[String]) -> i32 {
    let (parsed, globals) = match parse(console, &DELETE, FlagSet::new(), args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let Some((raw_path, rest)) = parsed.args.split_first() else {
        return arg_count_error(console, &DELETE, "1", 0);
    };
    let path = sanitize_path(raw_path);
    let query = match build_query(console, rest) {
        Ok(q) => q,
        Err(code) => return code,
    };
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client.request("DELETE", &path, &query, None).await {
        Ok(Some(secret)) if has_content(&secret) || globals.format != Format::Table => {
            output_secret(console, &globals, &secret)
        }
        Ok(_) => {
            if globals.format == Format::Table {
                console.out(&format!("Success! Data deleted (if it existed) at: {path}"));
            }
            EXIT_OK
        }
        Err(e) => api_error(console, &format!("Error deleting {path}"), &e),
    }
}

fn build_query(console: &mut Console, args: &[String]) -> Result<Vec<(String, String)>, i32> {
    let data = parse_kv(console, args).map_err(|e| {
        console.err(&format!("Failed to parse K=V data: {e}"));
        EXIT_USAGE
    })?;
    Ok(query_pairs(&data))
}

/// Query parameters from parsed `key=value` data, sorted by key; lists
/// become repeated parameters.
fn query_pairs(data: &Map<String, Value>) -> Vec<(String, String)> {
    let mut keys: Vec<&String> = data.keys().collect();
    keys.sort();
    let mut pairs = Vec::new();
    for key in keys {
        match &data[key.as_str()] {
            Value::Array(items) => {
                for item in items {
                    pairs.push((key.clone(), format::go_value(item)));
                }
            }
            other => pairs.push((key.clone(), format::go_value(other))),
        }
    }
    pairs
}

/// Parses `key=value` arguments. `key=@file` reads the value from a file,
/// `key=\@x` is the literal `@x`, `key=-` reads the value from standard
/// input, and a lone `-` merges a JSON object from standard input. A
/// repeated key collects its values into a list.
pub fn parse_kv(console: &mut Console, args: &[String]) -> Result<Map<String, Value>, String> {
    let mut result = Map::new();
    let mut stdin_used = false;
    let mut take_stdin = |console: &mut Console| -> Result<String, String> {
        if stdin_used {
            return Err("stdin already consumed".to_string());
        }
        stdin_used = true;
        console
            .read_stdin()
            .map_err(|e| format!("error reading stdin: {e}"))
    };
    for arg in args {
        if arg.is_empty() {
            continue;
        }
        let Some((key, raw)) = arg.split_once('=') else {
            if arg == "-" {
                let text = take_stdin(console)?;
                match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(map)) => {
                        for (k, v) in map {
                            insert(&mut result, k, v);
                        }
                    }
                    Ok(_) => return Err("stdin must contain a JSON object".to_string()),
                    Err(e) => return Err(format!("invalid JSON on stdin: {e}")),
                }
                continue;
            }
            return Err(format!("format must be key=value, got {arg:?}"));
        };
        let value = if let Some(file) = raw.strip_prefix('@') {
            std::fs::read_to_string(file).map_err(|e| format!("error reading file {file}: {e}"))?
        } else if let Some(literal) = raw.strip_prefix("\\@") {
            format!("@{literal}")
        } else if raw == "-" {
            take_stdin(console)?
        } else {
            raw.to_string()
        };
        insert(&mut result, key.to_string(), Value::String(value));
    }
    Ok(result)
}

fn insert(map: &mut Map<String, Value>, key: String, value: Value) {
    match map.get_mut(&key) {
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            map.insert(key, value);
        }
    }
}

/// Whether a response has anything the table output would show.
fn has_content(secret: &Value) -> bool {
    !secret_rows(secret).is_empty()
        || secret
            .get("warnings")
            .and_then(Value::as_array)
            .is_some_and(|w| !w.is_empty())
}

/// Prints a response envelope: a table of its lease, auth and data
/// fields, the whole envelope as json/yaml, or one field with `-field`.
pub fn output_secret(console: &mut Console, globals: &Globals, secret: &Value) -> i32 {
    if let Some(field) = &globals.field {
        return match raw_field(secret, field) {
            Some(v) => {
                match globals.format {
                    Format::Table => print_raw(console, &format::go_value(&v)),
                    other => print_data(console, other, &v),
                }
                EXIT_OK
            }
            None => {
                console.err(&format!("Field \"{field}\" not present in secret"));
                EXIT_USAGE
            }
        };
    }
    match globals.format {
        Format::Table => {
            print_warnings(console, secret);
            let rows = secret_rows(secret);
            if !rows.is_empty() {
                console.out(&format::key_value_table(&rows));
            }
        }
        other => print_data(console, other, secret),
    }
    EXIT_OK
}

fn object<'a>(secret: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    secret.get(key).and_then(Value::as_object)
}

/// Table rows in Vault's order: lease, auth, wrapping, then data keys
/// sorted.
fn secret_rows(secret: &Value) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = Vec::new();
    let lease_duration = int_field(secret, "lease_duration");
    if lease_duration > 0 {
        let lease_id = str_field(secret, "lease_id");
        if lease_id.is_empty() {
            // Plain key/value data has no lease, only a suggested refresh
            // interval.
            rows.push((
                "refresh_interval".into(),
                format::go_duration(lease_duration),
            ));
        } else {
            rows.push(("lease_id".into(), lease_id.into()));
            rows.push(("lease_duration".into(), format::go_duration(lease_duration)));
            rows.push((
                "lease_renewable".into(),
                bool_field(secret, "renewable").to_string(),
            ));
        }
    }
    if let Some(auth) = secret.get("auth").filter(|a| a.is_object()) {
        rows.push(("token".into(), str_field(auth, "client_token").into()));
        rows.push(("token_accessor".into(), str_field(auth, "accessor").into()));
        let duration = int_field(auth, "lease_duration");
        rows.push((
            "token_duration".into(),
            if duration == 0 {
                "∞".to_string()
            } else {
                format::go_duration(duration)
            },
        ));
        rows.push((
            "token_renewable".into(),
            bool_field(auth, "renewable").to_string(),
        ));
        for (row, key) in [
            ("token_policies", "token_policies"),
            ("identity_policies", "identity_policies"),
            ("policies", "policies"),
        ] {
            rows.push((
                row.into(),
                format::go_quoted_list(auth.get(key).unwrap_or(&Value::Null)),
            ));
        }
        if let Some(meta) = object(auth, "metadata") {
            let mut keys: Vec<&String> = meta.keys().collect();
            keys.sort();
            for k in keys {
                rows.push((
                    format!("token_meta_{k}"),
                    format::go_value(&meta[k.as_str()]),
                ));
            }
        }
    }
    if let Some(wrap) = secret.get("wrap_info").filter(|w| w.is_object()) {
        rows.push(("wrapping_token:".into(), str_field(wrap, "token").into()));
        rows.push((
            "wrapping_accessor:".into(),
            str_field(wrap, "accessor").into(),
        ));
        rows.push((
            "wrapping_token_ttl:".into(),
            format::go_duration(int_field(wrap, "ttl")),
        ));
        rows.push((
            "wrapping_token_creation_time:".into(),
            str_field(wrap, "creation_time").into(),
        ));
        rows.push((
            "wrapping_token_creation_path:".into(),
            str_field(wrap, "creation_path").into(),
        ));
        let wrapped = str_field(wrap, "wrapped_accessor");
        if !wrapped.is_empty() {
            rows.push(("wrapped_accessor:".into(), wrapped.into()));
        }
    }
    if let Some(data) = object(secret, "data") {
        let mut keys: Vec<&String> = data.keys().collect();
        keys.sort();
        for k in keys {
            rows.push((k.clone(), format::go_value(&data[k.as_str()])));
        }
    }
    rows
}

/// The value `-field=NAME` prints: envelope fields shadow data keys of the
/// same name, and a null value counts as absent.
fn raw_field(secret: &Value, field: &str) -> Option<Value> {
    let data = || object(secret, "data").and_then(|d| d.get(field)).cloned();
    let value = if let Some(auth) = secret.get("auth").filter(|a| a.is_object()) {
        match field {
            "token" => auth.get("client_token").cloned(),
            "token_accessor" => auth.get("accessor").cloned(),
            "token_duration" => auth.get("lease_duration").cloned(),
            "token_renewable" => auth.get("renewable").cloned(),
            "token_policies" | "identity_policies" | "policies" => Some(
                auth.get(field)
                    .filter(|v| !v.is_null())
                    .cloned()
                    .unwrap_or(Value::Array(Vec::new())),
            ),
            _ => data(),
        }
    } else if let Some(wrap) = secret.get("wrap_info").filter(|w| w.is_object()) {
        match field {
            "wrapping_token" => wrap.get("token").cloned(),
            "wrapping_accessor" => wrap.get("accessor").cloned(),
            "wrapping_token_ttl" => wrap.get("ttl").cloned(),
            "wrapping_token_creation_time" => wrap.get("creation_time").cloned(),
            "wrapping_token_creation_path" => wrap.get("creation_path").cloned(),
            "wrapped_accessor" => wrap.get("wrapped_accessor").cloned(),
            _ => data(),
        }
    } else {
        match field {
            "refresh_interval" | "lease_duration" => secret.get("lease_duration").cloned(),
            "lease_id" => secret.get("lease_id").cloned(),
            "lease_renewable" => secret.get("renewable").cloned(),
            "request_id" => secret.get("request_id").cloned(),
            "warnings" => secret.get("warnings").cloned(),
            _ => data(),
        }
    };
    value.filter(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn console(stdin: &str) -> Console {
        Console::captured(BTreeMap::new(), stdin.as_bytes().to_vec())
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn kv_pairs() {
        let mut c = console("");
        let data = parse_kv(&mut c, &args(&["a=1", "b=x=y", "c=", "", "lit=\\@home"])).unwrap();
        assert_eq!(
            Value::Object(data),
            json!({"a": "1", "b": "x=y", "c": "", "lit": "@home"})
        );
    }

    #[test]
    fn kv_repeated_keys_make_lists() {
        let mut c = console("");
        let data = parse_kv(&mut c, &args(&["k=1", "k=2", "k=3", "o=x"])).unwrap();
        assert_eq!(Value::Object(data), json!({"k": ["1", "2", "3"], "o": "x"}));
    }

    #[test]
    fn kv_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("value.txt");
        std::fs::write(&file, "from file\n").unwrap();
        let mut c = console("");
        let arg = format!("f=@{}", file.display());
        let data = parse_kv(&mut c, &[arg]).unwrap();
        assert_eq!(data["f"], json!("from file\n"));
        let missing = format!("f=@{}", dir.path().join("nope").display());
        assert!(parse_kv(&mut c, &[missing]).is_err());
    }

    #[test]
    fn kv_stdin() {
        let mut c = console("{\"a\": \"1\", \"n\": 2}");
        let data = parse_kv(&mut c, &args(&["-", "b=2"])).unwrap();
        assert_eq!(Value::Object(data), json!({"a": "1", "n": 2, "b": "2"}));

        let mut c = console("raw value");
        let data = parse_kv(&mut c, &args(&["v=-"])).unwrap();
        assert_eq!(data["v"], json!("raw value"));

        let mut c = console("x");
        assert!(parse_kv(&mut c, &args(&["v=-", "w=-"])).is_err());
        let mut c = console("[1]");
        assert!(parse_kv(&mut c, &args(&["-"])).is_err());
    }

    #[test]
    fn kv_rejects_bare_words() {
        let mut c = console("");
        assert!(parse_kv(&mut c, &args(&["novalue"])).is_err());
    }

    #[test]
    fn queries_are_sorted_and_repeated() {
        let mut c = console("");
        let data = parse_kv(&mut c, &args(&["z=1", "a=2", "a=3"])).unwrap();
        assert_eq!(
            query_pairs(&data),
            vec![
                ("a".to_string(), "2".to_string()),
                ("a".to_string(), "3".to_string()),
                ("z".to_string(), "1".to_string())
            ]
        );
    }

    #[test]
    fn kv_secret_table_rows() {
        let secret = json!({
            "request_id": "r", "lease_id": "", "lease_duration": 2764800, "renewable": false,
            "data": {"zeta": "z", "alpha": ["a", "b"], "m": {"k": 1}, "n": null},
            "warnings": null, "auth": null
        });
        assert_eq!(
            format::key_value_table(&secret_rows(&secret)),
            "\
Key                 Value
---                 -----
refresh_interval    768h0m0s
alpha               [a b]
m                   map[k:1]
n                   <nil>
zeta                z"
        );
    }

    #[test]
    fn leased_and_auth_rows() {
        let secret = json!({
            "lease_id": "db/creds/x/123", "lease_duration": 3600, "renewable": true,
            "data": null,
            "auth": {
                "client_token": "hvs.t", "accessor": "acc", "lease_duration": 0,
                "renewable": false, "token_policies": ["root"], "policies": ["root"],
                "metadata": {"user": "bob"}
            }
        });
        let rows = secret_rows(&secret);
        let keys: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "lease_id",
                "lease_duration",
                "lease_renewable",
                "token",
                "token_accessor",
                "token_duration",
                "token_renewable",
                "token_policies",
                "identity_policies",
                "policies",
                "token_meta_user"
            ]
        );
        assert_eq!(rows[1].1, "1h0m0s");
        assert_eq!(rows[5].1, "∞");
        assert_eq!(rows[7].1, "[\"root\"]");
        assert_eq!(rows[8].1, "[]");
    }

    #[test]
    fn field_lookup() {
        let secret = json!({
            "request_id": "r", "lease_id": "", "lease_duration": 60, "renewable": false,
            "data": {"password": "hunter2", "lease_id": "shadowed", "gone": null}
        });
        assert_eq!(raw_field(&secret, "password"), Some(json!("hunter2")));
        assert_eq!(raw_field(&secret, "lease_id"), Some(json!("")));
        assert_eq!(raw_field(&secret, "refresh_interval"), Some(json!(60)));
        assert_eq!(raw_field(&secret, "gone"), None);
        assert_eq!(raw_field(&secret, "missing"), None);
        let login = json!({"auth": {"client_token": "hvs.t"}, "data": null});
        assert_eq!(raw_field(&login, "token"), Some(json!("hvs.t")));
        assert_eq!(raw_field(&login, "policies"), Some(json!([])));
    }

    #[test]
    fn paths() {
        assert_eq!(sanitize_path("/secret/foo/"), "secret/foo");
        assert_eq!(sanitize_path("secret"), "secret");
    }
}
