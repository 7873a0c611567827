//! `kv`: the key/value commands that work the same on KV v1 and v2
//! mounts. A preflight request learns where the mount is and which
//! version it runs; v2 paths are then rewritten to the engine's `data/`,
//! `metadata/`, `delete/`, `undelete/` and `destroy/` endpoints.

use serde_json::{Map, Value, json};

use super::kv_verbs::parse_kv;
use super::output::{
    envelope, is_wrapped, map_table, output_answer, output_list, output_secret, print_field,
    raw_field,
};
use super::{
    EXIT_OK, EXIT_SERVER, EXIT_USAGE, Globals, Spec, api_error, arg_count_error, int_field, parse,
    print_warnings, subcommand, usage_error,
};
use crate::client::{ApiError, Body, Client};
use crate::console::Console;
use crate::duration;
use crate::flags::{FlagSet, Parsed};
use crate::format::Format;

const HELP: &str = "\
Usage: mayfly kv <subcommand> [options] [args]

  Works with the key/value secrets engine, version 1 or 2 alike. Paths
  name the mount and the secret together (secret/app/db), or -mount names
  the mount and the path is relative to it.

Subcommands:
    delete      Delete versions of a secret
    destroy     Permanently remove versions of a secret (v2)
    get         Read a secret
    list        List the secrets under a path
    metadata    Work with a secret's metadata (v2)
    patch       Update some keys of a secret (v2)
    put         Write a secret
    undelete    Restore deleted versions of a secret (v2)";

const GET: Spec = Spec {
    help: "\
Usage: mayfly kv get [options] KEY

  Reads the secret at KEY; on v2, the latest version or -version.

      $ mayfly kv get -mount=secret app/db
      $ mayfly kv get -field=password secret/app/db",
};

const PUT: Spec = Spec {
    help: "\
Usage: mayfly kv put [options] KEY [DATA K=V...]

  Writes the data to KEY, replacing what was there (on v2, as a new
  version). K=@file reads a value from a file, K=- from standard input,
  and a lone - reads a JSON object from standard input. On v2, -cas=0
  writes only if the key does not exist, -cas=N only if N is the current
  version.

      $ mayfly kv put secret/app/db user=app password=s3cr3t",
};

const PATCH: Spec = Spec {
    help: "\
Usage: mayfly kv patch [options] KEY [DATA K=V...]

  Changes some keys of an existing v2 secret and keeps the rest, writing a
  new version. Sends a JSON merge patch, falling back to read-then-write
  when the server or the policy does not allow PATCH; -method=rw forces
  read-then-write, -method=patch forbids the fallback.

      $ mayfly kv patch secret/app/db password=n3w",
};

const LIST: Spec = Spec {
    help: "\
Usage: mayfly kv list [options] PATH

  Lists the keys under PATH; keys ending in / are folders.",
};

const DELETE: Spec = Spec {
    help: "\
Usage: mayfly kv delete [options] KEY

  Deletes the secret at KEY. On v2 this is a soft delete of the latest
  version, or of -versions; \"kv undelete\" restores them.",
};

const UNDELETE: Spec = Spec {
    help: "\
Usage: mayfly kv undelete [options] KEY

  Restores deleted -versions of the v2 secret at KEY.

      $ mayfly kv undelete -versions=3 secret/app/db",
};

const DESTROY: Spec = Spec {
    help: "\
Usage: mayfly kv destroy [options] KEY

  Permanently removes the data of -versions of the v2 secret at KEY; the
  versions stay listed in the metadata as destroyed.",
};

const METADATA_HELP: &str = "\
Usage: mayfly kv metadata <subcommand> [options] KEY

  Works with the metadata of v2 secrets: version history and settings.

Subcommands:
    delete    Delete a secret with all its versions and metadata
    get       Print the metadata and version history of a secret
    put       Change the settings of a secret";

const METADATA_GET: Spec = Spec {
    help: "\
Usage: mayfly kv metadata get [options] KEY

  Prints the metadata of the v2 secret at KEY and the state of each of
  its versions.",
};

const METADATA_PUT: Spec = Spec {
    help: "\
Usage: mayfly kv metadata put [options] KEY

  Changes the settings of the v2 secret at KEY, creating the metadata if
  needed. Only the options given change.

      $ mayfly kv metadata put -max-versions=5 -custom-metadata=owner=ops secret/app/db",
};

const METADATA_DELETE: Spec = Spec {
    help: "\
Usage: mayfly kv metadata delete [options] KEY

  Deletes the v2 secret at KEY: every version and the metadata.",
};

/// Dispatches `mayfly kv ...`.
pub async fn run(console: &mut Console, args: &[String]) -> i32 {
    let known = [
        "delete", "destroy", "get", "list", "metadata", "patch", "put", "undelete",
    ];
    let (sub, rest) = match subcommand(console, "kv", HELP, &known, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    match sub {
        "get" => get(console, rest).await,
        "put" => put(console, rest).await,
        "patch" => patch(console, rest).await,
        "list" => list(console, rest).await,
        "delete" => delete(console, rest).await,
        "undelete" => versions_op(console, rest, &UNDELETE, "undelete").await,
        "destroy" => versions_op(console, rest, &DESTROY, "destroy").await,
        _ => metadata(console, rest).await,
    }
}

async fn metadata(console: &mut Console, args: &[String]) -> i32 {
    let known = ["delete", "get", "put"];
    let (sub, rest) = match subcommand(console, "kv metadata", METADATA_HELP, &known, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    match sub {
        "get" => metadata_get(console, rest).await,
        "put" => metadata_put(console, rest).await,
        _ => metadata_delete(console, rest).await,
    }
}

/// A flag set with `-mount`, which every kv command takes.
fn mount_flags() -> FlagSet {
    let mut fs = FlagSet::new();
    fs.string(
        "mount",
        "Where the KV engine is mounted. With it, the argument is the secret's path \
         inside the mount; without it, the argument includes the mount.",
    );
    fs
}

/// `-versions`, for the commands acting on particular versions.
fn add_versions_flag(fs: &mut FlagSet, usage: &'static str) {
    fs.list("versions", usage);
}

/// The versions given to `-versions`, which may be repeated and may hold
/// comma-separated lists.
fn versions(parsed: &Parsed) -> Vec<String> {
    parsed
        .list("versions")
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

/// Leading and trailing slashes carry no meaning in a KV path.
fn sanitize(path: &str) -> String {
    path.trim().trim_matches('/').to_string()
}

/// Go's `path.Join`: non-empty parts joined by `/`, without doubled or
/// trailing slashes.
fn join(parts: &[&str]) -> String {
    let joined = parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    let mut out = String::with_capacity(joined.len());
    for c in joined.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    if out.len() > 1 {
        out.truncate(out.trim_end_matches('/').len());
    }
    out
}

/// Puts `api_prefix` (`data`, `metadata`, ...) between the mount and the
/// rest of a v2 path. When the mount is reported with namespace parts the
/// path lacks, those parts are dropped until the mount matches.
fn add_prefix(path: &str, mount: &str, api_prefix: &str) -> String {
    if path == mount || path == mount.trim_end_matches('/') {
        return join(&[mount, api_prefix]);
    }
    let mut mount = mount.to_string();
    let mut suffix = path
        .strip_prefix(mount.as_str())
        .unwrap_or(path)
        .to_string();
    while suffix == path {
        let Some((_, rest)) = mount.split_once('/') else {
            break;
        };
        if rest.is_empty() {
            break;
        }
        mount = rest.trim_end_matches('/').to_string();
        suffix = suffix
            .strip_prefix(mount.as_str())
            .unwrap_or(&suffix)
            .to_string();
    }
    join(&[&mount, api_prefix, &suffix])
}

/// Where a command acts, as learned from the preflight.
struct Target {
    /// The mount path the server reported, e.g. `secret/`.
    mount: String,
    v2: bool,
    /// The secret's path including the mount.
    partial: String,
}

impl Target {
    /// The API path: for v2 with `api_prefix` inserted after the mount.
    fn path(&self, api_prefix: &str) -> String {
        if self.v2 {
            add_prefix(&self.partial, &self.mount, api_prefix)
        } else {
            self.partial.clone()
        }
    }
}

/// Asks the server which mount `path` is in and its KV version. A 404
/// means a server without the preflight endpoint, so v1 is assumed as
/// Vault does; any other failure is reported as is.
async fn preflight(
    console: &mut Console,
    client: &Client,
    path: &str,
) -> Result<(String, bool), i32> {
    let result = client
        .without_wrapping()
        .request("GET", &format!("sys/internal/ui/mounts/{path}"), &[], None)
        .await;
    let resp = match result {
        Ok(Some(v)) => v,
        Ok(None) => {
            console.err("nil response from pre-flight request");
            return Err(EXIT_SERVER);
        }
        Err(ApiError::Response { status: 404, .. }) => return Ok((String::new(), false)),
        Err(e) => {
            console.err(&e.to_string());
            return Err(EXIT_SERVER);
        }
    };
    let data = resp.get("data").unwrap_or(&Value::Null);
    let mount = data
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let version = data
        .get("options")
        .and_then(|o| o.get("version"))
        .and_then(Value::as_str)
        .unwrap_or("");
    Ok((mount, version == "2"))
}

/// Resolves the path argument (and `-mount`) into a target.
async fn resolve(
    console: &mut Console,
    client: &Client,
    parsed: &Parsed,
    arg: &str,
) -> Result<Target, i32> {
    let path = sanitize(arg);
    match parsed.string("mount").filter(|m| !m.is_empty()) {
        Some(flag) => {
            let flag = sanitize(flag);
            let (mount, v2) = preflight(console, client, &flag).await?;
            // Without a preflight answer the flag is the best guess of the
            // mount.
            let mount = if mount.is_empty() {
                format!("{flag}/")
            } else {
                mount
            };
            Ok(Target {
                partial: join(&[&mount, &path]),
                mount,
                v2,
            })
        }
        None => {
            let (mount, v2) = preflight(console, client, &path).await?;
            Ok(Target {
                mount,
                v2,
                partial: path,
            })
        }
    }
}

/// The client and target of a command, or the exit code.
async fn connect(
    console: &mut Console,
    globals: &Globals,
    parsed: &Parsed,
    arg: &str,
) -> Result<(Client, Target), i32> {
    let client = globals.client(console)?;
    let target = resolve(console, &client, parsed, arg).await?;
    Ok((client, target))
}

/// `== Title ==` padded with equal signs to roughly `width`.
fn pad_equal_signs(title: &str, width: usize) -> String {
    let mut signs = width as i64 - (title.chars().count() as i64 + 2);
    if signs <= 0 {
        signs = 4;
    }
    if signs % 2 != 0 {
        signs += 1;
    }
    let side = "=".repeat((signs / 2) as usize);
    format!("{side} {title} {side}")
}

/// A section header sized to the table of `map` below it.
fn header_for_map(title: &str, map: &Map<String, Value>) -> String {
    let widest = map.keys().map(|k| k.len()).max().unwrap_or(0);
    // Four spaces between the columns and five for "Value".
    pad_equal_signs(title, widest + 4 + 5)
}

/// Prints the `== Secret Path ==` section.
fn print_path_section(console: &mut Console, path: &str, title: &str) {
    console.out(&pad_equal_signs(title, path.chars().count()));
    console.out(path);
    console.out("");
}

/// Prints a titled `Key`/`Value` section for `map`.
fn print_map_section(console: &mut Console, title: &str, map: &Map<String, Value>) {
    console.out(&header_for_map(title, map));
    if let Some(table) = map_table(map) {
        console.out(&table);
    }
}

async fn get(console: &mut Console, args: &[String]) -> i32 {
    let mut fs = mount_flags();
    fs.int("version", "Version to read (v2). Defaults to the latest.");
    let (parsed, globals) = match parse(console, &GET, fs, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if parsed.args.len() != 1 {
        return arg_count_error(console, &GET, "1", parsed.args.len());
    }
    let (client, target) = match connect(console, &globals, &parsed, &parsed.args[0]).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let full = target.path("data");
    let mut query = Vec::new();
    if let Some(version) = parsed.int("version").filter(|&v| v > 0 && target.v2) {
        query.push(("version".to_string(), version.to_string()));
    }
    // A 404 can still carry a deleted version's metadata, worth showing.
    let secret = match client.request_optional("GET", &full, &query, None).await {
        Ok(Some(v)) => envelope(&v),
        Ok(None) => {
            console.err(&format!("No value found at {full}"));
            return EXIT_SERVER;
        }
        Err(e) => return api_error(console, &format!("Error reading {full}"), &e),
    };
    let data_of = |secret: &Value| -> Option<Map<String, Value>> {
        let data = secret.get("data")?;
        let inner = if target.v2 { data.get("data")? } else { data };
        inner.as_object().cloned()
    };
    if let Some(field) = &globals.field {
        if !target.v2 {
            return print_field(console, globals.format, raw_field(&secret, field), field);
        }
        let Some(data) = data_of(&secret) else {
            console.err(&format!("No data found at {full}"));
            return EXIT_SERVER;
        };
        // "data" could name a key of the secret or the secret itself; a
        // key of that name wins.
        let value = if field == "data" && !data.contains_key("data") {
            raw_field(&secret, field)
        } else {
            data.get(field).cloned()
        };
        return print_field(console, globals.format, value, field);
    }
    if is_wrapped(&secret) || globals.format != Format::Table {
        return output_secret(console, &globals, &secret);
    }
    print_warnings(console, &secret);
    if target.v2 {
        print_path_section(console, &full, "Secret Path");
    }
    let metadata = secret
        .get("data")
        .and_then(|d| d.get("metadata"))
        .and_then(Value::as_object);
    if let Some(metadata) = metadata {
        print_map_section(console, "Metadata", metadata);
        console.out("");
    }
    if let Some(data) = data_of(&secret) {
        print_map_section(console, "Data", &data);
    }
    EXIT_OK
}

/// Prints the answer to a write: the new version's metadata under the
/// path, like Vault.
fn print_write_result(
    console: &mut Console,
    globals: &Globals,
    path: &str,
    secret: Option<Value>,
) -> i32 {
    let Some(secret) = secret.map(|s| envelope(&s)) else {
        let success = format!("Success! Data written to: {path}");
        return output_answer(console, globals, None, Some(&success));
    };
    if let Some(field) = &globals.field {
        return print_field(console, globals.format, raw_field(&secret, field), field);
    }
    let wrapped = secret
        .get("wrap_info")
        .is_some_and(|w| int_field(w, "ttl") != 0);
    if wrapped || globals.format != Format::Table {
        return output_secret(console, globals, &secret);
    }
    print_path_section(console, path, "Secret Path");
    let metadata = secret
        .get("data")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    print_map_section(console, "Metadata", &metadata);
    EXIT_OK
}

/// The K=V data of a write, or the exit code after reporting why not.
fn kv_data(console: &mut Console, args: &[String]) -> Result<Map<String, Value>, i32> {
    parse_kv(console, args).map_err(|e| {
        console.err(&format!("Failed to parse K=V data: {e}"));
        EXIT_USAGE
    })
}

async fn put(console: &mut Console, args: &[String]) -> i32 {
    let mut fs = mount_flags();
    fs.int(
        "cas",
        "Check-and-set (v2): 0 writes only if the key does not exist, N only if the \
         current version is N. Without it the write always happens.",
    );
    let (parsed, globals) = match parse(console, &PUT, fs, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    match parsed.args.len() {
        0 => {
            return usage_error(console, &PUT, "Not enough arguments (expected >1, got 0)");
        }
        1 => return usage_error(console, &PUT, "Must supply data"),
        _ => {}
    }
    let data = match kv_data(console, &parsed.args[1..]) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let (client, target) = match connect(console, &globals, &parsed, &parsed.args[0]).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let full = target.path("data");
    let body = if target.v2 {
        let mut options = Map::new();
        if let Some(cas) = parsed.int("cas").filter(|&c| c > -1) {
            options.insert("cas".into(), cas.into());
        }
        json!({ "data": data, "options": options })
    } else {
        Value::Object(data)
    };
    match client.request("PUT", &full, &[], Some(&body)).await {
        Ok(resp) => print_write_result(console, &globals, &full, resp),
        Err(e) => api_error(console, &format!("Error writing data to {full}"), &e),
    }
}

async fn patch(console: &mut Console, args: &[String]) -> i32 {
    let mut fs = mount_flags();
    fs.int(
        "cas",
        "Check-and-set: patch only if the current version is N. 0 or unset means always.",
    )
    .string(
        "method",
        "\"patch\" sends an HTTP PATCH; \"rw\" reads, updates locally and writes back. \
         Unset tries PATCH and falls back to rw.",
    )
    .list(
        "remove-data",
        "Key to remove from the secret. May be repeated.",
    );
    let (parsed, globals) = match parse(console, &PATCH, fs, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let removals = parsed.list("remove-data");
    if parsed.args.is_empty() {
        return usage_error(console, &PATCH, "Not enough arguments (expected >1, got 0)");
    }
    if removals.is_empty() && parsed.args.len() == 1 {
        return usage_error(console, &PATCH, "Must supply data");
    }
    let mut data = match kv_data(console, &parsed.args[1..]) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let (client, target) = match connect(console, &globals, &parsed, &parsed.args[0]).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    if !target.v2 {
        console.err("K/V engine mount must be version 2 for patch support");
        return EXIT_SERVER;
    }
    let full = target.path("data");
    // A null in a merge patch deletes the key.
    for key in removals {
        data.insert(key, Value::Null);
    }
    let method = parsed.string("method").unwrap_or("");
    let result = match method {
        "rw" => read_then_write(&client, &full, data).await,
        "patch" | "" => {
            let cas = parsed.int("cas").unwrap_or(0);
            merge_patch(console, &client, &full, data, cas, method.is_empty()).await
        }
        other => {
            console.err(&format!(
                "Unsupported method provided to -method flag: {other}"
            ));
            return EXIT_SERVER;
        }
    };
    match result {
        Ok(resp) => print_write_result(console, &globals, &full, resp),
        Err(message) => {
            console.err(&message);
            EXIT_SERVER
        }
    }
}

/// Sends a JSON merge patch. Without an explicit method, servers that do
/// not know PATCH (405) or policies without the patch capability (403)
/// get a read-then-write instead.
async fn merge_patch(
    console: &mut Console,
    client: &Client,
    path: &str,
    data: Map<String, Value>,
    cas: i64,
    fallback: bool,
) -> Result<Option<Value>, String> {
    let mut options = Map::new();
    if cas > 0 {
        options.insert("cas".into(), cas.into());
    }
    let body = json!({ "data": data, "options": options });
    match client
        .send("PATCH", path, &[], Body::MergePatch(&body))
        .await
    {
        Ok(resp) => Ok(resp),
        Err(ApiError::Response { status: 405, .. }) if fallback => {
            read_then_write(client, path, data).await
        }
        Err(ApiError::Response { status: 403, .. }) if fallback => {
            console.err(&format!(
                "Data was written to {path} but we recommend that you add the \"patch\" \
                 capability to your ACL policy in order to use HTTP PATCH in the future."
            ));
            read_then_write(client, path, data).await
        }
        Err(e) => Err(format!("Error writing data to {path}: {e}")),
    }
}

/// Reads the current version, merges `changes` into it and writes it back
/// guarded by check-and-set on the version read.
async fn read_then_write(
    client: &Client,
    path: &str,
    changes: Map<String, Value>,
) -> Result<Option<Value>, String> {
    let current = client
        .request_optional("GET", path, &[], None)
        .await
        .map_err(|e| format!("Error doing pre-read at {path}: {e}"))?
        .ok_or_else(|| format!("No value found at {path}"))?;
    let Some(found) = current.get("data").filter(|d| d.is_object()) else {
        return Err(format!("No value found at {path}"));
    };
    let Some(meta) = found.get("metadata").filter(|m| !m.is_null()) else {
        return Err(format!(
            "No metadata found at {path}; patch only works on existing data"
        ));
    };
    if !meta.is_object() {
        return Err(format!(
            "Metadata found at {path} is not the expected type (JSON object)"
        ));
    }
    let Some(old) = found.get("data").filter(|d| !d.is_null()) else {
        return Err(format!(
            "No data found at {path}; patch only works on existing data"
        ));
    };
    let Some(old) = old.as_object() else {
        return Err(format!(
            "Data found at {path} is not the expected type (JSON object)"
        ));
    };
    let mut merged = old.clone();
    merged.extend(changes);
    let body = json!({
        "data": merged,
        "options": { "cas": meta.get("version").cloned().unwrap_or(Value::Null) },
    });
    client
        .request("PUT", path, &[], Some(&body))
        .await
        .map_err(|e| format!("Error writing data to {path}: {e}"))
}

async fn list(console: &mut Console, args: &[String]) -> i32 {
    let (parsed, globals) = match parse(console, &LIST, mount_flags(), args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let has_mount = parsed.string("mount").is_some_and(|m| !m.is_empty());
    let arg = match parsed.args.as_slice() {
        [] if has_mount => String::new(),
        [one] => one.clone(),
        other => return arg_count_error(console, &LIST, "1", other.len()),
    };
    let (client, target) = match connect(console, &globals, &parsed, &arg).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let full = target.path("metadata");
    match client.request_optional("LIST", &full, &[], None).await {
        Ok(secret) => output_list(console, &globals, secret.as_ref(), &full),
        Err(e) => api_error(console, &format!("Error listing {full}"), &e),
    }
}

async fn delete(console: &mut Console, args: &[String]) -> i32 {
    let mut fs = mount_flags();
    add_versions_flag(
        &mut fs,
        "Versions to delete (v2), comma-separated or repeated. Defaults to the latest.",
    );
    let (parsed, globals) = match parse(console, &DELETE, fs, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if parsed.args.len() != 1 {
        return arg_count_error(console, &DELETE, "1", parsed.args.len());
    }
    let (client, target) = match connect(console, &globals, &parsed, &parsed.args[0]).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let full = target.path("data");
    let chosen = versions(&parsed);
    let result = if target.v2 && !chosen.is_empty() {
        let body = json!({ "versions": chosen });
        client
            .request("PUT", &target.path("delete"), &[], Some(&body))
            .await
    } else {
        client.request("DELETE", &full, &[], None).await
    };
    let success = format!("Success! Data deleted (if it existed) at: {full}");
    match result {
        Ok(resp) => output_answer(console, &globals, resp, Some(&success)),
        Err(e) => api_error(console, &format!("Error deleting {full}"), &e),
    }
}

/// `undelete` and `destroy`: v2 operations on listed versions.
async fn versions_op(console: &mut Console, args: &[String], spec: &Spec, op: &str) -> i32 {
    let mut fs = mount_flags();
    add_versions_flag(
        &mut fs,
        "Versions to act on, comma-separated or repeated. Required.",
    );
    let (parsed, globals) = match parse(console, spec, fs, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if parsed.args.len() != 1 {
        return arg_count_error(console, spec, "1", parsed.args.len());
    }
    let chosen = versions(&parsed);
    if chosen.is_empty() {
        return usage_error(
            console,
            spec,
            &format!(
                "No versions provided, use the \"-versions\" flag to specify the version to {op}."
            ),
        );
    }
    let (client, target) = match connect(console, &globals, &parsed, &parsed.args[0]).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    if !target.v2 {
        let name = if op == "undelete" {
            "Undelete"
        } else {
            "Destroy"
        };
        console.err(&format!("{name} not supported on KV Version 1"));
        return EXIT_USAGE;
    }
    let path = target.path(op);
    let body = json!({ "versions": chosen });
    match client.request("PUT", &path, &[], Some(&body)).await {
        Ok(resp) => {
            let success = format!("Success! Data written to: {path}");
            output_answer(console, &globals, resp, Some(&success))
        }
        Err(e) => api_error(console, &format!("Error writing data to {path}"), &e),
    }
}

/// Resolves a metadata command's target, which must be a v2 mount.
async fn metadata_target(
    console: &mut Console,
    globals: &Globals,
    parsed: &Parsed,
    spec: &Spec,
) -> Result<(Client, String), i32> {
    if parsed.args.len() != 1 {
        return Err(arg_count_error(console, spec, "1", parsed.args.len()));
    }
    let (client, target) = connect(console, globals, parsed, &parsed.args[0]).await?;
    if !target.v2 {
        console.err("Metadata not supported on KV Version 1");
        return Err(EXIT_USAGE);
    }
    Ok((client, target.path("metadata")))
}

async fn metadata_get(console: &mut Console, args: &[String]) -> i32 {
    let (parsed, globals) = match parse(console, &METADATA_GET, mount_flags(), args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let (client, full) = match metadata_target(console, &globals, &parsed, &METADATA_GET).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let mut secret = match client.request_optional("GET", &full, &[], None).await {
        Ok(Some(v)) => envelope(&v),
        Ok(None) => {
            console.err(&format!("No value found at {full}"));
            return EXIT_SERVER;
        }
        Err(e) => return api_error(console, &format!("Error reading {full}"), &e),
    };
    if let Some(field) = &globals.field {
        return print_field(console, globals.format, raw_field(&secret, field), field);
    }
    if is_wrapped(&secret) || globals.format != Format::Table {
        return output_secret(console, &globals, &secret);
    }
    let versions = secret
        .get_mut("data")
        .and_then(Value::as_object_mut)
        .and_then(|d| d.remove("versions"))
        .filter(|v| !v.is_null());
    let Some(Value::Object(versions)) = versions else {
        console.err(&format!("No value found at {full}"));
        output_secret(console, &globals, &secret);
        return EXIT_SERVER;
    };
    print_path_section(console, &full, "Metadata Path");
    let rest = secret
        .get("data")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    console.out(&header_for_map("Metadata", &rest));
    output_secret(console, &globals, &secret);
    let mut numbers: Vec<(i64, &Value)> = Vec::new();
    for (key, value) in &versions {
        let Ok(n) = key.parse::<i64>() else {
            console.err(&format!("Error parsing version {key}"));
            return EXIT_SERVER;
        };
        numbers.push((n, value));
    }
    numbers.sort_by_key(|(n, _)| *n);
    for (n, value) in numbers {
        let version = value.as_object().cloned().unwrap_or_default();
        console.out(&format!(
            "\n{}",
            header_for_map(&format!("Version {n}"), &version)
        ));
        if let Some(table) = map_table(&version) {
            console.out(&table);
        }
    }
    EXIT_OK
}

async fn metadata_put(console: &mut Console, args: &[String]) -> i32 {
    let mut fs = mount_flags();
    fs.int(
        "max-versions",
        "Number of versions to keep. Unset keeps the engine's setting.",
    )
    .bool(
        "cas-required",
        "Require check-and-set on every write of this secret.",
    )
    .duration(
        "delete-version-after",
        "Delete each version this long after it is written (\"3h25m19s\"). Cannot exceed \
         the engine's setting.",
    )
    .map(
        "custom-metadata",
        "Version-independent key=value metadata describing the secret. May be repeated.",
    );
    let (parsed, globals) = match parse(console, &METADATA_PUT, fs, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let (client, full) = match metadata_target(console, &globals, &parsed, &METADATA_PUT).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    let mut body = Map::new();
    if let Some(max) = parsed.int("max-versions").filter(|&m| m >= 0) {
        body.insert("max_versions".into(), max.into());
    }
    if let Some(after) = parsed.duration("delete-version-after").filter(|&d| d >= 0) {
        body.insert(
            "delete_version_after".into(),
            duration::go_string(after).into(),
        );
    }
    if parsed.is_set("cas-required") {
        body.insert("cas_required".into(), parsed.bool("cas-required").into());
    }
    let custom = parsed.map("custom-metadata");
    if !custom.is_empty() {
        body.insert("custom_metadata".into(), json!(custom));
    }
    match client
        .request("PUT", &full, &[], Some(&Value::Object(body)))
        .await
    {
        Ok(resp) => {
            let success = format!("Success! Data written to: {full}");
            output_answer(console, &globals, resp, Some(&success))
        }
        Err(e) => api_error(console, &format!("Error writing data to {full}"), &e),
    }
}

async fn metadata_delete(console: &mut Console, args: &[String]) -> i32 {
    let (parsed, globals) = match parse(console, &METADATA_DELETE, mount_flags(), args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let (client, full) = match metadata_target(console, &globals, &parsed, &METADATA_DELETE).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    if let Err(e) = client.request("DELETE", &full, &[], None).await {
        return api_error(console, &format!("Error deleting {full}"), &e);
    }
    console.out(&format!("Success! Data deleted (if it existed) at: {full}"));
    EXIT_OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(
            add_prefix("secret/foo", "secret/", "data"),
            "secret/data/foo"
        );
        assert_eq!(
            add_prefix("secret/a/b", "secret/", "metadata"),
            "secret/metadata/a/b"
        );
        assert_eq!(
            add_prefix("secret", "secret/", "metadata"),
            "secret/metadata"
        );
        assert_eq!(add_prefix("secret/", "secret/", "data"), "secret/data");
        assert_eq!(add_prefix("kv/x", "ns1/kv/", "data"), "kv/data/x");
        assert_eq!(add_prefix("a/b/c", "a/b/", "undelete"), "a/b/undelete/c");
    }

    #[test]
    fn joins() {
        assert_eq!(join(&["secret/", "foo"]), "secret/foo");
        assert_eq!(join(&["", "foo"]), "foo");
        assert_eq!(join(&["secret/", ""]), "secret");
        assert_eq!(join(&["a//", "/b/"]), "a/b");
    }

    #[test]
    fn headers() {
        assert_eq!(pad_equal_signs("Secret Path", 17), "== Secret Path ==");
        assert_eq!(pad_equal_signs("Secret Path", 15), "= Secret Path =");
        assert_eq!(pad_equal_signs("Secret Path", 3), "== Secret Path ==");
        let mut meta = Map::new();
        meta.insert("custom_metadata".into(), Value::Null);
        assert_eq!(
            header_for_map("Metadata", &meta),
            "======= Metadata ======="
        );
        let mut data = Map::new();
        data.insert("passcode".into(), Value::Null);
        assert_eq!(header_for_map("Data", &data), "====== Data ======");
        assert_eq!(header_for_map("Data", &Map::new()), "== Data ==");
    }

    #[test]
    fn version_lists() {
        let mut fs = FlagSet::new();
        add_versions_flag(&mut fs, "");
        let args: Vec<String> = ["-versions=1, 2", "-versions", "3,,"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let parsed = fs.parse(&args).unwrap();
        assert_eq!(versions(&parsed), vec!["1", "2", "3"]);
    }
}
