//! Checking and canonically formatting ACL policy files for `policy fmt`.
//!
//! The layout is the one operators know from `vault policy fmt`: two-space
//! indentation, `=` aligned across runs of adjacent one-line attributes
//! (and trailing comments aligned after them), a blank line around
//! anything spanning several lines, objects always expanded, lists kept
//! on one line unless they were written over several. Comments are kept.
//! Literals are copied from the source, so strings keep their escapes.

use std::fmt::Write;
use std::ops::Range;

use hcl::edit::expr::{Expression, ObjectValueTerminator};
use hcl::edit::structure::{BlockLabel, Body, Structure};
use hcl::edit::{Decorate, Span};

/// Keys a `path` block may contain, across Vault and OpenBao.
const PATH_KEYS: [&str; 13] = [
    "policy",
    "capabilities",
    "allowed_parameters",
    "denied_parameters",
    "required_parameters",
    "min_wrapping_ttl",
    "max_wrapping_ttl",
    "mfa_methods",
    "control_group",
    "subscribe_event_types",
    "pagination_limit",
    "expiration",
    "list_scan_response_keys_filter_path",
];

/// Capabilities a policy may grant.
const CAPABILITIES: [&str; 11] = [
    "create",
    "read",
    "update",
    "patch",
    "delete",
    "list",
    "sudo",
    "deny",
    "subscribe",
    "recover",
    "scan",
];

/// The legacy `policy = "..."` shorthands.
const POLICY_LEVELS: [&str; 5] = ["deny", "read", "write", "sudo", "list"];

/// Parses `src` as a policy and returns it canonically formatted. Errors
/// read like Vault's: `failed to parse policy: At 3:1: ...`.
pub fn format_policy(src: &str) -> Result<String, String> {
    let body = hcl::edit::parser::parse_body(src).map_err(|e| {
        format!(
            "failed to parse policy: At {}:{}: {}",
            e.location().line(),
            e.location().column(),
            e.message()
        )
    })?;
    validate(&body, src).map_err(|e| format!("failed to parse policy: {e}"))?;
    let printer = Printer { src };
    let mut out = printer.body(&body, 0, true);
    if !out.is_empty() {
        out.push('\n');
    }
    Ok(out)
}

/// The one-based line of a byte offset.
fn line_of(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())].matches('\n').count() + 1
}

fn start_line(src: &str, span: Option<Range<usize>>) -> usize {
    span.map_or(0, |s| line_of(src, s.start))
}

/// The policy rules Vault enforces on the shape of the file.
fn validate(body: &Body, src: &str) -> Result<(), String> {
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) if attr.key.as_str() == "name" => {}
            Structure::Block(block) if block.ident.as_str() == "path" => {
                let [label] = block.labels.as_slice() else {
                    return Err(format!(
                        "path block on line {} must have exactly one label",
                        start_line(src, block.span())
                    ));
                };
                let path = label.as_str();
                validate_path(path, &block.body, src)?;
            }
            other => {
                let key = match other {
                    Structure::Attribute(a) => a.key.as_str(),
                    Structure::Block(b) => b.ident.as_str(),
                };
                return Err(format!(
                    "invalid key {key:?} on line {}",
                    start_line(src, other.span())
                ));
            }
        }
    }
    Ok(())
}

fn validate_path(path: &str, body: &Body, src: &str) -> Result<(), String> {
    for structure in body.iter() {
        let (key, value) = match structure {
            Structure::Attribute(a) => (a.key.as_str(), Some(&a.value)),
            Structure::Block(b) => (b.ident.as_str(), None),
        };
        if !PATH_KEYS.contains(&key) {
            return Err(format!(
                "path {path:?}: invalid key {key:?} on line {}",
                start_line(src, structure.span())
            ));
        }
        match (key, value) {
            ("capabilities", Some(Expression::Array(items))) => {
                for item in items.iter() {
                    let Expression::String(cap) = item else {
                        return Err(format!("path {path:?}: capabilities must be strings"));
                    };
                    if !CAPABILITIES.contains(&cap.as_str()) {
                        return Err(format!(
                            "path {path:?}: invalid capability {:?}",
                            cap.as_str()
                        ));
                    }
                }
            }
            ("capabilities", Some(_)) => {
                return Err(format!("path {path:?}: capabilities must be a list"));
            }
            ("policy", Some(Expression::String(level)))
                if !POLICY_LEVELS.contains(&level.as_str()) =>
            {
                return Err(format!(
                    "path {path:?}: invalid policy {:?}",
                    level.as_str()
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// One entry of a body or object, rendered but not yet laid out.
struct Item {
    /// Comment lines that precede the entry.
    lead: Vec<String>,
    /// Whether the source left a blank line (or nothing but a comma) before
    /// the entry, which the layout turns into a blank line.
    gap_before: bool,
    key: String,
    /// `None` for blocks, whose text is all in `whole`.
    value: Option<String>,
    /// A block, rendered completely.
    whole: Option<String>,
    trailing: Option<String>,
}

impl Item {
    fn multiline(&self) -> bool {
        self.value
            .as_deref()
            .or(self.whole.as_deref())
            .is_some_and(|t| t.contains('\n'))
    }

    fn alignable(&self) -> bool {
        self.value.is_some() && !self.multiline()
    }
}

/// Comment lines in a piece of decor, trimmed.
fn comments(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(start) = rest.find(['#', '/']) {
        let tail = &rest[start..];
        if tail.starts_with("/*") {
            let end = tail.find("*/").map_or(tail.len(), |e| e + 2);
            out.extend(tail[..end].lines().map(|l| l.trim().to_string()));
            rest = &tail[end..];
        } else if tail.starts_with('#') || tail.starts_with("//") {
            let end = tail.find('\n').unwrap_or(tail.len());
            out.push(tail[..end].trim_end().to_string());
            rest = &tail[end..];
        } else {
            rest = &tail[1..];
        }
    }
    out
}

/// Whether decor before an entry holds a blank line ahead of its first
/// comment. The newline ending the previous entry is not part of it, so
/// any newline here means an empty line.
fn blank_line_before(raw: &str) -> bool {
    let before_comment = raw.find(['#', '/']).map_or(raw, |i| &raw[..i]);
    before_comment.contains('\n')
}

fn decor_prefix(d: &impl Decorate) -> &str {
    d.decor().prefix().map_or("", |r| r)
}

fn decor_suffix(d: &impl Decorate) -> &str {
    d.decor().suffix().map_or("", |r| r)
}

struct Printer<'a> {
    src: &'a str,
}

impl Printer<'_> {
    /// The source text of something parsed, or its re-encoding when the
    /// parser recorded no position.
    fn source(&self, span: Option<Range<usize>>, fallback: impl FnOnce() -> String) -> String {
        match span {
            Some(r) if r.end <= self.src.len() => self.src[r].trim().to_string(),
            _ => fallback().trim().to_string(),
        }
    }

    fn body(&self, body: &Body, indent: usize, top: bool) -> String {
        let mut items: Vec<Item> = Vec::new();
        for (i, structure) in body.iter().enumerate() {
            let prefix = decor_prefix(structure);
            let mut lead = comments(prefix);
            if i == 0 {
                // A comment right after the opening brace belongs on top.
                let mut first = comments(decor_prefix(body));
                first.append(&mut lead);
                lead = first;
            }
            let trailing = comments(decor_suffix(structure)).into_iter().next();
            let item = match structure {
                Structure::Attribute(attr) => Item {
                    lead,
                    gap_before: i > 0 && blank_line_before(prefix),
                    key: attr.key.as_str().to_string(),
                    value: Some(self.expr(&attr.value, indent)),
                    whole: None,
                    trailing,
                },
                Structure::Block(block) => {
                    let mut header = block.ident.as_str().to_string();
                    for label in &block.labels {
                        header.push(' ');
                        header.push_str(&self.label(label));
                    }
                    let inner = self.body(&block.body, indent + 2, false);
                    let whole = if inner.is_empty() {
                        format!("{header} {{}}")
                    } else {
                        format!("{header} {{\n{inner}\n{}}}", " ".repeat(indent))
                    };
                    Item {
                        lead,
                        gap_before: i > 0 && blank_line_before(prefix),
                        key: header,
                        value: None,
                        whole: Some(whole),
                        trailing,
                    }
                }
            };
            items.push(item);
        }
        let mut out = self.layout(&items, indent, !top);
        let closing = if body.is_empty() {
            // With no entries, the brace comment has nowhere else to go.
            let mut all = comments(decor_prefix(body));
            all.extend(comments(decor_suffix(body)));
            all
        } else {
            comments(decor_suffix(body))
        };
        if !closing.is_empty() {
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            let pad = " ".repeat(indent);
            let lines: Vec<String> = closing.iter().map(|c| format!("{pad}{c}")).collect();
            out.push_str(&lines.join("\n"));
        }
        out
    }

    fn label(&self, label: &BlockLabel) -> String {
        match label {
            BlockLabel::Ident(ident) => ident.as_str().to_string(),
            BlockLabel::String(s) => self.source(s.span(), || quote(s.as_str())),
        }
    }

    /// Lays out rendered entries at `indent`, aligning runs of one-line
    /// attributes when `align` is set.
    fn layout(&self, items: &[Item], indent: usize, align: bool) -> String {
        let pad = " ".repeat(indent);
        let mut out = String::new();
        let mut i = 0;
        while i < items.len() {
            // A run continues while entries are one-liners that directly
            // follow each other with no comment in between.
            let mut end = i + 1;
            if items[i].alignable() {
                while end < items.len()
                    && items[end].alignable()
                    && !items[end].gap_before
                    && items[end].lead.is_empty()
                {
                    end += 1;
                }
            }
            let run = &items[i..end];
            let key_width = if align {
                run.iter()
                    .map(|it| it.key.chars().count())
                    .max()
                    .unwrap_or(0)
            } else {
                0
            };
            let value_width = if align && run.iter().any(|it| it.trailing.is_some()) {
                run.iter()
                    .filter_map(|it| it.value.as_deref())
                    .map(|v| v.chars().count())
                    .max()
                    .unwrap_or(0)
            } else {
                0
            };
            for (k, item) in run.iter().enumerate() {
                let index = i + k;
                if index > 0 {
                    out.push('\n');
                    let prev = &items[index - 1];
                    if item.gap_before
                        || !item.lead.is_empty()
                        || prev.multiline()
                        || item.multiline()
                    {
                        out.push('\n');
                    }
                }
                for comment in &item.lead {
                    let _ = writeln!(out, "{pad}{comment}");
                }
                out.push_str(&pad);
                match (&item.value, &item.whole) {
                    (Some(value), _) => {
                        let _ = write!(out, "{:key_width$} = {value}", item.key);
                        if let Some(comment) = &item.trailing {
                            let fill = value_width.saturating_sub(value.chars().count());
                            let _ = write!(out, "{} {comment}", " ".repeat(fill));
                        }
                    }
                    (None, Some(whole)) => {
                        out.push_str(whole);
                        if let Some(comment) = &item.trailing {
                            let _ = write!(out, " {comment}");
                        }
                    }
                    (None, None) => {}
                }
            }
            i = end;
        }
        out
    }

    /// An expression at `indent`; continuation lines carry their own
    /// indentation.
    fn expr(&self, expr: &Expression, indent: usize) -> String {
        match expr {
            Expression::Array(array) => {
                if array.is_empty() {
                    return "[]".to_string();
                }
                let elements: Vec<String> =
                    array.iter().map(|e| self.expr(e, indent + 2)).collect();
                let written_multiline = array
                    .span()
                    .is_some_and(|r| self.src.get(r).is_some_and(|t| t.contains('\n')));
                if written_multiline || elements.iter().any(|e| e.contains('\n')) {
                    let inner = " ".repeat(indent + 2);
                    let lines: Vec<String> =
                        elements.iter().map(|e| format!("{inner}{e},")).collect();
                    format!("[\n{}\n{}]", lines.join("\n"), " ".repeat(indent))
                } else {
                    format!("[{}]", elements.join(", "))
                }
            }
            Expression::Object(object) => {
                if object.is_empty() {
                    return "{}".to_string();
                }
                let mut items = Vec::new();
                let mut previous_end = ObjectValueTerminator::Newline;
                for (i, (key, value)) in object.iter().enumerate() {
                    let prefix = decor_prefix(key);
                    // Entries written on one line, separated by commas,
                    // get a blank line between them, as in Vault.
                    let same_line =
                        previous_end != ObjectValueTerminator::Newline && !prefix.contains('\n');
                    items.push(Item {
                        lead: comments(prefix),
                        gap_before: i > 0 && (same_line || blank_line_before(prefix)),
                        key: self.source(key.span(), || match key {
                            hcl::edit::expr::ObjectKey::Ident(id) => id.as_str().to_string(),
                            hcl::edit::expr::ObjectKey::Expression(e) => e.to_string(),
                        }),
                        value: Some(self.expr(value.expr(), indent + 2)),
                        whole: None,
                        trailing: comments(decor_suffix(value.expr())).into_iter().next(),
                    });
                    previous_end = value.terminator();
                }
                format!(
                    "{{\n{}\n{}}}",
                    self.layout(&items, indent + 2, true),
                    " ".repeat(indent)
                )
            }
            other => self.source(other.span(), || other.to_string()),
        }
    }
}

/// A double-quoted HCL string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(src: &str) -> String {
        format_policy(src).unwrap()
    }

    #[test]
    fn aligns_and_separates() {
        let src = "path \"secret/*\" {\ncapabilities = [\"read\",\"list\"]\n      allowed_parameters = {\n \"a\" = []\n  \"bb\"=[\"x\"]\n}\n}\n\n\n# comment\npath \"sys/x\" { capabilities=[\"deny\"] }\n";
        assert_eq!(
            fmt(src),
            "\
path \"secret/*\" {
  capabilities = [\"read\", \"list\"]

  allowed_parameters = {
    \"a\"  = []
    \"bb\" = [\"x\"]
  }
}

# comment
path \"sys/x\" {
  capabilities = [\"deny\"]
}
"
        );
    }

    #[test]
    fn groups_break_on_gaps_and_comments() {
        let src = "path \"a\" {\n capabilities=[\"read\"]\n required_parameters = [\"a\",\"b\"]\n # c\n min_wrapping_ttl = \"1s\"\n\n max_wrapping_ttl=\"90s\"\n}\n";
        assert_eq!(
            fmt(src),
            "\
path \"a\" {
  capabilities        = [\"read\"]
  required_parameters = [\"a\", \"b\"]

  # c
  min_wrapping_ttl = \"1s\"

  max_wrapping_ttl = \"90s\"
}
"
        );
    }

    #[test]
    fn trailing_comments_align() {
        let src = "path \"a\" {\n capabilities=[\"read\"]\n min_wrapping_ttl = \"1s\" # t1\n required_parameters = [\"x\"] # t2\n}\n";
        assert_eq!(
            fmt(src),
            "\
path \"a\" {
  capabilities        = [\"read\"]
  min_wrapping_ttl    = \"1s\"     # t1
  required_parameters = [\"x\"]    # t2
}
"
        );
    }

    #[test]
    fn multiline_lists_and_inline_objects() {
        let src = "path \"a\" {\n capabilities=[\"read\", \"update\",\n \"list\"]\n allowed_parameters = { \"a\" = [\"1\", \"2\"], \"b\" = [] }\n}\n";
        assert_eq!(
            fmt(src),
            "\
path \"a\" {
  capabilities = [
    \"read\",
    \"update\",
    \"list\",
  ]

  allowed_parameters = {
    \"a\" = [\"1\", \"2\"]

    \"b\" = []
  }
}
"
        );
    }

    #[test]
    fn comments_around_blocks_survive() {
        let src = "# top\npath \"a\" { # brace\n  policy = \"read\"\n  # closing\n}\n# end\n";
        assert_eq!(
            fmt(src),
            "\
# top
path \"a\" {
  # brace
  policy = \"read\"

  # closing
}

# end
"
        );
        assert_eq!(fmt("path \"a\" {}\n"), "path \"a\" {}\n");
        assert_eq!(fmt(""), "");
    }

    #[test]
    fn formatting_is_stable() {
        let src = "path \"a\" {\n capabilities=[\"read\"]\n denied_parameters = {\n \"x\" = []\n }\n}\npath \"b\" {\n policy = \"write\"\n}\n";
        let once = fmt(src);
        assert_eq!(fmt(&once), once);
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err = format_policy("path \"x\" {\n  capabilities = [\"read\"\n}\n").unwrap_err();
        assert!(err.starts_with("failed to parse policy: At 3:1: "), "{err}");
    }

    #[test]
    fn policy_rules() {
        assert_eq!(
            format_policy("path \"x\" {\n  capabilities = [\"reed\"]\n}\n").unwrap_err(),
            "failed to parse policy: path \"x\": invalid capability \"reed\""
        );
        assert_eq!(
            format_policy("foo = 1\n").unwrap_err(),
            "failed to parse policy: invalid key \"foo\" on line 1"
        );
        assert_eq!(
            format_policy("path \"x\" {\n  capabilities = [\"read\"]\n  bogus = 1\n}\n")
                .unwrap_err(),
            "failed to parse policy: path \"x\": invalid key \"bogus\" on line 3"
        );
        assert!(format_policy("path \"x\" {\n  policy = \"maybe\"\n}\n").is_err());
        assert!(format_policy("path {\n}\n").is_err());
    }
}
