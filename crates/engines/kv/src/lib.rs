//! The KV secrets engine, versions 1 and 2.
//!
//! Version 1 is Vault's pass-through store: one JSON object per path, overwritten on every
//! write. Version 2 keeps a history per key (`data/`, `metadata/`, `delete/`, `undelete/`,
//! `destroy/`, `subkeys/`, `config`) with check-and-set, soft deletion and automatic expiry.
//! Which one a mount gets is chosen by its `version` option, as in Vault.

use std::sync::Arc;

use mayfly_sdk::{Error, LogicalBackend, Result};
use serde_json::{Map, Value};

mod convert;
mod timefmt;
mod v1;
mod v2;

#[cfg(test)]
mod tests;

/// The key a write targets, refused when empty or ending in `/`: such a key would read back
/// as a folder in listings. The core refuses trailing-slash writes with the same message;
/// checking here keeps storage consistent whichever layer sees the request first.
pub(crate) fn writable_key(path: String) -> Result<String> {
    if path.is_empty() {
        return Err(Error::invalid("missing path"));
    }
    if path.ends_with('/') {
        return Err(Error::invalid("cannot write to a path ending in '/'"));
    }
    Ok(path)
}

/// The KV version a mount's options ask for: 1 when `version` is absent or empty, 1 or 2 when
/// it says so (as a string or a number), and 0 when it names anything else.
pub fn kv_version(options: &Map<String, Value>) -> u8 {
    match options.get("version") {
        None | Some(Value::Null) => 1,
        Some(Value::String(text)) => match text.as_str() {
            "" | "1" => 1,
            "2" => 2,
            _ => 0,
        },
        Some(Value::Number(number)) => match number.as_u64() {
            Some(1) => 1,
            Some(2) => 2,
            _ => 0,
        },
        Some(_) => 0,
    }
}

/// Builds a KV mount from its options (`{"version": "2"}` for KV v2).
///
/// An unsupported version is refused here so that enabling the mount fails, as it does in
/// Vault, instead of producing a mount that answers nothing.
pub fn new_backend(options: &Map<String, Value>) -> Result<Arc<dyn LogicalBackend>> {
    match kv_version(options) {
        1 => Ok(v1::mounted()),
        2 => Ok(v2::mounted()),
        _ => Err(Error::invalid(format!(
            "unsupported KV version {}: expected \"1\" or \"2\"",
            options
                .get("version")
                .map(Value::to_string)
                .unwrap_or_default()
        ))),
    }
}
