//! Unit tests of the AppRole method against in-memory storage and a hand-moved clock.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use mayfly_sdk::{
    Auth, Error, LogicalBackend, Operation, Response, Result, Storage,
    testing::{MemoryStorage, request},
};
use serde_json::{Value, json};
use time::{OffsetDateTime, macros::datetime};

use crate::{AppRoleBackend, state::Clock};

const MOUNT: &str = "auth/approle/";

struct Harness {
    backend: Arc<AppRoleBackend>,
    storage: Arc<MemoryStorage>,
    now: Arc<Mutex<OffsetDateTime>>,
}

impl Harness {
    fn new() -> Self {
        let now = Arc::new(Mutex::new(datetime!(2026-01-01 00:00:00 UTC)));
        let clock_now = now.clone();
        let clock: Clock =
            Arc::new(move || *clock_now.lock().unwrap_or_else(PoisonError::into_inner));
        Harness {
            backend: Arc::new(AppRoleBackend::new(clock)),
            storage: MemoryStorage::new(),
            now,
        }
    }

    fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap();
        *now += by;
    }

    fn req(&self, op: Operation, path: &str, data: Value, addr: &str) -> mayfly_sdk::Request {
        let mut req = request(op, MOUNT, path, data, self.storage.clone());
        req.remote_addr = Some(addr.to_owned());
        req
    }

    async fn call(&self, op: Operation, path: &str, data: Value) -> Result<Option<Response>> {
        self.backend
            .handle(self.req(op, path, data, "127.0.0.1"))
            .await
    }

    async fn data(&self, op: Operation, path: &str, data: Value) -> Value {
        let res = self
            .call(op, path, data)
            .await
            .unwrap_or_else(|err| panic!("{op:?} {path}: {err:?}"))
            .unwrap_or_else(|| panic!("{op:?} {path}: no response"));
        Value::Object(res.data.unwrap_or_default())
    }

    async fn write(&self, path: &str, data: Value) {
        self.call(Operation::Update, path, data)
            .await
            .unwrap_or_else(|err| panic!("write {path}: {err:?}"));
    }

    async fn role_id(&self, role: &str) -> String {
        let data = self
            .data(Operation::Read, &format!("role/{role}/role-id"), json!({}))
            .await;
        data["role_id"].as_str().unwrap().to_owned()
    }

    async fn secret(&self, role: &str, body: Value) -> Value {
        self.data(Operation::Update, &format!("role/{role}/secret-id"), body)
            .await
    }

    async fn login_from(&self, body: Value, addr: &str) -> Result<Auth> {
        let res = self
            .backend
            .handle(self.req(Operation::Update, "login", body, addr))
            .await?;
        Ok(res.and_then(|res| res.auth).expect("a login returns auth"))
    }

    async fn login(&self, role_id: &str, secret_id: &str) -> Result<Auth> {
        self.login_from(
            json!({"role_id": role_id, "secret_id": secret_id}),
            "127.0.0.1",
        )
        .await
    }

    /// A role with one SecretID: (role_id, secret_id).
    async fn role_with_secret(
        &self,
        role: &str,
        role_body: Value,
        secret_body: Value,
    ) -> (String, String) {
        self.write(&format!("role/{role}"), role_body).await;
        let role_id = self.role_id(role).await;
        let secret = self.secret(role, secret_body).await;
        (role_id, secret["secret_id"].as_str().unwrap().to_owned())
    }
}

fn message(result: Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(Error::InvalidRequest(message)) => message,
        other => panic!("expected an invalid request, got {other:?}"),
    }
}

#[tokio::test]
async fn role_read_has_vaults_keys_types_and_order() {
    let h = Harness::new();
    assert!(
        h.call(Operation::Update, "role/r1", json!({}))
            .await
            .unwrap()
            .is_none()
    );
    let data = h.data(Operation::Read, "role/r1", json!({})).await;
    assert_eq!(
        serde_json::to_string(&data).unwrap(),
        r#"{"bind_secret_id":true,"local_secret_ids":false,"secret_id_bound_cidrs":null,"secret_id_num_uses":0,"secret_id_ttl":0,"token_bound_cidrs":[],"token_explicit_max_ttl":0,"token_max_ttl":0,"token_no_default_policy":false,"token_num_uses":0,"token_period":0,"token_policies":[],"token_strictly_bind_ip":false,"token_ttl":0,"token_type":"default"}"#
    );

    h.write(
        "role/r2",
        json!({"token_policies": "a,b", "secret_id_bound_cidrs": "10.0.0.0/8",
               "token_bound_cidrs": ["127.0.0.1/32"], "secret_id_ttl": "1h", "token_ttl": "20m",
               "token_max_ttl": "1h", "token_period": 0, "secret_id_num_uses": 3,
               "token_num_uses": 2, "token_type": "service", "local_secret_ids": true}),
    )
    .await;
    let data = h.data(Operation::Read, "role/r2", json!({})).await;
    assert_eq!(
        data,
        json!({"bind_secret_id": true, "local_secret_ids": true,
               "secret_id_bound_cidrs": ["10.0.0.0/8"], "secret_id_num_uses": 3,
               "secret_id_ttl": 3600, "token_bound_cidrs": ["127.0.0.1"],
               "token_explicit_max_ttl": 0, "token_max_ttl": 3600,
               "token_no_default_policy": false, "token_num_uses": 2, "token_period": 0,
               "token_policies": ["a", "b"], "token_strictly_bind_ip": false, "token_ttl": 1200,
               "token_type": "service"})
    );

    // Deprecated names are accepted and echoed while in use.
    h.write(
        "role/r3",
        json!({"policies": "x,Y", "period": "1h", "bound_cidr_list": "10.0.0.0/8,192.168.1.1/32"}),
    )
    .await;
    let data = h.data(Operation::Read, "role/r3", json!({})).await;
    assert_eq!(data["policies"], json!(["x", "y"]));
    assert_eq!(data["token_policies"], json!(["x", "y"]));
    assert_eq!(data["period"], 3600);
    assert_eq!(data["token_period"], 3600);
    assert_eq!(
        data["secret_id_bound_cidrs"],
        json!(["10.0.0.0/8", "192.168.1.1/32"])
    );
}

#[tokio::test]
async fn role_crud_and_validation() {
    let h = Harness::new();
    h.write("role/Web", json!({"token_policies": "p"})).await;
    // Names are case-insensitive and stored lower-cased.
    let listed = h.data(Operation::List, "role/", json!({})).await;
    assert_eq!(listed["keys"], json!(["web"]));
    let data = h.data(Operation::Read, "role/WEB", json!({})).await;
    assert_eq!(data["token_policies"], json!(["p"]));
    let role_id = h.role_id("web").await;
    assert!(uuid::Uuid::parse_str(&role_id).is_ok(), "{role_id}");

    // Updating keeps what is not mentioned.
    h.write("role/web", json!({"token_ttl": 60})).await;
    let data = h.data(Operation::Read, "role/web", json!({})).await;
    assert_eq!(data["token_policies"], json!(["p"]));
    assert_eq!(data["token_ttl"], 60);
    assert_eq!(
        h.role_id("web").await,
        role_id,
        "the RoleID survives updates"
    );

    assert!(
        message(
            h.call(
                Operation::Update,
                "role/web",
                json!({"local_secret_ids": true})
            )
            .await
        )
        .contains("only be modified during role creation")
    );
    assert_eq!(
        message(
            h.call(
                Operation::Update,
                "role/open",
                json!({"bind_secret_id": false})
            )
            .await
        ),
        "at least one constraint should be enabled on the role"
    );
    h.write(
        "role/open",
        json!({"bind_secret_id": false, "token_bound_cidrs": "1.2.3.4/32"}),
    )
    .await;
    assert!(
        message(
            h.call(
                Operation::Update,
                "role/bad",
                json!({"secret_id_bound_cidrs": "10.0.0.1"})
            )
            .await
        )
        .contains("failed to validate CIDR blocks")
    );
    assert!(
        message(
            h.call(
                Operation::Update,
                "role/bad",
                json!({"token_ttl": 50, "token_max_ttl": 10})
            )
            .await
        )
        .contains("'token_ttl' cannot be greater than 'token_max_ttl'")
    );
    let res = h
        .call(
            Operation::Update,
            "role/svc",
            json!({"token_type": "default-service"}),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        res.warnings,
        ["default-service has no useful meaning; adjusting to service"]
    );

    // The existence check tells the router create from update.
    let probe = h.req(Operation::Update, "role/web", json!({}), "127.0.0.1");
    assert_eq!(h.backend.exists(&probe).await.unwrap(), Some(true));
    let probe = h.req(Operation::Update, "role/none", json!({}), "127.0.0.1");
    assert_eq!(h.backend.exists(&probe).await.unwrap(), Some(false));

    h.call(Operation::Delete, "role/web", json!({}))
        .await
        .unwrap();
    assert!(
        h.call(Operation::Read, "role/web", json!({}))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        h.backend
            .unauthenticated_paths()
            .contains(&"login".to_owned())
    );
}

#[tokio::test]
async fn role_id_can_be_set_but_not_shared() {
    let h = Harness::new();
    h.write("role/a", json!({})).await;
    h.write("role/b", json!({})).await;
    h.write("role/a/role-id", json!({"role_id": "custom-rid"}))
        .await;
    assert_eq!(h.role_id("a").await, "custom-rid");
    assert_eq!(
        message(
            h.call(
                Operation::Update,
                "role/b/role-id",
                json!({"role_id": "custom-rid"})
            )
            .await
        ),
        "role_id already in use"
    );
    assert_eq!(
        message(
            h.call(
                Operation::Update,
                "role/b",
                json!({"role_id": "custom-rid"})
            )
            .await
        ),
        "role_id already in use"
    );
    let secret = h.secret("a", json!({})).await;
    let auth = h
        .login("custom-rid", secret["secret_id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(auth.metadata.unwrap()["role_name"], "a");
}

#[tokio::test]
async fn per_field_sub_resources() {
    let h = Harness::new();
    h.write("role/r", json!({"token_max_ttl": 600})).await;

    h.write("role/r/token-ttl", json!({"token_ttl": "5m"}))
        .await;
    let data = h.data(Operation::Read, "role/r/token-ttl", json!({})).await;
    assert_eq!(data, json!({"token_ttl": 300}));
    assert_eq!(
        message(
            h.call(
                Operation::Update,
                "role/r/token-ttl",
                json!({"token_ttl": 700})
            )
            .await
        ),
        "token_ttl should not be greater than token_max_ttl"
    );
    assert_eq!(
        message(
            h.call(Operation::Update, "role/r/token-ttl", json!({}))
                .await
        ),
        "missing token_ttl"
    );
    h.call(Operation::Delete, "role/r/token-ttl", json!({}))
        .await
        .unwrap();
    assert_eq!(
        h.data(Operation::Read, "role/r/token-ttl", json!({})).await,
        json!({"token_ttl": 0})
    );

    h.write("role/r/policies", json!({"token_policies": "Z,y"}))
        .await;
    assert_eq!(
        h.data(Operation::Read, "role/r/policies", json!({})).await,
        json!({"token_policies": ["y", "z"]})
    );
    h.write("role/r/policies", json!({"policies": "q"})).await;
    assert_eq!(
        h.data(Operation::Read, "role/r/policies", json!({})).await,
        json!({"policies": ["q"], "token_policies": ["q"]})
    );

    for (path, body, key, value) in [
        (
            "secret-id-num-uses",
            json!({"secret_id_num_uses": 4}),
            "secret_id_num_uses",
            json!(4),
        ),
        (
            "secret-id-ttl",
            json!({"secret_id_ttl": "1m"}),
            "secret_id_ttl",
            json!(60),
        ),
        (
            "token-max-ttl",
            json!({"token_max_ttl": 900}),
            "token_max_ttl",
            json!(900),
        ),
        (
            "token-num-uses",
            json!({"token_num_uses": 3}),
            "token_num_uses",
            json!(3),
        ),
        (
            "period",
            json!({"token_period": "2m"}),
            "token_period",
            json!(120),
        ),
        (
            "token-bound-cidrs",
            json!({"token_bound_cidrs": "10.1.2.3/32"}),
            "token_bound_cidrs",
            json!(["10.1.2.3"]),
        ),
        (
            "secret-id-bound-cidrs",
            json!({"secret_id_bound_cidrs": "10.0.0.0/8"}),
            "secret_id_bound_cidrs",
            json!(["10.0.0.0/8"]),
        ),
        (
            "bind-secret-id",
            json!({"bind_secret_id": false}),
            "bind_secret_id",
            json!(false),
        ),
    ] {
        h.write(&format!("role/r/{path}"), body).await;
        let data = h
            .data(Operation::Read, &format!("role/r/{path}"), json!({}))
            .await;
        assert_eq!(data[key], value, "{path}");
    }
    let res = h
        .call(Operation::Read, "role/r/bound-cidr-list", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.data.unwrap()["bound_cidr_list"], json!(["10.0.0.0/8"]));
    assert_eq!(res.warnings.len(), 1, "deprecation warning");
    assert_eq!(
        h.data(Operation::Read, "role/r/local-secret-ids", json!({}))
            .await,
        json!({"local_secret_ids": false})
    );
    // Unset CIDR lists read back as null here.
    h.call(Operation::Delete, "role/r/token-bound-cidrs", json!({}))
        .await
        .unwrap();
    assert_eq!(
        h.data(Operation::Read, "role/r/token-bound-cidrs", json!({}))
            .await,
        json!({"token_bound_cidrs": null})
    );

    assert!(matches!(
        h.call(
            Operation::Update,
            "role/nope/token-ttl",
            json!({"token_ttl": 5})
        )
        .await,
        Err(Error::UnsupportedPath)
    ));
    assert!(
        h.call(Operation::Read, "role/nope/token-ttl", json!({}))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn login_returns_the_roles_token_shape() {
    let h = Harness::new();
    let (role_id, secret_id) = h
        .role_with_secret(
            "web",
            json!({"token_policies": "a,b", "token_ttl": "20m", "token_max_ttl": "1h",
                   "token_num_uses": 2, "token_bound_cidrs": "10.0.0.0/8",
                   "token_explicit_max_ttl": "2h", "token_no_default_policy": true}),
            json!({"metadata": "{\"env\":\"prod\"}"}),
        )
        .await;
    let auth = h.login(&role_id, &secret_id).await.unwrap();
    assert_eq!(auth.display_name, "approle");
    assert_eq!(auth.policies, ["a", "b"]);
    assert_eq!(auth.token_policies, ["a", "b"]);
    assert_eq!(
        Value::Object(auth.metadata.clone().unwrap()),
        json!({"env": "prod", "role_name": "web"})
    );
    assert_eq!(auth.ttl, Duration::from_secs(1200));
    assert_eq!(auth.max_ttl, Duration::from_secs(3600));
    assert_eq!(auth.explicit_max_ttl, Duration::from_secs(7200));
    assert_eq!(auth.num_uses, 2);
    assert_eq!(auth.bound_cidrs, ["10.0.0.0/8"]);
    assert!(auth.renewable);
    assert!(auth.no_default_policy);
    assert!(auth.orphan);
    assert_eq!(auth.token_type, "service");
    assert_eq!(auth.internal_data["role_name"], "web");
    assert!(auth.client_token.is_empty(), "the core creates the token");

    // A SecretID without a use limit keeps working.
    assert!(h.login(&role_id, &secret_id).await.is_ok());
}

#[tokio::test]
async fn bad_credentials_all_look_the_same() {
    let h = Harness::new();
    let (role_id, secret_id) = h.role_with_secret("web", json!({}), json!({})).await;
    let wrong_secret = message(h.login(&role_id, "not-the-secret").await);
    let unknown_role = message(h.login("not-a-role-id", &secret_id).await);
    assert_eq!(wrong_secret, "invalid role or secret ID");
    assert_eq!(unknown_role, wrong_secret);
    // Another role's SecretID is no good either.
    let (other_role_id, _) = h.role_with_secret("other", json!({}), json!({})).await;
    assert_eq!(
        message(h.login(&other_role_id, &secret_id).await),
        "invalid role or secret ID"
    );
    assert_eq!(
        message(h.login_from(json!({"role_id": role_id}), "127.0.0.1").await),
        "missing secret_id"
    );
    assert_eq!(
        message(
            h.login_from(json!({"secret_id": secret_id}), "127.0.0.1")
                .await
        ),
        "missing role_id"
    );
}

#[tokio::test]
async fn secret_id_uses_run_out() {
    let h = Harness::new();
    let (role_id, secret_id) = h
        .role_with_secret(
            "web",
            json!({"secret_id_num_uses": 3}),
            json!({"num_uses": 2}),
        )
        .await;
    assert!(h.login(&role_id, &secret_id).await.is_ok());
    let left = h
        .data(
            Operation::Update,
            "role/web/secret-id/lookup",
            json!({"secret_id": secret_id}),
        )
        .await;
    assert_eq!(left["secret_id_num_uses"], 1);
    assert!(h.login(&role_id, &secret_id).await.is_ok());
    assert_eq!(
        message(h.login(&role_id, &secret_id).await),
        "invalid role or secret ID"
    );
    // The spent SecretID is gone, accessor and all.
    assert!(
        h.storage
            .keys()
            .iter()
            .all(|key| !key.starts_with("secret_id/") && !key.starts_with("accessor/")),
        "{:?}",
        h.storage.keys()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_never_overspend() {
    let h = Arc::new(Harness::new());
    let (role_id, secret_id) = h
        .role_with_secret("web", json!({}), json!({"num_uses": 5}))
        .await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (h, role_id, secret_id) = (h.clone(), role_id.clone(), secret_id.clone());
            tokio::spawn(async move { h.login(&role_id, &secret_id).await.is_ok() })
        })
        .collect();
    let mut successes = 0;
    for task in tasks {
        if task.await.unwrap() {
            successes += 1;
        }
    }
    assert_eq!(successes, 5);
}

#[tokio::test]
async fn expired_secret_ids_are_refused() {
    let h = Harness::new();
    let (role_id, secret_id) = h
        .role_with_secret("web", json!({}), json!({"ttl": "1s"}))
        .await;
    let lookup = h
        .data(
            Operation::Update,
            "role/web/secret-id/lookup",
            json!({"secret_id": secret_id}),
        )
        .await;
    assert_eq!(lookup["secret_id_ttl"], 1);
    assert_eq!(lookup["creation_time"], "2026-01-01T00:00:00Z");
    assert_eq!(lookup["expiration_time"], "2026-01-01T00:00:01Z");
    h.advance(Duration::from_millis(1100));
    assert_eq!(
        message(h.login(&role_id, &secret_id).await),
        "invalid role or secret ID"
    );
    assert!(
        h.call(
            Operation::Update,
            "role/web/secret-id/lookup",
            json!({"secret_id": secret_id})
        )
        .await
        .unwrap()
        .is_none(),
        "the expired SecretID was removed"
    );
}

#[tokio::test]
async fn secret_id_limits_follow_the_role() {
    let h = Harness::new();
    h.write(
        "role/web",
        json!({"secret_id_num_uses": 3, "secret_id_ttl": 60, "secret_id_bound_cidrs": "10.0.0.0/8"}),
    )
    .await;
    let generated = h.secret("web", json!({})).await;
    assert_eq!(generated["secret_id_num_uses"], 3);
    assert_eq!(generated["secret_id_ttl"], 60);
    let keys: Vec<&String> = generated.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "secret_id",
            "secret_id_accessor",
            "secret_id_num_uses",
            "secret_id_ttl"
        ]
    );
    for (body, text) in [
        (json!({"num_uses": 4}), "num_uses cannot be higher"),
        (json!({"num_uses": 0}), "num_uses cannot be higher"),
        (json!({"num_uses": -1}), "cannot be negative"),
        (json!({"ttl": 61}), "ttl cannot be longer"),
        (
            json!({"cidr_list": "11.0.0.0/8"}),
            "failed to verify subset relationship",
        ),
        (
            json!({"cidr_list": "10.0.0.1"}),
            "failed to validate CIDR blocks",
        ),
        (json!({"metadata": "notjson"}), "failed to parse metadata"),
    ] {
        let result = h
            .call(Operation::Update, "role/web/secret-id", body.clone())
            .await;
        assert!(message(result).contains(text), "{body}");
    }
    // A mount maximum caps the SecretID's lifetime.
    let mut req = h.req(
        Operation::Update,
        "role/capped",
        json!({"secret_id_ttl": "1h"}),
        "127.0.0.1",
    );
    h.backend.handle(req.clone()).await.unwrap();
    req.path = format!("{MOUNT}role/capped/secret-id");
    req.mount_ttls.max_lease_ttl = Duration::from_secs(30);
    let res = h.backend.handle(req).await.unwrap().unwrap();
    assert_eq!(res.data.unwrap()["secret_id_ttl"], 30);

    assert!(matches!(
        h.call(Operation::Update, "role/nope/secret-id", json!({}))
            .await,
        Err(Error::Coded { status: 404, .. })
    ));
    h.write(
        "role/nobind",
        json!({"bind_secret_id": false, "secret_id_bound_cidrs": "127.0.0.0/8"}),
    )
    .await;
    assert_eq!(
        message(
            h.call(Operation::Update, "role/nobind/secret-id", json!({}))
                .await
        ),
        "bind_secret_id is not set on the role"
    );
}

#[tokio::test]
async fn cidr_bindings_are_enforced_before_a_use_is_spent() {
    let h = Harness::new();
    let (role_id, secret_id) = h
        .role_with_secret(
            "web",
            json!({"secret_id_bound_cidrs": "10.0.0.0/8"}),
            json!({"num_uses": 1, "cidr_list": "10.1.0.0/16", "token_bound_cidrs": "10.1.2.3/32"}),
        )
        .await;
    let body = json!({"role_id": role_id, "secret_id": secret_id});
    assert_eq!(
        message(h.login_from(body.clone(), "10.2.0.1").await),
        "source address \"10.2.0.1\" unauthorized through CIDR restrictions on the secret ID"
    );
    assert_eq!(
        message(h.login_from(body.clone(), "192.168.0.1").await),
        "source address \"192.168.0.1\" unauthorized through CIDR restrictions on the secret ID"
    );
    let auth = h.login_from(body.clone(), "10.1.9.9").await.unwrap();
    assert_eq!(
        auth.bound_cidrs,
        ["10.1.2.3"],
        "the SecretID's token CIDRs win"
    );
    assert!(h.login_from(body, "10.1.9.9").await.is_err(), "single use");

    // Without a SecretID, the role's CIDRs are the credential's boundary.
    h.write(
        "role/machine",
        json!({"bind_secret_id": false, "secret_id_bound_cidrs": "127.0.0.0/8"}),
    )
    .await;
    let machine = h.role_id("machine").await;
    assert!(
        h.login_from(json!({"role_id": machine}), "127.0.0.5")
            .await
            .is_ok()
    );
    assert_eq!(
        message(h.login_from(json!({"role_id": machine}), "10.0.0.1").await),
        "source address \"10.0.0.1\" unauthorized by CIDR restrictions on the role"
    );
}

#[tokio::test]
async fn accessors_look_up_and_destroy() {
    let h = Harness::new();
    let (role_id, secret_id) = h
        .role_with_secret("web", json!({}), json!({"metadata": {"team": "ops"}}))
        .await;
    let listed = h
        .data(Operation::List, "role/web/secret-id/", json!({}))
        .await;
    let accessor = listed["keys"][0].as_str().unwrap().to_owned();
    let lookup = h
        .data(
            Operation::Update,
            "role/web/secret-id-accessor/lookup",
            json!({"secret_id_accessor": accessor}),
        )
        .await;
    let keys: Vec<&String> = lookup.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "cidr_list",
            "creation_time",
            "expiration_time",
            "last_updated_time",
            "metadata",
            "secret_id_accessor",
            "secret_id_num_uses",
            "secret_id_ttl",
            "token_bound_cidrs"
        ]
    );
    assert_eq!(lookup["metadata"], json!({"team": "ops"}));
    assert_eq!(lookup["expiration_time"], "0001-01-01T00:00:00Z");
    assert_eq!(lookup["cidr_list"], json!([]));
    assert_eq!(lookup["secret_id_accessor"], accessor);

    h.write(
        "role/web/secret-id-accessor/destroy",
        json!({"secret_id_accessor": accessor}),
    )
    .await;
    assert!(h.login(&role_id, &secret_id).await.is_err());
    let missing = h
        .call(
            Operation::Update,
            "role/web/secret-id-accessor/lookup",
            json!({"secret_id_accessor": accessor}),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(missing.status, Some(404));
    assert!(
        message(
            h.call(
                Operation::Update,
                "role/web/secret-id-accessor/destroy",
                json!({"secret_id_accessor": accessor}),
            )
            .await
        )
        .contains("failed to find accessor entry")
    );

    // Destroy by value, through DELETE as well.
    let other = h.secret("web", json!({})).await;
    let other_id = other["secret_id"].as_str().unwrap();
    h.call(
        Operation::Delete,
        "role/web/secret-id/destroy",
        json!({"secret_id": other_id}),
    )
    .await
    .unwrap();
    assert!(h.login(&role_id, other_id).await.is_err());
    // An accessor of one role cannot be used through another.
    let third = h.secret("web", json!({})).await;
    h.write("role/other", json!({})).await;
    let crossed = h
        .call(
            Operation::Update,
            "role/other/secret-id-accessor/lookup",
            json!({"secret_id_accessor": third["secret_id_accessor"]}),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(crossed.status, Some(404));
}

#[tokio::test]
async fn custom_secret_ids() {
    let h = Harness::new();
    h.write("role/web", json!({})).await;
    let role_id = h.role_id("web").await;
    let created = h
        .data(
            Operation::Update,
            "role/web/custom-secret-id",
            json!({"secret_id": "my-secret", "num_uses": 1}),
        )
        .await;
    assert_eq!(created["secret_id"], "my-secret");
    assert_eq!(
        message(
            h.call(
                Operation::Update,
                "role/web/custom-secret-id",
                json!({"secret_id": "my-secret"})
            )
            .await
        ),
        "SecretID is already registered"
    );
    assert_eq!(
        message(
            h.call(Operation::Update, "role/web/custom-secret-id", json!({}))
                .await
        ),
        "missing secret_id"
    );
    assert!(h.login(&role_id, "my-secret").await.is_ok());
    assert!(h.login(&role_id, "my-secret").await.is_err());
}

#[tokio::test]
async fn tidy_removes_expired_secret_ids() {
    let h = Harness::new();
    let (role_id, keeper) = h.role_with_secret("web", json!({}), json!({})).await;
    h.secret("web", json!({"ttl": 60})).await;
    h.advance(Duration::from_secs(120));
    let res = h
        .call(Operation::Update, "tidy/secret-id", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.status, Some(202));
    assert!(res.warnings[0].starts_with("Tidy operation successfully started"));
    let task = h.backend.state.tidy_task.lock().unwrap().take();
    task.expect("tidy runs in the background").await.unwrap();

    let listed = h
        .data(Operation::List, "role/web/secret-id/", json!({}))
        .await;
    assert_eq!(listed["keys"].as_array().unwrap().len(), 1);
    let accessors = h
        .storage
        .keys()
        .into_iter()
        .filter(|key| key.starts_with("accessor/"))
        .count();
    assert_eq!(accessors, 1);
    assert!(h.login(&role_id, &keeper).await.is_ok());
}

#[tokio::test]
async fn deleting_a_role_destroys_its_secret_ids() {
    let h = Harness::new();
    let (_, secret_id) = h.role_with_secret("web", json!({}), json!({})).await;
    h.secret("web", json!({})).await;
    h.call(Operation::Delete, "role/web", json!({}))
        .await
        .unwrap();
    let leftovers: Vec<String> = h
        .storage
        .keys()
        .into_iter()
        .filter(|key| key != "salt")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A recreated role does not revive old SecretIDs.
    h.write("role/web", json!({})).await;
    let role_id = h.role_id("web").await;
    assert!(h.login(&role_id, &secret_id).await.is_err());
}

#[tokio::test]
async fn renewal_follows_the_role_and_stops_when_it_is_gone() {
    let h = Harness::new();
    let (role_id, secret_id) = h
        .role_with_secret(
            "web",
            json!({"token_ttl": 60, "token_max_ttl": 600}),
            json!({}),
        )
        .await;
    let auth = h.login(&role_id, &secret_id).await.unwrap();
    h.write("role/web", json!({"token_ttl": 120, "token_period": 30}))
        .await;
    let renew_req = || h.req(Operation::Update, "login", json!({}), "127.0.0.1");
    let renewed = h
        .backend
        .renew_auth(renew_req(), auth.clone())
        .await
        .unwrap();
    assert_eq!(renewed.ttl, Duration::from_secs(120));
    assert_eq!(renewed.max_ttl, Duration::from_secs(600));
    assert_eq!(renewed.period, Duration::from_secs(30));
    h.call(Operation::Delete, "role/web", json!({}))
        .await
        .unwrap();
    assert_eq!(
        message(h.backend.renew_auth(renew_req(), auth).await),
        "role \"web\" does not exist during renewal"
    );
}

#[tokio::test]
async fn nothing_secret_is_stored_in_the_clear() {
    let h = Harness::new();
    let (_, secret_id) = h.role_with_secret("web", json!({}), json!({})).await;
    let custom = "a-very-recognizable-secret";
    h.write("role/web/custom-secret-id", json!({"secret_id": custom}))
        .await;
    for key in h.storage.keys() {
        let value = String::from_utf8(h.storage.get(&key).await.unwrap().unwrap()).unwrap();
        for secret in [secret_id.as_str(), custom] {
            assert!(!key.contains(secret) && !value.contains(secret), "{key}");
        }
    }
}
