//! The `sys/` backend: seal lifecycle, health, barrier key operations, mounts, policies,
//! wrapping and audit devices.

mod audit;
pub mod generate_root;
mod keys;
pub(crate) mod leases;
mod mounts;
pub(crate) mod password_policies;
mod policies;
mod quotas;
mod seal;
mod wrapping;

use mayfly_sdk::{
    Error, Operation, Result,
    framework::{Field, FieldKind, FrameworkBackend, Path, handler},
};
use serde_json::{Map, Value};

use crate::Core;

/// Routes under `sys/` that need no token. Vault serves them to anyone; the unseal and
/// rekey flows are guarded by their keys and nonces instead.
const UNAUTHENTICATED: &[&str] = &[
    "init",
    "seal-status",
    "unseal",
    "health",
    "leader",
    "generate-root/attempt",
    "generate-root/update",
    "rekey/init",
    "rekey/update",
    "wrapping/lookup",
];

pub(crate) fn is_unauthenticated(relative_path: &str) -> bool {
    UNAUTHENTICATED.contains(&relative_path)
}

/// Routes Vault never audits: the seal lifecycle and health, which load balancers and
/// operators call constantly and which must keep working when no audit device can write.
const NEVER_AUDITED: &[&str] = &["init", "seal-status", "seal", "unseal", "leader", "health"];

/// Whether a request path (`sys/health`) is exempt from auditing.
pub(crate) fn is_never_audited(path: &str) -> bool {
    path.strip_prefix("sys/")
        .is_some_and(|relative| NEVER_AUDITED.contains(&relative.trim_end_matches('/')))
}

pub(crate) fn backend() -> FrameworkBackend<Core> {
    let mut paths = vec![
        Path::new("init")
            .field(Field::new(
                "secret_shares",
                FieldKind::Int,
                "Number of unseal key shares.",
            ))
            .field(Field::new(
                "secret_threshold",
                FieldKind::Int,
                "Shares needed to unseal.",
            ))
            .field(Field::new("pgp_keys", FieldKind::Raw, "Not supported."))
            .field(Field::new(
                "root_token_pgp_key",
                FieldKind::Raw,
                "Not supported.",
            ))
            .field(Field::new(
                "stored_shares",
                FieldKind::Int,
                "Ignored; Shamir only.",
            ))
            .field(Field::new(
                "recovery_shares",
                FieldKind::Int,
                "Ignored; Shamir only.",
            ))
            .field(Field::new(
                "recovery_threshold",
                FieldKind::Int,
                "Ignored; Shamir only.",
            ))
            .field(Field::new(
                "recovery_pgp_keys",
                FieldKind::Raw,
                "Ignored; Shamir only.",
            ))
            .operation(Operation::Read, handler(seal::init_status))
            .operation(Operation::Update, handler(seal::init))
            .help(
                "Initialize a new server.",
                "Creates the unseal keys and the initial root token.",
            ),
        Path::new("seal-status")
            .operation(Operation::Read, handler(seal::seal_status))
            .help(
                "Seal status.",
                "Reports whether the server is sealed and the unseal progress.",
            ),
        Path::new("unseal")
            .operation(Operation::Update, handler(seal::unseal))
            .help(
                "Unseal the server.",
                "Submits one unseal key share, or resets the progress.",
            ),
        Path::new("seal")
            .operation(Operation::Update, handler(seal::seal))
            .help(
                "Seal the server.",
                "Forgets the keys; nothing can be read until unsealed again.",
            ),
        Path::new("step-down")
            .operation(Operation::Update, handler(seal::step_down))
            .help(
                "Step down.",
                "Gives up the active role; a no-op without HA.",
            ),
        Path::new("leader")
            .operation(Operation::Read, handler(seal::leader))
            .help(
                "Leader status.",
                "Reports the HA leader; HA is not enabled.",
            ),
        Path::new("health")
            .operation(Operation::Read, handler(seal::health))
            .operation(Operation::Header, handler(seal::health))
            .help(
                "Health.",
                "Status codes for load balancers, overridable by query parameters.",
            ),
        Path::new("key-status")
            .operation(Operation::Read, handler(keys::key_status))
            .help(
                "Barrier key status.",
                "The active key term and when it was installed.",
            ),
        Path::new("rotate(/keyring)?")
            .operation(Operation::Update, handler(keys::rotate))
            .help(
                "Rotate the barrier key.",
                "Adds a new key term; old data stays readable.",
            ),
        Path::new("rekey/init")
            .field(Field::new(
                "secret_shares",
                FieldKind::Int,
                "Number of new key shares.",
            ))
            .field(Field::new(
                "secret_threshold",
                FieldKind::Int,
                "New threshold.",
            ))
            .field(Field::new("pgp_keys", FieldKind::Raw, "Not supported."))
            .field(Field::new("backup", FieldKind::Bool, "Not supported."))
            .field(Field::new(
                "require_verification",
                FieldKind::Bool,
                "Not supported.",
            ))
            .operation(Operation::Read, handler(keys::rekey_status))
            .operation(Operation::Update, handler(keys::rekey_init))
            .operation(Operation::Delete, handler(keys::rekey_cancel))
            .help(
                "Rekey.",
                "Starts, reports or cancels a rekey of the unseal keys.",
            ),
        Path::new("rekey/update")
            .field(Field::new(
                "key",
                FieldKind::String,
                "A current unseal key share.",
            ))
            .field(Field::new("nonce", FieldKind::String, "The rekey nonce."))
            .operation(Operation::Update, handler(keys::rekey_update))
            .help(
                "Rekey progress.",
                "Submits a current unseal key for the rekey in progress.",
            ),
    ];
    paths.extend(audit::paths());
    paths.extend(generate_root::paths());
    paths.extend(mounts::paths());
    paths.extend(policies::paths());
    paths.extend(password_policies::paths());
    paths.extend(wrapping::paths());
    paths.extend(leases::paths());
    paths.extend(quotas::paths());
    FrameworkBackend::new(
        "The system backend controls the server: sealing, health and keys.",
        paths,
    )
}

/// Request data with lower-cased keys: Vault decodes some raw endpoints case-insensitively.
fn lowercase_keys(data: &Map<String, Value>) -> Map<String, Value> {
    data.iter()
        .map(|(key, value)| (key.to_ascii_lowercase(), value.clone()))
        .collect()
}

/// Reads an optional integer in `1..=255` (share counts), with Vault-style messages.
fn share_count(data: &Map<String, Value>, name: &str) -> Result<Option<u8>> {
    let Some(value) = data.get(name) else {
        return Ok(None);
    };
    let number = match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        Value::Null => return Ok(None),
        _ => None,
    }
    .ok_or_else(|| Error::invalid(format!("{name} must be an integer")))?;
    if !(1..=255).contains(&number) {
        return Err(Error::invalid(format!("{name} must be between 1 and 255")));
    }
    Ok(Some(number as u8))
}

fn non_empty(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::String(text)) => !text.is_empty(),
        Some(Value::Array(items)) => !items.is_empty(),
        Some(_) => true,
    }
}
