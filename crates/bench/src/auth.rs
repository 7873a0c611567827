//! The auth suite's setup, done the same way on both servers through the HTTP API: an AppRole
//! role with one SecretID, a KV v2 mount with a non-root token allowed to use part of it, and a
//! large set of synthetic policies for the ACL-cost workload.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::Method;
use serde_json::{Value, json};

use crate::load::Target;

/// The policy of the tokens AppRole logins and token creates issue.
const APP_POLICY: &str = r#"path "kv/data/app/*" {
  capabilities = ["read"]
}
"#;

/// The policy of the non-root token of the KV workloads: it may write and read the benchmark's
/// keys and nothing else, so every KV request goes through a real ACL check.
const KV_POLICY_NAME: &str = "kv-bench";
const KV_POLICY: &str = r#"path "kv/data/bench/*" {
  capabilities = ["create", "update", "read"]
}
"#;

/// TTL of the tokens the setup creates: longer than any run.
const SETUP_TOKEN_TTL: &str = "12h";

/// How long a new KV v2 mount may take to accept writes (OpenBao upgrades it in the background).
const KV_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Concurrent writers of the synthetic policies.
const POLICY_WRITERS: usize = 16;

/// What the auth workloads need from the setup.
pub struct AuthSetup {
    /// `{"role_id": ..., "secret_id": ...}` of the benchmark role.
    pub login_body: String,
    /// A token with only the `kv-bench` policy (and `default`).
    pub kv_token: String,
}

/// The tokens of the ACL-cost workload.
pub struct AclTokens {
    /// Holds only `kv-bench`, without `default`.
    pub one_policy: String,
    /// Holds the synthetic policies and `kv-bench`, without `default`.
    pub many_policies: String,
    /// How many policies the server says `many_policies` holds.
    pub count: usize,
}

/// Sends a JSON request and returns the JSON answer (`null` for 204); anything but 2xx is an
/// error.
async fn call(
    target: &Target,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<Value, String> {
    let (status, answer) = target
        .send(method.clone(), path, token, body.map(|b| b.to_string()))
        .await?;
    if !status.is_success() {
        return Err(format!(
            "{method} {path}: HTTP {status}: {}",
            String::from_utf8_lossy(&answer)
        ));
    }
    if answer.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&answer).map_err(|e| {
        format!(
            "{method} {path}: invalid JSON answer ({e}): {}",
            String::from_utf8_lossy(&answer)
        )
    })
}

/// [`call`] with the root token.
pub async fn root_call(
    target: &Target,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    call(target, method, path, Some(&target.token), body).await
}

fn string_at(answer: &Value, pointer: &str, what: &str) -> Result<String, String> {
    answer
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("{what}: no {pointer} in {answer}"))
}

async fn put_policy(target: &Target, name: &str, text: &str) -> Result<(), String> {
    let path = format!("sys/policies/acl/{name}");
    root_call(target, Method::PUT, &path, Some(json!({ "policy": text }))).await?;
    Ok(())
}

/// Creates a token with the root token; returns it and the policies the server gave it.
async fn create_token(target: &Target, body: Value) -> Result<(String, Vec<String>), String> {
    let answer = root_call(target, Method::POST, "auth/token/create", Some(body)).await?;
    let token = string_at(&answer, "/auth/client_token", "token create")?;
    let policies = answer["auth"]["policies"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok((token, policies))
}

/// AppRole with a role and one SecretID, the `app` and `kv-bench` policies, a KV v2 mount at
/// `kv/` and a token for it. Checks that a login works and that the KV token is not root.
pub async fn setup(target: &Target) -> Result<AuthSetup, String> {
    put_policy(target, "app", APP_POLICY).await?;
    put_policy(target, KV_POLICY_NAME, KV_POLICY).await?;

    root_call(
        target,
        Method::POST,
        "sys/auth/approle",
        Some(json!({ "type": "approle" })),
    )
    .await?;
    root_call(
        target,
        Method::POST,
        "auth/approle/role/bench",
        Some(json!({ "token_policies": ["app"], "secret_id_num_uses": 0 })),
    )
    .await?;
    let answer = root_call(target, Method::GET, "auth/approle/role/bench/role-id", None).await?;
    let role_id = string_at(&answer, "/data/role_id", "reading the RoleID")?;
    let answer = root_call(
        target,
        Method::POST,
        "auth/approle/role/bench/secret-id",
        None,
    )
    .await?;
    let secret_id = string_at(&answer, "/data/secret_id", "generating a SecretID")?;
    let login_body = json!({ "role_id": role_id, "secret_id": secret_id }).to_string();
    let answer = call(
        target,
        Method::PUT,
        "auth/approle/login",
        None,
        Some(serde_json::from_str(&login_body).map_err(|e| e.to_string())?),
    )
    .await?;
    let policies = &answer["auth"]["token_policies"];
    if !policies
        .as_array()
        .is_some_and(|list| list.iter().any(|p| p == "app"))
    {
        return Err(format!(
            "an AppRole login should give policy app, it gave {policies}"
        ));
    }

    root_call(
        target,
        Method::POST,
        "sys/mounts/kv",
        Some(json!({ "type": "kv-v2" })),
    )
    .await?;
    wait_for_kv(target).await?;
    let (kv_token, policies) = create_token(
        target,
        json!({ "policies": [KV_POLICY_NAME], "ttl": SETUP_TOKEN_TTL }),
    )
    .await?;
    if policies.iter().any(|p| p == "root") || !policies.iter().any(|p| p == KV_POLICY_NAME) {
        return Err(format!("the KV token has policies {policies:?}"));
    }
    // The token must be confined by its policy: a write outside `kv/data/bench/` is refused.
    let (status, _) = target
        .send(
            Method::PUT,
            "kv/data/outside",
            Some(&kv_token),
            Some(r#"{"data":{"a":"b"}}"#.to_owned()),
        )
        .await?;
    if status != reqwest::StatusCode::FORBIDDEN {
        return Err(format!(
            "a write outside the KV token's policy answered {status}, not 403"
        ));
    }
    Ok(AuthSetup {
        login_body,
        kv_token,
    })
}

/// A new KV v2 mount may refuse requests while the server sets it up; this waits until a
/// write with the root token goes through.
async fn wait_for_kv(target: &Target) -> Result<(), String> {
    let deadline = Instant::now() + KV_READY_TIMEOUT;
    loop {
        let body = Some(r#"{"data":{"ready":"yes"}}"#.to_owned());
        let (status, answer) = target
            .send(Method::PUT, "kv/data/probe", Some(&target.token), body)
            .await?;
        if status.is_success() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the KV v2 mount did not accept a write within {KV_READY_TIMEOUT:?}: HTTP \
                 {status}: {}",
                String::from_utf8_lossy(&answer)
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The name of synthetic policy `team`.
fn team_policy(team: usize) -> String {
    format!("team-{team}")
}

/// A synthetic team policy of `rules` path rules (at least 2), in HCL. It mixes every kind of
/// pattern (exact, `*` glob, `+` segments, `+` with a trailing glob, deny), several of them
/// under `kv/data/bench/` beside the benchmark's keys, and two patterns shared by many
/// policies so merging is exercised. No rule matches a benchmark key: the KV reads are allowed
/// by `kv-bench` alone, with or without these policies.
pub fn synthetic_policy(team: usize, rules: usize) -> String {
    let mut text = String::new();
    for index in 0..rules {
        let (path, capabilities): (String, &str) = if index + 1 == rules {
            let capability = match team % 3 {
                0 => r#""read""#,
                1 => r#""list""#,
                _ => r#""update""#,
            };
            (format!("shared/group-{}/*", team % 10), capability)
        } else if index + 2 == rules {
            let capability = if team == 500 {
                r#""deny""#
            } else {
                r#""read""#
            };
            ("shared/+/config".to_owned(), capability)
        } else {
            match index % 6 {
                0 => (
                    format!("kv/data/team-{team}/app-{index}"),
                    r#""read", "update""#,
                ),
                1 => (
                    format!("kv/metadata/team-{team}/app-{index}/*"),
                    r#""read", "list""#,
                ),
                2 => (format!("kv/+/team-{team}/svc-{index}"), r#""read""#),
                3 => (
                    format!("db/+/team-{team}/role-{index}*"),
                    r#""read", "update""#,
                ),
                4 => (
                    format!("kv/data/bench/team-{team}/locked-{index}"),
                    r#""deny""#,
                ),
                _ => (
                    format!("kv/data/bench/team-{team}/app-{index}/*"),
                    r#""read", "list""#,
                ),
            }
        };
        text.push_str(&format!(
            "path \"{path}\" {{\n  capabilities = [{capabilities}]\n}}\n"
        ));
    }
    text
}

/// Writes `policies` synthetic policies of `rules` rules each, then creates a token holding
/// all of them plus `kv-bench`, and one holding `kv-bench` alone (neither gets `default`).
pub async fn acl_setup(
    target: &Arc<Target>,
    policies: usize,
    rules: usize,
) -> Result<AclTokens, String> {
    let clock = Instant::now();
    let mut tasks = Vec::with_capacity(POLICY_WRITERS);
    for writer in 0..POLICY_WRITERS {
        let target = Arc::clone(target);
        tasks.push(tokio::spawn(async move {
            for team in (writer..policies).step_by(POLICY_WRITERS) {
                put_policy(&target, &team_policy(team), &synthetic_policy(team, rules)).await?;
            }
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| format!("a policy writer failed: {e}"))??;
    }
    eprintln!(
        "   wrote {policies} policies of {rules} rules in {:.2} s",
        clock.elapsed().as_secs_f64()
    );

    let mut names: Vec<String> = (0..policies).map(team_policy).collect();
    names.push(KV_POLICY_NAME.to_owned());
    let (many_policies, held) = create_token(
        target,
        json!({ "policies": names, "no_default_policy": true, "ttl": SETUP_TOKEN_TTL }),
    )
    .await?;
    if held.len() < 2 {
        return Err(format!(
            "asked for a token with {} policies, the server gave it {held:?}",
            names.len()
        ));
    }
    if held.len() != names.len() {
        eprintln!(
            "   note: asked for a token with {} policies, the server gave it {}",
            names.len(),
            held.len()
        );
    }
    let (one_policy, one) = create_token(
        target,
        json!({ "policies": [KV_POLICY_NAME], "no_default_policy": true, "ttl": SETUP_TOKEN_TTL }),
    )
    .await?;
    if one != [KV_POLICY_NAME] {
        return Err(format!("the one-policy token has policies {one:?}"));
    }
    Ok(AclTokens {
        one_policy,
        many_policies,
        count: held.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_policies_have_the_asked_rule_count() {
        let text = synthetic_policy(7, 20);
        assert_eq!(text.matches("path \"").count(), 20, "{text}");
        assert!(text.contains(r#"path "shared/group-7/*""#), "{text}");
        assert!(text.contains(r#"path "shared/+/config""#), "{text}");
        assert!(text.contains(r#"path "kv/+/team-7/svc-2""#), "{text}");
        assert!(text.contains(r#"path "kv/data/bench/team-7/locked-4""#));
        assert!(synthetic_policy(500, 2).contains(r#"capabilities = ["deny"]"#));
        assert_eq!(synthetic_policy(1, 2).matches("path \"").count(), 2);
    }
}
