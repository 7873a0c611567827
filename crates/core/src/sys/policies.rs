//! `sys/policies/acl`, the legacy `sys/policy`, and `sys/capabilities*`.

use std::sync::Arc;

use base64::Engine;
use mayfly_sdk::{
    Error, Operation, Request, Response, Result,
    framework::{Field, FieldData, FieldKind, Path, handler},
};
use serde_json::{Map, Value, json};

use crate::Core;

pub(super) fn paths() -> Vec<Path<Core>> {
    let policy_fields = |path: Path<Core>| {
        path.field(Field::new("name", FieldKind::String, "Name of the policy."))
            .field(Field::new(
                "policy",
                FieldKind::String,
                "The policy document (HCL or JSON, optionally base64).",
            ))
            .field(Field::new(
                "rules",
                FieldKind::String,
                "Legacy name of policy.",
            ))
    };
    let paths_field = || Field::new("paths", FieldKind::StringList, "Paths to check.");
    let path_field = || Field::new("path", FieldKind::String, "Deprecated: a single path.");
    vec![
        Path::new("policies/acl/?")
            .operation(Operation::List, handler(list_acl))
            .operation(Operation::Read, handler(list_acl))
            .help("List ACL policies.", "Lists the names of the ACL policies."),
        policy_fields(Path::new(r"policies/acl/(?P<name>.+)"))
            .operation(Operation::Read, handler(read_acl))
            .operation(Operation::Update, handler(write_policy))
            .operation(Operation::Delete, handler(delete_policy))
            .help(
                "Manage an ACL policy.",
                "Reads, writes or deletes an ACL policy.",
            ),
        Path::new("policy/?")
            .operation(Operation::Read, handler(list_legacy))
            .operation(Operation::List, handler(list_acl))
            .help("List policies.", "Legacy listing of ACL policies."),
        policy_fields(Path::new(r"policy/(?P<name>.+)"))
            .operation(Operation::Read, handler(read_legacy))
            .operation(Operation::Update, handler(write_policy))
            .operation(Operation::Delete, handler(delete_policy))
            .help("Manage a policy.", "Legacy form of policies/acl/:name."),
        Path::new("capabilities-self")
            .field(paths_field())
            .field(path_field())
            .operation(Operation::Update, handler(capabilities_self))
            .help(
                "Capabilities of the caller.",
                "The capabilities the calling token has on paths.",
            ),
        Path::new("capabilities")
            .field(Field::new(
                "token",
                FieldKind::String,
                "The token to check.",
            ))
            .field(paths_field())
            .field(path_field())
            .operation(Operation::Update, handler(capabilities_token))
            .help(
                "Capabilities of a token.",
                "The capabilities a token has on paths.",
            ),
        Path::new("capabilities-accessor")
            .field(Field::new(
                "accessor",
                FieldKind::String,
                "The token's accessor.",
            ))
            .field(paths_field())
            .field(path_field())
            .operation(Operation::Update, handler(capabilities_accessor))
            .help(
                "Capabilities of a token by accessor.",
                "The capabilities a token has on paths.",
            ),
    ]
}

async fn list_acl(core: Arc<Core>, _: Request, _: FieldData) -> Result<Option<Response>> {
    let mut names = core.unsealed()?.policies.names().await?;
    // `root` is built in, never stored; Vault lists it after the stored policies.
    names.retain(|name| name != "root");
    names.push("root".to_owned());
    Ok(Some(Response::list(names)))
}

async fn list_legacy(core: Arc<Core>, _: Request, _: FieldData) -> Result<Option<Response>> {
    let names = core.unsealed()?.policies.names().await?;
    Ok(Some(Response::from_value(
        json!({ "policies": names, "keys": names }),
    )))
}

fn name(fields: &FieldData) -> String {
    fields.string("name").unwrap_or_default().to_lowercase()
}

async fn read_acl(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    let name = name(&fields);
    let text = core.unsealed()?.policies.text(&name).await?;
    Ok(text.map(|text| Response::from_value(json!({ "name": name, "policy": text }))))
}

async fn read_legacy(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    let name = name(&fields);
    let text = core.unsealed()?.policies.text(&name).await?;
    Ok(text.map(|text| Response::from_value(json!({ "name": name, "rules": text }))))
}

/// Vault accepts the policy document base64-encoded too.
fn policy_text(fields: &FieldData) -> Result<String> {
    let text = fields
        .string("policy")
        .or_else(|| fields.string("rules"))
        .filter(|text| !text.trim().is_empty())
        .ok_or_else(|| Error::invalid("'policy' parameter not supplied or empty"))?;
    if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(text.trim())
        && let Ok(decoded) = String::from_utf8(decoded)
    {
        return Ok(decoded);
    }
    Ok(text)
}

async fn write_policy(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    let name = name(&fields);
    if name.is_empty() {
        return Err(Error::invalid("policy name must be provided"));
    }
    let text = policy_text(&fields)?;
    core.unsealed()?.policies.put(&name, &text).await?;
    Ok(None)
}

async fn delete_policy(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    core.unsealed()?.policies.delete(&name(&fields)).await?;
    Ok(None)
}

fn requested_paths(fields: &FieldData) -> Result<Vec<String>> {
    let mut paths = fields.string_list("paths").unwrap_or_default();
    if paths.is_empty()
        && let Some(path) = fields.string("path").filter(|p| !p.is_empty())
    {
        paths.push(path);
    }
    if paths.is_empty() {
        return Err(Error::invalid("paths must be supplied"));
    }
    Ok(paths)
}

async fn capabilities_of(
    core: &Core,
    policies: &[String],
    paths: Vec<String>,
) -> Result<Option<Response>> {
    let acl = core.unsealed()?.policies.acl(policies).await?;
    let mut data = Map::new();
    let mut first: Option<Value> = None;
    for path in paths {
        let capabilities = json!(acl.capabilities(path.trim_start_matches('/')));
        first.get_or_insert_with(|| capabilities.clone());
        data.insert(path, capabilities);
    }
    data.insert("capabilities".into(), first.unwrap_or(Value::Null));
    Ok(Some(Response::with_data(data)))
}

async fn capabilities_self(
    core: Arc<Core>,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let caller = core.caller(&req).await?;
    capabilities_of(&core, &caller.policies, requested_paths(&fields)?).await
}

async fn capabilities_token(
    core: Arc<Core>,
    _: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let token = fields
        .string("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::invalid("missing token"))?;
    let entry = core
        .unsealed()?
        .tokens
        .lookup(&token)
        .await?
        .ok_or_else(|| Error::invalid("invalid token"))?;
    capabilities_of(&core, &entry.policies, requested_paths(&fields)?).await
}

async fn capabilities_accessor(
    core: Arc<Core>,
    _: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let accessor = fields
        .string("accessor")
        .filter(|a| !a.is_empty())
        .ok_or_else(|| Error::invalid("missing accessor"))?;
    let entry = core
        .unsealed()?
        .tokens
        .lookup_accessor(&accessor)
        .await?
        .ok_or_else(|| Error::invalid("invalid accessor"))?;
    capabilities_of(&core, &entry.policies, requested_paths(&fields)?).await
}
