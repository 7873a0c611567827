//! The core: seal state, mounts and routing, tokens, and the request pipeline. No HTTP.
//!
//! A request enters through [`Core::handle_request`]: the few `sys/` routes that work while
//! sealed are served first; everything else needs an unsealed barrier and a valid token, then
//! goes to the mount with the longest matching prefix.

mod auth;
pub mod cubbyhole;
pub mod mounts;
pub mod policy;
pub mod policy_store;
pub mod random;
pub mod registry;
pub mod sys;
pub mod token;
pub mod view;
mod wrapping;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use mayfly_barrier::{Barrier, ShamirSeal, UnsealKey};
use mayfly_sdk::{
    Error, LogicalBackend, Operation, Request, Response, Result, StorageExt,
    framework::FrameworkBackend,
};
use mayfly_storage::Backend;
use serde::{Deserialize, Serialize};

use crate::{
    mounts::{MountBuilder, MountClass, Mounts},
    policy::{Acl, AclRequest, is_root_protected},
    policy_store::PolicyStore,
    registry::Registry,
    token::{TokenStore, UseOutcome},
    view::{BarrierView, barrier_error},
};

pub use crate::sys::generate_root::GenerateRootState;

/// Settings the core runs with; built by the binary from the server config.
#[derive(Clone)]
pub struct CoreConfig {
    pub default_lease_ttl: Duration,
    pub max_lease_ttl: Duration,
    pub cluster_name: Option<String>,
    /// The version reported by `sys/health` and `sys/seal-status`.
    pub version: String,
    pub registry: Registry,
}

/// Identity of the cluster, created at init and readable once unsealed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub name: String,
    pub id: String,
}

const CLUSTER_INFO_KEY: &str = "core/cluster";

/// What exists only while unsealed.
pub struct Unsealed {
    pub mounts: Mounts,
    pub tokens: TokenStore,
    pub policies: PolicyStore,
    pub cluster: ClusterInfo,
}

/// The outcome of `sys/init`.
pub struct InitOutput {
    pub keys: Vec<UnsealKey>,
    pub root_token: String,
}

pub struct Core {
    me: Weak<Core>,
    config: CoreConfig,
    storage_type: &'static str,
    barrier: Arc<Barrier>,
    seal: ShamirSeal,
    state: RwLock<Option<Arc<Unsealed>>>,
    /// Serialises init, unseal and seal so they never interleave.
    transition: tokio::sync::Mutex<()>,
    generate_root: tokio::sync::Mutex<Option<GenerateRootState>>,
    sys_paths: Arc<FrameworkBackend<Core>>,
    token_paths: Arc<FrameworkBackend<Core>>,
    /// Bumped on every unseal, so background loops of an earlier unseal stop.
    unseal_generation: AtomicU64,
    /// Finished mount moves, for `sys/remount/status`.
    migrations: Mutex<HashMap<String, (String, String)>>,
}

impl Core {
    pub fn new(physical: Arc<dyn Backend>, config: CoreConfig) -> Arc<Core> {
        let storage_type = physical.kind();
        let barrier = Arc::new(Barrier::new(physical.clone()));
        let seal = ShamirSeal::new(physical, barrier.clone());
        Arc::new_cyclic(|me| Core {
            me: me.clone(),
            config,
            storage_type,
            barrier,
            seal,
            state: RwLock::new(None),
            transition: tokio::sync::Mutex::new(()),
            generate_root: tokio::sync::Mutex::new(None),
            sys_paths: Arc::new(sys::backend()),
            token_paths: Arc::new(token::backend()),
            unseal_generation: AtomicU64::new(0),
            migrations: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    pub fn storage_type(&self) -> &'static str {
        self.storage_type
    }

    pub fn is_sealed(&self) -> bool {
        self.current().is_none()
    }

    pub async fn is_initialized(&self) -> Result<bool> {
        Ok(self.seal.config().await.map_err(barrier_error)?.is_some())
    }

    fn current(&self) -> Option<Arc<Unsealed>> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The unsealed state, or `Error::Sealed`.
    pub fn unsealed(&self) -> Result<Arc<Unsealed>> {
        self.current().ok_or(Error::Sealed)
    }

    pub(crate) fn seal_handle(&self) -> &ShamirSeal {
        &self.seal
    }

    pub(crate) fn barrier(&self) -> &Arc<Barrier> {
        &self.barrier
    }

    /// Initializes a new server: unseal keys, keyring, default mounts and a root token.
    /// The server stays sealed afterwards, as Vault's does.
    pub async fn initialize(
        &self,
        shares: u8,
        threshold: u8,
        root_token_id: Option<String>,
    ) -> Result<InitOutput> {
        let _guard = self.transition.lock().await;
        let init = self
            .seal
            .initialize(shares, threshold)
            .await
            .map_err(|err| match err {
                mayfly_barrier::Error::AlreadyInitialized => {
                    Error::invalid("Vault is already initialized")
                }
                mayfly_barrier::Error::InvalidSealConfig(message) => Error::invalid(message),
                other => barrier_error(other),
            })?;
        // Setting up needs the barrier open; the keys just made open it, then it is closed again.
        for key in init.keys.iter().take(threshold as usize) {
            self.seal
                .submit_unseal_key(key)
                .await
                .map_err(barrier_error)?;
        }
        let result = self.first_setup(root_token_id).await;
        self.seal.seal();
        let root_token = result?;
        Ok(InitOutput {
            keys: init.keys,
            root_token,
        })
    }

    async fn first_setup(&self, root_token_id: Option<String>) -> Result<String> {
        let root = BarrierView::new(self.barrier.clone(), "");
        let cluster = ClusterInfo {
            name: self
                .config
                .cluster_name
                .clone()
                .unwrap_or_else(|| format!("mayfly-cluster-{}", &random::uuid()[..8])),
            id: random::uuid(),
        };
        root.put_json(CLUSTER_INFO_KEY, &cluster).await?;
        mounts::persist_default_mounts(&self.barrier).await?;
        PolicyStore::open(BarrierView::new(self.barrier.clone(), "sys/policy/")).await?;
        let tokens = TokenStore::open(BarrierView::new(self.barrier.clone(), "sys/token/")).await?;
        let (token, _) = tokens.create_root(root_token_id).await?;
        Ok(token)
    }

    /// Submits one unseal key; on the last one the barrier opens and the mounts load.
    pub async fn submit_unseal_key(&self, key: &UnsealKey) -> Result<mayfly_barrier::UnsealStatus> {
        let _guard = self.transition.lock().await;
        if self.current().is_some() {
            return Err(Error::invalid("vault is unsealed"));
        }
        let status = self
            .seal
            .submit_unseal_key(key)
            .await
            .map_err(|err| match err {
                mayfly_barrier::Error::InvalidUnsealKey => Error::invalid(
                    "unseal failed: the unseal keys given do not match; progress was reset",
                ),
                mayfly_barrier::Error::InvalidShare(message) => Error::invalid(message),
                mayfly_barrier::Error::NotInitialized => Error::invalid("Vault is not initialized"),
                other => barrier_error(other),
            })?;
        if !status.sealed {
            match self.post_unseal().await {
                Ok(unsealed) => {
                    *self
                        .state
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(unsealed);
                    self.start_background();
                    tracing::info!("Mayfly is unsealed.");
                }
                Err(err) => {
                    self.seal.seal();
                    tracing::error!(error = %err, "Post-unseal setup failed; sealing again.");
                    return Err(err);
                }
            }
        }
        Ok(status)
    }

    pub fn reset_unseal(&self) {
        self.seal.reset_unseal();
    }

    pub async fn unseal_status(&self) -> Result<mayfly_barrier::UnsealStatus> {
        self.seal.status().await.map_err(barrier_error)
    }

    async fn post_unseal(&self) -> Result<Arc<Unsealed>> {
        let root = BarrierView::new(self.barrier.clone(), "");
        let cluster: ClusterInfo = root
            .get_json(CLUSTER_INFO_KEY)
            .await?
            .ok_or_else(|| Error::internal("cluster info missing from storage"))?;
        let system: Arc<dyn LogicalBackend> = Arc::new(CoreBackend {
            core: self.me.clone(),
            paths: self.sys_paths.clone(),
        });
        let token: Arc<dyn LogicalBackend> = Arc::new(CoreBackend {
            core: self.me.clone(),
            paths: self.token_paths.clone(),
        });
        let builder = MountBuilder {
            barrier: self.barrier.clone(),
            registry: self.config.registry.clone(),
            system,
            token,
            system_view: self.system_view(),
        };
        let router = builder.load().await?;
        Ok(Arc::new(Unsealed {
            mounts: Mounts::new(router, builder),
            tokens: TokenStore::open(BarrierView::new(self.barrier.clone(), "sys/token/")).await?,
            policies: PolicyStore::open(BarrierView::new(self.barrier.clone(), "sys/policy/"))
                .await?,
            cluster,
        }))
    }

    /// Starts the loops that run while unsealed (token expiry). They end at the next seal.
    fn start_background(&self) {
        let generation = self.unseal_generation.fetch_add(1, Ordering::SeqCst) + 1;
        let core = self.me.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            loop {
                ticker.tick().await;
                let Some(core) = core.upgrade() else { break };
                if core.is_sealed() || core.unseal_generation.load(Ordering::SeqCst) != generation {
                    break;
                }
                if let Err(err) = core.expire_tokens().await {
                    tracing::warn!(error = %err, "Token expiry pass failed.");
                }
            }
        });
    }

    /// The compiled ACL of the calling token.
    pub async fn caller_acl(&self, req: &Request) -> Result<Arc<Acl>> {
        let entry = self.caller(req).await?;
        self.unsealed()?.policies.acl(&entry.policies).await
    }

    /// Revokes every token issued through an auth mount (when it is disabled).
    pub(crate) async fn revoke_tokens_of_mount(&self, mount_path: &str) -> Result<()> {
        let unsealed = self.unsealed()?;
        for hash in unsealed.tokens.hashes_with_path_prefix(mount_path).await? {
            self.revoke_token_tree(&hash).await?;
        }
        Ok(())
    }

    pub(crate) fn record_migration(&self, id: &str, from: &str, to: &str) {
        self.migrations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.to_owned(), (from.to_owned(), to.to_owned()));
    }

    pub(crate) fn migration(&self, id: &str) -> Option<(String, String)> {
        self.migrations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// The services engines may call (password generation…).
    pub(crate) fn system_view(&self) -> Arc<dyn mayfly_sdk::SystemView> {
        Arc::new(sys::password_policies::CoreSystemView {
            core: self.me.clone(),
        })
    }

    /// Seals: drops every unsealed structure and forgets the keys.
    pub async fn seal(&self) {
        let _guard = self.transition.lock().await;
        if let Some(unsealed) = self.current() {
            unsealed.mounts.cleanup_all().await;
        }
        *self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        *self.generate_root.lock().await = None;
        self.seal.seal();
        tracing::info!("Mayfly is sealed.");
    }

    /// Runs one request through the pipeline: sealed-safe routes, authentication, ACL,
    /// routing, token creation for logins, response wrapping.
    pub async fn handle_request(&self, mut req: Request) -> Result<Option<Response>> {
        let me = self.me.upgrade().ok_or(Error::Sealed)?;
        if let Some(relative) = req.path.strip_prefix("sys/")
            && sys::is_unauthenticated(relative)
        {
            req.mount_point = "sys/".to_owned();
            return self.sys_paths.handle(me, req).await;
        }
        let unsealed = self.unsealed()?;
        let router = unsealed.mounts.router();
        let route = router.route(&req.path).cloned();
        if let Some(route) = &route {
            req.mount_point = route.entry.path.clone();
            req.mount_type = route.entry.kind.clone();
            req.mount_ttls = route.entry.ttls(self.system_ttls());
            req.storage = Some(route.storage.clone());
            req.system = Some(self.system_view());
        }
        let public = route.as_ref().is_some_and(|route| {
            let relative = req.relative_path();
            route
                .backend
                .unauthenticated_paths()
                .iter()
                .any(|pattern| path_matches(pattern, relative))
        });

        let mut spent_token = None;
        if !public {
            let token = req.client_token.clone().ok_or(Error::PermissionDenied)?;
            let entry = unsealed
                .tokens
                .lookup(&token.0)
                .await?
                .ok_or(Error::InvalidToken)?;
            if !entry.bound_cidrs.is_empty()
                && !mayfly_sdk::cidr::remote_addr_allowed(
                    req.remote_addr.as_deref(),
                    &entry.bound_cidrs,
                )
            {
                return Err(Error::PermissionDenied);
            }
            req.client_token_hash = Some(entry.id_hash.clone());
            req.client_token_accessor = Some(entry.accessor.clone());
            req.display_name = entry.display_name.clone();
            if req.operation == Operation::Update
                && let Some(route) = &route
                && route.backend.exists(&req).await? == Some(false)
            {
                req.operation = Operation::Create;
            }
            // The UI mount listing checks capabilities under the target mount itself.
            if !req.path.starts_with("sys/internal/ui/mounts") {
                let acl = unsealed.policies.acl(&entry.policies).await?;
                let decision = acl.allows(&AclRequest {
                    path: &req.path,
                    operation: req.operation,
                    data: &req.data,
                    wrap_ttl: req.wrap_ttl,
                });
                if !decision.allowed {
                    return Err(Error::PermissionDenied);
                }
                if is_root_protected(&req.path) && !decision.root_privs {
                    return Err(Error::PermissionDenied);
                }
                req.root_privileges = decision.root_privs;
            }
            if entry.num_uses != 0 {
                match unsealed.tokens.spend_use(&entry.id_hash).await? {
                    UseOutcome::Invalid => return Err(Error::InvalidToken),
                    UseOutcome::LastUse => spent_token = Some(entry.id_hash.clone()),
                    UseOutcome::Counted | UseOutcome::Unlimited => {}
                }
            }
        }

        let result = self.dispatch(route, req).await;
        if let Some(hash) = spent_token
            && let Err(err) = self.revoke_token_tree(&hash).await
        {
            tracing::warn!(error = %err, "Failed to revoke a used-up token.");
        }
        result
    }

    async fn dispatch(
        &self,
        route: Option<Arc<mounts::RouteEntry>>,
        req: Request,
    ) -> Result<Option<Response>> {
        let route = route.ok_or(Error::UnsupportedPath)?;
        let operation = req.operation;
        let wrap_ttl = req.wrap_ttl;
        let path = req.path.clone();
        let response = route.backend.handle(req).await?;
        let mut response = match (operation, response) {
            (Operation::Read, None) => return Err(Error::NotFound),
            (Operation::List, None) => return Err(Error::NotFound),
            (Operation::List, Some(response)) if is_empty_list(&response) => {
                return Err(Error::NotFound);
            }
            (_, response) => response,
        };
        if route.entry.class == MountClass::Auth
            && route.entry.kind != "token"
            && let Some(response) = response.as_mut()
            && let Some(auth) = response.auth.as_mut()
        {
            let warnings = self.complete_login(&route.entry.path, &path, auth).await?;
            response.warnings.extend(warnings);
        }
        match wrap_ttl {
            Some(ttl) if operation != Operation::Help => {
                let wrapped = self.wrap_response(response.as_ref(), ttl, &path).await?;
                Ok(Some(wrapped))
            }
            _ => Ok(response),
        }
    }
}

fn is_empty_list(response: &Response) -> bool {
    response.warnings.is_empty()
        && response.data.as_ref().is_none_or(|data| {
            data.len() <= 1
                && data
                    .get("keys")
                    .is_none_or(|keys| keys.as_array().is_none_or(Vec::is_empty))
        })
}

/// Matches a Vault unauthenticated-path pattern: exact, or a prefix ending in `*`.
fn path_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

/// A core-internal backend (`sys/`, `auth/token/`) mounted in the router. It holds the core
/// weakly: the core owns the router, so a strong reference would never be freed.
struct CoreBackend {
    core: Weak<Core>,
    paths: Arc<FrameworkBackend<Core>>,
}

#[async_trait]
impl LogicalBackend for CoreBackend {
    async fn handle(&self, req: Request) -> Result<Option<Response>> {
        let core = self.core.upgrade().ok_or(Error::Sealed)?;
        self.paths.handle(core, req).await
    }
}

#[cfg(test)]
mod tests;
