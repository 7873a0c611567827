//! The engine's state: stored connection configurations, live plugin instances, and the
//! background work (recovery and reconciliation) that runs while the mount is live.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use mayfly_sdk::{Error, MountContext, Result, Storage, StorageExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::{Notify, RwLock};

use crate::plugin::{DatabasePlugin, DbError, InitializeRequest, new_plugin};

pub(crate) const CONFIG_PREFIX: &str = "config/";
pub(crate) const ROLE_PREFIX: &str = "role/";
pub(crate) const STATIC_ROLE_PREFIX: &str = "static-role/";

/// A stored connection (`config/:name`), in Vault's layout.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct DbConfig {
    pub plugin_name: String,
    #[serde(default)]
    pub plugin_version: String,
    /// Everything the plugin needs: URL, root credentials, pool and TLS settings.
    #[serde(default)]
    pub connection_details: Map<String, Value>,
    #[serde(default)]
    pub allowed_roles: Vec<String>,
    #[serde(default)]
    pub root_credentials_rotate_statements: Vec<String>,
    #[serde(default)]
    pub password_policy: String,
    #[serde(default = "yes")]
    pub verify_connection: bool,
}

fn yes() -> bool {
    true
}

impl DbConfig {
    /// Whether a role may use this connection: `*`, an exact name or a glob (`my-*-role`).
    pub fn allows_role(&self, role: &str) -> bool {
        self.allowed_roles
            .iter()
            .any(|pattern| pattern == "*" || glob_matches(pattern, role))
    }

    pub fn root_password(&self) -> Option<String> {
        match self.connection_details.get("password") {
            Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
            _ => None,
        }
    }

    pub fn root_username(&self) -> Option<String> {
        match self.connection_details.get("username") {
            Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
            _ => None,
        }
    }
}

/// Vault's `StrListContainsGlob`: `*` matches any run of characters.
pub(crate) fn glob_matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// A live plugin for one connection. Credential operations share it; root rotation takes it
/// exclusively, so nothing runs on a connection whose password is changing.
pub(crate) struct Instance {
    pub plugin: Box<dyn DatabasePlugin>,
    pub config: DbConfig,
    pub lock: RwLock<()>,
    /// The username template, parsed on first use.
    pub username_template: std::sync::OnceLock<mayfly_sdk::template::StringTemplate>,
}

impl Instance {
    pub(crate) fn new(plugin: Box<dyn DatabasePlugin>, config: DbConfig) -> Instance {
        Instance {
            plugin,
            config,
            lock: RwLock::new(()),
            username_template: std::sync::OnceLock::new(),
        }
    }
}

/// Everything a mounted database engine keeps.
pub struct Database {
    pub(crate) connections: tokio::sync::Mutex<HashMap<String, Arc<Instance>>>,
    /// Set once the mount is live; background work needs storage outside requests.
    pub(crate) mount: Mutex<Option<MountContext>>,
    /// Names this process's life of the mount: a pending intent written under another boot
    /// belongs to a request that died with its process.
    pub(crate) boot_id: String,
    pub(crate) shutdown: Notify,
    pub(crate) shut_down: std::sync::atomic::AtomicBool,
    pub(crate) settings: crate::Settings,
    /// Serialises static-role rotations (background, `rotate-role`, role writes).
    pub(crate) static_rotations: tokio::sync::Mutex<()>,
    pub(crate) static_retries: crate::static_role::RetryTimes,
    /// Usernames whose pending intents are committed, for the next credentials.
    pub(crate) reservations: crate::reservation::Reservations,
    pub(crate) roles: crate::role::RoleCache,
}

impl Database {
    pub(crate) fn new(settings: crate::Settings) -> Self {
        Database {
            connections: tokio::sync::Mutex::new(HashMap::new()),
            mount: Mutex::new(None),
            boot_id: mayfly_sdk::password::random_uuid(),
            shutdown: Notify::new(),
            shut_down: std::sync::atomic::AtomicBool::new(false),
            settings,
            static_rotations: tokio::sync::Mutex::new(()),
            static_retries: crate::static_role::RetryTimes::default(),
            reservations: crate::reservation::Reservations::default(),
            roles: crate::role::RoleCache::default(),
        }
    }

    pub(crate) fn mount_context(&self) -> Option<MountContext> {
        self.mount
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) async fn config(
        &self,
        storage: &dyn Storage,
        name: &str,
    ) -> Result<Option<DbConfig>> {
        storage.get_json(&format!("{CONFIG_PREFIX}{name}")).await
    }

    /// The stored configuration, or Vault's error for a missing one.
    pub(crate) async fn require_config(
        &self,
        storage: &dyn Storage,
        name: &str,
    ) -> Result<DbConfig> {
        self.config(storage, name)
            .await?
            .ok_or_else(|| missing_connection(name))
    }

    pub(crate) async fn put_config(
        &self,
        storage: &dyn Storage,
        name: &str,
        config: &DbConfig,
    ) -> Result<()> {
        storage
            .put_json(&format!("{CONFIG_PREFIX}{name}"), config)
            .await
    }

    /// The live plugin for a connection, opened on first use. A root rotation interrupted
    /// earlier is settled first, so the plugin logs in with the password that works.
    pub(crate) async fn connection(
        &self,
        storage: &dyn Storage,
        name: &str,
    ) -> Result<Arc<Instance>> {
        let mut connections = self.connections.lock().await;
        if let Some(instance) = connections.get(name) {
            return Ok(instance.clone());
        }
        crate::rotate_root::settle_if_pending(self, storage, name).await?;
        let config = self.require_config(storage, name).await?;
        let plugin = new_plugin(&config.plugin_name).ok_or_else(|| {
            Error::invalid(format!(
                "plugin not found in the catalog: {}",
                config.plugin_name
            ))
        })?;
        plugin
            .initialize(InitializeRequest {
                config: config.connection_details.clone(),
                verify_connection: false,
            })
            .await
            .map_err(|err| plugin_error("error initializing the connection", err))?;
        let instance = Arc::new(Instance::new(plugin, config));
        connections.insert(name.to_owned(), instance.clone());
        Ok(instance)
    }

    /// Closes and forgets a connection's plugin; the next use opens a fresh one.
    pub(crate) async fn clear_connection(&self, name: &str) {
        let removed = self.connections.lock().await.remove(name);
        if let Some(instance) = removed {
            instance.plugin.close().await;
        }
    }

    pub(crate) async fn close_all(&self) {
        let all: Vec<Arc<Instance>> = self
            .connections
            .lock()
            .await
            .drain()
            .map(|(_, i)| i)
            .collect();
        for instance in all {
            instance.plugin.close().await;
        }
    }
}

pub(crate) fn missing_connection(name: &str) -> Error {
    Error::Coded {
        status: 500,
        message: format!("failed to find entry for connection with name: {name:?}"),
    }
}

/// A plugin failure as the client sees it: Vault answers these with 500 and the message;
/// messages are already free of passwords.
pub(crate) fn plugin_error(context: &str, err: DbError) -> Error {
    Error::Coded {
        status: 500,
        message: format!("{context}: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_roles_globs() {
        let config = DbConfig {
            allowed_roles: vec!["ro".into(), "my-*-role".into(), "app-*".into()],
            ..DbConfig::default()
        };
        for allowed in ["ro", "my-x-role", "my--role", "app-", "app-1"] {
            assert!(config.allows_role(allowed), "{allowed}");
        }
        for denied in ["rw", "my-role", "x-app-1", "ro2"] {
            assert!(!config.allows_role(denied), "{denied}");
        }
        let any = DbConfig {
            allowed_roles: vec!["*".into()],
            ..DbConfig::default()
        };
        assert!(any.allows_role("anything"));
        assert!(
            !DbConfig::default().allows_role("x"),
            "empty means no roles"
        );
    }
}
