//! `sys/audit` and `sys/audit-hash`: enabling, disabling and listing audit devices, and the
//! HMAC a device would log for a value.

use std::{collections::BTreeMap, sync::Arc};

use mayfly_sdk::{
    Error, Operation, Request, Response, Result,
    framework::{Field, FieldData, FieldKind, Path, handler},
};
use serde_json::{Map, Value, json};

use crate::{Core, audit::AuditEntry};

pub(super) fn paths() -> Vec<Path<Core>> {
    vec![
        Path::new("audit/?")
            .operation(Operation::Read, handler(list))
            .help(
                "List audit devices.",
                "Lists the enabled audit devices, with their options and signing keys.",
            ),
        Path::new(r"audit/(?P<path>.+)")
            .field(Field::new("path", FieldKind::String, "Device path."))
            .field(Field::new(
                "type",
                FieldKind::String,
                "file, socket or syslog.",
            ))
            .field(Field::new("description", FieldKind::String, "Description."))
            .field(Field::new("options", FieldKind::Map, "Device options."))
            .field(Field::new("local", FieldKind::Bool, "Not replicated."))
            .operation(Operation::Update, handler(enable))
            .operation(Operation::Delete, handler(disable))
            .help(
                "Enable or disable an audit device.",
                "Every request and response is recorded on every enabled device.",
            ),
        Path::new(r"audit-hash/(?P<path>.+)")
            .field(Field::new("path", FieldKind::String, "Device path."))
            .field(Field::new("input", FieldKind::String, "The value to hash."))
            .operation(Operation::Update, handler(hash))
            .help(
                "Hash a value as a device would log it.",
                "Returns the salted HMAC an audit device writes for the input.",
            ),
    ]
}

/// `file` → `file/`, refusing empty paths and parent references.
fn device_path(fields: &FieldData) -> Result<String> {
    let path = fields.string("path").unwrap_or_default();
    let path = path.trim_matches('/');
    if path.is_empty() {
        return Err(Error::invalid("missing audit device path"));
    }
    if path
        .split('/')
        .any(|segment| segment == ".." || segment.is_empty())
    {
        return Err(Error::invalid("invalid audit device path"));
    }
    Ok(format!("{path}/"))
}

async fn list(core: Arc<Core>, _: Request, _: FieldData) -> Result<Option<Response>> {
    let devices = core.unsealed()?.audit.list();
    let data: Map<String, Value> = devices
        .into_iter()
        .map(|device| {
            let entry = device.entry;
            let info = json!({
                "type": entry.kind,
                "description": entry.description,
                "options": entry.options,
                "local": entry.local,
                "path": entry.path,
                "public_key": device.public_key,
                "failures": device.failures,
            });
            (entry.path, info)
        })
        .collect();
    Ok(Some(Response::with_data(data)))
}

/// Device options are strings, as in Vault; scalars given as JSON are converted.
fn string_options(options: Map<String, Value>) -> Result<BTreeMap<String, String>> {
    options
        .into_iter()
        .map(|(key, value)| match value {
            Value::String(text) => Ok((key, text)),
            Value::Number(number) => Ok((key, number.to_string())),
            Value::Bool(flag) => Ok((key, flag.to_string())),
            _ => Err(Error::invalid(format!("option {key:?} must be a string"))),
        })
        .collect()
}

async fn enable(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    let path = device_path(&fields)?;
    let kind = fields
        .string("type")
        .filter(|kind| !kind.is_empty())
        .ok_or_else(|| Error::invalid("audit device type must be specified"))?;
    let entry = AuditEntry {
        path,
        kind,
        description: fields.string("description").unwrap_or_default(),
        options: string_options(fields.map("options").unwrap_or_default())?,
        local: fields.bool("local").unwrap_or(false),
        uuid: String::new(),
    };
    core.unsealed()?.audit.enable(entry).await?;
    Ok(None)
}

async fn disable(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    let path = device_path(&fields)?;
    core.unsealed()?.audit.disable(&path).await?;
    Ok(None)
}

async fn hash(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    let path = device_path(&fields)?;
    let input = fields.string("input").unwrap_or_default();
    let hash = core.unsealed()?.audit.hash(&path, &input)?;
    Ok(Some(Response::from_value(json!({ "hash": hash }))))
}
