//! The expiration manager: every dynamic secret and every token has a lease, and every lease
//! is renewed, expired and revoked here — durably, across restarts, crashes and millions of
//! leases.
//!
//! Everything lives in storage under `sys/expire/` (inside the barrier):
//!
//! | key | value |
//! |---|---|
//! | `id/<lease id>` | the [`LeaseEntry`]; lease IDs contain `/`, so prefix listing is storage listing |
//! | `time/<20-digit unix ms>_<escaped id>` | empty: the time index, read in key order by the expiry worker |
//! | `token/<token hash>/<escaped id>` | empty: secret leases by the token that created them |
//! | `irrevocable/<escaped id>` | empty: leases that ran out of revocation attempts |
//! | `prefix-revoke/<escaped prefix>` | a revoke-prefix in progress, resumed after a restart |
//! | `counters/NN` | lease counts (see `counters.rs`) |
//!
//! A lease and all its index keys (and its count) change in one transaction. Nothing is
//! loaded at unseal beyond the counters and quotas: the worker reads the time index lazily, a
//! window at a time, so memory is bounded by the leases being revoked, not by the leases that
//! exist.

mod counters;
mod query;
pub mod quota;
mod register;
mod renew;
mod revoke;
mod tokens;
mod worker;

#[cfg(test)]
mod tests;

use std::{
    fmt,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use mayfly_barrier::Barrier;
use mayfly_sdk::{Result, StorageExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    clock::Clock,
    keyed_lock::{KeyGuard, KeyedLocks},
    view::{BarrierView, Txn},
};

pub use counters::{Counts, MountCounts};
pub use quota::{Admission, LeaseCountQuota};
pub(crate) use register::{ADMISSION, MountRef};
pub use revoke::{Mode, RevokeFailure};
pub(crate) use tokens::issue_token_with;
pub(crate) use worker::run as run_expiry;

use counters::Counters;
use quota::Quotas;
use worker::Scheduler;

/// Revocation attempts before a lease is declared irrevocable (Vault's `maxRevokeAttempts`).
pub const DEFAULT_REVOKE_ATTEMPTS: u32 = 6;
/// Delay before the second attempt; it doubles with each failure (Vault's `revokeRetryBase`).
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_secs(10);
/// Revocations of one mount running at once.
pub const DEFAULT_REVOKE_CONCURRENCY: u32 = 32;
/// How often an irrevocable lease is tried again.
pub const IRREVOCABLE_RETRY: Duration = Duration::from_secs(3600);
/// Stored revocation errors are cut to this many characters, as Vault does.
const REVOKE_ERROR_LIMIT: usize = 240;

/// What a lease stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseKind {
    /// A dynamic secret issued by an engine, revoked through its secret type's handler.
    Secret,
    /// A token; revoking the lease revokes the token and its children.
    Token,
}

/// A persisted lease: everything renewal and revocation need, so both still work after the
/// engine's role or configuration changed or was deleted. Times are Unix milliseconds.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseEntry {
    pub version: u32,
    pub lease_id: String,
    pub kind: LeaseKind,
    /// The request path that created the lease.
    pub path: String,
    /// The mount at issue time; revocation finds it by UUID.
    pub mount_path: String,
    pub mount_uuid: String,
    pub mount_accessor: String,
    #[serde(default)]
    pub secret_type: String,
    /// The engine's data for renewal and revocation (a database username…). Never logged.
    #[serde(default)]
    pub internal_data: Map<String, Value>,
    pub renewable: bool,
    /// The TTL last granted and the engine's maximum, in seconds (maximum 0 = the mount's).
    pub ttl: u64,
    pub max_ttl: u64,
    /// Secret leases: the token that created the lease. Token leases: the token itself.
    pub token_hash: Option<String>,
    pub issue_time: i64,
    /// `None`: never expires (root tokens).
    pub expire_time: Option<i64>,
    pub last_renewal: Option<i64>,
    /// When the worker next acts on the lease: its expiry, a retry after a failed
    /// revocation, or now when revocation was requested. This is the time index key.
    pub due: Option<i64>,
    #[serde(default)]
    pub attempts: u32,
    /// The last revocation error.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Set once the attempts ran out: the lease is irrevocable and retried slowly.
    #[serde(default)]
    pub irrevocable: bool,
}

impl fmt::Debug for LeaseEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Internal data can hold credentials: only its keys are shown.
        f.debug_struct("LeaseEntry")
            .field("lease_id", &self.lease_id)
            .field("kind", &self.kind)
            .field("mount_path", &self.mount_path)
            .field("secret_type", &self.secret_type)
            .field(
                "internal_keys",
                &self.internal_data.keys().collect::<Vec<_>>(),
            )
            .field("expire_time", &self.expire_time)
            .field("due", &self.due)
            .field("attempts", &self.attempts)
            .field("irrevocable", &self.irrevocable)
            .finish()
    }
}

/// `%` and `/` percent-encoded, so a lease ID fits in one key segment.
pub(crate) fn escape(lease_id: &str) -> String {
    let mut out = String::with_capacity(lease_id.len() + 8);
    for c in lease_id.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn unescape(escaped: &str) -> String {
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let code = rest.get(at..at + 3);
        match code {
            Some("%2F") => out.push('/'),
            Some("%25") => out.push('%'),
            // Not written by `escape`: kept as it is.
            _ => {
                out.push('%');
                rest = &rest[at + 1..];
                continue;
            }
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    out
}

fn id_key(lease_id: &str) -> String {
    ["id/", lease_id].concat()
}

/// `time/<due, 20 digits>_<escaped id>`, so keys sort by due time. Built by hand: `format!`
/// with padding cost more than the rest of a lease's deletion keys together.
fn time_key(due: i64, lease_id: &str) -> String {
    let mut digits = [b'0'; 20];
    let mut rest = due.max(0).unsigned_abs();
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let escaped = escape(lease_id);
    let mut key = String::with_capacity(5 + digits.len() + 1 + escaped.len());
    key.push_str("time/");
    key.extend(digits.iter().map(|&digit| char::from(digit)));
    key.push('_');
    key.push_str(&escaped);
    key
}

/// `(due, lease id)` from a time index child name (`<20 digits>_<escaped id>`).
fn parse_time_child(child: &str) -> Option<(i64, String)> {
    let (due, escaped) = child.split_once('_')?;
    Some((due.parse().ok()?, unescape(escaped)))
}

fn token_index_key(token_hash: &str, lease_id: &str) -> String {
    ["token/", token_hash, "/", &escape(lease_id)].concat()
}

fn irrevocable_key(lease_id: &str) -> String {
    ["irrevocable/", &escape(lease_id)].concat()
}

fn prefix_revoke_key(prefix: &str) -> String {
    format!("prefix-revoke/{}", escape(prefix))
}

/// Cuts an error to Vault's stored length, on a character boundary.
fn truncate_error(message: &str) -> String {
    message.chars().take(REVOKE_ERROR_LIMIT).collect()
}

/// The unsealed state of the expiration manager.
pub struct Expiration {
    pub(crate) view: BarrierView,
    clock: Clock,
    counters: Counters,
    pub(crate) quotas: Arc<Quotas>,
    locks: Arc<KeyedLocks>,
    scheduler: Scheduler,
    tidying: AtomicBool,
}

impl Expiration {
    /// Opens the manager: reads the counters and quotas, nothing else.
    pub async fn open(barrier: Arc<Barrier>, clock: Clock) -> Result<Self> {
        let view = BarrierView::new(barrier.clone(), "sys/expire/");
        let counters = Counters::load(view.sub_view("")).await?;
        let quotas = Quotas::load(
            BarrierView::new(barrier, "sys/quotas/lease-count/"),
            &counters.total().by_quota,
        )
        .await?;
        Ok(Expiration {
            view,
            clock,
            counters,
            quotas,
            locks: KeyedLocks::new(),
            scheduler: Scheduler::default(),
            tidying: AtomicBool::new(false),
        })
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The committed lease counts.
    pub fn counts(&self) -> Counts {
        self.counters.total()
    }

    pub(crate) async fn lock(&self, lease_id: &str) -> KeyGuard {
        self.locks.lock(lease_id).await
    }

    pub(crate) fn try_lock(&self, lease_id: &str) -> Option<KeyGuard> {
        self.locks.try_lock(lease_id)
    }

    pub async fn entry(&self, lease_id: &str) -> Result<Option<LeaseEntry>> {
        if lease_id.is_empty() {
            return Ok(None);
        }
        self.view.get_json(&id_key(lease_id)).await
    }

    /// Stages writing `entry`, moving its index keys from where `old` had them.
    fn stage_put(&self, entry: &LeaseEntry, old: Option<&LeaseEntry>, txn: &mut Txn) -> Result<()> {
        txn.put_json(&self.view, &id_key(&entry.lease_id), entry)?;
        let old_due = old.and_then(|old| old.due);
        if old_due != entry.due {
            if let Some(due) = old_due {
                txn.delete(&self.view, &time_key(due, &entry.lease_id))?;
            }
            if let Some(due) = entry.due {
                txn.put(&self.view, &time_key(due, &entry.lease_id), Vec::new())?;
            }
        }
        if old.is_none()
            && entry.kind == LeaseKind::Secret
            && let Some(token) = &entry.token_hash
        {
            txn.put(
                &self.view,
                &token_index_key(token, &entry.lease_id),
                Vec::new(),
            )?;
        }
        let was_irrevocable = old.is_some_and(|old| old.irrevocable);
        if entry.irrevocable && !was_irrevocable {
            txn.put(&self.view, &irrevocable_key(&entry.lease_id), Vec::new())?;
        } else if was_irrevocable && !entry.irrevocable {
            txn.delete(&self.view, &irrevocable_key(&entry.lease_id))?;
        }
        Ok(())
    }

    /// Stages deleting `entry` and every index key pointing at it.
    fn stage_delete(&self, entry: &LeaseEntry, txn: &mut Txn) -> Result<()> {
        txn.delete(&self.view, &id_key(&entry.lease_id))?;
        if let Some(due) = entry.due {
            txn.delete(&self.view, &time_key(due, &entry.lease_id))?;
        }
        if entry.kind == LeaseKind::Secret
            && let Some(token) = &entry.token_hash
        {
            txn.delete(&self.view, &token_index_key(token, &entry.lease_id))?;
        }
        if entry.irrevocable {
            txn.delete(&self.view, &irrevocable_key(&entry.lease_id))?;
        }
        Ok(())
    }

    /// The count change of deleting `entry`; `quota_ids` are the quotas covering it.
    fn delete_delta(entry: &LeaseEntry, quota_ids: &[String]) -> Counts {
        let mut delta = Counts::for_mount(
            &entry.mount_uuid,
            -1,
            if entry.irrevocable { -1 } else { 0 },
        );
        for id in quota_ids {
            delta.by_quota.insert(id.clone(), -1);
        }
        delta
    }

    /// Commits a transaction that deletes leases (`txn` staged by the caller), with its
    /// count change and the quota bookkeeping. The caller holds the quota gate shared.
    async fn commit_delete(&self, txn: Txn, delta: &Counts, quota_ids: &[String]) -> Result<()> {
        self.counters.commit(txn, delta).await?;
        self.quotas.released(quota_ids);
        Ok(())
    }
}
