//! `operator rekey`: replacing the unseal key shares (and their number and
//! threshold) with a quorum of the current ones.

use serde_json::{Value, json};

use super::{
    EXIT_OK, EXIT_SERVER, EXIT_USAGE, Globals, Spec, api_error, arg_count_error, bool_field,
    int_field, parse, print_data, prompt_secret, str_field,
};
use crate::console::Console;
use crate::flags::FlagSet;
use crate::format::{self, Format};

const SPEC: Spec = Spec {
    help: "\
Usage: mayfly operator rekey [options] [KEY]

  Generates a new set of unseal key shares. The old shares stop working
  once the new ones are issued.

    Start, choosing the new share count and threshold:
      $ mayfly operator rekey -init -key-shares=5 -key-threshold=3

    Provide each current unseal key (asked for without echo when KEY is
    omitted):
      $ mayfly operator rekey -nonce=NONCE KEY

  Also: -status shows progress and -cancel aborts.",
};

pub async fn run(console: &mut Console, args: &[String]) -> i32 {
    let mut fs = FlagSet::new();
    fs.bool("init", "Start a rekey.")
        .bool("cancel", "Cancel the rekey in progress.")
        .bool("status", "Show the progress of the current rekey.")
        .int("key-shares", "Number of new key shares. Default 5.")
        .alias("n", "key-shares")
        .int(
            "key-threshold",
            "Number of new key shares needed to unseal. Default 3.",
        )
        .alias("t", "key-threshold")
        .string("nonce", "Nonce of the rekey in progress.");
    let (parsed, globals) = match parse(console, &SPEC, fs, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let modes: Vec<&str> = ["init", "cancel", "status"]
        .into_iter()
        .filter(|m| parsed.bool(m))
        .collect();
    if modes.len() > 1 {
        console.err("Only one of -init, -cancel or -status may be given");
        return EXIT_USAGE;
    }
    let mode = modes.first().copied().unwrap_or("update");
    if mode != "update" && !parsed.args.is_empty() {
        return arg_count_error(console, &SPEC, "0", parsed.args.len());
    }
    if parsed.args.len() > 1 {
        return arg_count_error(console, &SPEC, "0-1", parsed.args.len());
    }
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match mode {
        "init" => {
            let body = json!({
                "secret_shares": parsed.int("key-shares").unwrap_or(5),
                "secret_threshold": parsed.int("key-threshold").unwrap_or(3),
            });
            match client
                .request("PUT", "sys/rekey/init", &[], Some(&body))
                .await
            {
                Ok(v) => {
                    if globals.format == Format::Table {
                        console.err(&format::wrap(
                            "WARNING! The new unseal keys are shown only once, when \
                             the last current key is provided. If they are lost there \
                             is no way to recover them.",
                        ));
                    }
                    print_status(console, &globals, &v.unwrap_or(Value::Null))
                }
                Err(e) => api_error(console, "Error initializing rekey", &e),
            }
        }
        "status" => match client.request("GET", "sys/rekey/init", &[], None).await {
            Ok(v) => print_status(console, &globals, &v.unwrap_or(Value::Null)),
            Err(e) => api_error(console, "Error reading rekey status", &e),
        },
        "cancel" => match client.request("DELETE", "sys/rekey/init", &[], None).await {
            Ok(_) => {
                console.out("Success! Canceled rekeying (if it was started)");
                EXIT_OK
            }
            Err(e) => api_error(console, "Error canceling rekey", &e),
        },
        _ => {
            // The status supplies the nonce when none was given, and the new
            // share count and threshold for the closing message.
            let status = match client.request("GET", "sys/rekey/init", &[], None).await {
                Ok(v) => v.unwrap_or(Value::Null),
                Err(e) => return api_error(console, "Error reading rekey status", &e),
            };
            if !bool_field(&status, "started") {
                console.err(
                    "No rekey is in progress. Start one with \"mayfly operator rekey -init\".",
                );
                return EXIT_SERVER;
            }
            let nonce = parsed
                .string("nonce")
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| str_field(&status, "nonce"))
                .to_string();
            let key = match parsed.args.first() {
                Some(k) => k.trim().to_string(),
                None => {
                    console.err(&format!("Rekey operation nonce: {nonce}"));
                    match prompt_secret(console, "Unseal Key (will be hidden): ") {
                        Ok(k) => k,
                        Err(code) => return code,
                    }
                }
            };
            let body = json!({"key": key, "nonce": nonce});
            let resp = match client
                .request("PUT", "sys/rekey/update", &[], Some(&body))
                .await
            {
                Ok(v) => v.unwrap_or(Value::Null),
                Err(e) => return api_error(console, "Error posting unseal key", &e),
            };
            if bool_field(&resp, "complete") {
                return print_new_keys(console, &globals, &status, &resp);
            }
            match client.request("GET", "sys/rekey/init", &[], None).await {
                Ok(v) => print_status(console, &globals, &v.unwrap_or(Value::Null)),
                Err(e) => api_error(console, "Error reading rekey status", &e),
            }
        }
    }
}

fn print_status(console: &mut Console, globals: &Globals, status: &Value) -> i32 {
    match globals.format {
        Format::Table => console.out(&status_table(status)),
        other => print_data(console, other, status),
    }
    EXIT_OK
}

fn status_table(status: &Value) -> String {
    let mut rows: Vec<(String, String)> = vec![
        ("Nonce".into(), str_field(status, "nonce").into()),
        ("Started".into(), bool_field(status, "started").to_string()),
    ];
    if bool_field(status, "started") {
        let (progress, required) = (int_field(status, "progress"), int_field(status, "required"));
        let text = if progress == required && required > 0 {
            format!("{progress}/{required} (verification in progress)")
        } else {
            format!("{progress}/{required}")
        };
        rows.push(("Rekey Progress".into(), text));
        rows.push(("New Shares".into(), int_field(status, "n").to_string()));
        rows.push(("New Threshold".into(), int_field(status, "t").to_string()));
        rows.push((
            "Verification Required".into(),
            bool_field(status, "verification_required").to_string(),
        ));
        let verification_nonce = str_field(status, "verification_nonce");
        if !verification_nonce.is_empty() {
            rows.push(("Verification Nonce".into(), verification_nonce.into()));
        }
    }
    if let Some(Value::Array(fps)) = status.get("pgp_fingerprints")
        && !fps.is_empty()
    {
        rows.push((
            "PGP Fingerprints".into(),
            format::go_value(&Value::Array(fps.clone())),
        ));
    }
    rows.push(("Backup".into(), bool_field(status, "backup").to_string()));
    format::key_value_table(&rows)
}

fn print_new_keys(console: &mut Console, globals: &Globals, status: &Value, resp: &Value) -> i32 {
    if globals.format != Format::Table {
        print_data(console, globals.format, resp);
        return EXIT_OK;
    }
    console.out(&new_keys_text(status, resp));
    EXIT_OK
}

fn new_keys_text(status: &Value, resp: &Value) -> String {
    let list = |key: &str| -> Vec<String> {
        match resp.get(key) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect(),
            _ => Vec::new(),
        }
    };
    let hex = list("keys");
    let b64 = list("keys_base64");
    let keys = if !b64.is_empty() && (b64.len() == hex.len() || hex.is_empty()) {
        b64
    } else {
        hex
    };
    let mut lines: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("Key {}: {k}", i + 1))
        .collect();
    lines.push(String::new());
    lines.push(format!("Operation nonce: {}", str_field(resp, "nonce")));
    let shares = match int_field(status, "n") {
        0 => i64::try_from(keys.len()).unwrap_or(0),
        n => n,
    };
    let threshold = int_field(status, "t");
    if !bool_field(resp, "verification_required") {
        lines.push(String::new());
        lines.push(format::wrap(&format!(
            "Mayfly rekeyed with {shares} key shares and a key threshold of \
             {threshold}. Hand the new key shares above to separate trusted \
             operators and store them safely. Every time Mayfly is sealed, \
             restarted or stopped, {threshold} of these keys must be supplied to \
             unseal it before it can serve requests again."
        )));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_rendering() {
        let status = json!({
            "nonce": "abc", "started": true, "t": 2, "n": 3, "progress": 1,
            "required": 3, "pgp_fingerprints": null, "backup": false,
            "verification_required": false
        });
        assert_eq!(
            status_table(&status),
            "\
Key                      Value
---                      -----
Nonce                    abc
Started                  true
Rekey Progress           1/3
New Shares               3
New Threshold            2
Verification Required    false
Backup                   false"
        );
        let idle = json!({"nonce": "", "started": false});
        assert_eq!(
            status_table(&idle),
            "Key        Value\n---        -----\nNonce      n/a\nStarted    false\nBackup     false"
        );
    }

    #[test]
    fn new_keys_listing() {
        let status = json!({"n": 2, "t": 2});
        let resp = json!({
            "complete": true, "nonce": "abc",
            "keys": ["aa", "bb"], "keys_base64": ["qg==", "uw=="]
        });
        let text = new_keys_text(&status, &resp);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            &lines[..4],
            &["Key 1: qg==", "Key 2: uw==", "", "Operation nonce: abc"]
        );
        assert!(lines[5].starts_with("Mayfly rekeyed with 2 key shares and a key threshold of 2."));
    }
}
