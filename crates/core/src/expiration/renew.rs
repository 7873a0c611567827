//! Renewing a secret's lease (`sys/leases/renew`): the engine is asked first, then the TTL is
//! computed from now and capped at issue time plus the effective maximum.

use std::time::Duration;

use mayfly_sdk::{
    Error, Operation, Request, Response, Result,
    ttl::{TtlRequest, calculate_ttl},
};

use super::LeaseKind;
use crate::{Core, clock::from_unix_ms, view::Txn};

impl Core {
    /// Renews a secret lease by `increment` (zero: the engine's TTL).
    pub(crate) async fn renew_lease(
        &self,
        lease_id: &str,
        increment: Duration,
    ) -> Result<Response> {
        let unsealed = self.unsealed()?;
        let expiration = &unsealed.expiration;
        let _guard = expiration.lock(lease_id).await;
        let entry = expiration
            .entry(lease_id)
            .await?
            .ok_or_else(|| Error::invalid("lease not found"))?;
        let now_ms = expiration.clock().unix_ms();
        if entry.irrevocable {
            return Err(Error::invalid(
                "lease is expired and has failed previous revocation attempts",
            ));
        }
        let Some(expire) = entry.expire_time else {
            return Err(Error::invalid("lease is not renewable"));
        };
        if expire <= now_ms {
            return Err(Error::invalid("lease expired"));
        }
        if entry.kind == LeaseKind::Token {
            return Err(Error::invalid(
                "tokens cannot be renewed through this endpoint",
            ));
        }
        if !entry.renewable {
            return Err(Error::invalid("lease is not renewable"));
        }
        let route = Self::lease_route_for_renewal(&unsealed, &entry)?;
        let mut req = Request::new(Operation::Renew, entry.path.clone());
        req.mount_point = route.entry.path.clone();
        req.mount_type = route.entry.kind.clone();
        req.mount_ttls = route.entry.ttls(self.system_ttls());
        req.storage = Some(route.storage.clone());
        req.client_token_hash = entry.token_hash.clone();
        // Engines that act on the new lifetime (a database's VALID UNTIL) need the increment
        // the client asked for.
        if !increment.is_zero() {
            req.data
                .insert("increment".to_owned(), increment.as_secs().into());
        }
        let secret = Self::secret_of(&entry);
        let mut response = route
            .backend
            .renew_secret(req, secret)
            .await?
            .unwrap_or_default();
        let Some(mut granted) = response.secret.take() else {
            // The engine renewed without saying for how long: nothing changes.
            return Ok(response);
        };
        let now = expiration.clock().now();
        let decision = calculate_ttl(
            route.entry.ttls(self.system_ttls()),
            TtlRequest {
                increment,
                backend_ttl: granted.ttl,
                backend_max_ttl: granted.max_ttl,
                ..TtlRequest::issued_at(from_unix_ms(entry.issue_time))
            },
            now,
        )?;
        let now_ms = crate::clock::to_unix_ms(now);
        let expire = now_ms + i64::try_from(decision.ttl.as_millis()).unwrap_or(i64::MAX / 4);
        let mut next = entry.clone();
        next.expire_time = Some(expire);
        next.due = Some(expire);
        next.last_renewal = Some(now_ms);
        next.ttl = decision.ttl.as_secs();
        next.renewable = granted.renewable;
        if !granted.internal_data.is_empty() {
            next.internal_data = granted.internal_data.clone();
        }
        let mut txn = Txn::new();
        expiration.stage_put(&next, Some(&entry), &mut txn)?;
        txn.commit(expiration.view.barrier()).await?;
        granted.lease_id = lease_id.to_owned();
        granted.ttl = decision.ttl;
        granted.internal_data.clear();
        response.secret = Some(granted);
        response.warnings.extend(decision.warnings);
        Ok(response)
    }

    fn lease_route_for_renewal(
        unsealed: &crate::Unsealed,
        entry: &super::LeaseEntry,
    ) -> Result<std::sync::Arc<crate::mounts::RouteEntry>> {
        let router = unsealed.mounts.router();
        router
            .entries()
            .find(|mount| mount.uuid == entry.mount_uuid)
            .and_then(|mount| router.get(&mount.path).cloned())
            .ok_or_else(|| Error::invalid("the mount that issued this lease no longer exists"))
    }
}
