//! Users: the `users/:username` endpoints and their password and policies sub-resources.

use std::sync::Arc;

use mayfly_sdk::{
    Error, Request, Response, Result, Storage, StorageExt,
    framework::FieldData,
    token_fields::{LegacyField, LegacyTokenParams, TokenParams, parse_policies},
};
use serde::{Deserialize, Serialize};
use serde_json::Map;
use zeroize::Zeroizing;

use crate::{Userpass, password, sorted};

const USER_PREFIX: &str = "user/";

/// The deprecated token field names userpass users still accept.
pub(crate) const LEGACY: &[LegacyField] = &[
    LegacyField::Policies,
    LegacyField::Ttl,
    LegacyField::MaxTtl,
    LegacyField::BoundCidrs,
];

/// One user as persisted. There is no `Debug`: the hash is not for logs.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct UserEntry {
    pub token: TokenParams,
    pub legacy: LegacyTokenParams,
    /// Argon2id PHC string; the password itself is never stored.
    pub password_hash: String,
}

/// Usernames are case-insensitive: stored and reported lower-cased.
pub(crate) fn username(fields: &FieldData) -> Result<String> {
    let name = fields.string("username").unwrap_or_default().to_lowercase();
    if name.is_empty() {
        return Err(Error::invalid("missing username"));
    }
    Ok(name)
}

pub(crate) async fn load_user(storage: &dyn Storage, name: &str) -> Result<Option<UserEntry>> {
    storage
        .get_json(&format!("{USER_PREFIX}{}", name.to_lowercase()))
        .await
}

async fn save_user(storage: &dyn Storage, name: &str, user: &UserEntry) -> Result<()> {
    storage
        .put_json(&format!("{USER_PREFIX}{name}"), user)
        .await
}

/// The password field as given; `None` when absent, an error when present but empty.
fn password_field(fields: &FieldData) -> Result<Option<password::Secret>> {
    if !fields.is_set("password") {
        return Ok(None);
    }
    let value = Zeroizing::new(fields.string("password").unwrap_or_default());
    if value.is_empty() {
        return Err(Error::invalid("missing password"));
    }
    Ok(Some(value))
}

pub(crate) async fn exists(_: Arc<Userpass>, req: Request, fields: FieldData) -> Result<bool> {
    Ok(load_user(req.storage()?.as_ref(), &username(&fields)?)
        .await?
        .is_some())
}

pub(crate) async fn list(_: Arc<Userpass>, req: Request, _: FieldData) -> Result<Option<Response>> {
    let names = req.storage()?.list(USER_PREFIX).await?;
    Ok(Some(Response::list(names)))
}

pub(crate) async fn read(
    _: Arc<Userpass>,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let Some(user) = load_user(req.storage()?.as_ref(), &username(&fields)?).await? else {
        return Ok(None);
    };
    let mut data = Map::new();
    user.token.to_json(&mut data);
    user.legacy.to_json(&mut data);
    Ok(Some(Response::with_data(sorted(data))))
}

/// Create and update share one handler: a missing user is created whatever the operation,
/// so a router without existence checks still behaves.
pub(crate) async fn write(
    state: Arc<Userpass>,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let name = username(&fields)?;
    let storage = req.storage()?.as_ref();
    // Hashing is slow, so it happens before taking the lock.
    let new_hash = match password_field(&fields)? {
        Some(new_password) => Some(password::hash(new_password).await?),
        None => None,
    };
    let _guard = state.user_lock.lock().await;
    let existing = load_user(storage, &name).await?;
    if existing.is_none() && new_hash.is_none() {
        return Err(Error::invalid("missing password"));
    }
    let mut user = existing.unwrap_or_default();
    let warnings = user.token.update_from_fields(&fields)?;
    user.legacy.upgrade(&mut user.token, &fields, LEGACY)?;
    user.token.validate()?;
    if let Some(new_hash) = new_hash {
        user.password_hash = new_hash;
    }
    save_user(storage, &name, &user).await?;
    Ok((!warnings.is_empty()).then(|| Response {
        warnings,
        ..Response::default()
    }))
}

pub(crate) async fn delete(
    _: Arc<Userpass>,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let name = username(&fields)?;
    req.storage()?
        .delete(&format!("{USER_PREFIX}{name}"))
        .await?;
    Ok(None)
}

pub(crate) async fn update_password(
    state: Arc<Userpass>,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let name = username(&fields)?;
    let storage = req.storage()?.as_ref();
    if load_user(storage, &name).await?.is_none() {
        return Err(Error::invalid("username does not exist"));
    }
    let Some(new_password) = password_field(&fields)? else {
        return Err(Error::invalid("missing password"));
    };
    let new_hash = password::hash(new_password).await?;
    let _guard = state.user_lock.lock().await;
    let Some(mut user) = load_user(storage, &name).await? else {
        return Err(Error::invalid("username does not exist"));
    };
    user.password_hash = new_hash;
    save_user(storage, &name, &user).await?;
    Ok(None)
}

pub(crate) async fn update_policies(
    state: Arc<Userpass>,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let name = username(&fields)?;
    let storage = req.storage()?.as_ref();
    let _guard = state.user_lock.lock().await;
    let Some(mut user) = load_user(storage, &name).await? else {
        return Err(Error::invalid("username does not exist"));
    };
    let given = |field| {
        fields
            .is_set(field)
            .then(|| parse_policies(&fields.string_list(field).unwrap_or_default()))
    };
    // Vault treats a body with neither field as a no-op write.
    match (given("token_policies"), given("policies")) {
        (Some(policies), legacy) => {
            user.legacy.policies = if legacy.is_some() {
                policies.clone()
            } else {
                Vec::new()
            };
            user.token.token_policies = policies;
        }
        (None, Some(policies)) => {
            user.legacy.policies = policies.clone();
            user.token.token_policies = policies;
        }
        (None, None) => {}
    }
    save_user(storage, &name, &user).await?;
    Ok(None)
}
