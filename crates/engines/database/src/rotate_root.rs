//! `rotate-root/:name`: a new root password, written ahead before the database changes, so
//! that no failure can lose it (hashicorp/vault#6042).
//!
//! Order: generate the password, store a write-ahead entry holding old and new, change the
//! password in the database, store the configuration with the new one, delete the entry. If
//! anything fails or the process dies in between, the entry remains; it is settled on the
//! next start and before the connection is next opened by trying the new password, then the
//! old one, and keeping whichever logs in.

use std::sync::Arc;

use mayfly_sdk::{
    Error, Operation, Request, Response, Result, Storage, StorageExt,
    framework::{Field, FieldData, FieldKind, Path, generic_name, handler},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    intent::unix_now,
    plugin::{InitializeRequest, UpdateUserRequest, UserChange, new_plugin},
    state::{Database, DbConfig, plugin_error},
};

pub(crate) const WAL_PREFIX: &str = "wal/rotate-root/";

/// The write-ahead entry. It holds passwords, so it lives only in the encrypted storage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct RootRotationWal {
    pub connection_name: String,
    pub username: String,
    pub old_password: String,
    pub new_password: String,
    pub created_at: u64,
}

/// How an interrupted rotation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// No rotation was pending.
    Nothing,
    /// The database has the new password; the configuration now holds it.
    New,
    /// The database still has the old password; the rotation never happened.
    Old,
}

pub(crate) fn paths() -> Vec<Path<Database>> {
    vec![
        Path::new(format!("rotate-root/{}", generic_name("name")))
            .field(Field::new(
                "name",
                FieldKind::String,
                "Name of this database connection",
            ))
            .operation(Operation::Update, handler(rotate))
            .help(
                "Request to rotate the root credentials for a certain database connection.",
                "Changes the configured user's password to a generated one that only Mayfly \
                 knows. The connection_url must use {{username}} and {{password}}.",
            ),
    ]
}

fn wal_key(name: &str) -> String {
    format!("{WAL_PREFIX}{name}")
}

async fn rotate(state: Arc<Database>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let name = fields
        .string("name")
        .filter(|name| !name.is_empty())
        .ok_or_else(|| Error::invalid("empty name attribute given"))?;
    let storage = req.storage()?.clone();
    let mut config = state.require_config(storage.as_ref(), &name).await?;
    let username = config.root_username().ok_or_else(|| Error::Coded {
        status: 500,
        message: "unable to rotate root credentials: no username in configuration".to_owned(),
    })?;
    let old_password = config.root_password().ok_or_else(|| Error::Coded {
        status: 500,
        message: "unable to rotate root credentials: no password in configuration".to_owned(),
    })?;
    let instance = state.connection(storage.as_ref(), &name).await?;
    // Exclusive: no credential operation runs while the root password changes.
    let exclusive = instance.lock.write().await;
    let policy = Some(config.password_policy.as_str()).filter(|p| !p.is_empty());
    let new_password =
        crate::static_role::safe_password(req.system()?.generate_password(policy).await?)?;
    let wal = RootRotationWal {
        connection_name: name.clone(),
        username: username.clone(),
        old_password,
        new_password: new_password.clone(),
        created_at: unix_now(),
    };
    storage.put_json(&wal_key(&name), &wal).await?;

    let changed = instance
        .plugin
        .update_user(UpdateUserRequest {
            username: &username,
            change: UserChange::Password {
                password: &new_password,
                statements: &config.root_credentials_rotate_statements,
            },
        })
        .await;
    drop(exclusive);
    if let Err(err) = changed {
        // The statement may have committed before the error reached us: settle by logging in.
        state.clear_connection(&name).await;
        return match settle(&state, storage.as_ref(), &name).await {
            Ok(Settled::New) => Ok(None),
            Ok(_) => Err(plugin_error("failed to update user", err)),
            Err(settle_err) => {
                tracing::warn!(connection = %name, error = %settle_err,
                    "Root rotation failed and could not be settled; the write-ahead entry stays.");
                Err(plugin_error("failed to update user", err))
            }
        };
    }
    config
        .connection_details
        .insert("password".to_owned(), Value::String(new_password));
    // If this write fails, the write-ahead entry still holds the new password.
    state.put_config(storage.as_ref(), &name, &config).await?;
    if let Err(err) = storage.delete(&wal_key(&name)).await {
        tracing::warn!(connection = %name, error = %err, "Could not delete a finished root rotation entry.");
    }
    state.clear_connection(&name).await;
    Ok(None)
}

/// Whether a plugin logs in with these connection details.
async fn logs_in(config: &DbConfig, password: &str) -> bool {
    let Some(plugin) = new_plugin(&config.plugin_name) else {
        return false;
    };
    let mut details = config.connection_details.clone();
    details.insert("password".to_owned(), Value::String(password.to_owned()));
    let ok = plugin
        .initialize(InitializeRequest {
            config: details,
            verify_connection: true,
        })
        .await
        .is_ok();
    plugin.close().await;
    ok
}

/// Settles an interrupted rotation of `name`, if one is recorded.
pub(crate) async fn settle(state: &Database, storage: &dyn Storage, name: &str) -> Result<Settled> {
    let Some(wal) = storage.get_json::<RootRotationWal>(&wal_key(name)).await? else {
        return Ok(Settled::Nothing);
    };
    let Some(mut config) = state.config(storage, name).await? else {
        // The connection was deleted; nothing to settle.
        storage.delete(&wal_key(name)).await?;
        return Ok(Settled::Old);
    };
    if config.root_password().as_deref() == Some(wal.new_password.as_str()) {
        storage.delete(&wal_key(name)).await?;
        return Ok(Settled::New);
    }
    if logs_in(&config, &wal.new_password).await {
        config.connection_details.insert(
            "password".to_owned(),
            Value::String(wal.new_password.clone()),
        );
        state.put_config(storage, name, &config).await?;
        storage.delete(&wal_key(name)).await?;
        tracing::info!(connection = %name, "Completed an interrupted root rotation.");
        return Ok(Settled::New);
    }
    let current = config.root_password().unwrap_or_default();
    if logs_in(&config, &current).await {
        storage.delete(&wal_key(name)).await?;
        tracing::info!(connection = %name, "Discarded an interrupted root rotation that never reached the database.");
        return Ok(Settled::Old);
    }
    Err(Error::Upstream(format!(
        "a root rotation of {name:?} is pending and neither password logs in yet"
    )))
}

/// Settles before a connection is opened, so it logs in with the password that works. If
/// neither works (the database is down), the configured one is used and the entry kept.
pub(crate) async fn settle_if_pending(
    state: &Database,
    storage: &dyn Storage,
    name: &str,
) -> Result<()> {
    if storage.get(&wal_key(name)).await?.is_none() {
        return Ok(());
    }
    if let Err(err) = settle(state, storage, name).await {
        tracing::warn!(connection = %name, error = %err, "Root rotation not settled yet.");
    }
    Ok(())
}

/// Settles every recorded rotation (at startup).
pub(crate) async fn settle_all(state: &Database, storage: &dyn Storage) -> Result<()> {
    for name in storage.list(WAL_PREFIX).await? {
        if name.ends_with('/') {
            continue;
        }
        state.clear_connection(&name).await;
        if let Err(err) = settle(state, storage, &name).await {
            tracing::warn!(connection = %name, error = %err, "Root rotation not settled yet.");
        }
    }
    Ok(())
}
