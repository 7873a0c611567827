//! Lease-count quotas (`sys/quotas/lease-count/:name`): a cap on the live leases under a
//! path, enforced without ever counting leases on the request path.
//!
//! Counts are kept by the lease counters (see `counters.rs`), changed in the same transaction
//! as each lease. Enforcement is in memory, under a mutex never held across an await:
//! a request that may create a lease *reserves* a slot before its backend runs (a full quota
//! answers 429 and nothing is created); the registration then turns the reservation into a
//! *pending* charge until its transaction commits. `count + reserved + pending` never exceeds
//! `max_leases`, so concurrent requests cannot overshoot.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use mayfly_sdk::{Error, Result, Storage, StorageExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::view::BarrierView;

/// A persisted lease-count quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseCountQuota {
    pub version: u32,
    /// Random, set at creation: what the counters are keyed by.
    pub id: String,
    pub name: String,
    /// `""` (every lease), a mount (`database/`), or a path inside one
    /// (`database/creds/readonly`, matched segment-wise).
    pub path: String,
    pub max_leases: i64,
    #[serde(default)]
    pub inheritable: bool,
}

/// Whether a lease ID (or a request path followed by `/`) falls under a quota path.
pub fn path_matches(quota_path: &str, target: &str) -> bool {
    if quota_path.is_empty() || quota_path.ends_with('/') {
        return target.starts_with(quota_path);
    }
    target == quota_path
        || (target.starts_with(quota_path) && target[quota_path.len()..].starts_with('/'))
}

struct Live {
    quota: LeaseCountQuota,
    count: i64,
    reserved: i64,
    pending: i64,
}

impl Live {
    fn full(&self) -> bool {
        self.count + self.reserved + self.pending >= self.quota.max_leases
    }
}

pub struct Quotas {
    view: BarrierView,
    state: Mutex<BTreeMap<String, Live>>,
    /// Held shared by every registration and revocation across its commit, and exclusively
    /// while a new quota's starting count is taken, so that count is exact.
    gate: RwLock<()>,
}

/// Slots reserved for one request; unused ones are given back when it is dropped.
#[derive(Clone)]
pub struct Admission(Arc<AdmissionInner>);

struct AdmissionInner {
    quotas: Arc<Quotas>,
    /// IDs of the quotas a slot is held in.
    reserved: Mutex<Vec<String>>,
}

impl Drop for AdmissionInner {
    fn drop(&mut self) {
        let reserved =
            std::mem::take(&mut *self.reserved.lock().unwrap_or_else(PoisonError::into_inner));
        let mut state = self.quotas.state();
        for id in reserved {
            if let Some(live) = state.values_mut().find(|live| live.quota.id == id) {
                live.reserved -= 1;
            }
        }
    }
}

/// Quotas charged by one registration, settled once its transaction is known to have
/// committed or failed.
#[derive(Debug, Default)]
pub struct Charge {
    pub ids: Vec<String>,
}

fn exceeded(path: &str) -> Error {
    Error::QuotaExceeded(format!("request path {path:?}: lease count quota exceeded"))
}

impl Quotas {
    /// Loads the quota definitions; `counts` are the persisted counts by quota ID.
    pub async fn load(view: BarrierView, counts: &BTreeMap<String, i64>) -> Result<Arc<Self>> {
        let mut state = BTreeMap::new();
        for name in view.list("").await? {
            if let Some(quota) = view.get_json::<LeaseCountQuota>(&name).await? {
                let count = counts.get(&quota.id).copied().unwrap_or(0);
                state.insert(
                    quota.name.clone(),
                    Live {
                        quota,
                        count,
                        reserved: 0,
                        pending: 0,
                    },
                );
            }
        }
        Ok(Arc::new(Quotas {
            view,
            state: Mutex::new(state),
            gate: RwLock::new(()),
        }))
    }

    fn state(&self) -> MutexGuard<'_, BTreeMap<String, Live>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn is_empty(&self) -> bool {
        self.state().is_empty()
    }

    /// Reserves a slot in every quota covering leases created under `request_path`, or
    /// refuses with 429 if one is full. `None` when no quota applies.
    pub fn admit(self: &Arc<Self>, request_path: &str) -> Result<Option<Admission>> {
        let target = format!("{}/", request_path.trim_end_matches('/'));
        let mut state = self.state();
        let covering: Vec<&mut Live> = state
            .values_mut()
            .filter(|live| path_matches(&live.quota.path, &target))
            .collect();
        if covering.is_empty() {
            return Ok(None);
        }
        if covering.iter().any(|live| live.full()) {
            return Err(exceeded(request_path));
        }
        let mut ids = Vec::with_capacity(covering.len());
        for live in covering {
            live.reserved += 1;
            ids.push(live.quota.id.clone());
        }
        Ok(Some(Admission(Arc::new(AdmissionInner {
            quotas: self.clone(),
            reserved: Mutex::new(ids),
        }))))
    }

    /// Charges every quota covering `lease_id`, using the request's reservation where it has
    /// one and free room otherwise; refuses with 429 when a quota has neither.
    pub fn charge(&self, lease_id: &str, admission: Option<&Admission>) -> Result<Charge> {
        let mut state = self.state();
        let mut reserved = admission.map(|admission| {
            admission
                .0
                .reserved
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        });
        let covering: Vec<&mut Live> = state
            .values_mut()
            .filter(|live| path_matches(&live.quota.path, lease_id))
            .collect();
        let holds = |id: &str, reserved: &Option<MutexGuard<'_, Vec<String>>>| {
            reserved
                .as_ref()
                .is_some_and(|ids| ids.iter().any(|held| held == id))
        };
        if covering
            .iter()
            .any(|live| !holds(&live.quota.id, &reserved) && live.full())
        {
            let path = lease_id.rsplit_once('/').map_or(lease_id, |(path, _)| path);
            return Err(exceeded(path));
        }
        let mut charge = Charge::default();
        for live in covering {
            let id = live.quota.id.clone();
            if let Some(ids) = reserved.as_mut()
                && let Some(position) = ids.iter().position(|held| *held == id)
            {
                ids.swap_remove(position);
                live.reserved -= 1;
            }
            live.pending += 1;
            charge.ids.push(id);
        }
        Ok(charge)
    }

    /// Ends a charge: the leases count once the transaction committed.
    pub fn settle(&self, charge: &Charge, committed: bool) {
        if charge.ids.is_empty() {
            return;
        }
        let mut state = self.state();
        for live in state.values_mut() {
            if charge.ids.contains(&live.quota.id) {
                live.pending -= 1;
                if committed {
                    live.count += 1;
                }
            }
        }
    }

    /// IDs of the quotas covering a lease, for the count change of its revocation.
    pub fn covering(&self, lease_id: &str) -> Vec<String> {
        self.state()
            .values()
            .filter(|live| path_matches(&live.quota.path, lease_id))
            .map(|live| live.quota.id.clone())
            .collect()
    }

    /// Records committed revocations.
    pub fn released(&self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let mut state = self.state();
        for live in state.values_mut() {
            if ids.contains(&live.quota.id) {
                live.count -= 1;
            }
        }
    }

    pub async fn shared(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().await
    }

    pub async fn exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.gate.write().await
    }

    pub fn get(&self, name: &str) -> Option<(LeaseCountQuota, i64)> {
        self.state()
            .get(name)
            .map(|live| (live.quota.clone(), live.count))
    }

    pub fn names(&self) -> Vec<String> {
        self.state().keys().cloned().collect()
    }

    /// Persists and installs a quota with its starting count. The caller holds the gate
    /// exclusively and has set the counters.
    pub async fn install(&self, quota: LeaseCountQuota, count: i64) -> Result<()> {
        self.view.put_json(&quota.name, &quota).await?;
        let mut state = self.state();
        let (reserved, pending) = state
            .get(&quota.name)
            .filter(|live| live.quota.id == quota.id)
            .map_or((0, 0), |live| (live.reserved, live.pending));
        state.insert(
            quota.name.clone(),
            Live {
                quota,
                count,
                reserved,
                pending,
            },
        );
        Ok(())
    }

    pub async fn remove(&self, name: &str) -> Result<Option<LeaseCountQuota>> {
        self.view.delete(name).await?;
        Ok(self.state().remove(name).map(|live| live.quota))
    }
}

impl crate::Core {
    /// Normalises a quota path: `""`, a mount path (with its `/`), or a path inside a mount.
    pub(crate) fn quota_path(&self, path: &str) -> Result<String> {
        let path = path.trim_start_matches('/');
        if path.is_empty() {
            return Ok(String::new());
        }
        if path.split('/').any(|segment| segment == "..") {
            return Err(Error::invalid("path cannot contain parent references"));
        }
        let router = self.unsealed()?.mounts.router();
        let route = router
            .route(path)
            .ok_or_else(|| Error::invalid(format!("invalid mount path {path:?}")))?;
        if format!("{}/", path.trim_end_matches('/')) == route.entry.path {
            return Ok(route.entry.path.clone());
        }
        Ok(path.trim_end_matches('/').to_owned())
    }

    /// Creates or updates a quota. A new path starts from the exact number of live leases
    /// under it, taken with registrations and revocations paused: from the maintained
    /// counters for the global and mount paths, by counting lease keys (not reading them) for
    /// a path inside a mount.
    pub(crate) async fn put_lease_quota(&self, mut quota: LeaseCountQuota) -> Result<()> {
        let unsealed = self.unsealed()?;
        let expiration = &unsealed.expiration;
        let _paused = expiration.quotas.exclusive().await;
        let existing = expiration.quotas.get(&quota.name);
        if let Some((current, count)) = &existing
            && current.path == quota.path
        {
            quota.id = current.id.clone();
            return expiration.quotas.install(quota, *count).await;
        }
        quota.id = crate::random::uuid();
        let counts = expiration.counts();
        let router = unsealed.mounts.router();
        let start = if quota.path.is_empty() {
            counts.leases
        } else if let Some(mount) = router.get(&quota.path) {
            counts
                .by_mount
                .get(&mount.entry.uuid)
                .map_or(0, |mount| mount.leases)
        } else {
            expiration.count_under(&quota.path).await?
        };
        if let Some((old, _)) = &existing {
            expiration.counters.reset_quota(&old.id, None).await?;
        }
        expiration
            .counters
            .reset_quota(&quota.id, Some(start))
            .await?;
        expiration.quotas.install(quota, start).await
    }

    pub(crate) async fn delete_lease_quota(&self, name: &str) -> Result<()> {
        let unsealed = self.unsealed()?;
        let expiration = &unsealed.expiration;
        let _paused = expiration.quotas.exclusive().await;
        if let Some(quota) = expiration.quotas.remove(name).await? {
            expiration.counters.reset_quota(&quota.id, None).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_segment_wise() {
        assert!(path_matches("", "anything/x"));
        assert!(path_matches("database/", "database/creds/ro/abc"));
        assert!(path_matches("database/creds/ro", "database/creds/ro/abc"));
        assert!(!path_matches("database/creds/ro", "database/creds/rox/abc"));
        assert!(!path_matches("database/", "databases/creds/x"));
    }
}
