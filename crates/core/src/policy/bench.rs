//! A large synthetic policy set, shared by the scale test and [`bench_acl_check`].
//!
//! Each policy stands for one team and mixes every kind of pattern (exact, `*` glob, `+`
//! segments, `+` with a trailing glob, deny), and a few patterns recur across policies so the
//! merging of identical patterns is exercised at scale too.

use std::{
    collections::BTreeMap,
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use mayfly_sdk::Operation;
use serde_json::Map;

use super::{Acl, AclRequest, Capabilities, PathRule, Policy};

/// Times `iterations` checks against an ACL compiled from 1,000 policies of 20 rules each,
/// cycling through a fixed mix of hits, misses and denials. Returns the total time spent in the
/// checks only; building the policies and compiling the ACL are not timed.
pub fn bench_acl_check(iterations: u32) -> Duration {
    let acl = Acl::new(&synthetic_policies(1000, 20));
    let requests = sample_requests(1000);
    let data = Map::new();
    let started = Instant::now();
    for (path, operation) in requests.iter().cycle().take(iterations as usize) {
        let request = AclRequest {
            path,
            operation: *operation,
            data: &data,
            wrap_ttl: None,
        };
        black_box(acl.allows(black_box(&request)));
    }
    started.elapsed()
}

/// `teams` policies named `team-<n>`, each with `rules_per_team` rules (at least 2).
///
/// Rule `r` of team `t`, by `r % 5`: exact `secret/data/team-t/app-r` (read, update); glob
/// `secret/metadata/team-t/app-r/*` (read, list); segments `kv/+/team-t/svc-r` (read); segments
/// with a glob `db/+/team-t/role-r*` (read, update); exact deny `secret/data/team-t/locked-r`.
/// The last two rules are shared: `shared/group-<t % 10>/*` grants one of read, list or update
/// by `t % 3` (so each group ends up with all three), and `shared/+/config` grants read, except
/// in team 500, which denies it.
pub(super) fn synthetic_policies(teams: usize, rules_per_team: usize) -> Vec<Arc<Policy>> {
    (0..teams)
        .map(|team| {
            let rules = (0..rules_per_team)
                .map(|index| synthetic_rule(team, index, rules_per_team))
                .collect();
            Arc::new(Policy {
                name: format!("team-{team}"),
                raw: String::new(),
                rules,
            })
        })
        .collect()
}

fn synthetic_rule(team: usize, index: usize, rules_per_team: usize) -> PathRule {
    let (path, capabilities) = if index + 1 == rules_per_team {
        let capability = match team % 3 {
            0 => Capabilities::READ,
            1 => Capabilities::LIST,
            _ => Capabilities::UPDATE,
        };
        (format!("shared/group-{}/*", team % 10), capability)
    } else if index + 2 == rules_per_team {
        let capability = if team == 500 {
            Capabilities::DENY
        } else {
            Capabilities::READ
        };
        ("shared/+/config".to_owned(), capability)
    } else {
        match index % 5 {
            0 => (
                format!("secret/data/team-{team}/app-{index}"),
                Capabilities::READ | Capabilities::UPDATE,
            ),
            1 => (
                format!("secret/metadata/team-{team}/app-{index}/*"),
                Capabilities::READ | Capabilities::LIST,
            ),
            2 => (format!("kv/+/team-{team}/svc-{index}"), Capabilities::READ),
            3 => (
                format!("db/+/team-{team}/role-{index}*"),
                Capabilities::READ | Capabilities::UPDATE,
            ),
            _ => (
                format!("secret/data/team-{team}/locked-{index}"),
                Capabilities::DENY,
            ),
        }
    };
    PathRule {
        path,
        capabilities,
        allowed_parameters: BTreeMap::new(),
        denied_parameters: BTreeMap::new(),
        required_parameters: Vec::new(),
        min_wrapping_ttl: Duration::ZERO,
        max_wrapping_ttl: Duration::ZERO,
    }
}

/// A deterministic mix of `count` requests over the synthetic namespace: paths that hit each
/// kind of rule, shared paths, near misses and paths no rule covers.
pub(super) fn sample_requests(count: usize) -> Vec<(String, Operation)> {
    (0..count)
        .map(|n| {
            // A cheap scramble so consecutive requests touch unrelated teams.
            let team = (n * 7919) % 1000;
            let index = (n * 31) % 18;
            match n % 8 {
                0 => (
                    format!("secret/data/team-{team}/app-{index}"),
                    Operation::Read,
                ),
                1 => (
                    format!("secret/metadata/team-{team}/app-{index}/x/y/"),
                    Operation::List,
                ),
                2 => (format!("kv/prod/team-{team}/svc-{index}"), Operation::Read),
                3 => (
                    format!("db/creds/team-{team}/role-{index}-blue"),
                    Operation::Update,
                ),
                4 => (
                    format!("secret/data/team-{team}/locked-{index}"),
                    Operation::Read,
                ),
                5 => (
                    format!("shared/group-{}/config", team % 12),
                    Operation::Read,
                ),
                6 => (format!("shared/x{team}/config"), Operation::Read),
                _ => (format!("unrelated/team-{team}/{index}"), Operation::Delete),
            }
        })
        .collect()
}
