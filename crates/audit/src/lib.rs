//! The audit log's tamper-evident format: salted HMACs of logged values, the per-device hash
//! chain, signed checkpoints, and the offline verifier.
//!
//! The server writes audit entries in Vault's JSON format and this crate adds the evidence; the
//! CLI (`mayfly audit verify`) checks it without any server crate. So this crate depends on
//! nothing but `serde_json` and `aws-lc-rs`.
//!
//! # Line format (version 1)
//!
//! Every line a device writes is `PREFIX JSON "\n"`, where `PREFIX` is the device's `prefix`
//! option (usually empty) and `JSON` is an object whose **last** member is the chain link:
//!
//! ```text
//! {"time":"…","type":"request",…,"chain":{"seq":41,"prev":"<64 hex>","hash":"<64 hex>"}}
//! ```
//!
//! - `seq` counts lines of the device from 0, with no gaps, across files and restarts.
//! - `prev` is the `hash` of the line with `seq - 1` (64 zeros for the very first line).
//! - `hash` is `SHA-256(prev as 32 bytes ‖ body)`, where `body` is the JSON object exactly as
//!   written but without its chain member: the bytes before `,"chain":` followed by `}`.
//!   Editing any byte of the body, including whitespace, changes the hash.
//!
//! Three kinds of line share the chain, told apart by `type`:
//!
//! - `request` and `response`: Vault's audit entries.
//! - `mayfly-audit-header`: starts every file the device opens (and every new connection of a
//!   socket device). It carries the device's Ed25519 public key (`public_key`, hex), the
//!   `prefix` (so a verifier can find the JSON), and a `signature`.
//! - `mayfly-audit-checkpoint`: written every [`CHECKPOINT_EVERY`] lines, about once a second
//!   while the device is busy, before a file is reopened, and on shutdown. Its `signature`
//!   covers everything before it.
//!
//! A signature is Ed25519 over [`signature_message`]: a domain string, the line kind, the
//! line's `seq` (8 bytes, big-endian) and its `prev` (32 bytes). Since `prev` commits to every
//! earlier line, a checkpoint signs the whole log up to it.
//!
//! # What verification proves
//!
//! The chain alone shows where a line was edited, removed or moved: a hash mismatch, a gap in
//! `seq`, a `seq` out of order, or a `prev` that does not match. Someone who can write the
//! file could recompute the chain after an edit, but not the checkpoint signatures without the
//! device's private key, which never leaves the server's encrypted storage. Lines after the
//! last checkpoint are chained but not yet signed; the verifier reports how many. Someone who
//! rewrites a whole file with a key of their own is caught by pinning the public key that
//! `sys/audit` reports (`mayfly audit verify -public-key=…`).

pub mod chain;
pub mod salt;
pub mod verify;

/// Appends the lower-case hex of `bytes` to `out`. The `hex` crate's encoder goes through a
/// `char` iterator and a `String`, which shows up when every audit line needs several.
pub(crate) fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)]);
        out.push(DIGITS[usize::from(byte & 0x0f)]);
    }
}

pub use crate::chain::{
    CHECKPOINT_EVERY, CHECKPOINT_TYPE, ChainState, Digest, HEADER_TYPE, LineKind, SigningKey,
    signature_message,
};
pub use crate::salt::{HASH_PREFIX, Hashed, Salt};
pub use crate::verify::{Breach, BreachKind, Summary, Verifier, VerifyError};

/// Why key material could not be created or loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the system random generator failed")]
    Random,
    #[error("invalid signing key: {0}")]
    InvalidKey(String),
    #[error("invalid public key: expected 64 hex digits")]
    InvalidPublicKey,
}
