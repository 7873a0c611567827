//! `creds/:name` and the `creds` secret type: a new database user per read, renewed and
//! revoked through its lease.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, SystemTime},
};

use mayfly_sdk::{
    Error, Operation, Request, Response, Result, SecretLease, StorageChange,
    framework::{
        Field, FieldData, FieldKind, Path, SecretType, generic_name, handler, secret_handler,
    },
    template::StringTemplate,
    ttl::{TtlRequest, calculate_ttl},
};
use serde_json::{Map, Value, json};

use crate::{
    intent::{self, Intent, IntentState, unix_now},
    plugin::{DeleteUserRequest, IntentGate, NewUserRequest, UpdateUserRequest, UserChange},
    role,
    state::{Database, Instance, missing_connection, plugin_error},
};

pub(crate) const SECRET_CREDS: &str = "creds";

/// The database credential outlives the lease by this much, so it never expires in the
/// database before the lease does (Vault adds the same).
const EXPIRY_BUFFER: Duration = Duration::from_secs(5);

pub(crate) fn paths() -> Vec<Path<Database>> {
    vec![
        Path::new(format!("creds/{}", generic_name("name")))
            .field(Field::new("name", FieldKind::String, "Name of the role."))
            .operation(Operation::Read, handler(issue))
            .operation(Operation::Update, handler(issue))
            .help(
                "Request database credentials for a certain role.",
                "This path reads database credentials for a certain role. The database \
                 credentials will be generated on demand and will be automatically revoked \
                 when the lease is up.",
            ),
    ]
}

pub(crate) fn secret_type() -> SecretType<Database> {
    SecretType {
        name: SECRET_CREDS,
        renew: Some(secret_handler(renew)),
        revoke: secret_handler(revoke),
    }
}

/// Renders the connection's username template (or the plugin's default).
fn username(instance: &Instance, display_name: &str, role_name: &str) -> Result<String> {
    let template = match instance.config.connection_details.get("username_template") {
        Some(Value::String(text)) if !text.is_empty() => text.clone(),
        _ => instance.plugin.default_username_template().to_owned(),
    };
    let fields = BTreeMap::from([
        ("DisplayName".to_owned(), display_name.to_owned()),
        ("RoleName".to_owned(), role_name.to_owned()),
    ]);
    let name = StringTemplate::parse(&template)
        .and_then(|template| template.render(&fields))
        .map_err(|err| Error::internal(format!("unable to generate username: {err}")))?;
    if name.is_empty() {
        return Err(Error::internal(
            "the username template produced an empty name",
        ));
    }
    Ok(name)
}

async fn issue(state: Arc<Database>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let name = fields
        .string("name")
        .filter(|name| !name.is_empty())
        .ok_or_else(|| Error::invalid("empty role name attribute given"))?;
    let storage = req.storage()?.clone();
    let role = role::load(storage.as_ref(), &name)
        .await?
        .ok_or_else(|| Error::invalid(format!("unknown role: {name}")))?;
    let config = state
        .config(storage.as_ref(), &role.db_name)
        .await?
        .ok_or_else(|| missing_connection(&role.db_name))?;
    if !config.allows_role(&name) {
        return Err(Error::Coded {
            status: 500,
            message: format!("{name:?} is not an allowed role"),
        });
    }
    if role.credential_type != "password" {
        return Err(Error::invalid(format!(
            "unsupported credential_type: {:?}",
            role.credential_type
        )));
    }
    let instance = state.connection(storage.as_ref(), &role.db_name).await?;

    let now = SystemTime::now();
    let decision = calculate_ttl(
        req.mount_ttls,
        TtlRequest {
            backend_ttl: role.default_ttl(),
            backend_max_ttl: role.max_ttl(),
            ..TtlRequest::issued_at(now)
        },
        now,
    )?;
    let policy = role
        .password_policy()
        .unwrap_or(config.password_policy.clone());
    let password = req
        .system()?
        .generate_password(Some(&policy).filter(|p| !p.is_empty()).map(String::as_str))
        .await
        .map_err(|err| match err {
            Error::InvalidRequest(message) => {
                Error::internal(format!("failed to generate password: {message}"))
            }
            other => other,
        })?;
    let username = username(&instance, &req.display_name, &name)?;
    crate::statements::check_substitution("generated username", &username)
        .map_err(Error::invalid)?;
    crate::statements::check_substitution("generated password", &password).map_err(|err| {
        Error::invalid(format!(
            "{err}; remove it from the password policy's charsets"
        ))
    })?;

    // The lease, with the engine's issued record, is registered before the user can exist,
    // so no crash can leave a user that no lease covers; a lease whose user never came to
    // exist is harmless, as revocation skips missing users. The registration's fsync runs
    // while the plugin prepares the user, which waits for it (`IntentGate`): before COMMIT in
    // PostgreSQL, whose DDL is transactional, and before the first statement elsewhere.
    let issued_at = unix_now();
    let record = Intent {
        version: 1,
        id: uuid::Uuid::new_v4().to_string(),
        state: IntentState::Issued,
        db_name: role.db_name.clone(),
        role: name.clone(),
        username: username.clone(),
        revocation_statements: role.revocation_statements.clone(),
        created_at: issued_at,
        expires_at: issued_at + decision.ttl.as_secs(),
        boot: state.boot_id.clone(),
    };
    let internal = json!({
        "username": username,
        "role": name,
        "db_name": role.db_name,
        "revocation_statements": role.revocation_statements,
        "intent_id": record.id,
        "issued_at": issued_at,
    });
    let Value::Object(internal_data) = internal else {
        return Err(Error::internal("internal data is not an object"));
    };
    let mut secret = SecretLease {
        lease_id: String::new(),
        ttl: decision.ttl,
        max_ttl: role.max_ttl(),
        renewable: true,
        secret_type: SECRET_CREDS.to_owned(),
        internal_data,
        commit_with_lease: vec![intent::issued_change(&record)?],
    };
    let system = req.system()?.clone();
    let (signal, gate) = IntentGate::pending();
    let register = async {
        let registered = system.register_lease(&req, &mut secret).await;
        signal.finish(registered.is_ok());
        registered
    };
    let create = async {
        let _shared = instance.lock.read().await;
        instance
            .plugin
            .new_user(NewUserRequest {
                username: &username,
                password: &password,
                expiration: now + decision.ttl + EXPIRY_BUFFER,
                statements: &role.creation_statements,
                rollback_statements: &role.rollback_statements,
                intent: &gate,
            })
            .await
    };
    let (registered, created) = tokio::join!(register, create);
    // Unregistered, the plugin created nothing: the registration's error (a full lease
    // quota, say) is the answer.
    let mut warnings = decision.warnings;
    warnings.extend(registered?);
    if let Err(err) = created {
        // The plugin rolled back what it could; revoking the lease drops whatever is left
        // and its record. If that fails the lease stays due, and the worker retries it.
        if let Err(cleanup) = system.revoke_lease(&secret.lease_id).await {
            tracing::warn!(db = %record.db_name, role = %name, error = %cleanup,
                "Could not revoke the lease of a failed creation; it will be retried.");
        }
        return Err(plugin_error("failed to create user", err));
    }

    let mut data = Map::new();
    data.insert("username".to_owned(), Value::String(username));
    data.insert("password".to_owned(), Value::String(password));
    Ok(Some(Response {
        data: Some(data),
        secret: Some(secret),
        warnings,
        ..Response::default()
    }))
}

fn internal_str<'a>(secret: &'a SecretLease, key: &str) -> Option<&'a str> {
    secret.internal_data.get(key).and_then(Value::as_str)
}

async fn renew(
    state: Arc<Database>,
    req: Request,
    secret: SecretLease,
) -> Result<Option<Response>> {
    let username = internal_str(&secret, "username")
        .ok_or_else(|| Error::internal("secret is missing \"username\" field in internal data"))?
        .to_owned();
    let role_name = internal_str(&secret, "role")
        .ok_or_else(|| Error::internal("secret is missing \"role\" field in internal data"))?
        .to_owned();
    let storage = req.storage()?.clone();
    let role = role::load(storage.as_ref(), &role_name)
        .await?
        .ok_or_else(|| {
            Error::invalid(format!(
                "error during renew: could not find role with name {role_name:?}"
            ))
        })?;
    let instance = state.connection(storage.as_ref(), &role.db_name).await?;
    let now = SystemTime::now();
    let issued_at = secret
        .internal_data
        .get("issued_at")
        .and_then(Value::as_u64)
        .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap_or(now);
    // The core passes the client's requested increment, if any, as request data.
    let increment = req
        .data
        .get("increment")
        .and_then(|value| mayfly_sdk::duration::parse_duration_value(value).ok())
        .unwrap_or_default();
    let decision = calculate_ttl(
        req.mount_ttls,
        TtlRequest {
            increment,
            backend_ttl: role.default_ttl(),
            backend_max_ttl: role.max_ttl(),
            ..TtlRequest::issued_at(issued_at)
        },
        now,
    )?;
    if !decision.ttl.is_zero() {
        let _shared = instance.lock.read().await;
        instance
            .plugin
            .update_user(UpdateUserRequest {
                username: &username,
                change: UserChange::Expiration {
                    expiration: now + decision.ttl + EXPIRY_BUFFER,
                    statements: &role.renew_statements,
                },
            })
            .await
            .map_err(|err| plugin_error("failed to renew user", err))?;
    }
    if let Some(id) = internal_str(&secret, "intent_id") {
        intent::extend(storage.as_ref(), id, unix_now() + decision.ttl.as_secs()).await?;
    }
    Ok(Some(Response {
        secret: Some(SecretLease {
            ttl: decision.ttl,
            max_ttl: role.max_ttl(),
            ..secret
        }),
        warnings: decision.warnings,
        ..Response::default()
    }))
}

async fn revoke(
    state: Arc<Database>,
    req: Request,
    secret: SecretLease,
) -> Result<Option<Response>> {
    let username = internal_str(&secret, "username")
        .ok_or_else(|| Error::internal("secret is missing username internal data"))?
        .to_owned();
    let role_name = internal_str(&secret, "role")
        .ok_or_else(|| Error::internal("no role name was provided"))?
        .to_owned();
    let storage = req.storage()?.clone();
    // The current role wins; a deleted role's lease still carries what revocation needs.
    let (db_name, statements) = match role::load(storage.as_ref(), &role_name).await? {
        Some(role) => (role.db_name, role.revocation_statements),
        None => {
            let db_name = internal_str(&secret, "db_name").ok_or_else(|| {
                Error::internal(format!(
                    "error during revoke: could not find role with name {role_name:?} or \
                     embedded revocation db name data"
                ))
            })?;
            let statements = match secret.internal_data.get("revocation_statements") {
                None | Some(Value::Null) => Vec::new(),
                Some(value) => crate::statements::from_value(value).ok_or_else(|| {
                    Error::internal(
                        "error during revoke: embedded revocation data could not be read",
                    )
                })?,
            };
            (db_name.to_owned(), statements)
        }
    };
    let instance = state.connection(storage.as_ref(), &db_name).await?;
    {
        let _shared = instance.lock.read().await;
        instance
            .plugin
            .delete_user(DeleteUserRequest {
                username: &username,
                statements: &statements,
            })
            .await
            .map_err(|err| plugin_error("failed to revoke user", err))?;
    }
    // The record goes with the lease, in one transaction.
    let Some(id) = internal_str(&secret, "intent_id") else {
        return Ok(None);
    };
    Ok(Some(Response {
        secret: Some(SecretLease {
            commit_with_lease: vec![StorageChange::Delete {
                key: intent::key(id),
            }],
            ..secret
        }),
        ..Response::default()
    }))
}
