//! ACL policies: Vault's policy language (HCL or JSON) and the evaluation of requests against
//! the compiled policies of a token.
//!
//! This module is pure: it parses text and answers questions, and never touches storage, the
//! clock or the network. The policy store and the request pipeline sit on top of it.
//!
//! Layout:
//! - `parse`: text → [`Policy`] ([`parse_policy`]), with Vault's validation rules and legacy
//!   `policy = "write"` shorthand.
//! - `acl`: a set of policies → [`Acl`], merged per pattern and compiled into matchers;
//!   [`Acl::allows`] and [`Acl::capabilities`].
//! - `tree`: the matchers behind an [`Acl`] (a byte radix tree for `*` globs and a segment trie
//!   for `+` patterns), so a check never scans every rule.
//! - `root_paths`: which paths need `sudo` ([`is_root_protected`]).
//! - `bench`: a synthetic large policy set and [`bench_acl_check`].

mod acl;
mod bench;
mod parse;
mod root_paths;
mod tree;

#[cfg(test)]
mod tests;

use std::{collections::BTreeMap, fmt, ops, time::Duration};

use mayfly_sdk::Operation;
use serde_json::Value;

pub use acl::{Acl, AclRequest, AclResult, CheckOptions};
pub use bench::bench_acl_check;
pub use parse::parse_policy;
pub use root_paths::{SYS_ROOT_PATHS, TOKEN_ROOT_PATHS, is_root_protected, root_paths_match};

/// The name of the built-in policy that grants everything; it has no rules.
pub const ROOT_POLICY_NAME: &str = "root";

/// The name of the built-in policy attached to every token unless `no_default_policy` is set.
pub const DEFAULT_POLICY_NAME: &str = "default";

/// The text the `default` policy is created with. It lets a token manage itself (look up, renew
/// and revoke itself, check its own capabilities), use its cubbyhole, renew and look up leases
/// it knows the ID of, use response wrapping and the hash tool. Operators may edit it, so the
/// store writes it only when no `default` policy exists yet.
pub const DEFAULT_POLICY: &str = r#"# A token may read its own properties.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

# A token may extend its own lifetime.
path "auth/token/renew-self" {
  capabilities = ["update"]
}

# A token may revoke itself.
path "auth/token/revoke-self" {
  capabilities = ["update"]
}

# A token may ask what it is allowed to do on given paths.
path "sys/capabilities-self" {
  capabilities = ["update"]
}

# A token may read the identity entity it belongs to.
path "identity/entity/id/{{identity.entity.id}}" {
  capabilities = ["read"]
}
path "identity/entity/name/{{identity.entity.name}}" {
  capabilities = ["read"]
}

# The UI reads the combined ACL of the token through this internal path.
path "sys/internal/ui/resultant-acl" {
  capabilities = ["read"]
}

# A lease may be renewed or looked up by whoever knows its ID; the old renew path stays for
# old clients.
path "sys/renew" {
  capabilities = ["update"]
}
path "sys/leases/renew" {
  capabilities = ["update"]
}
path "sys/leases/lookup" {
  capabilities = ["update"]
}

# Every token owns a private cubbyhole.
path "cubbyhole/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

# Response wrapping: wrap any value, inspect a wrapping token, unwrap without swapping tokens.
path "sys/wrapping/wrap" {
  capabilities = ["update"]
}
path "sys/wrapping/lookup" {
  capabilities = ["update"]
}
path "sys/wrapping/unwrap" {
  capabilities = ["update"]
}

# General-purpose hashing.
path "sys/tools/hash" {
  capabilities = ["update"]
}
path "sys/tools/hash/*" {
  capabilities = ["update"]
}

# A token may request a control-group authorization.
path "sys/control-group/request" {
  capabilities = ["update"]
}

# A token may use the authorization endpoint of any OIDC provider.
path "identity/oidc/provider/+/authorize" {
  capabilities = ["read", "update"]
}
"#;

/// A parsed ACL policy: its name, the text it was parsed from, and its path rules in the order
/// they were written.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    pub raw: String,
    pub rules: Vec<PathRule>,
}

impl Policy {
    /// The built-in `root` policy. It has no rules: an [`Acl`] that contains it allows
    /// everything without looking at rules.
    pub fn root() -> Policy {
        Policy {
            name: ROOT_POLICY_NAME.to_owned(),
            raw: String::new(),
            rules: Vec::new(),
        }
    }

    pub fn is_root(&self) -> bool {
        self.name == ROOT_POLICY_NAME
    }

    /// Whether any rule's path uses identity templating (`{{identity.entity.id}}` and the
    /// like); such rules only apply once filled in for a specific entity.
    pub fn is_templated(&self) -> bool {
        self.rules.iter().any(PathRule::is_templated)
    }
}

/// One `path "<pattern>" { ... }` stanza.
#[derive(Debug, Clone, PartialEq)]
pub struct PathRule {
    /// The pattern as written, minus one leading `/`; a trailing `*` is kept.
    pub path: String,
    pub capabilities: Capabilities,
    /// Parameter name (lowercased) → accepted values; an empty list accepts any value, and the
    /// key `*` admits parameters that are not listed.
    pub allowed_parameters: BTreeMap<String, Vec<Value>>,
    /// Parameter name (lowercased) → refused values; an empty list refuses any value, and the
    /// key `*` refuses every parameter.
    pub denied_parameters: BTreeMap<String, Vec<Value>>,
    pub required_parameters: Vec<String>,
    /// Zero means no lower bound.
    pub min_wrapping_ttl: Duration,
    /// Zero means no upper bound.
    pub max_wrapping_ttl: Duration,
}

impl PathRule {
    pub fn is_templated(&self) -> bool {
        parse::has_template(&self.path)
    }

    /// How the pattern matches, decided the way Vault decides it: any `+` segment makes it a
    /// segment pattern (which may still end in a `*` glob); otherwise a trailing `*` makes it
    /// a prefix glob; otherwise it is an exact path.
    pub(crate) fn kind(&self) -> PatternKind {
        pattern_kind(&self.path)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PatternKind {
    Exact,
    /// A trailing `*` glob without `+` segments.
    Prefix,
    /// Has at least one `+` segment; may also end in `*`.
    Segments,
}

pub(crate) fn pattern_kind(path: &str) -> PatternKind {
    if path == "+" || path.contains("/+") || path.starts_with("+/") {
        PatternKind::Segments
    } else if path.ends_with('*') {
        PatternKind::Prefix
    } else {
        PatternKind::Exact
    }
}

/// A set of capabilities, stored as bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(u16);

impl Capabilities {
    pub const NONE: Capabilities = Capabilities(0);
    pub const DENY: Capabilities = Capabilities(1 << 0);
    pub const CREATE: Capabilities = Capabilities(1 << 1);
    pub const READ: Capabilities = Capabilities(1 << 2);
    pub const UPDATE: Capabilities = Capabilities(1 << 3);
    pub const DELETE: Capabilities = Capabilities(1 << 4);
    pub const LIST: Capabilities = Capabilities(1 << 5);
    pub const SUDO: Capabilities = Capabilities(1 << 6);
    pub const PATCH: Capabilities = Capabilities(1 << 7);
    /// Vault ≥ 1.13 (event subscriptions). Accepted so Vault policies load; no operation here
    /// needs it.
    pub const SUBSCRIBE: Capabilities = Capabilities(1 << 8);
    /// Vault ≥ 1.20 (snapshot recovery). Accepted for the same reason.
    pub const RECOVER: Capabilities = Capabilities(1 << 9);
    /// OpenBao's recursive listing. Accepted for the same reason.
    pub const SCAN: Capabilities = Capabilities(1 << 10);

    /// Every named capability, sorted by name so [`Capabilities::names`] comes out sorted.
    const NAMED: [(&'static str, Capabilities); 11] = [
        ("create", Capabilities::CREATE),
        ("delete", Capabilities::DELETE),
        ("deny", Capabilities::DENY),
        ("list", Capabilities::LIST),
        ("patch", Capabilities::PATCH),
        ("read", Capabilities::READ),
        ("recover", Capabilities::RECOVER),
        ("scan", Capabilities::SCAN),
        ("subscribe", Capabilities::SUBSCRIBE),
        ("sudo", Capabilities::SUDO),
        ("update", Capabilities::UPDATE),
    ];

    pub fn from_name(name: &str) -> Option<Capabilities> {
        Capabilities::NAMED
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, capability)| *capability)
    }

    /// The capability an operation needs; `None` for `Help`, which is always allowed.
    pub fn for_operation(operation: Operation) -> Option<Capabilities> {
        match operation {
            Operation::Read | Operation::Header => Some(Capabilities::READ),
            Operation::List => Some(Capabilities::LIST),
            Operation::Update | Operation::Renew | Operation::Revoke => Some(Capabilities::UPDATE),
            Operation::Create => Some(Capabilities::CREATE),
            Operation::Patch => Some(Capabilities::PATCH),
            Operation::Delete => Some(Capabilities::DELETE),
            Operation::Help => None,
        }
    }

    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names of the capabilities in the set, sorted.
    pub fn names(self) -> Vec<&'static str> {
        Capabilities::NAMED
            .iter()
            .filter(|(_, capability)| self.contains(*capability))
            .map(|(name, _)| *name)
            .collect()
    }
}

impl ops::BitOr for Capabilities {
    type Output = Capabilities;

    fn bitor(self, rhs: Capabilities) -> Capabilities {
        self.union(rhs)
    }
}

impl ops::BitOrAssign for Capabilities {
    fn bitor_assign(&mut self, rhs: Capabilities) {
        *self = self.union(rhs);
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

/// Where in the policy text a problem is, both one-based; the column counts characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// Why a policy text was rejected. Displays as Vault words it, with the position first when
/// it is known: `failed to parse policy: line 3, column 7: ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub location: Option<Location>,
    pub message: String,
}

impl PolicyError {
    pub(crate) fn new(location: Option<Location>, message: impl Into<String>) -> PolicyError {
        PolicyError {
            location,
            message: message.into(),
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("failed to parse policy: ")?;
        if let Some(location) = self.location {
            write!(f, "line {}, column {}: ", location.line, location.column)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for PolicyError {}
