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
    reservation::{InFlight, Origin, Reservation},
    state::{Database, Instance, plugin_error},
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

/// The connection's username template (or the plugin's default).
fn username_template(instance: &Instance) -> String {
    match instance.config.connection_details.get("username_template") {
        Some(Value::String(text)) if !text.is_empty() => text.clone(),
        _ => instance.plugin.default_username_template().to_owned(),
    }
}

/// Renders a username with the instance's template (`origin.template`), checked for what
/// statement substitution refuses.
fn render_username(instance: &Instance, origin: &Origin, role_name: &str) -> Result<String> {
    let failed = |err| Error::internal(format!("unable to generate username: {err}"));
    let template = match instance.username_template.get() {
        Some(template) => template,
        None => {
            let parsed = StringTemplate::parse(&origin.template).map_err(failed)?;
            instance.username_template.get_or_init(|| parsed)
        }
    };
    let fields = BTreeMap::from([
        ("DisplayName".to_owned(), origin.display_name.clone()),
        ("RoleName".to_owned(), role_name.to_owned()),
    ]);
    let name = template.render(&fields).map_err(failed)?;
    if name.is_empty() {
        return Err(Error::internal(
            "the username template produced an empty name",
        ));
    }
    crate::statements::check_substitution("generated username", &name).map_err(Error::invalid)?;
    Ok(name)
}

async fn issue(state: Arc<Database>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let name = fields
        .string("name")
        .filter(|name| !name.is_empty())
        .ok_or_else(|| Error::invalid("empty role name attribute given"))?;
    let storage = req.storage()?.clone();
    let role = state
        .roles
        .load(storage.as_ref(), &name)
        .await?
        .ok_or_else(|| Error::invalid(format!("unknown role: {name}")))?;
    // The live instance carries the stored configuration: every change to it replaces or
    // clears the instance.
    let instance = state.connection(storage.as_ref(), &role.db_name).await?;
    let config = &instance.config;
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
    crate::statements::check_substitution("generated password", &password).map_err(|err| {
        Error::invalid(format!(
            "{err}; remove it from the password policy's charsets"
        ))
    })?;
    let template = username_template(&instance);
    let origin = Origin {
        db_name: role.db_name.clone(),
        template,
        display_name: req.display_name.clone(),
    };
    let taken = state
        .reservations
        .take(&name, &origin, std::time::Instant::now());
    let (intent_id, username, reserved) = match taken.reservation {
        Some(reservation) => (reservation.intent_id, reservation.username, true),
        None => (
            mayfly_sdk::password::random_uuid(),
            render_username(&instance, &origin, &name)?,
            false,
        ),
    };
    let _in_flight = reserved.then(|| InFlight {
        reservations: &state.reservations,
        intent_id: intent_id.clone(),
    });

    // The user must never exist without a durable record that reconciliation will find, and
    // the client must never hold a password whose lease is not durable. A reserved username
    // (see `reservation`) already has its pending record, so the user is created while the
    // lease commits. Otherwise the lease, with the engine's issued record, commits before the
    // user can exist: its sync runs while the plugin prepares the user, which waits for it
    // (`IntentGate`) before COMMIT in PostgreSQL, whose DDL is transactional, and before the
    // first statement elsewhere. Either way a crash leaves at worst a lease whose user never
    // came to exist, which revocation skips, or a pending record whose user reconciliation
    // drops. Each lease also reserves the next username for its role.
    let issued_at = unix_now();
    // The reservation's freshness counts from its record's `created_at`, not from when its
    // lease committed, so reconciliation's age limit for pending records always exceeds it.
    let reserved_at = std::time::Instant::now();
    let record = Intent {
        version: 1,
        id: intent_id,
        state: IntentState::Issued,
        db_name: role.db_name.clone(),
        role: name.clone(),
        username: username.clone(),
        revocation_statements: role.revocation_statements.clone(),
        created_at: issued_at,
        expires_at: issued_at + decision.ttl.as_secs(),
        boot: state.boot_id.clone(),
    };
    let system = req.system()?.clone();
    let (signal, gate) = if reserved {
        (None, IntentGate::open())
    } else {
        let (signal, gate) = IntentGate::pending();
        (Some(signal), gate)
    };
    // Polled first, so its first statement leaves while the lease is prepared: what the
    // registration computes (the next reservation, the encrypted lease) is off the path of a
    // reserved creation. An error before `finish` drops the signal, which fails the gate.
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
    let register = async {
        // PostgreSQL's first statement only leaves when its connection task runs: yielding
        // lets it run first, so the lease is prepared while the statement is on its way. A
        // syscall trace of one-client creations put the first statement 89 µs after the
        // request arrived instead of 186 µs.
        tokio::task::yield_now().await;
        let next = Intent {
            id: mayfly_sdk::password::random_uuid(),
            state: IntentState::Pending,
            username: render_username(&instance, &origin, &name)?,
            expires_at: 0,
            ..record.clone()
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
        let mut commit_with_lease = vec![intent::put_change(&record)?, intent::put_change(&next)?];
        commit_with_lease.extend(taken.discarded.iter().map(|id| StorageChange::Delete {
            key: intent::key(id),
        }));
        let mut secret = SecretLease {
            lease_id: String::new(),
            ttl: decision.ttl,
            max_ttl: role.max_ttl(),
            renewable: true,
            secret_type: SECRET_CREDS.to_owned(),
            internal_data,
            commit_with_lease,
        };
        let registered = system.register_lease(&req, &mut secret).await;
        if let Some(signal) = signal {
            signal.finish(registered.is_ok());
        }
        Ok((registered, secret, next))
    };
    let (created, prepared) = tokio::join!(create, register);
    let registered = prepared.and_then(|(registered, secret, next)| {
        registered.map(|warnings| {
            state.reservations.offer(
                &name,
                Reservation {
                    intent_id: next.id,
                    username: next.username,
                    origin,
                    made: reserved_at,
                },
            );
            (warnings, secret)
        })
    });
    let (registration_warnings, secret) = match (registered, created) {
        (Ok(registered), Ok(())) => registered,
        // Unregistered and ungated, the user may exist under its reserved record: drop it
        // now, or leave it to reconciliation if the database cannot. Gated, the plugin
        // created nothing and the registration's error (a full lease quota, say) is the answer.
        (Err(err), _) => {
            if reserved {
                let pending = Intent {
                    state: IntentState::Pending,
                    ..record
                };
                if let Err(cleanup) = intent::drop_user(&state, storage.as_ref(), &pending).await {
                    tracing::warn!(db = %pending.db_name, role = %name, error = %cleanup,
                        "Could not drop the user of a failed creation; reconciliation will.");
                }
            }
            return Err(err);
        }
        // The plugin rolled back what it could; revoking the lease drops whatever is left and
        // its record. If that fails the lease stays due, and the worker retries it.
        (Ok((_, secret)), Err(err)) => {
            if let Err(cleanup) = system.revoke_lease(&secret.lease_id).await {
                tracing::warn!(db = %record.db_name, role = %name, error = %cleanup,
                    "Could not revoke the lease of a failed creation; it will be retried.");
            }
            return Err(plugin_error("failed to create user", err));
        }
    };
    let mut warnings = decision.warnings;
    warnings.extend(registration_warnings);

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
    let role = state
        .roles
        .load(storage.as_ref(), &role_name)
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
    let (db_name, statements) = match state.roles.load(storage.as_ref(), &role_name).await? {
        Some(role) => (role.db_name.clone(), role.revocation_statements.clone()),
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
