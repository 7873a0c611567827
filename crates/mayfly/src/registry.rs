//! The one list of what this build includes: secrets engines and auth methods by their Vault
//! type names, and storage backends by their config names.

use std::sync::Arc;

use mayfly_core::registry::{BackendContext, Registry};
use mayfly_storage::{Backend, FileBackend, InmemBackend};

use crate::config::StorageConfig;

/// Engines and auth methods that can be mounted. `system` and `token` are part of the core and
/// always present.
pub(crate) fn builtin_backends() -> Registry {
    let mut registry = Registry::default();
    registry.register("cubbyhole", Arc::new(mayfly_core::cubbyhole::factory));
    registry.register(
        "kv",
        Arc::new(|ctx: BackendContext| mayfly_kv::new_backend(&ctx.options)),
    );
    registry.register(
        "approle",
        Arc::new(|ctx: BackendContext| mayfly_approle::new_backend(&ctx.options)),
    );
    registry.register(
        "userpass",
        Arc::new(|ctx: BackendContext| mayfly_userpass::new_backend(&ctx.options)),
    );
    registry.register(
        "database",
        Arc::new(|ctx: BackendContext| mayfly_database::new_backend(&ctx.options)),
    );
    #[cfg(feature = "test-engines")]
    registry.register(
        mayfly_leasetest::TYPE_NAME,
        Arc::new(|_: BackendContext| mayfly_leasetest::new_backend()),
    );
    registry
}

/// Storage backends, by the name used in `storage "<name>" { … }`.
pub(crate) const STORAGE_BACKENDS: &[&str] = &["file", "inmem"];

/// Opens the configured storage backend.
pub(crate) fn open_storage(config: &StorageConfig) -> Result<Arc<dyn Backend>, String> {
    match config {
        StorageConfig::Inmem => Ok(Arc::new(InmemBackend::new())),
        StorageConfig::File { path } => FileBackend::open(path)
            .map(|backend| Arc::new(backend) as Arc<dyn Backend>)
            .map_err(|err| format!("storage.file.path: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_backend_is_known() {
        assert_eq!(STORAGE_BACKENDS, ["file", "inmem"]);
        let registry = builtin_backends();
        for name in ["cubbyhole", "kv", "approle", "userpass", "database"] {
            assert!(registry.engine(name).is_some(), "{name} is registered");
        }
    }
}
