//! `sys/leases/*` (and Vault's legacy `sys/renew`, `sys/revoke*`): look up, list, renew and
//! revoke leases, count them, list the irrevocable ones, and tidy the indexes.

use std::sync::Arc;

use mayfly_sdk::{
    Error, Operation, Request, Response, Result,
    framework::{Field, FieldData, FieldKind, Path, handler},
};
use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;

use crate::{
    Core,
    expiration::{LeaseEntry, Mode, RevokeFailure},
};

/// Irrevocable leases listed without `limit=none`, as in Vault.
const MAX_IRREVOCABLE_LISTED: usize = 10_000;

pub(super) fn paths() -> Vec<Path<Core>> {
    let lease_id = || Field::new("lease_id", FieldKind::String, "The lease ID.");
    let url_lease_id = || Field::new("url_lease_id", FieldKind::String, "The lease ID.");
    let sync = || {
        Field::new(
            "sync",
            FieldKind::Bool,
            "Wait for the revocation (true, the default) or queue it (false).",
        )
        .default_value(json!(true))
    };
    let renew = |pattern: &str| {
        Path::new(pattern)
            .field(lease_id())
            .field(url_lease_id())
            .field(Field::new(
                "increment",
                FieldKind::Duration,
                "Requested TTL from now; 0 means the engine's.",
            ))
            .operation(Operation::Update, handler(renew))
            .help(
                "Renew a lease.",
                "Extends a lease from now, up to its issue time plus its maximum TTL.",
            )
    };
    let revoke = |pattern: &str| {
        Path::new(pattern)
            .field(lease_id())
            .field(url_lease_id())
            .field(sync())
            .operation(Operation::Update, handler(revoke))
            .help(
                "Revoke a lease.",
                "Revokes the secret (or token) of a lease now, or queues it with sync=false.",
            )
    };
    let revoke_prefix = |pattern: &str| {
        Path::new(pattern)
            .field(Field::new(
                "prefix",
                FieldKind::String,
                "The lease ID prefix.",
            ))
            .field(sync())
            .operation(Operation::Update, handler(revoke_prefix))
            .help(
                "Revoke leases by prefix.",
                "Revokes every lease (and token) whose ID starts with the prefix.",
            )
    };
    let revoke_force = |pattern: &str| {
        Path::new(pattern)
            .field(Field::new(
                "prefix",
                FieldKind::String,
                "The lease ID prefix.",
            ))
            .operation(Operation::Update, handler(revoke_force))
            .help(
                "Force-revoke leases by prefix.",
                "Like revoke-prefix, but deletes the lease records even where the engine \
                 fails to revoke the secret. For recovery only: the secrets may live on.",
            )
    };
    vec![
        Path::new("leases/lookup")
            .field(lease_id())
            .operation(Operation::Update, handler(lookup))
            .help(
                "Look up a lease.",
                "Returns the times and state of a lease.",
            ),
        Path::new("leases/lookup/(?P<prefix>.*)")
            .field(Field::new(
                "prefix",
                FieldKind::String,
                "A lease ID prefix.",
            ))
            .field(Field::new(
                "after",
                FieldKind::String,
                "List only keys after this one.",
            ))
            .field(Field::new(
                "limit",
                FieldKind::Int,
                "List at most this many keys.",
            ))
            .operation(Operation::List, handler(lookup_list))
            .help(
                "List leases.",
                "Lists lease ID suffixes under a prefix; folders end in /.",
            ),
        renew(r"leases/renew(/(?P<url_lease_id>.+))?"),
        renew(r"renew(/(?P<url_lease_id>.+))?"),
        revoke(r"leases/revoke(/(?P<url_lease_id>.+))?"),
        revoke(r"revoke(/(?P<url_lease_id>.+))?"),
        revoke_prefix(r"leases/revoke-prefix/(?P<prefix>.+)"),
        revoke_prefix(r"revoke-prefix/(?P<prefix>.+)"),
        revoke_force(r"leases/revoke-force/(?P<prefix>.+)"),
        revoke_force(r"revoke-force/(?P<prefix>.+)"),
        Path::new("leases/tidy")
            .operation(Operation::Update, handler(tidy))
            .help(
                "Tidy the lease indexes.",
                "Revokes leases whose token is gone and removes stale index entries.",
            ),
        Path::new("leases/count")
            .field(Field::new(
                "type",
                FieldKind::String,
                "irrevocable, or all (the default, a Mayfly extension).",
            ))
            .field(Field::new(
                "include_child_namespaces",
                FieldKind::Bool,
                "Ignored: there are no namespaces.",
            ))
            .operation(Operation::Read, handler(count))
            .help(
                "Count leases.",
                "Lease counts, in total and by mount accessor.",
            ),
        Path::new("leases/?")
            .field(Field::new(
                "type",
                FieldKind::String,
                "Must be irrevocable.",
            ))
            .field(Field::new(
                "limit",
                FieldKind::String,
                "At most this many leases, or none for all.",
            ))
            .field(Field::new(
                "include_child_namespaces",
                FieldKind::Bool,
                "Ignored: there are no namespaces.",
            ))
            .operation(Operation::Read, handler(list_irrevocable))
            .help(
                "List irrevocable leases.",
                "Leases whose revocation ran out of attempts, with their last error.",
            ),
    ]
}

fn rfc3339(unix_ms: i64) -> Value {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .map(Value::String)
        .unwrap_or(Value::Null)
}

fn requested_lease_id(fields: &FieldData) -> Result<String> {
    fields
        .string("lease_id")
        .filter(|id| !id.is_empty())
        .or_else(|| fields.string("url_lease_id").filter(|id| !id.is_empty()))
        .ok_or_else(|| Error::invalid("lease_id must be specified"))
}

/// Whether a lookup reports the lease as renewable, by Vault's rules.
fn renewable_now(entry: &LeaseEntry, now: i64) -> bool {
    !entry.irrevocable && entry.renewable && entry.expire_time.is_some_and(|expire| expire > now)
}

async fn lookup(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    let lease_id = requested_lease_id(&fields)?;
    let unsealed = core.unsealed()?;
    let expiration = &unsealed.expiration;
    let entry = expiration
        .entry(&lease_id)
        .await?
        .ok_or_else(|| Error::invalid("invalid lease"))?;
    let now = expiration.clock().unix_ms();
    let mut data = Map::new();
    data.insert("id".into(), lease_id.into());
    data.insert("issue_time".into(), rfc3339(entry.issue_time));
    data.insert(
        "expire_time".into(),
        entry.expire_time.map(rfc3339).unwrap_or(Value::Null),
    );
    data.insert(
        "last_renewal".into(),
        entry.last_renewal.map(rfc3339).unwrap_or(Value::Null),
    );
    data.insert("renewable".into(), renewable_now(&entry, now).into());
    // Rounded to the nearest second, so a fresh 300 s lease shows 300, not 299.
    let ttl = entry
        .expire_time
        .map(|expire| ((expire - now + 500).div_euclid(1000)).max(0))
        .unwrap_or(0);
    data.insert("ttl".into(), ttl.into());
    if entry.irrevocable
        && let Some(error) = &entry.last_error
    {
        data.insert("revoke_error".into(), error.clone().into());
    }
    Ok(Some(Response::with_data(data)))
}

async fn lookup_list(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    let mut prefix = fields.string("prefix").unwrap_or_default();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    let limit = fields
        .int("limit")
        .map(|limit| usize::try_from(limit.max(0)).unwrap_or(0))
        .unwrap_or(0);
    let after = fields.string("after").unwrap_or_default();
    let keys = core
        .unsealed()?
        .expiration
        .list_ids(&prefix, &after, limit)
        .await?;
    Ok(Some(Response::list(keys)))
}

/// An engine's failure as Vault reports it from these endpoints: a 400 with its message.
fn as_client_error(err: Error) -> Error {
    match err {
        Error::Upstream(message) => Error::InvalidRequest(message),
        other => other,
    }
}

async fn renew(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    let lease_id = requested_lease_id(&fields)?;
    let increment = fields.duration("increment").unwrap_or_default();
    core.renew_lease(&lease_id, increment)
        .await
        .map(Some)
        .map_err(as_client_error)
}

async fn revoke(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    let lease_id = requested_lease_id(&fields)?;
    if fields.bool("sync").unwrap_or(true) {
        core.revoke_lease(&lease_id, Mode::Sync)
            .await
            .map_err(as_client_error)?;
        return Ok(None);
    }
    core.mark_due(&lease_id).await?;
    Ok(Some(accepted()))
}

fn accepted() -> Response {
    Response {
        status: Some(202),
        ..Response::default()
    }
}

/// The error for leases a synchronous prefix revocation could not revoke.
pub(crate) fn failures_error(prefix: &str, failures: &[RevokeFailure]) -> Error {
    const SHOWN: usize = 20;
    let mut listed: Vec<String> = failures
        .iter()
        .take(SHOWN)
        .map(|failure| format!("{}: {}", failure.lease_id, failure.error))
        .collect();
    if failures.len() > SHOWN {
        listed.push(format!("and {} more", failures.len() - SHOWN));
    }
    Error::invalid(format!(
        "failed to revoke {} lease(s) under {prefix:?}; they stay queued and will be retried, \
         or can be removed with sys/leases/revoke-force: {}",
        failures.len(),
        listed.join("; ")
    ))
}

async fn revoke_prefix(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    let prefix = fields.string("prefix").unwrap_or_default();
    let sync = fields.bool("sync").unwrap_or(true);
    let failures = core.revoke_prefix(&prefix, sync, false).await?;
    if !failures.is_empty() {
        return Err(failures_error(&prefix, &failures));
    }
    Ok((!sync).then(accepted))
}

async fn revoke_force(
    core: Arc<Core>,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let prefix = fields.string("prefix").unwrap_or_default();
    tracing::warn!(
        prefix = %prefix,
        accessor = req.client_token_accessor.as_deref().unwrap_or(""),
        "Force-revoking leases: engine errors are ignored and secrets may outlive their leases."
    );
    core.revoke_prefix(&prefix, true, true).await?;
    Ok(None)
}

async fn tidy(core: Arc<Core>, _: Request, _: FieldData) -> Result<Option<Response>> {
    core.start_lease_tidy()?;
    Ok(Some(Response {
        data: Some(Map::new()),
        warnings: vec![
            "Tidy operation successfully started. Any information from the operation will be printed to Vault's server logs."
                .to_owned(),
        ],
        status: Some(202),
        ..Response::default()
    }))
}

/// Mount accessors by UUID, for reporting counts the way Vault does.
fn accessor_of(core: &Core, uuid: &str) -> String {
    core.unsealed()
        .ok()
        .and_then(|unsealed| {
            unsealed
                .mounts
                .router()
                .entries()
                .find(|entry| entry.uuid == uuid)
                .map(|entry| entry.accessor.clone())
        })
        .unwrap_or_else(|| "mount-accessor-not-found".to_owned())
}

async fn count(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    let irrevocable = match fields
        .string("type")
        .unwrap_or_default()
        .to_lowercase()
        .as_str()
    {
        "irrevocable" => true,
        "" | "all" => false,
        other => {
            return Err(Error::invalid(format!(
                "invalid type {other:?}: expected irrevocable or all"
            )));
        }
    };
    let counts = core.unsealed()?.expiration.counts();
    let mut by_accessor = Map::new();
    for (uuid, mount) in &counts.by_mount {
        let n = if irrevocable {
            mount.irrevocable
        } else {
            mount.leases
        };
        if n != 0 {
            by_accessor.insert(accessor_of(&core, uuid), n.into());
        }
    }
    let total = if irrevocable {
        counts.irrevocable
    } else {
        counts.leases
    };
    Ok(Some(Response::from_value(json!({
        "lease_count": total,
        "counts": by_accessor,
    }))))
}

async fn list_irrevocable(
    core: Arc<Core>,
    _: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    if fields.string("type").unwrap_or_default().to_lowercase() != "irrevocable" {
        return Err(Error::invalid("type must be irrevocable"));
    }
    let limit = match fields
        .string("limit")
        .unwrap_or_default()
        .to_lowercase()
        .as_str()
    {
        "" => Some(MAX_IRREVOCABLE_LISTED),
        "none" => None,
        text => match text.parse::<usize>() {
            Ok(limit) if limit > 0 => Some(limit),
            _ => {
                return Err(Error::invalid("limit must be 'none' or a positive integer"));
            }
        },
    };
    let unsealed = core.unsealed()?;
    let (mut entries, truncated) = unsealed.expiration.irrevocable(limit).await?;
    entries.sort_by(|a, b| (a.expire_time, &a.lease_id).cmp(&(b.expire_time, &b.lease_id)));
    let leases: Vec<Value> = entries
        .iter()
        .map(|entry| {
            json!({
                "lease_id": entry.lease_id,
                "mount_id": accessor_of(&core, &entry.mount_uuid),
                "error": entry.last_error.clone().unwrap_or_default(),
            })
        })
        .collect();
    let mut response = Response::from_value(json!({
        "lease_count": leases.len(),
        "leases": leases,
    }));
    if truncated {
        response.warnings.push(
            "Command halted because many irrevocable leases were found. To emit the entire list, re-run the command with limit set to none."
                .to_owned(),
        );
    }
    Ok(Some(response))
}
