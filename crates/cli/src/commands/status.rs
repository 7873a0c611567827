//! `status`: the seal state of the server, also printed after every
//! `operator unseal`.

use serde_json::Value;

use super::{
    EXIT_OK, EXIT_SERVER, EXIT_USAGE, Globals, Spec, api_error, arg_count_error, bool_field,
    int_field, parse, print_data, str_field,
};
use crate::console::Console;
use crate::flags::FlagSet;
use crate::format::{self, Format};

pub const SPEC: Spec = Spec {
    help: "\
Usage: mayfly status [options]

  Prints the seal state of the server. Exits 0 when unsealed, 2 when sealed
  or when the server cannot be reached.",
};

pub async fn run(console: &mut Console, args: &[String]) -> i32 {
    let (parsed, globals) = match parse(console, &SPEC, FlagSet::new(), args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if !parsed.args.is_empty() {
        return arg_count_error(console, &SPEC, "0", parsed.args.len());
    }
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let status = match client.request("GET", "sys/seal-status", &[], None).await {
        Ok(Some(v)) => v,
        Ok(None) => Value::Object(Default::default()),
        Err(e) => return api_error(console, "Error checking seal status", &e),
    };
    let code = print_seal_status(console, &globals, &status);
    if code == EXIT_OK && bool_field(&status, "sealed") {
        return EXIT_SERVER;
    }
    code
}

/// Prints a seal-status response in the chosen format.
pub fn print_seal_status(console: &mut Console, globals: &Globals, status: &Value) -> i32 {
    let mut status = status.clone();
    if let Value::Object(map) = &mut status
        && !map.contains_key("ha_enabled")
    {
        map.insert("ha_enabled".into(), Value::Bool(false));
    }
    if let Some(field) = &globals.field {
        return match status.get(field).filter(|v| !v.is_null()) {
            Some(v) => {
                let text = match globals.format {
                    Format::Table => format::go_value(v),
                    other => format::data(other, v).trim_end().to_string(),
                };
                super::print_raw(console, &text);
                EXIT_OK
            }
            None => {
                console.err(&format!("Field \"{field}\" not present in secret"));
                EXIT_USAGE
            }
        };
    }
    match globals.format {
        Format::Table => console.out(&seal_status_table(&status)),
        other => print_data(console, other, &status),
    }
    EXIT_OK
}

/// The `Key`/`Value` table of a seal-status response.
pub fn seal_status_table(status: &Value) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |k: &str, v: String| rows.push((k.to_string(), v));
    let sealed = bool_field(status, "sealed");
    let recovery = bool_field(status, "recovery_seal");
    row("Seal Type", str_field(status, "type").to_string());
    if recovery {
        row(
            "Recovery Seal Type",
            str_field(status, "recovery_seal_type").to_string(),
        );
    }
    row("Initialized", bool_field(status, "initialized").to_string());
    row("Sealed", sealed.to_string());
    let (shares, threshold) = if recovery {
        ("Total Recovery Shares", "Threshold")
    } else {
        ("Total Shares", "Threshold")
    };
    row(shares, int_field(status, "n").to_string());
    row(threshold, int_field(status, "t").to_string());
    if sealed {
        row(
            "Unseal Progress",
            format!(
                "{}/{}",
                int_field(status, "progress"),
                int_field(status, "t")
            ),
        );
        row("Unseal Nonce", str_field(status, "nonce").to_string());
    }
    if bool_field(status, "migration") {
        row("Seal Migration in Progress", "true".to_string());
    }
    row("Version", str_field(status, "version").to_string());
    let build_date = str_field(status, "build_date");
    if !build_date.is_empty() {
        row("Build Date", build_date.to_string());
    }
    row(
        "Storage Type",
        str_field(status, "storage_type").to_string(),
    );
    let (name, id) = (
        str_field(status, "cluster_name"),
        str_field(status, "cluster_id"),
    );
    if !name.is_empty() && !id.is_empty() {
        row("Cluster Name", name.to_string());
        row("Cluster ID", id.to_string());
    }
    row("HA Enabled", bool_field(status, "ha_enabled").to_string());
    format::key_value_table(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unsealed_table() {
        let status = json!({
            "type": "shamir", "initialized": true, "sealed": false, "t": 3, "n": 5,
            "progress": 0, "nonce": "", "version": "0.1.0", "storage_type": "redb",
            "cluster_name": "mayfly-cluster-1", "cluster_id": "abc"
        });
        assert_eq!(
            seal_status_table(&status),
            "\
Key             Value
---             -----
Seal Type       shamir
Initialized     true
Sealed          false
Total Shares    5
Threshold       3
Version         0.1.0
Storage Type    redb
Cluster Name    mayfly-cluster-1
Cluster ID      abc
HA Enabled      false"
        );
    }

    #[test]
    fn sealed_table() {
        let status = json!({
            "type": "shamir", "initialized": true, "sealed": true, "t": 3, "n": 5,
            "progress": 1, "nonce": "n-1", "version": "0.1.0", "storage_type": "redb"
        });
        assert_eq!(
            seal_status_table(&status),
            "\
Key                Value
---                -----
Seal Type          shamir
Initialized        true
Sealed             true
Total Shares       5
Threshold          3
Unseal Progress    1/3
Unseal Nonce       n-1
Version            0.1.0
Storage Type       redb
HA Enabled         false"
        );
    }
}
