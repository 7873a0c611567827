//! The mount table and the router: which engine serves which path prefix.

use std::{collections::BTreeMap, sync::Arc};

use mayfly_barrier::Barrier;
use mayfly_sdk::{LogicalBackend, Result, StorageExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    random::{random_base62, uuid},
    registry::{BackendContext, Registry},
    view::BarrierView,
};

/// Logical key of the persisted mount table.
const MOUNT_TABLE_KEY: &str = "core/mounts";

/// Which table a mount belongs to; auth mounts live under `auth/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountClass {
    Secret,
    Auth,
}

/// Per-mount TTL settings; 0 means "use the system value".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MountConfig {
    pub default_lease_ttl: u64,
    pub max_lease_ttl: u64,
}

/// A persisted mount. `path` is the full routing prefix (`cubbyhole/`, `auth/token/`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountEntry {
    pub class: MountClass,
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub uuid: String,
    pub accessor: String,
    pub config: MountConfig,
    pub options: Map<String, Value>,
    pub local: bool,
    pub seal_wrap: bool,
}

impl MountEntry {
    pub fn new(class: MountClass, path: &str, kind: &str, description: &str) -> Self {
        MountEntry {
            class,
            path: path.to_owned(),
            kind: kind.to_owned(),
            description: description.to_owned(),
            uuid: uuid(),
            accessor: format!(
                "{}_{}",
                kind.replace('-', "_"),
                random_base62(8).to_lowercase()
            ),
            config: MountConfig::default(),
            options: Map::new(),
            local: false,
            seal_wrap: false,
        }
    }

    /// The barrier prefix holding this mount's data; keyed by UUID so a remount moves nothing.
    pub fn storage_prefix(&self) -> String {
        match self.class {
            MountClass::Secret => format!("logical/{}/", self.uuid),
            MountClass::Auth => format!("auth/{}/", self.uuid),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct MountTable {
    version: u32,
    entries: Vec<MountEntry>,
}

/// A mount with its live backend.
#[derive(Clone)]
pub struct RouteEntry {
    pub entry: MountEntry,
    pub backend: Arc<dyn LogicalBackend>,
    pub storage: Arc<BarrierView>,
}

/// Longest-prefix routing over the live mounts.
#[derive(Default)]
pub struct Router {
    routes: BTreeMap<String, RouteEntry>,
}

impl Router {
    /// The mount serving `path`, by longest matching prefix. A path equal to a mount without
    /// its trailing slash (`cubbyhole`) routes to that mount too, as Vault does.
    pub fn route(&self, path: &str) -> Option<&RouteEntry> {
        let with_slash;
        let lookup = if path.ends_with('/') {
            path
        } else {
            with_slash = format!("{path}/");
            &with_slash
        };
        self.routes
            .range(..=lookup.to_owned())
            .rev()
            .find(|(prefix, _)| lookup.starts_with(prefix.as_str()))
            .map(|(_, route)| route)
    }

    pub fn entries(&self) -> impl Iterator<Item = &MountEntry> {
        self.routes.values().map(|route| &route.entry)
    }

    fn insert(&mut self, route: RouteEntry) {
        self.routes.insert(route.entry.path.clone(), route);
    }
}

/// The mounts every initialized server has, created at init.
fn default_mounts() -> Vec<MountEntry> {
    vec![
        MountEntry::new(
            MountClass::Secret,
            "cubbyhole/",
            "cubbyhole",
            "per-token private secret storage",
        ),
        MountEntry::new(
            MountClass::Secret,
            "sys/",
            "system",
            "system endpoints used for control, policy and debugging",
        ),
        MountEntry::new(
            MountClass::Auth,
            "auth/token/",
            "token",
            "token based credentials",
        ),
    ]
}

/// Writes the initial mount table (called once, at init).
pub(crate) async fn persist_default_mounts(barrier: &Arc<Barrier>) -> Result<()> {
    let table = MountTable {
        version: 1,
        entries: default_mounts(),
    };
    BarrierView::new(barrier.clone(), "")
        .put_json(MOUNT_TABLE_KEY, &table)
        .await
}

/// Loads the mount table and instantiates each mount's backend (on unseal).
pub(crate) async fn load_router(
    barrier: &Arc<Barrier>,
    registry: &Registry,
    system: Arc<dyn LogicalBackend>,
    token: Arc<dyn LogicalBackend>,
) -> Result<Router> {
    let root = BarrierView::new(barrier.clone(), "");
    let table: MountTable = root.get_json(MOUNT_TABLE_KEY).await?.unwrap_or_default();
    let mut router = Router::default();
    for entry in table.entries {
        let storage = Arc::new(BarrierView::new(barrier.clone(), entry.storage_prefix()));
        let backend = match entry.kind.as_str() {
            "system" => system.clone(),
            "token" => token.clone(),
            kind => {
                let factory = registry.engine(kind).ok_or_else(|| {
                    mayfly_sdk::Error::internal(format!(
                        "mount {:?} has type {kind:?}, which this build does not include",
                        entry.path
                    ))
                })?;
                factory(BackendContext {
                    mount_path: entry.path.clone(),
                    options: entry.options.clone(),
                })?
            }
        };
        router.insert(RouteEntry {
            entry,
            backend,
            storage,
        });
    }
    Ok(router)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;

    #[async_trait::async_trait]
    impl LogicalBackend for Nothing {
        async fn handle(&self, _: mayfly_sdk::Request) -> Result<Option<mayfly_sdk::Response>> {
            Ok(None)
        }
    }

    fn router(paths: &[&str]) -> Router {
        let storage = Arc::new(mayfly_storage::InmemBackend::new());
        let barrier = Arc::new(Barrier::new(storage));
        let mut router = Router::default();
        for path in paths {
            router.insert(RouteEntry {
                entry: MountEntry::new(MountClass::Secret, path, "kv", ""),
                backend: Arc::new(Nothing),
                storage: Arc::new(BarrierView::new(barrier.clone(), "x/")),
            });
        }
        router
    }

    #[test]
    fn longest_prefix_wins() {
        let router = router(&["secret/", "secret/team/", "sys/", "auth/token/"]);
        let path_of = |p: &str| router.route(p).map(|r| r.entry.path.clone());
        assert_eq!(path_of("secret/foo").as_deref(), Some("secret/"));
        assert_eq!(path_of("secret/team/foo").as_deref(), Some("secret/team/"));
        assert_eq!(path_of("secret/teams").as_deref(), Some("secret/"));
        assert_eq!(path_of("secret").as_deref(), Some("secret/"));
        assert_eq!(
            path_of("auth/token/lookup-self").as_deref(),
            Some("auth/token/")
        );
        assert_eq!(path_of("secrets/foo"), None);
        assert_eq!(path_of("auth/approle/login"), None);
    }
}
