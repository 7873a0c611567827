//! The mount table and the router: which engine serves which path prefix, and how the table
//! changes (enable, disable, tune, move).

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, RwLock},
};

use mayfly_barrier::Barrier;
use mayfly_sdk::{
    Error, LogicalBackend, MountContext, MountTtls, Result, Storage, StorageExt, SystemView,
};
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

/// Per-mount settings; a TTL of 0 means "use the system value".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MountConfig {
    pub default_lease_ttl: u64,
    pub max_lease_ttl: u64,
    #[serde(default)]
    pub force_no_cache: bool,
    #[serde(default)]
    pub audit_non_hmac_request_keys: Vec<String>,
    #[serde(default)]
    pub audit_non_hmac_response_keys: Vec<String>,
    #[serde(default)]
    pub listing_visibility: String,
    #[serde(default)]
    pub passthrough_request_headers: Vec<String>,
    #[serde(default)]
    pub allowed_response_headers: Vec<String>,
    #[serde(default)]
    pub token_type: String,
    /// Revocation attempts before a lease of this mount is irrevocable (0 = 6).
    #[serde(default)]
    pub lease_revoke_max_attempts: u32,
    /// Seconds before the second revocation attempt, doubling after (0 = 10).
    #[serde(default)]
    pub lease_revoke_initial_backoff: u64,
    /// Revocations of this mount's leases running at once (0 = 32).
    #[serde(default)]
    pub lease_revoke_concurrency: u32,
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

    /// The barrier prefix holding this mount's data; keyed by UUID so a move copies nothing.
    pub fn storage_prefix(&self) -> String {
        match self.class {
            MountClass::Secret => format!("logical/{}/", self.uuid),
            MountClass::Auth => format!("auth/{}/", self.uuid),
        }
    }

    /// The path as `sys/mounts` or `sys/auth` reports it (auth mounts without `auth/`).
    pub fn table_path(&self) -> &str {
        match self.class {
            MountClass::Secret => &self.path,
            MountClass::Auth => self.path.strip_prefix("auth/").unwrap_or(&self.path),
        }
    }

    /// Mounts that exist on every server and can be neither disabled nor moved.
    pub fn is_builtin(&self) -> bool {
        matches!(
            self.kind.as_str(),
            "system" | "token" | "cubbyhole" | "identity"
        )
    }

    /// Effective TTL bounds: zero settings replaced by the system's, default capped by max.
    pub fn ttls(&self, system: MountTtls) -> MountTtls {
        let max = match self.config.max_lease_ttl {
            0 => system.max_lease_ttl,
            seconds => std::time::Duration::from_secs(seconds),
        };
        let default = match self.config.default_lease_ttl {
            0 => system.default_lease_ttl,
            seconds => std::time::Duration::from_secs(seconds),
        };
        MountTtls {
            default_lease_ttl: default.min(max),
            max_lease_ttl: max,
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

/// Longest-prefix routing over the live mounts. Immutable: a change builds a new router.
#[derive(Default, Clone)]
pub struct Router {
    routes: BTreeMap<String, Arc<RouteEntry>>,
}

impl Router {
    /// The mount serving `path`, by longest matching prefix. A path equal to a mount without
    /// its trailing slash (`cubbyhole`) routes to that mount too, as Vault does.
    pub fn route(&self, path: &str) -> Option<&Arc<RouteEntry>> {
        let with_slash;
        let lookup = if path.ends_with('/') {
            path
        } else {
            with_slash = [path, "/"].concat();
            &with_slash
        };
        self.routes
            .range::<str, _>((
                std::ops::Bound::Unbounded,
                std::ops::Bound::Included(lookup),
            ))
            .rev()
            .find(|(prefix, _)| lookup.starts_with(prefix.as_str()))
            .map(|(_, route)| route)
    }

    pub fn get(&self, mount_path: &str) -> Option<&Arc<RouteEntry>> {
        self.routes.get(mount_path)
    }

    pub fn entries(&self) -> impl Iterator<Item = &MountEntry> {
        self.routes.values().map(|route| &route.entry)
    }

    /// The mount path that conflicts with `path` (equal, parent or child), if any.
    pub fn conflict(&self, path: &str) -> Option<&str> {
        self.routes
            .keys()
            .find(|existing| existing.starts_with(path) || path.starts_with(existing.as_str()))
            .map(String::as_str)
    }

    fn insert(&mut self, route: RouteEntry) {
        self.routes
            .insert(route.entry.path.clone(), Arc::new(route));
    }

    fn remove(&mut self, path: &str) -> Option<Arc<RouteEntry>> {
        self.routes.remove(path)
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

/// Writes the initial mount table (called once, at init) and returns it.
pub(crate) async fn persist_default_mounts(barrier: &Arc<Barrier>) -> Result<Vec<MountEntry>> {
    let mounts = default_mounts();
    save_table(barrier, mounts.clone()).await?;
    Ok(mounts)
}

async fn save_table(barrier: &Arc<Barrier>, entries: Vec<MountEntry>) -> Result<()> {
    let table = MountTable {
        version: 1,
        entries,
    };
    BarrierView::new(barrier.clone(), "")
        .put_json(MOUNT_TABLE_KEY, &table)
        .await
}

/// Builds live mounts: the core's own backends for `system` and `token`, the registry's
/// factories for everything else.
pub(crate) struct MountBuilder {
    pub barrier: Arc<Barrier>,
    pub registry: Registry,
    pub system: Arc<dyn LogicalBackend>,
    pub token: Arc<dyn LogicalBackend>,
    /// The services handed to each mount when it goes live.
    pub system_view: Arc<dyn SystemView>,
}

impl MountBuilder {
    fn build(&self, entry: MountEntry) -> Result<RouteEntry> {
        let storage = Arc::new(BarrierView::new(
            self.barrier.clone(),
            entry.storage_prefix(),
        ));
        let backend = match entry.kind.as_str() {
            "system" => self.system.clone(),
            "token" => self.token.clone(),
            kind => {
                let factory = self.registry.engine(kind).ok_or_else(|| {
                    Error::invalid(format!("plugin not found in the catalog: {kind}"))
                })?;
                factory(BackendContext {
                    mount_path: entry.path.clone(),
                    options: entry.options.clone(),
                })?
            }
        };
        Ok(RouteEntry {
            entry,
            backend,
            storage,
        })
    }

    /// Tells a mount's backend it is live. A failure is logged: the mount still serves what
    /// it can, as Vault keeps a mount whose initialization failed.
    async fn activate(&self, route: &RouteEntry) {
        let ctx = MountContext {
            mount_point: route.entry.path.clone(),
            storage: route.storage.clone(),
            system: self.system_view.clone(),
        };
        if let Err(err) = route.backend.initialize(ctx).await {
            tracing::warn!(mount = %route.entry.path, error = %err, "Mount initialization failed.");
        }
    }

    /// Loads the mount table and instantiates each mount (on unseal).
    pub(crate) async fn load(&self) -> Result<Router> {
        let root = BarrierView::new(self.barrier.clone(), "");
        let table: MountTable = root.get_json(MOUNT_TABLE_KEY).await?.unwrap_or_default();
        let mut router = Router::default();
        for entry in table.entries {
            let path = entry.path.clone();
            let route = self
                .build(entry)
                .map_err(|err| Error::internal(format!("cannot set up mount {path:?}: {err}")))?;
            self.activate(&route).await;
            router.insert(route);
        }
        Ok(router)
    }
}

/// The live mount table: reads are lock-free snapshots; changes are serialised, persisted
/// first, and only then made visible, so a failed write leaves the old table in force.
pub struct Mounts {
    current: RwLock<Arc<Router>>,
    changes: tokio::sync::Mutex<()>,
    builder: MountBuilder,
    /// Mounts being disabled or moved: requests are refused while their leases are revoked.
    tainted: RwLock<HashSet<String>>,
}

impl Mounts {
    pub(crate) fn new(router: Router, builder: MountBuilder) -> Self {
        Mounts {
            current: RwLock::new(Arc::new(router)),
            changes: tokio::sync::Mutex::new(()),
            builder,
            tainted: RwLock::new(HashSet::new()),
        }
    }

    /// Refuses requests to a mount (while it is being disabled or moved).
    pub fn taint(&self, path: &str) {
        self.tainted
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(path.to_owned());
    }

    pub fn untaint(&self, path: &str) {
        self.tainted
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(path);
    }

    pub fn is_tainted(&self, path: &str) -> bool {
        self.tainted
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(path)
    }

    pub fn router(&self) -> Arc<Router> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn commit(&self, router: Router) -> Result<()> {
        save_table(&self.builder.barrier, router.entries().cloned().collect()).await?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(router);
        Ok(())
    }

    /// Enables a mount. `entry.path` must be normalised (`foo/`, `auth/foo/`).
    pub async fn enable(&self, entry: MountEntry) -> Result<()> {
        let _guard = self.changes.lock().await;
        let mut router = (*self.router()).clone();
        if let Some(existing) = router.conflict(&entry.path) {
            // Vault answers this with 400 (its error response outranks the 409 inside), and
            // clients that make enabling idempotent check for exactly that.
            return Err(Error::invalid(format!(
                "path is already in use at {existing}"
            )));
        }
        let live = self.builder.build(entry)?;
        router.insert(live.clone());
        if let Err(err) = self.commit(router).await {
            live.backend.cleanup().await;
            return Err(err);
        }
        self.builder.activate(&live).await;
        Ok(())
    }

    /// Tells every live backend the mount table is going away (on seal).
    pub(crate) async fn cleanup_all(&self) {
        for route in self.router().routes.values() {
            route.backend.cleanup().await;
        }
    }

    /// Disables a mount and deletes its data. Returns the removed entry, or `None`.
    pub async fn disable(&self, path: &str) -> Result<Option<MountEntry>> {
        let _guard = self.changes.lock().await;
        let mut router = (*self.router()).clone();
        match router.get(path) {
            None => return Ok(None),
            Some(route) if route.entry.is_builtin() => {
                return Err(Error::invalid(format!(
                    "cannot unmount {:?}",
                    route.entry.path
                )));
            }
            Some(_) => {}
        }
        let removed_route = router.remove(path);
        let removed = removed_route.as_ref().map(|route| route.entry.clone());
        self.commit(router).await?;
        if let Some(route) = &removed_route {
            route.backend.cleanup().await;
        }
        if let Some(entry) = &removed {
            // The table no longer points at the data, so a failure here only leaves garbage.
            let view = BarrierView::new(self.builder.barrier.clone(), entry.storage_prefix());
            if let Err(err) = delete_tree(&view, "").await {
                tracing::warn!(mount = %entry.path, error = %err, "Failed to delete a disabled mount's data.");
            }
        }
        Ok(removed)
    }

    /// Applies `change` to one mount's entry and rebuilds it.
    pub async fn update(
        &self,
        path: &str,
        change: impl FnOnce(&mut MountEntry) -> Result<()>,
    ) -> Result<MountEntry> {
        let _guard = self.changes.lock().await;
        let mut router = (*self.router()).clone();
        let route = router
            .get(path)
            .cloned()
            .ok_or_else(|| Error::invalid(format!("no mount at {path:?}")))?;
        let mut entry = route.entry.clone();
        change(&mut entry)?;
        let options_changed = entry.options != route.entry.options;
        let rebuilt = if options_changed {
            self.builder.build(entry.clone())?
        } else {
            RouteEntry {
                entry: entry.clone(),
                backend: route.backend.clone(),
                storage: route.storage.clone(),
            }
        };
        let live = rebuilt.clone();
        router.insert(rebuilt);
        self.commit(router).await?;
        if options_changed {
            route.backend.cleanup().await;
            self.builder.activate(&live).await;
        }
        Ok(entry)
    }

    /// Moves a mount to another path; its data stays where it is (keyed by UUID).
    pub async fn remount(&self, from: &str, to: &str) -> Result<()> {
        let _guard = self.changes.lock().await;
        let mut router = (*self.router()).clone();
        let route = router
            .get(from)
            .cloned()
            .ok_or_else(|| Error::invalid(format!("no mount at {from:?}")))?;
        if route.entry.is_builtin() {
            return Err(Error::invalid(format!("cannot remount {from:?}")));
        }
        let from_auth = from.starts_with("auth/");
        if from_auth != to.starts_with("auth/") {
            return Err(Error::invalid(
                "cannot move a mount between secrets engines and auth methods",
            ));
        }
        router.remove(from);
        if let Some(existing) = router.conflict(to) {
            // A 400, as for enabling.
            return Err(Error::invalid(format!(
                "path is already in use at {existing}"
            )));
        }
        let mut entry = route.entry.clone();
        entry.path = to.to_owned();
        router.insert(RouteEntry {
            entry,
            backend: route.backend.clone(),
            storage: route.storage.clone(),
        });
        self.commit(router).await
    }
}

/// Deletes every key under `prefix` in `view`, depth first.
pub(crate) async fn delete_tree(view: &BarrierView, prefix: &str) -> Result<()> {
    let mut pending = vec![prefix.to_owned()];
    while let Some(folder) = pending.pop() {
        let mut after = String::new();
        loop {
            let page = view.list_page(&folder, &after, 256).await?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            for child in page {
                let key = format!("{folder}{child}");
                if child.ends_with('/') {
                    pending.push(key);
                } else {
                    view.delete(&key).await?;
                }
            }
            after = last;
        }
    }
    Ok(())
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

    #[test]
    fn conflicts_are_parents_children_and_equals() {
        let router = router(&["secret/", "team/a/"]);
        assert_eq!(router.conflict("secret/"), Some("secret/"));
        assert_eq!(router.conflict("secret/sub/"), Some("secret/"));
        assert_eq!(router.conflict("team/"), Some("team/a/"));
        assert_eq!(router.conflict("team/b/"), None);
    }

    #[test]
    fn ttls_fall_back_to_the_system_and_cap_default_by_max() {
        let system = MountTtls {
            default_lease_ttl: std::time::Duration::from_secs(100),
            max_lease_ttl: std::time::Duration::from_secs(1000),
        };
        let mut entry = MountEntry::new(MountClass::Secret, "x/", "kv", "");
        assert_eq!(entry.ttls(system), system);
        entry.config.max_lease_ttl = 50;
        assert_eq!(entry.ttls(system).default_lease_ttl.as_secs(), 50);
    }
}
