//! `metadata/<key>`: a key's settings and version history; listing keys; removing a key.

use std::{collections::BTreeMap, sync::Arc};

use mayfly_sdk::{
    Error, Operation, Request, Response, Result,
    framework::{Field, FieldData, FieldKind, Path, handler, match_all_after},
};
use serde_json::{Map, Value};

use super::{
    KvV2,
    config::max_versions_field,
    key, key_existence,
    model::{Config, KeyMetadata, metadata_key, version_key},
    not_found_empty, path_field,
};
use crate::{
    convert::{duration_seconds, weak_string},
    timefmt::{go_duration, rfc3339_nano},
};

const MAX_CUSTOM_METADATA_KEYS: usize = 64;
const MAX_CUSTOM_METADATA_KEY_LENGTH: usize = 128;
const MAX_CUSTOM_METADATA_VALUE_LENGTH: usize = 512;
const CUSTOM_METADATA_ERROR_PREFIX: &str = "custom_metadata validation failed";
const CAS_IGNORED_WARNING: &str =
    "\"cas_required\" set to false, but is mandated by backend config. This value will be ignored.";

pub(super) fn path() -> Path<KvV2> {
    Path::new(format!("metadata/{}", match_all_after("path")))
        .field(path_field())
        .field(Field::new(
            "cas_required",
            FieldKind::Bool,
            "If true the key will require the cas parameter to be set on all write requests. If \
             false, the backend's configuration will be used.",
        ))
        .field(Field::new(
            "max_versions",
            FieldKind::Int,
            "The number of versions to keep. If not set, the backend's configured max version \
             is used.",
        ))
        .field(Field::new(
            "delete_version_after",
            FieldKind::Raw,
            "The length of time before a version is deleted. If not set, the backend's \
             configured delete_version_after is used. Cannot be greater than the backend's \
             delete_version_after. A zero duration clears the current setting. A negative \
             duration will cause an error.",
        ))
        .field(Field::new(
            "custom_metadata",
            FieldKind::Map,
            "User-provided key-value pairs that are used to describe arbitrary and \
             version-agnostic information about a secret.",
        ))
        .field(Field::new(
            "after",
            FieldKind::String,
            "Optional entry to begin listing after, not required to exist. Only used for \
             listing.",
        ))
        .field(Field::new(
            "limit",
            FieldKind::Int,
            "Optional number of entries to return; defaults to all entries. Only used for \
             listing.",
        ))
        .operation(Operation::Read, handler(read))
        .operation(Operation::Update, handler(write))
        .operation(Operation::Patch, handler(patch))
        .operation(Operation::Delete, handler(delete))
        .operation(Operation::List, handler(list))
        .existence_check(key_existence())
        .help(
            "Allows interaction with key metadata and settings in the KV store.",
            "This endpoint allows for reading information about a key in the key-value store, \
             writing key settings, and permanently deleting a key and all versions.",
        )
}

async fn read(_: Arc<KvV2>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let Some(meta) = KeyMetadata::load(req.storage()?.as_ref(), &key(&fields)).await? else {
        return Ok(None);
    };
    // Go renders map keys in byte order ("1", "10", "2"); the same order here keeps
    // responses byte-comparable with Vault's.
    let mut versions: Vec<(String, Value)> = meta
        .versions
        .iter()
        .map(|(number, version)| {
            let mut entry = Map::new();
            entry.insert(
                "created_time".into(),
                Value::String(rfc3339_nano(version.created_time)),
            );
            entry.insert(
                "deletion_time".into(),
                Value::String(version.deletion_time.map(rfc3339_nano).unwrap_or_default()),
            );
            entry.insert("destroyed".into(), Value::Bool(version.destroyed));
            (number.to_string(), Value::Object(entry))
        })
        .collect();
    versions.sort_by(|a, b| a.0.cmp(&b.0));

    let mut data = Map::new();
    data.insert("cas_required".into(), Value::Bool(meta.cas_required));
    data.insert(
        "created_time".into(),
        Value::String(timestamp(meta.created_time)),
    );
    data.insert("current_version".into(), Value::from(meta.current_version));
    data.insert("custom_metadata".into(), meta.custom_metadata_json());
    data.insert(
        "delete_version_after".into(),
        Value::String(go_duration(meta.delete_version_after)),
    );
    data.insert("max_versions".into(), Value::from(meta.max_versions));
    data.insert("oldest_version".into(), Value::from(meta.oldest_version));
    data.insert(
        "updated_time".into(),
        Value::String(timestamp(meta.updated_time)),
    );
    data.insert(
        "versions".into(),
        Value::Object(versions.into_iter().collect()),
    );
    Ok(Some(Response::with_data(data)))
}

/// A stored timestamp, or `""` when it was never set.
fn timestamp(nanos: i64) -> String {
    if nanos == 0 {
        String::new()
    } else {
        rfc3339_nano(nanos)
    }
}

/// The settings a metadata write or patch carries, parsed and validated before any lock.
struct Settings {
    max_versions: Option<u32>,
    cas_required: Option<bool>,
    delete_version_after: Option<i64>,
}

fn settings(fields: &FieldData) -> Result<Settings> {
    let delete_version_after = if fields.is_set("delete_version_after") {
        let raw = fields
            .raw("delete_version_after")
            .cloned()
            .unwrap_or_default();
        let seconds = duration_seconds(&raw).map_err(|err| {
            Error::invalid(format!(
                "error converting input for field \"delete_version_after\": {err}"
            ))
        })?;
        // Per key, a negative value has no meaning (only the mount can disable expiry).
        if seconds < 0 {
            return Err(Error::invalid(format!(
                "error converting input for field \"delete_version_after\": cannot provide \
                 negative value '{seconds}'"
            )));
        }
        Some(seconds)
    } else {
        None
    };
    Ok(Settings {
        max_versions: max_versions_field(fields)?,
        cas_required: fields
            .bool("cas_required")
            .filter(|_| fields.is_set("cas_required")),
        delete_version_after,
    })
}

/// The warning Vault gives when a key tries to opt out of a check-and-set the mount requires.
fn cas_warning(settings: &Settings, config: &Config) -> Option<Response> {
    (settings.cas_required == Some(false) && config.cas_required).then(|| Response {
        warnings: vec![CAS_IGNORED_WARNING.to_owned()],
        ..Response::default()
    })
}

/// Converts `custom_metadata` to strings the way Vault does; `null` values are skipped when
/// `skip_nulls` (a patch, where they mean "remove") and become empty strings otherwise.
fn parse_custom_metadata(
    raw: &Map<String, Value>,
    skip_nulls: bool,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (name, value) in raw {
        if skip_nulls && value.is_null() {
            continue;
        }
        let text = weak_string(value)
            .map_err(|err| Error::invalid(format!("{CUSTOM_METADATA_ERROR_PREFIX}: {err}")))?;
        out.insert(name.clone(), text);
    }
    Ok(out)
}

/// Vault's limits on custom metadata, with every violation reported at once in Go's
/// multi-error format (clients display it verbatim).
fn validate_custom_metadata(metadata: &BTreeMap<String, String>) -> Result<()> {
    let mut errors = Vec::new();
    if metadata.len() > MAX_CUSTOM_METADATA_KEYS {
        errors.push(format!(
            "{CUSTOM_METADATA_ERROR_PREFIX}: payload must contain at most \
             {MAX_CUSTOM_METADATA_KEYS} keys, provided {}",
            metadata.len()
        ));
    } else {
        for (name, value) in metadata {
            if name.is_empty() || name.len() > MAX_CUSTOM_METADATA_KEY_LENGTH {
                errors.push(format!(
                    "{CUSTOM_METADATA_ERROR_PREFIX}: length of key {} is {} but must be \
                     0 < len(key) <= {MAX_CUSTOM_METADATA_KEY_LENGTH}",
                    go_quote(name),
                    name.len()
                ));
            }
            if value.is_empty() || value.len() > MAX_CUSTOM_METADATA_VALUE_LENGTH {
                errors.push(format!(
                    "{CUSTOM_METADATA_ERROR_PREFIX}: length of value for key {} is {} but \
                     must be 0 < len(value) <= {MAX_CUSTOM_METADATA_VALUE_LENGTH}",
                    go_quote(name),
                    value.len()
                ));
            }
            if !printable(name) {
                errors.push(format!(
                    "{CUSTOM_METADATA_ERROR_PREFIX}: key {} ({name}) contains unprintable \
                     characters",
                    go_quote(name)
                ));
            }
            if !printable(value) {
                errors.push(format!(
                    "{CUSTOM_METADATA_ERROR_PREFIX}: value for key {} contains \
                     unprintable characters",
                    go_quote(name)
                ));
            }
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    let count = match errors.len() {
        1 => "1 error occurred".to_owned(),
        n => format!("{n} errors occurred"),
    };
    let list: String = errors.iter().map(|err| format!("\n\t* {err}")).collect();
    Err(Error::invalid(format!("{count}:{list}\n\n")))
}

/// Quotes like Go's `%q`, so error messages read exactly as Vault's do.
fn go_quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if !printable(&c.to_string()) => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Close to Go's `unicode.IsPrint`: no control characters, and the only space is U+0020.
fn printable(text: &str) -> bool {
    text.chars()
        .all(|c| !c.is_control() && (c == ' ' || !c.is_whitespace()))
}

async fn write(state: Arc<KvV2>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let key = crate::writable_key(key(&fields))?;
    let settings = settings(&fields)?;
    let custom_metadata = if fields.is_set("custom_metadata") {
        let raw = fields.map("custom_metadata").unwrap_or_default();
        let parsed = parse_custom_metadata(&raw, false)?;
        validate_custom_metadata(&parsed)?;
        Some(parsed)
    } else {
        None
    };
    // Nothing to change: Vault does not even create the key.
    if settings.max_versions.is_none()
        && settings.cas_required.is_none()
        && settings.delete_version_after.is_none()
        && custom_metadata.is_none()
    {
        return Ok(None);
    }

    let storage = req.storage()?.as_ref();
    let config = Config::load(storage).await?;
    let response = cas_warning(&settings, &config);
    let _guard = state.stripe(&key).write().await;
    let mut meta = match KeyMetadata::load(storage, &key).await? {
        Some(meta) => meta,
        None => {
            let now = state.now();
            KeyMetadata {
                created_time: now,
                updated_time: now,
                ..KeyMetadata::new(&key)
            }
        }
    };
    apply(&mut meta, &settings);
    if let Some(custom_metadata) = custom_metadata {
        meta.custom_metadata = custom_metadata;
    }
    meta.save(storage).await?;
    Ok(response)
}

fn apply(meta: &mut KeyMetadata, settings: &Settings) {
    if let Some(max_versions) = settings.max_versions {
        meta.max_versions = max_versions;
    }
    if let Some(cas_required) = settings.cas_required {
        meta.cas_required = cas_required;
    }
    if let Some(seconds) = settings.delete_version_after {
        meta.delete_version_after = seconds;
    }
}

async fn patch(state: Arc<KvV2>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let key = crate::writable_key(key(&fields))?;
    let custom_metadata_patch = if fields.is_set("custom_metadata") {
        let raw = fields.raw("custom_metadata").cloned().unwrap_or_default();
        if let Value::Object(map) = &raw {
            validate_custom_metadata(&parse_custom_metadata(map, true)?)?;
        }
        Some(raw)
    } else {
        None
    };
    let settings = settings(&fields)?;

    let storage = req.storage()?.as_ref();
    let config = Config::load(storage).await?;
    let _guard = state.stripe(&key).write().await;
    let Some(mut meta) = KeyMetadata::load(storage, &key).await? else {
        return Ok(Some(not_found_empty()));
    };
    let response = cas_warning(&settings, &config);
    apply(&mut meta, &settings);
    match custom_metadata_patch {
        // Merge-patch semantics: `null` clears the map, a `null` entry removes that entry.
        Some(Value::Object(entries)) => {
            for (name, value) in &entries {
                if value.is_null() {
                    meta.custom_metadata.remove(name);
                } else {
                    let text = weak_string(value).map_err(|err| {
                        Error::invalid(format!("{CUSTOM_METADATA_ERROR_PREFIX}: {err}"))
                    })?;
                    meta.custom_metadata.insert(name.clone(), text);
                }
            }
            // The patch alone was valid; the merged result must respect the limits too.
            validate_custom_metadata(&meta.custom_metadata)?;
        }
        Some(_) => meta.custom_metadata.clear(),
        None => {}
    }
    meta.save(storage).await?;
    Ok(response)
}

async fn delete(state: Arc<KvV2>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let key = key(&fields);
    let storage = req.storage()?.as_ref();
    let _guard = state.stripe(&key).write().await;
    let Some(meta) = KeyMetadata::load(storage, &key).await? else {
        return Ok(None);
    };
    for number in meta.versions.keys() {
        storage.delete(&version_key(&key, *number)).await?;
    }
    // The metadata goes last, so a failure midway leaves a key that can be deleted again.
    storage.delete(&metadata_key(&key)).await?;
    Ok(None)
}

async fn list(_: Arc<KvV2>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let mut prefix = key(&fields);
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    let mut keys = req.storage()?.list(&metadata_key(&prefix)).await?;
    // Paging as OpenBao offers it: entries strictly after `after`, at most `limit` of them.
    if let Some(after) = fields.string("after").filter(|after| !after.is_empty()) {
        keys.retain(|name| name.as_str() > after.as_str());
    }
    if let Some(limit) = fields.int("limit").filter(|limit| *limit > 0) {
        keys.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    if keys.is_empty() {
        return Ok(None);
    }
    Ok(Some(Response::list(keys)))
}
