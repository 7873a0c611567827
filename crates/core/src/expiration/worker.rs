//! The expiry worker: reads the time index in key order a window at a time and hands due
//! leases to per-mount lanes, each with its own concurrency limit, so one slow target system
//! never delays another mount's revocations.
//!
//! The loop holds no lock while engines work. Memory is bounded by the lanes' queues: leases
//! are read from storage only when a lane is about to revoke them.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, PoisonError, Weak,
        atomic::{AtomicI64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use mayfly_sdk::{Error, Result};
use tokio::sync::{Notify, Semaphore};

use super::{DEFAULT_REVOKE_CONCURRENCY, parse_time_child, revoke::Mode, time_key};
use crate::{Core, Unsealed};

/// Keys of the time index read per pass at most, so a huge backlog is worked through in
/// fair slices rather than read at once.
const SCAN_BUDGET: usize = 4096;
/// The longest the loop sleeps: leases registered meanwhile are never later than this.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// Leases a lane may have waiting per unit of its concurrency.
const QUEUE_PER_SLOT: usize = 8;
/// Due leases skipped in a row because their lanes are full after which a pass gives up: the
/// lanes wake the loop when they have room, so rescanning meanwhile would only take CPU
/// from the revocations themselves.
const STALL_AFTER_SKIPS: usize = 256;

/// One mount's revocations.
struct Lane {
    concurrency: u32,
    permits: Arc<Semaphore>,
    queued: AtomicUsize,
}

impl Lane {
    fn capacity(&self) -> usize {
        self.concurrency as usize * QUEUE_PER_SLOT
    }
}

/// State shared by the loop, the lane tasks and whoever registers leases.
pub(crate) struct Scheduler {
    wake: Notify,
    /// The Unix time (ms) the loop will next look at the index by itself; a lease due
    /// earlier wakes it.
    sleeping_until: AtomicI64,
    /// Lease IDs handed to a lane and not finished.
    queued: Mutex<HashSet<String>>,
    lanes: Mutex<HashMap<String, Arc<Lane>>>,
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler {
            wake: Notify::new(),
            sleeping_until: AtomicI64::new(0),
            queued: Mutex::new(HashSet::new()),
            lanes: Mutex::new(HashMap::new()),
        }
    }
}

impl Scheduler {
    /// A lease became due at `due`: wake the loop if it would otherwise look too late.
    pub(crate) fn due_at(&self, due: i64) {
        if due < self.sleeping_until.load(Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }

    fn lane(&self, mount: &str, concurrency: u32) -> Arc<Lane> {
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(lane) = lanes.get(mount)
            && lane.concurrency == concurrency
        {
            return lane.clone();
        }
        // A retuned mount gets a new lane; work queued on the old one finishes there.
        let lane = Arc::new(Lane {
            concurrency,
            permits: Arc::new(Semaphore::new(concurrency as usize)),
            queued: AtomicUsize::new(0),
        });
        lanes.insert(mount.to_owned(), lane.clone());
        lane
    }

    fn queued(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.queued.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs the loop until the unseal `generation` ends.
pub(crate) async fn run(core: Weak<Core>, generation: u64) {
    let mut cursor = String::new();
    loop {
        let Some(strong) = core.upgrade() else { break };
        if !strong.is_current_generation(generation) {
            break;
        }
        let Ok(unsealed) = strong.unsealed() else {
            break;
        };
        let wait = match strong.expiry_pass(&unsealed, &mut cursor).await {
            Ok(wait) => wait,
            Err(Error::Sealed) => break,
            Err(err) => {
                tracing::warn!(error = %err, "Lease expiry pass failed; retrying.");
                MAX_SLEEP
            }
        };
        drop(strong);
        if wait.is_zero() {
            tokio::task::yield_now().await;
            continue;
        }
        let scheduler = &unsealed.expiration.scheduler;
        let now = unsealed.expiration.clock().unix_ms();
        scheduler.sleeping_until.store(
            now + i64::try_from(wait.as_millis()).unwrap_or(0),
            Ordering::Relaxed,
        );
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = scheduler.wake.notified() => {}
        }
    }
}

impl Core {
    /// One pass over the due part of the time index, from `cursor`. Returns how long to wait
    /// before the next pass.
    async fn expiry_pass(
        self: &Arc<Self>,
        unsealed: &Arc<Unsealed>,
        cursor: &mut String,
    ) -> Result<Duration> {
        let expiration = &unsealed.expiration;
        let scheduler = &expiration.scheduler;
        let now = expiration.clock().unix_ms();
        // A lease registered during the pass that is due within the second triggers
        // another pass right after this one.
        scheduler
            .sleeping_until
            .store(now + 1000, Ordering::Relaxed);
        let router = unsealed.mounts.router();
        let mut scanned = 0;
        let mut page_size = 64;
        let mut next_due = None;
        let mut reached_end = false;
        let mut skipped_in_a_row = 0;
        'scan: while scanned < SCAN_BUDGET {
            let page = expiration
                .view
                .list_page("time/", cursor, page_size)
                .await?;
            page_size = 512;
            if page.is_empty() {
                reached_end = true;
                break;
            }
            for child in page {
                scanned += 1;
                let Some((due, lease_id)) = parse_time_child(&child) else {
                    *cursor = child;
                    continue;
                };
                if due > now {
                    next_due = Some(due);
                    reached_end = true;
                    break 'scan;
                }
                *cursor = child;
                if scheduler.queued().contains(&lease_id) {
                    continue;
                }
                let (mount, concurrency) = match router.route(&lease_id) {
                    Some(route) => (
                        route.entry.path.clone(),
                        match route.entry.config.lease_revoke_concurrency {
                            0 => DEFAULT_REVOKE_CONCURRENCY,
                            n => n,
                        },
                    ),
                    None => (String::new(), DEFAULT_REVOKE_CONCURRENCY),
                };
                let lane = scheduler.lane(&mount, concurrency);
                if lane.queued.load(Ordering::Relaxed) >= lane.capacity() {
                    skipped_in_a_row += 1;
                    if skipped_in_a_row >= STALL_AFTER_SKIPS {
                        // The next pass starts over, from the earliest lease skipped.
                        cursor.clear();
                        return Ok(MAX_SLEEP);
                    }
                    continue;
                }
                skipped_in_a_row = 0;
                lane.queued.fetch_add(1, Ordering::Relaxed);
                scheduler.queued().insert(lease_id.clone());
                let core = self.clone();
                let unsealed = unsealed.clone();
                tokio::spawn(async move {
                    let permit = lane.permits.clone().acquire_owned().await;
                    if permit.is_ok()
                        && let Err(err) = core.process_due(&unsealed, &lease_id, due).await
                        && !matches!(err, Error::Sealed)
                    {
                        tracing::warn!(lease_id = %lease_id, error = %err, "Processing an expired lease failed.");
                    }
                    drop(permit);
                    let scheduler = &unsealed.expiration.scheduler;
                    scheduler.queued().remove(&lease_id);
                    let before = lane.queued.fetch_sub(1, Ordering::Relaxed);
                    // A lane that was full has room again: look for the leases it skipped.
                    if before == lane.capacity() / 2 || before == lane.capacity() {
                        scheduler.wake.notify_one();
                    }
                });
            }
        }
        if !reached_end {
            return Ok(Duration::ZERO);
        }
        cursor.clear();
        let wait = match next_due {
            Some(due) => Duration::from_millis((due - now).max(0) as u64).min(MAX_SLEEP),
            None => MAX_SLEEP,
        };
        Ok(wait.max(Duration::from_millis(1)))
    }

    /// Revokes one lease the index says is due at `due`, unless something else holds it or
    /// it changed since it was listed.
    async fn process_due(&self, unsealed: &Arc<Unsealed>, lease_id: &str, due: i64) -> Result<()> {
        let expiration = &unsealed.expiration;
        // A client revoking or renewing it right now decides; the next pass looks again.
        let Some(_guard) = expiration.try_lock(lease_id) else {
            return Ok(());
        };
        let entry = expiration.entry(lease_id).await?;
        match entry {
            Some(entry) if entry.due == Some(due) => {
                if due > expiration.clock().unix_ms() {
                    return Ok(());
                }
                self.revoke_locked(unsealed, entry, Mode::Worker).await
            }
            // The index key is left over (a crash cannot leave one, but a renewal racing the
            // listing can): remove it.
            _ => mayfly_sdk::Storage::delete(&expiration.view, &time_key(due, lease_id)).await,
        }
    }
}
