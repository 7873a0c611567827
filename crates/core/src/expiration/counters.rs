//! Lease counts kept incrementally and durably: total, irrevocable, per mount and per quota.
//!
//! Every registration and revocation commits a change to one *shard* record in the same
//! transaction as the lease itself, so the counts survive crashes exactly and are never
//! rebuilt by scanning. A shard's lock is held across its commit (its record is read, changed
//! and written whole); there are [`SHARDS`] of them so that concurrent commits still share one
//! group-committed fsync. Restart reads [`SHARDS`] small records.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
};

use mayfly_sdk::{Result, StorageExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex as AsyncMutex, MutexGuard};

use crate::view::{BarrierView, Txn};

/// How many counter records writes are spread over.
pub const SHARDS: usize = 32;

/// Counts of one mount.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountCounts {
    pub leases: i64,
    pub irrevocable: i64,
}

/// Lease counts, or a change to them (the same shape, signed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub leases: i64,
    pub irrevocable: i64,
    /// By mount UUID.
    #[serde(default)]
    pub by_mount: BTreeMap<String, MountCounts>,
    /// By quota ID (not name: a quota deleted and created again starts afresh).
    #[serde(default)]
    pub by_quota: BTreeMap<String, i64>,
}

impl Counts {
    pub fn is_zero(&self) -> bool {
        self.leases == 0
            && self.irrevocable == 0
            && self.by_mount.is_empty()
            && self.by_quota.is_empty()
    }

    /// A change of `leases` (±1) and `irrevocable` for one mount.
    pub fn for_mount(mount_uuid: &str, leases: i64, irrevocable: i64) -> Self {
        let mut counts = Counts {
            leases,
            irrevocable,
            ..Counts::default()
        };
        counts.by_mount.insert(
            mount_uuid.to_owned(),
            MountCounts {
                leases,
                irrevocable,
            },
        );
        counts
    }

    pub fn add(&mut self, delta: &Counts) {
        self.leases += delta.leases;
        self.irrevocable += delta.irrevocable;
        for (mount, change) in &delta.by_mount {
            let counts = self.by_mount.entry(mount.clone()).or_default();
            counts.leases += change.leases;
            counts.irrevocable += change.irrevocable;
            if *counts == MountCounts::default() {
                self.by_mount.remove(mount);
            }
        }
        for (quota, change) in &delta.by_quota {
            let count = self.by_quota.entry(quota.clone()).or_default();
            *count += change;
            if *count == 0 {
                self.by_quota.remove(quota);
            }
        }
    }
}

fn shard_key(index: usize) -> String {
    format!("counters/{index:02}")
}

pub struct Counters {
    view: BarrierView,
    shards: Vec<AsyncMutex<Counts>>,
    /// The sum of the committed shards.
    total: Mutex<Counts>,
    next: AtomicUsize,
}

impl Counters {
    pub async fn load(view: BarrierView) -> Result<Self> {
        let mut shards = Vec::with_capacity(SHARDS);
        let mut total = Counts::default();
        for index in 0..SHARDS {
            let counts: Counts = view.get_json(&shard_key(index)).await?.unwrap_or_default();
            total.add(&counts);
            shards.push(AsyncMutex::new(counts));
        }
        Ok(Counters {
            view,
            shards,
            total: Mutex::new(total),
            next: AtomicUsize::new(0),
        })
    }

    pub fn total(&self) -> Counts {
        self.total
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A free shard if there is one, otherwise the next one in turn.
    async fn any_shard(&self) -> (usize, MutexGuard<'_, Counts>) {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for offset in 0..SHARDS {
            let index = (start + offset) % SHARDS;
            if let Ok(guard) = self.shards[index].try_lock() {
                return (index, guard);
            }
        }
        let index = start % SHARDS;
        (index, self.shards[index].lock().await)
    }

    /// Commits `txn` together with the count change `delta`.
    pub async fn commit(&self, mut txn: Txn, delta: &Counts) -> Result<()> {
        if delta.is_zero() {
            return txn.commit(self.view.barrier()).await;
        }
        let (index, mut shard) = self.any_shard().await;
        let mut updated = shard.clone();
        updated.add(delta);
        txn.put_json(&self.view, &shard_key(index), &updated)?;
        txn.commit(self.view.barrier()).await?;
        *shard = updated;
        // Still under the shard lock, so `reset_quota` (which takes every shard) never sums a
        // shard whose change the total has not seen yet.
        self.total
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add(delta);
        drop(shard);
        Ok(())
    }

    /// Sets the count of a quota to `value` (creation, with every registration paused) or
    /// removes it (`None`, deletion). Rewrites every shard, so it is for rare changes only.
    pub async fn reset_quota(&self, quota_id: &str, value: Option<i64>) -> Result<()> {
        let mut guards = Vec::with_capacity(SHARDS);
        for shard in &self.shards {
            guards.push(shard.lock().await);
        }
        let mut txn = Txn::new();
        let mut updated: Vec<Counts> = Vec::with_capacity(SHARDS);
        for (index, guard) in guards.iter().enumerate() {
            let mut counts = (**guard).clone();
            counts.by_quota.remove(quota_id);
            if index == 0
                && let Some(value) = value.filter(|value| *value != 0)
            {
                counts.by_quota.insert(quota_id.to_owned(), value);
            }
            if counts != **guard {
                txn.put_json(&self.view, &shard_key(index), &counts)?;
            }
            updated.push(counts);
        }
        txn.commit(self.view.barrier()).await?;
        let mut total = Counts::default();
        for (guard, counts) in guards.iter_mut().zip(updated) {
            **guard = counts;
            total.add(guard);
        }
        *self.total.lock().unwrap_or_else(PoisonError::into_inner) = total;
        Ok(())
    }
}
