//! What `secrets` and `auth` share: both manage mounts (of secrets engines
//! under `sys/mounts`, of auth methods under `sys/auth`) with the same
//! enable options, tune options, listing tables and move protocol; only
//! the paths and the words differ.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::output::{envelope, is_wrapped, output_secret};
use super::{
    EXIT_OK, Globals, Spec, api_error, arg_count_error, bool_field, int_field, parse, print_data,
    str_field, subcommand,
};
use crate::client::Client;
use crate::console::Console;
use crate::duration;
use crate::flags::{FlagSet, Parsed};
use crate::format::{self, Format};

/// How long `move` waits between polls of a migration's status.
const MOVE_POLL: Duration = Duration::from_secs(10);

/// Which kind of mount a command manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Secrets,
    Auth,
}

impl Kind {
    /// Where mounts of this kind are enabled, disabled and listed.
    fn api(self) -> &'static str {
        match self {
            Kind::Secrets => "sys/mounts",
            Kind::Auth => "sys/auth",
        }
    }

    /// The tune endpoint: auth mounts are tuned through `sys/mounts/auth/`.
    fn tune_path(self, mount: &str) -> String {
        match self {
            Kind::Secrets => format!("sys/mounts/{mount}tune"),
            Kind::Auth => format!("sys/mounts/auth/{mount}tune"),
        }
    }

    /// "secrets engine" or "auth method", as the messages say it.
    fn noun(self) -> &'static str {
        match self {
            Kind::Secrets => "secrets engine",
            Kind::Auth => "auth method",
        }
    }
}

/// The help texts of one command group.
pub struct Texts {
    pub group: &'static str,
    pub help: &'static str,
    pub enable: Spec,
    pub disable: Spec,
    pub list: Spec,
    pub tune: Spec,
    pub move_: Spec,
    /// Usage of `list -detailed`.
    pub detailed: &'static str,
}

/// Dispatches `mayfly secrets ...` or `mayfly auth ...`.
pub async fn run(console: &mut Console, kind: Kind, texts: &Texts, args: &[String]) -> i32 {
    let known = ["disable", "enable", "list", "move", "tune"];
    let (sub, rest) = match subcommand(console, texts.group, texts.help, &known, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let mut fs = FlagSet::new();
    let spec = match sub {
        "enable" => {
            add_enable_flags(&mut fs, kind);
            &texts.enable
        }
        "disable" => &texts.disable,
        "list" => {
            fs.bool("detailed", texts.detailed);
            &texts.list
        }
        "tune" => {
            add_tune_flags(&mut fs, kind);
            &texts.tune
        }
        _ => &texts.move_,
    };
    let (parsed, globals) = match parse(console, spec, fs, rest) {
        Ok(v) => v,
        Err(code) => return code,
    };
    match sub {
        "enable" => enable(console, spec, kind, &parsed, &globals).await,
        "disable" => disable(console, spec, kind, &parsed, &globals).await,
        "list" => list(console, spec, kind, &parsed, &globals).await,
        "tune" => tune(console, spec, kind, &parsed, &globals).await,
        _ => move_mount(console, spec, kind, &parsed, &globals).await,
    }
}

/// `path/` with exactly one trailing slash and none leading, the form
/// mount paths are shown and compared in.
fn mount_path(path: &str) -> String {
    let trimmed = path.trim().trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}/")
    }
}

/// Adds the options `secrets enable` and `auth enable` accept.
fn add_enable_flags(fs: &mut FlagSet, kind: Kind) {
    fs.string(
        "description",
        "Human-friendly description of the mount, shown by list.",
    )
    .string(
        "path",
        "Where to enable it. Defaults to the type (kv -> kv/).",
    )
    .duration(
        "default-lease-ttl",
        "Default lease TTL for the mount. Defaults to the server's default.",
    )
    .duration(
        "max-lease-ttl",
        "Maximum lease TTL for the mount. Defaults to the server's maximum.",
    );
    add_config_flags(fs, kind);
    if kind == Kind::Secrets {
        fs.bool(
            "force-no-cache",
            "Disable caching of responses for this secrets engine.",
        );
    }
    fs.string(
        "plugin-name",
        "Name of the plugin to run when the type is \"plugin\".",
    )
    .bool(
        "local",
        "Mark the mount as local-only: not replicated and not removed by replication.",
    )
    .bool(
        "seal-wrap",
        "Seal-wrap critical values stored by the mount.",
    )
    .bool(
        "external-entropy-access",
        "Give the mount access to the server's external entropy source.",
    );
    add_options_flags(fs);
}

/// Adds the options `secrets tune` and `auth tune` accept.
fn add_tune_flags(fs: &mut FlagSet, kind: Kind) {
    fs.duration(
        "default-lease-ttl",
        "Default lease TTL. \"system\" (or a negative value) resets it to the server's default.",
    )
    .duration(
        "max-lease-ttl",
        "Maximum lease TTL. \"system\" (or a negative value) resets it to the server's maximum.",
    )
    .string(
        "description",
        "Human-friendly description of the mount; replaces the stored one.",
    );
    add_config_flags(fs, kind);
    add_options_flags(fs);
}

/// Config options both enable and tune take.
fn add_config_flags(fs: &mut FlagSet, kind: Kind) {
    fs.list(
        "audit-non-hmac-request-keys",
        "Request data key audit devices log without HMAC. May be repeated.",
    )
    .list(
        "audit-non-hmac-response-keys",
        "Response data key audit devices log without HMAC. May be repeated.",
    )
    .string(
        "listing-visibility",
        "Visibility of the mount in the UI listing: \"unauth\" or \"hidden\".",
    )
    .list(
        "passthrough-request-headers",
        "Request header passed through to the plugin. May be repeated.",
    )
    .list(
        "allowed-response-headers",
        "Response header the plugin may set. May be repeated.",
    )
    .string("plugin-version", "Semantic version of the plugin to run.");
    if kind == Kind::Auth {
        fs.string(
            "token-type",
            "Type of token the method issues: service, batch, default-service or default-batch.",
        );
    }
}

fn add_options_flags(fs: &mut FlagSet) {
    fs.map(
        "options",
        "Mount option as key=value, such as version=2 for kv. May be repeated.",
    )
    .int(
        "version",
        "Version of the engine to run, for engines that have versions (kv). Same as \
         -options=version=N.",
    );
}

/// The config keys set only when their flag was given, flag name first.
const OPTIONAL_CONFIG: [(&str, &str); 7] = [
    ("audit-non-hmac-request-keys", "audit_non_hmac_request_keys"),
    (
        "audit-non-hmac-response-keys",
        "audit_non_hmac_response_keys",
    ),
    ("listing-visibility", "listing_visibility"),
    ("passthrough-request-headers", "passthrough_request_headers"),
    ("allowed-response-headers", "allowed_response_headers"),
    ("token-type", "token_type"),
    ("plugin-version", "plugin_version"),
];

/// Copies the config flags that were given into `config`; lists stay
/// lists even when given once.
fn optional_config(parsed: &Parsed, config: &mut Map<String, Value>) {
    for (flag, key) in OPTIONAL_CONFIG {
        if !parsed.is_set(flag) {
            continue;
        }
        let value = match parsed.string(flag) {
            Some(s) => Value::String(s.to_string()),
            None => Value::from(parsed.list(flag)),
        };
        config.insert(key.to_string(), value);
    }
}

/// `-options` plus `-version`, or null when neither was given.
fn options(parsed: &Parsed) -> Value {
    let mut options = parsed.map("options");
    if let Some(version) = parsed.int("version").filter(|&v| v > 0) {
        options.insert("version".to_string(), version.to_string());
    }
    if options.is_empty() {
        Value::Null
    } else {
        json!(options)
    }
}

/// A TTL for tune: empty leaves it alone, negative resets it.
fn tune_ttl(nanos: Option<i64>) -> String {
    match nanos.unwrap_or(0) {
        0 => String::new(),
        n if n < 0 => "system".to_string(),
        n => duration::go_string(n),
    }
}

/// The body of an enable request.
fn enable_body(parsed: &Parsed, kind: Kind, mount_type: &str) -> Value {
    let mut config = Map::new();
    config.insert("options".into(), Value::Null);
    for (flag, key) in [
        ("default-lease-ttl", "default_lease_ttl"),
        ("max-lease-ttl", "max_lease_ttl"),
    ] {
        let nanos = parsed.duration(flag).unwrap_or(0);
        config.insert(key.into(), duration::go_string(nanos).into());
    }
    config.insert(
        "force_no_cache".into(),
        (kind == Kind::Secrets && parsed.bool("force-no-cache")).into(),
    );
    optional_config(parsed, &mut config);
    json!({
        "type": mount_type,
        "description": parsed.string("description").unwrap_or(""),
        "config": config,
        "local": parsed.bool("local"),
        "seal_wrap": parsed.bool("seal-wrap"),
        "external_entropy_access": parsed.bool("external-entropy-access"),
        "options": options(parsed),
    })
}

/// The body of a tune request: only what was asked to change.
fn tune_body(parsed: &Parsed) -> Value {
    let mut body = Map::new();
    body.insert("options".into(), options(parsed));
    body.insert(
        "default_lease_ttl".into(),
        tune_ttl(parsed.duration("default-lease-ttl")).into(),
    );
    if parsed.is_set("description") {
        body.insert(
            "description".into(),
            parsed.string("description").unwrap_or("").into(),
        );
    }
    body.insert(
        "max_lease_ttl".into(),
        tune_ttl(parsed.duration("max-lease-ttl")).into(),
    );
    body.insert("force_no_cache".into(), false.into());
    optional_config(parsed, &mut body);
    Value::Object(body)
}

/// `secrets enable` / `auth enable`.
async fn enable(
    console: &mut Console,
    spec: &Spec,
    kind: Kind,
    parsed: &Parsed,
    globals: &Globals,
) -> i32 {
    if parsed.args.len() != 1 {
        return arg_count_error(console, spec, "1", parsed.args.len());
    }
    let mut mount_type = parsed.args[0].trim().to_string();
    let plugin_name = parsed.string("plugin-name").unwrap_or("");
    if mount_type == "plugin" {
        mount_type = plugin_name.to_string();
    }
    let path = mount_path(parsed.string("path").unwrap_or(&mount_type));
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let body = enable_body(parsed, kind, &mount_type);
    let url = format!("{}/{}", kind.api(), path.trim_end_matches('/'));
    if let Err(e) = client.request("POST", &url, &[], Some(&body)).await {
        let context = match kind {
            Kind::Secrets => "Error enabling".to_string(),
            Kind::Auth => format!("Error enabling {mount_type} auth"),
        };
        return api_error(console, &context, &e);
    }
    let mut thing = format!("{mount_type} {}", kind.noun());
    if let Some(version) = parsed.string("plugin-version").filter(|v| !v.is_empty()) {
        thing.push_str(&format!(" version {version}"));
    }
    match kind {
        Kind::Secrets => console.out(&format!("Success! Enabled the {thing} at: {path}")),
        Kind::Auth => console.out(&format!("Success! Enabled {thing} at: {path}")),
    }
    EXIT_OK
}

/// `secrets disable` / `auth disable`.
async fn disable(
    console: &mut Console,
    spec: &Spec,
    kind: Kind,
    parsed: &Parsed,
    globals: &Globals,
) -> i32 {
    if parsed.args.len() != 1 {
        return arg_count_error(console, spec, "1", parsed.args.len());
    }
    let path = mount_path(&parsed.args[0]);
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let url = format!("{}/{}", kind.api(), path.trim_end_matches('/'));
    if let Err(e) = client.request("DELETE", &url, &[], None).await {
        return api_error(
            console,
            &format!("Error disabling {} at {path}", kind.noun()),
            &e,
        );
    }
    console.out(&format!(
        "Success! Disabled the {} (if it existed) at: {path}",
        kind.noun()
    ));
    EXIT_OK
}

/// `secrets tune` / `auth tune`.
async fn tune(
    console: &mut Console,
    spec: &Spec,
    kind: Kind,
    parsed: &Parsed,
    globals: &Globals,
) -> i32 {
    if parsed.args.len() != 1 {
        return arg_count_error(console, spec, "1", parsed.args.len());
    }
    let path = mount_path(&parsed.args[0]);
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let body = tune_body(parsed);
    if let Err(e) = client
        .request("POST", &kind.tune_path(&path), &[], Some(&body))
        .await
    {
        return api_error(console, &format!("Error tuning {} {path}", kind.noun()), &e);
    }
    console.out(&format!("Success! Tuned the {} at: {path}", kind.noun()));
    EXIT_OK
}

/// `secrets list` / `auth list`.
async fn list(
    console: &mut Console,
    spec: &Spec,
    kind: Kind,
    parsed: &Parsed,
    globals: &Globals,
) -> i32 {
    if !parsed.args.is_empty() {
        return arg_count_error(console, spec, "0", parsed.args.len());
    }
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let resp = match client.request("GET", kind.api(), &[], None).await {
        Ok(v) => envelope(&v.unwrap_or(Value::Null)),
        Err(e) => {
            let context = match kind {
                Kind::Secrets => "Error listing secrets engines",
                Kind::Auth => "Error listing enabled authentications",
            };
            return api_error(console, context, &e);
        }
    };
    if is_wrapped(&resp) {
        return output_secret(console, globals, &resp);
    }
    let mounts = mounts_of(&resp);
    match globals.format {
        Format::Table if parsed.bool("detailed") => {
            console.out(&detailed_table(&mounts, kind));
        }
        Format::Table => console.out(&simple_table(&mounts, kind)),
        other => {
            let shaped: Map<String, Value> = mounts
                .iter()
                .map(|(path, mount)| (path.clone(), mount_json(mount)))
                .collect();
            print_data(console, other, &Value::Object(shaped));
        }
    }
    EXIT_OK
}

/// The mounts of a listing, sorted by path. The listing is the response
/// data; servers also copy it to the top level, which is used when there
/// is no data.
fn mounts_of(resp: &Value) -> Vec<(String, Value)> {
    let source = match resp.get("data") {
        Some(Value::Object(m)) if !m.is_empty() => m.clone(),
        _ => resp.as_object().cloned().unwrap_or_default(),
    };
    let mut mounts: Vec<(String, Value)> = source
        .into_iter()
        .filter(|(_, v)| v.is_object() && v.get("type").is_some())
        .collect();
    mounts.sort_by(|a, b| a.0.cmp(&b.0));
    mounts
}

fn config(mount: &Value) -> &Value {
    mount.get("config").unwrap_or(&Value::Null)
}

/// `Path  Type  Accessor  Description` (plus `Version` for auth).
fn simple_table(mounts: &[(String, Value)], kind: Kind) -> String {
    let mut header = vec!["Path", "Type", "Accessor", "Description"];
    if kind == Kind::Auth {
        header.push("Version");
    }
    let rows: Vec<Vec<String>> = mounts
        .iter()
        .map(|(path, m)| {
            let mut row = vec![
                path.clone(),
                str_field(m, "type").to_string(),
                str_field(m, "accessor").to_string(),
                str_field(m, "description").to_string(),
            ];
            if kind == Kind::Auth {
                row.push(str_field(m, "plugin_version").to_string());
            }
            row
        })
        .collect();
    format::table(&header, &rows)
}

/// The `-detailed` table: TTLs, replication, options and plugin details.
fn detailed_table(mounts: &[(String, Value)], kind: Kind) -> String {
    let sixth = match kind {
        Kind::Secrets => "Force No Cache",
        Kind::Auth => "Token Type",
    };
    let header = [
        "Path",
        "Plugin",
        "Accessor",
        "Default TTL",
        "Max TTL",
        sixth,
        "Replication",
        "Seal Wrap",
        "External Entropy Access",
        "Options",
        "Description",
        "UUID",
        "Version",
        "Running Version",
        "Running SHA256",
        "Deprecation Status",
    ];
    let rows: Vec<Vec<String>> = mounts
        .iter()
        .map(|(path, m)| {
            let mount_type = str_field(m, "type");
            let cfg = config(m);
            // System mounts have no TTLs of their own; zero means "the
            // server's default".
            let ttl = |key: &str| match (mount_type, int_field(cfg, key)) {
                ("system" | "cubbyhole", _) => String::new(),
                (_, 0) => "system".to_string(),
                (_, n) => n.to_string(),
            };
            let plugin = if mount_type == "plugin" {
                str_field(cfg, "plugin_name")
            } else {
                mount_type
            };
            let sixth = match kind {
                Kind::Secrets => bool_field(cfg, "force_no_cache").to_string(),
                Kind::Auth => str_field(cfg, "token_type").to_string(),
            };
            let replication = if bool_field(m, "local") {
                "local"
            } else {
                "replicated"
            };
            vec![
                path.clone(),
                plugin.to_string(),
                str_field(m, "accessor").to_string(),
                ttl("default_lease_ttl"),
                ttl("max_lease_ttl"),
                sixth,
                replication.to_string(),
                bool_field(m, "seal_wrap").to_string(),
                bool_field(m, "external_entropy_access").to_string(),
                go_string_map(m.get("options")),
                str_field(m, "description").to_string(),
                str_field(m, "uuid").to_string(),
                str_field(m, "plugin_version").to_string(),
                str_field(m, "running_plugin_version").to_string(),
                str_field(m, "running_sha256").to_string(),
                str_field(m, "deprecation_status").to_string(),
            ]
        })
        .collect();
    format::table(&header, &rows)
}

/// A `map[string]string` as Go prints it; a missing map is empty.
fn go_string_map(v: Option<&Value>) -> String {
    match v {
        Some(m @ Value::Object(_)) => format::go_value(m),
        _ => "map[]".to_string(),
    }
}

/// One mount in the layout the Vault CLI prints for `-format=json`.
fn mount_json(m: &Value) -> Value {
    let cfg = config(m);
    let mut c = Map::new();
    c.insert(
        "default_lease_ttl".into(),
        int_field(cfg, "default_lease_ttl").into(),
    );
    c.insert(
        "max_lease_ttl".into(),
        int_field(cfg, "max_lease_ttl").into(),
    );
    c.insert(
        "force_no_cache".into(),
        bool_field(cfg, "force_no_cache").into(),
    );
    // Present only when set, as the Go client omits empty ones.
    for key in [
        "audit_non_hmac_request_keys",
        "audit_non_hmac_response_keys",
        "listing_visibility",
        "passthrough_request_headers",
        "allowed_response_headers",
        "token_type",
        "allowed_managed_keys",
        "plugin_name",
    ] {
        let value = cfg.get(key).filter(|v| match v {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => true,
        });
        if let Some(v) = value {
            c.insert(key.into(), v.clone());
        }
    }
    let options = match m.get("options") {
        Some(o @ Value::Object(_)) => super::output::sorted(o),
        _ => Value::Null,
    };
    json!({
        "uuid": str_field(m, "uuid"),
        "type": str_field(m, "type"),
        "description": str_field(m, "description"),
        "accessor": str_field(m, "accessor"),
        "config": c,
        "options": options,
        "local": bool_field(m, "local"),
        "seal_wrap": bool_field(m, "seal_wrap"),
        "external_entropy_access": bool_field(m, "external_entropy_access"),
        "plugin_version": str_field(m, "plugin_version"),
        "running_plugin_version": str_field(m, "running_plugin_version"),
        "running_sha256": str_field(m, "running_sha256"),
        "deprecation_status": str_field(m, "deprecation_status"),
    })
}

/// `secrets move` / `auth move`: starts the migration, then polls until
/// it succeeds or fails.
async fn move_mount(
    console: &mut Console,
    spec: &Spec,
    kind: Kind,
    parsed: &Parsed,
    globals: &Globals,
) -> i32 {
    if parsed.args.len() != 2 {
        return arg_count_error(console, spec, "2", parsed.args.len());
    }
    let source = ensure_trailing_slash(&parsed.args[0]);
    let destination = ensure_trailing_slash(&parsed.args[1]);
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let noun = kind.noun();
    let body = json!({"from": source, "to": destination});
    let resp = match client
        .request("POST", "sys/remount", &[], Some(&body))
        .await
    {
        Ok(v) => v.unwrap_or(Value::Null),
        Err(e) => {
            return api_error(
                console,
                &format!("Error moving {noun} {source} to {destination}"),
                &e,
            );
        }
    };
    let id = super::payload(&resp)
        .get("migration_id")
        .or_else(|| resp.get("migration_id"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if id.is_empty() {
        // Servers that move synchronously answer without a migration to
        // follow; the move is already done.
        console.out(&format!("Success! Moved {noun} {source} to: {destination}"));
        return EXIT_OK;
    }
    console.out(&format!(
        "Started moving {noun} {source} to {destination}, with migration ID {id}"
    ));
    poll_move(console, &client, noun, &source, &destination, &id).await
}

async fn poll_move(
    console: &mut Console,
    client: &Client,
    noun: &str,
    source: &str,
    destination: &str,
    id: &str,
) -> i32 {
    let what = format!("{noun} {source} to {destination}, with migration ID {id}");
    loop {
        let status = match client
            .request("GET", &format!("sys/remount/status/{id}"), &[], None)
            .await
        {
            Ok(v) => v.unwrap_or(Value::Null),
            Err(e) => {
                return api_error(
                    console,
                    &format!("Error checking migration status of {noun} {source} to {destination}"),
                    &e,
                );
            }
        };
        let info = super::payload(&status)
            .get("migration_info")
            .unwrap_or(&Value::Null);
        match str_field(info, "status") {
            "success" => {
                console.out(&format!("Success! Finished moving {what}"));
                return EXIT_OK;
            }
            "failure" => {
                // Vault reports a failed migration but still exits 0: the
                // request itself was accepted and processed.
                console.err(&format!("Failure! Error encountered moving {what}"));
                return EXIT_OK;
            }
            _ => {
                console.out(&format!(
                    "Waiting for terminal status in migration of {what}"
                ));
                tokio::time::sleep(MOVE_POLL).await;
            }
        }
    }
}

/// Appends a slash unless there is one; unlike [`mount_path`] the rest of
/// the text is kept as given, since move paths may carry prefixes.
fn ensure_trailing_slash(s: &str) -> String {
    let s = s.trim();
    if s.is_empty() || s.ends_with('/') {
        s.to_string()
    } else {
        format!("{s}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(kind: Kind, tune: bool, args: &[&str]) -> Parsed {
        let mut fs = FlagSet::new();
        if tune {
            add_tune_flags(&mut fs, kind);
        } else {
            add_enable_flags(&mut fs, kind);
        }
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        fs.parse(&args).unwrap()
    }

    #[test]
    fn enable_bodies() {
        let p = parse(Kind::Secrets, false, &["kv"]);
        assert_eq!(
            enable_body(&p, Kind::Secrets, "kv"),
            json!({
                "type": "kv", "description": "",
                "config": {"options": null, "default_lease_ttl": "0s", "max_lease_ttl": "0s",
                           "force_no_cache": false},
                "local": false, "seal_wrap": false, "external_entropy_access": false,
                "options": null
            })
        );
        let p = parse(
            Kind::Auth,
            false,
            &[
                "-default-lease-ttl=1h",
                "-options=a=b",
                "-version=2",
                "-token-type=batch",
                "-audit-non-hmac-request-keys=x",
                "-local",
                "approle",
            ],
        );
        let body = enable_body(&p, Kind::Auth, "approle");
        assert_eq!(body["config"]["default_lease_ttl"], json!("1h0m0s"));
        assert_eq!(body["config"]["token_type"], json!("batch"));
        assert_eq!(body["config"]["audit_non_hmac_request_keys"], json!(["x"]));
        assert_eq!(body["options"], json!({"a": "b", "version": "2"}));
        assert_eq!(body["local"], json!(true));
    }

    #[test]
    fn tune_bodies() {
        let p = parse(Kind::Secrets, true, &["kv"]);
        assert_eq!(
            tune_body(&p),
            json!({"options": null, "default_lease_ttl": "", "max_lease_ttl": "",
                   "force_no_cache": false})
        );
        let p = parse(
            Kind::Secrets,
            true,
            &[
                "-default-lease-ttl=90m",
                "-max-lease-ttl=system",
                "-description=",
                "-listing-visibility=unauth",
                "kv",
            ],
        );
        let body = tune_body(&p);
        assert_eq!(body["default_lease_ttl"], json!("1h30m0s"));
        assert_eq!(body["max_lease_ttl"], json!("system"));
        assert_eq!(body["description"], json!(""));
        assert_eq!(body["listing_visibility"], json!("unauth"));
    }

    #[test]
    fn paths() {
        assert_eq!(mount_path("/kv/"), "kv/");
        assert_eq!(mount_path("a/b"), "a/b/");
        assert_eq!(ensure_trailing_slash("auth/x"), "auth/x/");
        assert_eq!(Kind::Auth.tune_path("up/"), "sys/mounts/auth/up/tune");
        assert_eq!(Kind::Secrets.tune_path("kv/"), "sys/mounts/kv/tune");
    }

    #[test]
    fn tables() {
        let mounts = vec![
            (
                "cubbyhole/".to_string(),
                json!({"type": "cubbyhole", "accessor": "cubbyhole_1", "description": "private",
                       "local": true, "config": {"default_lease_ttl": 0, "max_lease_ttl": 0}}),
            ),
            (
                "kv/".to_string(),
                json!({"type": "kv", "accessor": "kv_2", "description": "",
                       "options": {"version": "2"},
                       "config": {"default_lease_ttl": 3600, "max_lease_ttl": 0}}),
            ),
        ];
        assert_eq!(
            simple_table(&mounts, Kind::Secrets),
            "\
Path          Type         Accessor       Description
----          ----         --------       -----------
cubbyhole/    cubbyhole    cubbyhole_1    private
kv/           kv           kv_2           n/a"
        );
        let detailed = detailed_table(&mounts, Kind::Secrets);
        let lines: Vec<&str> = detailed.lines().collect();
        assert!(lines[0].starts_with("Path          Plugin       Accessor       Default TTL"));
        assert!(lines[2].contains("cubbyhole_1    n/a            n/a        false"));
        assert!(lines[3].contains("kv_2           3600           system     false"));
        assert!(lines[3].contains("map[version:2]"));
        assert!(
            simple_table(&mounts, Kind::Auth)
                .starts_with("Path          Type         Accessor       Description    Version")
        );
    }
}
