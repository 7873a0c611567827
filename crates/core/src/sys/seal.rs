//! Init, unseal, seal and health: the routes that work while the server is sealed.

use std::{sync::Arc, time::SystemTime};

use mayfly_barrier::UnsealKey;
use mayfly_sdk::{Error, Operation, RawResponse, Request, Response, Result, framework::FieldData};
use serde_json::{Value, json};

use super::{lowercase_keys, non_empty, share_count};
use crate::Core;

fn raw(status: u16, body: Value) -> Option<Response> {
    Some(Response::raw(RawResponse::json(status, &body)))
}

pub(super) async fn init_status(
    core: Arc<Core>,
    _: Request,
    _: FieldData,
) -> Result<Option<Response>> {
    Ok(raw(
        200,
        json!({ "initialized": core.is_initialized().await? }),
    ))
}

pub(super) async fn init(core: Arc<Core>, req: Request, _: FieldData) -> Result<Option<Response>> {
    let data = &req.data;
    if non_empty(data.get("pgp_keys")) || non_empty(data.get("root_token_pgp_key")) {
        return Err(Error::invalid(
            "PGP-encrypted unseal keys and root tokens are not supported",
        ));
    }
    let shares = share_count(data, "secret_shares")?
        .ok_or_else(|| Error::invalid("secret_shares must be specified"))?;
    let threshold = share_count(data, "secret_threshold")?
        .ok_or_else(|| Error::invalid("secret_threshold must be specified"))?;
    let output = core.initialize(shares, threshold, None).await?;
    let hex: Vec<String> = output.keys.iter().map(UnsealKey::hex).collect();
    let base64: Vec<String> = output.keys.iter().map(UnsealKey::base64).collect();
    Ok(raw(
        200,
        json!({
            "keys": hex,
            "keys_base64": base64,
            "root_token": output.root_token,
        }),
    ))
}

/// The seal-status object, also returned by `sys/unseal`.
async fn seal_status_body(core: &Core) -> Result<Value> {
    let status = core.unseal_status().await?;
    let initialized = core.is_initialized().await?;
    let mut body = json!({
        "type": "shamir",
        "initialized": initialized,
        "sealed": core.is_sealed(),
        "t": status.threshold,
        "n": status.shares,
        "progress": status.progress,
        "nonce": status.nonce,
        "version": core.config().version,
        "build_date": "",
        "migration": false,
        "recovery_seal": false,
        "storage_type": core.storage_type(),
    });
    if let Ok(unsealed) = core.unsealed() {
        body["cluster_name"] = json!(unsealed.cluster.name);
        body["cluster_id"] = json!(unsealed.cluster.id);
    }
    Ok(body)
}

pub(super) async fn seal_status(
    core: Arc<Core>,
    _: Request,
    _: FieldData,
) -> Result<Option<Response>> {
    Ok(raw(200, seal_status_body(&core).await?))
}

pub(super) async fn unseal(
    core: Arc<Core>,
    req: Request,
    _: FieldData,
) -> Result<Option<Response>> {
    let data = lowercase_keys(&req.data);
    let reset = match data.get("reset") {
        Some(Value::Bool(flag)) => *flag,
        Some(Value::String(text)) => text == "true",
        _ => false,
    };
    if !core.is_initialized().await? {
        return Err(Error::invalid("Vault is not initialized"));
    }
    if reset {
        core.reset_unseal();
        return Ok(raw(200, seal_status_body(&core).await?));
    }
    let key = match data.get("key") {
        Some(Value::String(key)) if !key.is_empty() => key,
        _ => {
            return Err(Error::invalid(
                "'key' must be specified in request body as JSON, or 'reset' set to true",
            ));
        }
    };
    if !core.is_sealed() {
        return Err(Error::invalid("vault is unsealed"));
    }
    let key = UnsealKey::decode(key).map_err(|err| Error::invalid(err.to_string()))?;
    core.submit_unseal_key(&key).await?;
    Ok(raw(200, seal_status_body(&core).await?))
}

pub(super) async fn seal(core: Arc<Core>, _: Request, _: FieldData) -> Result<Option<Response>> {
    core.seal().await;
    Ok(None)
}

pub(super) async fn step_down(_: Arc<Core>, _: Request, _: FieldData) -> Result<Option<Response>> {
    // Without HA this node is the only active one; stepping down changes nothing.
    Ok(None)
}

pub(super) async fn leader(core: Arc<Core>, _: Request, _: FieldData) -> Result<Option<Response>> {
    core.unsealed()?;
    Ok(raw(
        200,
        json!({
            "ha_enabled": false,
            "is_self": false,
            "active_time": "0001-01-01T00:00:00Z",
            "leader_address": "",
            "leader_cluster_address": "",
            "performance_standby": false,
            "performance_standby_last_remote_wal": 0,
        }),
    ))
}

/// Reads a `*code` query parameter; a value that is not an integer is a 400, as in Vault.
fn status_override(req: &Request, name: &str, default: u16) -> Result<u16> {
    match req.data.get(name) {
        None => Ok(default),
        Some(Value::String(text)) => text
            .parse::<u16>()
            .ok()
            .filter(|code| (100..=999).contains(code))
            .ok_or_else(|| Error::invalid(format!("bad code: {name}={text}"))),
        Some(Value::Number(number)) => number
            .as_u64()
            .and_then(|code| u16::try_from(code).ok())
            .ok_or_else(|| Error::invalid(format!("bad code: {name}={number}"))),
        Some(_) => Err(Error::invalid(format!("bad code: {name}"))),
    }
}

fn query_flag(req: &Request, name: &str) -> bool {
    match req.data.get(name) {
        Some(Value::String(text)) => text.is_empty() || text == "true" || text == "1",
        Some(Value::Bool(flag)) => *flag,
        _ => false,
    }
}

pub(super) async fn health(
    core: Arc<Core>,
    req: Request,
    _: FieldData,
) -> Result<Option<Response>> {
    let initialized = core.is_initialized().await?;
    let sealed = core.is_sealed();
    // Every override is validated even when its condition does not apply, so a typo is caught.
    let active = status_override(&req, "activecode", 200)?;
    let uninit = status_override(&req, "uninitcode", 501)?;
    let sealed_code = status_override(&req, "sealedcode", 503)?;
    let mut standby = status_override(&req, "standbycode", 429)?;
    let mut perf_standby = status_override(&req, "performancestandbycode", 473)?;
    status_override(&req, "drsecondarycode", 472)?;
    status_override(&req, "removedcode", 530)?;
    status_override(&req, "haunhealthycode", 474)?;
    if query_flag(&req, "standbyok") {
        standby = active;
    }
    if query_flag(&req, "perfstandbyok") {
        perf_standby = active;
    }
    // This node is never a standby; the codes above are parsed for validation only.
    let _ = (standby, perf_standby);
    let status = if !initialized {
        uninit
    } else if sealed {
        sealed_code
    } else {
        active
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut body = json!({
        "initialized": initialized,
        "sealed": sealed,
        "standby": false,
        "performance_standby": false,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": now,
        "version": core.config().version,
        "enterprise": false,
        "echo_duration_ms": 0,
        "clock_skew_ms": 0,
        "removed_from_cluster": false,
    });
    if let Ok(unsealed) = core.unsealed() {
        body["cluster_name"] = json!(unsealed.cluster.name);
        body["cluster_id"] = json!(unsealed.cluster.id);
    }
    if req.operation == Operation::Header {
        return Ok(Some(Response::raw(RawResponse {
            status,
            content_type: "application/json".to_owned(),
            body: Vec::new(),
        })));
    }
    Ok(raw(status, body))
}
