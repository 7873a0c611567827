//! What every command shares: the global flags, turning them (and the
//! environment) into a client, usage errors, and printing API responses.

pub mod audit;
pub mod auth;
pub mod generate_root;
pub mod kv;
pub mod kv_verbs;
pub mod lease;
pub mod login;
pub mod mounts;
pub mod operator;
pub mod output;
pub mod policy;
pub mod rekey;
pub mod secrets;
pub mod status;
pub mod token;
pub mod unwrap;

use serde_json::Value;

use crate::client::{ApiError, Client, DEFAULT_ADDRESS, Settings};
use crate::console::Console;
use crate::flags::{FlagError, FlagSet, Parsed};
use crate::format::{self, Format};
use crate::{duration, token_helper};

/// Success.
pub const EXIT_OK: i32 = 0;
/// Bad invocation: unknown command, bad flags, wrong arguments.
pub const EXIT_USAGE: i32 = 1;
/// The server said no, or could not be reached.
pub const EXIT_SERVER: i32 = 2;

/// A command's static description.
pub struct Spec {
    /// `Usage:` line and a paragraph of help.
    pub help: &'static str,
}

/// The global flags, resolved against the environment.
pub struct Globals {
    pub format: Format,
    pub field: Option<String>,
    settings: Settings,
}

/// Adds the flags every command accepts.
pub fn add_global_flags(fs: &mut FlagSet) {
    fs.string(
        "address",
        "Address of the server, e.g. https://127.0.0.1:8200. Overrides MAYFLY_ADDR and VAULT_ADDR.",
    )
    .string(
        "format",
        "Output format: table, json or yaml. Overrides VAULT_FORMAT. Default is table.",
    )
    .string(
        "field",
        "Print only this field of the response, with no decoration.",
    )
    .bool(
        "tls-skip-verify",
        "Do not verify the server's TLS certificate. Insecure. Overrides VAULT_SKIP_VERIFY.",
    )
    .string(
        "ca-cert",
        "PEM file of the CA that signed the server's certificate. Overrides VAULT_CACERT.",
    )
    .duration(
        "wrap-ttl",
        "Wrap the response in a single-use token valid this long (\"30s\", \"5m\"); read it \
         back with \"mayfly unwrap\". Overrides VAULT_WRAP_TTL.",
    )
    .string(
        "namespace",
        "Namespace the request is for, sent as X-Vault-Namespace. Overrides VAULT_NAMESPACE. \
         -ns is a shortcut.",
    )
    .alias("ns", "namespace");
}

/// Parses `args` with `fs` plus the global flags. On `-h` the help goes to
/// standard output; on errors the message and help go to standard error.
/// Either way the exit code to return is handed back as `Err`.
pub fn parse(
    console: &mut Console,
    spec: &Spec,
    mut fs: FlagSet,
    args: &[String],
) -> Result<(Parsed, Globals), i32> {
    add_global_flags(&mut fs);
    let parsed = match fs.parse(args) {
        Ok(p) => p,
        Err(FlagError::Help) => {
            console.out(&help_text(spec, &fs));
            return Err(EXIT_OK);
        }
        Err(e) => {
            console.err(&e.to_string());
            console.err("");
            console.err(&help_text(spec, &fs));
            return Err(EXIT_USAGE);
        }
    };
    let globals = globals(console, &parsed)?;
    Ok((parsed, globals))
}

fn help_text(spec: &Spec, fs: &FlagSet) -> String {
    format!(
        "{}\n\nFlags (the global ones are accepted by every command):\n\n{}",
        spec.help.trim_end(),
        fs.describe().trim_end()
    )
}

fn globals(console: &mut Console, parsed: &Parsed) -> Result<Globals, i32> {
    let format_text = parsed
        .string("format")
        .map(str::to_string)
        .or_else(|| {
            console
                .env_any(&["MAYFLY_FORMAT", "VAULT_FORMAT"])
                .map(str::to_string)
        })
        .unwrap_or_else(|| "table".to_string());
    let Some(format) = Format::parse(&format_text) else {
        console.err(&format!(
            "Invalid output format: {format_text} (expected table, json or yaml)"
        ));
        return Err(EXIT_USAGE);
    };
    let address = parsed
        .string("address")
        .or_else(|| console.env_any(&["MAYFLY_ADDR", "VAULT_ADDR"]))
        .unwrap_or(DEFAULT_ADDRESS)
        .to_string();
    let skip_verify = if parsed.is_set("tls-skip-verify") {
        parsed.bool("tls-skip-verify")
    } else {
        console
            .env_any(&["MAYFLY_SKIP_VERIFY", "VAULT_SKIP_VERIFY"])
            .is_some_and(|v| !matches!(v, "0" | "f" | "F" | "false" | "FALSE" | "False"))
    };
    let ca_cert = parsed
        .string("ca-cert")
        .or_else(|| console.env_any(&["MAYFLY_CACERT", "VAULT_CACERT"]))
        .map(str::to_string);
    // Like Vault, an unparsable VAULT_WRAP_TTL is ignored rather than fatal.
    let wrap_ttl = parsed
        .duration("wrap-ttl")
        .or_else(|| {
            console
                .env_any(&["MAYFLY_WRAP_TTL", "VAULT_WRAP_TTL"])
                .and_then(|v| duration::parse(v).ok())
        })
        .filter(|&nanos| nanos != 0)
        .map(duration::go_string);
    let namespace = parsed
        .string("namespace")
        .or_else(|| console.env_any(&["MAYFLY_NAMESPACE", "VAULT_NAMESPACE"]))
        .and_then(canonical_namespace);
    Ok(Globals {
        format,
        field: parsed
            .string("field")
            .filter(|f| !f.is_empty())
            .map(str::to_string),
        settings: Settings {
            address,
            token: token_helper::lookup(console),
            ca_cert,
            skip_verify,
            namespace,
            wrap_ttl,
        },
    })
}

/// `ns1/ns2/` from `/ns1/ns2` and friends; empty means "no namespace".
fn canonical_namespace(ns: &str) -> Option<String> {
    let ns = ns.trim_start_matches('/');
    if ns.is_empty() {
        return None;
    }
    Some(if ns.ends_with('/') {
        ns.to_string()
    } else {
        format!("{ns}/")
    })
}

impl Globals {
    /// A client for the configured server, or the exit code after
    /// reporting why there is none.
    pub fn client(&self, console: &mut Console) -> Result<Client, i32> {
        Client::new(&self.settings).map_err(|e| {
            console.err(&e);
            EXIT_SERVER
        })
    }
}

/// Picks the subcommand of a command group such as `mayfly token ...`.
/// Without one, with `help`, or with an unknown one, the group's help is
/// printed and the exit code comes back as `Err`.
pub fn subcommand<'a>(
    console: &mut Console,
    group: &str,
    help: &str,
    known: &[&str],
    args: &'a [String],
) -> Result<(&'a str, &'a [String]), i32> {
    let Some((sub, rest)) = args.split_first() else {
        console.err(help);
        return Err(EXIT_USAGE);
    };
    match sub.as_str() {
        "-h" | "-help" | "--help" | "help" => {
            console.out(help);
            Err(EXIT_OK)
        }
        name if known.contains(&name) => Ok((name, rest)),
        other => {
            console.err(&format!("Unknown command: {group} {other}"));
            console.err("");
            console.err(help);
            Err(EXIT_USAGE)
        }
    }
}

/// Reports a usage problem in the command's own words, followed by the
/// command's help.
pub fn usage_error(console: &mut Console, spec: &Spec, message: &str) -> i32 {
    console.err(message);
    console.err("");
    console.err(spec.help.trim_end());
    EXIT_USAGE
}

/// Reports a wrong number of positional arguments.
pub fn arg_count_error(console: &mut Console, spec: &Spec, expected: &str, got: usize) -> i32 {
    let which = if got == 0
        || expected
            .split('-')
            .next()
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|min| got < min)
    {
        "Not enough"
    } else {
        "Too many"
    };
    usage_error(
        console,
        spec,
        &format!("{which} arguments (expected {expected}, got {got})"),
    )
}

/// An I/O error in the words Go uses ("no such file or directory"), as
/// Vault's messages about local files read.
pub fn io_error_text(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => "no such file or directory".to_string(),
        ErrorKind::PermissionDenied => "permission denied".to_string(),
        ErrorKind::IsADirectory => "is a directory".to_string(),
        _ => {
            let text = e.to_string();
            let text = text.split(" (os error").next().unwrap_or_default();
            let mut chars = text.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => String::new(),
            }
        }
    }
}

/// Reports a failed call as `{context}: {error}`.
pub fn api_error(console: &mut Console, context: &str, err: &ApiError) -> i32 {
    console.err(&format!("{context}: {err}"));
    EXIT_SERVER
}

/// Prints a raw value the way `-field` does: with a newline on a terminal,
/// without one when piped so `$(mayfly read -field=x ...)` is exact.
pub fn print_raw(console: &mut Console, text: &str) {
    if console.stdout_is_terminal() {
        console.out(text);
    } else {
        console.out_raw(text);
    }
}

/// Prints arbitrary data for the json/yaml formats.
pub fn print_data(console: &mut Console, format: Format, v: &Value) {
    let text = format::data(format, v);
    console.out(text.trim_end_matches('\n'));
}

/// A string field of a JSON object, empty when missing.
pub fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A boolean field of a JSON object, false when missing.
pub fn bool_field(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// An integer field of a JSON object, zero when missing.
pub fn int_field(v: &Value, key: &str) -> i64 {
    match v.get(key) {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .unwrap_or(0),
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

/// Where a response keeps its payload: some endpoints answer with the
/// fields at the top level, others (or both) inside `data`.
pub fn payload(v: &Value) -> &Value {
    match v.get("data") {
        Some(data @ Value::Object(m)) if !m.is_empty() => data,
        _ => v,
    }
}

/// Prints the server's warnings to standard error, as Vault's table
/// output does before the table itself.
pub fn print_warnings(console: &mut Console, response: &Value) {
    let Some(Value::Array(warnings)) = response.get("warnings") else {
        return;
    };
    if warnings.is_empty() {
        return;
    }
    console.err("WARNING! The following warnings were returned from Mayfly:\n");
    for w in warnings {
        let text = match w {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let wrapped = format::wrap(&format!("* {text}"));
        for line in wrapped.lines() {
            console.err(&format!("  {line}"));
        }
        console.err("");
    }
}

/// Reads a secret from the operator, reporting failures.
pub fn prompt_secret(console: &mut Console, prompt: &str) -> Result<String, i32> {
    match console.read_secret(prompt) {
        Ok(s) if !s.is_empty() => Ok(s),
        Ok(_) => {
            console.err("No value entered");
            Err(EXIT_USAGE)
        }
        Err(e) => {
            console.err(&format!("Error reading input: {e}"));
            Err(EXIT_USAGE)
        }
    }
}
