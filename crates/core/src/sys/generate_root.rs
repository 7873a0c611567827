//! `sys/generate-root`: a new root token from a quorum of unseal keys, delivered encrypted
//! with a one-time pad so nobody who sees the response in transit can use it.

use std::sync::Arc;

use base64::Engine;
use mayfly_barrier::UnsealKey;
use mayfly_sdk::{
    Error, Operation, RawResponse, Request, Response, Result,
    framework::{Field, FieldData, FieldKind, Path, handler},
};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::{
    Core,
    random::{random_base62, uuid},
    token::ROOT_TOKEN_LENGTH,
};

/// An attempt in progress. Dropped (and its shares zeroized) on completion, cancel or seal.
pub struct GenerateRootState {
    nonce: String,
    otp: Zeroizing<String>,
    keys: Vec<UnsealKey>,
}

pub(super) fn paths() -> Vec<Path<Core>> {
    vec![
        Path::new("generate-root(/attempt)?")
            .field(Field::new(
                "otp",
                FieldKind::String,
                "A one-time pad as long as a root token.",
            ))
            .field(Field::new("pgp_key", FieldKind::String, "Not supported."))
            .operation(Operation::Read, handler(status))
            .operation(Operation::Update, handler(start))
            .operation(Operation::Delete, handler(cancel))
            .help(
                "Root token generation.",
                "Starts, reports or cancels a root token generation.",
            ),
        Path::new("generate-root/update")
            .field(Field::new("key", FieldKind::String, "An unseal key share."))
            .field(Field::new(
                "nonce",
                FieldKind::String,
                "The attempt's nonce.",
            ))
            .operation(Operation::Update, handler(update))
            .help(
                "Root token generation progress.",
                "Submits one unseal key share.",
            ),
    ]
}

async fn required_shares(core: &Core) -> Result<u8> {
    Ok(core.unseal_status().await?.threshold)
}

fn body(state: Option<&GenerateRootState>, required: u8, otp: &str) -> Value {
    json!({
        "started": state.is_some(),
        "nonce": state.map(|s| s.nonce.as_str()).unwrap_or(""),
        "progress": state.map(|s| s.keys.len()).unwrap_or(0),
        "required": required,
        "complete": false,
        "encoded_token": "",
        "encoded_root_token": "",
        "pgp_fingerprint": "",
        "otp": otp,
        "otp_length": ROOT_TOKEN_LENGTH,
    })
}

fn raw(body: Value) -> Option<Response> {
    Some(Response::raw(RawResponse::json(200, &body)))
}

async fn status(core: Arc<Core>, _: Request, _: FieldData) -> Result<Option<Response>> {
    core.unsealed()?;
    let required = required_shares(&core).await?;
    let attempt = core.generate_root.lock().await;
    Ok(raw(body(attempt.as_ref(), required, "")))
}

async fn start(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    core.unsealed()?;
    if fields.string("pgp_key").is_some_and(|key| !key.is_empty()) {
        return Err(Error::invalid(
            "PGP-encrypted root tokens are not supported",
        ));
    }
    let required = required_shares(&core).await?;
    let mut attempt = core.generate_root.lock().await;
    if attempt.is_some() {
        return Err(Error::invalid("root generation already in progress"));
    }
    // A caller-supplied pad is accepted as long as it can cover the whole token; otherwise
    // the server makes one and returns it once, in this response.
    let (otp, reveal) = match fields.string("otp").filter(|otp| !otp.is_empty()) {
        Some(otp) if otp.len() == ROOT_TOKEN_LENGTH => (otp, false),
        Some(_) => {
            return Err(Error::invalid(format!(
                "OTP must be {ROOT_TOKEN_LENGTH} characters long"
            )));
        }
        None => (random_base62(ROOT_TOKEN_LENGTH), true),
    };
    let state = GenerateRootState {
        nonce: uuid(),
        otp: Zeroizing::new(otp),
        keys: Vec::new(),
    };
    let shown = if reveal {
        state.otp.to_string()
    } else {
        String::new()
    };
    let response = body(Some(&state), required, &shown);
    *attempt = Some(state);
    Ok(raw(response))
}

async fn cancel(core: Arc<Core>, _: Request, _: FieldData) -> Result<Option<Response>> {
    core.unsealed()?;
    *core.generate_root.lock().await = None;
    Ok(None)
}

async fn update(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    core.unsealed()?;
    let key = fields
        .string("key")
        .filter(|key| !key.is_empty())
        .ok_or_else(|| Error::invalid("missing key"))?;
    let nonce = fields
        .string("nonce")
        .filter(|nonce| !nonce.is_empty())
        .ok_or_else(|| Error::invalid("missing nonce"))?;
    let key = UnsealKey::decode(&key).map_err(|err| Error::invalid(err.to_string()))?;
    let required = required_shares(&core).await?;
    let mut attempt = core.generate_root.lock().await;
    let state = attempt
        .as_mut()
        .ok_or_else(|| Error::invalid("no root generation in progress"))?;
    if state.nonce != nonce {
        return Err(Error::invalid("incorrect nonce"));
    }
    if !state
        .keys
        .iter()
        .any(|known| known.as_bytes() == key.as_bytes())
    {
        state.keys.push(key);
    }
    if state.keys.len() < required as usize {
        return Ok(raw(body(Some(state), required, "")));
    }
    if core.seal_handle().verify_shares(&state.keys).await.is_err() {
        state.keys.clear();
        return Err(Error::invalid(
            "the unseal keys given do not combine to the root key; progress was reset",
        ));
    }
    let (token, _) = core.issue_token(crate::token::NewToken::root(None)).await?;
    let encoded = encode_with_otp(&token, &state.otp);
    let nonce = state.nonce.clone();
    *attempt = None;
    tracing::info!("A root token was generated with unseal keys.");
    Ok(raw(json!({
        "started": true,
        "nonce": nonce,
        "progress": required,
        "required": required,
        "complete": true,
        "encoded_token": encoded,
        "encoded_root_token": encoded,
        "pgp_fingerprint": "",
        "otp": "",
        "otp_length": ROOT_TOKEN_LENGTH,
    })))
}

/// XORs the token with the pad and base64-encodes it without padding, as Vault's CLI decodes.
pub fn encode_with_otp(token: &str, otp: &str) -> String {
    let mixed: Zeroizing<Vec<u8>> = Zeroizing::new(
        token
            .bytes()
            .zip(otp.bytes())
            .map(|(token_byte, pad_byte)| token_byte ^ pad_byte)
            .collect(),
    );
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(mixed.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otp_encoding_round_trips() {
        let token = "hvs.abcdefghijklmnopqrstuvwx";
        let otp = random_base62(token.len());
        let encoded = encode_with_otp(token, &otp);
        let mixed = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(encoded)
            .unwrap();
        let decoded: Vec<u8> = mixed.iter().zip(otp.bytes()).map(|(a, b)| a ^ b).collect();
        assert_eq!(decoded, token.as_bytes());
    }
}
