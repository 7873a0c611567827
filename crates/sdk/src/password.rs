//! Password policies: Vault's HCL rules (a length and charset rules with minimums) and a
//! uniform generator over them.
//!
//! A policy reads like Vault's:
//!
//! ```hcl
//! length = 20
//! rule "charset" {
//!   charset   = "abcdefghijklmnopqrstuvwxyz"
//!   min-chars = 1
//! }
//! ```
//!
//! Candidates are drawn uniformly from the union of the rules' charsets (rejection sampling on
//! random bytes, so no character is favoured) and redrawn until every rule's minimum is met,
//! which keeps the result uniform over all passing strings.

use std::fmt;
use std::sync::LazyLock;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use serde_json::Value;

/// Vault accepts generated lengths in this range only.
pub const MIN_LENGTH: usize = 4;
pub const MAX_LENGTH: usize = 100;

/// How many candidates are drawn before giving up on a policy whose minimums are too unlikely.
const MAX_ATTEMPTS: usize = 100_000;

/// Why a policy cannot be parsed or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("unable to decode: {0}")]
    Decode(String),
    #[error("unable to parse rules: {0}")]
    Rule(String),
    #[error("length must be > 0")]
    ZeroLength,
    #[error("specified rules require at least {required} characters but {length} is specified")]
    TooShort { required: usize, length: usize },
    #[error("no charset specified")]
    NoCharset,
    #[error("non-printable character in charset")]
    NonPrintable,
    #[error("charset is too long: limited to 255 characters")]
    CharsetTooLong,
    #[error("passwords must be between {MIN_LENGTH} and {MAX_LENGTH} characters")]
    LengthOutOfRange,
    #[error("unable to generate a password satisfying the policy's rules")]
    Exhausted,
}

/// One `rule "charset"`: at least `min_chars` characters of the generated string come from
/// `charset`, and `charset` joins the characters the generator draws from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharsetRule {
    pub charset: Vec<char>,
    pub min_chars: usize,
}

impl CharsetRule {
    fn passes(&self, candidate: &[char]) -> bool {
        self.min_chars == 0
            || candidate
                .iter()
                .filter(|c| self.charset.contains(c))
                .take(self.min_chars)
                .count()
                >= self.min_chars
    }
}

/// A parsed, validated password policy.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub length: usize,
    pub rules: Vec<CharsetRule>,
    /// Union of the rules' charsets, sorted and without duplicates.
    charset: Vec<char>,
    /// For each character of `charset`, the rules (bit `r` for `rules[r]`) it counts for;
    /// empty when there are more rules than bits, which takes the slower check.
    membership: Vec<u64>,
}

impl fmt::Debug for PasswordPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordPolicy")
            .field("length", &self.length)
            .field("rules", &self.rules.len())
            .finish()
    }
}

const LOWERCASE: &str = "abcdefghijklmnopqrstuvwxyz";
const UPPERCASE: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &str = "0123456789";

impl PasswordPolicy {
    /// Builds and validates a policy.
    pub fn new(length: usize, rules: Vec<CharsetRule>) -> Result<Self, PolicyError> {
        if length == 0 {
            return Err(PolicyError::ZeroLength);
        }
        let required: usize = rules.iter().map(|rule| rule.min_chars).sum();
        if length < required {
            return Err(PolicyError::TooShort { required, length });
        }
        let mut charset: Vec<char> = rules
            .iter()
            .flat_map(|rule| rule.charset.iter().copied())
            .collect();
        charset.sort_unstable();
        charset.dedup();
        if charset.is_empty() {
            return Err(PolicyError::NoCharset);
        }
        if charset.iter().any(|c| c.is_control()) {
            return Err(PolicyError::NonPrintable);
        }
        if charset.len() > 255 {
            return Err(PolicyError::CharsetTooLong);
        }
        let membership = if rules.len() <= 64 {
            charset
                .iter()
                .map(|c| {
                    rules
                        .iter()
                        .enumerate()
                        .filter(|(_, rule)| rule.charset.contains(c))
                        .fold(0u64, |bits, (r, _)| bits | 1 << r)
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(PasswordPolicy {
            length,
            rules,
            charset,
            membership,
        })
    }

    /// Vault's default for generated database passwords: 20 characters from `[A-Za-z0-9-]`
    /// with at least one lowercase letter, one uppercase letter, one digit and one `-`.
    pub fn vault_default() -> &'static Self {
        static DEFAULT: LazyLock<PasswordPolicy> = LazyLock::new(|| {
            let rule = |set: &str| CharsetRule {
                charset: set.chars().collect(),
                min_chars: 1,
            };
            PasswordPolicy::new(
                20,
                vec![rule(LOWERCASE), rule(UPPERCASE), rule(DIGITS), rule("-")],
            )
            .unwrap_or_else(|_| unreachable!("the built-in default policy is valid"))
        });
        &DEFAULT
    }

    /// Parses a policy from Vault's HCL (or the equivalent JSON) and validates it, including
    /// the 4–100 character bound Vault puts on stored policies.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let value = if text.trim_start().starts_with('{') {
            serde_json::from_str::<Value>(text)
                .map_err(|err| PolicyError::Decode(err.to_string()))?
        } else {
            hcl::from_str::<Value>(text).map_err(|err| PolicyError::Decode(err.to_string()))?
        };
        let Value::Object(top) = value else {
            return Err(PolicyError::Decode("expected a policy body".to_owned()));
        };
        let mut length = 0usize;
        let mut rules = Vec::new();
        for (key, value) in top {
            match key.as_str() {
                "length" => length = number(&value, "length")?,
                "rule" => parse_rules(&value, &mut rules)?,
                other => {
                    return Err(PolicyError::Decode(format!("unknown key {other:?}")));
                }
            }
        }
        let policy = PasswordPolicy::new(length, rules)?;
        if !(MIN_LENGTH..=MAX_LENGTH).contains(&policy.length) {
            return Err(PolicyError::LengthOutOfRange);
        }
        Ok(policy)
    }

    /// Generates a password. Fails only if the rules are so unlikely to be met that many
    /// thousands of draws all missed.
    pub fn generate(&self) -> Result<String, PolicyError> {
        let rng = SystemRandom::new();
        let mut bytes = RandomBytes::new(&rng);
        let mut picks = Vec::with_capacity(self.length);
        for _ in 0..MAX_ATTEMPTS {
            picks.clear();
            fill_uniform(&mut bytes, self.charset.len(), self.length, &mut picks)?;
            if self.accepts(&picks) {
                return Ok(picks
                    .iter()
                    .map(|&i| self.charset[usize::from(i)])
                    .collect());
            }
        }
        Err(PolicyError::Exhausted)
    }

    /// Whether a candidate (indices into `charset`) meets every rule's minimum.
    fn accepts(&self, picks: &[u8]) -> bool {
        if self.membership.is_empty() {
            let candidate: Vec<char> = picks
                .iter()
                .map(|&i| self.charset[usize::from(i)])
                .collect();
            return self.rules.iter().all(|rule| rule.passes(&candidate));
        }
        let mut counts = [0usize; 64];
        for &pick in picks {
            let mut rules = self.membership[usize::from(pick)];
            while rules != 0 {
                counts[rules.trailing_zeros() as usize] += 1;
                rules &= rules - 1;
            }
        }
        self.rules
            .iter()
            .zip(counts)
            .all(|(rule, count)| count >= rule.min_chars)
    }
}

/// The system generator's bytes, drawn a block at a time: a draw costs far more than the
/// bytes it yields, and a rejected candidate must not cost a draw of its own.
struct RandomBytes<'a> {
    rng: &'a SystemRandom,
    block: [u8; 256],
    used: usize,
}

impl<'a> RandomBytes<'a> {
    fn new(rng: &'a SystemRandom) -> Self {
        RandomBytes {
            rng,
            block: [0; 256],
            used: 256,
        }
    }

    fn next(&mut self) -> Result<u8, PolicyError> {
        if self.used == self.block.len() {
            self.rng.fill(&mut self.block).map_err(|_| {
                PolicyError::Decode("the system random generator failed".to_owned())
            })?;
            self.used = 0;
        }
        self.used += 1;
        Ok(self.block[self.used - 1])
    }
}

/// HCL decodes repeated `rule "charset" {…}` blocks as `{"charset": [{…}, {…}]}` or as a
/// list of such objects; both shapes are accepted.
fn parse_rules(value: &Value, rules: &mut Vec<CharsetRule>) -> Result<(), PolicyError> {
    match value {
        Value::Array(items) => items.iter().try_for_each(|item| parse_rules(item, rules)),
        Value::Object(by_type) => {
            for (kind, bodies) in by_type {
                if kind != "charset" {
                    return Err(PolicyError::Rule(format!(
                        "unable to parse rule {kind}: unrecognized rule type {kind}"
                    )));
                }
                let bodies = match bodies {
                    Value::Array(items) => items.clone(),
                    other => vec![other.clone()],
                };
                for body in bodies {
                    rules.push(charset_rule(&body)?);
                }
            }
            Ok(())
        }
        _ => Err(PolicyError::Rule("a rule must be a block".to_owned())),
    }
}

fn charset_rule(body: &Value) -> Result<CharsetRule, PolicyError> {
    let Value::Object(fields) = body else {
        return Err(PolicyError::Rule(
            "a charset rule must be a block".to_owned(),
        ));
    };
    let mut rule = CharsetRule {
        charset: Vec::new(),
        min_chars: 0,
    };
    for (key, value) in fields {
        match key.as_str() {
            "charset" => match value {
                Value::String(text) => rule.charset = text.chars().collect(),
                _ => {
                    return Err(PolicyError::Rule(
                        "unable to parse rule charset: charset must be a string".to_owned(),
                    ));
                }
            },
            "min-chars" => rule.min_chars = number(value, "min-chars")?,
            other => {
                return Err(PolicyError::Rule(format!(
                    "unable to parse rule charset: unknown field {other:?}"
                )));
            }
        }
    }
    Ok(rule)
}

fn number(value: &Value, name: &str) -> Result<usize, PolicyError> {
    let parsed = match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    };
    parsed
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| PolicyError::Decode(format!("{name} must be a non-negative integer")))
}

/// Appends `length` indices drawn uniformly from `0..size`: a random byte is used only if it
/// falls below the largest multiple of `size`, so every index is equally likely.
fn fill_uniform(
    bytes: &mut RandomBytes<'_>,
    size: usize,
    length: usize,
    out: &mut Vec<u8>,
) -> Result<(), PolicyError> {
    if size == 0 || size > 255 {
        return Err(PolicyError::NoCharset);
    }
    let limit = (256 / size) * size;
    while out.len() < length {
        let byte = bytes.next()?;
        if usize::from(byte) < limit {
            // `size` is at most 255, so the index fits.
            out.push((usize::from(byte) % size) as u8);
        }
    }
    Ok(())
}

/// A uniformly random string of ASCII letters and digits (base62), as Vault's `random`
/// template function produces.
pub fn random_base62(length: usize) -> String {
    const BASE62: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let rng = SystemRandom::new();
    let mut out = Vec::with_capacity(length);
    // The system generator failing leaves nothing sensible to return.
    fill_uniform(&mut RandomBytes::new(&rng), BASE62.len(), length, &mut out)
        .unwrap_or_else(|err| panic!("random generation failed: {err}"));
    out.into_iter()
        .map(|i| char::from(BASE62.as_bytes()[usize::from(i)]))
        .collect()
}

/// A random UUID v4 string (request IDs, lease and intent IDs, nonces).
///
/// The bytes come from the process's generator rather than `Uuid::new_v4`, which asks the
/// kernel for every UUID: a system call on each request's path.
pub fn random_uuid() -> String {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .unwrap_or_else(|err| panic!("random generation failed: {err}"));
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_uuids_are_version_4_and_distinct() {
        let id = random_uuid();
        let parsed = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version_num(), 4, "{id}");
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{id}");
        assert_eq!(id, parsed.hyphenated().to_string());
        assert_ne!(random_uuid(), id);
    }

    #[test]
    fn default_policy_meets_vaults_rules() {
        let policy = PasswordPolicy::vault_default();
        for _ in 0..200 {
            let password = policy.generate().unwrap();
            assert_eq!(password.chars().count(), 20);
            assert!(password.chars().any(|c| c.is_ascii_lowercase()));
            assert!(password.chars().any(|c| c.is_ascii_uppercase()));
            assert!(password.chars().any(|c| c.is_ascii_digit()));
            assert!(password.contains('-'));
            assert!(
                password
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
            );
        }
    }

    #[test]
    fn parses_hcl_with_repeated_rules() {
        let policy = PasswordPolicy::parse(
            "length = 12\nrule \"charset\" {\n charset = \"abc\"\n min-chars = 1\n}\n\
             rule \"charset\" {\n charset = \"0123456789\"\n min-chars = 2\n}",
        )
        .unwrap();
        assert_eq!(policy.length, 12);
        assert_eq!(policy.rules.len(), 2);
        let password = policy.generate().unwrap();
        assert_eq!(password.len(), 12);
        assert!(password.chars().filter(char::is_ascii_digit).count() >= 2);
        assert!(password.chars().all(|c| "abc0123456789".contains(c)));
    }

    #[test]
    fn parses_json_and_single_rules() {
        let policy = PasswordPolicy::parse(
            r#"{"length": 8, "rule": [{"charset": [{"charset": "xyz", "min-chars": 0}]}]}"#,
        )
        .unwrap();
        assert!(
            policy
                .generate()
                .unwrap()
                .chars()
                .all(|c| "xyz".contains(c))
        );
        let policy = PasswordPolicy::parse("length = 8\nrule \"charset\" { charset = \"xyz\" }");
        assert!(policy.is_ok());
    }

    #[test]
    fn rejects_what_vault_rejects() {
        let cases = [
            (
                "length = 2\nrule \"charset\" {\n charset = \"abc\"\n min-chars = 3\n}",
                "at least 3",
            ),
            ("length = 5", "no charset"),
            ("garbage {{", "unable to decode"),
            (
                "length = 5\nrule \"foo\" { charset = \"abc\" }",
                "unrecognized rule type foo",
            ),
            (
                "length = 5000\nrule \"charset\" { charset = \"abc\" }",
                "between 4 and 100",
            ),
            (
                "length = 0\nrule \"charset\" { charset = \"abc\" }",
                "length must be > 0",
            ),
        ];
        for (text, expected) in cases {
            let err = PasswordPolicy::parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn draws_are_uniform_over_the_charset() {
        // 3 characters, 40 000 draws: each should land near 13 333. The chi-square bound
        // catches gross bias (a broken rejection step) without flaking.
        let policy = PasswordPolicy::new(
            100,
            vec![CharsetRule {
                charset: "abc".chars().collect(),
                min_chars: 0,
            }],
        )
        .unwrap();
        let mut counts = [0usize; 3];
        for _ in 0..400 {
            for c in policy.generate().unwrap().chars() {
                counts[(c as u8 - b'a') as usize] += 1;
            }
        }
        let expected = 40_000.0 / 3.0;
        let chi2: f64 = counts
            .iter()
            .map(|&n| (n as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 20.0, "chi-square {chi2} for {counts:?}");
    }

    #[test]
    fn base62_alphabet() {
        let text = random_base62(50);
        assert_eq!(text.len(), 50);
        assert!(text.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn rule_bitmaps_agree_with_counting_characters() {
        let policy = PasswordPolicy::parse(
            r#"
            length = 6
            rule "charset" {
              charset = "abc"
              min-chars = 2
            }
            rule "charset" {
              charset = "cde"
              min-chars = 1
            }
            rule "charset" {
              charset = "e"
              min-chars = 1
            }
            "#,
        )
        .unwrap();
        let rng = SystemRandom::new();
        let mut bytes = RandomBytes::new(&rng);
        let (mut accepted, mut rejected) = (0, 0);
        for _ in 0..2000 {
            let mut picks = Vec::new();
            fill_uniform(&mut bytes, policy.charset.len(), policy.length, &mut picks).unwrap();
            let candidate: Vec<char> = picks
                .iter()
                .map(|&i| policy.charset[usize::from(i)])
                .collect();
            let counted = policy.rules.iter().all(|rule| rule.passes(&candidate));
            assert_eq!(policy.accepts(&picks), counted, "{candidate:?}");
            if counted {
                accepted += 1;
            } else {
                rejected += 1;
            }
        }
        assert!(accepted > 0 && rejected > 0);
    }

    #[test]
    fn more_rules_than_bitmap_bits_still_apply() {
        let mut rules: Vec<CharsetRule> = (0..70)
            .map(|_| CharsetRule {
                charset: vec!['a', 'b'],
                min_chars: 0,
            })
            .collect();
        rules.push(CharsetRule {
            charset: vec!['z'],
            min_chars: 2,
        });
        let policy = PasswordPolicy::new(8, rules).unwrap();
        assert!(policy.membership.is_empty());
        for _ in 0..50 {
            let password = policy.generate().unwrap();
            assert!(password.chars().filter(|&c| c == 'z').count() >= 2);
            assert_eq!(password.len(), 8);
        }
    }
}
