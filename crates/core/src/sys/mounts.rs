//! `sys/mounts`, `sys/auth`, `sys/remount` and `sys/internal/ui/mounts`: the mount table API.

use std::sync::Arc;

use mayfly_sdk::{
    Error, MountTtls, Operation, Request, Response, Result,
    duration::parse_duration_value,
    framework::{Field, FieldData, FieldKind, Path, handler},
};
use serde_json::{Map, Value, json};

use crate::{
    Core,
    mounts::{MountClass, MountEntry},
};

pub(super) fn paths() -> Vec<Path<Core>> {
    let enable_fields = |path: Path<Core>| {
        path.field(Field::new("path", FieldKind::String, "Mount path."))
            .field(Field::new(
                "type",
                FieldKind::String,
                "Type of the backend.",
            ))
            .field(Field::new("description", FieldKind::String, "Description."))
            .field(Field::new(
                "config",
                FieldKind::Map,
                "TTLs and other settings.",
            ))
            .field(Field::new("options", FieldKind::Map, "Backend options."))
            .field(Field::new("local", FieldKind::Bool, "Not replicated."))
            .field(Field::new("seal_wrap", FieldKind::Bool, "Seal wrapping."))
            .field(Field::new(
                "external_entropy_access",
                FieldKind::Bool,
                "Ignored.",
            ))
            .field(Field::new("plugin_version", FieldKind::String, "Ignored."))
            .field(Field::new(
                "plugin_name",
                FieldKind::String,
                "Deprecated alias of type.",
            ))
    };
    let tune_fields = |path: Path<Core>| {
        path.field(Field::new("path", FieldKind::String, "Mount path."))
            .field(Field::new(
                "default_lease_ttl",
                FieldKind::Raw,
                "Default TTL, or \"system\".",
            ))
            .field(Field::new(
                "max_lease_ttl",
                FieldKind::Raw,
                "Maximum TTL, or \"system\".",
            ))
            .field(Field::new("description", FieldKind::String, "Description."))
            .field(Field::new("options", FieldKind::Map, "Backend options."))
            .field(Field::new(
                "audit_non_hmac_request_keys",
                FieldKind::StringList,
                "Unhashed request keys.",
            ))
            .field(Field::new(
                "audit_non_hmac_response_keys",
                FieldKind::StringList,
                "Unhashed response keys.",
            ))
            .field(Field::new(
                "listing_visibility",
                FieldKind::String,
                "unauth, hidden or empty.",
            ))
            .field(Field::new(
                "passthrough_request_headers",
                FieldKind::StringList,
                "Headers passed to the backend.",
            ))
            .field(Field::new(
                "allowed_response_headers",
                FieldKind::StringList,
                "Headers the backend may set.",
            ))
            .field(Field::new(
                "token_type",
                FieldKind::String,
                "Token type (auth mounts).",
            ))
            .field(Field::new(
                "force_no_cache",
                FieldKind::Bool,
                "Disable caching.",
            ))
            .field(Field::new("plugin_version", FieldKind::String, "Ignored."))
            .field(Field::new(
                "lease_revoke_max_attempts",
                FieldKind::Int,
                "Revocation attempts before a lease is irrevocable (0: 6).",
            ))
            .field(Field::new(
                "lease_revoke_initial_backoff",
                FieldKind::Duration,
                "Delay before the second revocation attempt, doubling after (0: 10s).",
            ))
            .field(Field::new(
                "lease_revoke_concurrency",
                FieldKind::Int,
                "Revocations of this mount's leases running at once (0: 32).",
            ))
    };
    vec![
        Path::new("mounts/?")
            .operation(Operation::Read, handler(list_secret_mounts))
            .help("List secrets engines.", "Lists mounted secrets engines."),
        tune_fields(Path::new(r"mounts/(?P<path>.+?)/tune/?"))
            .operation(Operation::Read, handler(read_tune))
            .operation(Operation::Update, handler(write_tune))
            .help(
                "Tune a secrets engine.",
                "Reads or changes a mount's settings.",
            ),
        enable_fields(Path::new(r"mounts/(?P<path>.+?)/?"))
            .operation(Operation::Read, handler(read_mount))
            .operation(Operation::Update, handler(enable))
            .operation(Operation::Delete, handler(disable))
            .help(
                "Enable or disable a secrets engine.",
                "Mounts a secrets engine at a path.",
            ),
        Path::new("auth/?")
            .operation(Operation::Read, handler(list_auth_mounts))
            .help("List auth methods.", "Lists enabled auth methods."),
        tune_fields(Path::new(r"auth/(?P<path>.+?)/tune/?"))
            .operation(Operation::Read, handler(read_tune))
            .operation(Operation::Update, handler(write_tune))
            .help(
                "Tune an auth method.",
                "Reads or changes an auth mount's settings.",
            ),
        enable_fields(Path::new(r"auth/(?P<path>.+?)/?"))
            .operation(Operation::Read, handler(read_mount))
            .operation(Operation::Update, handler(enable))
            .operation(Operation::Delete, handler(disable))
            .help(
                "Enable or disable an auth method.",
                "Mounts an auth method at a path.",
            ),
        Path::new("remount")
            .field(Field::new("from", FieldKind::String, "Current mount path."))
            .field(Field::new("to", FieldKind::String, "New mount path."))
            .operation(Operation::Update, handler(remount))
            .help(
                "Move a mount.",
                "Moves a secrets engine or auth method to a new path.",
            ),
        Path::new(r"remount/status/(?P<migration_id>.+)")
            .field(Field::new(
                "migration_id",
                FieldKind::String,
                "Migration ID.",
            ))
            .operation(Operation::Read, handler(remount_status))
            .help("Mount move status.", "Reports the status of a move."),
        Path::new("internal/ui/mounts/?")
            .operation(Operation::Read, handler(ui_mounts))
            .help(
                "Visible mounts.",
                "Mounts the caller can use, for clients and the UI.",
            ),
        Path::new(r"internal/ui/mounts/(?P<path>.+)")
            .field(Field::new(
                "path",
                FieldKind::String,
                "A path inside a mount.",
            ))
            .operation(Operation::Read, handler(ui_mount))
            .help(
                "One mount's details.",
                "The mount serving a path, for client preflights.",
            ),
    ]
}

/// Whether the request is about auth mounts (`sys/auth/...`).
fn is_auth(req: &Request) -> bool {
    req.relative_path().starts_with("auth")
}

/// Normalises a user-given mount path to the router's form (`foo/`, `auth/foo/`).
fn router_path(req: &Request, fields: &FieldData) -> Result<String> {
    let path = fields.string("path").unwrap_or_default();
    let path = path.trim_matches('/');
    if path.is_empty() {
        return Err(Error::invalid("missing mount path"));
    }
    if path
        .split('/')
        .any(|segment| segment == ".." || segment.is_empty())
    {
        return Err(Error::invalid("invalid mount path"));
    }
    Ok(if is_auth(req) {
        format!("auth/{path}/")
    } else {
        format!("{path}/")
    })
}

fn mount_info(entry: &MountEntry) -> Value {
    let mut config = json!({
        "default_lease_ttl": entry.config.default_lease_ttl,
        "max_lease_ttl": entry.config.max_lease_ttl,
        "force_no_cache": entry.config.force_no_cache,
    });
    let optional_lists = [
        (
            "audit_non_hmac_request_keys",
            &entry.config.audit_non_hmac_request_keys,
        ),
        (
            "audit_non_hmac_response_keys",
            &entry.config.audit_non_hmac_response_keys,
        ),
        (
            "passthrough_request_headers",
            &entry.config.passthrough_request_headers,
        ),
        (
            "allowed_response_headers",
            &entry.config.allowed_response_headers,
        ),
    ];
    for (key, values) in optional_lists {
        if !values.is_empty() {
            config[key] = json!(values);
        }
    }
    if !entry.config.listing_visibility.is_empty() {
        config["listing_visibility"] = json!(entry.config.listing_visibility);
    }
    if !entry.config.token_type.is_empty() {
        config["token_type"] = json!(entry.config.token_type);
    }
    for (key, value) in lease_settings(entry) {
        config[key] = value;
    }
    json!({
        "type": entry.kind,
        "description": entry.description,
        "accessor": entry.accessor,
        "uuid": entry.uuid,
        "config": config,
        "options": if entry.options.is_empty() { Value::Null } else { Value::Object(entry.options.clone()) },
        "local": entry.local,
        "seal_wrap": entry.seal_wrap,
        "external_entropy_access": false,
        "plugin_version": "",
        "running_plugin_version": format!("v{}+builtin.mayfly", env!("CARGO_PKG_VERSION")),
        "running_sha256": "",
    })
}

/// The revocation settings a mount has (only those set, as Vault omits unset options).
fn lease_settings(entry: &MountEntry) -> Vec<(&'static str, Value)> {
    let mut settings = Vec::new();
    if entry.config.lease_revoke_max_attempts != 0 {
        settings.push((
            "lease_revoke_max_attempts",
            json!(entry.config.lease_revoke_max_attempts),
        ));
    }
    if entry.config.lease_revoke_initial_backoff != 0 {
        settings.push((
            "lease_revoke_initial_backoff",
            json!(entry.config.lease_revoke_initial_backoff),
        ));
    }
    if entry.config.lease_revoke_concurrency != 0 {
        settings.push((
            "lease_revoke_concurrency",
            json!(entry.config.lease_revoke_concurrency),
        ));
    }
    settings
}

fn table(core: &Core, class: MountClass) -> Result<Map<String, Value>> {
    let router = core.unsealed()?.mounts.router();
    Ok(router
        .entries()
        .filter(|entry| entry.class == class)
        .map(|entry| (entry.table_path().to_owned(), mount_info(entry)))
        .collect())
}

async fn list_secret_mounts(core: Arc<Core>, _: Request, _: FieldData) -> Result<Option<Response>> {
    Ok(Some(Response::with_data(table(&core, MountClass::Secret)?)))
}

async fn list_auth_mounts(core: Arc<Core>, _: Request, _: FieldData) -> Result<Option<Response>> {
    Ok(Some(Response::with_data(table(&core, MountClass::Auth)?)))
}

async fn read_mount(core: Arc<Core>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let path = router_path(&req, &fields)?;
    let router = core.unsealed()?.mounts.router();
    let route = router
        .get(&path)
        .ok_or_else(|| Error::invalid(format!("No mount at {path}")))?;
    Ok(Some(Response::from_value(mount_info(&route.entry))))
}

/// Vault's type aliases: `kv-v1`/`kv-v2` are `kv` with a version option.
fn resolve_type(kind: &str, options: &mut Map<String, Value>) -> String {
    match kind {
        "kv-v1" => {
            options.insert("version".into(), "1".into());
            "kv".to_owned()
        }
        "kv-v2" => {
            options.insert("version".into(), "2".into());
            "kv".to_owned()
        }
        other => other.to_owned(),
    }
}

fn ttl_seconds(value: &Value, name: &str) -> Result<u64> {
    match value {
        Value::String(text) if text == "system" || text.is_empty() => Ok(0),
        other => parse_duration_value(other)
            .map(|duration| duration.as_secs())
            .map_err(|err| Error::invalid(format!("invalid {name}: {err}"))),
    }
}

fn string_options(options: Map<String, Value>) -> Result<Map<String, Value>> {
    options
        .into_iter()
        .map(|(key, value)| match value {
            Value::String(_) => Ok((key, value)),
            Value::Number(number) => Ok((key, Value::String(number.to_string()))),
            Value::Bool(flag) => Ok((key, Value::String(flag.to_string()))),
            _ => Err(Error::invalid(format!("option {key:?} must be a string"))),
        })
        .collect()
}

async fn enable(core: Arc<Core>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let path = router_path(&req, &fields)?;
    let class = if is_auth(&req) {
        MountClass::Auth
    } else {
        MountClass::Secret
    };
    if class == MountClass::Secret && (path.starts_with("sys/") || path.starts_with("auth/")) {
        return Err(Error::invalid(format!(
            "cannot mount under {path:?}: reserved path"
        )));
    }
    let requested = fields
        .string("type")
        .or_else(|| fields.string("plugin_name"))
        .filter(|kind| !kind.is_empty())
        .ok_or_else(|| Error::invalid("backend type must be specified as a string"))?;
    let mut options = string_options(fields.map("options").unwrap_or_default())?;
    let kind = resolve_type(&requested, &mut options);
    if matches!(kind.as_str(), "system" | "token" | "cubbyhole" | "identity") {
        return Err(Error::invalid(format!(
            "cannot mount a second {kind:?} backend"
        )));
    }
    let unsealed = core.unsealed()?;
    let mut entry = MountEntry::new(
        class,
        &path,
        &kind,
        &fields.string("description").unwrap_or_default(),
    );
    entry.options = options;
    entry.local = fields.bool("local").unwrap_or(false);
    entry.seal_wrap = fields.bool("seal_wrap").unwrap_or(false);
    if let Some(config) = fields.map("config") {
        apply_config(&mut entry, &config, &core.system_ttls())?;
    }
    unsealed.mounts.enable(entry).await?;
    tracing::info!(path = %path, kind = %kind, "Mount enabled.");
    Ok(None)
}

fn apply_config(
    entry: &mut MountEntry,
    config: &Map<String, Value>,
    system: &MountTtls,
) -> Result<()> {
    for (key, value) in config {
        match key.as_str() {
            "default_lease_ttl" => entry.config.default_lease_ttl = ttl_seconds(value, key)?,
            "max_lease_ttl" => entry.config.max_lease_ttl = ttl_seconds(value, key)?,
            "force_no_cache" => entry.config.force_no_cache = value.as_bool().unwrap_or(false),
            "listing_visibility" => {
                entry.config.listing_visibility = value.as_str().unwrap_or_default().to_owned()
            }
            "token_type" => entry.config.token_type = value.as_str().unwrap_or_default().to_owned(),
            "audit_non_hmac_request_keys" => {
                entry.config.audit_non_hmac_request_keys = string_list(value)
            }
            "audit_non_hmac_response_keys" => {
                entry.config.audit_non_hmac_response_keys = string_list(value)
            }
            "passthrough_request_headers" => {
                entry.config.passthrough_request_headers = string_list(value)
            }
            "allowed_response_headers" => {
                entry.config.allowed_response_headers = string_list(value)
            }
            "lease_revoke_max_attempts" => {
                entry.config.lease_revoke_max_attempts = small_count(value, key)?
            }
            "lease_revoke_concurrency" => {
                entry.config.lease_revoke_concurrency = small_count(value, key)?
            }
            "lease_revoke_initial_backoff" => {
                entry.config.lease_revoke_initial_backoff = parse_duration_value(value)
                    .map(|duration| duration.as_secs())
                    .map_err(|err| Error::invalid(format!("invalid {key}: {err}")))?
            }
            _ => {}
        }
    }
    validate_ttls(entry, system)
}

/// A non-negative count for a lease setting (0 = the default), at most 10,000.
fn small_count(value: &Value, name: &str) -> Result<u32> {
    let number = match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    };
    number
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n <= 10_000)
        .ok_or_else(|| Error::invalid(format!("{name} must be an integer between 0 and 10000")))
}

fn validate_ttls(entry: &MountEntry, system: &MountTtls) -> Result<()> {
    let max = match entry.config.max_lease_ttl {
        0 => system.max_lease_ttl.as_secs(),
        max => max,
    };
    if entry.config.max_lease_ttl > system.max_lease_ttl.as_secs() {
        return Err(Error::invalid(
            "max_lease_ttl cannot be greater than the system max lease TTL",
        ));
    }
    if entry.config.default_lease_ttl > max {
        return Err(Error::invalid(
            "default_lease_ttl cannot be greater than max_lease_ttl",
        ));
    }
    Ok(())
}

fn string_list(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Value::String(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

async fn disable(core: Arc<Core>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let path = router_path(&req, &fields)?;
    let unsealed = core.unsealed()?;
    match unsealed.mounts.router().get(&path) {
        None => return Ok(None),
        Some(route) if route.entry.is_builtin() => {
            return Err(Error::invalid(format!("cannot unmount {path:?}")));
        }
        Some(_) => {}
    }
    core.revoke_mount_leases(&path).await?;
    let removed = unsealed.mounts.disable(&path).await;
    unsealed.mounts.untaint(&path);
    if removed?.is_some() {
        core.forget_mount_leases(&path).await;
        tracing::info!(path = %path, "Mount disabled.");
    }
    Ok(None)
}

async fn read_tune(core: Arc<Core>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let path = router_path(&req, &fields)?;
    let router = core.unsealed()?.mounts.router();
    let route = router
        .get(&path)
        .ok_or_else(|| Error::invalid(format!("cannot fetch sysview for path {path:?}")))?;
    let ttls = route.entry.ttls(core.system_ttls());
    let mut data = json!({
        "default_lease_ttl": ttls.default_lease_ttl.as_secs(),
        "max_lease_ttl": ttls.max_lease_ttl.as_secs(),
        "force_no_cache": route.entry.config.force_no_cache,
        "description": route.entry.description,
        "options": if route.entry.options.is_empty() { Value::Null } else { Value::Object(route.entry.options.clone()) },
    });
    if let Value::Object(config) = &mount_info(&route.entry)["config"] {
        for key in [
            "audit_non_hmac_request_keys",
            "audit_non_hmac_response_keys",
            "listing_visibility",
            "passthrough_request_headers",
            "allowed_response_headers",
            "token_type",
            "lease_revoke_max_attempts",
            "lease_revoke_initial_backoff",
            "lease_revoke_concurrency",
        ] {
            if let Some(value) = config.get(key) {
                data[key] = value.clone();
            }
        }
    }
    if route.entry.class == MountClass::Auth && data.get("token_type").is_none() {
        data["token_type"] = json!("default-service");
    }
    Ok(Some(Response::from_value(data)))
}

async fn write_tune(core: Arc<Core>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let path = router_path(&req, &fields)?;
    let system = core.system_ttls();
    let mut config = Map::new();
    for key in [
        "default_lease_ttl",
        "max_lease_ttl",
        "force_no_cache",
        "listing_visibility",
        "token_type",
        "audit_non_hmac_request_keys",
        "audit_non_hmac_response_keys",
        "passthrough_request_headers",
        "allowed_response_headers",
        "lease_revoke_max_attempts",
        "lease_revoke_initial_backoff",
        "lease_revoke_concurrency",
    ] {
        if let Some(value) = fields.raw(key).filter(|_| fields.is_set(key)) {
            config.insert(key.to_owned(), value.clone());
        }
    }
    let description = fields
        .string("description")
        .filter(|_| fields.is_set("description"));
    let options = fields.map("options").map(string_options).transpose()?;
    core.unsealed()?
        .mounts
        .update(&path, |entry| {
            apply_config(entry, &config, &system)?;
            if let Some(description) = description {
                entry.description = description;
            }
            if let Some(options) = options {
                if let Some(version) = options.get("version") {
                    let current = entry
                        .options
                        .get("version")
                        .and_then(Value::as_str)
                        .unwrap_or("1");
                    if entry.kind == "kv" && version.as_str() == Some("1") && current == "2" {
                        return Err(Error::invalid(
                            "cannot downgrade a kv mount from version 2 to 1",
                        ));
                    }
                }
                entry.options.extend(options);
            }
            Ok(())
        })
        .await?;
    Ok(None)
}

async fn remount(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    let normalize = |name: &str| -> Result<String> {
        let value = fields
            .string(name)
            .map(|v| v.trim_matches('/').to_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::invalid(format!("\"{name}\" is required")))?;
        if value.split('/').any(|segment| segment == "..") {
            return Err(Error::invalid("path cannot contain parent references"));
        }
        Ok(format!("{value}/"))
    };
    let from = normalize("from")?;
    let to = normalize("to")?;
    let unsealed = core.unsealed()?;
    if unsealed.mounts.router().get(&from).is_none() {
        return Err(Error::invalid(format!("no mount at {from:?}")));
    }
    // As Vault does, a moved mount's leases are revoked first: their IDs name the old path.
    core.revoke_mount_leases(&from).await?;
    let moved = unsealed.mounts.remount(&from, &to).await;
    unsealed.mounts.untaint(&from);
    moved?;
    let migration_id = crate::random::uuid();
    core.record_migration(&migration_id, &from, &to);
    Ok(Some(Response::from_value(
        json!({ "migration_id": migration_id }),
    )))
}

async fn remount_status(
    core: Arc<Core>,
    _: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let id = fields.string("migration_id").unwrap_or_default();
    Ok(core.migration(&id).map(|(from, to)| {
        Response::from_value(json!({
            "migration_id": id,
            "migration_info": {
                "source_mount": from,
                "target_mount": to,
                "status": "success",
            },
        }))
    }))
}

async fn ui_mounts(core: Arc<Core>, req: Request, _: FieldData) -> Result<Option<Response>> {
    let acl = core.caller_acl(&req).await?;
    let router = core.unsealed()?.mounts.router();
    let mut secret = Map::new();
    let mut auth = Map::new();
    for entry in router.entries() {
        if !acl.allows_anything_under(&entry.path) {
            continue;
        }
        let target = match entry.class {
            MountClass::Secret => &mut secret,
            MountClass::Auth => &mut auth,
        };
        target.insert(entry.table_path().to_owned(), mount_info(entry));
    }
    Ok(Some(Response::from_value(
        json!({ "secret": secret, "auth": auth }),
    )))
}

async fn ui_mount(core: Arc<Core>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let path = fields.string("path").unwrap_or_default();
    let acl = core.caller_acl(&req).await?;
    let router = core.unsealed()?.mounts.router();
    let route = router.route(&path).ok_or(Error::PermissionDenied)?;
    if !acl.allows_anything_under(&route.entry.path) {
        return Err(Error::PermissionDenied);
    }
    let mut info = mount_info(&route.entry);
    info["path"] = json!(route.entry.table_path());
    Ok(Some(Response::from_value(info)))
}
