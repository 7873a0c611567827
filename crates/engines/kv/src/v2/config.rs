//! `config`: the mount-wide defaults every key falls back to.

use std::sync::Arc;

use mayfly_sdk::{
    Error, Operation, Request, Response, Result,
    framework::{Field, FieldData, FieldKind, Path, handler},
};
use serde_json::{Map, Value};

use super::{
    KvV2,
    model::{Config, DELETE_VERSION_AFTER_DISABLED},
};
use crate::{convert::duration_seconds, timefmt::go_duration};

pub(super) fn path() -> Path<KvV2> {
    Path::new("config")
        .field(Field::new(
            "max_versions",
            FieldKind::Int,
            "The number of versions to keep for each key. Defaults to 10.",
        ))
        .field(Field::new(
            "cas_required",
            FieldKind::Bool,
            "If true, the backend will require the cas parameter to be set for each write.",
        ))
        .field(Field::new(
            "delete_version_after",
            FieldKind::Raw,
            "If set, the length of time before a version is deleted. A negative duration \
             disables the use of delete_version_after on all keys. A zero duration clears the \
             current setting. Accepts a Go duration format string.",
        ))
        .operation(Operation::Read, handler(read))
        .operation(Operation::Update, handler(write))
        .help(
            "Configures settings for the KV store.",
            "This path configures backend level settings that are applied to every key in the \
             key-value store: max_versions, cas_required and delete_version_after.",
        )
}

async fn read(_: Arc<KvV2>, req: Request, _: FieldData) -> Result<Option<Response>> {
    let config = Config::load(req.storage()?.as_ref()).await?;
    let mut data = Map::new();
    data.insert("cas_required".into(), Value::Bool(config.cas_required));
    data.insert(
        "delete_version_after".into(),
        Value::String(go_duration(config.delete_version_after)),
    );
    data.insert("max_versions".into(), Value::from(config.max_versions));
    Ok(Some(Response::with_data(data)))
}

async fn write(state: Arc<KvV2>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let max_versions = max_versions_field(&fields)?;
    let delete_version_after = fields
        .raw("delete_version_after")
        .filter(|_| fields.is_set("delete_version_after"))
        .map(|raw| {
            duration_seconds(raw).map_err(|err| {
                Error::invalid(format!(
                    "error converting input for field \"delete_version_after\": {err}"
                ))
            })
        })
        .transpose()?;
    let cas_required = fields
        .bool("cas_required")
        .filter(|_| fields.is_set("cas_required"));
    if max_versions.is_none() && cas_required.is_none() && delete_version_after.is_none() {
        return Ok(None);
    }

    let _guard = state.config_lock.lock().await;
    let storage = req.storage()?.as_ref();
    let mut config = Config::load(storage).await?;
    if let Some(max_versions) = max_versions {
        config.max_versions = max_versions;
    }
    if let Some(cas_required) = cas_required {
        config.cas_required = cas_required;
    }
    if let Some(seconds) = delete_version_after {
        // Any negative value switches expiry off for every key; Vault records it as -1s.
        config.delete_version_after = if seconds < 0 {
            DELETE_VERSION_AFTER_DISABLED
        } else {
            seconds
        };
    }
    config.save(storage).await?;
    Ok(None)
}

/// `max_versions` when the client set it. Vault stores it as an unsigned 32-bit number and
/// silently wraps anything else; refusing is kinder than keeping 4294967295 versions.
pub(super) fn max_versions_field(fields: &FieldData) -> Result<Option<u32>> {
    if !fields.is_set("max_versions") {
        return Ok(None);
    }
    let value = fields.int("max_versions").unwrap_or_default();
    u32::try_from(value).map(Some).map_err(|_| {
        Error::invalid(format!(
            "max_versions must be between 0 and {}, got {value}",
            u32::MAX
        ))
    })
}
