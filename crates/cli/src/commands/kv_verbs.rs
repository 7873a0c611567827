//! The generic verbs `read`, `write`, `list` and `delete`, which work on any
//! API path, plus the `key=value` argument syntax they share.

use serde_json::{Map, Value};

use super::output::{envelope, output_list, output_secret, secret_rows};
use super::{EXIT_OK, EXIT_SERVER, EXIT_USAGE, Spec, api_error, arg_count_error, parse};
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
    match client.request_optional("LIST", &path, &[], None).await {
        Ok(secret) => output_list(console, &globals, secret.as_ref(), &path),
        Err(e) => api_error(console, &format!("Error listing {path}"), &e),
    }
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
    !secret_rows(&envelope(secret)).is_empty()
        || secret
            .get("warnings")
            .and_then(Value::as_array)
            .is_some_and(|w| !w.is_empty())
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
    fn paths() {
        assert_eq!(sanitize_path("/secret/foo/"), "secret/foo");
        assert_eq!(sanitize_path("secret"), "secret");
    }
}
