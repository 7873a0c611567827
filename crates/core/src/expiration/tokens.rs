//! Token leases: a token and its lease are created, renewed and deleted together, and
//! revoking a token revokes its children and, lazily, every lease they created.

use mayfly_sdk::{Error, Result};

use super::{
    Expiration, LeaseEntry, LeaseKind,
    register::{MountRef, current_admission},
};
use crate::{
    Core,
    token::{NewToken, TokenEntry, TokenStore},
    view::Txn,
};

/// A token's lease ID: `<token path>/<salted hash>`, as Vault names them.
pub(crate) fn token_lease_id(path: &str, hash: &str) -> String {
    format!("{}/{hash}", path.trim_end_matches('/'))
}

fn token_lease(entry: &TokenEntry, mount: &MountRef) -> LeaseEntry {
    let expire = entry.expire_time.map(|secs| secs * 1000);
    LeaseEntry {
        version: 1,
        lease_id: token_lease_id(&entry.path, &entry.id_hash),
        kind: LeaseKind::Token,
        path: entry.path.clone(),
        mount_path: mount.path.clone(),
        mount_uuid: mount.uuid.clone(),
        mount_accessor: mount.accessor.clone(),
        secret_type: String::new(),
        internal_data: serde_json::Map::new(),
        renewable: entry.renewable,
        ttl: entry.creation_ttl,
        max_ttl: entry.explicit_max_ttl,
        token_hash: Some(entry.id_hash.clone()),
        issue_time: entry.creation_time * 1000,
        expire_time: expire,
        last_renewal: None,
        due: expire,
        attempts: 0,
        last_error: None,
        irrevocable: false,
    }
}

/// Creates a token and its lease in one transaction.
pub(crate) async fn issue_token_with(
    tokens: &TokenStore,
    expiration: &Expiration,
    mount: &MountRef,
    new: NewToken,
) -> Result<(String, TokenEntry)> {
    let (token, entry) = tokens.prepare(new).await?;
    let mut txn = Txn::new();
    tokens.stage_create(&entry, &mut txn)?;
    let lease = token_lease(&entry, mount);
    expiration
        .register(&lease, txn, current_admission().as_ref())
        .await?;
    tokens.remember(&entry);
    Ok((token, entry))
}

/// How many leases are marked or revoked at once by bulk operations: enough for the file
/// backend to group-commit many of them per fsync.
pub(crate) const BULK_CONCURRENCY: usize = 64;

impl Core {
    /// Creates a token (with its lease) as the current request's quota allows.
    pub async fn issue_token(&self, new: NewToken) -> Result<(String, TokenEntry)> {
        let unsealed = self.unsealed()?;
        let mount = self.mount_ref(&new.path)?;
        issue_token_with(&unsealed.tokens, &unsealed.expiration, &mount, new).await
    }

    /// Revokes a token and its descendants, and (lazily) every lease they created.
    /// Unknown tokens are already revoked.
    pub async fn revoke_token_tree(&self, hash: &str) -> Result<()> {
        self.revoke_tree_from(hash, None).await
    }

    /// Revokes the tree under `root`, children before parents, so a crash half-way leaves a
    /// smaller tree that a retry finishes. `held` is the lease lock the caller already holds
    /// (the expiry worker revoking the root's own lease).
    pub(crate) async fn revoke_tree_from(&self, root: &str, held: Option<&str>) -> Result<()> {
        let unsealed = self.unsealed()?;
        let mut stack: Vec<(String, Option<String>)> = vec![(root.to_owned(), None)];
        let mut revoked = Vec::new();
        while let Some((hash, parent)) = stack.last().cloned() {
            let children = unsealed.tokens.children_page(&hash, "", 256).await?;
            if !children.is_empty() {
                stack.extend(
                    children
                        .into_iter()
                        .map(|child| (child, Some(hash.clone()))),
                );
                continue;
            }
            stack.pop();
            self.revoke_one_token(&hash, parent.as_deref(), held)
                .await?;
            revoked.push(hash);
        }
        self.after_token_revocation(&revoked).await;
        Ok(())
    }

    /// Revokes one token whose children are gone: marks the leases it created due, then
    /// deletes the token and its lease together.
    pub(crate) async fn revoke_one_token(
        &self,
        hash: &str,
        parent: Option<&str>,
        held: Option<&str>,
    ) -> Result<()> {
        let unsealed = self.unsealed()?;
        let (tokens, expiration) = (&unsealed.tokens, &unsealed.expiration);
        self.mark_token_leases_due(hash).await?;
        let lease_id = tokens
            .entry_any(hash)
            .await?
            .map(|entry| token_lease_id(&entry.path, hash));
        let _lease_guard = match &lease_id {
            Some(id) if Some(id.as_str()) != held => Some(expiration.lock(id).await),
            _ => None,
        };
        let _token_guard = tokens.lock(hash).await;
        let entry = tokens.entry_any(hash).await?;
        let lease = match &lease_id {
            Some(id) => expiration.entry(id).await?,
            None => None,
        };
        let mut txn = Txn::new();
        tokens.stage_delete(hash, entry.as_ref(), parent, &mut txn)?;
        let _gate = expiration.quotas.shared().await;
        let (delta, quota_ids) = match &lease {
            Some(lease) => {
                expiration.stage_delete(lease, &mut txn)?;
                let quota_ids = expiration.quotas.covering(&lease.lease_id);
                (Expiration::delete_delta(lease, &quota_ids), quota_ids)
            }
            None => Default::default(),
        };
        tokens.forget(hash);
        expiration.commit_delete(txn, &delta, &quota_ids).await?;
        tokens.forget(hash);
        Ok(())
    }

    /// Revokes one token alone: its children become orphans.
    pub(crate) async fn revoke_token_orphan(&self, hash: &str) -> Result<()> {
        let unsealed = self.unsealed()?;
        unsealed.tokens.orphan_children(hash).await?;
        let parent = unsealed
            .tokens
            .entry_any(hash)
            .await?
            .and_then(|entry| entry.parent_hash);
        self.revoke_one_token(hash, parent.as_deref(), None).await?;
        self.after_token_revocation(&[hash.to_owned()]).await;
        Ok(())
    }

    /// Marks every lease created with a token due now; the expiry worker revokes them.
    pub(crate) async fn mark_token_leases_due(&self, hash: &str) -> Result<()> {
        let unsealed = self.unsealed()?;
        let expiration = &unsealed.expiration;
        let folder = format!("token/{hash}/");
        let mut after = String::new();
        loop {
            let page = expiration.view.list_page(&folder, &after, 512).await?;
            let Some(last) = page.last().cloned() else {
                return Ok(());
            };
            let ids = page
                .iter()
                .map(|escaped| super::unescape(escaped))
                .collect();
            self.mark_due_all(ids).await?;
            after = last;
        }
    }

    /// Saves a token renewal: the entry and its lease's new expiry, together.
    pub(crate) async fn save_token_renewal(&self, renewed: &TokenEntry) -> Result<()> {
        let unsealed = self.unsealed()?;
        let (tokens, expiration) = (&unsealed.tokens, &unsealed.expiration);
        let lease_id = token_lease_id(&renewed.path, &renewed.id_hash);
        let _lease_guard = expiration.lock(&lease_id).await;
        let _token_guard = tokens.lock(&renewed.id_hash).await;
        if tokens.entry_any(&renewed.id_hash).await?.is_none() {
            return Err(Error::invalid("token was revoked during renewal"));
        }
        let mut txn = Txn::new();
        tokens.stage_update(renewed, &mut txn)?;
        let lease = expiration.entry(&lease_id).await?;
        if let Some(lease) = &lease {
            let expire = renewed.expire_time.map(|secs| secs * 1000);
            let mut next = lease.clone();
            next.expire_time = expire;
            next.due = expire;
            next.last_renewal = Some(expiration.clock().unix_ms());
            next.attempts = 0;
            next.last_error = None;
            expiration.stage_put(&next, Some(lease), &mut txn)?;
        }
        tokens.forget(&renewed.id_hash);
        txn.commit(expiration.view.barrier()).await?;
        tokens.remember(renewed);
        if let Some(due) = renewed.expire_time {
            expiration.scheduler.due_at(due * 1000);
        }
        Ok(())
    }
}
