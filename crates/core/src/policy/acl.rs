//! A token's policies compiled into an [`Acl`], and the checks made against it.
//!
//! Compilation follows Vault: stanzas with the same pattern (from any of the policies) are
//! merged into one rule; a request is then governed by exactly one rule. An exact pattern wins
//! outright; otherwise the candidates are the longest matching `*` glob and every matching `+`
//! pattern, ranked by Vault's precedence.

use std::{
    borrow::Cow,
    cmp::{Ordering, Reverse},
    collections::{BTreeMap, HashMap, hash_map::Entry},
    fmt,
    sync::Arc,
    time::Duration,
};

use mayfly_sdk::{Operation, duration::format_duration};
use serde_json::{Map, Value};

use super::{
    Capabilities, PathRule, PatternKind, Policy, ROOT_POLICY_NAME, is_root_protected,
    tree::{PrefixTree, SegmentTree},
};

/// What is being asked of the ACL.
#[derive(Debug, Clone, Copy)]
pub struct AclRequest<'a> {
    /// The full request path (`secret/data/foo`, `sys/mounts`); a leading `/` is ignored.
    pub path: &'a str,
    pub operation: Operation,
    /// The request's parameters, checked against allowed/denied/required parameters.
    pub data: &'a Map<String, Value>,
    /// The response-wrapping TTL the client asked for, checked against the wrapping bounds.
    pub wrap_ttl: Option<Duration>,
}

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AclResult {
    pub allowed: bool,
    /// The governing rule grants `sudo` (always true for root).
    pub root_privs: bool,
    /// The ACL holds the `root` policy, so no rule was consulted.
    pub is_root: bool,
    /// Why the request was refused, for logs; clients only ever see "permission denied".
    pub denial_reason: Option<String>,
}

impl AclResult {
    fn denied(root_privs: bool, reason: String) -> AclResult {
        AclResult {
            allowed: false,
            root_privs,
            is_root: false,
            denial_reason: Some(reason),
        }
    }
}

/// Extra requirements of a check that depend on where the path is routed, not on policies.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// The path is root-protected: the governing rule must also grant `sudo`.
    pub root_privs_required: bool,
}

/// The compiled, merged rules of a set of policies.
pub struct Acl {
    root: bool,
    rules: Vec<CompiledRule>,
    exact: HashMap<Box<str>, usize>,
    /// Keys are glob patterns without their trailing `*`.
    prefixes: PrefixTree<usize>,
    segments: SegmentTree,
}

impl Acl {
    /// Compiles the policies of one token. A policy named `root` makes the ACL allow
    /// everything. Rules whose path uses identity templating are left out: with no entity to
    /// fill them in they can match nothing, which is what Vault does for a token without one.
    pub fn new(policies: &[Arc<Policy>]) -> Acl {
        let mut acl = Acl {
            root: false,
            rules: Vec::new(),
            exact: HashMap::new(),
            prefixes: PrefixTree::new(),
            segments: SegmentTree::new(),
        };
        if policies
            .iter()
            .any(|policy| policy.name == ROOT_POLICY_NAME)
        {
            acl.root = true;
            return acl;
        }

        let mut merged: Vec<PathRule> = Vec::new();
        let mut by_pattern: HashMap<(PatternKind, &str), usize> = HashMap::new();
        for rule in policies.iter().flat_map(|policy| &policy.rules) {
            if rule.is_templated() {
                continue;
            }
            match by_pattern.entry((rule.kind(), rule.path.as_str())) {
                Entry::Occupied(slot) => merge_into(&mut merged[*slot.get()], rule),
                Entry::Vacant(slot) => {
                    slot.insert(merged.len());
                    merged.push(rule.clone());
                }
            }
        }

        for (index, rule) in merged.into_iter().enumerate() {
            let compiled = CompiledRule::new(rule);
            match compiled.kind {
                PatternKind::Exact => {
                    acl.exact.insert(compiled.pattern.clone(), index);
                }
                PatternKind::Prefix => {
                    acl.prefixes.insert(compiled.unglobbed(), index);
                }
                PatternKind::Segments => acl.segments.insert(&compiled.pattern, index),
            }
            acl.rules.push(compiled);
        }
        acl
    }

    pub fn is_root(&self) -> bool {
        self.root
    }

    /// Checks a request, requiring `sudo` when the path is one of the built-in root-protected
    /// paths ([`is_root_protected`]). Use [`Acl::check`] when the caller knows better (for
    /// example a mount's own root-protected paths).
    pub fn allows(&self, req: &AclRequest<'_>) -> AclResult {
        self.check(
            req,
            CheckOptions {
                root_privs_required: is_root_protected(req.path),
            },
        )
    }

    /// Checks a request: the governing rule must grant the operation's capability (and not
    /// deny), its wrapping bounds and parameter constraints must hold, and `sudo` must be
    /// granted when `options` require it.
    pub fn check(&self, req: &AclRequest<'_>, options: CheckOptions) -> AclResult {
        if self.root {
            return AclResult {
                allowed: true,
                root_privs: true,
                is_root: true,
                denial_reason: None,
            };
        }
        let Some(needed) = Capabilities::for_operation(req.operation) else {
            // Help describes paths, it does not act on them, so it is always allowed.
            return AclResult {
                allowed: true,
                ..AclResult::default()
            };
        };
        let path = req.path.trim_start_matches('/');
        let Some(rule) = self.governing_rule(path, req.operation) else {
            return AclResult::denied(false, format!("no policy grants access to {path:?}"));
        };
        let root_privs = rule.capabilities.contains(Capabilities::SUDO);
        if let Err(reason) = rule.authorize(req, needed) {
            return AclResult::denied(root_privs, reason);
        }
        if options.root_privs_required && !root_privs {
            return AclResult::denied(
                root_privs,
                format!(
                    "{path:?} is root-protected: the rule for {:?} must also grant \"sudo\"",
                    rule.pattern
                ),
            );
        }
        AclResult {
            allowed: true,
            root_privs,
            is_root: false,
            denial_reason: None,
        }
    }

    /// The capabilities the ACL grants on a path, for `sys/capabilities*`: sorted names,
    /// `["root"]` for a root ACL, `["deny"]` when nothing is granted. The path is looked up the
    /// way a LIST request is, so both `foo` and `foo/` rules answer for `foo/`.
    pub fn capabilities(&self, path: &str) -> Vec<String> {
        if self.root {
            return vec![ROOT_POLICY_NAME.to_owned()];
        }
        let capabilities = self
            .governing_rule(path.trim_start_matches('/'), Operation::List)
            .map_or(Capabilities::NONE, |rule| rule.capabilities);
        if capabilities.contains(Capabilities::DENY) || capabilities.is_empty() {
            return vec!["deny".to_owned()];
        }
        capabilities
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// Whether any rule grants something at or below `prefix` (a mount path). Clients learn
    /// about a mount through `sys/internal/ui/mounts` only when they can use some of it.
    pub fn allows_anything_under(&self, prefix: &str) -> bool {
        if self.root {
            return true;
        }
        let grants = |rule: &CompiledRule| {
            !rule.capabilities.is_empty() && !rule.capabilities.contains(Capabilities::DENY)
        };
        if self
            .rules
            .iter()
            .any(|rule| rule.pattern.starts_with(prefix) && grants(rule))
        {
            return true;
        }
        self.governing_rule(prefix, Operation::Read)
            .is_some_and(grants)
    }

    /// The one rule that decides a request on `path`. LIST paths end in `/` by convention, and
    /// Vault lets a rule written without the slash (exact or with wildcards) govern them first.
    fn governing_rule(&self, path: &str, operation: Operation) -> Option<&CompiledRule> {
        if let Some(&index) = self.exact.get(path) {
            return Some(&self.rules[index]);
        }
        if operation == Operation::List
            && let Some(trimmed) = path.strip_suffix('/')
        {
            if let Some(&index) = self.exact.get(trimmed) {
                return Some(&self.rules[index]);
            }
            if let Some(index) = self.best_non_exact(trimmed) {
                return Some(&self.rules[index]);
            }
        }
        self.best_non_exact(path).map(|index| &self.rules[index])
    }

    fn best_non_exact(&self, path: &str) -> Option<usize> {
        let mut best = self.prefixes.longest_prefix(path).map(|(_, &index)| index);
        self.segments.for_each_match(path, |candidate| {
            let wins = best.is_none_or(|current| {
                self.rules[candidate].precedence(&self.rules[current]) == Ordering::Greater
            });
            if wins {
                best = Some(candidate);
            }
        });
        best
    }
}

impl fmt::Debug for Acl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acl")
            .field("root", &self.root)
            .field("rules", &self.rules.len())
            .finish()
    }
}

/// Merges a stanza into an earlier one with the same pattern, as Vault does: capabilities are
/// united, and a deny on either side leaves only the deny; the lower of two wrapping bounds
/// wins; parameter lists are concatenated, except that an empty list (any value) absorbs the
/// other; required parameters are united. A restriction present on one side only is kept.
fn merge_into(existing: &mut PathRule, new: &PathRule) {
    if existing.capabilities.contains(Capabilities::DENY) {
        return;
    }
    if new.capabilities.contains(Capabilities::DENY) {
        existing.capabilities = Capabilities::DENY;
        existing.allowed_parameters.clear();
        existing.denied_parameters.clear();
        return;
    }
    existing.capabilities |= new.capabilities;
    existing.max_wrapping_ttl = lower_bound(existing.max_wrapping_ttl, new.max_wrapping_ttl);
    existing.min_wrapping_ttl = lower_bound(existing.min_wrapping_ttl, new.min_wrapping_ttl);
    merge_parameters(&mut existing.allowed_parameters, &new.allowed_parameters);
    merge_parameters(&mut existing.denied_parameters, &new.denied_parameters);
    for name in &new.required_parameters {
        if !existing.required_parameters.contains(name) {
            existing.required_parameters.push(name.clone());
        }
    }
}

/// The smaller of two bounds, where zero means "unset" rather than "smallest".
fn lower_bound(existing: Duration, new: Duration) -> Duration {
    if !new.is_zero() && (existing.is_zero() || new < existing) {
        new
    } else {
        existing
    }
}

fn merge_parameters(
    existing: &mut BTreeMap<String, Vec<Value>>,
    new: &BTreeMap<String, Vec<Value>>,
) {
    for (name, values) in new {
        match existing.get_mut(name) {
            Some(current) if current.is_empty() => {}
            Some(current) if values.is_empty() => current.clear(),
            Some(current) => {
                let mut combined = values.clone();
                combined.append(current);
                *current = combined;
            }
            None => {
                existing.insert(name.clone(), values.clone());
            }
        }
    }
}

/// A merged rule, ready for checks.
struct CompiledRule {
    pattern: Box<str>,
    kind: PatternKind,
    capabilities: Capabilities,
    min_wrapping_ttl: Duration,
    max_wrapping_ttl: Duration,
    allowed: HashMap<String, Vec<ValueMatcher>>,
    denied: HashMap<String, Vec<ValueMatcher>>,
    required: Vec<String>,
    rank: Rank,
}

/// Vault's precedence among matching non-exact patterns, as a key where greater wins: a later
/// first wildcard, then not ending in `*`, then fewer `+` segments, then a longer pattern
/// (all measured without the trailing `*`). Ties fall to the lexicographically larger pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    first_wildcard: usize,
    not_glob: bool,
    plus_segments: Reverse<usize>,
    length: usize,
}

impl Rank {
    fn of(pattern: &str, kind: PatternKind) -> Rank {
        let is_glob = kind != PatternKind::Exact && pattern.ends_with('*');
        let body = if is_glob {
            &pattern[..pattern.len() - 1]
        } else {
            pattern
        };
        Rank {
            // A glob's first wildcard is its `*`; a segment pattern's is its first `+`.
            first_wildcard: match kind {
                PatternKind::Segments => pattern.find('+').unwrap_or(body.len()),
                PatternKind::Exact | PatternKind::Prefix => body.len(),
            },
            not_glob: !is_glob,
            plus_segments: Reverse(body.split('/').filter(|segment| *segment == "+").count()),
            length: body.len(),
        }
    }
}

impl CompiledRule {
    fn new(rule: PathRule) -> CompiledRule {
        let kind = rule.kind();
        let rank = Rank::of(&rule.path, kind);
        CompiledRule {
            pattern: rule.path.into_boxed_str(),
            kind,
            capabilities: rule.capabilities,
            min_wrapping_ttl: rule.min_wrapping_ttl,
            max_wrapping_ttl: rule.max_wrapping_ttl,
            allowed: compile_parameters(rule.allowed_parameters),
            denied: compile_parameters(rule.denied_parameters),
            required: rule.required_parameters,
            rank,
        }
    }

    /// The pattern without its trailing glob.
    fn unglobbed(&self) -> &str {
        match self.kind {
            PatternKind::Exact => &self.pattern,
            _ => self.pattern.strip_suffix('*').unwrap_or(&self.pattern),
        }
    }

    fn precedence(&self, other: &CompiledRule) -> Ordering {
        self.rank
            .cmp(&other.rank)
            .then_with(|| self.unglobbed().cmp(other.unglobbed()))
    }

    fn authorize(&self, req: &AclRequest<'_>, needed: Capabilities) -> Result<(), String> {
        let pattern = &self.pattern;
        if self.capabilities.contains(Capabilities::DENY) {
            return Err(format!("the rule for {pattern:?} denies access"));
        }
        if !self.capabilities.contains(needed) {
            return Err(format!(
                "the rule for {pattern:?} does not grant {:?}",
                needed.names().join(",")
            ));
        }
        if !self.max_wrapping_ttl.is_zero()
            && req.wrap_ttl.is_none_or(|ttl| ttl > self.max_wrapping_ttl)
        {
            return Err(format!(
                "the rule for {pattern:?} requires response wrapping with a TTL of at most {}",
                format_duration(self.max_wrapping_ttl)
            ));
        }
        if !self.min_wrapping_ttl.is_zero()
            && req.wrap_ttl.is_none_or(|ttl| ttl < self.min_wrapping_ttl)
        {
            return Err(format!(
                "the rule for {pattern:?} requires response wrapping with a TTL of at least {}",
                format_duration(self.min_wrapping_ttl)
            ));
        }
        // Merging can produce bounds no TTL satisfies; a single stanza is refused at parse time.
        if !self.min_wrapping_ttl.is_zero()
            && !self.max_wrapping_ttl.is_zero()
            && self.max_wrapping_ttl < self.min_wrapping_ttl
        {
            return Err(format!(
                "the merged rules for {pattern:?} have a maximum wrapping TTL below the minimum"
            ));
        }
        // Only operations that carry parameters are checked against parameter constraints.
        if matches!(
            req.operation,
            Operation::Read
                | Operation::Header
                | Operation::Create
                | Operation::Update
                | Operation::Patch
        ) {
            self.check_parameters(req.data)?;
        }
        Ok(())
    }

    fn check_parameters(&self, data: &Map<String, Value>) -> Result<(), String> {
        let pattern = &self.pattern;
        // Vault looks required names up lowercased and does not lowercase the request's keys.
        if let Some(missing) = self
            .required
            .iter()
            .find(|name| !data.contains_key(lowercase(name).as_ref()))
        {
            return Err(format!(
                "the rule for {pattern:?} requires the parameter {missing:?}"
            ));
        }
        if data.is_empty() {
            return Ok(());
        }
        if !self.denied.is_empty() {
            if self.denied.contains_key("*") {
                return Err(format!("the rule for {pattern:?} denies every parameter"));
            }
            for (name, value) in data {
                if let Some(list) = self.denied.get(lowercase(name).as_ref())
                    && value_denied(value, list)
                {
                    return Err(format!(
                        "the rule for {pattern:?} denies this value of the parameter {name:?}"
                    ));
                }
            }
        }
        if self.allowed.is_empty() {
            return Ok(());
        }
        let allow_unlisted = self.allowed.contains_key("*");
        if allow_unlisted && self.allowed.len() == 1 {
            return Ok(());
        }
        for (name, value) in data {
            match self.allowed.get(lowercase(name).as_ref()) {
                None if !allow_unlisted => {
                    return Err(format!(
                        "the rule for {pattern:?} does not allow the parameter {name:?}"
                    ));
                }
                Some(list) if !value_allowed(value, list) => {
                    return Err(format!(
                        "the rule for {pattern:?} does not allow this value of the parameter {name:?}"
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn lowercase(name: &str) -> Cow<'_, str> {
    if name.chars().any(char::is_uppercase) {
        Cow::Owned(name.to_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

fn compile_parameters(
    parameters: BTreeMap<String, Vec<Value>>,
) -> HashMap<String, Vec<ValueMatcher>> {
    parameters
        .into_iter()
        .map(|(name, values)| (name, values.iter().map(ValueMatcher::new).collect()))
        .collect()
}

/// One entry of a parameter's value list. Strings may start and/or end with `*` (prefix,
/// suffix or substring match); a string shorter than two characters, `"*"` included, only
/// matches itself. Other values must be equal.
#[derive(Debug, Clone)]
enum ValueMatcher {
    Null,
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Other(Value),
}

impl ValueMatcher {
    fn new(value: &Value) -> ValueMatcher {
        let text = match value {
            Value::Null => return ValueMatcher::Null,
            Value::String(text) => text,
            other => return ValueMatcher::Other(other.clone()),
        };
        if text.len() < 2 {
            return ValueMatcher::Exact(text.clone());
        }
        match (text.strip_prefix('*'), text.strip_suffix('*')) {
            (Some(after), Some(_)) => {
                ValueMatcher::Contains(after.strip_suffix('*').unwrap_or(after).to_owned())
            }
            (Some(after), None) => ValueMatcher::Suffix(after.to_owned()),
            (None, Some(before)) => ValueMatcher::Prefix(before.to_owned()),
            (None, None) => ValueMatcher::Exact(text.clone()),
        }
    }

    fn matches(&self, value: &Value) -> bool {
        match (self, value) {
            (ValueMatcher::Null, Value::Null) => true,
            (ValueMatcher::Null, _) | (_, Value::Null) => false,
            (ValueMatcher::Other(expected), actual) => json_equal(expected, actual),
            (_, Value::String(text)) => self.matches_str(text),
            _ => false,
        }
    }

    fn matches_str(&self, text: &str) -> bool {
        match self {
            ValueMatcher::Exact(expected) => text == expected,
            ValueMatcher::Prefix(prefix) => text.starts_with(prefix.as_str()),
            ValueMatcher::Suffix(suffix) => text.ends_with(suffix.as_str()),
            ValueMatcher::Contains(part) => text.contains(part.as_str()),
            ValueMatcher::Null | ValueMatcher::Other(_) => false,
        }
    }
}

/// Equality where numbers compare by value, since a policy's `1` and a request's `1.0` (or a
/// JSON integer and an HCL one) are the same number to the person who wrote them.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, x)| y.get(key).is_some_and(|y| json_equal(x, y)))
        }
        _ => a == b,
    }
}

fn in_list(value: &Value, list: &[ValueMatcher]) -> bool {
    list.iter().any(|matcher| matcher.matches(value))
}

/// The parts of a comma-separated string, trimmed; none for an empty string. Many fields take
/// either a list or such a string, and the ACL cannot know which, so both are checked.
fn comma_parts(text: &str) -> impl Iterator<Item = &str> {
    let parts = (!text.is_empty()).then(|| text.split(',').map(str::trim));
    parts.into_iter().flatten()
}

/// Vault's rule: an empty list accepts anything; otherwise the value must match an entry, or
/// every element of a list value must, or every part of a comma-separated string must. (So an
/// empty string passes any list, as it does in Vault.)
fn value_allowed(value: &Value, list: &[ValueMatcher]) -> bool {
    if list.is_empty() || in_list(value, list) {
        return true;
    }
    match value {
        Value::Array(items) => items.iter().all(|item| in_list(item, list)),
        Value::String(text) => {
            comma_parts(text).all(|part| list.iter().any(|matcher| matcher.matches_str(part)))
        }
        _ => false,
    }
}

/// The mirror of [`value_allowed`]: denied when the value, any element of a list value, or any
/// part of a comma-separated string matches an entry.
fn value_denied(value: &Value, list: &[ValueMatcher]) -> bool {
    if list.is_empty() || in_list(value, list) {
        return true;
    }
    match value {
        Value::Array(items) => items.iter().any(|item| in_list(item, list)),
        Value::String(text) => {
            comma_parts(text).any(|part| list.iter().any(|matcher| matcher.matches_str(part)))
        }
        _ => false,
    }
}
