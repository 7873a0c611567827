//! Lease manager tests on tokio's paused clock: hours of expiry, backoff and retries run in
//! milliseconds, through the real pipeline with the `lease-test` engine.

use std::{sync::Arc, time::Duration};

use mayfly_sdk::{Error, Operation, Request, Response, logical::ClientToken};
use serde_json::{Value, json};

use crate::{Core, CoreConfig, clock::Clock, registry::Registry};

struct Harness {
    core: Arc<Core>,
    root: String,
    keys: Vec<mayfly_barrier::UnsealKey>,
}

impl Harness {
    async fn new() -> Harness {
        let mut registry = Registry::default();
        registry.register("cubbyhole", Arc::new(crate::cubbyhole::factory));
        registry.register(
            mayfly_leasetest::TYPE_NAME,
            Arc::new(|_| mayfly_leasetest::new_backend()),
        );
        let core = Core::with_clock(
            Arc::new(mayfly_storage::InmemBackend::new()),
            CoreConfig {
                default_lease_ttl: Duration::from_secs(768 * 3600),
                max_lease_ttl: Duration::from_secs(768 * 3600),
                cluster_name: None,
                version: "0.0.0-test".into(),
                registry,
            },
            Clock::tokio(),
        );
        let init = core.initialize(1, 1, None).await.unwrap();
        core.submit_unseal_key(&init.keys[0]).await.unwrap();
        let harness = Harness {
            core,
            root: init.root_token,
            keys: init.keys,
        };
        harness.mount("lt").await;
        harness
    }

    async fn mount(&self, path: &str) {
        self.ok(
            Operation::Update,
            &format!("sys/mounts/{path}"),
            json!({"type": "lease-test"}),
        )
        .await;
    }

    async fn call_as(
        &self,
        token: &str,
        operation: Operation,
        path: &str,
        data: Value,
    ) -> Result<Option<Response>, Error> {
        let mut req = Request::new(operation, path);
        req.client_token = Some(ClientToken(token.to_owned()));
        if let Value::Object(map) = data {
            req.data = map;
        }
        self.core.handle_request(req).await
    }

    async fn call(
        &self,
        operation: Operation,
        path: &str,
        data: Value,
    ) -> Result<Option<Response>, Error> {
        self.call_as(&self.root, operation, path, data).await
    }

    async fn ok(&self, operation: Operation, path: &str, data: Value) -> Option<Response> {
        self.call(operation, path, data)
            .await
            .unwrap_or_else(|err| panic!("{path}: {err}"))
    }

    /// Issues a secret from `lt/creds/<name>`; returns its lease ID.
    async fn lease(&self, name: &str, ttl: &str) -> String {
        self.lease_with(name, json!({"ttl": ttl})).await
    }

    async fn lease_with(&self, name: &str, data: Value) -> String {
        let response = self
            .ok(Operation::Read, &format!("lt/creds/{name}"), data)
            .await
            .expect("a secret");
        response.secret.expect("a lease").lease_id
    }

    async fn lookup(&self, lease_id: &str) -> Option<Value> {
        match self
            .call(
                Operation::Update,
                "sys/leases/lookup",
                json!({"lease_id": lease_id}),
            )
            .await
        {
            Ok(response) => Some(Value::Object(response.unwrap().data.unwrap())),
            Err(Error::InvalidRequest(message)) if message == "invalid lease" => None,
            Err(err) => panic!("lookup: {err}"),
        }
    }

    /// How many times each secret of mount `lt/` was revoked.
    async fn revocations(&self, mount: &str) -> serde_json::Map<String, Value> {
        let ledger = self
            .ok(Operation::Read, &format!("{mount}/ledger"), json!({}))
            .await
            .unwrap();
        ledger.data.unwrap()["revocations"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    async fn set_config(&self, mount: &str, config: Value) {
        self.ok(Operation::Update, &format!("{mount}/config"), config)
            .await;
    }

    async fn lease_entry(&self, lease_id: &str) -> Option<super::LeaseEntry> {
        self.core
            .unsealed()
            .unwrap()
            .expiration
            .entry(lease_id)
            .await
            .unwrap()
    }

    /// Secret leases only: the root token's lease is always there.
    fn secret_leases(&self) -> i64 {
        self.core.unsealed().unwrap().expiration.counts().leases - 1
    }
}

async fn sleep(seconds: u64) {
    tokio::time::sleep(Duration::from_secs(seconds)).await;
}

#[tokio::test(start_paused = true)]
async fn secrets_expire_on_time_and_are_revoked_once() {
    let h = Harness::new().await;
    let response = h
        .ok(Operation::Read, "lt/creds/app", json!({"ttl": "30s"}))
        .await
        .unwrap();
    let secret = response.secret.unwrap();
    assert!(
        secret.lease_id.starts_with("lt/creds/app/"),
        "{}",
        secret.lease_id
    );
    assert_eq!(secret.lease_id.len(), "lt/creds/app/".len() + 24);
    assert_eq!(secret.ttl, Duration::from_secs(30));
    assert!(secret.renewable);
    assert!(
        secret.internal_data.is_empty(),
        "internal data stays in the lease"
    );
    let lookup = h.lookup(&secret.lease_id).await.unwrap();
    assert_eq!(lookup["ttl"], 30);
    assert_eq!(lookup["renewable"], true);
    assert_eq!(h.secret_leases(), 1);

    sleep(29).await;
    assert!(h.lookup(&secret.lease_id).await.is_some());
    sleep(2).await;
    assert!(h.lookup(&secret.lease_id).await.is_none());
    let revocations = h.revocations("lt").await;
    assert_eq!(revocations.len(), 1);
    assert!(
        revocations
            .values()
            .all(|times| times.as_array().unwrap().len() == 1)
    );
    assert_eq!(h.secret_leases(), 0);
    // Revoking what is gone is success.
    h.ok(
        Operation::Update,
        "sys/leases/revoke",
        json!({"lease_id": secret.lease_id}),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn renewal_counts_from_now_and_stops_at_the_max_ttl() {
    let h = Harness::new().await;
    let lease = h
        .lease_with("app", json!({"ttl": "60s", "max_ttl": "100s"}))
        .await;
    sleep(30).await;
    let renewed = h
        .ok(
            Operation::Update,
            "sys/leases/renew",
            json!({"lease_id": lease, "increment": 40}),
        )
        .await
        .unwrap();
    assert_eq!(
        renewed.secret.as_ref().unwrap().ttl,
        Duration::from_secs(40)
    );
    assert_eq!(renewed.secret.as_ref().unwrap().lease_id, lease);
    assert!(renewed.warnings.is_empty(), "{:?}", renewed.warnings);
    assert!(h.lookup(&lease).await.unwrap()["last_renewal"].is_string());

    sleep(30).await;
    let capped = h
        .ok(
            Operation::Update,
            "sys/leases/renew",
            json!({"lease_id": lease, "increment": "60s"}),
        )
        .await
        .unwrap();
    assert_eq!(capped.secret.unwrap().ttl, Duration::from_secs(40));
    assert!(
        capped
            .warnings
            .iter()
            .any(|w| w.contains("exceeded the effective max_ttl")),
        "{:?}",
        capped.warnings
    );
    sleep(39).await;
    assert!(h.lookup(&lease).await.is_some());
    // One second before the maximum, a renewal gets that second and no more.
    let last = h
        .ok(
            Operation::Update,
            "sys/renew",
            json!({"lease_id": lease, "increment": 60}),
        )
        .await
        .unwrap();
    assert!(last.secret.unwrap().ttl <= Duration::from_secs(1));
    sleep(2).await;
    assert!(h.lookup(&lease).await.is_none());
    let gone = h
        .call(
            Operation::Update,
            "sys/leases/renew",
            json!({"lease_id": lease}),
        )
        .await;
    assert!(matches!(gone, Err(Error::InvalidRequest(m)) if m == "lease not found"));
}

#[tokio::test(start_paused = true)]
async fn failing_revocations_back_off_become_irrevocable_and_recover() {
    let h = Harness::new().await;
    h.ok(
        Operation::Update,
        "sys/mounts/lt/tune",
        json!({"lease_revoke_max_attempts": 4, "lease_revoke_initial_backoff": "10s"}),
    )
    .await;
    h.set_config("lt", json!({"fail_revoke": true})).await;
    let lease = h.lease("app", "5s").await;

    // Each failure pushes the next attempt further out: 10 s, 20 s, 40 s, ±50 %.
    let mut last_due = None;
    let mut gaps = Vec::new();
    for attempt in 1..=3u32 {
        loop {
            sleep(1).await;
            let entry = h.lease_entry(&lease).await.unwrap();
            if entry.attempts == attempt {
                if let Some(previous) = last_due {
                    gaps.push(entry.due.unwrap() - previous);
                }
                last_due = entry.due;
                assert!(!entry.irrevocable);
                assert!(entry.last_error.as_deref().unwrap().contains("unavailable"));
                break;
            }
        }
    }
    assert!(gaps[0] >= 10_000 && gaps[0] <= 30_000 + 1000, "{gaps:?}");
    assert!(gaps[1] >= 20_000 && gaps[1] <= 60_000 + 1000, "{gaps:?}");

    sleep(120).await;
    let entry = h.lease_entry(&lease).await.unwrap();
    assert!(entry.irrevocable, "{entry:?}");
    assert_eq!(entry.attempts, 4);
    let listed = h
        .ok(
            Operation::Read,
            "sys/leases",
            json!({"type": "irrevocable"}),
        )
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(listed["lease_count"], 1);
    assert_eq!(listed["leases"][0]["lease_id"], lease);
    assert!(
        listed["leases"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with("out of retries:")
    );
    let counted = h
        .ok(
            Operation::Read,
            "sys/leases/count",
            json!({"type": "irrevocable"}),
        )
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(counted["lease_count"], 1);
    assert_eq!(counted["counts"].as_object().unwrap().len(), 1);
    let looked_up = h.lookup(&lease).await.unwrap();
    assert_eq!(looked_up["renewable"], false);
    assert!(looked_up["revoke_error"].is_string());

    // The target recovers; the slow retry revokes the lease within the hour.
    h.set_config("lt", json!({"fail_revoke": false})).await;
    sleep(3600).await;
    assert!(h.lookup(&lease).await.is_none());
    assert_eq!(
        h.core.unsealed().unwrap().expiration.counts().irrevocable,
        0
    );
    assert_eq!(h.revocations("lt").await.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_synchronous_revoke_reports_the_engine_error_and_keeps_the_lease() {
    let h = Harness::new().await;
    h.set_config("lt", json!({"fail_revoke": true})).await;
    let lease = h.lease("app", "1h").await;
    let failed = h
        .call(
            Operation::Update,
            &format!("sys/leases/revoke/{lease}"),
            json!({}),
        )
        .await;
    assert!(
        matches!(&failed, Err(Error::InvalidRequest(m)) if m.contains("unavailable")),
        "{failed:?}"
    );
    assert!(h.lookup(&lease).await.is_some());
    let queued = h
        .ok(
            Operation::Update,
            "sys/revoke",
            json!({"lease_id": lease, "sync": false}),
        )
        .await
        .unwrap();
    assert_eq!(queued.status, Some(202));
    h.set_config("lt", json!({"fail_revoke": false})).await;
    sleep(40).await;
    assert!(h.lookup(&lease).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn revoking_a_token_revokes_the_leases_of_its_tree() {
    let h = Harness::new().await;
    let parent = h
        .ok(
            Operation::Update,
            "auth/token/create",
            json!({"policies": ["root"], "ttl": "1h"}),
        )
        .await
        .unwrap()
        .auth
        .unwrap()
        .client_token;
    let child = h
        .call_as(
            &parent,
            Operation::Update,
            "auth/token/create",
            json!({"policies": ["root"], "ttl": "1h"}),
        )
        .await
        .unwrap()
        .unwrap()
        .auth
        .unwrap()
        .client_token;
    let by_parent = h
        .call_as(&parent, Operation::Read, "lt/creds/p", json!({"ttl": "1h"}))
        .await
        .unwrap()
        .unwrap()
        .secret
        .unwrap()
        .lease_id;
    let by_child = h
        .call_as(&child, Operation::Read, "lt/creds/c", json!({"ttl": "1h"}))
        .await
        .unwrap()
        .unwrap()
        .secret
        .unwrap()
        .lease_id;
    let by_root = h.lease("r", "1h").await;

    h.ok(
        Operation::Update,
        "auth/token/revoke",
        json!({"token": parent}),
    )
    .await;
    // The tokens go at once; their leases right after, through the worker.
    let denied = h
        .call_as(&child, Operation::Read, "lt/creds/c", json!({}))
        .await;
    assert!(matches!(denied, Err(Error::InvalidToken)));
    sleep(2).await;
    assert!(h.lookup(&by_parent).await.is_none());
    assert!(h.lookup(&by_child).await.is_none());
    assert!(h.lookup(&by_root).await.is_some());
    assert_eq!(h.revocations("lt").await.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn token_leases_are_listed_looked_up_and_expire_with_the_token() {
    let h = Harness::new().await;
    let auth = h
        .ok(
            Operation::Update,
            "auth/token/create",
            json!({"ttl": "10s", "policies": ["default"]}),
        )
        .await
        .unwrap()
        .auth
        .unwrap();
    let listed = h
        .ok(
            Operation::List,
            "sys/leases/lookup/auth/token/create/",
            json!({}),
        )
        .await
        .unwrap();
    let keys = listed.data.unwrap()["keys"].clone();
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
    let lease_id = format!("auth/token/create/{}", keys[0].as_str().unwrap());
    let lookup = h.lookup(&lease_id).await.unwrap();
    assert_eq!(lookup["ttl"], 10);
    let renew = h
        .call(
            Operation::Update,
            "sys/leases/renew",
            json!({"lease_id": lease_id}),
        )
        .await;
    assert!(
        matches!(&renew, Err(Error::InvalidRequest(m)) if m.contains("tokens cannot be renewed")),
        "{renew:?}"
    );
    // Renewing the token moves its lease.
    h.ok(
        Operation::Update,
        "auth/token/renew",
        json!({"token": auth.client_token, "increment": "20s"}),
    )
    .await;
    assert_eq!(h.lookup(&lease_id).await.unwrap()["ttl"], 20);
    sleep(21).await;
    assert!(h.lookup(&lease_id).await.is_none());
    let gone = h
        .call_as(
            &auth.client_token,
            Operation::Read,
            "auth/token/lookup-self",
            json!({}),
        )
        .await;
    assert!(matches!(gone, Err(Error::InvalidToken)));
}

#[tokio::test(start_paused = true)]
async fn revoke_prefix_sync_async_and_for_tokens() {
    let h = Harness::new().await;
    let a: Vec<String> = issue_many(&h, "a", 10).await;
    let b: Vec<String> = issue_many(&h, "b", 5).await;
    h.ok(
        Operation::Update,
        "sys/leases/revoke-prefix/lt/creds/a",
        json!({}),
    )
    .await;
    for lease in &a {
        assert!(h.lookup(lease).await.is_none());
    }
    assert!(h.lookup(&b[0]).await.is_some());
    let queued = h
        .ok(
            Operation::Update,
            "sys/revoke-prefix/lt/creds/b",
            json!({"sync": false}),
        )
        .await
        .unwrap();
    assert_eq!(queued.status, Some(202));
    sleep(1).await;
    for lease in &b {
        assert!(h.lookup(lease).await.is_none());
    }
    assert_eq!(h.revocations("lt").await.len(), 15);
    // A full lease ID is a prefix of one.
    let single = h.lease("c", "1h").await;
    let other = h.lease("c", "1h").await;
    h.ok(
        Operation::Update,
        &format!("sys/leases/revoke-prefix/{single}"),
        json!({}),
    )
    .await;
    assert!(h.lookup(&single).await.is_none());
    assert!(h.lookup(&other).await.is_some());

    // Token leases: revoking auth/token/create/ revokes every token created there.
    let token = h
        .ok(Operation::Update, "auth/token/create", json!({"ttl": "1h"}))
        .await
        .unwrap()
        .auth
        .unwrap()
        .client_token;
    h.ok(
        Operation::Update,
        "sys/leases/revoke-prefix/auth/token/create",
        json!({}),
    )
    .await;
    let gone = h
        .call_as(&token, Operation::Read, "auth/token/lookup-self", json!({}))
        .await;
    assert!(matches!(gone, Err(Error::InvalidToken)));
}

/// Issues `n` leases from `lt/creds/<name>` with a long TTL.
async fn issue_many(h: &Harness, name: &str, n: usize) -> Vec<String> {
    let mut leases = Vec::new();
    for _ in 0..n {
        leases.push(h.lease(name, "1h").await);
    }
    leases
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_revoke_prefix_resumes_at_unseal() {
    let h = Harness::new().await;
    let leases = issue_many(&h, "x", 6).await;
    // What a crash in the middle of a revoke-prefix leaves: the record of it, and leases
    // not yet marked.
    {
        let unsealed = h.core.unsealed().unwrap();
        mayfly_sdk::StorageExt::put_json(
            &unsealed.expiration.view,
            &super::prefix_revoke_key("lt/creds/x"),
            &json!({"prefix": "lt/creds/x", "force": false}),
        )
        .await
        .unwrap();
    }
    h.core.seal().await;
    h.core.submit_unseal_key(&h.keys[0]).await.unwrap();
    sleep(2).await;
    for lease in &leases {
        assert!(h.lookup(lease).await.is_none(), "{lease} survived");
    }
    let unsealed = h.core.unsealed().unwrap();
    let records = mayfly_sdk::Storage::list(&unsealed.expiration.view, "prefix-revoke/")
        .await
        .unwrap();
    assert!(records.is_empty(), "{records:?}");
}

#[tokio::test(start_paused = true)]
async fn leases_survive_a_seal_and_still_expire() {
    let h = Harness::new().await;
    let lease = h.lease("app", "30s").await;
    h.core.seal().await;
    sleep(10).await;
    h.core.submit_unseal_key(&h.keys[0]).await.unwrap();
    assert_eq!(h.lookup(&lease).await.unwrap()["ttl"], 20);
    sleep(21).await;
    assert!(h.lookup(&lease).await.is_none());
    assert_eq!(h.revocations("lt").await.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn disabling_a_mount_revokes_its_leases_or_refuses() {
    let h = Harness::new().await;
    h.set_config("lt", json!({"fail_revoke": true})).await;
    let lease = h.lease("app", "1h").await;
    let refused = h.call(Operation::Delete, "sys/mounts/lt", json!({})).await;
    match refused {
        Err(Error::InvalidRequest(message)) => {
            assert!(message.contains(&lease), "{message}");
            assert!(message.contains("revoke-force"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Still mounted and serving.
    h.lease("again", "1h").await;
    h.ok(Operation::Update, "sys/leases/revoke-force/lt/", json!({}))
        .await;
    assert!(h.lookup(&lease).await.is_none());
    assert_eq!(h.secret_leases(), 0);
    h.ok(Operation::Delete, "sys/mounts/lt", json!({})).await;

    // A mount whose engine works is disabled after its leases are revoked.
    h.mount("lt2").await;
    let lease = {
        let response = h
            .ok(Operation::Read, "lt2/creds/x", json!({"ttl": "1h"}))
            .await
            .unwrap();
        response.secret.unwrap().lease_id
    };
    h.ok(Operation::Delete, "sys/mounts/lt2", json!({})).await;
    assert!(h.lookup(&lease).await.is_none());
    assert_eq!(h.secret_leases(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_slow_mount_does_not_delay_another() {
    let h = Harness::new().await;
    h.mount("slow").await;
    h.ok(
        Operation::Update,
        "sys/mounts/slow/tune",
        json!({"lease_revoke_concurrency": 1}),
    )
    .await;
    h.set_config("slow", json!({"revoke_delay_ms": 60_000}))
        .await;
    let mut slow = Vec::new();
    for _ in 0..5 {
        let response = h
            .ok(Operation::Read, "slow/creds/x", json!({"ttl": "5s"}))
            .await
            .unwrap();
        slow.push(response.secret.unwrap().lease_id);
    }
    let fast = issue_many_with_ttl(&h, 5, "5s").await;
    sleep(7).await;
    for lease in &fast {
        assert!(h.lookup(lease).await.is_none());
    }
    assert!(h.lookup(&slow[4]).await.is_some());
    sleep(5 * 60 + 10).await;
    for lease in &slow {
        assert!(h.lookup(lease).await.is_none());
    }
}

async fn issue_many_with_ttl(h: &Harness, n: usize, ttl: &str) -> Vec<String> {
    let mut leases = Vec::new();
    for _ in 0..n {
        leases.push(h.lease("fast", ttl).await);
    }
    leases
}

#[tokio::test(start_paused = true)]
async fn lease_count_quotas_hold_under_concurrency() {
    let h = Harness::new().await;
    let existing = h.lease("early", "1h").await;
    h.ok(
        Operation::Update,
        "sys/quotas/lease-count/lt",
        json!({"path": "lt", "max_leases": 5}),
    )
    .await;
    let read = h
        .ok(Operation::Read, "sys/quotas/lease-count/lt", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(read["path"], "lt/");
    assert_eq!(read["lease_count"], 1, "seeded from the mount's count");

    let mut tasks = Vec::new();
    for i in 0..20 {
        let core = h.core.clone();
        let root = h.root.clone();
        tasks.push(tokio::spawn(async move {
            let mut req = Request::new(Operation::Read, format!("lt/creds/c{i}"));
            req.client_token = Some(ClientToken(root));
            req.data.insert("ttl".into(), "1h".into());
            core.handle_request(req).await
        }));
    }
    let mut created = 0;
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(Error::QuotaExceeded(message)) => {
                assert!(message.contains("lease count quota exceeded"), "{message}");
                refused += 1;
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!((created, refused), (4, 16));
    assert_eq!(h.secret_leases(), 5);
    // Refused requests created nothing, not even in the engine.
    h.ok(
        Operation::Update,
        "sys/leases/revoke",
        json!({"lease_id": existing}),
    )
    .await;
    h.lease("after", "1h").await;
    assert!(matches!(
        h.call(Operation::Read, "lt/creds/more", json!({})).await,
        Err(Error::QuotaExceeded(_))
    ));
    // Revocation and renewal are never refused.
    h.ok(
        Operation::Update,
        "sys/leases/revoke-prefix/lt/creds/after",
        json!({}),
    )
    .await;

    // A quota on a path inside the mount counts what is already there.
    h.ok(
        Operation::Update,
        "sys/quotas/lease-count/inner",
        json!({"path": "lt/creds/c1", "max_leases": 100}),
    )
    .await;
    let inner = h
        .ok(Operation::Read, "sys/quotas/lease-count/inner", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert!(inner["lease_count"].as_i64().unwrap() <= 1);
    let names = h
        .ok(Operation::List, "sys/quotas/lease-count/", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(names["keys"], json!(["inner", "lt"]));
    h.ok(Operation::Delete, "sys/quotas/lease-count/lt", json!({}))
        .await;
    h.lease("free", "1h").await;
    h.lease("free", "1h").await;
}

#[test]
fn lease_ids_survive_escaping_into_one_key_segment() {
    for id in [
        "auth/token/create/abc",
        "database/creds/r/%2F-literal/x",
        "100%/done%",
        "%",
        "",
        "trailing/",
        "ünïcode/ß%25",
    ] {
        let escaped = super::escape(id);
        assert!(!escaped.contains('/'), "{escaped}");
        assert_eq!(super::unescape(&escaped), id);
    }
}

#[test]
fn time_keys_sort_by_due_time_and_parse_back() {
    let id = "database/creds/r/abc";
    for due in [0, 7, 1_764_000_000_000, i64::MAX, -5] {
        let key = super::time_key(due, id);
        assert_eq!(
            key,
            format!("time/{:020}_{}", due.max(0), super::escape(id))
        );
        let child = key.strip_prefix("time/").unwrap();
        assert_eq!(
            super::parse_time_child(child),
            Some((due.max(0), id.to_owned()))
        );
    }
    assert!(super::time_key(99, id) < super::time_key(100, id));
}
