//! Loading and validating the Vault-compatible server configuration file (HCL or JSON).
//!
//! Both formats are first turned into the same generic tree (`serde_json::Value`, with HCL blocks
//! laid out as the HCL JSON specification describes) and then walked by hand. Walking by hand
//! rather than deriving `Deserialize` lets every error name the exact key at fault, lets unknown
//! keys become warnings instead of failures, and gives us Vault's lenient scalar handling
//! (`"true"` for booleans, `"3600"` for durations) in one place.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use mayfly_sdk::duration::{format_duration, parse_duration_value};

/// Vault's built-in default for both lease TTLs (32 days).
const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(768 * 3600);
const DEFAULT_LISTENER_ADDRESS: &str = "127.0.0.1:8200";

type Object = Map<String, Value>;

/// The parsed server configuration.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Config {
    pub storage: StorageConfig,
    pub listeners: Vec<ListenerConfig>,
    pub api_addr: Option<String>,
    pub cluster_addr: Option<String>,
    pub default_lease_ttl: Duration,
    pub max_lease_ttl: Duration,
    pub disable_mlock: bool,
    pub ui: bool,
    /// Normalised to one of `trace`, `debug`, `info`, `warn`, `error`.
    pub log_level: Option<String>,
    pub log_format: LogFormat,
    pub cluster_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StorageConfig {
    Inmem,
    File { path: PathBuf },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListenerConfig {
    pub address: String,
    pub tls_disable: bool,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub tls_client_ca_file: Option<PathBuf>,
    pub tls_min_version: TlsVersion,
    /// Request body limit in bytes. `None` means "use the server default"; Vault treats `0`
    /// the same way, and a negative value (Vault's "no limit") becomes `u64::MAX`.
    pub max_request_size: Option<u64>,
    /// `None` means "use the server default"; Vault treats `0` the same way.
    pub max_request_duration: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum TlsVersion {
    #[default]
    Tls12,
    Tls13,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConfigFormat {
    Hcl,
    Json,
}

impl ConfigFormat {
    /// Vault reads a file as JSON when its name ends in `.json` and as HCL otherwise.
    pub(crate) fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("json") => ConfigFormat::Json,
            _ => ConfigFormat::Hcl,
        }
    }
}

impl fmt::Display for ConfigFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigFormat::Hcl => "HCL",
            ConfigFormat::Json => "JSON",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("reading {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{format} syntax error{}: {message}", location_suffix(.line, .column))]
    Syntax {
        format: ConfigFormat,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    /// A well-formed file whose content is wrong; `key` is a dotted path such as
    /// `listener.tcp.tls_cert_file`.
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn location_suffix(line: &Option<usize>, column: &Option<usize>) -> String {
    match (*line, *column) {
        (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    }
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

impl Config {
    /// Reads and parses the file at `path`, choosing the format from its extension.
    ///
    /// Returns the configuration together with human-readable warnings (unknown or ignored
    /// keys) that the caller should log.
    pub(crate) fn load(path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, ConfigFormat::from_path(path))
    }

    pub(crate) fn parse(
        text: &str,
        format: ConfigFormat,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let tree = match format {
            ConfigFormat::Hcl => parse_hcl(text)?,
            ConfigFormat::Json => parse_json(text)?,
        };
        let Value::Object(root) = tree else {
            return Err(ConfigError::Syntax {
                format,
                line: None,
                column: None,
                message: "the top level must be an object".to_string(),
            });
        };
        let mut warnings = Vec::new();
        let config = from_tree(&root, &mut warnings)?;
        Ok((config, warnings))
    }
}

fn parse_hcl(text: &str) -> Result<Value, ConfigError> {
    // Repeated blocks (`listener "tcp" {}` twice) come out as a list under the shared label,
    // exactly like the list form of the JSON syntax, so both formats share the walker below.
    hcl::from_str::<Value>(text).map_err(|err| match err {
        hcl::Error::Parse(e) => ConfigError::Syntax {
            format: ConfigFormat::Hcl,
            line: Some(e.location().line()),
            column: Some(e.location().column()),
            message: format!("{} (in `{}`)", e.message(), e.line().trim()),
        },
        other => ConfigError::Syntax {
            format: ConfigFormat::Hcl,
            line: None,
            column: None,
            message: other.to_string(),
        },
    })
}

fn parse_json(text: &str) -> Result<Value, ConfigError> {
    serde_json::from_str::<Value>(text).map_err(|e| {
        // serde_json appends its own " at line X column Y"; we report the position separately.
        let message = e.to_string();
        let message = match message.rfind(" at line ") {
            Some(idx) => message[..idx].to_string(),
            None => message,
        };
        ConfigError::Syntax {
            format: ConfigFormat::Json,
            line: Some(e.line()),
            column: Some(e.column()),
            message,
        }
    })
}

/// Top-level keys that Vault understands and that we accept without acting on them.
const IGNORED_TOP_LEVEL: &[&str] = &[
    "plugin_directory",
    "pid_file",
    "telemetry",
    "disable_cache",
    "cache_size",
    "raw_storage_endpoint",
    "introspection_endpoint",
    "log_requests_level",
    "enable_response_header_hostname",
    "enable_response_header_raft_node_id",
    "disable_clustering",
    "disable_performance_standby",
    "cluster_cipher_suites",
    "log_file",
    "log_rotate_duration",
    "log_rotate_bytes",
    "log_rotate_max_files",
    "imprecise_lease_role_tracking",
];

/// Top-level stanzas that change behaviour in Vault; ignoring them silently could mislead an
/// operator into thinking e.g. auto-unseal is active.
const WARNED_TOP_LEVEL: &[(&str, &str)] = &[
    (
        "seal",
        "seal stanzas are not supported (only Shamir unsealing is available); ignoring \"seal\"",
    ),
    (
        "ha_storage",
        "high availability is not supported; ignoring \"ha_storage\"",
    ),
    (
        "ha_backend",
        "high availability is not supported; ignoring \"ha_backend\"",
    ),
    (
        "service_registration",
        "service registration is not supported; ignoring \"service_registration\"",
    ),
];

const HANDLED_TOP_LEVEL: &[&str] = &[
    "storage",
    "backend",
    "listener",
    "api_addr",
    "cluster_addr",
    "default_lease_ttl",
    "max_lease_ttl",
    "disable_mlock",
    "ui",
    "log_level",
    "log_format",
    "cluster_name",
];

fn from_tree(root: &Object, warnings: &mut Vec<String>) -> Result<Config, ConfigError> {
    let top = Section::root(root);

    let storage = parse_storage(root, warnings)?;
    let listeners = parse_listeners(root, warnings)?;

    let default_lease_ttl = top.duration("default_lease_ttl")?;
    let max_lease_ttl = top.duration("max_lease_ttl")?;
    // Vault treats an unset or zero TTL as "use the system default".
    let default_lease_ttl = default_lease_ttl
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_LEASE_TTL);
    let max_lease_ttl = max_lease_ttl
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_LEASE_TTL);
    if default_lease_ttl > max_lease_ttl {
        return Err(invalid(
            "default_lease_ttl",
            format!(
                "default_lease_ttl ({}) exceeds max_lease_ttl ({})",
                format_duration(default_lease_ttl),
                format_duration(max_lease_ttl)
            ),
        ));
    }

    let log_level = match top.string("log_level")? {
        Some(level) if !level.trim().is_empty() => {
            Some(normalize_log_level(&level).ok_or_else(|| {
                invalid(
                    "log_level",
                    format!(
                        "unknown log level {level:?} (expected trace, debug, info, warn or error)"
                    ),
                )
            })?)
        }
        _ => None,
    };
    let log_format = match top.string("log_format")? {
        None => LogFormat::Text,
        Some(s) => match s.trim().to_ascii_lowercase().as_str() {
            "" | "standard" | "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => {
                return Err(invalid(
                    "log_format",
                    format!("unknown log format {s:?} (expected \"standard\" or \"json\")"),
                ));
            }
        },
    };

    let config = Config {
        storage,
        listeners,
        api_addr: top.non_empty_string("api_addr")?,
        cluster_addr: top.non_empty_string("cluster_addr")?,
        default_lease_ttl,
        max_lease_ttl,
        disable_mlock: top.bool("disable_mlock")?.unwrap_or(false),
        ui: top.bool("ui")?.unwrap_or(false),
        log_level,
        log_format,
        cluster_name: top.non_empty_string("cluster_name")?,
    };

    for key in root.keys() {
        let key = key.as_str();
        if HANDLED_TOP_LEVEL.contains(&key) || IGNORED_TOP_LEVEL.contains(&key) {
            continue;
        }
        match WARNED_TOP_LEVEL.iter().find(|(k, _)| *k == key) {
            Some((_, warning)) => warnings.push((*warning).to_string()),
            None => warnings.push(format!("unknown key {key:?}")),
        }
    }

    Ok(config)
}

fn normalize_log_level(level: &str) -> Option<String> {
    let normalized = match level.trim().to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        // Vault accepts "notice" and maps it to info.
        "info" | "notice" => "info",
        "warn" | "warning" => "warn",
        "err" | "error" => "error",
        _ => return None,
    };
    Some(normalized.to_string())
}

/// One labelled block such as `storage "file" { ... }`, wherever it came from.
struct TypedBlock<'a> {
    kind: &'a str,
    body: &'a Object,
    /// The top-level key it was found under (`storage` or its alias `backend`).
    stanza: &'a str,
}

/// Collects the blocks of one stanza, accepting every shape the two syntaxes can produce:
/// `{"tcp": {...}}`, `{"tcp": [{...}, {...}]}`, `[{"tcp": {...}}, ...]`, and, when
/// `type_field` is set, bodies naming their type inline (`[{"type": "tcp", ...}]`).
fn collect_blocks<'a>(
    stanza: &'a str,
    value: &'a Value,
    type_field: bool,
    out: &mut Vec<TypedBlock<'a>>,
) -> Result<(), ConfigError> {
    let shape_error = || {
        invalid(
            stanza,
            format!("expected a labelled block such as {stanza} \"<type>\" {{ ... }}"),
        )
    };
    match value {
        Value::Array(items) => {
            for item in items {
                if !item.is_object() {
                    return Err(shape_error());
                }
                collect_blocks(stanza, item, type_field, out)?;
            }
            Ok(())
        }
        Value::Object(map) => {
            let inline_kind = match map.get("type") {
                Some(Value::String(kind)) if type_field => Some(kind),
                _ => None,
            };
            if let Some(kind) = inline_kind {
                out.push(TypedBlock {
                    kind,
                    body: map,
                    stanza,
                });
                return Ok(());
            }
            for (kind, body) in map {
                match body {
                    Value::Object(body) => out.push(TypedBlock { kind, body, stanza }),
                    Value::Array(bodies) => {
                        for body in bodies {
                            let Value::Object(body) = body else {
                                return Err(shape_error());
                            };
                            out.push(TypedBlock { kind, body, stanza });
                        }
                    }
                    _ => return Err(shape_error()),
                }
            }
            Ok(())
        }
        Value::Null => Ok(()),
        _ => Err(shape_error()),
    }
}

/// Keys Vault strips out of every storage stanza for its HA machinery.
const IGNORED_STORAGE_KEYS: &[&str] = &["redirect_addr", "cluster_addr", "disable_clustering"];

fn parse_storage(root: &Object, warnings: &mut Vec<String>) -> Result<StorageConfig, ConfigError> {
    let mut blocks = Vec::new();
    for stanza in ["storage", "backend"] {
        if let Some(value) = root.get(stanza) {
            collect_blocks(stanza, value, false, &mut blocks)?;
        }
    }
    let block = match blocks.as_slice() {
        [] => {
            return Err(invalid(
                "storage",
                "a storage block is required, e.g. storage \"file\" { path = \"/var/lib/mayfly\" }",
            ));
        }
        [block] => block,
        many => {
            let kinds: Vec<String> = many.iter().map(|b| format!("{:?}", b.kind)).collect();
            return Err(invalid(
                many[1].stanza,
                format!(
                    "only one storage block may be configured, found {}: {}",
                    many.len(),
                    kinds.join(", ")
                ),
            ));
        }
    };

    let section = Section {
        path: format!("{}.{}", block.stanza, block.kind),
        label: format!("{} {:?}", block.stanza, block.kind),
        map: block.body,
    };
    let (storage, known): (StorageConfig, &[&str]) = match block.kind {
        "file" => {
            let path = section.non_empty_string("path")?.ok_or_else(|| {
                invalid(
                    section.key("path"),
                    "is required for the file storage backend",
                )
            })?;
            (
                StorageConfig::File {
                    path: PathBuf::from(path),
                },
                &["path"],
            )
        }
        "inmem" => (StorageConfig::Inmem, &[]),
        other => {
            return Err(invalid(
                block.stanza,
                format!(
                    "unknown storage type {other:?} (supported: {})",
                    crate::registry::STORAGE_BACKENDS.join(", ")
                ),
            ));
        }
    };
    section.warn_unknown(
        |k| known.contains(&k) || IGNORED_STORAGE_KEYS.contains(&k),
        warnings,
    );
    Ok(storage)
}

const LISTENER_KEYS: &[&str] = &[
    "type",
    "address",
    "tls_disable",
    "tls_cert_file",
    "tls_key_file",
    "tls_client_ca_file",
    "tls_min_version",
    "max_request_size",
    "max_request_duration",
    "tls_require_and_verify_client_cert",
    "tls_max_version",
    "cluster_address",
    "tls_cipher_suites",
    "tls_prefer_server_cipher_suites",
    "tls_disable_client_certs",
    "telemetry",
    "profiling",
    "inflight_requests_logging",
    "custom_response_headers",
    "http_idle_timeout",
    "http_read_header_timeout",
    "http_read_timeout",
    "http_write_timeout",
    "chroot_namespace",
    "purpose",
    "disable_request_limiter",
    "agent_api",
];

const LISTENER_KEY_PREFIXES: &[&str] = &["x_forwarded_for_", "proxy_protocol_", "redact_"];

fn parse_listeners(
    root: &Object,
    warnings: &mut Vec<String>,
) -> Result<Vec<ListenerConfig>, ConfigError> {
    let mut blocks = Vec::new();
    if let Some(value) = root.get("listener") {
        collect_blocks("listener", value, true, &mut blocks)?;
    }
    if blocks.is_empty() {
        return Err(invalid(
            "listener",
            "at least one listener block is required, e.g. listener \"tcp\" { ... }",
        ));
    }
    let several = blocks.len() > 1;
    blocks
        .iter()
        .enumerate()
        .map(|(i, block)| {
            let (path, label) = if several {
                (
                    format!("listener.{}[{i}]", block.kind),
                    format!("listener {:?} [{i}]", block.kind),
                )
            } else {
                (
                    format!("listener.{}", block.kind),
                    format!("listener {:?}", block.kind),
                )
            };
            if block.kind != "tcp" {
                return Err(invalid(
                    path,
                    format!(
                        "listener type {:?} is not supported (only \"tcp\")",
                        block.kind
                    ),
                ));
            }
            parse_tcp_listener(
                &Section {
                    path,
                    label,
                    map: block.body,
                },
                warnings,
            )
        })
        .collect()
}

fn parse_tcp_listener(
    section: &Section<'_>,
    warnings: &mut Vec<String>,
) -> Result<ListenerConfig, ConfigError> {
    let address = match section.string("address")? {
        Some(a) if a.trim().is_empty() => {
            return Err(invalid(section.key("address"), "must not be empty"));
        }
        Some(a) => a,
        None => DEFAULT_LISTENER_ADDRESS.to_string(),
    };
    let tls_disable = section.bool("tls_disable")?.unwrap_or(false);
    let tls_cert_file = section
        .non_empty_string("tls_cert_file")?
        .map(PathBuf::from);
    let tls_key_file = section.non_empty_string("tls_key_file")?.map(PathBuf::from);
    let tls_client_ca_file = section
        .non_empty_string("tls_client_ca_file")?
        .map(PathBuf::from);

    let tls_min_version = match section.string("tls_min_version")? {
        None => TlsVersion::Tls12,
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "" | "tls12" => TlsVersion::Tls12,
            "tls13" => TlsVersion::Tls13,
            "tls10" | "tls11" => {
                return Err(invalid(
                    section.key("tls_min_version"),
                    format!("{v:?} is not supported; the minimum is \"tls12\""),
                ));
            }
            _ => {
                return Err(invalid(
                    section.key("tls_min_version"),
                    format!("unknown TLS version {v:?} (expected \"tls12\" or \"tls13\")"),
                ));
            }
        },
    };

    if !tls_disable {
        for (key, value) in [
            ("tls_cert_file", &tls_cert_file),
            ("tls_key_file", &tls_key_file),
        ] {
            if value.is_none() {
                return Err(invalid(
                    section.key(key),
                    "is required when TLS is enabled (set tls_disable = true to serve plain HTTP)",
                ));
            }
        }
    }

    let max_request_size = match section.integer("max_request_size")? {
        None | Some(0) => None,
        Some(n) if n < 0 => Some(u64::MAX),
        Some(n) => Some(n.unsigned_abs()),
    };
    let max_request_duration = section
        .duration("max_request_duration")?
        .filter(|d| !d.is_zero());

    if section.bool("tls_require_and_verify_client_cert")? == Some(true) {
        warnings.push(format!(
            "tls_require_and_verify_client_cert in {} is not supported yet and is ignored",
            section.label
        ));
    }
    if section.get("tls_max_version").is_some() {
        warnings.push(format!(
            "tls_max_version in {} is not supported and is ignored",
            section.label
        ));
    }
    section.warn_unknown(
        |k| LISTENER_KEYS.contains(&k) || LISTENER_KEY_PREFIXES.iter().any(|p| k.starts_with(p)),
        warnings,
    );

    Ok(ListenerConfig {
        address,
        tls_disable,
        tls_cert_file,
        tls_key_file,
        tls_client_ca_file,
        tls_min_version,
        max_request_size,
        max_request_duration,
    })
}

/// A map being validated, with the names used to point at it in errors and warnings.
struct Section<'a> {
    /// Dotted prefix for error keys, empty at the top level.
    path: String,
    /// How warnings refer to this block, e.g. `listener "tcp"`.
    label: String,
    map: &'a Object,
}

impl<'a> Section<'a> {
    fn root(map: &'a Object) -> Self {
        Section {
            path: String::new(),
            label: String::new(),
            map,
        }
    }

    fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// An explicit `null` (possible in JSON) means the same as leaving the key out.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn wrong_type(&self, key: &str, expected: &str, got: &Value) -> ConfigError {
        invalid(
            self.key(key),
            format!("expected {expected}, got {}", type_name(got)),
        )
    }

    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.wrong_type(key, "a string", other)),
        }
    }

    /// Vault treats an empty string the same as an absent key for addresses and paths.
    fn non_empty_string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        Ok(self.string(key)?.filter(|s| !s.trim().is_empty()))
    }

    /// Accepts the spellings Vault's decoder does: booleans, Go `strconv.ParseBool` strings and
    /// the numbers 0 and 1.
    fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let parsed = match value {
            Value::Bool(b) => Some(*b),
            Value::String(s) => match s.trim() {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
                _ => None,
            },
            Value::Number(n) => match n.as_u64() {
                Some(1) => Some(true),
                Some(0) => Some(false),
                _ => None,
            },
            other => return Err(self.wrong_type(key, "a boolean", other)),
        };
        match parsed {
            Some(b) => Ok(Some(b)),
            None => Err(invalid(
                self.key(key),
                format!("expected a boolean (true/false), got {value}"),
            )),
        }
    }

    /// Accepts integers and numeric strings, as Vault does for sizes.
    fn integer(&self, key: &str) -> Result<Option<i64>, ConfigError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let parsed = match value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            other => return Err(self.wrong_type(key, "an integer", other)),
        };
        parsed
            .map(Some)
            .ok_or_else(|| invalid(self.key(key), format!("expected an integer, got {value}")))
    }

    fn duration(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v @ (Value::String(_) | Value::Number(_))) => parse_duration_value(v)
                .map(Some)
                .map_err(|e| invalid(self.key(key), format!("invalid duration {v}: {e}"))),
            Some(other) => Err(self.wrong_type(
                key,
                "a duration (e.g. \"768h\") or a number of seconds",
                other,
            )),
        }
    }

    fn warn_unknown(&self, known: impl Fn(&str) -> bool, warnings: &mut Vec<String>) {
        for key in self.map.keys() {
            if !known(key) {
                warnings.push(format!("unknown key {key:?} in {}", self.label));
            }
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL_HCL: &str = r#"
# A typical production-style Vault configuration.
storage "file" {
  path = "/var/lib/mayfly/data"
}

listener "tcp" {
  address            = "0.0.0.0:8200"
  tls_cert_file      = "/etc/mayfly/tls/server.crt"
  tls_key_file       = "/etc/mayfly/tls/server.key"
  tls_client_ca_file = "/etc/mayfly/tls/ca.crt"
  tls_min_version    = "tls13"
  max_request_size   = 1048576
  max_request_duration = "30s"
}

listener "tcp" {
  address     = "127.0.0.1:8210"
  tls_disable = "true"
}

api_addr          = "https://mayfly.example.com:8200"
cluster_addr      = "https://10.0.0.5:8201"
default_lease_ttl = "1h30m"
max_lease_ttl     = "768h"
disable_mlock     = true
ui                = true
log_level         = "Warning"
log_format        = "json"
cluster_name      = "prod"
"#;

    const FULL_JSON_OBJECT_LISTENER: &str = r#"{
  "storage": {"file": {"path": "/var/lib/mayfly/data"}},
  "listener": {"tcp": [
    {
      "address": "0.0.0.0:8200",
      "tls_cert_file": "/etc/mayfly/tls/server.crt",
      "tls_key_file": "/etc/mayfly/tls/server.key",
      "tls_client_ca_file": "/etc/mayfly/tls/ca.crt",
      "tls_min_version": "tls13",
      "max_request_size": "1048576",
      "max_request_duration": 30
    },
    {"address": "127.0.0.1:8210", "tls_disable": 1}
  ]},
  "api_addr": "https://mayfly.example.com:8200",
  "cluster_addr": "https://10.0.0.5:8201",
  "default_lease_ttl": 5400,
  "max_lease_ttl": "768h",
  "disable_mlock": "true",
  "ui": true,
  "log_level": "warn",
  "log_format": "json",
  "cluster_name": "prod"
}"#;

    const FULL_JSON_LIST_LISTENER: &str = r#"{
  "storage": {"file": {"path": "/var/lib/mayfly/data"}},
  "listener": [
    {"tcp": {
      "address": "0.0.0.0:8200",
      "tls_cert_file": "/etc/mayfly/tls/server.crt",
      "tls_key_file": "/etc/mayfly/tls/server.key",
      "tls_client_ca_file": "/etc/mayfly/tls/ca.crt",
      "tls_min_version": "tls13",
      "max_request_size": 1048576,
      "max_request_duration": "30s"
    }},
    {"tcp": {"address": "127.0.0.1:8210", "tls_disable": true}}
  ],
  "api_addr": "https://mayfly.example.com:8200",
  "cluster_addr": "https://10.0.0.5:8201",
  "default_lease_ttl": "90m",
  "max_lease_ttl": "768h",
  "disable_mlock": true,
  "ui": "1",
  "log_level": "WARN",
  "log_format": "json",
  "cluster_name": "prod"
}"#;

    fn expected_full() -> Config {
        Config {
            storage: StorageConfig::File {
                path: PathBuf::from("/var/lib/mayfly/data"),
            },
            listeners: vec![
                ListenerConfig {
                    address: "0.0.0.0:8200".to_string(),
                    tls_disable: false,
                    tls_cert_file: Some(PathBuf::from("/etc/mayfly/tls/server.crt")),
                    tls_key_file: Some(PathBuf::from("/etc/mayfly/tls/server.key")),
                    tls_client_ca_file: Some(PathBuf::from("/etc/mayfly/tls/ca.crt")),
                    tls_min_version: TlsVersion::Tls13,
                    max_request_size: Some(1_048_576),
                    max_request_duration: Some(Duration::from_secs(30)),
                },
                ListenerConfig {
                    address: "127.0.0.1:8210".to_string(),
                    tls_disable: true,
                    tls_cert_file: None,
                    tls_key_file: None,
                    tls_client_ca_file: None,
                    tls_min_version: TlsVersion::Tls12,
                    max_request_size: None,
                    max_request_duration: None,
                },
            ],
            api_addr: Some("https://mayfly.example.com:8200".to_string()),
            cluster_addr: Some("https://10.0.0.5:8201".to_string()),
            default_lease_ttl: Duration::from_secs(5400),
            max_lease_ttl: Duration::from_secs(768 * 3600),
            disable_mlock: true,
            ui: true,
            log_level: Some("warn".to_string()),
            log_format: LogFormat::Json,
            cluster_name: Some("prod".to_string()),
        }
    }

    fn hcl(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
        Config::parse(text, ConfigFormat::Hcl)
    }

    fn json(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
        Config::parse(text, ConfigFormat::Json)
    }

    fn hcl_err(text: &str) -> String {
        match hcl(text) {
            Ok(parsed) => panic!("expected an error, got {parsed:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn json_err(text: &str) -> String {
        match json(text) {
            Ok(parsed) => panic!("expected an error, got {parsed:?}"),
            Err(e) => e.to_string(),
        }
    }

    const MINIMAL_LISTENER: &str = "listener \"tcp\" {\n  tls_disable = true\n}\n";

    fn with_minimal_listener(extra: &str) -> String {
        format!("storage \"inmem\" {{}}\n{MINIMAL_LISTENER}{extra}")
    }

    #[test]
    fn full_hcl() {
        let (config, warnings) = hcl(FULL_HCL).unwrap();
        assert_eq!(config, expected_full());
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn full_json_object_form() {
        let (config, warnings) = json(FULL_JSON_OBJECT_LISTENER).unwrap();
        assert_eq!(config, expected_full());
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn full_json_list_form() {
        let (config, warnings) = json(FULL_JSON_LIST_LISTENER).unwrap();
        assert_eq!(config, expected_full());
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn json_single_listener_object_and_type_field() {
        let single = r#"{"storage": {"inmem": {}}, "listener": {"tcp": {"tls_disable": true}}}"#;
        let (config, _) = json(single).unwrap();
        assert_eq!(config.listeners.len(), 1);
        assert_eq!(config.listeners[0].address, "127.0.0.1:8200");

        let typed = r#"{"storage": {"inmem": {}},
            "listener": [{"type": "tcp", "address": "0.0.0.0:1234", "tls_disable": true}]}"#;
        let (config, warnings) = json(typed).unwrap();
        assert_eq!(config.listeners[0].address, "0.0.0.0:1234");
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn defaults() {
        let (config, warnings) = hcl(&with_minimal_listener("")).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.storage, StorageConfig::Inmem);
        assert_eq!(config.default_lease_ttl, DEFAULT_LEASE_TTL);
        assert_eq!(config.max_lease_ttl, DEFAULT_LEASE_TTL);
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.log_level, None);
        assert!(!config.ui && !config.disable_mlock);
        assert_eq!(config.api_addr, None);
        let listener = &config.listeners[0];
        assert_eq!(listener.address, "127.0.0.1:8200");
        assert_eq!(listener.tls_min_version, TlsVersion::Tls12);
        assert_eq!(listener.max_request_size, None);
        assert_eq!(listener.max_request_duration, None);
    }

    #[test]
    fn backend_alias() {
        let text = format!("backend \"file\" {{\n  path = \"/data\"\n}}\n{MINIMAL_LISTENER}");
        let (config, warnings) = hcl(&text).unwrap();
        assert_eq!(
            config.storage,
            StorageConfig::File {
                path: PathBuf::from("/data")
            }
        );
        assert!(warnings.is_empty(), "{warnings:?}");

        let err = hcl_err(&format!("backend \"file\" {{}}\n{MINIMAL_LISTENER}"));
        assert!(err.starts_with("backend.file.path:"), "{err}");
    }

    #[test]
    fn inmem_storage() {
        let (config, _) =
            json(r#"{"storage": {"inmem": {}}, "listener": {"tcp": {"tls_disable": "1"}}}"#)
                .unwrap();
        assert_eq!(config.storage, StorageConfig::Inmem);
    }

    #[test]
    fn storage_errors() {
        let err = hcl_err(MINIMAL_LISTENER);
        assert!(
            err.starts_with("storage:") && err.contains("required"),
            "{err}"
        );

        let err = hcl_err(&format!(
            "storage \"file\" {{ path = \"/a\" }}\nstorage \"inmem\" {{}}\n{MINIMAL_LISTENER}"
        ));
        assert!(err.contains("only one storage block"), "{err}");

        let err = hcl_err(&format!(
            "storage \"file\" {{ path = \"/a\" }}\nstorage \"file\" {{ path = \"/b\" }}\n{MINIMAL_LISTENER}"
        ));
        assert!(err.contains("only one storage block"), "{err}");

        let err = hcl_err(&format!(
            "storage \"inmem\" {{}}\nbackend \"inmem\" {{}}\n{MINIMAL_LISTENER}"
        ));
        assert!(err.contains("only one storage block"), "{err}");

        let err = hcl_err(&format!("storage \"consul\" {{}}\n{MINIMAL_LISTENER}"));
        assert!(err.contains("unknown storage type \"consul\""), "{err}");

        let err = hcl_err(&format!("storage \"file\" {{}}\n{MINIMAL_LISTENER}"));
        assert!(err.starts_with("storage.file.path:"), "{err}");

        let err = hcl_err(&format!(
            "storage \"file\" {{ path = 7 }}\n{MINIMAL_LISTENER}"
        ));
        assert!(err.starts_with("storage.file.path:"), "{err}");

        let err = hcl_err(&format!("storage {{ path = \"/x\" }}\n{MINIMAL_LISTENER}"));
        assert!(
            err.starts_with("storage:") && err.contains("labelled block"),
            "{err}"
        );
    }

    #[test]
    fn listener_errors() {
        let err = hcl_err("storage \"inmem\" {}\n");
        assert!(
            err.starts_with("listener:") && err.contains("at least one"),
            "{err}"
        );

        let err = hcl_err("storage \"inmem\" {}\nlistener \"unix\" { address = \"/tmp/s\" }\n");
        assert!(
            err.starts_with("listener.unix:") && err.contains("\"unix\""),
            "{err}"
        );

        let err = hcl_err("storage \"inmem\" {}\nlistener \"tcp\" {}\n");
        assert!(err.starts_with("listener.tcp.tls_cert_file:"), "{err}");

        let err =
            hcl_err("storage \"inmem\" {}\nlistener \"tcp\" { tls_cert_file = \"/c.pem\" }\n");
        assert!(err.starts_with("listener.tcp.tls_key_file:"), "{err}");

        let err = hcl_err("storage \"inmem\" {}\nlistener \"tcp\" { address = 5 }\n");
        assert!(
            err.starts_with("listener.tcp.address:") && err.contains("string"),
            "{err}"
        );

        let err = hcl_err(
            "storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = true }\n\
             listener \"tcp\" { tls_disable = \"maybe\" }\n",
        );
        assert!(err.starts_with("listener.tcp[1].tls_disable:"), "{err}");

        for old in ["tls10", "tls11"] {
            let err = hcl_err(&with_minimal_listener("").replace(
                "tls_disable = true",
                &format!("tls_disable = true\n  tls_min_version = \"{old}\""),
            ));
            assert!(
                err.starts_with("listener.tcp.tls_min_version:") && err.contains("not supported"),
                "{err}"
            );
        }

        let err = json_err(
            r#"{"storage": {"inmem": {}}, "listener": {"tcp": {"tls_disable": true, "max_request_size": "big"}}}"#,
        );
        assert!(err.starts_with("listener.tcp.max_request_size:"), "{err}");

        let err = json_err(
            r#"{"storage": {"inmem": {}}, "listener": {"tcp": {"tls_disable": true, "max_request_duration": "soon"}}}"#,
        );
        assert!(
            err.starts_with("listener.tcp.max_request_duration:"),
            "{err}"
        );

        let err = json_err(r#"{"storage": {"inmem": {}}, "listener": "tcp"}"#);
        assert!(err.starts_with("listener:"), "{err}");
    }

    #[test]
    fn max_request_size_special_values() {
        let parse = |size: &str| {
            let text = format!(
                r#"{{"storage": {{"inmem": {{}}}}, "listener": {{"tcp": {{"tls_disable": true, "max_request_size": {size}}}}}}}"#
            );
            json(&text).unwrap().0.listeners[0].max_request_size
        };
        assert_eq!(parse("0"), None);
        assert_eq!(parse("-1"), Some(u64::MAX));
        assert_eq!(parse("\"2048\""), Some(2048));
    }

    #[test]
    fn top_level_errors_name_their_key() {
        let cases: &[(&str, &str)] = &[
            ("ui = \"banana\"", "ui:"),
            ("disable_mlock = 2", "disable_mlock:"),
            (
                "default_lease_ttl = \"abc\"",
                "default_lease_ttl: invalid duration \"abc\":",
            ),
            (
                "max_lease_ttl = \"-1s\"",
                "max_lease_ttl: invalid duration \"-1s\":",
            ),
            (
                "max_lease_ttl = \"1d\"",
                "max_lease_ttl: invalid duration \"1d\":",
            ),
            ("default_lease_ttl = true", "default_lease_ttl:"),
            ("log_level = \"loud\"", "log_level:"),
            ("log_format = \"xml\"", "log_format:"),
            ("api_addr = 8200", "api_addr:"),
            ("cluster_name = [\"a\"]", "cluster_name:"),
        ];
        for (line, prefix) in cases {
            let err = hcl_err(&with_minimal_listener(line));
            assert!(err.starts_with(prefix), "{line}: {err}");
        }
    }

    #[test]
    fn default_lease_ttl_may_not_exceed_max() {
        let err = hcl_err(&with_minimal_listener(
            "default_lease_ttl = \"10h\"\nmax_lease_ttl = \"1h\"\n",
        ));
        assert_eq!(
            err,
            "default_lease_ttl: default_lease_ttl (10h0m0s) exceeds max_lease_ttl (1h0m0s)"
        );
        // Only the default being raised past the implicit 768h maximum is also an error.
        assert!(hcl(&with_minimal_listener("default_lease_ttl = \"800h\"")).is_err());
        // Zero means "system default", as in Vault.
        let (config, _) = hcl(&with_minimal_listener("max_lease_ttl = 0")).unwrap();
        assert_eq!(config.max_lease_ttl, DEFAULT_LEASE_TTL);
    }

    #[test]
    fn log_level_aliases() {
        for (given, want) in [
            ("trace", "trace"),
            ("DEBUG", "debug"),
            ("info", "info"),
            ("notice", "info"),
            ("warn", "warn"),
            ("warning", "warn"),
            ("err", "error"),
            ("error", "error"),
        ] {
            let (config, _) =
                hcl(&with_minimal_listener(&format!("log_level = \"{given}\""))).unwrap();
            assert_eq!(config.log_level.as_deref(), Some(want), "{given}");
        }
        let (config, _) = hcl(&with_minimal_listener("log_format = \"standard\"")).unwrap();
        assert_eq!(config.log_format, LogFormat::Text);
    }

    #[test]
    fn hcl_syntax_error_has_line() {
        let err = hcl_err("storage \"inmem\" {}\nlistener \"tcp\" {\n  address = \n}\n");
        assert!(err.starts_with("HCL syntax error at line "), "{err}");
        match hcl("storage \"inmem\" {}\n\nui = = true\n") {
            Err(ConfigError::Syntax { line, .. }) => assert_eq!(line, Some(3)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn json_syntax_error_has_line() {
        let err = json_err("{\n  \"storage\": {\"inmem\": {}},\n  \"ui\": tru,\n  \"x\": 1\n}");
        assert!(
            err.starts_with("JSON syntax error at line 3, column"),
            "{err}"
        );
        let err = json_err("[1, 2]");
        assert!(err.contains("top level"), "{err}");
    }

    #[test]
    fn unknown_keys_warn_but_load() {
        let text = r#"
storage "file" {
  path  = "/data"
  bogus = 1
}
listener "tcp" {
  tls_disable = true
  foo = "bar"
  x_forwarded_for_authorized_addrs = "10.0.0.0/8"
  redact_version = true
  tls_require_and_verify_client_cert = true
}
telemetry {
  statsite_address = "127.0.0.1:8125"
}
seal "awskms" {
  region = "us-east-1"
}
plugin_directory = "/plugins"
mystery = true
"#;
        let (config, warnings) = hcl(text).unwrap();
        assert_eq!(
            config.storage,
            StorageConfig::File {
                path: PathBuf::from("/data")
            }
        );
        assert_eq!(
            warnings,
            vec![
                "unknown key \"bogus\" in storage \"file\"".to_string(),
                "tls_require_and_verify_client_cert in listener \"tcp\" is not supported yet and is ignored"
                    .to_string(),
                "unknown key \"foo\" in listener \"tcp\"".to_string(),
                "seal stanzas are not supported (only Shamir unsealing is available); ignoring \"seal\""
                    .to_string(),
                "unknown key \"mystery\"".to_string(),
            ]
        );
    }

    #[test]
    fn load_picks_format_from_extension() {
        let dir = tempfile::tempdir().unwrap();
        let json_path = dir.path().join("server.json");
        std::fs::write(&json_path, FULL_JSON_LIST_LISTENER).unwrap();
        assert_eq!(Config::load(&json_path).unwrap().0, expected_full());

        let hcl_path = dir.path().join("server.hcl");
        std::fs::write(&hcl_path, FULL_HCL).unwrap();
        assert_eq!(Config::load(&hcl_path).unwrap().0, expected_full());

        let missing = dir.path().join("missing.hcl");
        let err = Config::load(&missing).unwrap_err();
        assert!(matches!(err, ConfigError::Io { .. }), "{err}");
        assert!(err.to_string().contains("missing.hcl"), "{err}");
    }
}
