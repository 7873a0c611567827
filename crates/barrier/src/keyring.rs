//! The keyring (data-encryption keys by term), the AEAD envelope format shared by barrier values
//! and the keyring blob, and the keyring's encryption under the root key.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::{Error, KEYRING_PATH, Result};

pub(crate) const KEY_LEN: usize = 32;
const VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
const TAG_LEN: usize = 16;
/// Term written in the keyring blob's header: the root key is not a member of the keyring.
const ROOT_TERM: u32 = 0;

pub(crate) type KeyBytes = Zeroizing<[u8; KEY_LEN]>;

pub(crate) fn random_bytes(dest: &mut [u8]) -> Result<()> {
    aws_lc_rs::rand::fill(dest).map_err(|_| Error::Internal("random generator failed".into()))
}

pub(crate) fn random_key() -> Result<KeyBytes> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    random_bytes(key.as_mut())?;
    Ok(key)
}

pub(crate) fn key_from_slice(bytes: &[u8]) -> Option<KeyBytes> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    if bytes.len() != KEY_LEN {
        return None;
    }
    key.copy_from_slice(bytes);
    Some(key)
}

pub(crate) fn keys_equal(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

fn aead_key(key: &[u8; KEY_LEN]) -> Result<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| Error::Internal("cannot build AES-256-GCM key".into()))
}

/// Encrypts into `version | term (BE u32) | nonce | ciphertext | tag`, binding `aad`.
fn seal_envelope(key: &LessSafeKey, term: u32, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    random_bytes(&mut nonce)?;
    // Exact capacity: the plaintext is copied in and encrypted in place, so no reallocation may
    // leave a plaintext copy behind in freed memory.
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
    out.push(VERSION);
    out.extend_from_slice(&term.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out[HEADER_LEN..],
        )
        .map_err(|_| Error::Internal("encryption failed".into()))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// The term an envelope claims, if it is well formed at all.
fn envelope_term(envelope: &[u8]) -> Option<u32> {
    if envelope.len() < HEADER_LEN + TAG_LEN || envelope[0] != VERSION {
        return None;
    }
    let term: [u8; 4] = envelope[1..5].try_into().ok()?;
    Some(u32::from_be_bytes(term))
}

/// Decrypts an envelope; `None` on any authentication failure. The buffer is zeroizing because
/// the plaintext may be the keyring itself.
fn open_envelope(key: &LessSafeKey, aad: &[u8], envelope: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    envelope_term(envelope)?;
    let nonce: [u8; NONCE_LEN] = envelope[5..HEADER_LEN].try_into().ok()?;
    let mut buf = Zeroizing::new(envelope[HEADER_LEN..].to_vec());
    let len = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .ok()?
        .len();
    buf.truncate(len);
    Some(buf)
}

/// One data-encryption key.
#[derive(Clone)]
pub(crate) struct Term {
    key: KeyBytes,
    /// The key expanded for AES-GCM once, not per value: the expansion costs more than
    /// sealing a small value.
    cipher: Arc<LessSafeKey>,
    pub(crate) install_time: OffsetDateTime,
}

impl Term {
    fn new(key: KeyBytes, install_time: OffsetDateTime) -> Result<Term> {
        Ok(Term {
            cipher: Arc::new(aead_key(&key)?),
            key,
            install_time,
        })
    }
}

/// Every term ever installed (old ones stay to read old values) and the one used for writes.
#[derive(Clone)]
pub(crate) struct Keyring {
    terms: BTreeMap<u32, Term>,
    active: u32,
}

/// Serialized form of the keyring. Wiped on drop because it carries encoded keys.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct KeyringDoc {
    active_term: u32,
    terms: Vec<TermDoc>,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct TermDoc {
    term: u32,
    key: String,
    install_time: String,
}

impl Keyring {
    /// A keyring with a single fresh key as term 1.
    pub(crate) fn generate() -> Result<Self> {
        let term = Term::new(random_key()?, OffsetDateTime::now_utc())?;
        Ok(Self {
            terms: BTreeMap::from([(1, term)]),
            active: 1,
        })
    }

    pub(crate) fn active_term(&self) -> u32 {
        self.active
    }

    pub(crate) fn active(&self) -> Result<&Term> {
        self.terms
            .get(&self.active)
            .ok_or_else(|| Error::Internal("active keyring term is missing".into()))
    }

    /// Installs a fresh key under the next term and makes it active.
    pub(crate) fn rotate(&mut self) -> Result<u32> {
        let last = self.terms.keys().next_back().copied().unwrap_or(0);
        let next = last
            .checked_add(1)
            .ok_or_else(|| Error::Internal("keyring term space exhausted".into()))?;
        let term = Term::new(random_key()?, OffsetDateTime::now_utc())?;
        self.terms.insert(next, term);
        self.active = next;
        Ok(next)
    }

    /// Encrypts a logical value; `path` is bound as AAD so the ciphertext only opens there.
    pub(crate) fn encrypt(&self, path: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        seal_envelope(
            &self.active()?.cipher,
            self.active,
            path.as_bytes(),
            plaintext,
        )
    }

    pub(crate) fn decrypt(&self, path: &str, envelope: &[u8]) -> Result<Vec<u8>> {
        let fail = || Error::Decrypt {
            key: path.to_owned(),
        };
        let term = envelope_term(envelope).ok_or_else(fail)?;
        let key = &self.terms.get(&term).ok_or_else(fail)?.cipher;
        let mut plain = open_envelope(key, path.as_bytes(), envelope).ok_or_else(fail)?;
        // The value belongs to the caller now; hand over the buffer instead of copying it.
        Ok(std::mem::take(&mut *plain))
    }

    /// Serializes and encrypts the keyring with `root_key` for storage at [`KEYRING_PATH`].
    pub(crate) fn seal_with(&self, root_key: &KeyBytes) -> Result<Vec<u8>> {
        let doc = KeyringDoc {
            active_term: self.active,
            terms: self
                .terms
                .iter()
                .map(|(term, t)| {
                    Ok(TermDoc {
                        term: *term,
                        key: STANDARD.encode(t.key.as_ref()),
                        install_time: t
                            .install_time
                            .format(&Rfc3339)
                            .map_err(|e| Error::Internal(format!("keyring time: {e}")))?,
                    })
                })
                .collect::<Result<_>>()?,
        };
        // Sized well above the document so serialization never reallocates and strands copies
        // of encoded keys in freed memory.
        let mut json = Zeroizing::new(Vec::with_capacity(256 + 192 * self.terms.len()));
        serde_json::to_writer(&mut *json, &doc)
            .map_err(|e| Error::Internal(format!("keyring encoding: {e}")))?;
        seal_envelope(
            &aead_key(root_key)?,
            ROOT_TERM,
            KEYRING_PATH.as_bytes(),
            &json,
        )
    }

    /// Decrypts a stored keyring. A key that does not authenticate it is
    /// [`Error::InvalidUnsealKey`]: the caller is always trying a candidate root key.
    pub(crate) fn open_with(root_key: &KeyBytes, blob: &[u8]) -> Result<Self> {
        if envelope_term(blob) != Some(ROOT_TERM) {
            return Err(Error::Internal("stored keyring is malformed".into()));
        }
        let json = open_envelope(&aead_key(root_key)?, KEYRING_PATH.as_bytes(), blob)
            .ok_or(Error::InvalidUnsealKey)?;
        let doc: KeyringDoc = serde_json::from_slice(&json)
            .map_err(|_| Error::Internal("stored keyring is corrupt".into()))?;
        let mut terms = BTreeMap::new();
        for t in &doc.terms {
            let corrupt = || Error::Internal(format!("stored keyring term {} is corrupt", t.term));
            // Base64 of 32 bytes decodes through a slightly larger scratch buffer.
            let mut scratch = Zeroizing::new([0u8; KEY_LEN + 3]);
            let n = STANDARD
                .decode_slice(t.key.as_bytes(), scratch.as_mut())
                .map_err(|_| corrupt())?;
            let key = key_from_slice(&scratch[..n]).ok_or_else(corrupt)?;
            let install_time =
                OffsetDateTime::parse(&t.install_time, &Rfc3339).map_err(|_| corrupt())?;
            terms.insert(t.term, Term::new(key, install_time)?);
        }
        if !terms.contains_key(&doc.active_term) {
            return Err(Error::Internal("stored keyring has no active term".into()));
        }
        Ok(Self {
            terms,
            active: doc.active_term,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyring_round_trip_and_wrong_root() {
        let root = random_key().unwrap();
        let mut ring = Keyring::generate().unwrap();
        ring.rotate().unwrap();
        let blob = ring.seal_with(&root).unwrap();
        let opened = Keyring::open_with(&root, &blob).unwrap();
        assert_eq!(opened.active_term(), 2);
        let ct = ring.encrypt("a/b", b"value").unwrap();
        assert_eq!(opened.decrypt("a/b", &ct).unwrap(), b"value");

        let other = random_key().unwrap();
        assert!(matches!(
            Keyring::open_with(&other, &blob),
            Err(Error::InvalidUnsealKey)
        ));
    }

    #[test]
    fn envelope_layout() {
        let ring = Keyring::generate().unwrap();
        let ct = ring.encrypt("k", b"hello").unwrap();
        assert_eq!(ct.len(), HEADER_LEN + 5 + TAG_LEN);
        assert_eq!(ct[0], VERSION);
        assert_eq!(&ct[1..5], &1u32.to_be_bytes());
        // Truncated or unversioned input is rejected, not panicked on.
        assert!(ring.decrypt("k", &ct[..10]).is_err());
        let mut bad = ct.clone();
        bad[0] = 9;
        assert!(ring.decrypt("k", &bad).is_err());
    }
}
