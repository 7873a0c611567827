//! Revoking leases: one now (a client waiting), lazily (marked due for the worker), by
//! prefix (resumable after a restart), by force, and the retry and irrevocable bookkeeping
//! when an engine fails.

use std::{sync::Arc, time::Duration};

use mayfly_sdk::{
    Error, Operation, Request, Result, SecretLease, Storage, StorageChange, StorageExt,
};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::{
    Counts, DEFAULT_INITIAL_BACKOFF, DEFAULT_REVOKE_ATTEMPTS, Expiration, IRREVOCABLE_RETRY,
    LeaseEntry, LeaseKind, id_key, prefix_revoke_key, tokens::BULK_CONCURRENCY, truncate_error,
    unescape,
};
use crate::{
    Core, Unsealed,
    mounts::{MountConfig, RouteEntry},
    random::random_bytes,
    view::Txn,
};

/// How a revocation treats an engine that fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The expiry worker: count the attempt, retry with backoff, then irrevocable.
    Worker,
    /// A client waits: return the error and leave the lease as it was.
    Sync,
    /// `revoke-force`: log the error and delete the lease record anyway.
    Force,
}

/// A lease that could not be revoked, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeFailure {
    pub lease_id: String,
    pub error: String,
}

/// A revoke-prefix whose marking phase has not finished; resumed after a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PrefixRevocation {
    prefix: String,
    force: bool,
}

/// Errors an engine will not get over by being asked again: the lease becomes irrevocable
/// at once, as in Vault.
fn unrecoverable(err: &Error) -> bool {
    matches!(
        err,
        Error::InvalidRequest(_) | Error::UnsupportedPath | Error::UnsupportedOperation
    )
}

/// `initial × 2^(attempt-1)`, jittered to between half and one and a half times that, so a
/// burst of failures does not retry in lockstep.
pub(crate) fn backoff(initial: Duration, attempt: u32) -> Duration {
    let base = initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let jitter = f64::from(u32::from_le_bytes(random_bytes::<4>())) / f64::from(u32::MAX);
    base.mul_f64(0.5 + jitter)
}

/// Stages an engine's writes to its own storage.
pub(crate) fn stage_changes(route: &RouteEntry, changes: Vec<StorageChange>) -> Result<Txn> {
    let mut txn = Txn::new();
    for change in changes {
        match change {
            StorageChange::Put { key, value } => txn.put(&route.storage, &key, value)?,
            StorageChange::Delete { key } => txn.delete(&route.storage, &key)?,
        }
    }
    Ok(txn)
}

/// Where a mount's revocation settings come from (0 means the default).
pub(crate) fn retry_policy(config: Option<&MountConfig>) -> (u32, Duration) {
    let attempts = config
        .map(|config| config.lease_revoke_max_attempts)
        .filter(|attempts| *attempts > 0)
        .unwrap_or(DEFAULT_REVOKE_ATTEMPTS);
    let backoff = config
        .map(|config| config.lease_revoke_initial_backoff)
        .filter(|seconds| *seconds > 0)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_INITIAL_BACKOFF);
    (attempts, backoff)
}

/// Walks the lease IDs under a prefix in batches, depth first, holding only the folders on
/// the current path in memory.
pub(crate) struct LeaseWalker {
    stack: Vec<(String, String)>,
    single: Option<String>,
}

impl LeaseWalker {
    /// Vault's prefix rule: a prefix without a trailing `/` that names a lease is that lease;
    /// otherwise it is a folder.
    pub(crate) async fn new(expiration: &Expiration, prefix: &str) -> Result<Self> {
        if !prefix.is_empty() && !prefix.ends_with('/') && expiration.entry(prefix).await?.is_some()
        {
            return Ok(LeaseWalker {
                stack: Vec::new(),
                single: Some(prefix.to_owned()),
            });
        }
        let folder = if prefix.is_empty() || prefix.ends_with('/') {
            prefix.to_owned()
        } else {
            format!("{prefix}/")
        };
        Ok(LeaseWalker {
            stack: vec![(folder, String::new())],
            single: None,
        })
    }

    pub(crate) async fn next_batch(
        &mut self,
        expiration: &Expiration,
        limit: usize,
    ) -> Result<Vec<String>> {
        let mut out = Vec::new();
        if let Some(single) = self.single.take() {
            out.push(single);
            return Ok(out);
        }
        while out.len() < limit {
            let Some((folder, after)) = self.stack.last().cloned() else {
                break;
            };
            let page = expiration
                .view
                .list_page(&id_key(&folder), &after, 256)
                .await?;
            let Some(last) = page.last().cloned() else {
                self.stack.pop();
                continue;
            };
            if let Some(top) = self.stack.last_mut() {
                top.1 = last;
            }
            for child in page {
                if child.ends_with('/') {
                    self.stack.push((format!("{folder}{child}"), String::new()));
                } else {
                    out.push(format!("{folder}{child}"));
                }
            }
        }
        Ok(out)
    }
}

impl Core {
    /// Revokes one lease now. An unknown lease is already revoked.
    pub(crate) async fn revoke_lease(&self, lease_id: &str, mode: Mode) -> Result<()> {
        let unsealed = self.unsealed()?;
        let _guard = unsealed.expiration.lock(lease_id).await;
        let Some(entry) = unsealed.expiration.entry(lease_id).await? else {
            return Ok(());
        };
        self.revoke_locked(&unsealed, entry, mode).await
    }

    /// Revokes a lease whose lock the caller holds.
    pub(crate) async fn revoke_locked(
        &self,
        unsealed: &Arc<Unsealed>,
        entry: LeaseEntry,
        mode: Mode,
    ) -> Result<()> {
        let expiration = &unsealed.expiration;
        if entry.kind == LeaseKind::Token {
            let hash = entry
                .token_hash
                .clone()
                .ok_or_else(|| Error::internal("token lease without a token"))?;
            let result = self.revoke_tree_from(&hash, Some(&entry.lease_id)).await;
            return match (result, mode) {
                (Ok(()), _) => Ok(()),
                (Err(Error::Sealed), _) => Err(Error::Sealed),
                (Err(err), Mode::Worker) => self.record_failure(unsealed, entry, &err).await,
                (Err(err), _) => Err(err),
            };
        }
        match self.call_revoke(unsealed, &entry).await {
            Ok(mut with_deletion) => {
                // The secret is gone from its system; the lease's deletion only records that.
                // Lost in a crash, the lease comes back and its revocation runs again, which
                // every engine's revoke takes as success when the secret is already gone.
                with_deletion.defer_durability();
                self.delete_lease(expiration, &entry, with_deletion).await
            }
            Err(Error::Sealed) => Err(Error::Sealed),
            Err(err) => match mode {
                Mode::Force => {
                    tracing::warn!(
                        lease_id = %entry.lease_id,
                        error = %err,
                        "Force-revoking a lease the engine failed to revoke: its secret may remain."
                    );
                    self.delete_lease(expiration, &entry, Txn::new()).await
                }
                Mode::Sync => Err(err),
                Mode::Worker => self.record_failure(unsealed, entry, &err).await,
            },
        }
    }

    /// The mount serving a lease: by UUID, so it is found even if the path changed.
    fn lease_route(unsealed: &Unsealed, entry: &LeaseEntry) -> Option<Arc<RouteEntry>> {
        let router = unsealed.mounts.router();
        if let Some(route) = router.get(&entry.mount_path)
            && route.entry.uuid == entry.mount_uuid
        {
            return Some(route.clone());
        }
        router
            .entries()
            .find(|mount| mount.uuid == entry.mount_uuid)
            .and_then(|mount| router.get(&mount.path).cloned())
    }

    /// Asks the engine to revoke the secret. No lock but the lease's own is held. Returns the
    /// engine's writes to commit with the lease's deletion, staged.
    async fn call_revoke(&self, unsealed: &Unsealed, entry: &LeaseEntry) -> Result<Txn> {
        let route = Self::lease_route(unsealed, entry).ok_or_else(|| {
            Error::invalid(format!(
                "the mount that issued this lease ({}) no longer exists",
                entry.mount_path
            ))
        })?;
        let mut req = Request::new(Operation::Revoke, entry.path.clone());
        req.mount_point = route.entry.path.clone();
        req.mount_type = route.entry.kind.clone();
        req.mount_ttls = route.entry.ttls(self.system_ttls());
        req.storage = Some(route.storage.clone());
        req.client_token_hash = entry.token_hash.clone();
        let changes = route
            .backend
            .revoke_secret(req, Self::secret_of(entry))
            .await?;
        stage_changes(&route, changes)
    }

    /// The engine's view of a lease.
    pub(crate) fn secret_of(entry: &LeaseEntry) -> SecretLease {
        SecretLease {
            lease_id: entry.lease_id.clone(),
            ttl: Duration::from_secs(entry.ttl),
            max_ttl: Duration::from_secs(entry.max_ttl),
            renewable: entry.renewable,
            secret_type: entry.secret_type.clone(),
            internal_data: entry.internal_data.clone(),
            commit_with_lease: Vec::new(),
        }
    }

    /// Deletes a revoked lease and its index keys, and counts it out, in `txn`.
    async fn delete_lease(
        &self,
        expiration: &Expiration,
        entry: &LeaseEntry,
        mut txn: Txn,
    ) -> Result<()> {
        let _gate = expiration.quotas.shared().await;
        let quota_ids = expiration.quotas.covering(&entry.lease_id);
        expiration.stage_delete(entry, &mut txn)?;
        expiration
            .commit_delete(
                txn,
                &Expiration::delete_delta(entry, &quota_ids),
                &quota_ids,
            )
            .await
    }

    /// Counts a failed attempt: schedules the next one after a backoff, or declares the lease
    /// irrevocable (retried every [`IRREVOCABLE_RETRY`]) once the attempts ran out.
    async fn record_failure(
        &self,
        unsealed: &Arc<Unsealed>,
        entry: LeaseEntry,
        err: &Error,
    ) -> Result<()> {
        let expiration = &unsealed.expiration;
        let route = Self::lease_route(unsealed, &entry);
        let (max_attempts, initial) = retry_policy(route.as_ref().map(|r| &r.entry.config));
        let now = expiration.clock().unix_ms();
        let mut next = entry.clone();
        next.attempts = entry.attempts.saturating_add(1);
        let message = err.to_string();
        let delay = if unrecoverable(err) || next.attempts >= max_attempts || entry.irrevocable {
            if !entry.irrevocable {
                tracing::error!(
                    lease_id = %entry.lease_id,
                    attempts = next.attempts,
                    error = %message,
                    "Lease is irrevocable: revocation failed and will only be retried hourly."
                );
            }
            next.irrevocable = true;
            next.last_error = Some(truncate_error(&format!("out of retries: {message}")));
            IRREVOCABLE_RETRY
        } else {
            tracing::warn!(
                lease_id = %entry.lease_id,
                attempt = next.attempts,
                error = %message,
                "Lease revocation failed; it will be retried."
            );
            next.last_error = Some(truncate_error(&message));
            backoff(initial, next.attempts)
        };
        next.due = Some(now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 4));
        let mut txn = Txn::new();
        expiration.stage_put(&next, Some(&entry), &mut txn)?;
        let delta = if next.irrevocable && !entry.irrevocable {
            Counts::for_mount(&entry.mount_uuid, 0, 1)
        } else {
            Counts::default()
        };
        expiration.counters.commit(txn, &delta).await
    }

    /// Marks a lease due now, for the worker to revoke (`sync=false`, token revocation,
    /// revoke-prefix). Returns whether the lease exists.
    pub(crate) async fn mark_due(&self, lease_id: &str) -> Result<bool> {
        let unsealed = self.unsealed()?;
        let expiration = &unsealed.expiration;
        let _guard = expiration.lock(lease_id).await;
        let Some(entry) = expiration.entry(lease_id).await? else {
            return Ok(false);
        };
        let now = expiration.clock().unix_ms();
        if entry.due.is_some_and(|due| due <= now) {
            return Ok(true);
        }
        let mut next = entry.clone();
        next.due = Some(now);
        if next.expire_time.is_none_or(|expire| expire > now) {
            next.expire_time = Some(now);
        }
        let mut txn = Txn::new();
        expiration.stage_put(&next, Some(&entry), &mut txn)?;
        txn.commit(expiration.view.barrier()).await?;
        expiration.scheduler.due_at(now);
        Ok(true)
    }

    /// Marks many leases due, a bounded number at a time.
    pub(crate) async fn mark_due_all(&self, lease_ids: Vec<String>) -> Result<()> {
        let core = self.me.upgrade().ok_or(Error::Sealed)?;
        let mut tasks = JoinSet::new();
        for lease_id in lease_ids {
            if tasks.len() >= BULK_CONCURRENCY
                && let Some(done) = tasks.join_next().await
            {
                done.map_err(Error::internal)??;
            }
            let core = core.clone();
            tasks.spawn(async move { core.mark_due(&lease_id).await.map(|_| ()) });
        }
        while let Some(done) = tasks.join_next().await {
            done.map_err(Error::internal)??;
        }
        Ok(())
    }

    /// Revokes every lease under `prefix` (and, for `auth/...` prefixes, the tokens). First
    /// every lease is marked due — durably, and resumed after a restart, so the revocation
    /// happens even if this server dies — then, when `sync`, each is revoked here and the
    /// failures are returned; otherwise the worker does the rest.
    ///
    /// The work runs in a task of its own: a client that gives up (or a request cut off by
    /// the server's maximum duration) does not stop a revocation half-way.
    pub(crate) async fn revoke_prefix(
        &self,
        prefix: &str,
        sync: bool,
        force: bool,
    ) -> Result<Vec<RevokeFailure>> {
        let core = self.me.upgrade().ok_or(Error::Sealed)?;
        let prefix = prefix.to_owned();
        tokio::spawn(async move { core.revoke_prefix_now(&prefix, sync, force).await })
            .await
            .map_err(Error::internal)?
    }

    async fn revoke_prefix_now(
        &self,
        prefix: &str,
        sync: bool,
        force: bool,
    ) -> Result<Vec<RevokeFailure>> {
        let unsealed = self.unsealed()?;
        let expiration = &unsealed.expiration;
        let record_key = prefix_revoke_key(prefix);
        expiration
            .view
            .put_json(
                &record_key,
                &PrefixRevocation {
                    prefix: prefix.to_owned(),
                    force,
                },
            )
            .await?;
        self.mark_prefix_due(prefix).await?;
        expiration.view.delete(&record_key).await?;
        if !sync && !force {
            return Ok(Vec::new());
        }
        let mode = if force { Mode::Force } else { Mode::Sync };
        self.revoke_under(prefix, mode).await
    }

    async fn mark_prefix_due(&self, prefix: &str) -> Result<()> {
        let unsealed = self.unsealed()?;
        let mut walker = LeaseWalker::new(&unsealed.expiration, prefix).await?;
        loop {
            let batch = walker.next_batch(&unsealed.expiration, 1024).await?;
            if batch.is_empty() {
                return Ok(());
            }
            self.mark_due_all(batch).await?;
        }
    }

    /// Revokes each lease under `prefix` now, a bounded number at a time.
    pub(crate) async fn revoke_under(
        &self,
        prefix: &str,
        mode: Mode,
    ) -> Result<Vec<RevokeFailure>> {
        let unsealed = self.unsealed()?;
        let core = self.me.upgrade().ok_or(Error::Sealed)?;
        let mut walker = LeaseWalker::new(&unsealed.expiration, prefix).await?;
        let mut failures = Vec::new();
        let mut tasks = JoinSet::new();
        let collect = |done: std::result::Result<(String, Result<()>), tokio::task::JoinError>,
                       failures: &mut Vec<RevokeFailure>|
         -> Result<()> {
            let (lease_id, result) = done.map_err(Error::internal)?;
            match result {
                Ok(()) => Ok(()),
                Err(Error::Sealed) => Err(Error::Sealed),
                Err(err) => {
                    failures.push(RevokeFailure {
                        lease_id,
                        error: err.to_string(),
                    });
                    Ok(())
                }
            }
        };
        loop {
            let batch = walker.next_batch(&unsealed.expiration, 1024).await?;
            if batch.is_empty() {
                break;
            }
            for lease_id in batch {
                if tasks.len() >= BULK_CONCURRENCY
                    && let Some(done) = tasks.join_next().await
                {
                    collect(done, &mut failures)?;
                }
                let core = core.clone();
                tasks.spawn(async move {
                    let result = core.revoke_lease(&lease_id, mode).await;
                    (lease_id, result)
                });
            }
        }
        while let Some(done) = tasks.join_next().await {
            collect(done, &mut failures)?;
        }
        Ok(failures)
    }

    /// Finishes revoke-prefix operations a previous run did not get through marking.
    pub(crate) async fn resume_prefix_revocations(&self) -> Result<()> {
        let unsealed = self.unsealed()?;
        let records = unsealed.expiration.view.list("prefix-revoke/").await?;
        for escaped in records {
            let key = format!("prefix-revoke/{escaped}");
            let Some(record) = unsealed
                .expiration
                .view
                .get_json::<PrefixRevocation>(&key)
                .await?
            else {
                continue;
            };
            tracing::info!(prefix = %record.prefix, "Resuming an interrupted revoke-prefix.");
            debug_assert_eq!(unescape(&escaped), record.prefix);
            self.revoke_prefix(&record.prefix, false, record.force)
                .await?;
        }
        Ok(())
    }
}

impl Core {
    /// Refuses new requests to a mount and revokes all its leases now. If some cannot be
    /// revoked the mount is opened again and the error lists them: a mount is never removed
    /// while it still has live secrets (`revoke-force` is the way out).
    pub(crate) async fn revoke_mount_leases(&self, mount_path: &str) -> Result<()> {
        let unsealed = self.unsealed()?;
        unsealed.mounts.taint(mount_path);
        match self.revoke_prefix(mount_path, true, false).await {
            Ok(failures) if failures.is_empty() => Ok(()),
            Ok(failures) => {
                unsealed.mounts.untaint(mount_path);
                Err(crate::sys::leases::failures_error(mount_path, &failures))
            }
            Err(err) => {
                unsealed.mounts.untaint(mount_path);
                Err(err)
            }
        }
    }

    /// After a mount is gone: drops lease records that requests already in flight when it
    /// was tainted registered after its revocation sweep. Their engine is gone with it.
    pub(crate) async fn forget_mount_leases(&self, mount_path: &str) {
        match self.revoke_under(mount_path, Mode::Force).await {
            Ok(failures) if failures.is_empty() => {}
            Ok(failures) => tracing::warn!(
                mount = %mount_path,
                leases = failures.len(),
                "Some lease records of a disabled mount could not be removed."
            ),
            Err(err) => tracing::warn!(
                mount = %mount_path,
                error = %err,
                "Removing the lease records of a disabled mount failed."
            ),
        }
    }
}
