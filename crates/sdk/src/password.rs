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
        Ok(PasswordPolicy {
            length,
            rules,
            charset,
        })
    }

    /// Vault's default for generated database passwords: 20 characters from `[A-Za-z0-9-]`
    /// with at least one lowercase letter, one uppercase letter, one digit and one `-`.
    pub fn vault_default() -> Self {
        let rule = |set: &str| CharsetRule {
            charset: set.chars().collect(),
            min_chars: 1,
        };
        PasswordPolicy::new(
            20,
            vec![rule(LOWERCASE), rule(UPPERCASE), rule(DIGITS), rule("-")],
        )
        .unwrap_or_else(|_| unreachable!("the built-in default policy is valid"))
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
        let mut candidate = Vec::with_capacity(self.length);
        for _ in 0..MAX_ATTEMPTS {
            candidate.clear();
            fill_uniform(&rng, &self.charset, self.length, &mut candidate)?;
            if self.rules.iter().all(|rule| rule.passes(&candidate)) {
                return Ok(candidate.iter().collect());
            }
        }
        Err(PolicyError::Exhausted)
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

/// Appends `length` characters drawn uniformly from `charset`: a random byte is used only if
/// it falls below the largest multiple of the charset size, so every character is equally
/// likely.
fn fill_uniform(
    rng: &SystemRandom,
    charset: &[char],
    length: usize,
    out: &mut Vec<char>,
) -> Result<(), PolicyError> {
    let size = charset.len();
    if size == 0 || size > 255 {
        return Err(PolicyError::NoCharset);
    }
    let limit = (256 / size) * size;
    let mut buffer = [0u8; 64];
    while out.len() < length {
        rng.fill(&mut buffer)
            .map_err(|_| PolicyError::Decode("the system random generator failed".to_owned()))?;
        for &byte in &buffer {
            if usize::from(byte) < limit {
                out.push(charset[usize::from(byte) % size]);
                if out.len() == length {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// A uniformly random string of ASCII letters and digits (base62), as Vault's `random`
/// template function produces.
pub fn random_base62(length: usize) -> String {
    const BASE62: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let charset: Vec<char> = BASE62.chars().collect();
    let mut out = Vec::with_capacity(length);
    // The system generator failing leaves nothing sensible to return.
    fill_uniform(&SystemRandom::new(), &charset, length, &mut out)
        .unwrap_or_else(|err| panic!("random generation failed: {err}"));
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
