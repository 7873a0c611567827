//! Barrier key operations: key status, rotation, and rekeying the unseal keys.

use std::sync::Arc;

use mayfly_barrier::{RekeyProgress, RekeyStatus, UnsealKey};
use mayfly_sdk::{Error, RawResponse, Request, Response, Result, framework::FieldData};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use super::{non_empty, share_count};
use crate::{Core, view::barrier_error};

fn key_status_data(status: mayfly_barrier::KeyStatus) -> Response {
    Response::from_value(json!({
        "term": status.term,
        "install_time": status.install_time.format(&Rfc3339).unwrap_or_default(),
        "encryptions": status.encryptions,
    }))
}

pub(super) async fn key_status(
    core: Arc<Core>,
    _: Request,
    _: FieldData,
) -> Result<Option<Response>> {
    let status = core.barrier().key_status().map_err(barrier_error)?;
    Ok(Some(key_status_data(status)))
}

pub(super) async fn rotate(core: Arc<Core>, _: Request, _: FieldData) -> Result<Option<Response>> {
    let status = core.barrier().rotate().await.map_err(barrier_error)?;
    tracing::info!(term = status.term, "Barrier key rotated.");
    Ok(None)
}

fn rekey_status_body(status: &RekeyStatus) -> Value {
    json!({
        "started": status.started,
        "nonce": status.nonce,
        "t": status.threshold,
        "n": status.shares,
        "progress": status.progress,
        "required": status.required,
        "pgp_fingerprints": Value::Null,
        "backup": false,
        "verification_required": false,
    })
}

fn rekey_error(err: mayfly_barrier::Error) -> Error {
    match err {
        mayfly_barrier::Error::RekeyInProgress => Error::invalid("rekey already in progress"),
        mayfly_barrier::Error::RekeyNotInProgress => Error::invalid("no rekey in progress"),
        mayfly_barrier::Error::InvalidNonce => Error::invalid("incorrect nonce"),
        mayfly_barrier::Error::InvalidSealConfig(message) => Error::invalid(message),
        mayfly_barrier::Error::InvalidShare(message) => Error::invalid(message),
        mayfly_barrier::Error::InvalidUnsealKey => Error::invalid(
            "the unseal keys given do not combine to the root key; rekey progress was reset",
        ),
        other => barrier_error(other),
    }
}

fn raw(body: Value) -> Option<Response> {
    Some(Response::raw(RawResponse::json(200, &body)))
}

pub(super) async fn rekey_status(
    core: Arc<Core>,
    _: Request,
    _: FieldData,
) -> Result<Option<Response>> {
    core.unsealed()?;
    Ok(raw(rekey_status_body(&core.seal_handle().rekey_status())))
}

pub(super) async fn rekey_init(
    core: Arc<Core>,
    req: Request,
    _: FieldData,
) -> Result<Option<Response>> {
    core.unsealed()?;
    if non_empty(req.data.get("pgp_keys")) {
        return Err(Error::invalid(
            "PGP-encrypted unseal keys are not supported",
        ));
    }
    for unsupported in ["backup", "require_verification"] {
        if req.data.get(unsupported) == Some(&Value::Bool(true)) {
            return Err(Error::invalid(format!("{unsupported} is not supported")));
        }
    }
    let shares = share_count(&req.data, "secret_shares")?
        .ok_or_else(|| Error::invalid("secret_shares must be specified"))?;
    let threshold = share_count(&req.data, "secret_threshold")?
        .ok_or_else(|| Error::invalid("secret_threshold must be specified"))?;
    let status = core
        .seal_handle()
        .rekey_init(shares, threshold)
        .await
        .map_err(rekey_error)?;
    Ok(raw(rekey_status_body(&status)))
}

pub(super) async fn rekey_cancel(
    core: Arc<Core>,
    _: Request,
    _: FieldData,
) -> Result<Option<Response>> {
    core.unsealed()?;
    core.seal_handle().rekey_cancel();
    Ok(None)
}

pub(super) async fn rekey_update(
    core: Arc<Core>,
    _: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    core.unsealed()?;
    let key = fields
        .string("key")
        .filter(|key| !key.is_empty())
        .ok_or_else(|| Error::invalid("missing key"))?;
    let nonce = fields
        .string("nonce")
        .filter(|nonce| !nonce.is_empty())
        .ok_or_else(|| Error::invalid("missing nonce"))?;
    let key = UnsealKey::decode(&key).map_err(rekey_error)?;
    let progress = core
        .seal_handle()
        .rekey_update(&key, &nonce)
        .await
        .map_err(rekey_error)?;
    match progress {
        RekeyProgress::InProgress(status) => Ok(raw(rekey_status_body(&status))),
        RekeyProgress::Complete { nonce, keys } => {
            tracing::info!("Unseal keys rekeyed.");
            Ok(raw(json!({
                "complete": true,
                "nonce": nonce,
                "keys": keys.iter().map(UnsealKey::hex).collect::<Vec<_>>(),
                "keys_base64": keys.iter().map(UnsealKey::base64).collect::<Vec<_>>(),
                "pgp_fingerprints": Value::Null,
                "backup": false,
                "verification_required": false,
            })))
        }
    }
}
