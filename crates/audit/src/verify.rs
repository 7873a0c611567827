//! Offline verification of audit files: walks the chain line by line and reports the first
//! line where it breaks, and why.

use std::{fmt, io::BufRead};

use serde::Serialize;
use serde_json::Value;

use crate::{
    Error,
    chain::{
        CHECKPOINT_TYPE, ChainState, Digest, HEADER_TYPE, LineKind, Link, link_hash,
        signature_message, split_link, verify_signature,
    },
};

/// What kind of tampering (or damage) a breach shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreachKind {
    /// The line is not a chained audit line (or is cut short).
    Malformed,
    /// A file does not start with a header.
    MissingHeader,
    /// The line's content does not match its own hash.
    Edited,
    /// The line does not chain to the one before it.
    BrokenLink,
    /// `seq` jumps forward: lines were removed.
    Deleted,
    /// `seq` goes backwards or a later line comes first: lines were moved.
    Reordered,
    /// A header or checkpoint signature does not verify.
    BadSignature,
    /// A header names a key other than the pinned one.
    UnexpectedKey,
}

/// The first place the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Breach {
    pub file: String,
    /// 1-based line number within `file`.
    pub line: u64,
    pub kind: BreachKind,
    pub detail: String,
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, line {}: {}", self.file, self.line, self.detail)
    }
}

/// Why verification stopped.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("reading {file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("tampering detected: {0}")]
    Breach(Breach),
}

/// What an intact chain contained.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub files: u64,
    pub lines: u64,
    /// Request and response entries.
    pub entries: u64,
    pub headers: u64,
    pub checkpoints: u64,
    /// Lines after the last checkpoint: chained, but not yet covered by a signature.
    pub unsigned_tail: u64,
    /// The keys the headers named, in order of first appearance (hex).
    pub public_keys: Vec<String>,
    /// `seq` of the first line seen.
    pub first_seq: Option<u64>,
    /// `seq` of the last line seen.
    pub last_seq: Option<u64>,
    /// The first line continues a chain whose earlier lines were not given (a rotated file).
    pub continues_earlier_file: bool,
}

/// Verifies one or more files of one device's log, in order.
pub struct Verifier {
    pinned: Option<Vec<u8>>,
    state: Option<ChainState>,
    key: Option<Vec<u8>>,
    prefix: String,
    summary: Summary,
}

/// A line split into its parts.
struct Parsed {
    body: Vec<u8>,
    link: Link,
    value: Value,
}

impl Verifier {
    /// `pinned` is the device's public key in hex, as `sys/audit` reports it; without it the
    /// key in the first header is trusted and reported.
    pub fn new(pinned: Option<&str>) -> Result<Verifier, Error> {
        let pinned = match pinned {
            Some(text) => {
                let bytes = hex::decode(text.trim()).map_err(|_| Error::InvalidPublicKey)?;
                if bytes.len() != 32 {
                    return Err(Error::InvalidPublicKey);
                }
                Some(bytes)
            }
            None => None,
        };
        Ok(Verifier {
            pinned,
            state: None,
            key: None,
            prefix: String::new(),
            summary: Summary::default(),
        })
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Verifies the next file of the log. Files given one after another must continue each
    /// other's chain (a log and its rotated predecessors, oldest first).
    pub fn verify_file<R: BufRead>(
        &mut self,
        name: &str,
        mut reader: R,
    ) -> Result<(), VerifyError> {
        self.summary.files += 1;
        let io = |source| VerifyError::Io {
            file: name.to_owned(),
            source,
        };
        let mut current = read_line(&mut reader).map_err(io)?;
        let mut number = 0u64;
        while let Some(raw) = current {
            let next = read_line(&mut reader).map_err(io)?;
            number += 1;
            let breach = |kind, detail: String| {
                VerifyError::Breach(Breach {
                    file: name.to_owned(),
                    line: number,
                    kind,
                    detail,
                })
            };
            let Some(text) = raw.strip_suffix(b"\n") else {
                return Err(breach(
                    BreachKind::Malformed,
                    "the last line is incomplete (cut short, or a write was interrupted)".into(),
                ));
            };
            let parsed = self.parse(text).ok_or_else(|| {
                breach(
                    BreachKind::Malformed,
                    "not a chained Mayfly audit line".into(),
                )
            })?;
            let kind = parsed.value.get("type").and_then(Value::as_str);
            if number == 1 && kind != Some(HEADER_TYPE) {
                return Err(breach(
                    BreachKind::MissingHeader,
                    "the file does not start with a Mayfly audit header".into(),
                ));
            }
            self.check_order(&parsed.link, next.as_deref())
                .map_err(|(kind, detail)| breach(kind, detail))?;
            if link_hash(&parsed.link.prev, &parsed.body) != parsed.link.hash {
                return Err(breach(
                    BreachKind::Edited,
                    format!(
                        "the line (seq {}) was modified: its content does not match its hash",
                        parsed.link.seq
                    ),
                ));
            }
            match kind {
                Some(HEADER_TYPE) => self
                    .check_header(&parsed)
                    .map_err(|(kind, detail)| breach(kind, detail))?,
                Some(CHECKPOINT_TYPE) => self
                    .check_checkpoint(&parsed)
                    .map_err(|(kind, detail)| breach(kind, detail))?,
                _ => {
                    self.summary.entries += 1;
                    self.summary.unsigned_tail += 1;
                }
            }
            self.summary.lines += 1;
            self.summary.first_seq.get_or_insert(parsed.link.seq);
            self.summary.last_seq = Some(parsed.link.seq);
            self.state = Some(ChainState {
                next_seq: parsed.link.seq + 1,
                last_hash: parsed.link.hash,
            });
            current = next;
        }
        Ok(())
    }

    /// Splits a line into prefix, body and link. A header may introduce a new prefix, so a
    /// line that does not start with the current one is tried as a header.
    fn parse(&mut self, text: &[u8]) -> Option<Parsed> {
        if let Some(json) = text.strip_prefix(self.prefix.as_bytes())
            && let Some(parsed) = parse_json(json)
        {
            return Some(parsed);
        }
        // Find where the JSON starts: at a `{` whose text before it is the prefix the header
        // itself declares.
        for (at, _) in text.iter().enumerate().filter(|(_, byte)| **byte == b'{') {
            let Some(parsed) = parse_json(&text[at..]) else {
                continue;
            };
            let declared = parsed.value.get("prefix").and_then(Value::as_str);
            if parsed.value.get("type").and_then(Value::as_str) == Some(HEADER_TYPE)
                && declared.map(str::as_bytes) == Some(&text[..at])
            {
                self.prefix = declared.unwrap_or_default().to_owned();
                return Some(parsed);
            }
        }
        None
    }

    fn check_order(
        &mut self,
        link: &Link,
        next: Option<&[u8]>,
    ) -> Result<(), (BreachKind, String)> {
        let Some(state) = self.state else {
            if link.prev != Digest::default() {
                self.summary.continues_earlier_file = true;
            }
            return Ok(());
        };
        let expected = state.next_seq;
        if link.seq > expected {
            let next_seq = next
                .and_then(|line| line.strip_suffix(b"\n"))
                .and_then(|line| line.strip_prefix(self.prefix.as_bytes()))
                .and_then(split_link)
                .map(|(_, link)| link.seq);
            if next_seq == Some(expected) {
                return Err((
                    BreachKind::Reordered,
                    format!(
                        "the line is out of order: seq {} comes before seq {expected} \
                         (lines were moved or swapped)",
                        link.seq
                    ),
                ));
            }
            let missing = link.seq - expected;
            return Err((
                BreachKind::Deleted,
                format!(
                    "{missing} line(s) are missing before this one: expected seq {expected}, \
                     found seq {} (lines were removed)",
                    link.seq
                ),
            ));
        }
        if link.seq < expected {
            return Err((
                BreachKind::Reordered,
                format!(
                    "the line is out of order: seq {} follows seq {} \
                     (lines were moved, swapped or repeated)",
                    link.seq,
                    expected - 1
                ),
            ));
        }
        if link.prev != state.last_hash {
            return Err((
                BreachKind::BrokenLink,
                format!(
                    "the line (seq {}) does not chain to the line before it: a line was \
                     modified and its hash recomputed, inserted, or replaced",
                    link.seq
                ),
            ));
        }
        Ok(())
    }

    fn check_header(&mut self, parsed: &Parsed) -> Result<(), (BreachKind, String)> {
        let malformed = |what: &str| (BreachKind::Malformed, format!("header: {what}"));
        let key_hex = parsed
            .value
            .get("public_key")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("no public_key"))?;
        let key = hex::decode(key_hex)
            .ok()
            .filter(|key| key.len() == 32)
            .ok_or_else(|| malformed("public_key is not 32 bytes of hex"))?;
        if let Some(pinned) = &self.pinned
            && *pinned != key
        {
            return Err((
                BreachKind::UnexpectedKey,
                format!(
                    "the header names key {key_hex}, not the pinned key {}",
                    hex::encode(pinned)
                ),
            ));
        }
        let signature = signature_of(&parsed.value).ok_or_else(|| malformed("no signature"))?;
        let message = signature_message(LineKind::Header, parsed.link.seq, &parsed.link.prev);
        if !verify_signature(&key, &message, &signature) {
            return Err((
                BreachKind::BadSignature,
                "the header's signature is invalid (forged, or the lines before it were \
                 rewritten)"
                    .into(),
            ));
        }
        if !self.summary.public_keys.iter().any(|k| k == key_hex) {
            self.summary.public_keys.push(key_hex.to_owned());
        }
        self.key = Some(key);
        self.summary.headers += 1;
        Ok(())
    }

    fn check_checkpoint(&mut self, parsed: &Parsed) -> Result<(), (BreachKind, String)> {
        let key = self.key.as_ref().ok_or((
            BreachKind::MissingHeader,
            "a checkpoint before any header".to_owned(),
        ))?;
        let signature = signature_of(&parsed.value)
            .ok_or((BreachKind::Malformed, "checkpoint: no signature".to_owned()))?;
        let message = signature_message(LineKind::Checkpoint, parsed.link.seq, &parsed.link.prev);
        if !verify_signature(key, &message, &signature) {
            return Err((
                BreachKind::BadSignature,
                format!(
                    "the checkpoint (seq {}) has an invalid signature: it was forged, or the \
                     lines before it were rewritten",
                    parsed.link.seq
                ),
            ));
        }
        self.summary.checkpoints += 1;
        self.summary.unsigned_tail = 0;
        Ok(())
    }
}

fn parse_json(json: &[u8]) -> Option<Parsed> {
    let (body, link) = split_link(json)?;
    let value: Value = serde_json::from_slice(&body).ok()?;
    value.is_object().then_some(Parsed { body, link, value })
}

fn signature_of(value: &Value) -> Option<Vec<u8>> {
    hex::decode(value.get("signature")?.as_str()?).ok()
}

/// The next line including its newline, or `None` at the end. Lines need not be UTF-8.
fn read_line<R: BufRead>(reader: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    match reader.read_until(b'\n', &mut line)? {
        0 => Ok(None),
        _ => Ok(Some(line)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::SigningKey;

    /// A log of `entries` entries after a header, with a checkpoint after every `every`.
    fn log(key: &SigningKey, prefix: &str, entries: usize, every: usize) -> Vec<Vec<u8>> {
        let mut state = ChainState::default();
        let mut lines = Vec::new();
        let (line, next) = state.header(prefix, "t0", "file/", key);
        lines.push(line);
        state = next;
        for i in 0..entries {
            let body = format!(r#"{{"time":"t","type":"request","request":{{"id":"{i}"}}}}"#);
            let (line, next) = state.seal(prefix, body.as_bytes());
            lines.push(line);
            state = next;
            if (i + 1) % every == 0 {
                let (line, next) = state.checkpoint(prefix, "t", key);
                lines.push(line);
                state = next;
            }
        }
        lines
    }

    fn verify(lines: &[Vec<u8>], pinned: Option<&str>) -> Result<Summary, VerifyError> {
        let mut verifier = Verifier::new(pinned).unwrap();
        verifier.verify_file("audit.log", &lines.concat()[..])?;
        Ok(verifier.summary().clone())
    }

    fn breach(result: Result<Summary, VerifyError>) -> Breach {
        match result {
            Err(VerifyError::Breach(breach)) => breach,
            other => panic!("expected a breach, got {other:?}"),
        }
    }

    #[test]
    fn an_untouched_log_verifies() {
        let (key, _) = SigningKey::generate().unwrap();
        let lines = log(&key, "", 10, 4);
        let summary = verify(&lines, Some(&key.public_key_hex())).unwrap();
        assert_eq!(summary.entries, 10);
        assert_eq!(summary.checkpoints, 2);
        assert_eq!(summary.headers, 1);
        assert_eq!(summary.unsigned_tail, 2);
        assert_eq!(summary.public_keys, [key.public_key_hex()]);
        assert!(!summary.continues_earlier_file);
    }

    #[test]
    fn prefixed_logs_verify() {
        let (key, _) = SigningKey::generate().unwrap();
        let lines = log(&key, "audit {x}: ", 3, 2);
        assert_eq!(verify(&lines, None).unwrap().entries, 3);
    }

    #[test]
    fn an_edited_line_is_found() {
        let (key, _) = SigningKey::generate().unwrap();
        let mut lines = log(&key, "", 6, 10);
        let text = String::from_utf8(lines[3].clone()).unwrap();
        lines[3] = text.replace("\"request\"", "\"response\"").into_bytes();
        let found = breach(verify(&lines, None));
        assert_eq!((found.line, found.kind), (4, BreachKind::Edited));
    }

    #[test]
    fn an_edit_with_a_recomputed_chain_is_caught_by_the_checkpoint() {
        let (key, _) = SigningKey::generate().unwrap();
        let lines = log(&key, "", 6, 3);
        // Rebuild every line after the first entry with altered content and a fresh chain.
        let mut forged = vec![lines[0].clone()];
        let (_, link) = split_link(&lines[0][..lines[0].len() - 1]).unwrap();
        let mut state = ChainState {
            next_seq: link.seq + 1,
            last_hash: link.hash,
        };
        for line in &lines[1..] {
            let (body, _) = split_link(&line[..line.len() - 1]).unwrap();
            let body = String::from_utf8(body)
                .unwrap()
                .replace("\"id\":\"0\"", "\"id\":\"X\"");
            let (line, next) = state.seal("", body.as_bytes());
            forged.push(line);
            state = next;
        }
        let found = breach(verify(&forged, None));
        assert_eq!(found.kind, BreachKind::BadSignature);
        assert_eq!(found.line, 5);
    }

    #[test]
    fn a_deleted_line_is_found() {
        let (key, _) = SigningKey::generate().unwrap();
        let mut lines = log(&key, "", 6, 10);
        lines.remove(3);
        let found = breach(verify(&lines, None));
        assert_eq!((found.line, found.kind), (4, BreachKind::Deleted));
    }

    #[test]
    fn swapped_lines_are_found() {
        let (key, _) = SigningKey::generate().unwrap();
        let mut lines = log(&key, "", 6, 10);
        lines.swap(2, 3);
        let found = breach(verify(&lines, None));
        assert_eq!((found.line, found.kind), (3, BreachKind::Reordered));
    }

    #[test]
    fn a_truncated_line_and_a_missing_header_are_found() {
        let (key, _) = SigningKey::generate().unwrap();
        let mut lines = log(&key, "", 3, 10);
        let last = lines.len() - 1;
        lines[last].truncate(20);
        assert_eq!(breach(verify(&lines, None)).kind, BreachKind::Malformed);
        let lines = log(&key, "", 3, 10);
        assert_eq!(
            breach(verify(&lines[1..], None)).kind,
            BreachKind::MissingHeader
        );
    }

    #[test]
    fn a_foreign_key_fails_pinning_and_a_forged_checkpoint_fails_its_signature() {
        let (key, _) = SigningKey::generate().unwrap();
        let (other, _) = SigningKey::generate().unwrap();
        let lines = log(&other, "", 2, 10);
        let found = breach(verify(&lines, Some(&key.public_key_hex())));
        assert_eq!(found.kind, BreachKind::UnexpectedKey);

        // A checkpoint signed by another key than the header's.
        let mut lines = log(&key, "", 2, 10);
        let (_, link) = split_link(&lines[2][..lines[2].len() - 1]).unwrap();
        let state = ChainState {
            next_seq: link.seq + 1,
            last_hash: link.hash,
        };
        lines.push(state.checkpoint("", "t", &other).0);
        let found = breach(verify(&lines, None));
        assert_eq!((found.line, found.kind), (4, BreachKind::BadSignature));
    }

    #[test]
    fn rotated_files_verify_in_order_only() {
        let (key, _) = SigningKey::generate().unwrap();
        let first = log(&key, "", 3, 10);
        let (_, link) = split_link(&first[3][..first[3].len() - 1]).unwrap();
        let mut state = ChainState {
            next_seq: link.seq + 1,
            last_hash: link.hash,
        };
        let (checkpoint, next) = state.checkpoint("", "t", &key);
        state = next;
        let mut first = first;
        first.push(checkpoint);
        let (header, next) = state.header("", "t", "file/", &key);
        state = next;
        let (entry, _) = state.seal("", br#"{"type":"request"}"#);
        let second = vec![header, entry];

        let mut verifier = Verifier::new(None).unwrap();
        verifier
            .verify_file("a.log.1", &first.concat()[..])
            .unwrap();
        verifier.verify_file("a.log", &second.concat()[..]).unwrap();
        assert_eq!(verifier.summary().headers, 2);
        assert_eq!(verifier.summary().entries, 4);

        // The newer file alone continues an earlier one, which is reported, not a breach.
        let summary = verify(&second, None).unwrap();
        assert!(summary.continues_earlier_file);

        // Out of order, the chain breaks at the first line of the second file given.
        let mut verifier = Verifier::new(None).unwrap();
        verifier.verify_file("a.log", &second.concat()[..]).unwrap();
        let err = verifier.verify_file("a.log.1", &first.concat()[..]);
        assert!(matches!(err, Err(VerifyError::Breach(_))));
    }
}
