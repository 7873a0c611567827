//! Registering leases: a secret an engine handed out, or a token just created. The lease, its
//! indexes, its count and (for tokens) the token itself commit in one transaction.

use std::sync::Arc;

use mayfly_sdk::{
    Error, Operation, Request, Result, SecretLease,
    ttl::{TtlRequest, calculate_ttl},
};

use super::{Admission, Counts, Expiration, LeaseEntry, LeaseKind, revoke::stage_changes};
use crate::{
    Core,
    clock::to_unix_ms,
    mounts::{MountEntry, RouteEntry},
    random::random_base62,
    view::Txn,
};

tokio::task_local! {
    /// The quota reservation of the request being served, so that registrations made deep
    /// inside handlers (the token `auth/token/create` issues) use it.
    pub(crate) static ADMISSION: Option<Admission>;
}

/// The current request's reservation, if any.
pub(crate) fn current_admission() -> Option<Admission> {
    ADMISSION.try_with(Clone::clone).ok().flatten()
}

/// Which mount a lease belongs to.
#[derive(Debug, Clone, Default)]
pub(crate) struct MountRef {
    pub path: String,
    pub uuid: String,
    pub accessor: String,
}

impl From<&MountEntry> for MountRef {
    fn from(entry: &MountEntry) -> Self {
        MountRef {
            path: entry.path.clone(),
            uuid: entry.uuid.clone(),
            accessor: entry.accessor.clone(),
        }
    }
}

impl Expiration {
    /// Persists a new lease with `txn` (what else must commit with it) and charges the quotas
    /// covering it. Fails with 429, writing nothing, when a quota is full.
    pub(crate) async fn register(
        &self,
        entry: &LeaseEntry,
        mut txn: Txn,
        admission: Option<&Admission>,
    ) -> Result<()> {
        let _gate = self.quotas.shared().await;
        let charge = self.quotas.charge(&entry.lease_id, admission)?;
        let result = async {
            self.stage_put(entry, None, &mut txn)?;
            let mut delta = Counts::for_mount(&entry.mount_uuid, 1, 0);
            for id in &charge.ids {
                delta.by_quota.insert(id.clone(), 1);
            }
            self.counters.commit(txn, &delta).await
        }
        .await;
        self.quotas.settle(&charge, result.is_ok());
        result?;
        if let Some(due) = entry.due {
            self.scheduler.due_at(due);
        }
        Ok(())
    }
}

impl Core {
    /// Registers the lease of a secret `route`'s engine returned for `request_path`: computes
    /// its TTL, persists it and fills in the lease ID and granted TTL. Returns TTL warnings.
    /// On failure nothing is registered and the caller must revoke the secret.
    pub(crate) async fn register_secret(
        &self,
        route: &RouteEntry,
        request_path: &str,
        token_hash: Option<&str>,
        secret: &mut SecretLease,
    ) -> Result<Vec<String>> {
        let unsealed = self.unsealed()?;
        let expiration = &unsealed.expiration;
        let now = expiration.clock().now();
        let decision = calculate_ttl(
            route.entry.ttls(self.system_ttls()),
            TtlRequest {
                backend_ttl: secret.ttl,
                backend_max_ttl: secret.max_ttl,
                ..TtlRequest::issued_at(now)
            },
            now,
        )?;
        let now_ms = to_unix_ms(now);
        let expire = now_ms + i64::try_from(decision.ttl.as_millis()).unwrap_or(i64::MAX / 2);
        let lease_id = format!(
            "{}/{}",
            request_path.trim_end_matches('/'),
            random_base62(24)
        );
        let mount = MountRef::from(&route.entry);
        let entry = LeaseEntry {
            version: 1,
            lease_id: lease_id.clone(),
            kind: LeaseKind::Secret,
            path: request_path.to_owned(),
            mount_path: mount.path,
            mount_uuid: mount.uuid,
            mount_accessor: mount.accessor,
            secret_type: secret.secret_type.clone(),
            internal_data: secret.internal_data.clone(),
            renewable: secret.renewable,
            ttl: decision.ttl.as_secs(),
            max_ttl: secret.max_ttl.as_secs(),
            token_hash: token_hash.map(str::to_owned),
            issue_time: now_ms,
            expire_time: Some(expire),
            last_renewal: None,
            due: Some(expire),
            attempts: 0,
            last_error: None,
            irrevocable: false,
        };
        let txn = stage_changes(route, std::mem::take(&mut secret.commit_with_lease))?;
        expiration
            .register(&entry, txn, current_admission().as_ref())
            .await?;
        secret.lease_id = lease_id;
        secret.ttl = decision.ttl;
        Ok(decision.warnings)
    }

    /// Undoes a secret whose lease could not be registered, so no credential is left
    /// without a lease. Failures are logged: the registration error is what the client sees.
    pub(crate) async fn revoke_unregistered(
        &self,
        route: &Arc<RouteEntry>,
        request_path: &str,
        secret: &SecretLease,
    ) {
        let mut req = Request::new(Operation::Revoke, request_path);
        req.mount_point = route.entry.path.clone();
        req.mount_type = route.entry.kind.clone();
        req.mount_ttls = route.entry.ttls(self.system_ttls());
        req.storage = Some(route.storage.clone());
        let revoked = match route.backend.revoke_secret(req, secret.clone()).await {
            Ok(changes) => match stage_changes(route, changes) {
                Ok(txn) => txn.commit(route.storage.barrier()).await,
                Err(err) => Err(err),
            },
            Err(err) => Err(err),
        };
        if let Err(err) = revoked {
            tracing::error!(
                path = %request_path,
                error = %err,
                "A secret whose lease could not be registered could not be revoked either."
            );
        }
    }

    /// The mount a path belongs to (for token leases: the auth mount or `sys/` for wrapping).
    pub(crate) fn mount_ref(&self, path: &str) -> Result<MountRef> {
        let router = self.unsealed()?.mounts.router();
        router
            .route(path)
            .map(|route| MountRef::from(&route.entry))
            .ok_or_else(|| Error::internal(format!("no mount serves {path:?}")))
    }
}
