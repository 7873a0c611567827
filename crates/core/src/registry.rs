//! The registry type: built-in engines and auth methods by their Vault type names.
//!
//! The list itself lives in the binary (`mayfly::registry`), so that what a build includes is
//! one greppable table; the core only knows how to look a name up.

use std::{collections::BTreeMap, sync::Arc};

use mayfly_sdk::{LogicalBackend, Result};
use serde_json::{Map, Value};

/// What a factory gets to build one mount's backend.
pub struct BackendContext {
    pub mount_path: String,
    pub options: Map<String, Value>,
}

pub type BackendFactory =
    Arc<dyn Fn(BackendContext) -> Result<Arc<dyn LogicalBackend>> + Send + Sync>;

/// Engine and auth-method factories by Vault type name (`cubbyhole`, `kv`, `approle`…).
#[derive(Clone, Default)]
pub struct Registry {
    engines: BTreeMap<String, BackendFactory>,
    aliases: BTreeMap<String, String>,
}

impl Registry {
    pub fn register(&mut self, name: &str, factory: BackendFactory) {
        self.engines.insert(name.to_owned(), factory);
    }

    /// Another accepted name for a type (`kv-v2` → `kv`).
    pub fn alias(&mut self, alias: &str, name: &str) {
        self.aliases.insert(alias.to_owned(), name.to_owned());
    }

    pub fn engine(&self, name: &str) -> Option<&BackendFactory> {
        let name = self.aliases.get(name).map(String::as_str).unwrap_or(name);
        self.engines.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.engines.keys().map(String::as_str)
    }
}
