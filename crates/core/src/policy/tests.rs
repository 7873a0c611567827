//! Tests of policy parsing and ACL evaluation, mostly tables run through small `check` helpers.

use std::{collections::HashMap, sync::Arc, time::Duration};

use mayfly_sdk::Operation::{self, Create, Delete, Header, Help, List, Patch, Read, Update};
use serde_json::{Map, Value, json};

use super::{
    Acl, AclRequest, AclResult, Capabilities, CheckOptions, DEFAULT_POLICY, Location, PathRule,
    PatternKind, Policy, PolicyError, bench, bench_acl_check, is_root_protected, parse_policy,
    pattern_kind, root_paths_match,
};

fn parse(text: &str) -> Arc<Policy> {
    match parse_policy("test", text) {
        Ok(policy) => Arc::new(policy),
        Err(err) => panic!("{err}\n--- policy ---\n{text}"),
    }
}

fn acl_of(texts: &[&str]) -> Acl {
    let policies: Vec<Arc<Policy>> = texts.iter().map(|text| parse(text)).collect();
    Acl::new(&policies)
}

fn run(
    acl: &Acl,
    path: &str,
    operation: Operation,
    data: &Value,
    wrap_secs: Option<u64>,
) -> AclResult {
    let empty = Map::new();
    let data = data.as_object().unwrap_or(&empty);
    acl.allows(&AclRequest {
        path,
        operation,
        data,
        wrap_ttl: wrap_secs.map(Duration::from_secs),
    })
}

/// One policy, one request without parameters.
fn check(policy_text: &str, path: &str, op: Operation, expected: bool) {
    check_many(&[policy_text], path, op, expected);
}

/// Several policies held by the same token.
fn check_many(policy_texts: &[&str], path: &str, op: Operation, expected: bool) {
    let result = run(&acl_of(policy_texts), path, op, &Value::Null, None);
    assert_eq!(
        result.allowed,
        expected,
        "{op:?} {path}: {result:?}\n--- policies ---\n{}",
        policy_texts.join("\n---\n")
    );
}

/// One policy, one request with parameters and an optional wrapping TTL in seconds.
fn check_data(
    policy_text: &str,
    path: &str,
    op: Operation,
    data: Value,
    wrap_secs: Option<u64>,
    expected: bool,
) {
    let result = run(&acl_of(&[policy_text]), path, op, &data, wrap_secs);
    assert_eq!(
        result.allowed, expected,
        "{op:?} {path} {data} wrap={wrap_secs:?}: {result:?}\n--- policy ---\n{policy_text}"
    );
}

fn parse_error(text: &str) -> PolicyError {
    match parse_policy("test", text) {
        Ok(policy) => panic!("expected an error, parsed {policy:?}"),
        Err(err) => err,
    }
}

const MIXED: &str = r#"
name = "ignored"
path "dev/*" {
  policy = "sudo"
}
path "stage/*" {
  policy = "write"
}
path "stage/aws/*" {
  policy = "read"
  capabilities = ["update", "sudo"]
}
path "stage/aws/policy/*" {
  policy = "sudo"
}
path "prod/*" {
  policy = "read"
}
path "prod/aws/*" {
  policy = "deny"
}
path "sys/*" {
  policy = "deny"
}
path "foo/bar" {
  capabilities = ["read", "create", "sudo"]
}
path "baz/quux" {
  capabilities = ["read", "create", "patch"]
}
path "test/+/segment" {
  capabilities = ["read"]
}
path "+/segment/at/front" {
  capabilities = ["read"]
}
path "test/segment/at/end/+" {
  capabilities = ["read"]
}
path "test/segment/at/end/v2/+/" {
  capabilities = ["read"]
}
path "test/+/wildcard/+/*" {
  capabilities = ["read"]
}
path "test/+/wildcardglob/+/end*" {
  capabilities = ["read"]
}
path "1/2/*" {
  capabilities = ["create"]
}
path "1/2/+" {
  capabilities = ["read"]
}
path "1/2/+/+" {
  capabilities = ["update"]
}
"#;

#[test]
fn single_policy_table() {
    let acl = acl_of(&[MIXED]);
    let cases = [
        // (operation, path, allowed, sudo granted by the governing rule)
        (Read, "root", false, false),
        (Help, "root", true, false),
        (Read, "dev/foo", true, true),
        (Update, "dev/foo", true, true),
        (Delete, "stage/foo", true, false),
        (List, "stage/aws/foo", true, true),
        (Update, "stage/aws/foo", true, true),
        (Update, "stage/aws/policy/foo", true, true),
        (Delete, "prod/foo", false, false),
        (Update, "prod/foo", false, false),
        (Read, "prod/foo", true, false),
        (List, "prod/foo", true, false),
        (Read, "prod/aws/foo", false, false),
        (Read, "foo/bar", true, true),
        (List, "foo/bar", false, true),
        (Update, "foo/bar", false, true),
        (Create, "foo/bar", true, true),
        (Read, "baz/quux", true, false),
        (Create, "baz/quux", true, false),
        (Patch, "baz/quux", true, false),
        (List, "baz/quux", false, false),
        (Update, "baz/quux", false, false),
        (Header, "baz/quux", true, false),
        (Read, "test/foo/bar/segment", false, false),
        (Read, "test/foo/segment", true, false),
        (Read, "test/bar/segment", true, false),
        (Read, "test/segment/at/frond", false, false),
        (Read, "test/segment/at/front", true, false),
        (Read, "test/segment/at/end/foo", true, false),
        (Read, "test/segment/at/end/foo/", false, false),
        (Read, "test/segment/at/end/v2/foo/", true, false),
        (Read, "test/segment/wildcard/at/foo/", true, false),
        (Read, "test/segment/wildcard/at/end", true, false),
        (Read, "test/segment/wildcard/at/end/", true, false),
        (Read, "test/x/wildcardglob/y/endless", true, false),
        (Read, "test/x/wildcardglob/y/en", false, false),
        (Read, "1/2/3/4", false, false),
        (Read, "1/2/3", true, false),
        (Update, "1/2/3", false, false),
        (Update, "1/2/3/4", true, false),
        (Create, "1/2/3/4/5", true, false),
        (Read, "/dev/leading-slash", true, true),
    ];
    for (op, path, allowed, root_privs) in cases {
        let result = acl.check(
            &AclRequest {
                path,
                operation: op,
                data: &Map::new(),
                wrap_ttl: None,
            },
            CheckOptions::default(),
        );
        assert_eq!(
            (result.allowed, result.root_privs),
            (allowed, root_privs),
            "{op:?} {path}: {result:?}"
        );
        assert!(!result.is_root);
        assert_eq!(
            result.allowed,
            result.denial_reason.is_none(),
            "{op:?} {path}"
        );
    }
}

#[test]
fn precedence_picks_one_pattern() {
    // Each policy has a read rule and an update rule that both match the path; the update rule
    // must win, so update is allowed and read is not.
    let cases = [
        // `*` has its first wildcard later than `+/*` (which starts with one) and no `+`.
        (
            r#"path "+/*" { capabilities = ["read"] }
            path "*" { capabilities = ["update"] }"#,
            "foo/bar/bar/baz",
        ),
        // A later first wildcard wins.
        (
            r#"path "+/*" { capabilities = ["read"] }
            path "foo/+/*" { capabilities = ["update"] }"#,
            "foo/bar/bar/baz",
        ),
        (
            r#"path "foo/+/(ar/baz" { capabilities = ["read"] }
            path "foo/(ar/+/baz" { capabilities = ["update"] }"#,
            "foo/(ar/(ar/baz",
        ),
        (
            r#"path "foo/+/bar/baz" { capabilities = ["read"] }
            path "foo/bar/+/baz" { capabilities = ["update"] }"#,
            "foo/bar/bar/baz",
        ),
        (
            r#"path "secret/+/foo" { capabilities = ["read"] }
            path "secret/f*" { capabilities = ["update"] }"#,
            "secret/foo/foo",
        ),
        // Fewer `+` segments win.
        (
            r#"path "foo/+/+/*" { capabilities = ["read"] }
            path "foo/+/bar/baz" { capabilities = ["update"] }"#,
            "foo/bar/bar/baz",
        ),
        (
            r#"path "foo/+/+/baz" { capabilities = ["read"] }
            path "foo/+/bar/baz" { capabilities = ["update"] }"#,
            "foo/bar/bar/baz",
        ),
        (
            r#"path "secret/+/+/foo/*" { capabilities = ["read"] }
            path "secret/*" { capabilities = ["update"] }"#,
            "secret/a/b/foo/c",
        ),
        // Not ending in `*` wins.
        (
            r#"path "foo/bar/+/baz*" { capabilities = ["read"] }
            path "foo/bar/+/baz" { capabilities = ["update"] }"#,
            "foo/bar/bar/baz",
        ),
        (
            r#"path "foo/*" { capabilities = ["read"] }
            path "foo/+" { capabilities = ["update"] }"#,
            "foo/bar",
        ),
        // A longer pattern wins.
        (
            r#"path "foo/bar/+/b*" { capabilities = ["read"] }
            path "foo/bar/+/ba*" { capabilities = ["update"] }"#,
            "foo/bar/bar/baz",
        ),
        (
            r#"path "secret/*" { capabilities = ["read"] }
            path "secret/foo/*" { capabilities = ["update"] }"#,
            "secret/foo/bar",
        ),
        (
            r#"path "secret/fo*" { capabilities = ["read"] }
            path "secret/foo*" { capabilities = ["update"] }"#,
            "secret/foobar",
        ),
        // An exact path beats every glob and segment pattern.
        (
            r#"path "secret/*" { capabilities = ["read"] }
            path "secret/+" { capabilities = ["read"] }
            path "secret/foo" { capabilities = ["update"] }"#,
            "secret/foo",
        ),
        // Same rank: the lexicographically larger pattern wins.
        (
            r#"path "a/+/+/d" { capabilities = ["read"] }
            path "a/+/c/+" { capabilities = ["update"] }"#,
            "a/b/c/d",
        ),
    ];
    for (policy, path) in cases {
        check(policy, path, Update, true);
        check(policy, path, Read, false);
    }
}

#[test]
fn deny_overrides() {
    // Deny wins over anything granted on the same pattern, in any policy and in any order.
    let grant = r#"path "secret/foo" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }"#;
    let deny = r#"path "secret/foo" { capabilities = ["deny"] }"#;
    for op in [Read, Update, Create, Delete, List] {
        check_many(&[grant, deny], "secret/foo", op, false);
        check_many(&[deny, grant], "secret/foo", op, false);
    }
    // Deny in the same stanza as other capabilities leaves only deny.
    check(
        r#"path "a" { capabilities = ["read", "deny", "sudo"] }"#,
        "a",
        Read,
        false,
    );
    // The legacy `deny` shorthand replaces listed capabilities.
    check(
        r#"path "a" {
        policy = "deny"
        capabilities = ["read", "update", "sudo"]
    }"#,
        "a",
        Read,
        false,
    );
    // Deny is not global: a more specific pattern elsewhere still governs its own paths.
    let broad_deny = r#"path "secret/*" { capabilities = ["deny"] }"#;
    let narrow_grant = r#"path "secret/app/*" { capabilities = ["read"] }"#;
    check_many(&[broad_deny, narrow_grant], "secret/app/x", Read, true);
    check_many(&[broad_deny, narrow_grant], "secret/other", Read, false);
    let narrow_deny = r#"path "secret/app/locked" { capabilities = ["deny"] }"#;
    let broad_grant = r#"path "secret/*" { capabilities = ["read"] }"#;
    check_many(
        &[narrow_deny, broad_grant],
        "secret/app/locked",
        Read,
        false,
    );
    check_many(&[narrow_deny, broad_grant], "secret/app/open", Read, true);
    // No rule at all is a denial too.
    check(broad_grant, "other/path", Read, false);
    check("", "anything", Read, false);
}

#[test]
fn merge_across_policies() {
    let read = r#"path "kv/*" { capabilities = ["read"] }"#;
    let list = r#"path "kv/*" { capabilities = ["list"] }"#;
    let update = r#"path "kv/+" { capabilities = ["update"] }"#;
    for (op, allowed) in [(Read, true), (List, true), (Update, false)] {
        check_many(&[read, list], "kv/a/b", op, allowed);
    }
    // `kv/+` is a different pattern: it is not merged, it wins by precedence on one segment.
    check_many(&[read, list, update], "kv/a", Update, true);
    check_many(&[read, list, update], "kv/a", Read, false);

    let acl = acl_of(&[read, list, r#"path "kv/*" { capabilities = ["sudo"] }"#]);
    assert_eq!(acl.capabilities("kv/x"), ["list", "read", "sudo"]);

    // Parameter constraints merge as Vault merges them.
    let allowed_a = r#"path "p" {
        capabilities = ["update"]
        allowed_parameters = { "a" = ["1"] }
    }"#;
    let allowed_b = r#"path "p" {
        capabilities = ["update"]
        allowed_parameters = { "a" = ["2"], "b" = [] }
    }"#;
    let acl = acl_of(&[allowed_a, allowed_b]);
    for (data, allowed) in [
        (json!({"a": "1"}), true),
        (json!({"a": "2", "b": "anything"}), true),
        (json!({"a": "3"}), false),
        (json!({"c": "x"}), false),
    ] {
        assert_eq!(
            run(&acl, "p", Update, &data, None).allowed,
            allowed,
            "{data}"
        );
    }
    // A restriction from one policy survives a merge with an unrestricted stanza.
    let unrestricted = r#"path "p" { capabilities = ["update"] }"#;
    let acl = acl_of(&[unrestricted, allowed_a]);
    assert!(!run(&acl, "p", Update, &json!({"c": "x"}), None).allowed);
    // An empty list (any value) absorbs a value list, whichever comes first.
    let any_a = r#"path "p" {
        capabilities = ["update"]
        allowed_parameters = { "a" = [] }
    }"#;
    for order in [[any_a, allowed_a], [allowed_a, any_a]] {
        let acl = acl_of(&order);
        assert!(run(&acl, "p", Update, &json!({"a": "zzz"}), None).allowed);
    }
    // Denied values and required parameters unite.
    let denied_a = r#"path "p" {
        capabilities = ["update"]
        denied_parameters = { "a" = ["x"] }
        required_parameters = ["r1"]
    }"#;
    let denied_b = r#"path "p" {
        capabilities = ["update"]
        denied_parameters = { "a" = ["y"] }
        required_parameters = ["r2", "r1"]
    }"#;
    let acl = acl_of(&[denied_a, denied_b]);
    for (data, allowed) in [
        (json!({"r1": 1, "r2": 2, "a": "z"}), true),
        (json!({"r1": 1, "r2": 2, "a": "x"}), false),
        (json!({"r1": 1, "r2": 2, "a": "y"}), false),
        (json!({"r1": 1, "a": "z"}), false),
    ] {
        assert_eq!(
            run(&acl, "p", Update, &data, None).allowed,
            allowed,
            "{data}"
        );
    }
    // The `*` keys merge like any other.
    let star = r#"path "p" {
        capabilities = ["update"]
        allowed_parameters = { "*" = [] }
    }"#;
    let listed = r#"path "p" {
        capabilities = ["update"]
        allowed_parameters = { "test" = [], "test1" = ["foo"] }
    }"#;
    for order in [[star, listed], [listed, star]] {
        let acl = acl_of(&order);
        assert!(run(&acl, "p", Update, &json!({"other": 1, "test": 2}), None).allowed);
        assert!(!run(&acl, "p", Update, &json!({"test1": "bar"}), None).allowed);
    }
    // Wrapping bounds: the lower minimum and the lower maximum win.
    let wrap_a = r#"path "w" {
        capabilities = ["update"]
        min_wrapping_ttl = 100
        max_wrapping_ttl = 300
    }"#;
    let wrap_b = r#"path "w" {
        capabilities = ["update"]
        min_wrapping_ttl = "50s"
        max_wrapping_ttl = "200s"
    }"#;
    let acl = acl_of(&[wrap_a, wrap_b]);
    for (ttl, allowed) in [
        (None, false),
        (Some(40), false),
        (Some(60), true),
        (Some(200), true),
        (Some(250), false),
    ] {
        assert_eq!(
            run(&acl, "w", Update, &Value::Null, ttl).allowed,
            allowed,
            "{ttl:?}"
        );
    }
    // Merged bounds no TTL can meet deny everything.
    let low_max = r#"path "w" {
        capabilities = ["update"]
        max_wrapping_ttl = 10
    }"#;
    let high_min = r#"path "w" {
        capabilities = ["update"]
        min_wrapping_ttl = 20
    }"#;
    let acl = acl_of(&[low_max, high_min]);
    for ttl in [5, 10, 15, 20, 30] {
        assert!(
            !run(&acl, "w", Update, &Value::Null, Some(ttl)).allowed,
            "{ttl}"
        );
    }
}

#[test]
fn plus_and_glob_combinations() {
    let policy = r#"
        path "secret/+/config" { capabilities = ["read"] }
        path "secret/+/+/deep" { capabilities = ["update"] }
        path "kv/+/team-*" { capabilities = ["list"] }
        path "kv/+/*" { capabilities = ["delete"] }
        path "+" { capabilities = ["create"] }
        path "+/top/*" { capabilities = ["patch"] }
        path "exact/+" { capabilities = ["read"] }
    "#;
    let cases = [
        (Read, "secret/app/config", true),
        (Read, "secret/app/config/more", false),
        (Read, "secret/app/other", false),
        (Read, "secret//config", true), // `+` matches an empty segment
        (Update, "secret/a/b/deep", true),
        (Update, "secret/a/deep", false),
        (List, "kv/x/team-blue", true),
        (List, "kv/x/team-blue/more/", true),
        (List, "kv/x/other", false),
        (Delete, "kv/x/other", true),
        (Delete, "kv/x/team-blue", false), // `kv/+/team-*` is longer and governs
        (Delete, "kv/x", false),
        (Create, "anything", true),
        (Create, "two/segments", false),
        (Patch, "a/top/b/c", true),
        (Patch, "a/top", false),
        (Read, "exact/one", true),
        (Read, "exact/one/two", false),
        (Read, "exact/", true),
    ];
    for (op, path, allowed) in cases {
        check(policy, path, op, allowed);
    }
}

#[test]
fn list_requests_use_the_path_without_slash_first() {
    let cases = [
        // An exact rule without the slash governs a LIST with it.
        (
            r#"path "secret/metadata" { capabilities = ["list"] }"#,
            "secret/metadata/",
            true,
        ),
        (
            r#"path "secret/metadata/" { capabilities = ["list"] }"#,
            "secret/metadata/",
            true,
        ),
        (
            r#"path "+/metadata" { capabilities = ["list"] }"#,
            "secret/metadata/",
            true,
        ),
        (
            r#"path "secret/meta*" { capabilities = ["list"] }"#,
            "secret/metadata/",
            true,
        ),
        (
            r#"path "secret/metadata/*" { capabilities = ["list"] }"#,
            "secret/metadata/",
            true,
        ),
        // A wildcard match without the slash is taken even if a rule for the slashed path
        // would have denied.
        (
            r#"path "secret/+" { capabilities = ["list"] }
            path "secret/metadata/*" { capabilities = ["deny"] }"#,
            "secret/metadata/",
            true,
        ),
    ];
    for (policy, path, allowed) in cases {
        check(policy, path, List, allowed);
    }
    // The fallback is for LIST only.
    check(
        r#"path "secret/metadata" { capabilities = ["read"] }"#,
        "secret/metadata/",
        Read,
        false,
    );
}

#[test]
fn parameter_constraints() {
    let policy = r#"
path "dev/*" {
  capabilities = ["create", "update"]
  allowed_parameters = { "zip" = [] }
}
path "values/allow" {
  capabilities = ["create", "update", "read"]
  allowed_parameters = {
    "ALLOW" = ["good"]
    "multi" = ["good", "good1", "*good3", "pre-*", "*mid*"]
  }
}
path "values/deny" {
  capabilities = ["update"]
  denied_parameters = { "deNy" = ["bad*"] }
}
path "both" {
  capabilities = ["update"]
  allowed_parameters = { "steve" = [] }
  denied_parameters = { "steve" = [] }
}
path "star/allow" {
  capabilities = ["update"]
  allowed_parameters = {
    "*" = []
    "bar" = [false]
  }
  denied_parameters = { "foo" = [] }
}
path "star/deny" {
  capabilities = ["update"]
  allowed_parameters = { "pear" = [] }
  denied_parameters = { "*" = [] }
}
path "empty/maps" {
  capabilities = ["update"]
  allowed_parameters = {}
  denied_parameters = {}
}
path "types" {
  capabilities = ["update"]
  allowed_parameters = {
    "map" = [{ "good" = "one" }]
    "int" = [1, 2]
    "bool" = [false]
  }
}
path "required" {
  capabilities = ["update", "list", "delete"]
  required_parameters = ["foo", "Bar"]
}
path "lists" {
  capabilities = ["update"]
  allowed_parameters = {
    "policies" = ["dev-*", "default"]
    "roles" = []
  }
  denied_parameters = { "roles" = ["admin"] }
}
"#;
    let cases = [
        ("dev/ops", json!({"zip": "anything"}), true),
        ("dev/ops", json!({"zap": "x"}), false),
        ("dev/ops", json!({}), true),
        ("values/allow", json!({"allow": "good"}), true),
        ("values/allow", json!({"aLLow": "good"}), true),
        ("values/allow", json!({"allow": "bad"}), false),
        ("values/allow", json!({"allow": null}), false),
        ("values/allow", json!({"neither": "good"}), false),
        ("values/allow", json!({"multi": "good1"}), true),
        ("values/allow", json!({"multi": "very good3"}), true),
        ("values/allow", json!({"multi": "good3 not"}), false),
        ("values/allow", json!({"multi": "pre-fix"}), true),
        ("values/allow", json!({"multi": "a mid b"}), true),
        ("values/allow", json!({"multi": "bad"}), false),
        (
            "values/allow",
            json!({"multi": "good", "allow": "good"}),
            true,
        ),
        ("values/deny", json!({"deny": "bad"}), false),
        ("values/deny", json!({"DENY": "bad glob"}), false),
        ("values/deny", json!({"deny": "good"}), true),
        ("values/deny", json!({"deny": null}), true),
        ("values/deny", json!({"other": "bad"}), true),
        ("both", json!({"steve": ""}), false),
        ("star/allow", json!({"anything": true}), true),
        ("star/allow", json!({"bar": false}), true),
        ("star/allow", json!({"bar": true}), false),
        ("star/allow", json!({"foo": "x"}), false),
        ("star/deny", json!({"pear": "x"}), false),
        ("star/deny", json!({}), true),
        ("empty/maps", json!({"four": 4}), true),
        ("types", json!({"map": {"good": "one"}}), true),
        ("types", json!({"map": {"bad": "one"}}), false),
        ("types", json!({"int": 1}), true),
        ("types", json!({"int": 2.0}), true),
        ("types", json!({"int": 3}), false),
        ("types", json!({"int": "1"}), false),
        ("types", json!({"bool": false}), true),
        ("types", json!({"bool": true}), false),
        ("required", json!({"foo": 1, "bar": 2}), true),
        ("required", json!({"foo": 1, "bar": 2, "extra": 3}), true),
        ("required", json!({"foo": 1}), false),
        ("required", json!({}), false),
        // Required names are looked up lowercased; request keys are taken as sent.
        ("required", json!({"foo": 1, "Bar": 2}), false),
        // Every element of a list, or part of a comma-separated string, must be allowed.
        ("lists", json!({"policies": ["dev-a", "default"]}), true),
        ("lists", json!({"policies": ["dev-a", "root"]}), false),
        ("lists", json!({"policies": "dev-a, default"}), true),
        ("lists", json!({"policies": "root,dev-a"}), false),
        // As in Vault, the whole string is tried against each entry first, so a glob can
        // accept a comma-separated string in one go.
        ("lists", json!({"policies": "dev-a,root"}), true),
        // As in Vault, an empty string has no parts and passes any value list.
        ("lists", json!({"policies": ""}), true),
        // One denied element, or comma part, denies.
        ("lists", json!({"roles": ["reader", "admin"]}), false),
        ("lists", json!({"roles": "reader,admin"}), false),
        ("lists", json!({"roles": ["reader"]}), true),
    ];
    for (path, data, allowed) in cases {
        check_data(policy, path, Update, data, None, allowed);
    }
    // Parameters are checked for read, create, update and patch, not for list or delete.
    check_data(policy, "required", List, json!({}), None, true);
    check_data(policy, "required", Delete, json!({}), None, true);
    check_data(
        policy,
        "values/allow",
        Read,
        json!({"allow": "bad"}),
        None,
        false,
    );
    check_data(
        policy,
        "values/allow",
        Create,
        json!({"allow": "bad"}),
        None,
        false,
    );

    let acl = acl_of(&[policy]);
    let result = run(&acl, "values/deny", Update, &json!({"deny": "bad"}), None);
    let reason = result.denial_reason.unwrap_or_default();
    assert!(reason.contains("\"deny\""), "{reason}");
}

#[test]
fn wrapping_ttl_bounds() {
    let policy = r#"
path "bounded" {
  capabilities = ["update"]
  min_wrapping_ttl = "300s"
  max_wrapping_ttl = "6m40s"
}
path "min-only" {
  capabilities = ["update"]
  min_wrapping_ttl = 300
}
path "max-only" {
  capabilities = ["update"]
  max_wrapping_ttl = "400"
}
"#;
    let cases = [
        ("bounded", None, false),
        ("bounded", Some(50), false),
        ("bounded", Some(300), true),
        ("bounded", Some(350), true),
        ("bounded", Some(400), true),
        ("bounded", Some(450), false),
        ("min-only", None, false),
        ("min-only", Some(299), false),
        ("min-only", Some(450), true),
        ("max-only", None, false),
        ("max-only", Some(350), true),
        ("max-only", Some(401), false),
    ];
    for (path, ttl, allowed) in cases {
        check_data(policy, path, Update, json!({}), ttl, allowed);
    }
}

#[test]
fn root_protected_paths_need_sudo() {
    let with_sudo = r#"
        path "sys/*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }
        path "auth/token/*" { capabilities = ["update", "list", "sudo"] }
    "#;
    let without_sudo = r#"
        path "sys/*" { capabilities = ["create", "read", "update", "delete", "list"] }
        path "auth/token/*" { capabilities = ["update", "list"] }
    "#;
    let protected = [
        (Update, "sys/auth/approle"),
        (Delete, "sys/auth/approle"),
        (Read, "sys/raw/core/mounts"),
        (Read, "sys/raw"),
        (Update, "sys/audit/file"),
        (Read, "sys/audit"),
        (Update, "sys/rotate"),
        (Update, "sys/remount"),
        (Update, "sys/config/cors"),
        (Update, "sys/leases/revoke-prefix/aws/creds"),
        (Update, "sys/leases/revoke-force/aws"),
        (List, "sys/leases/lookup/aws/creds/"),
        (Update, "sys/revoke-prefix/x"),
        (Update, "sys/plugins/catalog/secret/foo"),
        (Update, "sys/seal"),
        (Update, "sys/step-down"),
        (Update, "auth/token/revoke-orphan/abc"),
        (List, "auth/token/accessors/"),
    ];
    for (op, path) in protected {
        assert!(is_root_protected(path), "{path}");
        check(with_sudo, path, op, true);
        check(without_sudo, path, op, false);
        let result = run(&acl_of(&[without_sudo]), path, op, &Value::Null, None);
        assert!(!result.root_privs);
        assert!(
            result.denial_reason.unwrap_or_default().contains("sudo"),
            "{path}"
        );
    }
    let unprotected = [
        (Read, "sys/auth"),
        (Read, "sys/mounts"),
        (Update, "sys/mounts/secret"),
        (Update, "sys/rotate/config"),
        (Update, "sys/leases/renew"),
        (Read, "sys/auditx"),
        (Update, "sys/policies/acl/foo"),
        (Update, "auth/token/create"),
        (Update, "auth/token/revoke-orphan"),
    ];
    for (op, path) in unprotected {
        assert!(!is_root_protected(path), "{path}");
        check(without_sudo, path, op, true);
    }
    // Help never needs sudo, nor any capability.
    check("", "sys/raw/x", Help, true);
    // The caller can require sudo for its own root-protected paths.
    let acl = acl_of(&[r#"path "pki/root" { capabilities = ["delete"] }"#]);
    let request = AclRequest {
        path: "pki/root",
        operation: Delete,
        data: &Map::new(),
        wrap_ttl: None,
    };
    assert!(acl.allows(&request).allowed);
    assert!(
        !acl.check(
            &request,
            CheckOptions {
                root_privs_required: true
            }
        )
        .allowed
    );
}

#[test]
fn root_path_patterns_match_like_vault() {
    let patterns = [
        "root",
        "root/sign-self-issued",
        "issuer/+/x",
        "keys*",
        "a",
        "a/b/*",
    ];
    let cases = [
        ("root", true),
        ("root/sign-self-issued", true),
        ("root/other", false),
        ("roots", false),
        ("keys", true),
        ("keys/abc", true),
        ("a", true),
        ("a/b/c", true),
        ("a/b", false),
        ("ab", false),
        ("", false),
    ];
    for (path, expected) in cases {
        assert_eq!(root_paths_match(&patterns, path), expected, "{path}");
    }
    assert!(is_root_protected("/sys/raw/x"));
    assert!(!is_root_protected("secret/raw"));
}

#[test]
fn root_policy_allows_everything() {
    let policies = [
        parse(r#"path "secret/*" { capabilities = ["deny"] }"#),
        Arc::new(Policy::root()),
    ];
    let acl = Acl::new(&policies);
    assert!(acl.is_root());
    for (op, path) in [
        (Read, "secret/x"),
        (Delete, "sys/raw/x"),
        (Update, "sys/seal"),
        (List, "anything/"),
    ] {
        let result = run(&acl, path, op, &json!({"any": "thing"}), None);
        assert_eq!(
            result,
            AclResult {
                allowed: true,
                root_privs: true,
                is_root: true,
                denial_reason: None
            }
        );
    }
    assert_eq!(acl.capabilities("secret/x"), ["root"]);
}

#[test]
fn default_policy_grants_self_service_only() {
    let policy = parse(DEFAULT_POLICY);
    assert!(policy.is_templated());
    let acl = Acl::new(&[policy]);
    let cases = [
        (Read, "auth/token/lookup-self", true),
        (Update, "auth/token/lookup-self", false),
        (Update, "auth/token/renew-self", true),
        (Update, "auth/token/revoke-self", true),
        (Update, "sys/capabilities-self", true),
        (Update, "sys/leases/renew", true),
        (Update, "sys/leases/lookup", true),
        (Update, "sys/renew", true),
        (Update, "sys/wrapping/wrap", true),
        (Update, "sys/wrapping/lookup", true),
        (Update, "sys/wrapping/unwrap", true),
        (Update, "sys/tools/hash", true),
        (Update, "sys/tools/hash/sha2-256", true),
        (Read, "sys/internal/ui/resultant-acl", true),
        (Create, "cubbyhole/mine", true),
        (Read, "cubbyhole/mine", true),
        (List, "cubbyhole/", true),
        (Delete, "cubbyhole/mine", true),
        (Read, "identity/oidc/provider/default/authorize", true),
        (Read, "sys/mounts", false),
        (Update, "sys/mounts/secret", false),
        (Read, "sys/policies/acl/default", false),
        (Update, "auth/token/create", false),
        (Read, "secret/data/foo", false),
        (List, "sys/leases/lookup/", false),
        // Templated rules apply only once filled in for an entity.
        (Read, "identity/entity/id/{{identity.entity.id}}", false),
    ];
    for (op, path, allowed) in cases {
        let result = run(&acl, path, op, &Value::Null, None);
        assert_eq!(result.allowed, allowed, "{op:?} {path}: {result:?}");
    }
    assert_eq!(acl.capabilities("sys/mounts"), ["deny"]);
    assert_eq!(
        acl.capabilities("cubbyhole/x"),
        ["create", "delete", "list", "read", "update"]
    );
}

#[test]
fn capabilities_output() {
    let acl = acl_of(&[MIXED]);
    let cases: [(&str, &[&str]); 9] = [
        ("dev", &["deny"]),
        (
            "dev/",
            &["create", "delete", "list", "read", "sudo", "update"],
        ),
        ("stage/aws/test", &["list", "read", "sudo", "update"]),
        ("prod/aws/x", &["deny"]),
        ("baz/quux", &["create", "patch", "read"]),
        ("/baz/quux", &["create", "patch", "read"]),
        ("nothing/here", &["deny"]),
        // LIST-style lookup: the rule without the trailing slash answers.
        ("foo/bar/", &["create", "read", "sudo"]),
        ("1/2/3/", &["read"]),
    ];
    for (path, expected) in cases {
        assert_eq!(acl.capabilities(path), expected, "{path}");
    }
    let acl = acl_of(&[r#"path "empty" { capabilities = [] }
        path "new" { capabilities = ["subscribe", "recover", "scan"] }"#]);
    assert_eq!(acl.capabilities("empty"), ["deny"]);
    assert_eq!(acl.capabilities("new"), ["recover", "scan", "subscribe"]);
    check(
        r#"path "empty" { capabilities = [] }"#,
        "empty",
        Read,
        false,
    );
}

#[test]
fn json_policies() {
    let text = r#"{
  "name": "json",
  "path": {
    "secret/*": { "capabilities": ["read", "list"] },
    "secret/super-secret": { "capabilities": ["deny"] },
    "secret/restricted": {
      "capabilities": ["create"],
      "allowed_parameters": { "foo": [], "bar": ["zip", "zap"] },
      "max_wrapping_ttl": "1h"
    },
    "old/*": { "policy": "write" }
  }
}"#;
    let policy = parse(text);
    assert_eq!(policy.rules.len(), 4);
    assert_eq!(policy.raw, text);
    check(text, "secret/a", Read, true);
    check(text, "secret/super-secret", Read, false);
    check(text, "old/x", Delete, true);
    check_data(
        text,
        "secret/restricted",
        Create,
        json!({"bar": "zip"}),
        Some(60),
        true,
    );
    check_data(
        text,
        "secret/restricted",
        Create,
        json!({"bar": "nope"}),
        Some(60),
        false,
    );
    check_data(
        text,
        "secret/restricted",
        Create,
        json!({"bar": "zip"}),
        None,
        false,
    );
    // The same policy in HCL parses to the same rules.
    let hcl = r#"
path "secret/*" { capabilities = ["read", "list"] }
path "secret/super-secret" { capabilities = ["deny"] }
path "secret/restricted" {
  capabilities = ["create"]
  allowed_parameters = { "foo" = [], "bar" = ["zip", "zap"] }
  max_wrapping_ttl = "1h"
}
path "old/*" { policy = "write" }
"#;
    assert_eq!(parse(hcl).rules, policy.rules);
    // A list of pattern objects, and a pattern with a list of settings objects.
    let listed =
        r#"{"path": [{"a": {"capabilities": ["read"]}}, {"b": [{"capabilities": ["list"]}]}]}"#;
    check(listed, "a", Read, true);
    check(listed, "b", List, true);
    // HCL may also write the JSON shape as an attribute.
    let attribute = r#"path = { "c/*" = { capabilities = ["update"] } }"#;
    check(attribute, "c/d", Update, true);
}

#[test]
fn legacy_policy_shorthand() {
    let expected: [(&str, &[&str]); 4] = [
        ("deny", &["deny"]),
        ("read", &["list", "read"]),
        ("write", &["create", "delete", "list", "read", "update"]),
        (
            "sudo",
            &["create", "delete", "list", "read", "sudo", "update"],
        ),
    ];
    for (shorthand, capabilities) in expected {
        let text = format!("path \"secret/*\" {{\n  policy = \"{shorthand}\"\n}}\n");
        let policy = parse(&text);
        assert_eq!(
            policy.rules[0].capabilities.names(),
            capabilities,
            "{shorthand}"
        );
    }
    check(
        r#"path "secret/*" { policy = "write" }"#,
        "secret/x",
        Update,
        true,
    );
    check(
        r#"path "secret/*" { policy = "write" }"#,
        "secret/x",
        Patch,
        false,
    );
    check(
        r#"path "secret/*" { policy = "read" }"#,
        "secret/x",
        Update,
        false,
    );
    // The shorthand adds to listed capabilities.
    let policy = parse(
        r#"path "a" {
        policy = "read"
        capabilities = ["patch"]
    }"#,
    );
    assert_eq!(
        policy.rules[0].capabilities.names(),
        ["list", "patch", "read"]
    );
}

#[test]
fn parsed_rule_fields() {
    let policy = parse(
        r#"
# Comments of every kind are fine.
// like this
/* and this */
path "/secret/data/*" {
  comment = "leading slash is dropped, the glob is kept"
  capabilities = ["read", "update"]
  allowed_parameters = {
    "Key" = []
    "other" = ["v1", "v2*"]
    "*" = []
  }
  denied_parameters {
    bad = ["x"]
  }
  required_parameters = ["a", "b"]
  min_wrapping_ttl = "1s"
  max_wrapping_ttl = "90s"
  mfa_methods = ["ignored"]
  control_group {
    factor "approvers" {
      identity { group_names = ["admins"] }
    }
  }
}
path "deny/*" {
  capabilities = ["deny"]
  # Nothing else in a deny stanza is read.
  min_wrapping_ttl = "not a duration"
}
"#,
    );
    let rule = &policy.rules[0];
    assert_eq!(rule.path, "secret/data/*");
    assert_eq!(rule.kind(), PatternKind::Prefix);
    assert_eq!(rule.capabilities, Capabilities::READ | Capabilities::UPDATE);
    assert_eq!(rule.allowed_parameters["key"], Vec::<Value>::new());
    assert_eq!(
        rule.allowed_parameters["other"],
        [json!("v1"), json!("v2*")]
    );
    assert!(rule.allowed_parameters.contains_key("*"));
    assert_eq!(rule.denied_parameters["bad"], [json!("x")]);
    assert_eq!(rule.required_parameters, ["a", "b"]);
    assert_eq!(rule.min_wrapping_ttl, Duration::from_secs(1));
    assert_eq!(rule.max_wrapping_ttl, Duration::from_secs(90));
    let deny = &policy.rules[1];
    assert_eq!(deny.capabilities, Capabilities::DENY);
    assert_eq!(deny.min_wrapping_ttl, Duration::ZERO);

    let kinds = [
        ("a/b", PatternKind::Exact),
        ("a/b*", PatternKind::Prefix),
        ("a/*/b", PatternKind::Exact),
        ("+", PatternKind::Segments),
        ("+/a", PatternKind::Segments),
        ("a/+", PatternKind::Segments),
        ("a/+/b*", PatternKind::Segments),
        ("a+b", PatternKind::Exact),
    ];
    for (pattern, kind) in kinds {
        assert_eq!(pattern_kind(pattern), kind, "{pattern}");
    }
}

#[test]
fn parse_errors_name_the_position() {
    let cases = [
        // Syntax errors come with the parser's position.
        (
            "path \"secret/*\" {\n  capabilities = [\"read\"\n}\n",
            Some((3, 1)),
            "expected",
        ),
        (
            "path \"a\" {\n  capabilities = [\"read\"]\n  capabilities = []\n}",
            Some((3, 3)),
            "redefined attribute",
        ),
        // Semantic errors point at the setting or stanza at fault.
        (
            "# comment\npath \"secret/*\" {\n  capabilities = [\"read\", \"fly\"]\n}\n",
            Some((3, 3)),
            "path \"secret/*\": invalid capability \"fly\"",
        ),
        (
            "path \"a\" {\n  policy = \"admin\"\n}",
            Some((2, 3)),
            "invalid policy \"admin\"",
        ),
        (
            "path \"a\" {\n  capabilities = [\"read\"]\n  colour = \"red\"\n}",
            Some((3, 3)),
            "invalid key \"colour\"",
        ),
        (
            "\n\npolicy \"a\" {}",
            Some((3, 1)),
            "invalid key \"policy\"",
        ),
        (
            "  path \"\" {\n  capabilities = [\"read\"]\n}",
            Some((1, 3)),
            "must not be empty",
        ),
        (
            "path \"/\" { capabilities = [\"read\"] }",
            Some((1, 1)),
            "must not be empty",
        ),
        (
            "path \"a/+*\" { capabilities = [\"read\"] }",
            Some((1, 1)),
            "'+*' is forbidden",
        ),
        (
            "path \"a\" {\n  capabilities = \"read\"\n  max_wrapping_ttl = \"10s\"\n  min_wrapping_ttl = \"20s\"\n}",
            Some((3, 3)),
            "max_wrapping_ttl cannot be less than min_wrapping_ttl",
        ),
        (
            "path \"a\" {\n  capabilities = [\"read\"]\n  min_wrapping_ttl = \"soon\"\n}",
            Some((3, 3)),
            "error parsing min_wrapping_ttl",
        ),
        (
            "path \"a\" {\n  capabilities = [var.read]\n}",
            Some((2, 19)),
            "only literal values",
        ),
        ("path \"a\" \"b\" {}", Some((1, 1)), "exactly one pattern"),
        (
            "path \"a\" {\n allowed_parameters = { \"x*\" = [] }\n}",
            Some((2, 2)),
            "the only wildcard key",
        ),
        (
            "path \"a\" {\n expiration = \"2030-01-01T00:00:00Z\"\n}",
            Some((2, 2)),
            "not supported",
        ),
        (
            "path \"a/{{nope}}\" { capabilities = [\"read\"] }",
            Some((1, 1)),
            "unknown template",
        ),
        // JSON errors carry serde_json's position; semantic JSON errors have none.
        (
            "{\n  \"path\": {\n    \"a\": {\"capabilities\": [\"read\"],}\n  }\n}",
            Some((3, 36)),
            "trailing comma",
        ),
        (
            "{\"path\": {\"a\": {\"capabilities\": [\"fly\"]}}}",
            None,
            "invalid capability \"fly\"",
        ),
        ("{\"paths\": {}}", None, "invalid key \"paths\""),
    ];
    for (text, position, fragment) in cases {
        let err = parse_error(text);
        let location = err.location.map(|Location { line, column }| (line, column));
        assert_eq!(location, position, "{text:?}: {err}");
        let shown = err.to_string();
        assert!(shown.starts_with("failed to parse policy: "), "{shown}");
        assert!(shown.contains(fragment), "{text:?}: {shown}");
        if let Some((line, column)) = position {
            assert!(
                shown.starts_with(&format!(
                    "failed to parse policy: line {line}, column {column}: "
                )),
                "{shown}"
            );
        }
    }
}

#[test]
fn empty_and_name_only_policies_parse() {
    assert!(parse("").rules.is_empty());
    assert!(parse("# nothing\n").rules.is_empty());
    assert!(parse("name = \"x\"").rules.is_empty());
    assert!(parse("{}").rules.is_empty());
    let policy = parse_policy("Named", "").unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(policy.name, "Named");
}

/// Vault's lookup written the slow, obvious way (every pattern examined, candidates sorted by
/// precedence), to cross-check the compiled matchers on a large policy set. Only capabilities
/// are modelled; the synthetic policies have no parameter constraints.
struct Reference {
    exact: HashMap<String, Capabilities>,
    globs: Vec<(String, Capabilities)>,
    /// (pattern, first `+`, ends in `*`, segments without the `*`, capabilities)
    segments: Vec<(String, usize, bool, Vec<String>, Capabilities)>,
}

impl Reference {
    fn new(policies: &[Arc<Policy>]) -> Reference {
        let mut merged: Vec<(String, Capabilities)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for rule in policies.iter().flat_map(|policy| &policy.rules) {
            match index.get(&rule.path) {
                Some(&at) => {
                    let current = &mut merged[at].1;
                    if current.contains(Capabilities::DENY) {
                    } else if rule.capabilities.contains(Capabilities::DENY) {
                        *current = Capabilities::DENY;
                    } else {
                        *current |= rule.capabilities;
                    }
                }
                None => {
                    index.insert(rule.path.clone(), merged.len());
                    merged.push((rule.path.clone(), rule.capabilities));
                }
            }
        }
        let mut reference = Reference {
            exact: HashMap::new(),
            globs: Vec::new(),
            segments: Vec::new(),
        };
        for (pattern, capabilities) in merged {
            match pattern_kind(&pattern) {
                PatternKind::Exact => {
                    reference.exact.insert(pattern, capabilities);
                }
                PatternKind::Prefix => {
                    let body = pattern.trim_end_matches('*').to_owned();
                    reference.globs.push((body, capabilities));
                }
                PatternKind::Segments => {
                    let first = pattern.find('+').unwrap_or(0);
                    let is_glob = pattern.ends_with('*');
                    let body = pattern.strip_suffix('*').unwrap_or(&pattern);
                    let parts = body.split('/').map(str::to_owned).collect();
                    reference
                        .segments
                        .push((pattern.clone(), first, is_glob, parts, capabilities));
                }
            }
        }
        reference
    }

    fn capabilities(&self, path: &str, list: bool) -> Capabilities {
        let trimmed = path.strip_suffix('/');
        let found = self
            .exact
            .get(path)
            .copied()
            .or_else(|| {
                list.then(|| self.exact.get(trimmed.unwrap_or(path)).copied())
                    .flatten()
            })
            .or_else(|| {
                trimmed
                    .filter(|_| list)
                    .and_then(|trimmed| self.non_exact(trimmed))
            })
            .or_else(|| self.non_exact(path));
        found.unwrap_or(Capabilities::NONE)
    }

    fn non_exact(&self, path: &str) -> Option<Capabilities> {
        // (first wildcard, ends in `*`, `+` count, body): sorted so that the last entry wins.
        let mut candidates: Vec<(usize, bool, usize, String, Capabilities)> = Vec::new();
        let longest_glob = self
            .globs
            .iter()
            .filter(|(body, _)| path.starts_with(body.as_str()))
            .max_by_key(|(body, _)| body.len());
        if let Some((body, capabilities)) = longest_glob {
            candidates.push((body.len(), true, 0, body.clone(), *capabilities));
        }
        let path_parts: Vec<&str> = path.split('/').collect();
        'patterns: for (pattern, first, is_glob, parts, capabilities) in &self.segments {
            if path_parts.len() < parts.len() || (!is_glob && path_parts.len() != parts.len()) {
                continue;
            }
            let mut plus = 0;
            for (i, part) in parts.iter().enumerate() {
                if part == "+" {
                    plus += 1;
                } else if part != path_parts[i]
                    && !(*is_glob
                        && i == parts.len() - 1
                        && path_parts[i].starts_with(part.as_str()))
                {
                    continue 'patterns;
                }
            }
            let body = pattern.strip_suffix('*').unwrap_or(pattern).to_owned();
            candidates.push((*first, *is_glob, plus, body, *capabilities));
        }
        candidates.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then(b.1.cmp(&a.1))
                .then(b.2.cmp(&a.2))
                .then(a.3.len().cmp(&b.3.len()))
                .then(a.3.cmp(&b.3))
        });
        candidates.last().map(|candidate| candidate.4)
    }
}

#[test]
fn thousand_policies_of_twenty_rules() {
    let policies = bench::synthetic_policies(1000, 20);
    assert_eq!(
        policies
            .iter()
            .map(|policy| policy.rules.len())
            .sum::<usize>(),
        20_000
    );
    let acl = Acl::new(&policies);
    // 18 team-specific patterns per team, ten shared globs and one shared `+` pattern.
    assert_eq!(format!("{acl:?}"), "Acl { root: false, rules: 18011 }");

    let cases = [
        (Read, "secret/data/team-537/app-10", true),
        (Update, "secret/data/team-537/app-10", true),
        (Delete, "secret/data/team-537/app-10", false),
        (Read, "secret/data/team-537/app-11", false),
        (Read, "secret/data/team-537/locked-4", false),
        (List, "secret/metadata/team-537/app-6/a/b/", true),
        (Read, "secret/metadata/team-537/app-6", false),
        (Read, "kv/anything/team-537/svc-7", true),
        (Read, "kv/a/b/team-537/svc-7", false),
        (Update, "db/x/team-537/role-8-green", true),
        (Update, "db/x/team-537/role-9", false),
        (Read, "shared/group-3/config", true),
        (List, "shared/group-3/", true),
        (Update, "shared/group-3/x", true),
        (Delete, "shared/group-3/x", false),
        (Read, "shared/elsewhere/config", false),
        (Read, "secret/data/team-1000/app-0", false),
        (Read, "unrelated/path", false),
    ];
    for (op, path, allowed) in cases {
        let result = run(&acl, path, op, &Value::Null, None);
        assert_eq!(result.allowed, allowed, "{op:?} {path}: {result:?}");
    }
    assert_eq!(
        acl.capabilities("shared/group-3/config"),
        ["list", "read", "update"]
    );
    assert_eq!(acl.capabilities("shared/elsewhere/config"), ["deny"]);

    let mut paths: Vec<String> = bench::sample_requests(400)
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    paths.extend(
        [
            "secret/data/team-1/app-0/",
            "secret/metadata/team-1/app-1/",
            "secret/metadata/team-1/app-1",
            "kv//team-2/svc-2",
            "db/a/team-3/role-3",
            "db/a/team-3/role-",
            "shared/group-1/",
            "shared//config",
            "shared/group-1/config/",
        ]
        .map(String::from),
    );
    let reference = Reference::new(&policies);
    for path in &paths {
        let expected = reference.capabilities(path, true);
        let expected_names: Vec<&str> =
            if expected.contains(Capabilities::DENY) || expected.is_empty() {
                vec!["deny"]
            } else {
                expected.names()
            };
        assert_eq!(acl.capabilities(path), expected_names, "{path}");
        let expected_read = reference.capabilities(path, false);
        let allowed = expected_read.contains(Capabilities::READ)
            && !expected_read.contains(Capabilities::DENY);
        assert_eq!(
            run(&acl, path, Read, &Value::Null, None).allowed,
            allowed,
            "{path}"
        );
    }
}

#[test]
fn bench_function_runs() {
    // Only that it runs; timing is for the bench binary.
    let elapsed = bench_acl_check(100);
    assert!(elapsed < Duration::from_secs(60));
}

#[test]
fn capabilities_parse_by_name() {
    for name in [
        "create", "read", "update", "patch", "delete", "list", "sudo", "deny",
    ] {
        let capability = Capabilities::from_name(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(capability.names(), [name]);
    }
    assert_eq!(Capabilities::from_name("root"), None);
    assert_eq!(Capabilities::from_name("Read"), None);
    assert_eq!(Capabilities::for_operation(Help), None);
    assert_eq!(
        Capabilities::for_operation(Header),
        Some(Capabilities::READ)
    );
    let rule = PathRule {
        path: "x/{{identity.entity.id}}".to_owned(),
        capabilities: Capabilities::READ,
        allowed_parameters: Default::default(),
        denied_parameters: Default::default(),
        required_parameters: Vec::new(),
        min_wrapping_ttl: Duration::ZERO,
        max_wrapping_ttl: Duration::ZERO,
    };
    assert!(rule.is_templated());
}
