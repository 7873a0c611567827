//! Roles: the `role/:role_name` endpoints, their per-field sub-resources and the RoleID.

use std::{sync::Arc, time::Duration};

use mayfly_sdk::{
    Error, Request, Response, Result, Storage, StorageExt,
    cidr::{normalize_lenient_list, parse_strict_list},
    duration::format_duration,
    framework::FieldData,
    token_fields::{LegacyField, LegacyTokenParams, TokenParams, parse_policies, serde_secs},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    secret_id, sorted,
    state::{AppRole, MAX_HMAC_INPUT, ROLE_PREFIX, RoleIdIndex, keyed_hash, random_hex},
};

/// The deprecated token field names AppRole roles still accept.
pub(crate) const LEGACY: &[LegacyField] = &[LegacyField::Policies, LegacyField::Period];

/// One role as persisted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct RoleEntry {
    /// Lower-cased; role names are case-insensitive.
    pub name: String,
    pub role_id: String,
    /// Per-role key for hashing the role's SecretIDs; a recreated role gets a new one, so
    /// stale SecretIDs of a deleted role can never match again.
    pub hmac_key: String,
    pub token: TokenParams,
    pub legacy: LegacyTokenParams,
    pub bind_secret_id: bool,
    pub secret_id_bound_cidrs: Vec<String>,
    pub secret_id_num_uses: u64,
    #[serde(with = "serde_secs")]
    pub secret_id_ttl: Duration,
    pub local_secret_ids: bool,
}

impl RoleEntry {
    /// Vault refuses a role that a bare RoleID could log in to from anywhere.
    fn check_constraints(&self) -> Result<()> {
        if self.bind_secret_id
            || !self.secret_id_bound_cidrs.is_empty()
            || !self.token.token_bound_cidrs.is_empty()
        {
            Ok(())
        } else {
            Err(Error::invalid(
                "at least one constraint should be enabled on the role",
            ))
        }
    }

    pub fn role_name_hmac(&self) -> Result<String> {
        keyed_hash(self.hmac_key.as_bytes(), &self.name)
    }

    pub fn secret_id_hmac(&self, secret_id: &str) -> Result<String> {
        keyed_hash(self.hmac_key.as_bytes(), secret_id)
    }

    fn to_json(&self) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert("bind_secret_id".into(), self.bind_secret_id.into());
        data.insert("local_secret_ids".into(), self.local_secret_ids.into());
        data.insert(
            "secret_id_bound_cidrs".into(),
            list_or_null(&self.secret_id_bound_cidrs),
        );
        data.insert("secret_id_num_uses".into(), self.secret_id_num_uses.into());
        data.insert("secret_id_ttl".into(), self.secret_id_ttl.as_secs().into());
        self.token.to_json(&mut data);
        self.legacy.to_json(&mut data);
        sorted(data)
    }
}

/// Vault renders an unset CIDR list as `null`, not `[]`.
pub(crate) fn list_or_null(list: &[String]) -> Value {
    if list.is_empty() {
        Value::Null
    } else {
        Value::from(list.to_vec())
    }
}

pub(crate) fn role_name(fields: &FieldData) -> Result<String> {
    let name = fields.string("role_name").unwrap_or_default();
    if name.is_empty() {
        return Err(Error::invalid("missing role_name"));
    }
    if name.len() > MAX_HMAC_INPUT {
        return Err(Error::invalid(format!(
            "role_name is longer than maximum of {MAX_HMAC_INPUT} bytes"
        )));
    }
    Ok(name)
}

pub(crate) async fn load_role(storage: &dyn Storage, name: &str) -> Result<Option<RoleEntry>> {
    storage
        .get_json(&format!("{ROLE_PREFIX}{}", name.to_lowercase()))
        .await
}

/// Persists a role and its RoleID index, refusing a RoleID another role already uses.
/// Callers hold the role lock.
async fn save_role(
    state: &AppRole,
    storage: &dyn Storage,
    role: &RoleEntry,
    previous_role_id: Option<&str>,
) -> Result<()> {
    role.check_constraints()?;
    let index_key = state.role_id_key(storage, &role.role_id).await?;
    let existing: Option<RoleIdIndex> = storage.get_json(&index_key).await?;
    if let Some(existing) = &existing
        && existing.name != role.name
    {
        return Err(Error::invalid("role_id already in use"));
    }
    if let Some(previous) = previous_role_id
        && previous != role.role_id
    {
        let old_key = state.role_id_key(storage, previous).await?;
        storage.delete(&old_key).await?;
    }
    storage
        .put_json(&format!("{ROLE_PREFIX}{}", role.name), role)
        .await?;
    if existing.is_none() {
        storage
            .put_json(
                &index_key,
                &RoleIdIndex {
                    name: role.name.clone(),
                },
            )
            .await?;
    }
    Ok(())
}

pub(crate) async fn exists(_: Arc<AppRole>, req: Request, fields: FieldData) -> Result<bool> {
    Ok(load_role(req.storage()?.as_ref(), &role_name(&fields)?)
        .await?
        .is_some())
}

pub(crate) async fn list(_: Arc<AppRole>, req: Request, _: FieldData) -> Result<Option<Response>> {
    let names = req.storage()?.list(ROLE_PREFIX).await?;
    Ok(Some(Response::list(names)))
}

pub(crate) async fn read(
    _: Arc<AppRole>,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let Some(role) = load_role(req.storage()?.as_ref(), &role_name(&fields)?).await? else {
        return Ok(None);
    };
    let mut response = Response::with_data(role.to_json());
    if role.check_constraints().is_err() {
        response.warnings.push(
            "Role does not have any constraints set on it. Updates to this role will require a \
             constraint to be set"
                .into(),
        );
    }
    Ok(Some(response))
}

/// Create and update share one handler: a missing role is created, whatever the operation,
/// so a router without existence checks still behaves.
pub(crate) async fn write(
    state: Arc<AppRole>,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let name = role_name(&fields)?;
    let storage = req.storage()?.as_ref();
    let _guard = state.role_lock.write().await;

    let existing = load_role(storage, &name).await?;
    let creating = existing.is_none();
    let mut role = match existing {
        Some(role) => role,
        None => RoleEntry {
            name: name.to_lowercase(),
            hmac_key: random_hex(32)?,
            bind_secret_id: true,
            ..RoleEntry::default()
        },
    };

    let mut warnings = role.token.update_from_fields(&fields)?;

    if fields.is_set("local_secret_ids") {
        if !creating {
            return Err(Error::invalid(
                "local_secret_ids can only be modified during role creation",
            ));
        }
        role.local_secret_ids = fields.bool("local_secret_ids").unwrap_or(false);
    }

    let previous_role_id = role.role_id.clone();
    if fields.is_set("role_id") {
        role.role_id = fields.string("role_id").unwrap_or_default();
    } else if creating {
        role.role_id = mayfly_sdk::password::random_uuid();
    }
    if role.role_id.is_empty() {
        return Err(Error::invalid(
            "invalid role_id supplied, or failed to generate a role_id",
        ));
    }

    if fields.is_set("bind_secret_id") {
        role.bind_secret_id = fields.bool("bind_secret_id").unwrap_or(true);
    }

    // The new name wins over the deprecated alias when both are given.
    let cidrs = if fields.is_set("secret_id_bound_cidrs") {
        fields.string_list("secret_id_bound_cidrs")
    } else if fields.is_set("bound_cidr_list") {
        fields.string_list("bound_cidr_list")
    } else {
        None
    };
    if let Some(cidrs) = cidrs {
        parse_strict_list(&cidrs)
            .map_err(|err| Error::invalid(format!("failed to validate CIDR blocks: {err}")))?;
        role.secret_id_bound_cidrs = cidrs;
    }

    if fields.is_set("secret_id_num_uses") {
        role.secret_id_num_uses = u64::try_from(fields.int("secret_id_num_uses").unwrap_or(0))
            .map_err(|_| Error::invalid("secret_id_num_uses cannot be negative"))?;
    }
    if fields.is_set("secret_id_ttl") {
        role.secret_id_ttl = whole_seconds(&fields, "secret_id_ttl");
    }

    role.legacy.upgrade(&mut role.token, &fields, LEGACY)?;

    let max_lease = req.mount_ttls.max_lease_ttl;
    if !max_lease.is_zero() {
        check_period(&role, max_lease)?;
        if role.token.token_max_ttl > max_lease {
            warnings.push(
                "token_max_ttl is greater than the backend mount's maximum TTL value; issued \
                 tokens' max TTL value will be truncated"
                    .into(),
            );
        }
    }

    let previous = (!creating).then_some(previous_role_id.as_str());
    save_role(&state, storage, &role, previous).await?;
    Ok((!warnings.is_empty()).then(|| Response {
        warnings,
        ..Response::default()
    }))
}

fn check_period(role: &RoleEntry, max_lease: Duration) -> Result<()> {
    if role.token.token_period > max_lease {
        return Err(Error::invalid(format!(
            "period of {:?} is greater than the backend's maximum lease TTL of {:?}",
            format_duration(role.token.token_period),
            format_duration(max_lease)
        )));
    }
    Ok(())
}

pub(crate) fn whole_seconds(fields: &FieldData, name: &str) -> Duration {
    Duration::from_secs(fields.duration(name).unwrap_or_default().as_secs())
}

pub(crate) async fn delete(
    state: Arc<AppRole>,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let name = role_name(&fields)?;
    let storage = req.storage()?.as_ref();
    let _guard = state.role_lock.write().await;
    let Some(role) = load_role(storage, &name).await? else {
        return Ok(None);
    };
    // SecretIDs first: if this fails half-way the role still exists and can be deleted again.
    secret_id::flush_role(&state, storage, &role).await?;
    let index_key = state.role_id_key(storage, &role.role_id).await?;
    storage.delete(&index_key).await?;
    storage
        .delete(&format!("{ROLE_PREFIX}{}", role.name))
        .await?;
    Ok(None)
}

pub(crate) async fn read_role_id(
    _: Arc<AppRole>,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let Some(role) = load_role(req.storage()?.as_ref(), &role_name(&fields)?).await? else {
        return Ok(None);
    };
    let mut data = Map::new();
    data.insert("role_id".into(), role.role_id.into());
    Ok(Some(Response::with_data(data)))
}

pub(crate) async fn write_role_id(
    state: Arc<AppRole>,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let name = role_name(&fields)?;
    let storage = req.storage()?.as_ref();
    let _guard = state.role_lock.write().await;
    let Some(mut role) = load_role(storage, &name).await? else {
        return Err(Error::UnsupportedPath);
    };
    let role_id = fields.string("role_id").unwrap_or_default();
    if role_id.is_empty() {
        return Err(Error::invalid("missing role_id"));
    }
    let previous = std::mem::replace(&mut role.role_id, role_id);
    save_role(&state, storage, &role, Some(&previous)).await?;
    Ok(None)
}

/// The per-field sub-resources of a role (`role/:name/token-ttl` …), which let an operator
/// delegate one setting through ACLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoleField {
    Policies,
    SecretIdNumUses,
    SecretIdTtl,
    TokenTtl,
    TokenMaxTtl,
    TokenNumUses,
    BoundCidrList,
    SecretIdBoundCidrs,
    TokenBoundCidrs,
    Period,
    BindSecretId,
    LocalSecretIds,
}

impl RoleField {
    pub const ALL: [RoleField; 12] = [
        RoleField::Policies,
        RoleField::SecretIdNumUses,
        RoleField::SecretIdTtl,
        RoleField::TokenTtl,
        RoleField::TokenMaxTtl,
        RoleField::TokenNumUses,
        RoleField::BoundCidrList,
        RoleField::SecretIdBoundCidrs,
        RoleField::TokenBoundCidrs,
        RoleField::Period,
        RoleField::BindSecretId,
        RoleField::LocalSecretIds,
    ];

    pub fn suffix(self) -> &'static str {
        match self {
            RoleField::Policies => "policies",
            RoleField::SecretIdNumUses => "secret-id-num-uses",
            RoleField::SecretIdTtl => "secret-id-ttl",
            RoleField::TokenTtl => "token-ttl",
            RoleField::TokenMaxTtl => "token-max-ttl",
            RoleField::TokenNumUses => "token-num-uses",
            RoleField::BoundCidrList => "bound-cidr-list",
            RoleField::SecretIdBoundCidrs => "secret-id-bound-cidrs",
            RoleField::TokenBoundCidrs => "token-bound-cidrs",
            RoleField::Period => "period",
            RoleField::BindSecretId => "bind-secret-id",
            RoleField::LocalSecretIds => "local-secret-ids",
        }
    }

    /// The body fields the sub-resource takes.
    pub fn field_names(self) -> &'static [&'static str] {
        match self {
            RoleField::Policies => &["policies", "token_policies"],
            RoleField::SecretIdNumUses => &["secret_id_num_uses"],
            RoleField::SecretIdTtl => &["secret_id_ttl"],
            RoleField::TokenTtl => &["token_ttl"],
            RoleField::TokenMaxTtl => &["token_max_ttl"],
            RoleField::TokenNumUses => &["token_num_uses"],
            RoleField::BoundCidrList => &["bound_cidr_list"],
            RoleField::SecretIdBoundCidrs => &["secret_id_bound_cidrs"],
            RoleField::TokenBoundCidrs => &["token_bound_cidrs"],
            RoleField::Period => &["period", "token_period"],
            RoleField::BindSecretId => &["bind_secret_id"],
            RoleField::LocalSecretIds => &[],
        }
    }

    pub fn writable(self) -> bool {
        self != RoleField::LocalSecretIds
    }

    fn to_json(self, role: &RoleEntry) -> Response {
        let mut data = Map::new();
        let mut warnings = Vec::new();
        match self {
            RoleField::Policies => {
                data.insert(
                    "token_policies".into(),
                    role.token.token_policies.clone().into(),
                );
                if !role.legacy.policies.is_empty() {
                    data.insert("policies".into(), role.legacy.policies.clone().into());
                }
            }
            RoleField::SecretIdNumUses => {
                data.insert("secret_id_num_uses".into(), role.secret_id_num_uses.into());
            }
            RoleField::SecretIdTtl => {
                data.insert("secret_id_ttl".into(), role.secret_id_ttl.as_secs().into());
            }
            RoleField::TokenTtl => {
                data.insert("token_ttl".into(), role.token.token_ttl.as_secs().into());
            }
            RoleField::TokenMaxTtl => {
                data.insert(
                    "token_max_ttl".into(),
                    role.token.token_max_ttl.as_secs().into(),
                );
            }
            RoleField::TokenNumUses => {
                data.insert("token_num_uses".into(), role.token.token_num_uses.into());
            }
            RoleField::BoundCidrList => {
                data.insert(
                    "bound_cidr_list".into(),
                    list_or_null(&role.secret_id_bound_cidrs),
                );
                warnings.push(
                    "The \"bound_cidr_list\" field is deprecated and will be removed. Please use \
                     \"secret_id_bound_cidrs\" instead."
                        .to_owned(),
                );
            }
            RoleField::SecretIdBoundCidrs => {
                data.insert(
                    "secret_id_bound_cidrs".into(),
                    list_or_null(&role.secret_id_bound_cidrs),
                );
            }
            RoleField::TokenBoundCidrs => {
                data.insert(
                    "token_bound_cidrs".into(),
                    list_or_null(&role.token.token_bound_cidrs),
                );
            }
            RoleField::Period => {
                data.insert(
                    "token_period".into(),
                    role.token.token_period.as_secs().into(),
                );
                if !role.legacy.period.is_zero() {
                    data.insert("period".into(), role.legacy.period.as_secs().into());
                }
            }
            RoleField::BindSecretId => {
                data.insert("bind_secret_id".into(), role.bind_secret_id.into());
            }
            RoleField::LocalSecretIds => {
                data.insert("local_secret_ids".into(), role.local_secret_ids.into());
            }
        }
        Response {
            warnings,
            ..Response::with_data(sorted(data))
        }
    }

    fn update(self, role: &mut RoleEntry, fields: &FieldData, req: &Request) -> Result<()> {
        let missing = |name: &str| Error::invalid(format!("missing {name}"));
        match self {
            RoleField::Policies => {
                let given = |name| {
                    fields
                        .is_set(name)
                        .then(|| parse_policies(&fields.string_list(name).unwrap_or_default()))
                };
                match (given("token_policies"), given("policies")) {
                    (Some(policies), legacy) => {
                        role.legacy.policies = if legacy.is_some() {
                            policies.clone()
                        } else {
                            Vec::new()
                        };
                        role.token.token_policies = policies;
                    }
                    (None, Some(policies)) => {
                        role.legacy.policies = policies.clone();
                        role.token.token_policies = policies;
                    }
                    (None, None) => return Err(missing("token_policies")),
                }
            }
            RoleField::SecretIdNumUses => {
                if !fields.is_set("secret_id_num_uses") {
                    return Err(missing("secret_id_num_uses"));
                }
                role.secret_id_num_uses =
                    u64::try_from(fields.int("secret_id_num_uses").unwrap_or(0))
                        .map_err(|_| Error::invalid("secret_id_num_uses cannot be negative"))?;
            }
            RoleField::SecretIdTtl => {
                if !fields.is_set("secret_id_ttl") {
                    return Err(missing("secret_id_ttl"));
                }
                role.secret_id_ttl = whole_seconds(fields, "secret_id_ttl");
            }
            RoleField::TokenTtl => {
                if !fields.is_set("token_ttl") {
                    return Err(missing("token_ttl"));
                }
                role.token.token_ttl = whole_seconds(fields, "token_ttl");
                if !role.token.token_max_ttl.is_zero()
                    && role.token.token_ttl > role.token.token_max_ttl
                {
                    return Err(Error::invalid(
                        "token_ttl should not be greater than token_max_ttl",
                    ));
                }
            }
            RoleField::TokenMaxTtl => {
                if !fields.is_set("token_max_ttl") {
                    return Err(missing("token_max_ttl"));
                }
                role.token.token_max_ttl = whole_seconds(fields, "token_max_ttl");
                if !role.token.token_max_ttl.is_zero()
                    && role.token.token_ttl > role.token.token_max_ttl
                {
                    return Err(Error::invalid(
                        "token_max_ttl should be greater than or equal to token_ttl",
                    ));
                }
            }
            RoleField::TokenNumUses => {
                if !fields.is_set("token_num_uses") {
                    return Err(missing("token_num_uses"));
                }
                role.token.token_num_uses =
                    u64::try_from(fields.int("token_num_uses").unwrap_or(0))
                        .map_err(|_| Error::invalid("'token_num_uses' cannot be negative"))?;
                role.token.validate()?;
            }
            RoleField::BoundCidrList | RoleField::SecretIdBoundCidrs => {
                let name = if self == RoleField::BoundCidrList {
                    "bound_cidr_list"
                } else {
                    "secret_id_bound_cidrs"
                };
                // Vault treats a body without the field as a no-op write.
                if fields.is_set(name) {
                    let cidrs = fields.string_list(name).unwrap_or_default();
                    if cidrs.is_empty() {
                        return Err(missing("bound_cidr_list"));
                    }
                    parse_strict_list(&cidrs).map_err(|err| {
                        Error::invalid(format!("failed to validate CIDR blocks: {err}"))
                    })?;
                    role.secret_id_bound_cidrs = cidrs;
                }
            }
            RoleField::TokenBoundCidrs => {
                if fields.is_set("token_bound_cidrs") {
                    let cidrs = fields.string_list("token_bound_cidrs").unwrap_or_default();
                    role.token.token_bound_cidrs =
                        normalize_lenient_list(&cidrs).map_err(|err| {
                            Error::invalid(format!("failed to parse token_bound_cidrs: {err}"))
                        })?;
                }
            }
            RoleField::Period => {
                let given = |name| fields.is_set(name).then(|| whole_seconds(fields, name));
                match (given("token_period"), given("period")) {
                    (Some(period), legacy) => {
                        role.legacy.period = if legacy.is_some() {
                            period
                        } else {
                            Duration::ZERO
                        };
                        role.token.token_period = period;
                    }
                    (None, Some(period)) => {
                        role.legacy.period = period;
                        role.token.token_period = period;
                    }
                    (None, None) => return Err(missing("period")),
                }
                role.token.validate()?;
                let max_lease = req.mount_ttls.max_lease_ttl;
                if !max_lease.is_zero() {
                    check_period(role, max_lease)?;
                }
            }
            RoleField::BindSecretId => {
                if !fields.is_set("bind_secret_id") {
                    return Err(missing("bind_secret_id"));
                }
                role.bind_secret_id = fields.bool("bind_secret_id").unwrap_or(true);
            }
            RoleField::LocalSecretIds => return Err(Error::UnsupportedOperation),
        }
        Ok(())
    }

    /// Deleting a sub-resource resets the setting to its default.
    fn reset(self, role: &mut RoleEntry) {
        match self {
            RoleField::Policies => {
                role.token.token_policies.clear();
                role.legacy.policies.clear();
            }
            RoleField::SecretIdNumUses => role.secret_id_num_uses = 0,
            RoleField::SecretIdTtl => role.secret_id_ttl = Duration::ZERO,
            RoleField::TokenTtl => role.token.token_ttl = Duration::ZERO,
            RoleField::TokenMaxTtl => role.token.token_max_ttl = Duration::ZERO,
            RoleField::TokenNumUses => role.token.token_num_uses = 0,
            RoleField::BoundCidrList | RoleField::SecretIdBoundCidrs => {
                role.secret_id_bound_cidrs.clear();
            }
            RoleField::TokenBoundCidrs => role.token.token_bound_cidrs.clear(),
            RoleField::Period => {
                role.token.token_period = Duration::ZERO;
                role.legacy.period = Duration::ZERO;
            }
            RoleField::BindSecretId => role.bind_secret_id = true,
            RoleField::LocalSecretIds => {}
        }
    }
}

pub(crate) async fn field_read(
    req: Request,
    fields: FieldData,
    which: RoleField,
) -> Result<Option<Response>> {
    let role = load_role(req.storage()?.as_ref(), &role_name(&fields)?).await?;
    Ok(role.map(|role| which.to_json(&role)))
}

pub(crate) async fn field_update(
    state: Arc<AppRole>,
    req: Request,
    fields: FieldData,
    which: RoleField,
) -> Result<Option<Response>> {
    let name = role_name(&fields)?;
    let storage = req.storage()?.as_ref();
    let _guard = state.role_lock.write().await;
    let Some(mut role) = load_role(storage, &name).await? else {
        return Err(Error::UnsupportedPath);
    };
    which.update(&mut role, &fields, &req)?;
    save_role(&state, storage, &role, Some(&role.role_id.clone())).await?;
    Ok(None)
}

pub(crate) async fn field_delete(
    state: Arc<AppRole>,
    req: Request,
    fields: FieldData,
    which: RoleField,
) -> Result<Option<Response>> {
    let name = role_name(&fields)?;
    let storage = req.storage()?.as_ref();
    let _guard = state.role_lock.write().await;
    let Some(mut role) = load_role(storage, &name).await? else {
        return Ok(None);
    };
    which.reset(&mut role);
    save_role(&state, storage, &role, Some(&role.role_id.clone())).await?;
    Ok(None)
}
