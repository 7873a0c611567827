//! `policy`: write, read, list and delete ACL policies, and format policy
//! files on disk.

use serde_json::{Value, json};

use super::output::{envelope, is_wrapped, output_secret};
use super::{
    EXIT_OK, EXIT_SERVER, EXIT_USAGE, Spec, api_error, arg_count_error, io_error_text, parse,
    payload, print_data, subcommand,
};
use crate::console::Console;
use crate::flags::FlagSet;
use crate::format::Format;
use crate::hcl_format;

const HELP: &str = "\
Usage: mayfly policy <subcommand> [options] [args]

  Manages the ACL policies that decide what tokens may do.

Subcommands:
    delete    Delete a policy by name
    fmt       Format a policy file on disk
    list      List the names of the installed policies
    read      Print the rules of a policy
    write     Upload a policy from a file or standard input";

const WRITE: Spec = Spec {
    help: "\
Usage: mayfly policy write [options] NAME PATH

  Uploads the policy in the file at PATH (\"-\" for standard input) under
  NAME, replacing any policy of that name. Names are lowercased.

      $ mayfly policy write my-policy ./my-policy.hcl
      $ cat my-policy.hcl | mayfly policy write my-policy -",
};

const READ: Spec = Spec {
    help: "\
Usage: mayfly policy read [options] NAME

  Prints the rules of the policy NAME.",
};

const LIST: Spec = Spec {
    help: "\
Usage: mayfly policy list [options]

  Lists the names of the installed policies.",
};

const DELETE: Spec = Spec {
    help: "\
Usage: mayfly policy delete [options] NAME

  Deletes the policy NAME. Tokens that carry it keep the name but lose the
  rules. The default and root policies cannot be deleted.",
};

const FMT: Spec = Spec {
    help: "\
Usage: mayfly policy fmt [options] PATH

  Checks the policy file at PATH and rewrites it canonically formatted.

      $ mayfly policy fmt my-policy.hcl",
};

/// Dispatches `mayfly policy ...`.
pub async fn run(console: &mut Console, args: &[String]) -> i32 {
    let known = ["delete", "fmt", "list", "read", "write"];
    let (sub, rest) = match subcommand(console, "policy", HELP, &known, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    match sub {
        "write" => write(console, rest).await,
        "read" => read(console, rest).await,
        "list" => list(console, rest).await,
        "delete" => delete(console, rest).await,
        _ => fmt(console, rest),
    }
}

/// Policy names are stored lowercased.
fn normalize_name(name: &str) -> String {
    name.trim().to_lowercase()
}

async fn write(console: &mut Console, args: &[String]) -> i32 {
    let (parsed, globals) = match parse(console, &WRITE, FlagSet::new(), args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if parsed.args.len() != 2 {
        return arg_count_error(console, &WRITE, "2", parsed.args.len());
    }
    let given = &parsed.args[0];
    let name = normalize_name(given);
    let source = parsed.args[1].trim();
    let rules = if source == "-" {
        match console.read_stdin() {
            Ok(text) => text,
            Err(e) => {
                console.err(&format!("Error reading policy: {e}"));
                return EXIT_SERVER;
            }
        }
    } else {
        match std::fs::read_to_string(source) {
            Ok(text) => text,
            Err(e) => {
                console.err(&format!(
                    "Error opening policy file: open {source}: {}",
                    io_error_text(&e)
                ));
                return EXIT_SERVER;
            }
        }
    };
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let body = json!({ "policy": rules });
    if let Err(e) = client
        .request("PUT", &format!("sys/policies/acl/{name}"), &[], Some(&body))
        .await
    {
        return api_error(console, "Error uploading policy", &e);
    }
    if *given != name {
        console.err(&format!(
            "Policy name was converted from \"{given}\" to \"{name}\""
        ));
    }
    console.out(&format!("Success! Uploaded policy: {name}"));
    EXIT_OK
}

async fn read(console: &mut Console, args: &[String]) -> i32 {
    let (parsed, globals) = match parse(console, &READ, FlagSet::new(), args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if parsed.args.len() != 1 {
        return arg_count_error(console, &READ, "1", parsed.args.len());
    }
    let name = normalize_name(&parsed.args[0]);
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let resp = match client
        .request_optional("GET", &format!("sys/policies/acl/{name}"), &[], None)
        .await
    {
        Ok(v) => v.map(|v| envelope(&v)),
        Err(e) => {
            return api_error(console, &format!("Error reading policy named {name}"), &e);
        }
    };
    if let Some(wrapped) = resp.as_ref().filter(|r| is_wrapped(r)) {
        return output_secret(console, &globals, wrapped);
    }
    // The legacy sys/policy endpoints call the text "rules".
    let rules = resp
        .as_ref()
        .map(payload)
        .and_then(|d| d.get("policy").or_else(|| d.get("rules")))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if rules.is_empty() {
        console.err(&format!("No policy named: {name}"));
        return EXIT_SERVER;
    }
    match globals.format {
        Format::Table => console.out(rules.trim()),
        other => print_data(console, other, &json!({ "policy": rules })),
    }
    EXIT_OK
}

async fn list(console: &mut Console, args: &[String]) -> i32 {
    let (parsed, globals) = match parse(console, &LIST, FlagSet::new(), args) {
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
    let resp = match client.request("LIST", "sys/policies/acl", &[], None).await {
        Ok(v) => envelope(&v.unwrap_or(Value::Null)),
        Err(e) => return api_error(console, "Error listing policies", &e),
    };
    if is_wrapped(&resp) {
        return output_secret(console, &globals, &resp);
    }
    let names: Vec<Value> = payload(&resp)
        .get("keys")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match globals.format {
        Format::Table => {
            for name in &names {
                console.out(name.as_str().unwrap_or_default());
            }
        }
        other => print_data(console, other, &Value::Array(names)),
    }
    EXIT_OK
}

async fn delete(console: &mut Console, args: &[String]) -> i32 {
    let (parsed, globals) = match parse(console, &DELETE, FlagSet::new(), args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if parsed.args.len() != 1 {
        return arg_count_error(console, &DELETE, "1", parsed.args.len());
    }
    let name = normalize_name(&parsed.args[0]);
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = client
        .request("DELETE", &format!("sys/policies/acl/{name}"), &[], None)
        .await
    {
        return api_error(console, &format!("Error deleting {name}"), &e);
    }
    console.out(&format!("Success! Deleted policy: {name}"));
    EXIT_OK
}

/// Formats a local file; no server is involved.
fn fmt(console: &mut Console, args: &[String]) -> i32 {
    let (parsed, _) = match parse(console, &FMT, FlagSet::new(), args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if parsed.args.len() != 1 {
        return arg_count_error(console, &FMT, "1", parsed.args.len());
    }
    let path = expand_home(console, parsed.args[0].trim());
    let source = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            console.err(&format!(
                "Error reading source file: open {path}: {}",
                io_error_text(&e)
            ));
            return EXIT_USAGE;
        }
    };
    let formatted = match hcl_format::format_policy(&source) {
        Ok(text) => text,
        Err(e) => {
            console.err(&e);
            return EXIT_USAGE;
        }
    };
    if let Err(e) = std::fs::write(&path, formatted) {
        console.err(&format!(
            "Error writing result: open {path}: {}",
            io_error_text(&e)
        ));
        return EXIT_USAGE;
    }
    console.out(&format!("Success! Formatted policy: {path}"));
    EXIT_OK
}

/// `~/x` relative to `HOME`, as shells would have expanded it.
fn expand_home(console: &Console, path: &str) -> String {
    match (path.strip_prefix("~/"), console.env("HOME")) {
        (Some(rest), Some(home)) => format!("{}/{rest}", home.trim_end_matches('/')),
        _ => path.to_string(),
    }
}
