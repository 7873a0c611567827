//! `delete/`, `undelete/` and `destroy/`: acting on chosen versions of a key.

use std::sync::Arc;

use mayfly_sdk::{
    Error, Operation, Request, Response, Result,
    framework::{Field, FieldData, FieldKind, Path, handler, match_all_after},
};

use super::{
    KvV2, key,
    model::{Config, KeyMetadata, version_key},
    path_field,
};
use crate::convert::int_list;

fn versions_path(prefix: &str, description: &'static str) -> Path<KvV2> {
    Path::new(format!("{prefix}/{}", match_all_after("path")))
        .field(path_field())
        .field(Field::new("versions", FieldKind::Raw, description))
}

pub(super) fn delete_path() -> Path<KvV2> {
    versions_path(
        "delete",
        "The versions to be archived. The versioned data will not be deleted, but it will no \
         longer be returned in normal get requests.",
    )
    .operation(Operation::Update, handler(delete))
    .help(
        "Marks one or more versions as deleted in the KV store.",
        "The versioned data is not removed, but is no longer returned by reads. This can be \
         undone with undelete.",
    )
}

pub(super) fn undelete_path() -> Path<KvV2> {
    versions_path(
        "undelete",
        "The versions to unarchive. The versions will be restored and their data will be \
         returned on normal get requests.",
    )
    .operation(Operation::Update, handler(undelete))
    .help(
        "Undeletes one or more versions from the KV store.",
        "Restores soft-deleted versions so that reads return their data again.",
    )
}

pub(super) fn destroy_path() -> Path<KvV2> {
    versions_path(
        "destroy",
        "The versions to destroy. Their data will be permanently deleted.",
    )
    .operation(Operation::Update, handler(destroy))
    .help(
        "Permanently removes one or more versions in the KV store.",
        "Removes the data of the given versions for good; their metadata remains, marked \
         destroyed.",
    )
}

/// The `versions` list; `missing` is the message when it is empty (Vault's capitalization
/// differs between endpoints, and clients may match on it).
fn requested_versions(fields: &FieldData, missing: &str) -> Result<Vec<u64>> {
    let raw = fields.raw("versions").cloned().unwrap_or_default();
    let versions = int_list(&raw).map_err(|err| {
        Error::invalid(format!(
            "error converting input for field \"versions\": {err}"
        ))
    })?;
    if versions.is_empty() {
        return Err(Error::invalid(missing));
    }
    // Negative numbers name no version; Vault ignores them, so they are dropped here.
    Ok(versions
        .into_iter()
        .filter_map(|number| u64::try_from(number).ok())
        .collect())
}

async fn delete(state: Arc<KvV2>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let key = key(&fields);
    let versions = requested_versions(&fields, "No version number provided")?;
    let storage = req.storage()?.as_ref();
    let _guard = state.stripe(&key).write().await;
    let Some(mut meta) = KeyMetadata::load(storage, &key).await? else {
        return Ok(None);
    };
    let now = state.now();
    for number in versions {
        if let Some(version) = meta.versions.get_mut(&number)
            && !version.is_gone(now)
        {
            version.deletion_time = Some(now);
        }
    }
    meta.save(storage).await?;
    Ok(None)
}

async fn undelete(state: Arc<KvV2>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let key = key(&fields);
    let versions = requested_versions(&fields, "No version number provided")?;
    let storage = req.storage()?.as_ref();
    let config = Config::load(storage).await?;
    let _guard = state.stripe(&key).write().await;
    let Some(mut meta) = KeyMetadata::load(storage, &key).await? else {
        return Ok(None);
    };
    // An undeleted version gets a fresh automatic-deletion deadline, counted from now.
    let deletion_time = meta.deletion_time(state.now(), &config);
    for number in versions {
        if let Some(version) = meta.versions.get_mut(&number)
            && !version.destroyed
        {
            version.deletion_time = deletion_time;
        }
    }
    meta.save(storage).await?;
    Ok(None)
}

async fn destroy(state: Arc<KvV2>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let key = key(&fields);
    let versions = requested_versions(&fields, "no version number provided")?;
    let storage = req.storage()?.as_ref();
    let _guard = state.stripe(&key).write().await;
    let Some(mut meta) = KeyMetadata::load(storage, &key).await? else {
        return Ok(None);
    };
    for number in &versions {
        if let Some(version) = meta.versions.get_mut(number) {
            version.destroyed = true;
        }
    }
    // Metadata first: if removing data fails midway, the versions already read as destroyed
    // and are never served, rather than pointing at half-removed data.
    meta.save(storage).await?;
    for number in versions {
        storage.delete(&version_key(&key, number)).await?;
    }
    Ok(None)
}
