//! Creation intents: the engine's own record of every database user it creates, written
//! before the user exists and removed when the user is revoked.
//!
//! The record of an issued credential is written `Issued`, by the core, in the same storage
//! transaction as the lease (`SecretLease::commit_with_lease`). Before the user exists, either
//! that transaction has committed (the plugin waits on its `IntentGate`) or a `Pending` record
//! of the same id, a username reservation committed with an earlier lease (see
//! `reservation`), already covers it. A crash can thus leave a lease whose user never came to
//! exist, which revocation skips, or a pending record whose user may exist, which
//! reconciliation drops; never a user that nothing covers. Renewals move the recorded expiry
//! forward, and revocation deletes the record in the lease's own deletion. Reconciliation also
//! drops any issued user whose expiry passed a grace period ago without a revocation (a lease
//! removed by `revoke-force`, say), so nothing outlives its expiry by much.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use mayfly_sdk::{Result, Storage, StorageChange, StorageExt};
use serde::{Deserialize, Serialize};

use crate::{plugin::DeleteUserRequest, state::Database};

pub(crate) const INTENT_PREFIX: &str = "intent/";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum IntentState {
    /// The username is reserved, or its user is being created; no client has its password.
    Pending,
    /// The credential was handed out; it lives until `expires_at` unless renewed.
    Issued,
}

/// What is needed to drop a user without its role or lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Intent {
    pub version: u32,
    pub id: String,
    pub state: IntentState,
    pub db_name: String,
    pub role: String,
    pub username: String,
    pub revocation_statements: Vec<String>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds; for issued credentials, when the lease ends.
    pub expires_at: u64,
    /// The engine's boot (see `Database::boot_id`) that wrote a pending intent.
    #[serde(default)]
    pub boot: String,
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

pub(crate) fn key(id: &str) -> String {
    format!("{INTENT_PREFIX}{id}")
}

/// A record for the core to commit with a lease.
pub(crate) fn put_change(intent: &Intent) -> Result<StorageChange> {
    let value = serde_json::to_vec(intent)
        .map_err(|err| mayfly_sdk::Error::internal(format!("cannot encode an intent: {err}")))?;
    Ok(StorageChange::Put {
        key: key(&intent.id),
        value,
    })
}

pub(crate) async fn put(storage: &dyn Storage, intent: &Intent) -> Result<()> {
    storage.put_json(&key(&intent.id), intent).await
}

pub(crate) async fn load(storage: &dyn Storage, id: &str) -> Result<Option<Intent>> {
    storage.get_json(&key(id)).await
}

pub(crate) async fn remove(storage: &dyn Storage, id: &str) -> Result<()> {
    storage.delete(&key(id)).await
}

/// Moves an issued credential's expiry (after a renewal).
pub(crate) async fn extend(storage: &dyn Storage, id: &str, expires_at: u64) -> Result<()> {
    if let Some(mut intent) = load(storage, id).await? {
        intent.expires_at = expires_at;
        put(storage, &intent).await?;
    }
    Ok(())
}

/// Drops the intent's user and forgets the intent. A user that is already gone counts.
pub(crate) async fn drop_user(
    state: &Database,
    storage: &dyn Storage,
    intent: &Intent,
) -> Result<()> {
    let instance = state.connection(storage, &intent.db_name).await?;
    let _shared = instance.lock.read().await;
    instance
        .plugin
        .delete_user(DeleteUserRequest {
            username: &intent.username,
            statements: &intent.revocation_statements,
        })
        .await
        .map_err(|err| crate::state::plugin_error("failed to drop user", err))?;
    remove(storage, &intent.id).await
}

/// What one reconciliation pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Pending records settled: reservations no request will use, and users created by an
    /// interrupted request, dropped.
    pub orphans_dropped: usize,
    /// Issued users past their expiry that nothing revoked, dropped.
    pub expired_dropped: usize,
    /// Users that could not be dropped yet (database down…); retried next pass.
    pub failed: usize,
}

/// A pending intent of this boot older than this belongs to a request that is not coming
/// back (its lease would have committed long ago).
const PENDING_STUCK: Duration = Duration::from_secs(120);

/// One pass over the intents: drops every user that no live request is creating and that
/// either never reached a client or outlived its expiry by `grace`.
pub(crate) async fn reconcile(
    state: &Arc<Database>,
    storage: &dyn Storage,
    grace: Duration,
) -> Result<ReconcileReport> {
    let mut report = ReconcileReport::default();
    let now = unix_now();
    for id in storage.list(INTENT_PREFIX).await? {
        if id.ends_with('/') {
            continue;
        }
        let Some(intent) = load(storage, &id).await? else {
            continue;
        };
        let due = match intent.state {
            // A request of this boot may have returned with its lease not yet committed.
            IntentState::Pending => {
                intent.boot != state.boot_id
                    || (intent.created_at.saturating_add(PENDING_STUCK.as_secs()) <= now
                        && !state.reservations.in_flight(&intent.id))
            }
            IntentState::Issued => intent.expires_at.saturating_add(grace.as_secs()) <= now,
        };
        if !due {
            continue;
        }
        match drop_user(state, storage, &intent).await {
            Ok(()) => {
                tracing::info!(
                    db = %intent.db_name,
                    role = %intent.role,
                    state = ?intent.state,
                    "Settled a database user that no lease covers: dropped, if it existed."
                );
                match intent.state {
                    IntentState::Pending => report.orphans_dropped += 1,
                    IntentState::Issued => report.expired_dropped += 1,
                }
            }
            Err(err) => {
                report.failed += 1;
                tracing::warn!(db = %intent.db_name, role = %intent.role, error = %err,
                    "Could not drop a database user yet; will retry.");
            }
        }
    }
    Ok(report)
}
