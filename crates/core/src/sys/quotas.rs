//! `sys/quotas/lease-count/:name`: caps on live leases under a path (Vault has these only in
//! its enterprise edition).

use std::sync::Arc;

use mayfly_sdk::{
    Error, Operation, Request, Response, Result,
    framework::{Field, FieldData, FieldKind, Path, generic_name, handler},
};
use serde_json::json;

use crate::{Core, expiration::LeaseCountQuota};

pub(super) fn paths() -> Vec<Path<Core>> {
    vec![
        Path::new("quotas/lease-count/?")
            .operation(Operation::List, handler(list))
            .help(
                "List lease-count quotas.",
                "Names of the lease-count quotas.",
            ),
        Path::new(format!("quotas/lease-count/{}", generic_name("name")))
            .field(Field::new("name", FieldKind::String, "Name of the quota."))
            .field(Field::new(
                "path",
                FieldKind::String,
                "\"\" for every lease, a mount (\"database/\") or a path inside one.",
            ))
            .field(Field::new(
                "max_leases",
                FieldKind::Int,
                "Most live leases allowed under the path.",
            ))
            .field(Field::new(
                "role",
                FieldKind::String,
                "Login role (not supported: must be empty).",
            ))
            .field(Field::new(
                "inheritable",
                FieldKind::Bool,
                "Namespace inheritance (kept; there are no namespaces).",
            ))
            .operation(Operation::Read, handler(read))
            .operation(Operation::Update, handler(write))
            .operation(Operation::Delete, handler(delete))
            .help(
                "A lease-count quota.",
                "Requests that would create a lease beyond max_leases under the path are \
                 refused with 429 and create nothing.",
            ),
    ]
}

async fn list(core: Arc<Core>, _: Request, _: FieldData) -> Result<Option<Response>> {
    Ok(Some(Response::list(
        core.unsealed()?.expiration.quotas.names(),
    )))
}

async fn read(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    let name = fields.string("name").unwrap_or_default();
    Ok(core
        .unsealed()?
        .expiration
        .quotas
        .get(&name)
        .map(|(quota, count)| {
            Response::from_value(json!({
                "name": quota.name,
                "type": "lease-count",
                "path": quota.path,
                "max_leases": quota.max_leases,
                "role": "",
                "inheritable": quota.inheritable,
                "lease_count": count,
            }))
        }))
}

async fn write(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    let name = fields.string("name").unwrap_or_default();
    if fields.string("role").is_some_and(|role| !role.is_empty()) {
        return Err(Error::invalid(
            "role-scoped lease-count quotas are not supported",
        ));
    }
    let existing = core.unsealed()?.expiration.quotas.get(&name);
    let max_leases = match (fields.int("max_leases"), &existing) {
        (Some(max), _) => max,
        (None, Some((quota, _))) => quota.max_leases,
        (None, None) => return Err(Error::invalid("max_leases must be set")),
    };
    if max_leases <= 0 {
        return Err(Error::invalid("max_leases must be greater than zero"));
    }
    let path = match (fields.string("path"), &existing) {
        (Some(path), _) => core.quota_path(&path)?,
        (None, Some((quota, _))) => quota.path.clone(),
        (None, None) => String::new(),
    };
    let inheritable = fields
        .bool("inheritable")
        .or(existing.as_ref().map(|(quota, _)| quota.inheritable))
        .unwrap_or(false);
    core.put_lease_quota(LeaseCountQuota {
        version: 1,
        id: String::new(),
        name,
        path,
        max_leases,
        inheritable,
    })
    .await?;
    Ok(None)
}

async fn delete(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    let name = fields.string("name").unwrap_or_default();
    core.delete_lease_quota(&name).await?;
    Ok(None)
}
