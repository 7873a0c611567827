//! The database secrets engine: database users on demand, with leases, for PostgreSQL,
//! MySQL/MariaDB and Redis.
//!
//! Same paths, fields and responses as Vault's `database` engine: `config/:name` (connections,
//! whose passwords are never returned), `reset/:name`, `roles/:name`, `creds/:name` (a new
//! user per read, with a `creds` lease that renews and revokes it) and `rotate-root/:name`.
//!
//! Beyond Vault: every user is recorded (an *intent*) before it is created, so a crash
//! mid-request never leaves a user that nothing will drop; a reconciliation pass at startup
//! and periodically drops such users and any user whose expiry passed unrevoked. Root
//! rotation writes the new password ahead, so it can never be lost. PostgreSQL's "tuple
//! concurrently updated" on concurrent grants is retried instead of failing the request.

mod batch;
mod config;
mod creds;
mod intent;
pub mod plugin;
mod pool;
mod reservation;
mod role;
mod rotate_root;
mod schedule;
mod state;
pub mod statements;
mod static_role;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;
mod tls;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use mayfly_sdk::{
    LogicalBackend, MountContext, Request, Response, Result, SecretLease, StorageChange,
    framework::FrameworkBackend,
};
use serde_json::{Map, Value};

pub use crate::intent::ReconcileReport;
use crate::state::Database;

/// Timings of the background work.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// How often intents are reconciled.
    pub reconcile_interval: Duration,
    /// How long after its expiry an unrevoked credential is left to the lease manager.
    pub expiry_grace: Duration,
    /// How often static roles are checked for rotation.
    pub rotation_tick: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            reconcile_interval: Duration::from_secs(30),
            expiry_grace: Duration::from_secs(30),
            rotation_tick: static_role::MIN_ROTATION_PERIOD,
        }
    }
}

/// Builds a database mount. Two mount options (a Mayfly extension) tune reconciliation:
/// `reconcile_interval` (default 30s) and `expiry_grace` (default 30s), as durations.
pub fn new_backend(options: &Map<String, Value>) -> Result<Arc<dyn LogicalBackend>> {
    let mut settings = Settings::default();
    for (name, target) in [
        ("reconcile_interval", &mut settings.reconcile_interval),
        ("expiry_grace", &mut settings.expiry_grace),
    ] {
        if let Some(value) = options.get(name) {
            *target = mayfly_sdk::duration::parse_duration_value(value)
                .map_err(|_| mayfly_sdk::Error::invalid(format!("invalid {name} option")))?;
        }
    }
    if settings.reconcile_interval.is_zero() {
        return Err(mayfly_sdk::Error::invalid(
            "reconcile_interval must be greater than zero",
        ));
    }
    Ok(Arc::new(DatabaseBackend::new(settings)))
}

/// A mounted database engine.
pub struct DatabaseBackend {
    state: Arc<Database>,
    framework: Arc<FrameworkBackend<Database>>,
}

impl DatabaseBackend {
    pub(crate) fn new(settings: Settings) -> Self {
        DatabaseBackend {
            state: Arc::new(Database::new(settings)),
            framework: Arc::new(paths()),
        }
    }

    /// Runs one reconciliation pass now (also done at startup and periodically).
    pub async fn reconcile(&self) -> Result<ReconcileReport> {
        let ctx = self
            .state
            .mount_context()
            .ok_or_else(|| mayfly_sdk::Error::internal("the mount is not initialized"))?;
        intent::reconcile(
            &self.state,
            ctx.storage.as_ref(),
            self.state.settings.expiry_grace,
        )
        .await
    }
}

fn paths() -> FrameworkBackend<Database> {
    let mut paths = Vec::new();
    paths.extend(config::paths());
    paths.extend(role::paths());
    paths.extend(creds::paths());
    paths.extend(rotate_root::paths());
    paths.extend(static_role::paths());
    FrameworkBackend::new(
        "The database backend supports using many different databases as secret backends, \
         including but not limited to: PostgreSQL, MySQL/MariaDB and Redis.",
        paths,
    )
    .with_secret(creds::secret_type())
}

/// Startup recovery, then periodic reconciliation and static-role rotation, until the mount
/// goes away.
async fn background(state: Arc<Database>, ctx: MountContext) {
    let storage = ctx.storage.clone();
    if let Err(err) = rotate_root::settle_all(&state, storage.as_ref()).await {
        tracing::warn!(mount = %ctx.mount_point, error = %err, "Settling root rotations failed.");
    }
    let tick = state
        .settings
        .rotation_tick
        .min(state.settings.reconcile_interval);
    let mut next_reconcile = tokio::time::Instant::now();
    loop {
        // A notification sent while this loop was busy is not queued; the flag is.
        if state.shut_down.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        if tokio::time::Instant::now() >= next_reconcile {
            next_reconcile = tokio::time::Instant::now() + state.settings.reconcile_interval;
            match intent::reconcile(&state, storage.as_ref(), state.settings.expiry_grace).await {
                Ok(report) if report != ReconcileReport::default() => {
                    tracing::info!(mount = %ctx.mount_point, ?report, "Reconciled database users.");
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(mount = %ctx.mount_point, error = %err, "Reconciliation failed.");
                }
            }
        }
        static_role::rotate_due(&state, storage.as_ref(), ctx.system.as_ref()).await;
        tokio::select! {
            () = state.shutdown.notified() => return,
            () = tokio::time::sleep(tick) => {}
        }
    }
}

#[async_trait]
impl LogicalBackend for DatabaseBackend {
    async fn handle(&self, req: Request) -> Result<Option<Response>> {
        self.framework.handle(self.state.clone(), req).await
    }

    async fn exists(&self, req: &Request) -> Result<Option<bool>> {
        self.framework.exists(self.state.clone(), req).await
    }

    async fn renew_secret(&self, req: Request, secret: SecretLease) -> Result<Option<Response>> {
        self.framework
            .renew_secret(self.state.clone(), req, secret)
            .await
    }

    async fn revoke_secret(&self, req: Request, secret: SecretLease) -> Result<Vec<StorageChange>> {
        self.framework
            .revoke_secret(self.state.clone(), req, secret)
            .await
    }

    async fn initialize(&self, ctx: MountContext) -> Result<()> {
        *self
            .state
            .mount
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ctx.clone());
        // Recovery talks to databases that may be down: it must not hold up the unseal.
        tokio::spawn(background(self.state.clone(), ctx));
        Ok(())
    }

    async fn cleanup(&self) {
        self.state
            .shut_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.state.shutdown.notify_waiters();
        self.state.close_all().await;
    }
}

/// Response maps with keys in lexical order, as Vault (Go maps) renders them.
pub(crate) fn sorted(map: Map<String, Value>) -> Map<String, Value> {
    let mut entries: Vec<(String, Value)> = map.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().collect()
}

/// Random letters and digits, for names that must not collide.
#[cfg(any(test, feature = "testing"))]
pub(crate) fn random_suffix(length: usize) -> String {
    mayfly_sdk::password::random_base62(length)
}
