//! `operator` subcommands that manage the server's lifecycle: init, unseal,
//! seal, step-down, rotate and key-status. Root token generation and
//! rekeying live in their own modules.

use serde_json::{Value, json};

use super::status::print_seal_status;
use super::{
    EXIT_OK, EXIT_SERVER, Spec, api_error, arg_count_error, int_field, parse, payload, print_data,
    prompt_secret, str_field, subcommand,
};
use crate::console::Console;
use crate::flags::FlagSet;
use crate::format::{self, Format};

const OPERATOR_HELP: &str = "\
Usage: mayfly operator <subcommand> [options] [args]

  Operator commands manage the lifecycle of the server.

Subcommands:
    generate-root    Generate a new root token
    init             Initialize a server
    key-status       Show information about the active encryption key
    rekey            Generate new unseal keys
    rotate           Rotate the encryption key used for storage
    seal             Seal the server
    step-down        Make the active node step down
    unseal           Provide an unseal key to unseal the server";

/// Dispatches `mayfly operator ...`.
pub async fn run(console: &mut Console, args: &[String]) -> i32 {
    let known = [
        "generate-root",
        "init",
        "key-status",
        "rekey",
        "rotate",
        "seal",
        "step-down",
        "unseal",
    ];
    let (sub, rest) = match subcommand(console, "operator", OPERATOR_HELP, &known, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    match sub {
        "init" => init(console, rest).await,
        "unseal" => unseal(console, rest).await,
        "seal" => seal(console, rest).await,
        "step-down" => step_down(console, rest).await,
        "rotate" => rotate(console, rest).await,
        "key-status" => key_status(console, rest).await,
        "generate-root" => super::generate_root::run(console, rest).await,
        _ => super::rekey::run(console, rest).await,
    }
}

const INIT: Spec = Spec {
    help: "\
Usage: mayfly operator init [options]

  Initializes a new server: generates the root key, splits it into key
  shares, and creates the initial root token. With -status, only reports
  whether the server is initialized (exit 0 if so, 2 if not).",
};

async fn init(console: &mut Console, args: &[String]) -> i32 {
    let mut fs = FlagSet::new();
    fs.int(
        "key-shares",
        "Number of key shares to split the root key into. Default 5.",
    )
    .alias("n", "key-shares")
    .int(
        "key-threshold",
        "Number of key shares required to rebuild the root key. Default 3.",
    )
    .alias("t", "key-threshold")
    .bool("status", "Only report whether the server is initialized.");
    let (parsed, globals) = match parse(console, &INIT, fs, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if !parsed.args.is_empty() {
        return arg_count_error(console, &INIT, "0", parsed.args.len());
    }
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if parsed.bool("status") {
        let resp = match client.request("GET", "sys/init", &[], None).await {
            Ok(v) => v.unwrap_or(Value::Null),
            Err(e) => return api_error(console, "Error checking init status", &e),
        };
        return if super::bool_field(&resp, "initialized") {
            console.out("Mayfly is initialized");
            EXIT_OK
        } else {
            console.out("Mayfly is not initialized");
            EXIT_SERVER
        };
    }
    let shares = parsed.int("key-shares").unwrap_or(5);
    let threshold = parsed.int("key-threshold").unwrap_or(3);
    let body = json!({"secret_shares": shares, "secret_threshold": threshold});
    let resp = match client.request("PUT", "sys/init", &[], Some(&body)).await {
        Ok(v) => v.unwrap_or(Value::Null),
        Err(e) => return api_error(console, "Error initializing", &e),
    };
    let output = init_output(&resp, shares, threshold);
    match globals.format {
        Format::Table => console.out(&init_table(&output)),
        other => print_data(console, other, &output),
    }
    EXIT_OK
}

fn string_list(v: &Value, key: &str) -> Vec<Value> {
    match v.get(key) {
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    }
}

/// The init response in the field names Vault's CLI prints.
fn init_output(resp: &Value, shares: i64, threshold: i64) -> Value {
    json!({
        "unseal_keys_b64": string_list(resp, "keys_base64"),
        "unseal_keys_hex": string_list(resp, "keys"),
        "unseal_shares": shares,
        "unseal_threshold": threshold,
        "recovery_keys_b64": string_list(resp, "recovery_keys_base64"),
        "recovery_keys_hex": string_list(resp, "recovery_keys"),
        "recovery_keys_shares": 0,
        "recovery_keys_threshold": 0,
        "root_token": str_field(resp, "root_token"),
    })
}

/// Key lines, root token and the advice paragraph.
fn init_table(output: &Value) -> String {
    let b64 = string_list(output, "unseal_keys_b64");
    let hex = string_list(output, "unseal_keys_hex");
    let keys = if b64.len() == hex.len() || hex.is_empty() {
        b64
    } else {
        hex
    };
    let mut lines = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        lines.push(format!(
            "Unseal Key {}: {}",
            i + 1,
            key.as_str().unwrap_or("")
        ));
    }
    lines.push(String::new());
    lines.push(format!(
        "Initial Root Token: {}",
        str_field(output, "root_token")
    ));
    lines.push(String::new());
    let shares = int_field(output, "unseal_shares");
    let threshold = int_field(output, "unseal_threshold");
    lines.push(format::wrap(&format!(
        "Mayfly initialized with {shares} key shares and a key threshold of \
         {threshold}. Hand the key shares above to separate trusted operators and \
         store them safely. Every time Mayfly is sealed, restarted or stopped, \
         {threshold} of these keys must be supplied to unseal it before it can \
         serve requests again."
    )));
    lines.push(String::new());
    lines.push(format::wrap(&format!(
        "Mayfly keeps no copy of the root key. If fewer than {threshold} key \
         shares survive, the root key cannot be rebuilt and the data stays \
         sealed forever."
    )));
    lines.push(String::new());
    lines.push(format::wrap(
        "A quorum of the current key shares can produce a fresh set of keys at \
         any time; see \"mayfly operator rekey\".",
    ));
    lines.join("\n")
}

const UNSEAL: Spec = Spec {
    help: "\
Usage: mayfly operator unseal [options] [KEY]

  Provides one unseal key share. Repeat with different shares until the
  threshold is reached. Without KEY, the key is asked for without echo.
  With -reset, discards the shares provided so far.",
};

async fn unseal(console: &mut Console, args: &[String]) -> i32 {
    let mut fs = FlagSet::new();
    fs.bool("reset", "Discard previously provided unseal keys.");
    let (parsed, globals) = match parse(console, &UNSEAL, fs, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if parsed.args.len() > 1 {
        return arg_count_error(console, &UNSEAL, "0-1", parsed.args.len());
    }
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let body = if parsed.bool("reset") {
        json!({"reset": true})
    } else {
        let key = match parsed.args.first() {
            Some(k) => k.trim().to_string(),
            None => match prompt_secret(console, "Unseal Key (will be hidden): ") {
                Ok(k) => k,
                Err(code) => return code,
            },
        };
        json!({"key": key})
    };
    let status = match client.request("PUT", "sys/unseal", &[], Some(&body)).await {
        Ok(v) => v.unwrap_or(Value::Null),
        Err(e) => return api_error(console, "Error unsealing", &e),
    };
    print_seal_status(console, &globals, &status)
}

const SEAL: Spec = Spec {
    help: "\
Usage: mayfly operator seal [options]

  Seals the server: the encryption key is dropped from memory and nothing
  can be read until the server is unsealed again.",
};

async fn seal(console: &mut Console, args: &[String]) -> i32 {
    simple_put(console, args, &SEAL, "sys/seal", "Error sealing", |_| {
        "Success! Mayfly is sealed.".to_string()
    })
    .await
}

const STEP_DOWN: Spec = Spec {
    help: "\
Usage: mayfly operator step-down [options]

  Makes the active node give up its active role.",
};

async fn step_down(console: &mut Console, args: &[String]) -> i32 {
    simple_put(
        console,
        args,
        &STEP_DOWN,
        "sys/step-down",
        "Error stepping down",
        |addr| format!("Success! Stepped down: {addr}"),
    )
    .await
}

/// A bodiless PUT whose success is reported with one line.
async fn simple_put(
    console: &mut Console,
    args: &[String],
    spec: &Spec,
    path: &str,
    context: &str,
    success: impl Fn(&str) -> String,
) -> i32 {
    let (parsed, globals) = match parse(console, spec, FlagSet::new(), args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if !parsed.args.is_empty() {
        return arg_count_error(console, spec, "0", parsed.args.len());
    }
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = client.request("PUT", path, &[], None).await {
        return api_error(console, context, &e);
    }
    console.out(&success(client.address()));
    EXIT_OK
}

const ROTATE: Spec = Spec {
    help: "\
Usage: mayfly operator rotate [options]

  Installs a new encryption key for data written from now on. Existing data
  stays readable with the older keys.",
};

async fn rotate(console: &mut Console, args: &[String]) -> i32 {
    let (parsed, globals) = match parse(console, &ROTATE, FlagSet::new(), args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if !parsed.args.is_empty() {
        return arg_count_error(console, &ROTATE, "0", parsed.args.len());
    }
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = client.request("PUT", "sys/rotate", &[], None).await {
        return api_error(console, "Error rotating key", &e);
    }
    let status = match client.request("GET", "sys/key-status", &[], None).await {
        Ok(v) => key_status_data(&v.unwrap_or(Value::Null)),
        Err(e) => return api_error(console, "Error reading key status", &e),
    };
    match globals.format {
        Format::Table => {
            console.out("Success! Rotated key");
            console.out("");
            console.out(&key_status_table(&status));
        }
        other => print_data(console, other, &status),
    }
    EXIT_OK
}

const KEY_STATUS: Spec = Spec {
    help: "\
Usage: mayfly operator key-status [options]

  Shows the term, install time and use count of the active encryption key.",
};

async fn key_status(console: &mut Console, args: &[String]) -> i32 {
    let (parsed, globals) = match parse(console, &KEY_STATUS, FlagSet::new(), args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if !parsed.args.is_empty() {
        return arg_count_error(console, &KEY_STATUS, "0", parsed.args.len());
    }
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let status = match client.request("GET", "sys/key-status", &[], None).await {
        Ok(v) => key_status_data(&v.unwrap_or(Value::Null)),
        Err(e) => return api_error(console, "Error reading key status", &e),
    };
    match globals.format {
        Format::Table => console.out(&key_status_table(&status)),
        other => print_data(console, other, &status),
    }
    EXIT_OK
}

/// The three key-status fields, whether the server nests them or not.
fn key_status_data(resp: &Value) -> Value {
    let p = payload(resp);
    json!({
        "term": int_field(p, "term"),
        "install_time": str_field(p, "install_time"),
        "encryptions": int_field(p, "encryptions"),
    })
}

fn key_status_table(status: &Value) -> String {
    format::pairs(&[
        (
            "Key Term".to_string(),
            int_field(status, "term").to_string(),
        ),
        (
            "Install Time".to_string(),
            rfc822(str_field(status, "install_time")),
        ),
        (
            "Encryption Count".to_string(),
            int_field(status, "encryptions").to_string(),
        ),
    ])
}

/// An RFC 3339 timestamp in UTC as Go's RFC 822 layout (`02 Jan 06 15:04
/// UTC`), which is how key install times are shown; anything unparsable
/// is shown as received.
fn rfc822(timestamp: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    let Ok(t) = time::OffsetDateTime::parse(timestamp, &Rfc3339) else {
        return timestamp.to_string();
    };
    let t = t.to_offset(time::UtcOffset::UTC);
    let layout = time::macros::format_description!(
        "[day] [month repr:short] [year repr:last_two] [hour]:[minute] UTC"
    );
    t.format(&layout).unwrap_or_else(|_| timestamp.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_json_shape() {
        let resp =
            json!({"keys": ["aa", "bb"], "keys_base64": ["qg==", "uw=="], "root_token": "hvs.x"});
        let out = init_output(&resp, 2, 1);
        assert_eq!(
            format::json(&out),
            r#"{
  "unseal_keys_b64": [
    "qg==",
    "uw=="
  ],
  "unseal_keys_hex": [
    "aa",
    "bb"
  ],
  "unseal_shares": 2,
  "unseal_threshold": 1,
  "recovery_keys_b64": [],
  "recovery_keys_hex": [],
  "recovery_keys_shares": 0,
  "recovery_keys_threshold": 0,
  "root_token": "hvs.x"
}"#
        );
    }

    #[test]
    fn init_table_lines() {
        let resp =
            json!({"keys": ["aa", "bb"], "keys_base64": ["qg==", "uw=="], "root_token": "hvs.x"});
        let text = init_table(&init_output(&resp, 2, 1));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Unseal Key 1: qg==");
        assert_eq!(lines[1], "Unseal Key 2: uw==");
        assert_eq!(lines[2], "");
        assert_eq!(lines[3], "Initial Root Token: hvs.x");
        assert_eq!(lines[4], "");
        assert!(
            lines[5].starts_with("Mayfly initialized with 2 key shares and a key threshold of 1.")
        );
        assert!(lines.iter().all(|l| l.len() <= 78));
    }

    #[test]
    fn key_status_rendering() {
        let resp = json!({"data": {"term": 2, "install_time": "2024-03-05T17:04:05.123+01:00", "encryptions": 9}});
        let status = key_status_data(&resp);
        assert_eq!(
            key_status_table(&status),
            "Key Term            2\nInstall Time        05 Mar 24 16:04 UTC\nEncryption Count    9"
        );
        let flat = json!({"term": 1, "install_time": "garbage", "encryptions": 0});
        assert_eq!(key_status_data(&flat)["install_time"], "garbage");
        assert_eq!(rfc822("garbage"), "garbage");
    }
}
