//! Login with a RoleID (and SecretID), and the renewal check for tokens it issued.

use std::sync::Arc;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use mayfly_sdk::{
    Auth, Error, Request, Response, Result, Storage, StorageExt,
    cidr::{normalize_lenient_list, remote_addr_allowed},
    framework::FieldData,
    token_fields::login_display_name,
};
use serde_json::{Map, Value};

use crate::{
    role::{RoleEntry, load_role},
    secret_id::{SecretIdEntry, remove, secret_key, verify_subset},
    sorted,
    state::{AppRole, MAX_HMAC_INPUT, RoleIdIndex, read_accessor},
};

/// Vault's answer to every credential mismatch, so a caller cannot tell which part was wrong.
const INVALID_CREDENTIALS: &str = "invalid role or secret ID";

fn invalid() -> Error {
    Error::invalid(INVALID_CREDENTIALS)
}

fn same_secret(left: &str, right: &str) -> bool {
    verify_slices_are_equal(left.as_bytes(), right.as_bytes()).is_ok()
}

pub(crate) async fn login(
    state: Arc<AppRole>,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let role_id = fields
        .string("role_id")
        .unwrap_or_default()
        .trim()
        .to_owned();
    if role_id.is_empty() {
        return Err(Error::invalid("missing role_id"));
    }
    if role_id.len() > MAX_HMAC_INPUT {
        return Err(invalid());
    }
    let storage = req.storage()?.as_ref();
    let index_key = state.role_id_key(storage, &role_id).await?;
    let Some(index) = storage.get_json::<RoleIdIndex>(&index_key).await? else {
        return Err(invalid());
    };
    let Some(role) = load_role(storage, &index.name).await? else {
        return Err(invalid());
    };
    // The index is keyed by a hash; the comparison confirms it is this role's current RoleID.
    if !same_secret(&role.role_id, &role_id) {
        return Err(invalid());
    }

    let mut secret = None;
    if role.bind_secret_id {
        let secret_id = fields
            .string("secret_id")
            .unwrap_or_default()
            .trim()
            .to_owned();
        if secret_id.is_empty() {
            return Err(Error::invalid("missing secret_id"));
        }
        if secret_id.len() > MAX_HMAC_INPUT {
            return Err(invalid());
        }
        secret = Some(use_secret_id(&state, &req, storage, &role, &secret_id).await?);
    } else {
        check_role_cidrs(&role, &req)?;
    }

    let mut metadata = Map::new();
    let mut secret_token_cidrs = Vec::new();
    if let Some(entry) = secret {
        for (key, value) in entry.metadata {
            metadata.insert(key, Value::from(value));
        }
        secret_token_cidrs = entry.token_bound_cidrs;
    }
    // Always present, so tokens can be traced back to their role.
    metadata.insert("role_name".into(), role.name.clone().into());
    let mut internal_data = Map::new();
    internal_data.insert("role_name".into(), role.name.clone().into());

    let mut auth = Auth {
        display_name: login_display_name(&req.mount_point, ""),
        metadata: Some(sorted(metadata)),
        internal_data,
        orphan: true,
        ..Auth::default()
    };
    role.token
        .apply_to_auth(&mut auth, req.remote_addr.as_deref());
    // A SecretID may narrow where its tokens can be used.
    if !secret_token_cidrs.is_empty() && !role.token.token_strictly_bind_ip {
        auth.bound_cidrs = normalize_lenient_list(&secret_token_cidrs).map_err(Error::invalid)?;
    }
    Ok(Some(Response {
        auth: Some(auth),
        ..Response::default()
    }))
}

fn remote_addr(req: &Request) -> Result<&str> {
    req.remote_addr
        .as_deref()
        .ok_or_else(|| Error::invalid("failed to get connection information"))
}

fn check_role_cidrs(role: &RoleEntry, req: &Request) -> Result<()> {
    if role.secret_id_bound_cidrs.is_empty() {
        return Ok(());
    }
    let addr = remote_addr(req)?;
    if !remote_addr_allowed(Some(addr), &role.secret_id_bound_cidrs) {
        return Err(Error::invalid(format!(
            "source address {addr:?} unauthorized by CIDR restrictions on the role"
        )));
    }
    Ok(())
}

fn check_secret_cidrs(entry: &SecretIdEntry, role: &RoleEntry, req: &Request) -> Result<()> {
    if entry.cidr_list.is_empty() {
        return Ok(());
    }
    // The role's CIDRs may have been narrowed since the SecretID was issued.
    verify_subset(&role.secret_id_bound_cidrs, &entry.cidr_list)?;
    let addr = remote_addr(req)?;
    if !remote_addr_allowed(Some(addr), &entry.cidr_list) {
        return Err(Error::invalid(format!(
            "source address {addr:?} unauthorized through CIDR restrictions on the secret ID"
        )));
    }
    Ok(())
}

/// Reads a SecretID entry and checks it really is the presented one.
async fn read_entry(
    storage: &dyn Storage,
    key: &str,
    secret_id_hmac: &str,
) -> Result<Option<SecretIdEntry>> {
    let entry: Option<SecretIdEntry> = storage.get_json(key).await?;
    Ok(entry.filter(|entry| same_secret(&entry.secret_id_hmac, secret_id_hmac)))
}

/// Validates a SecretID for a login and spends one of its uses.
///
/// Every check that can fail runs before a use is spent, so a login refused for its source
/// address does not burn the SecretID. The spend itself is a read-modify-write under the
/// SecretID's lock, so concurrent logins can never use it more often than allowed.
async fn use_secret_id(
    state: &AppRole,
    req: &Request,
    storage: &dyn Storage,
    role: &RoleEntry,
    secret_id: &str,
) -> Result<SecretIdEntry> {
    let role_name_hmac = role.role_name_hmac()?;
    let secret_id_hmac = role.secret_id_hmac(secret_id)?;
    let key = secret_key(&role_name_hmac, &secret_id_hmac);

    let Some(entry) = read_entry(storage, &key, &secret_id_hmac).await? else {
        return Err(invalid());
    };
    let orphaned = read_accessor(state, storage, &entry.secret_id_accessor)
        .await?
        .is_none();
    if orphaned || entry.is_expired(state.now()) {
        // An expired SecretID, or one whose accessor is gone, is dead: clear it out now.
        let _lock = state.lock_secret(&secret_id_hmac).await;
        if let Some(current) = read_entry(storage, &key, &secret_id_hmac).await? {
            remove(state, storage, &key, &current).await?;
        }
        return Err(invalid());
    }
    check_secret_cidrs(&entry, role, req)?;
    check_role_cidrs(role, req)?;
    if entry.secret_id_num_uses == 0 {
        return Ok(entry);
    }

    let _lock = state.lock_secret(&secret_id_hmac).await;
    // Another login may have spent or removed it since the first read.
    let Some(mut entry) = read_entry(storage, &key, &secret_id_hmac).await? else {
        return Err(invalid());
    };
    let now = state.now();
    if entry.is_expired(now) {
        remove(state, storage, &key, &entry).await?;
        return Err(invalid());
    }
    match entry.secret_id_num_uses {
        0 => {}
        1 => remove(state, storage, &key, &entry).await?,
        _ => {
            entry.secret_id_num_uses -= 1;
            entry.last_updated_time = crate::secret_id::format_time(now)?;
            storage.put_json(&key, &entry).await?;
        }
    }
    Ok(entry)
}

/// Renewal follows the role as it is now, and fails once the role is gone.
pub(crate) async fn renew(req: &Request, mut auth: Auth) -> Result<Auth> {
    let name = auth
        .internal_data
        .get("role_name")
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| Error::invalid("failed to fetch role_name during renewal"))?;
    let role = load_role(req.storage()?.as_ref(), &name)
        .await?
        .ok_or_else(|| Error::invalid(format!("role {name:?} does not exist during renewal")))?;
    role.token.apply_to_renewal(&mut auth);
    Ok(auth)
}
