//! `roles/:name` and `roles/`: dynamic roles, what each `creds/:name` read creates.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use mayfly_sdk::{
    Error, Operation, Request, Response, Result, Storage, StorageExt,
    framework::{Field, FieldData, FieldKind, Path, existence, generic_name, handler},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{
    sorted,
    state::{Database, ROLE_PREFIX, STATIC_ROLE_PREFIX},
    statements,
};

/// A dynamic role, stored at `role/<name>`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct Role {
    pub db_name: String,
    #[serde(default)]
    pub creation_statements: Vec<String>,
    #[serde(default)]
    pub revocation_statements: Vec<String>,
    #[serde(default)]
    pub rollback_statements: Vec<String>,
    #[serde(default)]
    pub renew_statements: Vec<String>,
    /// Seconds; zero means the mount's.
    #[serde(default)]
    pub default_ttl: u64,
    #[serde(default)]
    pub max_ttl: u64,
    #[serde(default = "password_type")]
    pub credential_type: String,
    #[serde(default)]
    pub credential_config: Map<String, Value>,
}

fn password_type() -> String {
    "password".to_owned()
}

impl Role {
    pub fn default_ttl(&self) -> Duration {
        Duration::from_secs(self.default_ttl)
    }

    pub fn max_ttl(&self) -> Duration {
        Duration::from_secs(self.max_ttl)
    }

    /// The role's own password policy, if its credential_config names one.
    pub fn password_policy(&self) -> Option<String> {
        match self.credential_config.get("password_policy") {
            Some(Value::String(name)) if !name.is_empty() => Some(name.clone()),
            _ => None,
        }
    }
}

pub(crate) async fn load(storage: &dyn Storage, name: &str) -> Result<Option<Role>> {
    storage.get_json(&format!("{ROLE_PREFIX}{name}")).await
}

/// Decoded roles, so that issuing and revoking credentials do not decrypt and parse their
/// role every time. Roles change only through this module's write and delete, which
/// invalidate the entry once storage has changed; the generation keeps a load that read
/// storage before such a change from caching what it read.
#[derive(Default)]
pub(crate) struct RoleCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, Arc<Role>>>,
    generation: AtomicU64,
}

impl RoleCache {
    pub(crate) async fn load(
        &self,
        storage: &dyn Storage,
        name: &str,
    ) -> Result<Option<Arc<Role>>> {
        if let Some(role) = self.lock().get(name) {
            return Ok(Some(role.clone()));
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let role = load(storage, name).await?.map(Arc::new);
        if let Some(role) = &role {
            let mut entries = self.lock();
            if self.generation.load(Ordering::SeqCst) == generation {
                entries.insert(name.to_owned(), role.clone());
            }
        }
        Ok(role)
    }

    pub(crate) fn invalidate(&self, name: &str) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.remove(name);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Arc<Role>>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

const STATEMENT_FIELDS: &[(&str, &str)] = &[
    (
        "creation_statements",
        "Specifies the database statements executed to create and configure a user.",
    ),
    (
        "revocation_statements",
        "Specifies the database statements to be executed to revoke a user.",
    ),
    (
        "rollback_statements",
        "Specifies the database statements to be executed to rollback a create operation in \
         the event of an error.",
    ),
    (
        "renew_statements",
        "Specifies the database statements to be executed to renew a user.",
    ),
];

pub(crate) fn paths() -> Vec<Path<Database>> {
    let mut role = Path::new(format!("roles/{}", generic_name("name")))
        .field(Field::new("name", FieldKind::String, "Name of the role."))
        .field(Field::new(
            "db_name",
            FieldKind::String,
            "Name of the database this role acts on.",
        ))
        .field(Field::new(
            "default_ttl",
            FieldKind::Duration,
            "Default ttl for role.",
        ))
        .field(Field::new(
            "max_ttl",
            FieldKind::Duration,
            "Maximum time a credential is valid for",
        ))
        .field(
            Field::new(
                "credential_type",
                FieldKind::String,
                "The type of credential to manage. Only 'password' is supported.",
            )
            .default_value(json!("password")),
        )
        .field(Field::new(
            "credential_config",
            FieldKind::Raw,
            "The configuration for the given credential_type.",
        ));
    for (name, description) in STATEMENT_FIELDS {
        role = role.field(Field::new(name, FieldKind::Raw, description));
    }
    vec![
        Path::new("roles/?")
            .operation(Operation::List, handler(list))
            .help(
                "Manage the roles that can be created with this backend.",
                "Lists the roles.",
            ),
        role.existence_check(existence(role_exists))
            .operation(Operation::Read, handler(read))
            .operation(Operation::Create, handler(write))
            .operation(Operation::Update, handler(write))
            .operation(Operation::Delete, handler(delete))
            .help(
                "Manage the roles that can be created with this backend.",
                "A role names a database connection and the statements that create, renew, \
                 revoke and roll back its users, with their TTLs.",
            ),
    ]
}

/// The `name` path field, required non-empty (roles and static roles alike).
pub(crate) fn role_name(fields: &FieldData) -> Result<String> {
    fields
        .string("name")
        .filter(|name| !name.is_empty())
        .ok_or_else(|| Error::invalid("empty role name attribute given"))
}

async fn role_exists(_: Arc<Database>, req: Request, fields: FieldData) -> Result<bool> {
    Ok(load(req.storage()?.as_ref(), &role_name(&fields)?)
        .await?
        .is_some())
}

async fn list(_: Arc<Database>, req: Request, _: FieldData) -> Result<Option<Response>> {
    Ok(Some(Response::list(
        req.storage()?.list(ROLE_PREFIX).await?,
    )))
}

async fn read(_: Arc<Database>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let Some(role) = load(req.storage()?.as_ref(), &role_name(&fields)?).await? else {
        return Ok(None);
    };
    let mut data = json!({
        "db_name": role.db_name,
        "creation_statements": role.creation_statements,
        "revocation_statements": role.revocation_statements,
        "rollback_statements": role.rollback_statements,
        "renew_statements": role.renew_statements,
        "default_ttl": role.default_ttl,
        "max_ttl": role.max_ttl,
        "credential_type": role.credential_type,
    });
    if !role.credential_config.is_empty() {
        data["credential_config"] = Value::Object(role.credential_config.clone());
    }
    let Value::Object(data) = data else {
        return Err(Error::internal("role response is not an object"));
    };
    Ok(Some(Response::with_data(sorted(data))))
}

fn statement_list(fields: &FieldData, name: &str) -> Result<Option<Vec<String>>> {
    if !fields.is_set(name) {
        return Ok(None);
    }
    let value = fields.raw(name).cloned().unwrap_or(Value::Null);
    statements::from_value(&value)
        .map(Some)
        .ok_or_else(|| Error::invalid(format!("{name} must be a string or a list of strings")))
}

/// `credential_config` as a map of strings; Vault also accepts a `key=value` list.
fn credential_config(value: &Value) -> Result<Map<String, Value>> {
    let invalid =
        || Error::invalid("credential_config validation failed: expected key/value pairs");
    match value {
        Value::Null => Ok(Map::new()),
        Value::Object(map) => Ok(map.clone()),
        Value::String(text) if text.trim().is_empty() => Ok(Map::new()),
        Value::String(text) => {
            serde_json::from_str::<Map<String, Value>>(text).map_err(|_| invalid())
        }
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .and_then(|pair| pair.split_once('='))
                    .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
                    .ok_or_else(invalid)
            })
            .collect(),
        _ => Err(invalid()),
    }
}

async fn write(state: Arc<Database>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let name = role_name(&fields)?;
    let storage = req.storage()?;
    if storage
        .get(&format!("{STATIC_ROLE_PREFIX}{name}"))
        .await?
        .is_some()
    {
        return Err(Error::invalid("Role and Static Role names must be unique"));
    }
    let create = req.operation == Operation::Create;
    let mut role = load(storage.as_ref(), &name).await?.unwrap_or_default();
    if role.credential_type.is_empty() {
        role.credential_type = password_type();
    }
    if fields.is_set("db_name") || create {
        role.db_name = fields.string("db_name").unwrap_or_default();
    }
    if role.db_name.is_empty() {
        return Err(Error::invalid("database name is required"));
    }
    if fields.is_set("credential_type") {
        let kind = fields.string("credential_type").unwrap_or_default();
        match kind.as_str() {
            "password" => role.credential_type = kind,
            "rsa_private_key" | "client_certificate" => {
                return Err(Error::invalid(format!(
                    "unsupported credential_type: {kind:?}"
                )));
            }
            other => return Err(Error::invalid(format!("invalid credential_type {other:?}"))),
        }
    }
    if fields.is_set("credential_config") || create {
        let config = credential_config(fields.raw("credential_config").unwrap_or(&Value::Null))?;
        if let Some(key) = config.keys().find(|key| key.as_str() != "password_policy") {
            return Err(Error::invalid(format!(
                "credential_config validation failed: unknown key {key:?} for credential_type \"password\""
            )));
        }
        role.credential_config = config;
    }
    for (field, target) in [
        ("creation_statements", &mut role.creation_statements),
        ("revocation_statements", &mut role.revocation_statements),
        ("rollback_statements", &mut role.rollback_statements),
        ("renew_statements", &mut role.renew_statements),
    ] {
        match statement_list(&fields, field)? {
            Some(list) => *target = list,
            None if create => target.clear(),
            None => {}
        }
    }
    if fields.is_set("default_ttl") || create {
        role.default_ttl = fields.duration("default_ttl").unwrap_or_default().as_secs();
    }
    if fields.is_set("max_ttl") || create {
        role.max_ttl = fields.duration("max_ttl").unwrap_or_default().as_secs();
    }
    let written = storage
        .put_json(&format!("{ROLE_PREFIX}{name}"), &role)
        .await;
    state.roles.invalidate(&name);
    written?;
    Ok(None)
}

async fn delete(state: Arc<Database>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let name = role_name(&fields)?;
    let storage = req.storage()?;
    let deleted = storage.delete(&format!("{ROLE_PREFIX}{name}")).await;
    state.roles.invalidate(&name);
    deleted?;
    for id in state.reservations.forget(&name) {
        // Left behind, the record is settled by reconciliation.
        if let Err(err) = crate::intent::remove(storage.as_ref(), &id).await {
            tracing::warn!(role = %name, error = %err,
                "Could not delete a deleted role's username reservation.");
        }
    }
    Ok(None)
}
