//! `sys/policies/password/:name`: named password policies (Vault's HCL rules) and their
//! `generate` endpoint; engines generate from them through the core's `SystemView`.

use std::sync::Arc;

use base64::Engine;
use mayfly_sdk::{
    Error, Operation, Request, Response, Result, StorageExt,
    framework::{Field, FieldData, FieldKind, Path, handler},
    password::PasswordPolicy,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{Core, view::BarrierView};

/// Where policies live, inside the barrier.
const PREFIX: &str = "sys/password_policy/";

#[derive(Serialize, Deserialize)]
struct StoredPolicy {
    policy: String,
}

fn view(core: &Core) -> BarrierView {
    BarrierView::new(core.barrier().clone(), PREFIX)
}

fn not_found() -> Error {
    Error::Coded {
        status: 404,
        message: "policy does not exist".to_owned(),
    }
}

pub(super) fn paths() -> Vec<Path<Core>> {
    let name = || {
        Field::new(
            "name",
            FieldKind::String,
            "The name of the password policy.",
        )
    };
    vec![
        Path::new("policies/password/?")
            .operation(Operation::List, handler(list))
            .help(
                "List password policies.",
                "Lists the names of the password policies.",
            ),
        Path::new(r"policies/password/(?P<name>.+)/generate")
            .field(name())
            .operation(Operation::Read, handler(generate))
            .help(
                "Generate a password from a password policy.",
                "Returns a new password that satisfies the named policy.",
            ),
        Path::new(r"policies/password/(?P<name>.+)")
            .field(name())
            .field(Field::new(
                "policy",
                FieldKind::String,
                "The policy, in HCL (optionally base64-encoded).",
            ))
            .operation(Operation::Read, handler(read))
            .operation(Operation::Update, handler(write))
            .operation(Operation::Delete, handler(delete))
            .help(
                "Manage a password policy.",
                "Reads, writes or deletes a password policy: a length and charset rules \
                 with minimum counts.",
            ),
    ]
}

fn policy_name(fields: &FieldData) -> Result<String> {
    fields
        .string("name")
        .filter(|name| !name.is_empty())
        .ok_or_else(|| Error::invalid("missing policy name"))
}

async fn list(core: Arc<Core>, _: Request, _: FieldData) -> Result<Option<Response>> {
    core.unsealed()?;
    let names = mayfly_sdk::Storage::list(&view(&core), "").await?;
    Ok(Some(Response::list(names)))
}

async fn read(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    let name = policy_name(&fields)?;
    let stored = load(&core, &name).await?.ok_or_else(not_found)?;
    Ok(Some(Response::from_value(
        json!({ "policy": stored.policy }),
    )))
}

async fn write(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    core.unsealed()?;
    let name = policy_name(&fields)?;
    let mut text = fields
        .string("policy")
        .filter(|text| !text.trim().is_empty())
        .ok_or_else(|| Error::invalid("missing policy"))?;
    // Vault accepts the policy base64-encoded and stores it decoded.
    if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(text.trim())
        && let Ok(decoded) = String::from_utf8(decoded)
    {
        text = decoded;
    }
    let policy = PasswordPolicy::parse(&text)
        .map_err(|err| Error::invalid(format!("invalid password policy: {err}")))?;
    // A policy whose minimums are (nearly) impossible to meet is refused now, not at first use.
    policy.generate().map_err(|err| {
        Error::invalid(format!(
            "unable to generate password from provided policy: {err}"
        ))
    })?;
    view(&core)
        .put_json(&name, &StoredPolicy { policy: text })
        .await?;
    Ok(None)
}

async fn delete(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    core.unsealed()?;
    let name = policy_name(&fields)?;
    mayfly_sdk::Storage::delete(&view(&core), &name).await?;
    Ok(None)
}

async fn generate(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    let name = policy_name(&fields)?;
    let password = generate_from(&core, Some(&name)).await?;
    Ok(Some(Response::from_value(json!({ "password": password }))))
}

async fn load(core: &Core, name: &str) -> Result<Option<StoredPolicy>> {
    core.unsealed()?;
    view(core).get_json(name).await
}

/// A password from the named policy, or from Vault's default when `name` is empty.
pub(crate) async fn generate_from(core: &Core, name: Option<&str>) -> Result<String> {
    let parsed;
    let policy = match name.filter(|name| !name.is_empty()) {
        None => PasswordPolicy::vault_default(),
        Some(name) => {
            let stored = load(core, name).await?.ok_or_else(not_found)?;
            parsed = PasswordPolicy::parse(&stored.policy).map_err(|err| {
                Error::internal(format!("stored password policy {name:?} is invalid: {err}"))
            })?;
            &parsed
        }
    };
    policy
        .generate()
        .map_err(|err| Error::internal(format!("unable to generate password: {err}")))
}
