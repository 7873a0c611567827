//! `audit`: enable, disable and list audit devices on the server, and verify an audit log
//! file offline (no server involved) with the chain and signatures `mayfly_audit` defines.

use std::io::BufReader;

use mayfly_audit::{Summary, Verifier, VerifyError};
use serde_json::{Map, Value, json};

use super::kv_verbs::parse_kv;
use super::output::{envelope, is_wrapped, output_secret};
use super::{
    EXIT_OK, EXIT_SERVER, EXIT_USAGE, Spec, api_error, arg_count_error, bool_field, io_error_text,
    parse, print_data, str_field, subcommand,
};
use crate::console::Console;
use crate::flags::FlagSet;
use crate::format::{self, Format};

const HELP: &str = "\
Usage: mayfly audit <subcommand> [options] [args]

  Manages audit devices, which record every request and response, and
  checks audit logs for tampering.

  Once a device is enabled, a request that no device can record is
  refused. Enabling more than one device is recommended.

      $ mayfly audit enable file file_path=/var/log/mayfly/audit.log
      $ mayfly audit list -detailed
      $ mayfly audit verify /var/log/mayfly/audit.log

Subcommands:
    disable    Disables an audit device
    enable     Enables an audit device
    list       Lists enabled audit devices
    verify     Checks an audit log file for edited, removed or moved lines";

const ENABLE: Spec = Spec {
    help: "\
Usage: mayfly audit enable [options] TYPE [CONFIG K=V...]

  Enables an audit device of TYPE (file, socket or syslog) at -path, or at
  a path named after the type. Device options follow the type as
  key=value pairs, as with \"mayfly write\".

      $ mayfly audit enable file file_path=/var/log/mayfly/audit.log
      $ mayfly audit enable -path=remote socket address=10.0.0.5:9090",
};

const DISABLE: Spec = Spec {
    help: "\
Usage: mayfly audit disable [options] PATH

  Disables the audit device at PATH. Its salt is destroyed: hashes in its
  old log can no longer be reproduced with sys/audit-hash.

      $ mayfly audit disable file/",
};

const LIST: Spec = Spec {
    help: "\
Usage: mayfly audit list [options]

  Lists the enabled audit devices. -detailed adds their options and the
  public key that signs their checkpoints (for audit verify -public-key).",
};

const VERIFY: Spec = Spec {
    help: "\
Usage: mayfly audit verify [options] FILE...

  Checks the hash chain and the signed checkpoints of an audit log written
  by a file device, and reports the first line where the chain breaks: an
  edited line, a removed line, lines out of order, or a forged checkpoint.
  Give rotated files oldest first to check the links between them. Works
  offline; no server is contacted.

  Exit codes: 0 the chain is intact, 2 tampering was detected, 1 the files
  could not be read.

      $ mayfly audit verify /var/log/mayfly/audit.log
      $ mayfly audit verify -public-key=3b6a27bc... audit.log.1 audit.log",
};

/// Dispatches `mayfly audit ...`.
pub async fn run(console: &mut Console, args: &[String]) -> i32 {
    let known = ["disable", "enable", "list", "verify"];
    let (sub, rest) = match subcommand(console, "audit", HELP, &known, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    match sub {
        "enable" => enable(console, rest).await,
        "disable" => disable(console, rest).await,
        "list" => list(console, rest).await,
        _ => verify(console, rest),
    }
}

/// `path/` with exactly one trailing slash and none leading.
fn device_path(path: &str) -> String {
    format!("{}/", path.trim().trim_matches('/'))
}

async fn enable(console: &mut Console, args: &[String]) -> i32 {
    let mut fs = FlagSet::new();
    fs.string(
        "description",
        "Human-friendly description of the audit device.",
    )
    .bool(
        "local",
        "Mark the device as local-only: not replicated and not removed by replication.",
    )
    .string(
        "path",
        "Where the device is enabled; unique across devices. Defaults to the type.",
    );
    let (parsed, globals) = match parse(console, &ENABLE, fs, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let Some((kind, config)) = parsed.args.split_first() else {
        console.err(
            "Error enabling audit device: audit type missing. Valid types include 'file', \
             'socket' and 'syslog'.",
        );
        return EXIT_USAGE;
    };
    let kind = kind.trim().to_string();
    let options = match parse_kv(console, config) {
        Ok(map) => map,
        Err(e) => {
            console.err(&format!("Error parsing options: {e}"));
            return EXIT_USAGE;
        }
    };
    let path = device_path(parsed.string("path").unwrap_or(&kind));
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let body = json!({
        "type": kind,
        "description": parsed.string("description").unwrap_or(""),
        "options": options,
        "local": parsed.bool("local"),
    });
    let url = format!("sys/audit/{}", path.trim_end_matches('/'));
    if let Err(e) = client.request("PUT", &url, &[], Some(&body)).await {
        return api_error(console, "Error enabling audit device", &e);
    }
    console.out(&format!(
        "Success! Enabled the {kind} audit device at: {path}"
    ));
    EXIT_OK
}

async fn disable(console: &mut Console, args: &[String]) -> i32 {
    let (parsed, globals) = match parse(console, &DISABLE, FlagSet::new(), args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if parsed.args.len() != 1 {
        return arg_count_error(console, &DISABLE, "1", parsed.args.len());
    }
    let path = device_path(&parsed.args[0]);
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let url = format!("sys/audit/{}", path.trim_end_matches('/'));
    if let Err(e) = client.request("DELETE", &url, &[], None).await {
        return api_error(console, "Error disabling audit device", &e);
    }
    console.out(&format!(
        "Success! Disabled audit device (if it was enabled) at: {path}"
    ));
    EXIT_OK
}

async fn list(console: &mut Console, args: &[String]) -> i32 {
    let mut fs = FlagSet::new();
    fs.bool(
        "detailed",
        "Print options, replication and the checkpoint signing key of each device.",
    );
    let (parsed, globals) = match parse(console, &LIST, fs, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if !parsed.args.is_empty() {
        return arg_count_error(console, &LIST, "0", parsed.args.len());
    }
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let resp = match client.request("GET", "sys/audit", &[], None).await {
        Ok(v) => envelope(&v.unwrap_or(Value::Null)),
        Err(e) => return api_error(console, "Error listing audits", &e),
    };
    if is_wrapped(&resp) {
        return output_secret(console, &globals, &resp);
    }
    let devices = devices_of(&resp);
    if globals.format != Format::Table {
        let shaped: Map<String, Value> = devices
            .iter()
            .map(|(path, device)| (path.clone(), device_json(device)))
            .collect();
        print_data(console, globals.format, &Value::Object(shaped));
        return EXIT_OK;
    }
    if devices.is_empty() {
        console.out("No audit devices are enabled.");
        return EXIT_SERVER;
    }
    let detailed = parsed.bool("detailed");
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|(path, device)| {
            let mut row = vec![
                path.clone(),
                str_field(device, "type").to_string(),
                str_field(device, "description").to_string(),
            ];
            if detailed {
                let replication = if bool_field(device, "local") {
                    "local"
                } else {
                    "replicated"
                };
                row.push(replication.to_string());
                row.push(options_text(device.get("options")));
                row.push(str_field(device, "public_key").to_string());
            }
            row
        })
        .collect();
    let header: &[&str] = if detailed {
        &[
            "Path",
            "Type",
            "Description",
            "Replication",
            "Options",
            "Public Key",
        ]
    } else {
        &["Path", "Type", "Description"]
    };
    console.out(&format::table(header, &rows));
    EXIT_OK
}

/// The devices of a listing, sorted by path. Servers put them in `data` and copy them to the
/// top level; either works.
fn devices_of(resp: &Value) -> Vec<(String, Value)> {
    let source = match resp.get("data") {
        Some(Value::Object(m)) if !m.is_empty() => m.clone(),
        _ => resp.as_object().cloned().unwrap_or_default(),
    };
    let mut devices: Vec<(String, Value)> = source
        .into_iter()
        .filter(|(_, v)| v.is_object() && v.get("type").is_some())
        .collect();
    devices.sort_by(|a, b| a.0.cmp(&b.0));
    devices
}

/// `k=v k=v` with sorted keys, as the Vault CLI prints device options.
fn options_text(options: Option<&Value>) -> String {
    let Some(Value::Object(map)) = options else {
        return String::new();
    };
    let mut pairs: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    pairs.join(" ")
}

/// One device in the layout the Vault CLI prints for `-format=json`, plus its public key.
fn device_json(device: &Value) -> Value {
    let mut out = json!({
        "type": str_field(device, "type"),
        "description": str_field(device, "description"),
        "options": device.get("options").cloned().unwrap_or(Value::Null),
        "local": bool_field(device, "local"),
        "path": str_field(device, "path"),
    });
    if let Some(key) = device.get("public_key").and_then(Value::as_str) {
        out["public_key"] = json!(key);
    }
    out
}

fn verify(console: &mut Console, args: &[String]) -> i32 {
    let mut fs = FlagSet::new();
    fs.string(
        "public-key",
        "The device's public key (hex), from \"mayfly audit list -detailed\". Without it the \
         key in the file's first header is trusted.",
    );
    let (parsed, globals) = match parse(console, &VERIFY, fs, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if parsed.args.is_empty() {
        return arg_count_error(console, &VERIFY, "1 or more", 0);
    }
    let pinned = parsed.string("public-key").filter(|k| !k.is_empty());
    let mut verifier = match Verifier::new(pinned) {
        Ok(v) => v,
        Err(e) => {
            console.err(&format!("Error: -public-key: {e}"));
            return EXIT_USAGE;
        }
    };
    for name in &parsed.args {
        let file = match std::fs::File::open(name) {
            Ok(file) => file,
            Err(e) => {
                console.err(&format!(
                    "Error opening audit log: open {name}: {}",
                    io_error_text(&e)
                ));
                return EXIT_USAGE;
            }
        };
        match verifier.verify_file(name, BufReader::new(file)) {
            Ok(()) => {}
            Err(VerifyError::Io { file, source }) => {
                console.err(&format!(
                    "Error reading audit log {file}: {}",
                    io_error_text(&source)
                ));
                return EXIT_USAGE;
            }
            Err(VerifyError::Breach(breach)) => {
                if globals.format == Format::Table {
                    console.err(&format!(
                        "Tampering detected in {} at line {}: {}",
                        breach.file, breach.line, breach.detail
                    ));
                } else {
                    let report = json!({
                        "intact": false,
                        "breach": breach,
                        "verified_before_breach": verifier.summary(),
                    });
                    print_data(console, globals.format, &report);
                }
                return EXIT_SERVER;
            }
        }
    }
    let summary = verifier.summary();
    if globals.format != Format::Table {
        let report = json!({ "intact": true, "summary": summary, "pinned": pinned.is_some() });
        print_data(console, globals.format, &report);
        return EXIT_OK;
    }
    console.out("Success! The audit chain is intact.\n");
    console.out(&format::key_value_table(&summary_rows(
        &parsed.args,
        summary,
    )));
    for note in summary_notes(summary, pinned.is_some()) {
        console.out("");
        console.out(&format::wrap(&note));
    }
    EXIT_OK
}

fn summary_rows(files: &[String], summary: &Summary) -> Vec<(String, String)> {
    let seq = match (summary.first_seq, summary.last_seq) {
        (Some(first), Some(last)) => format!("{first}..{last}"),
        _ => String::new(),
    };
    vec![
        ("files".into(), files.join(" ")),
        ("lines".into(), summary.lines.to_string()),
        ("sequence".into(), seq),
        ("entries".into(), summary.entries.to_string()),
        ("checkpoints".into(), summary.checkpoints.to_string()),
        ("headers".into(), summary.headers.to_string()),
        ("unsigned_tail".into(), summary.unsigned_tail.to_string()),
        ("public_keys".into(), summary.public_keys.join(" ")),
    ]
}

fn summary_notes(summary: &Summary, pinned: bool) -> Vec<String> {
    let mut notes = Vec::new();
    if summary.unsigned_tail > 0 {
        notes.push(format!(
            "Note: the last {} entries follow the last checkpoint: they are chained but not yet \
             signed, so their removal from the end of the file could not be detected.",
            summary.unsigned_tail
        ));
    }
    if summary.continues_earlier_file {
        notes.push(
            "Note: the first file continues an earlier one that was not given. Pass the \
             rotated files too, oldest first, to check the links between them."
                .to_string(),
        );
    }
    if !pinned {
        notes.push(
            "Note: the signing key was taken from the file itself. Pin the key that \
             \"mayfly audit list -detailed\" shows with -public-key to detect a file rewritten \
             and signed with another key."
                .to_string(),
        );
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_printed_sorted() {
        let options = json!({"log_raw": "true", "file_path": "/x"});
        assert_eq!(options_text(Some(&options)), "file_path=/x log_raw=true");
        assert_eq!(options_text(None), "");
    }

    #[test]
    fn paths_get_one_trailing_slash() {
        assert_eq!(device_path("file"), "file/");
        assert_eq!(device_path("/x/y/"), "x/y/");
    }
}
