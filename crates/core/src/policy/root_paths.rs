//! Root-protected paths: where a policy must grant `sudo` on top of the operation's
//! capability.
//!
//! Each backend declares its own list relative to its mount, as patterns that are exact or end
//! in `*` (prefix). The lists for `sys/` and the token store are fixed here because those
//! backends are always mounted at the same place; an engine's list is checked with
//! [`root_paths_match`] against the path relative to its mount.

/// Root-protected paths of `sys/`, relative to it: Vault's list plus OpenBao's additions.
pub const SYS_ROOT_PATHS: &[&str] = &[
    "auth/*",
    "remount",
    "audit",
    "audit/*",
    "raw",
    "raw/*",
    "replication/primary/secondary-token",
    "replication/performance/primary/secondary-token",
    "replication/dr/primary/secondary-token",
    "replication/reindex",
    "replication/dr/reindex",
    "replication/performance/reindex",
    "rotate",
    "rotate/keyring",
    "rotate/root",
    "config/cors",
    "config/auditing/*",
    "config/ui/headers/*",
    "plugins/catalog/*",
    "plugins/runtimes/catalog/*",
    "revoke-prefix/*",
    "revoke-force/*",
    "leases/revoke-prefix/*",
    "leases/revoke-force/*",
    "leases/lookup/*",
    "leases",
    "storage/raft/snapshot-auto/config/*",
    "internal/inspect/*",
    // Vault enforces sudo on these two in their handlers rather than through the list; listing
    // them here gives the same result through one mechanism.
    "seal",
    "step-down",
];

/// Root-protected paths of the token store, relative to `auth/token/`.
pub const TOKEN_ROOT_PATHS: &[&str] = &["revoke-orphan/*", "accessors*"];

/// Whether a full request path (`sys/raw/foo`, `auth/token/accessors/`) is root-protected by
/// the built-in backends. Engine mounts are not covered; see [`root_paths_match`].
pub fn is_root_protected(path: &str) -> bool {
    let path = path.trim_start_matches('/');
    if let Some(relative) = path.strip_prefix("sys/") {
        root_paths_match(SYS_ROOT_PATHS, relative)
    } else if let Some(relative) = path.strip_prefix("auth/token/") {
        root_paths_match(TOKEN_ROOT_PATHS, relative)
    } else {
        false
    }
}

/// Whether `relative` (a path relative to a mount) is root-protected by `patterns`, decided as
/// Vault decides it: the longest pattern (without its `*`) that is a prefix of the path is the
/// only one considered; a glob then matches, an exact pattern only if it is the whole path.
pub fn root_paths_match(patterns: &[&str], relative: &str) -> bool {
    let mut best: Option<(&str, bool)> = None;
    for pattern in patterns {
        let (key, is_glob) = match pattern.strip_suffix('*') {
            Some(key) => (key, true),
            None => (*pattern, false),
        };
        // Later duplicates replace earlier ones, as inserting into Vault's tree does.
        if relative.starts_with(key) && best.is_none_or(|(current, _)| key.len() >= current.len()) {
            best = Some((key, is_glob));
        }
    }
    match best {
        Some((_, true)) => true,
        Some((key, false)) => key == relative,
        None => false,
    }
}
