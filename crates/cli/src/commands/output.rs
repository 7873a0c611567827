//! Printing API responses the way the Vault CLI prints its decoded
//! secrets: the `Key`/`Value` table with lease, token and wrapping rows,
//! single values for `-field`, key listings, and for `-format=json|yaml`
//! the layout of Go's `api.Secret`, which is what scripts parse.

use serde_json::{Map, Value};

use super::{
    EXIT_OK, EXIT_SERVER, EXIT_USAGE, Globals, bool_field, int_field, print_data, print_raw,
    print_warnings, str_field,
};
use crate::console::Console;
use crate::format::{self, Format};

/// The top-level fields of a response envelope.
const ENVELOPE_KEYS: [&str; 9] = [
    "request_id",
    "lease_id",
    "lease_duration",
    "renewable",
    "data",
    "warnings",
    "auth",
    "wrap_info",
    "mount_type",
];

/// A response as an envelope. Raw endpoints (`sys/health` and friends)
/// answer with bare fields; like Go's `api.ParseSecret`, those become the
/// data of an otherwise empty envelope.
pub fn envelope(resp: &Value) -> Value {
    match resp {
        Value::Object(map) if !map.keys().any(|k| ENVELOPE_KEYS.contains(&k.as_str())) => {
            serde_json::json!({ "data": resp })
        }
        _ => resp.clone(),
    }
}

/// Whether a response carries a wrapping token in place of its payload.
pub fn is_wrapped(secret: &Value) -> bool {
    secret.get("wrap_info").is_some_and(Value::is_object)
}

fn object<'a>(v: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    v.get(key).and_then(Value::as_object)
}

/// Recursively sorts object keys, as Go's encoder does for maps.
pub fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k.as_str()])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// `value` itself, or `default` when absent or null.
fn or(v: &Value, key: &str, default: Value) -> Value {
    v.get(key)
        .filter(|x| !x.is_null())
        .cloned()
        .unwrap_or(default)
}

/// The envelope as the Vault CLI serializes it: its fields in a fixed
/// order, `auth` and `wrap_info` only when present, map keys sorted and
/// fields the Go client does not know dropped.
pub fn vault_json(secret: &Value) -> Value {
    let mut out = Map::new();
    out.insert("request_id".into(), or(secret, "request_id", "".into()));
    out.insert("lease_id".into(), or(secret, "lease_id", "".into()));
    out.insert(
        "lease_duration".into(),
        or(secret, "lease_duration", 0.into()),
    );
    out.insert("renewable".into(), or(secret, "renewable", false.into()));
    out.insert(
        "data".into(),
        object(secret, "data").map_or(Value::Null, |d| sorted(&Value::Object(d.clone()))),
    );
    out.insert("warnings".into(), or(secret, "warnings", Value::Null));
    if let Some(auth) = secret.get("auth").filter(|a| a.is_object()) {
        let mut a = Map::new();
        for (key, default) in [
            ("client_token", Value::from("")),
            ("accessor", Value::from("")),
            ("policies", Value::Null),
            ("token_policies", Value::Null),
            ("identity_policies", Value::Null),
            ("metadata", Value::Null),
            ("orphan", Value::from(false)),
            ("entity_id", Value::from("")),
            ("lease_duration", Value::from(0)),
            ("renewable", Value::from(false)),
            ("mfa_requirement", Value::Null),
        ] {
            a.insert(key.into(), sorted(&or(auth, key, default)));
        }
        out.insert("auth".into(), Value::Object(a));
    }
    if let Some(wrap) = secret.get("wrap_info").filter(|w| w.is_object()) {
        let mut w = Map::new();
        for (key, default) in [
            ("token", Value::from("")),
            ("accessor", Value::from("")),
            ("ttl", Value::from(0)),
            ("creation_time", Value::from("0001-01-01T00:00:00Z")),
            ("creation_path", Value::from("")),
            ("wrapped_accessor", Value::from("")),
        ] {
            w.insert(key.into(), or(wrap, key, default));
        }
        out.insert("wrap_info".into(), Value::Object(w));
    }
    if let Some(mount_type) = secret
        .get("mount_type")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        out.insert("mount_type".into(), mount_type.into());
    }
    Value::Object(out)
}

/// Prints a response: the table of its lease, auth, wrapping and data
/// fields, the envelope as json/yaml, or one field with `-field`.
pub fn output_secret(console: &mut Console, globals: &Globals, secret: &Value) -> i32 {
    let secret = envelope(secret);
    if let Some(field) = &globals.field {
        return print_field(console, globals.format, raw_field(&secret, field), field);
    }
    match globals.format {
        Format::Table => {
            print_warnings(console, &secret);
            if let Some(table) = secret_table(&secret) {
                console.out(&table);
            }
        }
        other => print_data(console, other, &vault_json(&secret)),
    }
    EXIT_OK
}

/// Prints the answer to a change: the response when the server sent one,
/// otherwise `success` (in table format only, so json/yaml output stays
/// parseable).
pub fn output_answer(
    console: &mut Console,
    globals: &Globals,
    resp: Option<Value>,
    success: Option<&str>,
) -> i32 {
    match (resp, success) {
        (Some(secret), _) => output_secret(console, globals, &secret),
        (None, Some(message)) if globals.format == Format::Table => {
            console.out(message);
            EXIT_OK
        }
        (None, _) => EXIT_OK,
    }
}

/// Prints the value `-field` selected: bare text for tables (newline only
/// on a terminal), otherwise the value in the chosen format.
pub fn print_field(
    console: &mut Console,
    format: Format,
    value: Option<Value>,
    field: &str,
) -> i32 {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        console.err(&format!("Field \"{field}\" not present in secret"));
        return EXIT_USAGE;
    };
    let text = match format {
        Format::Table => format::go_value(&value),
        Format::Json => format::json(&value),
        Format::Yaml => format::yaml(&value),
    };
    print_raw(console, &text);
    EXIT_OK
}

/// The `Key`/`Value` table of a response, or `None` when it has nothing
/// to show.
pub fn secret_table(secret: &Value) -> Option<String> {
    let rows = secret_rows(secret);
    (!rows.is_empty()).then(|| format::key_value_table(&rows))
}

/// Table rows in Vault's order: lease, token, wrapping, then data keys
/// sorted.
pub fn secret_rows(secret: &Value) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = Vec::new();
    let lease_duration = int_field(secret, "lease_duration");
    if lease_duration > 0 {
        let lease_id = str_field(secret, "lease_id");
        if lease_id.is_empty() {
            // Plain key/value data has no lease, only a suggested refresh
            // interval.
            rows.push((
                "refresh_interval".into(),
                format::human_duration(lease_duration),
            ));
        } else {
            rows.push(("lease_id".into(), lease_id.into()));
            rows.push((
                "lease_duration".into(),
                format::human_duration(lease_duration),
            ));
            rows.push((
                "lease_renewable".into(),
                bool_field(secret, "renewable").to_string(),
            ));
        }
    }
    if let Some(auth) = secret.get("auth").filter(|a| a.is_object()) {
        rows.extend(token_rows(auth));
    }
    if let Some(wrap) = secret.get("wrap_info").filter(|w| w.is_object()) {
        rows.extend(wrap_rows(wrap));
    }
    if let Some(data) = object(secret, "data") {
        rows.extend(map_rows(data));
    }
    rows
}

/// The token rows every command that hands out or refreshes a token
/// prints (`login`, `token create`, `token renew`, logins via `write`).
pub fn token_rows(auth: &Value) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = Vec::new();
    if let Some(mfa) = auth.get("mfa_requirement").filter(|m| m.is_object()) {
        // A login that still needs MFA has no token yet; only the request
        // to validate is worth showing.
        rows.push((
            "mfa_request_id".into(),
            str_field(mfa, "mfa_request_id").into(),
        ));
        return rows;
    }
    rows.push(("token".into(), str_field(auth, "client_token").into()));
    rows.push(("token_accessor".into(), str_field(auth, "accessor").into()));
    let duration = int_field(auth, "lease_duration");
    // A zero lease is a token that never expires, such as root.
    rows.push((
        "token_duration".into(),
        if duration == 0 {
            "∞".to_string()
        } else {
            format::human_duration(duration)
        },
    ));
    rows.push((
        "token_renewable".into(),
        bool_field(auth, "renewable").to_string(),
    ));
    for key in ["token_policies", "identity_policies", "policies"] {
        rows.push((
            key.into(),
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
    rows
}

/// The rows describing a wrapping token.
fn wrap_rows(wrap: &Value) -> Vec<(String, String)> {
    let mut rows = vec![
        ("wrapping_token:".into(), str_field(wrap, "token").into()),
        (
            "wrapping_accessor:".into(),
            str_field(wrap, "accessor").into(),
        ),
        (
            "wrapping_token_ttl:".into(),
            format::human_duration(int_field(wrap, "ttl")),
        ),
        (
            "wrapping_token_creation_time:".into(),
            format::go_time(str_field(wrap, "creation_time")),
        ),
        (
            "wrapping_token_creation_path:".into(),
            str_field(wrap, "creation_path").into(),
        ),
    ];
    let wrapped = str_field(wrap, "wrapped_accessor");
    if !wrapped.is_empty() {
        rows.push(("wrapped_accessor:".into(), wrapped.into()));
    }
    rows
}

/// Whether Vault shows a field as a duration: TTLs and periods arrive as
/// whole seconds and are easier to read as `1h30m`.
pub fn looks_like_duration(key: &str) -> bool {
    key == "period"
        || key.ends_with("_period")
        || key == "ttl"
        || key.ends_with("_ttl")
        || key == "duration"
        || key.ends_with("_duration")
        || key == "lease_max"
        || key == "ttl_max"
}

/// A value as a table cell: Go's `%v`, with integer durations humanized.
pub fn cell(key: &str, v: &Value) -> String {
    if looks_like_duration(key)
        && let Some(seconds) = v.as_i64()
    {
        return format::human_duration(seconds);
    }
    format::go_value(v)
}

/// Rows for a map, keys sorted.
pub fn map_rows(map: &Map<String, Value>) -> Vec<(String, String)> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    keys.into_iter()
        .map(|k| (k.clone(), cell(k, &map[k.as_str()])))
        .collect()
}

/// A `Key`/`Value` table of a map, or `None` for an empty map.
pub fn map_table(map: &Map<String, Value>) -> Option<String> {
    let rows = map_rows(map);
    (!rows.is_empty()).then(|| format::key_value_table(&rows))
}

/// The value `-field=NAME` selects from a response: envelope fields
/// shadow data keys of the same name, as in Vault.
pub fn raw_field(secret: &Value, field: &str) -> Option<Value> {
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
            "refresh_interval" | "lease_duration" => {
                Some(secret.get("lease_duration").cloned().unwrap_or(0.into()))
            }
            "lease_id" => Some(secret.get("lease_id").cloned().unwrap_or("".into())),
            "request_id" => Some(secret.get("request_id").cloned().unwrap_or("".into())),
            "renewable" => Some(secret.get("renewable").cloned().unwrap_or(false.into())),
            // A KV v2 read nests the secret under data.data; asking for
            // "data" means that inner map when there is one.
            "data" => data().or_else(|| secret.get("data").cloned()),
            _ => data(),
        }
    };
    value.filter(|v| !v.is_null())
}

/// Prints the answer of a LIST request: the keys sorted under a `Keys`
/// header, or the key array as json/yaml. `path` names what was listed
/// in the "nothing there" errors.
pub fn output_list(
    console: &mut Console,
    globals: &Globals,
    secret: Option<&Value>,
    path: &str,
) -> i32 {
    let secret = secret.map(envelope);
    if let Some(s) = secret.as_ref().filter(|s| is_wrapped(s)) {
        return output_secret(console, globals, s);
    }
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
    let mut names: Vec<String> = keys.iter().map(format::go_value).collect();
    names.sort();
    if !names.is_empty() {
        let rows: Vec<Vec<String>> = names.into_iter().map(|k| vec![k]).collect();
        console.out(&format::table(&["Keys"], &rows));
    }
    EXIT_OK
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kv_secret_table_rows() {
        let secret = json!({
            "request_id": "r", "lease_id": "", "lease_duration": 2764800, "renewable": false,
            "data": {"zeta": "z", "alpha": ["a", "b"], "m": {"k": 1}, "n": null, "ttl": 90},
            "warnings": null, "auth": null
        });
        assert_eq!(
            secret_table(&secret).unwrap(),
            "\
Key                 Value
---                 -----
refresh_interval    768h
alpha               [a b]
m                   map[k:1]
n                   <nil>
ttl                 1m30s
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
                "metadata": {"user": "bob", "app": "x"}
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
                "token_meta_app",
                "token_meta_user"
            ]
        );
        assert_eq!(rows[1].1, "1h");
        assert_eq!(rows[5].1, "∞");
        assert_eq!(rows[7].1, "[\"root\"]");
        assert_eq!(rows[8].1, "[]");
    }

    #[test]
    fn wrapping_rows() {
        let secret = json!({
            "request_id": "", "lease_id": "", "lease_duration": 0, "renewable": false,
            "data": null, "warnings": null, "auth": null,
            "wrap_info": {
                "token": "hvs.w", "accessor": "wacc", "ttl": 300,
                "creation_time": "2024-01-02T03:04:05.5Z", "creation_path": "auth/token/create",
                "wrapped_accessor": "inner"
            }
        });
        assert_eq!(
            secret_table(&secret).unwrap(),
            "\
Key                              Value
---                              -----
wrapping_token:                  hvs.w
wrapping_accessor:               wacc
wrapping_token_ttl:              5m
wrapping_token_creation_time:    2024-01-02 03:04:05.5 +0000 UTC
wrapping_token_creation_path:    auth/token/create
wrapped_accessor:                inner"
        );
        assert_eq!(raw_field(&secret, "wrapping_token"), Some(json!("hvs.w")));
        assert_eq!(raw_field(&secret, "wrapping_token_ttl"), Some(json!(300)));
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
        let v2 = json!({"data": {"data": {"a": "1"}, "metadata": {}}});
        assert_eq!(raw_field(&v2, "data"), Some(json!({"a": "1"})));
    }

    #[test]
    fn vault_json_layout() {
        let secret = json!({
            "mount_type": "", "auth": null, "wrap_info": null, "warnings": null,
            "data": {"b": 1, "a": {"z": 1, "y": 2}}, "renewable": false,
            "lease_duration": 0, "lease_id": "", "request_id": "r", "extra": 1
        });
        assert_eq!(
            format::json(&vault_json(&secret)),
            r#"{
  "request_id": "r",
  "lease_id": "",
  "lease_duration": 0,
  "renewable": false,
  "data": {
    "a": {
      "y": 2,
      "z": 1
    },
    "b": 1
  },
  "warnings": null
}"#
        );
        let login = vault_json(&json!({"auth": {"client_token": "t", "token_type": "service"}}));
        let keys: Vec<&String> = login["auth"].as_object().unwrap().keys().collect();
        assert_eq!(keys[0], "client_token");
        assert_eq!(keys.len(), 11);
        assert_eq!(login["auth"]["identity_policies"], Value::Null);
    }

    #[test]
    fn raw_responses_become_data() {
        let health = json!({"initialized": true, "sealed": false});
        assert_eq!(envelope(&health)["data"]["sealed"], json!(false));
        let env = json!({"data": {"x": 1}});
        assert_eq!(envelope(&env), env);
    }

    #[test]
    fn durations_in_cells() {
        assert_eq!(cell("creation_ttl", &json!(3600)), "1h");
        assert_eq!(cell("period", &json!(0)), "0s");
        assert_eq!(cell("ttl", &json!("1h")), "1h");
        assert_eq!(cell("user", &json!(3600)), "3600");
        assert!(!looks_like_duration("ttlx"));
    }
}
