//! Salted HMACs of logged values, as Vault computes them: `hmac-sha256:<hex>` with the
//! device's salt as the key, so an operator holding a suspect value can find it in the log
//! (`sys/audit-hash`) while the log itself reveals nothing.

use std::fmt;

use aws_lc_rs::hmac;
use serde::{
    Serialize, Serializer,
    ser::{SerializeMap, SerializeSeq},
};
use serde_json::{Map, Value};

/// What every hashed value starts with.
pub const HASH_PREFIX: &str = "hmac-sha256:";

/// One device's HMAC key. The salt string itself is the key, as in Vault, so hashes computed
/// by either server from the same salt agree.
#[derive(Clone)]
pub struct Salt {
    key: hmac::Key,
}

impl fmt::Debug for Salt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Salt(<redacted>)")
    }
}

impl Salt {
    pub fn new(salt: &str) -> Self {
        Salt {
            key: hmac::Key::new(hmac::HMAC_SHA256, salt.as_bytes()),
        }
    }

    /// `hmac-sha256:<hex>` of `input`.
    pub fn hash(&self, input: &str) -> String {
        let tag = hmac::sign(&self.key, input.as_bytes());
        let mut out = Vec::with_capacity(HASH_PREFIX.len() + 64);
        out.extend_from_slice(HASH_PREFIX.as_bytes());
        crate::push_hex(&mut out, tag.as_ref());
        // Only ASCII was written.
        String::from_utf8(out).unwrap_or_default()
    }
}

/// A JSON value that serializes with every string replaced by its HMAC, except under the
/// keys in `keep` (at any depth) and everywhere when there is no salt (`log_raw`). Numbers,
/// booleans and nulls are written as they are, as Vault does.
///
/// Serializing through this wrapper avoids copying the value to hash it.
pub struct Hashed<'a> {
    node: Node<'a>,
    salt: Option<&'a Salt>,
    keep: &'a [String],
}

#[derive(Clone, Copy)]
enum Node<'a> {
    Value(&'a Value),
    Map(&'a Map<String, Value>),
}

impl<'a> Hashed<'a> {
    pub fn new(value: &'a Value, salt: Option<&'a Salt>, keep: &'a [String]) -> Self {
        Hashed {
            node: Node::Value(value),
            salt,
            keep,
        }
    }

    /// The same for a JSON object given as its map (request and response data).
    pub fn map(map: &'a Map<String, Value>, salt: Option<&'a Salt>, keep: &'a [String]) -> Self {
        Hashed {
            node: Node::Map(map),
            salt,
            keep,
        }
    }

    fn with(&self, value: &'a Value) -> Hashed<'a> {
        Hashed {
            node: Node::Value(value),
            salt: self.salt,
            keep: self.keep,
        }
    }

    fn serialize_map<S: Serializer>(
        &self,
        map: &Map<String, Value>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_map(Some(map.len()))?;
        for (key, value) in map {
            if self.keep.iter().any(|kept| kept == key) {
                out.serialize_entry(key, value)?;
            } else {
                out.serialize_entry(key, &self.with(value))?;
            }
        }
        out.end()
    }
}

impl Serialize for Hashed<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let value = match self.node {
            Node::Map(map) if self.salt.is_none() => return map.serialize(serializer),
            Node::Map(map) => return self.serialize_map(map, serializer),
            Node::Value(value) => value,
        };
        let Some(salt) = self.salt else {
            return value.serialize(serializer);
        };
        match value {
            Value::String(text) => serializer.serialize_str(&salt.hash(text)),
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&self.with(item))?;
                }
                seq.end()
            }
            Value::Object(map) => self.serialize_map(map, serializer),
            other => other.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn hashes_are_hmac_sha256_keyed_by_the_salt_string() {
        // HMAC-SHA256(key = "key", "The quick brown fox jumps over the lazy dog"), RFC 4231
        // style reference value.
        let salt = Salt::new("key");
        assert_eq!(
            salt.hash("The quick brown fox jumps over the lazy dog"),
            "hmac-sha256:f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        assert_ne!(Salt::new("other").hash("x"), salt.hash("x"));
    }

    #[test]
    fn every_string_is_hashed_except_kept_keys() {
        let salt = Salt::new("s");
        let value = json!({
            "password": "hunter2",
            "n": 5,
            "ok": true,
            "none": null,
            "list": ["a", 1],
            "nested": {"token": "t", "plain": "p"},
            "plain": "visible",
        });
        let keep = vec!["plain".to_owned()];
        let out = serde_json::to_value(Hashed::new(&value, Some(&salt), &keep)).unwrap();
        assert_eq!(out["password"], json!(salt.hash("hunter2")));
        assert_eq!(out["n"], json!(5));
        assert_eq!(out["ok"], json!(true));
        assert_eq!(out["none"], Value::Null);
        assert_eq!(out["list"], json!([salt.hash("a"), 1]));
        assert_eq!(out["nested"]["token"], json!(salt.hash("t")));
        assert_eq!(out["nested"]["plain"], json!("p"));
        assert_eq!(out["plain"], json!("visible"));
        assert!(!out.to_string().contains("hunter2"));
    }

    #[test]
    fn without_a_salt_values_are_raw() {
        let value = json!({"password": "hunter2"});
        let out = serde_json::to_value(Hashed::new(&value, None, &[])).unwrap();
        assert_eq!(out, value);
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", Salt::new("secret")), "Salt(<redacted>)");
    }
}
