//! Writing the chain: sealing a line with its link, headers and signed checkpoints, and
//! reading a link back out of a line.

use std::fmt;

use aws_lc_rs::{
    digest,
    rand::SystemRandom,
    signature::{self, Ed25519KeyPair, KeyPair},
};
use serde::{Deserialize, Serialize};

use crate::Error;

/// `type` of the line that starts every file or connection.
pub const HEADER_TYPE: &str = "mayfly-audit-header";
/// `type` of a signed checkpoint line.
pub const CHECKPOINT_TYPE: &str = "mayfly-audit-checkpoint";
/// The format version written in headers.
pub const FORMAT_VERSION: u32 = 1;
/// A checkpoint follows at most this many lines; servers also write one about every second
/// while lines are unsigned, so the unsigned tail stays short at any rate.
pub const CHECKPOINT_EVERY: u64 = 1000;

/// What separates a line's body from its chain link. The link is always the last member, and
/// a key inside a string is escaped, so the last occurrence is the link.
const LINK_MARKER: &[u8] = b",\"chain\":{";
const SIGNATURE_DOMAIN: &[u8] = b"mayfly-audit-v1\0";
/// Room for the link: marker, three keys, a `u64` and two hex digests.
const LINK_LEN: usize = 200;

/// A SHA-256 value.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Option<Digest> {
        let bytes = hex::decode(text).ok()?;
        Some(Digest(bytes.try_into().ok()?))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Digest::from_hex(&text).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// Where a device's chain stands: the `seq` the next line gets and the hash of the last line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChainState {
    pub next_seq: u64,
    pub last_hash: Digest,
}

impl ChainState {
    /// Seals `body` (a JSON object with at least one member, as written) into a full line:
    /// prefix, body with the link appended, newline. Returns the line and the state after it;
    /// the caller adopts that state only once the line is written.
    pub fn seal(&self, prefix: &str, body: &[u8]) -> (Vec<u8>, ChainState) {
        let mut line = Vec::with_capacity(prefix.len() + body.len() + LINK_LEN);
        line.extend_from_slice(prefix.as_bytes());
        line.extend_from_slice(body);
        let next = self.seal_in_place(&mut line, prefix.len());
        (line, next)
    }

    /// [`ChainState::seal`] for a buffer that already holds the prefix and then the body from
    /// `body_start` on: appends the link and the newline in place, sparing a copy.
    pub fn seal_in_place(&self, line: &mut Vec<u8>, body_start: usize) -> ChainState {
        let hash = link_hash(&self.last_hash, &line[body_start..]);
        // The body's closing brace moves after the link.
        line.pop();
        line.reserve(LINK_LEN);
        line.extend_from_slice(LINK_MARKER);
        line.extend_from_slice(b"\"seq\":");
        line.extend_from_slice(self.next_seq.to_string().as_bytes());
        line.extend_from_slice(b",\"prev\":\"");
        crate::push_hex(line, &self.last_hash.0);
        line.extend_from_slice(b"\",\"hash\":\"");
        crate::push_hex(line, &hash.0);
        line.extend_from_slice(b"\"}}\n");
        ChainState {
            next_seq: self.next_seq + 1,
            last_hash: hash,
        }
    }

    /// A header line: starts a file or connection and names the key that signs it.
    pub fn header(
        &self,
        prefix: &str,
        time: &str,
        device: &str,
        key: &SigningKey,
    ) -> (Vec<u8>, ChainState) {
        let signature = key.sign(&signature_message(
            LineKind::Header,
            self.next_seq,
            &self.last_hash,
        ));
        let body = serde_json::json!({
            "type": HEADER_TYPE,
            "version": FORMAT_VERSION,
            "time": time,
            "device": device,
            "public_key": key.public_key_hex(),
            "prefix": prefix,
            "signature": hex::encode(signature),
        });
        self.seal(prefix, body.to_string().as_bytes())
    }

    /// A checkpoint line, whose signature covers every line before it.
    pub fn checkpoint(&self, prefix: &str, time: &str, key: &SigningKey) -> (Vec<u8>, ChainState) {
        let signature = key.sign(&signature_message(
            LineKind::Checkpoint,
            self.next_seq,
            &self.last_hash,
        ));
        let body = serde_json::json!({
            "type": CHECKPOINT_TYPE,
            "time": time,
            "signature": hex::encode(signature),
        });
        self.seal(prefix, body.to_string().as_bytes())
    }
}

/// `SHA-256(prev ‖ body)`.
pub fn link_hash(prev: &Digest, body: &[u8]) -> Digest {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(&prev.0);
    context.update(body);
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    Digest(out)
}

/// The signed line kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Header,
    Checkpoint,
}

/// What a header's or checkpoint's signature is over: a domain string, the kind, the line's
/// `seq` (big-endian) and `prev`.
pub fn signature_message(kind: LineKind, seq: u64, prev: &Digest) -> Vec<u8> {
    let kind: &[u8] = match kind {
        LineKind::Header => b"header\0",
        LineKind::Checkpoint => b"checkpoint\0",
    };
    let mut message = Vec::with_capacity(SIGNATURE_DOMAIN.len() + kind.len() + 40);
    message.extend_from_slice(SIGNATURE_DOMAIN);
    message.extend_from_slice(kind);
    message.extend_from_slice(&seq.to_be_bytes());
    message.extend_from_slice(&prev.0);
    message
}

/// A line's chain link, as read back.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub seq: u64,
    pub prev: Digest,
    pub hash: Digest,
}

/// Splits a line's JSON (without prefix or newline) into the body the hash covers and its
/// link. `None` when there is no well-formed link at the end.
pub fn split_link(json: &[u8]) -> Option<(Vec<u8>, Link)> {
    let at = json
        .windows(LINK_MARKER.len())
        .rposition(|window| window == LINK_MARKER)?;
    let rest = json.get(at + LINK_MARKER.len() - 1..)?;
    let link_json = rest.strip_suffix(b"}")?;
    let link: Link = serde_json::from_slice(link_json).ok()?;
    let mut body = Vec::with_capacity(at + 1);
    body.extend_from_slice(&json[..at]);
    body.push(b'}');
    Some((body, link))
}

/// A device's Ed25519 signing key. Stored (PKCS#8) in the server's encrypted storage only;
/// `Debug` never shows it.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public_key", &self.public_key_hex())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new key and its PKCS#8 encoding, which the caller stores.
    pub fn generate() -> Result<(SigningKey, Vec<u8>), Error> {
        let document =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| Error::Random)?;
        let pkcs8 = document.as_ref().to_vec();
        Ok((SigningKey::from_pkcs8(&pkcs8)?, pkcs8))
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<SigningKey, Error> {
        let pair =
            Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|err| Error::InvalidKey(err.to_string()))?;
        Ok(SigningKey { pair })
    }

    pub fn public_key_hex(&self) -> String {
        hex::encode(self.pair.public_key().as_ref())
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
}

/// Checks an Ed25519 signature by a hex public key.
pub fn verify_signature(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    signature::UnparsedPublicKey::new(&signature::ED25519, public_key)
        .verify(message, signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_lines_split_back_into_body_and_link() {
        let state = ChainState::default();
        let body = br#"{"type":"request","data":{"chain":{"x":1}}}"#;
        let (line, next) = state.seal("", body);
        assert!(line.ends_with(b"}}\n"));
        let json = &line[..line.len() - 1];
        let (back, link) = split_link(json).expect("a link");
        assert_eq!(back, body);
        assert_eq!(link.seq, 0);
        assert_eq!(link.prev, Digest::default());
        assert_eq!(link.hash, link_hash(&Digest::default(), body));
        assert_eq!(next.next_seq, 1);
        assert_eq!(next.last_hash, link.hash);
        let parsed: serde_json::Value = serde_json::from_slice(json).expect("valid JSON");
        assert_eq!(parsed["chain"]["seq"], 0);
        assert_eq!(parsed["data"]["chain"]["x"], 1);
    }

    #[test]
    fn prefix_comes_first() {
        let (line, _) = ChainState::default().seal("@cee: ", br#"{"a":1}"#);
        assert!(line.starts_with(br#"@cee: {"a":1,"chain":{"seq":0,"#));
    }

    #[test]
    fn signatures_verify_with_the_public_key_only() {
        let (key, pkcs8) = SigningKey::generate().unwrap();
        let again = SigningKey::from_pkcs8(&pkcs8).unwrap();
        assert_eq!(key.public_key_hex(), again.public_key_hex());
        let message = signature_message(LineKind::Checkpoint, 7, &Digest([1; 32]));
        let signature = key.sign(&message);
        let public = hex::decode(key.public_key_hex()).unwrap();
        assert!(verify_signature(&public, &message, &signature));
        let other = signature_message(LineKind::Checkpoint, 8, &Digest([1; 32]));
        assert!(!verify_signature(&public, &other, &signature));
        assert!(!format!("{key:?}").contains(&hex::encode(&pkcs8)));
    }

    #[test]
    fn malformed_links_are_rejected() {
        assert!(split_link(br#"{"a":1}"#).is_none());
        assert!(split_link(br#"{"a":1,"chain":{"seq":1}}"#).is_none());
        assert!(split_link(br#"{"a":1,"chain":{"seq":1,"prev":"00","hash":"00"}}"#).is_none());
    }
}
