//! `data/<key>` (read, write, patch, soft-delete the latest version) and `subkeys/<key>`.

use std::sync::Arc;

use mayfly_sdk::{
    Error, Operation, Request, Response, Result, Storage, StorageExt,
    framework::{Field, FieldData, FieldKind, Path, handler, match_all_after},
};
use serde_json::{Map, Value};

use super::{
    KvV2, key, key_existence,
    model::{Config, KeyMetadata, RECORD_VERSION, VersionEntry, encode, version_key},
    not_found_empty, not_found_with, path_field,
};
use crate::convert::weak_int;

pub(super) fn path() -> Path<KvV2> {
    Path::new(format!("data/{}", match_all_after("path")))
        .field(path_field())
        .field(Field::new(
            "version",
            FieldKind::Int,
            "If provided during a read, the value at the version number will be returned.",
        ))
        .field(Field::new(
            "options",
            FieldKind::Map,
            "Options for writing a KV entry. Set \"cas\" for a check-and-set operation: 0 \
             allows the write only if the key does not exist, any other number only if it is \
             the key's current version.",
        ))
        .field(Field::new(
            "data",
            FieldKind::Map,
            "The contents of the data map will be stored and returned on read.",
        ))
        .operation(Operation::Read, handler(read))
        .operation(Operation::Update, handler(write))
        .operation(Operation::Patch, handler(patch))
        .operation(Operation::Delete, handler(delete))
        .existence_check(key_existence())
        .help(
            "Write, Patch, Read, and Delete data in the Key-Value Store.",
            "Each write creates a new version of the key; a read returns the latest version \
             unless \"version\" is set. A patch merges into the latest version and must target \
             an existing, undeleted secret. Delete is a soft delete of the latest version and \
             can be undone.",
        )
}

pub(super) fn subkeys_path() -> Path<KvV2> {
    Path::new(format!("subkeys/{}", match_all_after("path")))
        .field(path_field())
        .field(Field::new(
            "depth",
            FieldKind::Int,
            "The maximum depth to traverse. No limit will be imposed if not provided or if 0.",
        ))
        .field(Field::new(
            "version",
            FieldKind::Int,
            "Specifies which version to retrieve. If not provided, the current version will be \
             used.",
        ))
        .operation(Operation::Read, handler(subkeys))
        .help(
            "Read the structure of a secret entry from the Key-Value store with the values \
             removed.",
            "Returns the keys of the secret with every leaf value replaced by null. \"depth\" \
             limits how deep nested objects are shown (0 means no limit).",
        )
}

/// The version a read asks for: `version` when positive, otherwise the latest (Vault treats
/// zero and negative numbers alike).
fn requested_version(fields: &FieldData, meta: &KeyMetadata) -> u64 {
    fields
        .int("version")
        .and_then(|version| u64::try_from(version).ok())
        .filter(|version| *version > 0)
        .unwrap_or(meta.current_version)
}

async fn load_version_data(storage: &dyn Storage, key: &str, number: u64) -> Result<Value> {
    let entry: Option<VersionEntry> = storage.get_json(&version_key(key, number)).await?;
    entry
        .map(|entry| entry.data)
        .ok_or_else(|| Error::internal(format!("could not find version data of version {number}")))
}

async fn read(state: Arc<KvV2>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let key = key(&fields);
    let _guard = state.stripe(&key).read().await;
    let storage = req.storage()?.as_ref();
    let Some(meta) = KeyMetadata::load(storage, &key).await? else {
        return Ok(None);
    };
    let number = requested_version(&fields, &meta);
    let Some(version) = meta.versions.get(&number) else {
        return Ok(None);
    };
    let mut data = Map::new();
    data.insert("data".into(), Value::Null);
    data.insert(
        "metadata".into(),
        Value::Object(meta.version_json(number, version)),
    );
    if version.is_gone(state.now()) {
        return Ok(Some(not_found_with(data)));
    }
    data.insert(
        "data".into(),
        load_version_data(storage, &key, number).await?,
    );
    Ok(Some(Response::with_data(data)))
}

/// Enforces check-and-set: `options.cas` must equal the current version (0 for a new key), and
/// must be present when the mount or the key requires it.
fn check_cas(fields: &FieldData, config: &Config, meta: &KeyMetadata) -> Result<()> {
    let cas = fields
        .map("options")
        .and_then(|options| options.get("cas").cloned());
    match cas {
        Some(raw) => {
            let cas = weak_int(&raw)
                .map_err(|_| Error::invalid("error parsing check-and-set parameter"))?;
            // A negative number can never match, as with Vault's unsigned comparison.
            if u64::try_from(cas).ok() != Some(meta.current_version) {
                return Err(Error::invalid(
                    "check-and-set parameter did not match the current version",
                ));
            }
            Ok(())
        }
        None if config.cas_required || meta.cas_required => Err(Error::invalid(
            "check-and-set parameter required for this call",
        )),
        None => Ok(()),
    }
}

/// Stores `data` as the key's next version, trims versions beyond `max_versions`, and returns
/// the new version's metadata. The caller holds the key's write lock.
async fn store_new_version(
    state: &KvV2,
    storage: &dyn Storage,
    config: &Config,
    mut meta: KeyMetadata,
    data: Value,
) -> Result<Response> {
    let now = state.now();
    let number = meta.current_version + 1;
    let entry = VersionEntry {
        version: RECORD_VERSION,
        data,
        created_time: now,
    };
    let data_key = version_key(&meta.key, number);
    let data_value = encode(&data_key, &entry)?;
    let deletion_time = meta.deletion_time(now, config);
    let trimmed = meta.add_version(now, deletion_time, config.max_versions);
    // The data and the metadata that references it are written together: one durable commit,
    // and never metadata pointing at a version that was not stored.
    storage
        .put_all(vec![(data_key, data_value), meta.encode()?])
        .await?;

    let mut response = match meta.versions.get(&number) {
        Some(version) => Response::with_data(meta.version_json(number, version)),
        None => return Err(Error::internal("new version missing from its key metadata")),
    };
    if let Some(trimmed) = trimmed {
        // The metadata no longer references these versions, so a failure here only leaves
        // unreachable data behind; like Vault, report it rather than fail the write.
        for old in trimmed.filter(|number| *number > 0) {
            if let Err(err) = storage.delete(&version_key(&meta.key, old)).await {
                tracing::warn!(error = %err, "Could not remove a trimmed KV version.");
                response.warnings.push(
                    "error occurred when cleaning up old versions; their data was left in storage"
                        .to_owned(),
                );
                break;
            }
        }
    }
    Ok(response)
}

async fn write(state: Arc<KvV2>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let key = crate::writable_key(key(&fields))?;
    let storage = req.storage()?.as_ref();
    let config = Config::load(storage).await?;
    if !fields.is_set("data") {
        return Err(Error::invalid("no data provided"));
    }
    let data = fields.raw("data").cloned().unwrap_or(Value::Null);

    let _guard = state.stripe(&key).write().await;
    let meta = KeyMetadata::load(storage, &key)
        .await?
        .unwrap_or_else(|| KeyMetadata::new(&key));
    check_cas(&fields, &config, &meta)?;
    store_new_version(&state, storage, &config, meta, data)
        .await
        .map(Some)
}

async fn patch(state: Arc<KvV2>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let key = crate::writable_key(key(&fields))?;
    if !fields.is_set("data") {
        return Err(Error::invalid("no data provided"));
    }
    let storage = req.storage()?.as_ref();

    let _guard = state.stripe(&key).write().await;
    let Some(meta) = KeyMetadata::load(storage, &key).await? else {
        return Ok(Some(not_found_empty()));
    };
    let config = Config::load(storage).await?;
    check_cas(&fields, &config, &meta)?;
    let current = meta.current_version;
    let Some(version) = meta.versions.get(&current) else {
        return Ok(Some(not_found_empty()));
    };
    if version.is_gone(state.now()) {
        // Unlike a read, the body is the version metadata itself, not nested under "metadata".
        return Ok(Some(not_found_with(meta.version_json(current, version))));
    }
    let existing = load_version_data(storage, &key, current).await?;
    let patch = fields.raw("data").cloned().unwrap_or(Value::Null);
    let merged = merge_patch(existing, &patch);
    store_new_version(&state, storage, &config, meta, merged)
        .await
        .map(Some)
}

/// RFC 7396 JSON merge patch: objects merge key by key, `null` removes a key, anything else
/// replaces. Keys keep their position, so a patched secret reads back in its original order.
fn merge_patch(target: Value, patch: &Value) -> Value {
    let Value::Object(patch) = patch else {
        return patch.clone();
    };
    let mut target = match target {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    for (name, value) in patch {
        if value.is_null() {
            target.shift_remove(name);
        } else if let Some(slot) = target.get_mut(name) {
            let current = std::mem::take(slot);
            *slot = merge_patch(current, value);
        } else {
            target.insert(name.clone(), merge_patch(Value::Null, value));
        }
    }
    Value::Object(target)
}

async fn delete(state: Arc<KvV2>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let key = key(&fields);
    let storage = req.storage()?.as_ref();
    let _guard = state.stripe(&key).write().await;
    let Some(mut meta) = KeyMetadata::load(storage, &key).await? else {
        return Ok(None);
    };
    let now = state.now();
    let current = meta.current_version;
    let Some(latest) = meta.versions.get_mut(&current) else {
        return Ok(None);
    };
    if latest.is_gone(now) {
        return Ok(None);
    }
    latest.deletion_time = Some(now);
    meta.save(storage).await?;
    Ok(None)
}

async fn subkeys(state: Arc<KvV2>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let key = key(&fields);
    let depth = fields.int("depth").unwrap_or(0);
    let _guard = state.stripe(&key).read().await;
    let storage = req.storage()?.as_ref();
    let Some(meta) = KeyMetadata::load(storage, &key).await? else {
        return Ok(None);
    };
    let number = requested_version(&fields, &meta);
    let Some(version) = meta.versions.get(&number) else {
        return Ok(None);
    };
    let mut data = Map::new();
    data.insert(
        "metadata".into(),
        Value::Object(meta.version_json(number, version)),
    );
    data.insert("subkeys".into(), Value::Null);
    if version.is_gone(state.now()) {
        return Ok(Some(not_found_with(data)));
    }
    let mut secret = load_version_data(storage, &key, number).await?;
    if let Value::Object(map) = &mut secret {
        remove_values(map, 1, depth);
    }
    data.insert("subkeys".into(), secret);
    Ok(Some(Response::with_data(data)))
}

/// Replaces every leaf with `null`, descending into non-empty objects until `max_depth`
/// (0 = no limit). Anything at the depth limit becomes `null` too, so no value can leak.
fn remove_values(map: &mut Map<String, Value>, depth: i64, max_depth: i64) {
    let next = depth + 1;
    for value in map.values_mut() {
        match value {
            Value::Object(inner) if !inner.is_empty() && (max_depth == 0 || next <= max_depth) => {
                remove_values(inner, next, max_depth);
            }
            _ => *value = Value::Null,
        }
    }
}
