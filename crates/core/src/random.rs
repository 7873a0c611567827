//! Random identifiers: tokens, accessors, nonces, OTPs.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Fills a buffer from the system CSPRNG. The OS generator failing is unrecoverable.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random generator failed");
    bytes
}

/// A uniformly random base62 string, by rejection sampling so no character is favoured.
pub fn random_base62(length: usize) -> String {
    let mut out = String::with_capacity(length);
    while out.len() < length {
        for byte in random_bytes::<64>() {
            // 248 = 4 * 62: values above it would bias the first characters.
            if byte < 248 && out.len() < length {
                out.push(BASE62[(byte % 62) as usize] as char);
            }
        }
    }
    out
}

/// A random UUID v4 string (request IDs, nonces, mount UUIDs).
pub fn uuid() -> String {
    mayfly_sdk::password::random_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base62_has_requested_length_and_alphabet() {
        let text = random_base62(100);
        assert_eq!(text.len(), 100);
        assert!(text.bytes().all(|b| BASE62.contains(&b)));
        assert_ne!(random_base62(24), random_base62(24));
    }

    #[test]
    fn uuid_is_version_4() {
        let id = uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }
}
