//! Unit tests of the userpass method against in-memory storage.

use std::{sync::Arc, time::Duration};

use mayfly_sdk::{
    Auth, Error, LogicalBackend, Operation, Request, Response, Result, Storage,
    testing::{MemoryStorage, request},
};
use serde_json::{Value, json};

use crate::UserpassBackend;

const MOUNT: &str = "auth/userpass/";

struct Harness {
    backend: UserpassBackend,
    storage: Arc<MemoryStorage>,
}

impl Harness {
    fn new() -> Self {
        Harness {
            backend: UserpassBackend::new(),
            storage: MemoryStorage::new(),
        }
    }

    fn req(&self, op: Operation, path: &str, data: Value, addr: &str) -> Request {
        let mut req = request(op, MOUNT, path, data, self.storage.clone());
        req.remote_addr = Some(addr.to_owned());
        req
    }

    async fn call(&self, op: Operation, path: &str, data: Value) -> Result<Option<Response>> {
        self.backend
            .handle(self.req(op, path, data, "127.0.0.1"))
            .await
    }

    async fn data(&self, op: Operation, path: &str) -> Value {
        let res = self
            .call(op, path, json!({}))
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

    async fn login_from(&self, user: &str, password: &str, addr: &str) -> Result<Auth> {
        let res = self
            .backend
            .handle(self.req(
                Operation::Update,
                &format!("login/{user}"),
                json!({"password": password}),
                addr,
            ))
            .await?;
        Ok(res.and_then(|res| res.auth).expect("a login returns auth"))
    }

    async fn login(&self, user: &str, password: &str) -> Result<Auth> {
        self.login_from(user, password, "127.0.0.1").await
    }
}

fn message(result: Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(Error::InvalidRequest(message)) => message,
        other => panic!("expected an invalid request, got {other:?}"),
    }
}

#[tokio::test]
async fn user_crud_and_read_shape() {
    let h = Harness::new();
    h.write(
        "users/Alice",
        json!({"password": "pw1", "token_policies": "a,b", "token_ttl": "1h"}),
    )
    .await;
    let data = h.data(Operation::Read, "users/alice").await;
    assert_eq!(
        serde_json::to_string(&data).unwrap(),
        r#"{"token_bound_cidrs":[],"token_explicit_max_ttl":0,"token_max_ttl":0,"token_no_default_policy":false,"token_num_uses":0,"token_period":0,"token_policies":["a","b"],"token_strictly_bind_ip":false,"token_ttl":3600,"token_type":"default"}"#
    );

    // Deprecated names are accepted and echoed while in use.
    h.write(
        "users/bob",
        json!({"password": "pw", "policies": "x", "ttl": 60, "max_ttl": 120,
               "bound_cidrs": "127.0.0.1/32"}),
    )
    .await;
    assert_eq!(
        h.data(Operation::Read, "users/bob").await,
        json!({"bound_cidrs": ["127.0.0.1"], "max_ttl": 120, "policies": ["x"],
               "token_bound_cidrs": ["127.0.0.1"], "token_explicit_max_ttl": 0,
               "token_max_ttl": 120, "token_no_default_policy": false, "token_num_uses": 0,
               "token_period": 0, "token_policies": ["x"], "token_strictly_bind_ip": false,
               "token_ttl": 60, "token_type": "default", "ttl": 60})
    );

    assert_eq!(
        h.data(Operation::List, "users/").await,
        json!({"keys": ["alice", "bob"]})
    );
    // An update without a password keeps the old one.
    h.write("users/alice", json!({"token_num_uses": 3})).await;
    assert!(h.login("alice", "pw1").await.is_ok());
    assert_eq!(
        h.data(Operation::Read, "users/alice").await["token_num_uses"],
        3
    );

    assert_eq!(
        message(h.call(Operation::Update, "users/carol", json!({})).await),
        "missing password"
    );
    assert_eq!(
        message(
            h.call(Operation::Update, "users/carol", json!({"password": ""}))
                .await
        ),
        "missing password"
    );
    assert!(
        message(
            h.call(
                Operation::Update,
                "users/carol",
                json!({"password": "x", "token_type": "bogus"})
            )
            .await
        )
        .contains("invalid 'token_type'")
    );

    let probe = h.req(Operation::Update, "users/alice", json!({}), "127.0.0.1");
    assert_eq!(h.backend.exists(&probe).await.unwrap(), Some(true));
    let probe = h.req(Operation::Update, "users/carol", json!({}), "127.0.0.1");
    assert_eq!(h.backend.exists(&probe).await.unwrap(), Some(false));

    h.call(Operation::Delete, "users/alice", json!({}))
        .await
        .unwrap();
    assert!(
        h.call(Operation::Read, "users/alice", json!({}))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(h.backend.unauthenticated_paths(), ["login/*"]);
}

#[tokio::test]
async fn login_returns_the_users_token_shape() {
    let h = Harness::new();
    h.write(
        "users/alice",
        json!({"password": "pw1", "token_policies": "a,b", "token_ttl": "1h",
               "token_max_ttl": "2h", "token_period": 0, "token_num_uses": 4}),
    )
    .await;
    // Usernames are case-insensitive at login too.
    let auth = h.login("Alice", "pw1").await.unwrap();
    assert_eq!(auth.display_name, "userpass-alice");
    assert_eq!(
        Value::Object(auth.metadata.clone().unwrap()),
        json!({"username": "alice"})
    );
    assert_eq!(auth.policies, ["a", "b"]);
    assert_eq!(auth.token_policies, ["a", "b"]);
    assert_eq!(auth.ttl, Duration::from_secs(3600));
    assert_eq!(auth.max_ttl, Duration::from_secs(7200));
    assert_eq!(auth.num_uses, 4);
    assert!(auth.renewable);
    assert!(auth.orphan);
    assert_eq!(auth.token_type, "service");
    assert_eq!(auth.internal_data["username"], "alice");
}

#[tokio::test]
async fn bad_credentials_all_look_the_same() {
    let h = Harness::new();
    h.write("users/alice", json!({"password": "pw1"})).await;
    assert!(h.backend.state.dummy_hash.0.get().is_none());
    let wrong_password = message(h.login("alice", "nope").await);
    let unknown_user = message(h.login("mallory", "nope").await);
    assert_eq!(wrong_password, "invalid username or password");
    assert_eq!(unknown_user, wrong_password);
    // The unknown user was checked against a real Argon2id hash, costing the same time.
    let dummy = h.backend.state.dummy_hash.0.get().expect("dummy hash used");
    assert!(dummy.starts_with("$argon2id$"));
    assert_eq!(message(h.login("alice", "").await), "missing password");
}

#[tokio::test]
async fn password_updates_and_storage_holds_only_a_hash() {
    let h = Harness::new();
    let first = "correct horse battery staple";
    h.write("users/alice", json!({"password": first})).await;
    let stored = h.storage.get("user/alice").await.unwrap().unwrap();
    let stored = String::from_utf8(stored).unwrap();
    let entry: Value = serde_json::from_str(&stored).unwrap();
    assert!(
        entry["password_hash"]
            .as_str()
            .unwrap()
            .starts_with("$argon2id$v=19$"),
        "{stored}"
    );
    assert!(!stored.contains(first));
    assert!(
        h.data(Operation::Read, "users/alice")
            .await
            .get("password")
            .is_none(),
        "passwords are never returned"
    );

    h.write("users/alice/password", json!({"password": "second"}))
        .await;
    assert!(h.login("alice", first).await.is_err());
    assert!(h.login("alice", "second").await.is_ok());
    assert_eq!(
        message(
            h.call(Operation::Update, "users/alice/password", json!({}))
                .await
        ),
        "missing password"
    );
    assert_eq!(
        message(
            h.call(
                Operation::Update,
                "users/nobody/password",
                json!({"password": "x"})
            )
            .await
        ),
        "username does not exist"
    );
    assert!(matches!(
        h.call(Operation::Read, "users/alice/password", json!({}))
            .await,
        Err(Error::UnsupportedOperation)
    ));
}

#[tokio::test]
async fn policies_sub_resource() {
    let h = Harness::new();
    h.write(
        "users/alice",
        json!({"password": "pw", "token_policies": "a"}),
    )
    .await;
    h.write("users/alice/policies", json!({"policies": "Q,p"}))
        .await;
    let data = h.data(Operation::Read, "users/alice").await;
    assert_eq!(data["token_policies"], json!(["p", "q"]));
    assert_eq!(data["policies"], json!(["p", "q"]));
    h.write("users/alice/policies", json!({"token_policies": "z"}))
        .await;
    let data = h.data(Operation::Read, "users/alice").await;
    assert_eq!(data["token_policies"], json!(["z"]));
    assert!(data.get("policies").is_none());
    assert_eq!(
        message(
            h.call(
                Operation::Update,
                "users/nobody/policies",
                json!({"policies": "x"})
            )
            .await
        ),
        "username does not exist"
    );
}

#[tokio::test]
async fn token_bound_cidrs_are_checked_at_login() {
    let h = Harness::new();
    h.write(
        "users/alice",
        json!({"password": "pw", "token_bound_cidrs": "10.0.0.0/8"}),
    )
    .await;
    assert!(matches!(
        h.login_from("alice", "pw", "192.168.1.1").await,
        Err(Error::PermissionDenied)
    ));
    let auth = h.login_from("alice", "pw", "10.2.3.4").await.unwrap();
    assert_eq!(auth.bound_cidrs, ["10.0.0.0/8"]);

    h.write(
        "users/bob",
        json!({"password": "pw", "token_strictly_bind_ip": true}),
    )
    .await;
    let auth = h.login_from("bob", "pw", "10.9.9.9").await.unwrap();
    assert_eq!(auth.bound_cidrs, ["10.9.9.9"]);
}

#[tokio::test]
async fn renewal_follows_the_user() {
    let h = Harness::new();
    h.write(
        "users/alice",
        json!({"password": "pw", "token_policies": "a", "token_ttl": 60}),
    )
    .await;
    let auth = h.login("alice", "pw").await.unwrap();
    let renew_req = || h.req(Operation::Update, "login/alice", json!({}), "127.0.0.1");

    h.write("users/alice", json!({"token_ttl": 120})).await;
    let renewed = h
        .backend
        .renew_auth(renew_req(), auth.clone())
        .await
        .unwrap();
    assert_eq!(renewed.ttl, Duration::from_secs(120));

    h.write("users/alice", json!({"token_policies": "a,b"}))
        .await;
    assert_eq!(
        message(h.backend.renew_auth(renew_req(), auth.clone()).await),
        "policies have changed, not renewing"
    );
    h.call(Operation::Delete, "users/alice", json!({}))
        .await
        .unwrap();
    assert!(message(h.backend.renew_auth(renew_req(), auth).await).contains("does not exist"));
}
