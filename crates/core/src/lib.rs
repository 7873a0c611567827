//! The core: seal state, mounts and routing, tokens, and the request pipeline. No HTTP.
//!
//! A request enters through [`Core::handle_request`]: the few `sys/` routes that work while
//! sealed are served first; everything else needs an unsealed barrier and a valid token, then
//! goes to the mount with the longest matching prefix.

pub mod audit;
mod auth;
pub mod clock;
pub mod cubbyhole;
pub mod expiration;
mod keyed_lock;
pub mod mounts;
pub mod policy;
pub mod policy_store;
pub mod random;
pub mod registry;
pub mod sys;
mod system_view;
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
    audit::{AuditBroker, RequestContext},
    clock::Clock,
    expiration::{ADMISSION, Expiration, MountRef},
    mounts::{MountBuilder, MountClass, Mounts},
    policy::{Acl, AclRequest},
    policy_store::PolicyStore,
    registry::Registry,
    token::{NewToken, TokenEntry, TokenStore, UseOutcome},
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
    pub expiration: Expiration,
    pub policies: PolicyStore,
    pub cluster: ClusterInfo,
    pub audit: AuditBroker,
}

/// The outcome of `sys/init`.
pub struct InitOutput {
    pub keys: Vec<UnsealKey>,
    pub root_token: String,
}

pub struct Core {
    me: Weak<Core>,
    config: CoreConfig,
    clock: Clock,
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
        Core::with_clock(physical, config, Clock::system())
    }

    /// A core whose expiry runs on `clock` (tests use tokio's paused clock).
    pub fn with_clock(physical: Arc<dyn Backend>, config: CoreConfig, clock: Clock) -> Arc<Core> {
        let storage_type = physical.kind();
        let barrier = Arc::new(Barrier::new(physical.clone()));
        let seal = ShamirSeal::new(physical, barrier.clone());
        Arc::new_cyclic(|me| Core {
            me: me.clone(),
            config,
            clock,
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

    pub fn clock(&self) -> &Clock {
        &self.clock
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
        let default_mounts = mounts::persist_default_mounts(&self.barrier).await?;
        PolicyStore::open(BarrierView::new(self.barrier.clone(), "sys/policy/")).await?;
        let tokens = TokenStore::open(
            BarrierView::new(self.barrier.clone(), "sys/token/"),
            self.clock.clone(),
        )
        .await?;
        let expiration = Expiration::open(self.barrier.clone(), self.clock.clone()).await?;
        let token_mount = default_mounts
            .iter()
            .find(|mount| mount.kind == "token")
            .map(MountRef::from)
            .unwrap_or_default();
        let (token, _) = expiration::issue_token_with(
            &tokens,
            &expiration,
            &token_mount,
            NewToken::root(root_token_id),
        )
        .await?;
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
            tokens: TokenStore::open(
                BarrierView::new(self.barrier.clone(), "sys/token/"),
                self.clock.clone(),
            )
            .await?,
            expiration: Expiration::open(self.barrier.clone(), self.clock.clone()).await?,
            policies: PolicyStore::open(BarrierView::new(self.barrier.clone(), "sys/policy/"))
                .await?,
            cluster,
            audit: AuditBroker::load(self.barrier.clone()).await?,
        }))
    }

    /// Starts the work that runs while unsealed: the lease expiry worker, and revoke-prefix
    /// operations a previous run left half-done. Both end at the next seal.
    fn start_background(&self) {
        let generation = self.unseal_generation.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::spawn(expiration::run_expiry(self.me.clone(), generation));
        let core = self.me.clone();
        tokio::spawn(async move {
            {
                let Some(core) = core.upgrade() else { return };
                if let Err(err) = core.resume_prefix_revocations().await {
                    tracing::error!(error = %err, "Resuming interrupted revoke-prefix operations failed.");
                }
            }
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            loop {
                ticker.tick().await;
                let Some(core) = core.upgrade() else { break };
                if core.is_sealed() || core.unseal_generation.load(Ordering::SeqCst) != generation {
                    break;
                }
                if let Some(unsealed) = core.current() {
                    unsealed.audit.tick().await;
                }
            }
        });
    }

    /// Whether background work started for unseal `generation` should go on.
    pub(crate) fn is_current_generation(&self, generation: u64) -> bool {
        !self.is_sealed() && self.unseal_generation.load(Ordering::SeqCst) == generation
    }

    /// The compiled ACL of the calling token.
    pub async fn caller_acl(&self, req: &Request) -> Result<Arc<Acl>> {
        let entry = self.caller(req).await?;
        self.unsealed()?.policies.acl(&entry.policies).await
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
        Arc::new(system_view::CoreSystemView {
            core: self.me.clone(),
        })
    }

    /// Seals: drops every unsealed structure and forgets the keys.
    pub async fn seal(&self) {
        let _guard = self.transition.lock().await;
        if let Some(unsealed) = self.current() {
            unsealed.mounts.cleanup_all().await;
        }
        let previous = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(previous) = previous {
            previous.audit.flush().await;
        }
        *self.generate_root.lock().await = None;
        self.seal.seal();
        tracing::info!("Mayfly is sealed.");
    }

    /// Asks every audit device to reopen its file or connection (SIGHUP, for log rotation).
    pub async fn reload_audit(&self) {
        if let Some(unsealed) = self.current() {
            unsealed.audit.reopen().await;
        }
    }

    /// Signs and saves the audit chains before the process exits.
    pub async fn shutdown(&self) {
        if let Some(unsealed) = self.current() {
            unsealed.audit.flush().await;
        }
    }

    /// Runs one request through the pipeline: sealed-safe routes, authentication, ACL, the
    /// audit request entry, routing, token creation for logins, response wrapping, and the
    /// audit response entry.
    ///
    /// With audit devices enabled, a request that no device records is refused before
    /// anything happens, and a response that no device records is replaced by an error after
    /// revoking the token it issued, if any.
    pub async fn handle_request(&self, mut req: Request) -> Result<Option<Response>> {
        let me = self.me.upgrade().ok_or(Error::Sealed)?;
        let sealed_safe = req
            .path
            .strip_prefix("sys/")
            .is_some_and(sys::is_unauthenticated);
        let Some(unsealed) = self.current() else {
            if sealed_safe {
                req.mount_point = "sys/".to_owned();
                return self.sys_paths.handle(me, req).await;
            }
            return Err(Error::Sealed);
        };
        let devices = unsealed
            .audit
            .active()
            .filter(|_| !sys::is_never_audited(&req.path));
        let mut caller = Caller::default();
        let checked = self
            .authorize(&unsealed, &mut req, sealed_safe, &mut caller)
            .await;
        let ticket = match &devices {
            Some(devices) => {
                let ctx = RequestContext {
                    req: &req,
                    token: caller.token.as_deref(),
                    mount: caller.route.as_ref().map(|route| &route.entry),
                    allowed: caller.allowed,
                };
                Some(
                    audit::log_request(
                        devices,
                        &ctx,
                        caller.route.as_ref(),
                        checked.as_ref().err(),
                    )
                    .await?,
                )
            }
            None => None,
        };
        let result = match checked {
            Ok(()) => self.execute(me, &unsealed, req, caller, sealed_safe).await,
            Err(err) => Err(err),
        };
        let Some(ticket) = ticket else {
            return result;
        };
        let (response, error) = match &result {
            Ok(response) => (response.as_ref(), None),
            Err(err) => (None, Some(err)),
        };
        if let Err(err) = audit::log_response(ticket, response, error).await {
            if let Ok(Some(response)) = &result {
                self.revoke_issued(response).await;
            }
            return Err(err.into());
        }
        result
    }

    /// Routes the request and checks its token and policies. Changes nothing; what it learns
    /// goes into `caller`, which the audit entry needs even when a check fails.
    async fn authorize(
        &self,
        unsealed: &Unsealed,
        req: &mut Request,
        sealed_safe: bool,
        caller: &mut Caller,
    ) -> Result<()> {
        let router = unsealed.mounts.router();
        let route = router.route(&req.path).cloned();
        if let Some(route) = &route {
            if unsealed.mounts.is_tainted(&route.entry.path) {
                return Err(Error::UnsupportedPath);
            }
            req.mount_point = route.entry.path.clone();
            req.mount_type = route.entry.kind.clone();
            req.mount_ttls = route.entry.ttls(self.system_ttls());
            req.storage = Some(route.storage.clone());
            req.system = Some(self.system_view());
        }
        caller.route = route.clone();
        if sealed_safe {
            return Ok(());
        }
        let public = route.as_ref().is_some_and(|route| {
            let relative = req.relative_path();
            route
                .backend
                .unauthenticated_paths()
                .iter()
                .any(|pattern| path_matches(pattern, relative))
        });
        if public {
            return Ok(());
        }
        let token = req.client_token.clone().ok_or(Error::PermissionDenied)?;
        let entry = unsealed
            .tokens
            .lookup_shared(&token.0)
            .await?
            .ok_or(Error::InvalidToken)?;
        let entry: &TokenEntry = caller.token.insert(entry);
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
            && route.backend.exists(req).await? == Some(false)
        {
            req.operation = Operation::Create;
        }
        // The UI mount listing checks capabilities under the target mount itself.
        if req.path.starts_with("sys/internal/ui/mounts") {
            return Ok(());
        }
        let acl = unsealed.policies.acl(&entry.policies).await?;
        let decision = acl.allows(&AclRequest {
            path: &req.path,
            operation: req.operation,
            data: &req.data,
            wrap_ttl: req.wrap_ttl,
        });
        // `allows` already demands `sudo` on root-protected paths.
        let allowed = decision.allowed;
        caller.allowed = Some(allowed);
        if !allowed {
            return Err(Error::PermissionDenied);
        }
        req.root_privileges = decision.root_privs;
        Ok(())
    }

    /// Serves an authorized request: spends a use of a limited token, dispatches, and revokes
    /// the token if that was its last use.
    async fn execute(
        &self,
        me: Arc<Core>,
        unsealed: &Unsealed,
        req: Request,
        caller: Caller,
        sealed_safe: bool,
    ) -> Result<Option<Response>> {
        if sealed_safe {
            return self.sys_paths.handle(me, req).await;
        }
        let mut spent_token = None;
        if let Some(entry) = &caller.token
            && entry.num_uses != 0
        {
            match unsealed.tokens.spend_use(&entry.id_hash).await? {
                UseOutcome::Invalid => return Err(Error::InvalidToken),
                UseOutcome::LastUse => spent_token = Some(entry.id_hash.clone()),
                UseOutcome::Counted | UseOutcome::Unlimited => {}
            }
        }
        let result = self.dispatch(caller.route, req).await;
        if let Some(hash) = spent_token
            && let Err(err) = self.revoke_token_tree(&hash).await
        {
            tracing::warn!(error = %err, "Failed to revoke a used-up token.");
        }
        result
    }

    /// Takes back what a response handed out, when the response could not be audited: a
    /// dynamic secret's lease, a login's or token creation's token, a wrapping token and the
    /// token wrapped in it. Other effects of the request (a secret written, a token revoked)
    /// stay done.
    async fn revoke_issued(&self, response: &Response) {
        let Some(unsealed) = self.current() else {
            return;
        };
        if let Some(secret) = response.secret.as_ref().filter(|s| !s.lease_id.is_empty())
            && let Err(err) = self
                .revoke_lease(&secret.lease_id, expiration::Mode::Worker)
                .await
        {
            tracing::error!(error = %err, "Failed to revoke a lease whose issue could not be audited.");
        }
        let mut hashes = Vec::new();
        if let Some(auth) = response
            .auth
            .as_ref()
            .filter(|a| !a.client_token.is_empty())
        {
            hashes.push(unsealed.tokens.lookup(&auth.client_token).await);
        }
        if let Some(wrap) = &response.wrap_info {
            hashes.push(unsealed.tokens.lookup(&wrap.token).await);
            if !wrap.wrapped_accessor.is_empty() {
                hashes.push(
                    unsealed
                        .tokens
                        .lookup_accessor(&wrap.wrapped_accessor)
                        .await,
                );
            }
        }
        for found in hashes {
            let outcome = match found {
                Ok(Some(entry)) => self.revoke_token_tree(&entry.id_hash).await,
                Ok(None) => Ok(()),
                Err(err) => Err(err),
            };
            if let Err(err) = outcome {
                tracing::error!(error = %err, "Failed to revoke a token whose issue could not be audited.");
            }
        }
    }

    async fn dispatch(
        &self,
        route: Option<Arc<mounts::RouteEntry>>,
        req: Request,
    ) -> Result<Option<Response>> {
        let route = route.ok_or(Error::UnsupportedPath)?;
        // A full lease-count quota refuses the request before the engine creates anything.
        let quotas = &self.unsealed()?.expiration.quotas;
        let admission = if !quotas.is_empty() && may_create_lease(&route, &req) {
            quotas.admit(&req.path)?
        } else {
            None
        };
        ADMISSION
            .scope(admission, self.dispatch_admitted(route, req))
            .await
    }

    async fn dispatch_admitted(
        &self,
        route: Arc<mounts::RouteEntry>,
        req: Request,
    ) -> Result<Option<Response>> {
        let operation = req.operation;
        let wrap_ttl = req.wrap_ttl;
        let path = req.path.clone();
        let token_hash = req.client_token_hash.clone();
        let mut response = route.backend.handle(req).await?;
        if let Some(response) = response.as_mut()
            && let Some(secret) = response.secret.as_mut()
            && !secret.secret_type.is_empty()
            && !secret.lease_id.is_empty()
        {
            // Registered by the engine itself (`SystemView::register_lease`).
            secret.internal_data.clear();
        } else if let Some(response) = response.as_mut()
            && let Some(secret) = response.secret.as_mut()
            && !secret.secret_type.is_empty()
        {
            match self
                .register_secret(&route, &path, token_hash.as_deref(), secret)
                .await
            {
                Ok(warnings) => {
                    response.warnings.extend(warnings);
                    // The engine's data for revocation stays in the lease, never in answers.
                    secret.internal_data.clear();
                }
                Err(err) => {
                    // No credential may outlive a lease that does not exist.
                    self.revoke_unregistered(&route, &path, secret).await;
                    return Err(err);
                }
            }
        }
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

/// Who is calling and where the request goes, as far as the checks got.
#[derive(Default)]
struct Caller {
    route: Option<Arc<mounts::RouteEntry>>,
    /// Shared with the token store's cache: a token may hold many policies, and copying its
    /// entry on every request showed in profiles.
    token: Option<Arc<TokenEntry>>,
    allowed: Option<bool>,
}

/// Whether a request may create a lease, so a full lease-count quota must refuse it first:
/// reads and writes of secrets engines, token creation and logins. Never `sys/`, so
/// revocation and renewal always get through.
fn may_create_lease(route: &mounts::RouteEntry, req: &Request) -> bool {
    if !matches!(
        req.operation,
        Operation::Read | Operation::Create | Operation::Update
    ) {
        return false;
    }
    match route.entry.class {
        MountClass::Secret => route.entry.kind != "system",
        MountClass::Auth if route.entry.kind == "token" => {
            req.relative_path().starts_with("create")
        }
        MountClass::Auth => {
            let relative = req.relative_path();
            route
                .backend
                .unauthenticated_paths()
                .iter()
                .any(|pattern| path_matches(pattern, relative))
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
