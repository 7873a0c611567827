//! Policy text → [`Policy`]: HCL, or JSON (which Vault also accepts), validated the way Vault
//! validates it.
//!
//! Both syntaxes are first reduced to the same shape, a list of `path` stanzas whose settings
//! are plain JSON values with the position they were written at, so the validation rules exist
//! once and every error can name a line and column when the syntax gives one.

use std::{collections::BTreeMap, ops::Range, time::Duration};

use hcl::edit::{
    Span,
    expr::{Expression, ObjectKey, UnaryOperator},
    parser,
    structure::{Body, Structure},
};
use mayfly_sdk::duration::parse_duration_value;
use serde_json::{Map, Number, Value};

use super::{Capabilities, Location, PathRule, Policy, PolicyError};

/// Parses a policy written in HCL or JSON.
///
/// Follows Vault's rules: one leading `/` is dropped from each path; `+*` is refused; the old
/// `policy = "deny" | "read" | "write" | "sudo"` shorthand becomes capabilities; `deny` makes
/// the rule deny-only and its other settings are ignored; parameter names are lowercased.
/// Enterprise-only settings (`mfa_methods`, `control_group`) and settings that only shape
/// responses are accepted and ignored, as Vault's community edition does.
pub fn parse_policy(name: &str, text: &str) -> Result<Policy, PolicyError> {
    let stanzas = if looks_like_json(text) {
        json_stanzas(text)?
    } else {
        hcl_stanzas(text)?
    };
    let rules = stanzas
        .into_iter()
        .map(Stanza::into_rule)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Policy {
        name: name.to_owned(),
        raw: text.to_owned(),
        rules,
    })
}

/// Whether the text contains an identity template such as `{{identity.entity.id}}`.
pub(super) fn has_template(text: &str) -> bool {
    templates(text).next().is_some()
}

/// Settings a path stanza may contain. The last group is accepted only so policies written for
/// Vault or OpenBao load; none of them widens access when ignored.
const IGNORED_KEYS: &[&str] = &[
    "comment",
    "mfa_methods",
    "control_group",
    "subscribe_event_types",
    "pagination_limit",
    "list_scan_response_keys_filter_path",
];

/// One `path` stanza before validation.
struct Stanza {
    pattern: String,
    at: Option<Location>,
    settings: Vec<Setting>,
}

struct Setting {
    key: String,
    value: Value,
    at: Option<Location>,
}

impl Stanza {
    fn into_rule(self) -> Result<PathRule, PolicyError> {
        let Stanza {
            pattern,
            at,
            settings,
        } = self;
        let fail = |at: Option<Location>, message: String| {
            PolicyError::new(at, format!("path {pattern:?}: {message}"))
        };

        validate_templates(&pattern).map_err(|message| fail(at, message))?;

        // A key written twice keeps its last value, as decoding HCL into a struct does.
        let mut capabilities = None;
        let mut legacy = None;
        let mut allowed = None;
        let mut denied = None;
        let mut required = None;
        let mut min_ttl = None;
        let mut max_ttl = None;
        for setting in &settings {
            let slot = match setting.key.as_str() {
                "capabilities" => &mut capabilities,
                "policy" => &mut legacy,
                "allowed_parameters" => &mut allowed,
                "denied_parameters" => &mut denied,
                "required_parameters" => &mut required,
                "min_wrapping_ttl" => &mut min_ttl,
                "max_wrapping_ttl" => &mut max_ttl,
                // OpenBao drops an expired stanza when it loads the policy, which depends on the
                // clock; refusing it is safer than granting past the expiry.
                "expiration" => {
                    return Err(fail(
                        setting.at,
                        "\"expiration\" is not supported; remove the stanza when it should end"
                            .to_owned(),
                    ));
                }
                key if IGNORED_KEYS.contains(&key) => continue,
                key => return Err(fail(setting.at, format!("invalid key {key:?}"))),
            };
            *slot = Some(setting);
        }

        let path = pattern.strip_prefix('/').unwrap_or(&pattern).to_owned();
        if path.is_empty() {
            return Err(fail(at, "the path must not be empty".to_owned()));
        }
        if path.contains("+*") {
            return Err(fail(
                at,
                "invalid use of wildcards ('+*' is forbidden)".to_owned(),
            ));
        }

        let mut names = match capabilities {
            Some(setting) => string_list(&setting.value).ok_or_else(|| {
                fail(
                    setting.at,
                    "capabilities must be a list of strings".to_owned(),
                )
            })?,
            None => Vec::new(),
        };
        if let Some(setting) = legacy {
            match setting.value.as_str() {
                // The shorthand `deny` replaces whatever capabilities were listed.
                Some("deny") => names = vec!["deny".to_owned()],
                Some("read") => names.extend(["read", "list"].map(String::from)),
                Some("write") => {
                    names.extend(["create", "read", "update", "delete", "list"].map(String::from))
                }
                Some("sudo") => names.extend(
                    ["create", "read", "update", "delete", "list", "sudo"].map(String::from),
                ),
                _ => {
                    return Err(fail(
                        setting.at,
                        format!("invalid policy {}", setting.value),
                    ));
                }
            }
        }
        let names_at = capabilities
            .or(legacy)
            .and_then(|setting| setting.at)
            .or(at);

        let mut rule = PathRule {
            path,
            capabilities: Capabilities::NONE,
            allowed_parameters: BTreeMap::new(),
            denied_parameters: BTreeMap::new(),
            required_parameters: Vec::new(),
            min_wrapping_ttl: Duration::ZERO,
            max_wrapping_ttl: Duration::ZERO,
        };
        for name in &names {
            // A deny rule carries nothing else: the remaining settings are not even read.
            if name == "deny" {
                rule.capabilities = Capabilities::DENY;
                return Ok(rule);
            }
            rule.capabilities |= Capabilities::from_name(name)
                .ok_or_else(|| fail(names_at, format!("invalid capability {name:?}")))?;
        }

        if let Some(setting) = allowed {
            rule.allowed_parameters = parameter_map(&setting.value)
                .map_err(|message| fail(setting.at, format!("allowed_parameters: {message}")))?;
        }
        if let Some(setting) = denied {
            rule.denied_parameters = parameter_map(&setting.value)
                .map_err(|message| fail(setting.at, format!("denied_parameters: {message}")))?;
        }
        if let Some(setting) = min_ttl {
            rule.min_wrapping_ttl = parse_duration_value(&setting.value).map_err(|err| {
                fail(setting.at, format!("error parsing min_wrapping_ttl: {err}"))
            })?;
        }
        if let Some(setting) = max_ttl {
            rule.max_wrapping_ttl = parse_duration_value(&setting.value).map_err(|err| {
                fail(setting.at, format!("error parsing max_wrapping_ttl: {err}"))
            })?;
        }
        if !rule.min_wrapping_ttl.is_zero()
            && !rule.max_wrapping_ttl.is_zero()
            && rule.max_wrapping_ttl < rule.min_wrapping_ttl
        {
            let at = max_ttl.and_then(|setting| setting.at).or(at);
            return Err(fail(
                at,
                "max_wrapping_ttl cannot be less than min_wrapping_ttl".to_owned(),
            ));
        }
        if let Some(setting) = required {
            let names = string_list(&setting.value).ok_or_else(|| {
                fail(
                    setting.at,
                    "required_parameters must be a list of strings".to_owned(),
                )
            })?;
            if let Some(name) = names.iter().find(|name| name.contains('*')) {
                return Err(fail(
                    setting.at,
                    format!(
                        "required_parameters: parameter key {name:?}: wildcards are not permitted here"
                    ),
                ));
            }
            rule.required_parameters = names;
        }
        Ok(rule)
    }
}

/// A list of strings; a lone string counts as a list of one, as lenient decoders treat it.
fn string_list(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(single) => Some(vec![single.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

/// `{ "name" = [values...] }` with lowercased names. An empty list (or `null`) accepts any
/// value; a lone value counts as a list of one.
fn parameter_map(value: &Value) -> Result<BTreeMap<String, Vec<Value>>, String> {
    let Value::Object(entries) = value else {
        return Err("expected a map of parameter names to lists of values".to_owned());
    };
    let mut parameters = BTreeMap::new();
    for (key, values) in entries {
        if key.starts_with('/') {
            return Err(format!(
                "parameter key {key:?}: nested parameter paths are not supported"
            ));
        }
        if key.contains('*') && key != "*" {
            return Err(format!(
                "parameter key {key:?}: the only wildcard key is \"*\""
            ));
        }
        let values = match values {
            Value::Array(items) => items.clone(),
            Value::Null => Vec::new(),
            single => vec![single.clone()],
        };
        parameters.insert(key.to_lowercase(), values);
    }
    Ok(parameters)
}

/// The `{{ ... }}` spans of a string, without the braces.
fn templates(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let start = rest.find("{{")?;
        let after = &rest[start + 2..];
        let end = after.find("}}")?;
        rest = &after[end + 2..];
        Some(&after[..end])
    })
}

/// Only identity templates exist in ACL paths; anything else in braces is a typo that would
/// otherwise silently never match.
fn validate_templates(pattern: &str) -> Result<(), String> {
    for template in templates(pattern) {
        let inner = template.trim();
        if !inner.starts_with("identity.entity.") && !inner.starts_with("identity.groups.") {
            return Err(format!(
                "failed to validate policy templating: unknown template {{{{{inner}}}}}"
            ));
        }
    }
    Ok(())
}

/// Vault's parser takes input whose first significant character is `{` as JSON.
fn looks_like_json(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

fn invalid_key(at: Option<Location>, key: &str) -> PolicyError {
    PolicyError::new(at, format!("invalid key {key:?}"))
}

fn json_stanzas(text: &str) -> Result<Vec<Stanza>, PolicyError> {
    let document: Value = serde_json::from_str(text).map_err(|err| {
        let location = Location {
            line: err.line(),
            column: err.column().max(1),
        };
        PolicyError::new(Some(location), json_message(&err))
    })?;
    let Value::Object(top) = document else {
        return Err(PolicyError::new(None, "does not contain a root object"));
    };
    let mut stanzas = Vec::new();
    for (key, value) in top {
        match key.as_str() {
            // The store names the policy; a name inside the text is informational.
            "name" => {}
            "path" => stanzas.extend(stanzas_from_value(value, None)?),
            other => return Err(invalid_key(None, other)),
        }
    }
    Ok(stanzas)
}

/// serde_json appends " at line L column C" to its messages; the position is reported
/// separately, so it is dropped here.
fn json_message(err: &serde_json::Error) -> String {
    let message = err.to_string();
    match message.rfind(" at line ") {
        Some(cut) => message[..cut].to_owned(),
        None => message,
    }
}

/// `{"<pattern>": {settings}}`, or a list of such objects, as the JSON form and HCL's
/// `path = {...}` attribute write stanzas. A pattern may also map to a list of settings
/// objects, each becoming its own stanza.
fn stanzas_from_value(value: Value, at: Option<Location>) -> Result<Vec<Stanza>, PolicyError> {
    let mut stanzas = Vec::new();
    match value {
        Value::Object(patterns) => {
            for (pattern, body) in patterns {
                let bodies = match body {
                    Value::Array(items) => items,
                    single => vec![single],
                };
                for body in bodies {
                    let Value::Object(settings) = body else {
                        return Err(PolicyError::new(
                            at,
                            format!("path {pattern:?}: expected an object of settings"),
                        ));
                    };
                    stanzas.push(Stanza {
                        pattern: pattern.clone(),
                        at,
                        settings: settings
                            .into_iter()
                            .map(|(key, value)| Setting { key, value, at })
                            .collect(),
                    });
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                stanzas.extend(stanzas_from_value(item, at)?);
            }
        }
        _ => {
            return Err(PolicyError::new(
                at,
                "path must map patterns to their settings",
            ));
        }
    }
    Ok(stanzas)
}

fn hcl_stanzas(text: &str) -> Result<Vec<Stanza>, PolicyError> {
    let body = parser::parse_body(text).map_err(|err| {
        let location = Location {
            line: err.location().line(),
            column: err.location().column(),
        };
        PolicyError::new(Some(location), err.message())
    })?;
    let source = Source::new(text);
    let mut stanzas = Vec::new();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attribute) => {
                let at = source.locate(attribute.span());
                match attribute.key.as_str() {
                    "name" => {}
                    "path" => {
                        let value = source.value(&attribute.value)?;
                        stanzas.extend(stanzas_from_value(value, at)?);
                    }
                    other => return Err(invalid_key(at, other)),
                }
            }
            Structure::Block(block) => {
                let at = source.locate(block.span());
                if block.ident.as_str() != "path" {
                    return Err(invalid_key(at, block.ident.as_str()));
                }
                let [label] = block.labels.as_slice() else {
                    return Err(PolicyError::new(
                        at,
                        "a path block takes exactly one pattern, as in path \"secret/*\" { ... }",
                    ));
                };
                stanzas.push(Stanza {
                    pattern: label.as_str().to_owned(),
                    at,
                    settings: source.settings(&block.body)?,
                });
            }
        }
    }
    Ok(stanzas)
}

/// The HCL text, for turning byte spans into line and column numbers.
struct Source<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    fn new(text: &'a str) -> Source<'a> {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        Source { text, line_starts }
    }

    fn locate(&self, span: Option<Range<usize>>) -> Option<Location> {
        let offset = span?.start;
        let line = match self.line_starts.binary_search(&offset) {
            Ok(index) => index,
            Err(index) => index.saturating_sub(1),
        };
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(offset.saturating_sub(start), |before| {
                before.chars().count()
            });
        Some(Location {
            line: line + 1,
            column: column + 1,
        })
    }

    /// The settings of a path block. A nested block (`allowed_parameters { ... }`, the older
    /// spelling of a map attribute) becomes a map value.
    fn settings(&self, body: &Body) -> Result<Vec<Setting>, PolicyError> {
        body.iter()
            .map(|structure| {
                Ok(match structure {
                    Structure::Attribute(attribute) => Setting {
                        key: attribute.key.as_str().to_owned(),
                        value: self.value(&attribute.value)?,
                        at: self.locate(attribute.span()),
                    },
                    Structure::Block(block) => Setting {
                        key: block.ident.as_str().to_owned(),
                        value: self.block_value(&block.labels, &block.body)?,
                        at: self.locate(block.span()),
                    },
                })
            })
            .collect()
    }

    fn block_value(
        &self,
        labels: &[hcl::edit::structure::BlockLabel],
        body: &Body,
    ) -> Result<Value, PolicyError> {
        let mut entries = Map::new();
        for structure in body.iter() {
            match structure {
                Structure::Attribute(attribute) => {
                    entries.insert(
                        attribute.key.as_str().to_owned(),
                        self.value(&attribute.value)?,
                    );
                }
                Structure::Block(block) => {
                    entries.insert(
                        block.ident.as_str().to_owned(),
                        self.block_value(&block.labels, &block.body)?,
                    );
                }
            }
        }
        let mut value = Value::Object(entries);
        for label in labels.iter().rev() {
            let mut wrapper = Map::new();
            wrapper.insert(label.as_str().to_owned(), value);
            value = Value::Object(wrapper);
        }
        Ok(value)
    }

    /// A literal HCL expression as JSON. Policies are data: variables, function calls and
    /// string templates have nothing to evaluate against, so they are refused.
    fn value(&self, expression: &Expression) -> Result<Value, PolicyError> {
        Ok(match expression {
            Expression::Null(_) => Value::Null,
            Expression::Bool(value) => Value::Bool(*value.value()),
            Expression::Number(number) => json_number(number.value(), false),
            Expression::String(value) => Value::String(value.value().clone()),
            Expression::Array(array) => Value::Array(
                array
                    .iter()
                    .map(|item| self.value(item))
                    .collect::<Result<_, _>>()?,
            ),
            Expression::Object(object) => {
                let mut entries = Map::new();
                for (key, value) in object.iter() {
                    entries.insert(self.object_key(key)?, self.value(value.expr())?);
                }
                Value::Object(entries)
            }
            Expression::Parenthesis(inner) => self.value(inner.inner())?,
            Expression::UnaryOp(operation) if *operation.operator.value() == UnaryOperator::Neg => {
                match &operation.expr {
                    Expression::Number(number) => json_number(number.value(), true),
                    other => return Err(self.not_literal(other)),
                }
            }
            other => return Err(self.not_literal(other)),
        })
    }

    fn not_literal(&self, expression: &Expression) -> PolicyError {
        PolicyError::new(
            self.locate(expression.span()),
            "only literal values (strings, numbers, booleans, lists and maps) are allowed in a policy",
        )
    }

    fn object_key(&self, key: &ObjectKey) -> Result<String, PolicyError> {
        match key {
            ObjectKey::Ident(ident) => Ok(ident.as_str().to_owned()),
            ObjectKey::Expression(Expression::String(value)) => Ok(value.value().clone()),
            ObjectKey::Expression(Expression::Number(number)) => {
                Ok(json_number(number.value(), false).to_string())
            }
            ObjectKey::Expression(other) => Err(PolicyError::new(
                self.locate(other.span()),
                "map keys must be names or quoted strings",
            )),
        }
    }
}

fn json_number(number: &hcl::Number, negate: bool) -> Value {
    let integer = match (number.as_i64(), number.as_u64()) {
        (Some(signed), _) if negate => signed.checked_neg().map(Number::from),
        (Some(signed), _) => Some(Number::from(signed)),
        (None, Some(unsigned)) if !negate => Some(Number::from(unsigned)),
        _ => None,
    };
    integer
        .or_else(|| {
            number
                .as_f64()
                .and_then(|float| Number::from_f64(if negate { -float } else { float }))
        })
        .map_or(Value::Null, Value::Number)
}
