//! Reading the lease indexes: listing by prefix, the irrevocable leases, and tidying.

use std::sync::atomic::Ordering;

use mayfly_sdk::{Error, Result, Storage};

use super::{Expiration, LeaseEntry, id_key, parse_time_child, time_key, unescape};
use crate::Core;

impl Expiration {
    /// Lease ID suffixes directly under `prefix` (folders end in `/`), after `after`, at most
    /// `limit` (0 = all).
    pub async fn list_ids(&self, prefix: &str, after: &str, limit: usize) -> Result<Vec<String>> {
        self.view.list_page(&id_key(prefix), after, limit).await
    }

    /// How many leases lie under a quota path (keys are counted, entries are not read).
    pub(crate) async fn count_under(&self, path: &str) -> Result<i64> {
        let mut count = 0;
        let mut walker = super::revoke::LeaseWalker::new(self, path).await?;
        loop {
            let batch = walker.next_batch(self, 4096).await?;
            if batch.is_empty() {
                return Ok(count);
            }
            count += batch.len() as i64;
        }
    }

    /// Irrevocable leases, at most `limit`; the flag says whether more exist.
    pub async fn irrevocable(&self, limit: Option<usize>) -> Result<(Vec<LeaseEntry>, bool)> {
        let mut entries = Vec::new();
        let mut after = String::new();
        loop {
            let page = self.view.list_page("irrevocable/", &after, 512).await?;
            let Some(last) = page.last().cloned() else {
                return Ok((entries, false));
            };
            for escaped in page {
                if limit.is_some_and(|limit| entries.len() >= limit) {
                    return Ok((entries, true));
                }
                if let Some(entry) = self.entry(&unescape(&escaped)).await? {
                    entries.push(entry);
                }
            }
            after = last;
        }
    }
}

impl Core {
    /// Starts a tidy in the background unless one is running (`sys/leases/tidy`).
    pub(crate) fn start_lease_tidy(&self) -> Result<()> {
        let unsealed = self.unsealed()?;
        if unsealed.expiration.tidying.swap(true, Ordering::SeqCst) {
            tracing::warn!("A lease tidy is already running; not starting another.");
            return Ok(());
        }
        let core = self.me.upgrade().ok_or(Error::Sealed)?;
        tokio::spawn(async move {
            match core.tidy_leases().await {
                Ok((revoked, stale)) => tracing::info!(
                    leases_of_gone_tokens = revoked,
                    stale_index_entries = stale,
                    "Lease tidy finished."
                ),
                Err(err) => tracing::warn!(error = %err, "Lease tidy failed."),
            }
            if let Ok(unsealed) = core.unsealed() {
                unsealed.expiration.tidying.store(false, Ordering::SeqCst);
            }
        });
        Ok(())
    }

    /// Revokes leases whose creating token is gone and removes index entries that point at
    /// nothing. Returns how many of each it found.
    async fn tidy_leases(&self) -> Result<(usize, usize)> {
        let unsealed = self.unsealed()?;
        let expiration = &unsealed.expiration;
        let mut orphaned = 0;
        let mut stale = 0;
        let mut after = String::new();
        loop {
            let page = expiration.view.list_page("token/", &after, 256).await?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            for folder in page {
                let hash = folder.trim_end_matches('/');
                if unsealed.tokens.entry_any(hash).await?.is_none() {
                    let mut inner = String::new();
                    loop {
                        let leases = expiration
                            .view
                            .list_page(&format!("token/{folder}"), &inner, 512)
                            .await?;
                        let Some(last) = leases.last().cloned() else {
                            break;
                        };
                        orphaned += leases.len();
                        let ids: Vec<String> = leases.iter().map(|e| unescape(e)).collect();
                        for (escaped, id) in leases.iter().zip(&ids) {
                            // An index entry whose lease is gone is itself stale.
                            if expiration.entry(id).await?.is_none() {
                                expiration
                                    .view
                                    .delete(&format!("token/{folder}{escaped}"))
                                    .await?;
                                stale += 1;
                            }
                        }
                        self.mark_due_all(ids).await?;
                        inner = last;
                    }
                }
            }
            after = last;
        }
        let mut after = String::new();
        loop {
            let page = expiration.view.list_page("time/", &after, 1024).await?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            for child in page {
                let Some((due, lease_id)) = parse_time_child(&child) else {
                    continue;
                };
                let _guard = expiration.lock(&lease_id).await;
                let current = expiration.entry(&lease_id).await?;
                if current.is_none_or(|entry| entry.due != Some(due)) {
                    expiration.view.delete(&time_key(due, &lease_id)).await?;
                    stale += 1;
                }
            }
            after = last;
        }
        Ok((orphaned, stale))
    }
}
