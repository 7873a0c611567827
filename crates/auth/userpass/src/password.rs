//! Password hashing with Argon2id, off the async runtime.
//!
//! Hashes are PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), which carry
//! their own parameters, so stronger defaults later still verify older hashes.

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};
use mayfly_sdk::{Error, Result};
use tokio::sync::OnceCell;
use zeroize::Zeroizing;

/// A password in memory, wiped when dropped.
pub(crate) type Secret = Zeroizing<String>;

/// Hashes `password` with a fresh random salt.
pub(crate) async fn hash(password: Secret) -> Result<String> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt)
        .map_err(|_| Error::internal("the system random number generator failed"))?;
    let salt = SaltString::encode_b64(&salt)
        .map_err(|err| Error::internal(format!("cannot encode a password salt: {err}")))?;
    // Argon2 is deliberately slow; running it inline would stall other requests.
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|err| Error::internal(format!("cannot hash a password: {err}")))
    })
    .await
    .map_err(|err| Error::internal(format!("password hashing task failed: {err}")))?
}

/// Whether `password` matches the PHC string `hash`. A malformed hash never matches.
pub(crate) async fn verify(password: Secret, hash: String) -> Result<bool> {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .map_err(|err| Error::internal(format!("password verification task failed: {err}")))
}

/// A hash of a random password, checked against when the user does not exist, so that an
/// unknown username costs as much time as a wrong password.
pub(crate) struct DummyHash(pub(crate) OnceCell<String>);

impl DummyHash {
    pub fn new() -> Self {
        DummyHash(OnceCell::new())
    }

    pub async fn get(&self) -> Result<String> {
        self.0
            .get_or_try_init(|| async {
                let mut random = [0u8; 24];
                aws_lc_rs::rand::fill(&mut random)
                    .map_err(|_| Error::internal("the system random number generator failed"))?;
                let password: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
                hash(Zeroizing::new(password)).await
            })
            .await
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let phc = hash(Zeroizing::new("hunter2".into())).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(!phc.contains("hunter2"));
        assert!(
            verify(Zeroizing::new("hunter2".into()), phc.clone())
                .await
                .unwrap()
        );
        assert!(
            !verify(Zeroizing::new("hunter3".into()), phc.clone())
                .await
                .unwrap()
        );
        assert!(
            !verify(Zeroizing::new("hunter2".into()), "garbage".into())
                .await
                .unwrap()
        );
        let again = hash(Zeroizing::new("hunter2".into())).await.unwrap();
        assert_ne!(phc, again, "salts are random");
    }
}
