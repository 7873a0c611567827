//! Pipeline tests: init, unseal, sealed behaviour and routing through the core.

use std::{sync::Arc, time::Duration};

use mayfly_barrier::UnsealKey;
use mayfly_sdk::{Error, Operation, Request, logical::ClientToken};
use serde_json::{Value, json};

use crate::{Core, CoreConfig, registry::Registry};

/// An auth method that logs anyone in with the policies they ask for, and refuses renewal
/// once told to: enough to drive the login and renewal paths of the pipeline.
struct FakeAuth {
    refuse_renewal: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl mayfly_sdk::LogicalBackend for FakeAuth {
    async fn handle(&self, req: Request) -> mayfly_sdk::Result<Option<mayfly_sdk::Response>> {
        match req.relative_path() {
            "login" => {
                let policies = req.data["policies"]
                    .as_str()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::to_owned)
                    .collect();
                Ok(Some(mayfly_sdk::Response {
                    auth: Some(mayfly_sdk::Auth {
                        display_name: "fake-user".into(),
                        policies,
                        ttl: Duration::from_secs(60),
                        max_ttl: Duration::from_secs(120),
                        renewable: true,
                        ..mayfly_sdk::Auth::default()
                    }),
                    ..mayfly_sdk::Response::default()
                }))
            }
            "refuse" => {
                self.refuse_renewal
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(None)
            }
            _ => Err(Error::UnsupportedPath),
        }
    }

    fn unauthenticated_paths(&self) -> Vec<String> {
        vec!["login".into()]
    }

    async fn renew_auth(
        &self,
        _: Request,
        auth: mayfly_sdk::Auth,
    ) -> mayfly_sdk::Result<mayfly_sdk::Auth> {
        if self
            .refuse_renewal
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(Error::invalid("user is gone"));
        }
        Ok(mayfly_sdk::Auth {
            ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(120),
            ..auth
        })
    }
}

pub(crate) fn core() -> Arc<Core> {
    let mut registry = Registry::default();
    registry.register("cubbyhole", Arc::new(crate::cubbyhole::factory));
    let fake = Arc::new(FakeAuth {
        refuse_renewal: std::sync::atomic::AtomicBool::new(false),
    });
    registry.register(
        "fake",
        Arc::new(move |_| Ok(fake.clone() as Arc<dyn mayfly_sdk::LogicalBackend>)),
    );
    Core::new(
        Arc::new(mayfly_storage::InmemBackend::new()),
        CoreConfig {
            default_lease_ttl: Duration::from_secs(768 * 3600),
            max_lease_ttl: Duration::from_secs(768 * 3600),
            cluster_name: None,
            version: "0.0.0-test".into(),
            registry,
        },
    )
}

pub(crate) fn request(
    operation: Operation,
    path: &str,
    token: Option<&str>,
    data: Value,
) -> Request {
    let mut req = Request::new(operation, path);
    req.client_token = token.map(|t| ClientToken(t.to_owned()));
    if let Value::Object(map) = data {
        req.data = map;
    }
    req
}

pub(crate) async fn unsealed_core() -> (Arc<Core>, String, Vec<UnsealKey>) {
    let core = core();
    let init = core.initialize(3, 2, None).await.unwrap();
    assert!(core.is_sealed());
    for key in &init.keys[..2] {
        core.submit_unseal_key(key).await.unwrap();
    }
    assert!(!core.is_sealed());
    (core, init.root_token, init.keys)
}

#[tokio::test]
async fn root_token_reads_and_writes_cubbyhole() {
    let (core, root, _) = unsealed_core().await;
    assert!(root.starts_with("hvs.") && root.len() == 28, "{root}");
    let write = request(
        Operation::Update,
        "cubbyhole/app",
        Some(&root),
        json!({"pw": "s3cret"}),
    );
    assert!(core.handle_request(write).await.unwrap().is_none());
    let read = core
        .handle_request(request(
            Operation::Read,
            "cubbyhole/app",
            Some(&root),
            json!({}),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.data.unwrap()["pw"], "s3cret");
    let list = core
        .handle_request(request(
            Operation::List,
            "cubbyhole/",
            Some(&root),
            json!({}),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(list.data.unwrap()["keys"], json!(["app"]));
}

#[tokio::test]
async fn missing_or_unknown_tokens_are_denied() {
    let (core, _, _) = unsealed_core().await;
    let no_token = core
        .handle_request(request(Operation::Read, "cubbyhole/x", None, json!({})))
        .await;
    assert!(matches!(no_token, Err(Error::PermissionDenied)));
    let bad = core
        .handle_request(request(
            Operation::Read,
            "cubbyhole/x",
            Some("hvs.nope"),
            json!({}),
        ))
        .await;
    assert!(matches!(bad, Err(Error::InvalidToken)));
    let unknown_mount = core
        .handle_request(request(
            Operation::Read,
            "nowhere/x",
            Some("hvs.nope"),
            json!({}),
        ))
        .await;
    assert!(matches!(unknown_mount, Err(Error::InvalidToken)));
}

#[tokio::test]
async fn sealed_core_answers_only_sealed_safe_routes() {
    let (core, root, keys) = unsealed_core().await;
    core.seal().await;
    let read = core
        .handle_request(request(
            Operation::Read,
            "cubbyhole/x",
            Some(&root),
            json!({}),
        ))
        .await;
    assert!(matches!(read, Err(Error::Sealed)));
    let status = core
        .handle_request(request(Operation::Read, "sys/seal-status", None, json!({})))
        .await
        .unwrap()
        .unwrap();
    let body: Value = serde_json::from_slice(&status.raw.unwrap().body).unwrap();
    assert_eq!(body["sealed"], true);
    assert_eq!(body["t"], 2);
    // The data survives a seal/unseal cycle.
    for key in &keys[1..] {
        core.submit_unseal_key(key).await.unwrap();
    }
    assert!(!core.is_sealed());
}

#[tokio::test]
async fn second_init_is_rejected() {
    let (core, _, _) = unsealed_core().await;
    let again = core.initialize(1, 1, None).await;
    assert!(
        matches!(again, Err(Error::InvalidRequest(msg)) if msg.contains("already initialized"))
    );
}

async fn call(
    core: &Core,
    operation: Operation,
    path: &str,
    token: Option<&str>,
    data: Value,
) -> Result<Option<mayfly_sdk::Response>, Error> {
    core.handle_request(request(operation, path, token, data))
        .await
}

async fn create_token(core: &Core, parent: &str, body: Value) -> (String, String) {
    let response = call(
        core,
        Operation::Update,
        "auth/token/create",
        Some(parent),
        body,
    )
    .await
    .unwrap()
    .unwrap();
    let auth = response.auth.unwrap();
    (auth.client_token, auth.accessor)
}

#[tokio::test]
async fn policies_grant_exactly_what_they_say() {
    let (core, root, _) = unsealed_core().await;
    call(
        &core,
        Operation::Update,
        "sys/policies/acl/mounts-reader",
        Some(&root),
        json!({"policy": "path \"sys/mounts\" { capabilities = [\"read\"] }"}),
    )
    .await
    .unwrap();
    let (token, _) = create_token(&core, &root, json!({"policies": ["mounts-reader"]})).await;
    assert!(
        call(
            &core,
            Operation::Read,
            "sys/mounts",
            Some(&token),
            json!({})
        )
        .await
        .is_ok()
    );
    let denied = call(
        &core,
        Operation::Read,
        "sys/key-status",
        Some(&token),
        json!({}),
    )
    .await;
    assert!(matches!(denied, Err(Error::PermissionDenied)));
    let denied = call(
        &core,
        Operation::Update,
        "sys/mounts/kv",
        Some(&token),
        json!({"type": "kv"}),
    )
    .await;
    assert!(matches!(denied, Err(Error::PermissionDenied)));
    // The default policy lets every token look itself up.
    let me = call(
        &core,
        Operation::Read,
        "auth/token/lookup-self",
        Some(&token),
        json!({}),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        me.data.unwrap()["policies"],
        json!(["default", "mounts-reader"])
    );
    // A syntax error is a 400 naming the position, and changes nothing.
    let bad = call(
        &core,
        Operation::Update,
        "sys/policies/acl/mounts-reader",
        Some(&root),
        json!({"policy": "path \"x\" {\n capabilities = \n}"}),
    )
    .await;
    assert!(matches!(bad, Err(Error::InvalidRequest(msg)) if msg.contains("line")));
    assert!(
        call(
            &core,
            Operation::Read,
            "sys/mounts",
            Some(&token),
            json!({})
        )
        .await
        .is_ok()
    );
}

#[tokio::test]
async fn children_die_with_their_parent_and_use_limits_hold() {
    let (core, root, _) = unsealed_core().await;
    let parent = child_less(&core, &root).await;
    let (child, _) = create_token(&core, &parent, json!({})).await;
    assert!(
        call(
            &core,
            Operation::Read,
            "auth/token/lookup-self",
            Some(&child),
            json!({})
        )
        .await
        .is_ok()
    );
    call(
        &core,
        Operation::Update,
        "auth/token/revoke",
        Some(&root),
        json!({"token": parent}),
    )
    .await
    .unwrap();
    let gone = call(
        &core,
        Operation::Read,
        "auth/token/lookup-self",
        Some(&child),
        json!({}),
    )
    .await;
    assert!(matches!(gone, Err(Error::InvalidToken)));

    let (limited, _) = create_token(&core, &root, json!({"num_uses": 2})).await;
    for _ in 0..2 {
        assert!(
            call(
                &core,
                Operation::Read,
                "auth/token/lookup-self",
                Some(&limited),
                json!({})
            )
            .await
            .is_ok()
        );
    }
    let spent = call(
        &core,
        Operation::Read,
        "auth/token/lookup-self",
        Some(&limited),
        json!({}),
    )
    .await;
    assert!(matches!(spent, Err(Error::InvalidToken)));

    // A non-root token cannot hand out policies it does not have.
    let escalate = call(
        &core,
        Operation::Update,
        "auth/token/create",
        Some(&child_less(&core, &root).await),
        json!({"policies": ["admin"]}),
    )
    .await;
    assert!(matches!(escalate, Err(Error::InvalidRequest(_))));
}

async fn child_less(core: &Core, root: &str) -> String {
    call(
        core,
        Operation::Update,
        "sys/policies/acl/creator",
        Some(root),
        json!({"policy": "path \"auth/token/create\" { capabilities = [\"update\"] }"}),
    )
    .await
    .unwrap();
    create_token(core, root, json!({"policies": ["creator"]}))
        .await
        .0
}

#[tokio::test]
async fn logins_issue_tokens_that_renew_through_their_auth_method() {
    let (core, root, _) = unsealed_core().await;
    call(
        &core,
        Operation::Update,
        "sys/auth/fake",
        Some(&root),
        json!({"type": "fake"}),
    )
    .await
    .unwrap();
    let login = call(
        &core,
        Operation::Update,
        "auth/fake/login",
        None,
        json!({"policies": "web"}),
    )
    .await
    .unwrap()
    .unwrap();
    let auth = login.auth.unwrap();
    assert_eq!(auth.policies, ["default", "web"]);
    assert_eq!(auth.lease_duration, Duration::from_secs(60));
    assert!(
        login
            .warnings
            .iter()
            .any(|w| w.contains("\"web\" does not exist"))
    );
    let token = auth.client_token;
    let renewed = call(
        &core,
        Operation::Update,
        "auth/token/renew-self",
        Some(&token),
        json!({"increment": "1h"}),
    )
    .await
    .unwrap()
    .unwrap();
    // Capped by the auth method's max TTL of two minutes.
    assert!(renewed.auth.unwrap().lease_duration <= Duration::from_secs(120));
    call(
        &core,
        Operation::Update,
        "auth/fake/refuse",
        Some(&root),
        json!({}),
    )
    .await
    .unwrap();
    let refused = call(
        &core,
        Operation::Update,
        "auth/token/renew-self",
        Some(&token),
        json!({}),
    )
    .await;
    assert!(matches!(refused, Err(Error::InvalidRequest(_))));
    // Disabling the auth mount revokes what it issued.
    call(
        &core,
        Operation::Delete,
        "sys/auth/fake",
        Some(&root),
        json!({}),
    )
    .await
    .unwrap();
    let gone = call(
        &core,
        Operation::Read,
        "auth/token/lookup-self",
        Some(&token),
        json!({}),
    )
    .await;
    assert!(matches!(gone, Err(Error::InvalidToken)));
}

#[tokio::test]
async fn wrapped_responses_unwrap_exactly_once() {
    let (core, root, _) = unsealed_core().await;
    let mut wrap = request(
        Operation::Update,
        "sys/wrapping/wrap",
        Some(&root),
        json!({"secret_id": "s3cret"}),
    );
    wrap.wrap_ttl = Some(Duration::from_secs(300));
    let wrapped = core.handle_request(wrap).await.unwrap().unwrap();
    let info = wrapped.wrap_info.unwrap();
    assert!(wrapped.data.is_none());
    assert_eq!(info.creation_path, "sys/wrapping/wrap");
    let lookup = call(
        &core,
        Operation::Update,
        "sys/wrapping/lookup",
        None,
        json!({"token": info.token}),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(lookup.data.unwrap()["creation_ttl"], 300);
    // Unwrapping with the wrapping token itself as the client token.
    let unwrapped = call(
        &core,
        Operation::Update,
        "sys/wrapping/unwrap",
        Some(&info.token),
        json!({}),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(unwrapped.data.unwrap()["secret_id"], "s3cret");
    let again = call(
        &core,
        Operation::Update,
        "sys/wrapping/unwrap",
        Some(&root),
        json!({"token": info.token}),
    )
    .await;
    assert!(matches!(again, Err(Error::InvalidRequest(msg)) if msg.contains("not valid")));
    let unwrap_without_header = call(
        &core,
        Operation::Update,
        "sys/wrapping/wrap",
        Some(&root),
        json!({"a": "b"}),
    )
    .await;
    assert!(matches!(
        unwrap_without_header,
        Err(Error::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn mounts_enable_tune_move_and_disable() {
    let (core, root, _) = unsealed_core().await;
    call(
        &core,
        Operation::Update,
        "sys/mounts/private",
        Some(&root),
        json!({"type": "cubbyhole"}),
    )
    .await
    .expect_err("a second cubbyhole is refused");
    call(
        &core,
        Operation::Update,
        "sys/auth/people",
        Some(&root),
        json!({"type": "fake", "config": {"default_lease_ttl": "1h"}}),
    )
    .await
    .unwrap();
    let conflict = call(
        &core,
        Operation::Update,
        "sys/auth/people",
        Some(&root),
        json!({"type": "fake"}),
    )
    .await;
    assert!(matches!(conflict, Err(Error::InvalidRequest(_))));
    let tune = call(
        &core,
        Operation::Read,
        "sys/auth/people/tune",
        Some(&root),
        json!({}),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(tune.data.unwrap()["default_lease_ttl"], 3600);
    call(
        &core,
        Operation::Update,
        "sys/auth/people/tune",
        Some(&root),
        json!({"max_lease_ttl": "2h", "description": "humans"}),
    )
    .await
    .unwrap();
    let listed = call(&core, Operation::Read, "sys/auth", Some(&root), json!({}))
        .await
        .unwrap()
        .unwrap();
    let people = &listed.data.unwrap()["people/"];
    assert_eq!(people["config"]["max_lease_ttl"], 7200);
    assert_eq!(people["description"], "humans");
    call(
        &core,
        Operation::Update,
        "sys/remount",
        Some(&root),
        json!({"from": "auth/people", "to": "auth/humans"}),
    )
    .await
    .unwrap();
    assert!(
        call(
            &core,
            Operation::Update,
            "auth/humans/login",
            None,
            json!({"policies": "x"})
        )
        .await
        .is_ok()
    );
    // The table survives a seal/unseal cycle.
    core.seal().await;
    assert!(core.is_sealed());
}

#[tokio::test]
async fn password_policies_are_stored_validated_and_generate() {
    let (core, root, _) = unsealed_core().await;
    let policy = "length = 12\nrule \"charset\" {\n  charset = \"abc\"\n  min-chars = 2\n}\n\
                  rule \"charset\" {\n  charset = \"0123456789\"\n  min-chars = 3\n}";
    let write = |body: Value| {
        call(
            &core,
            Operation::Update,
            "sys/policies/password/p1",
            Some(&root),
            body,
        )
    };
    assert!(
        matches!(write(json!({})).await, Err(Error::InvalidRequest(m)) if m == "missing policy")
    );
    let bad = write(
        json!({"policy": "length = 2\nrule \"charset\" { charset = \"a\"\n min-chars = 3 }"}),
    )
    .await;
    assert!(
        matches!(bad, Err(Error::InvalidRequest(m)) if m.starts_with("invalid password policy"))
    );
    write(json!({"policy": policy})).await.unwrap();

    let read = call(
        &core,
        Operation::Read,
        "sys/policies/password/p1",
        Some(&root),
        json!({}),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(read.data.unwrap()["policy"], policy);
    let generated = call(
        &core,
        Operation::Read,
        "sys/policies/password/p1/generate",
        Some(&root),
        json!({}),
    )
    .await
    .unwrap()
    .unwrap();
    let password = generated.data.unwrap()["password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(password.len(), 12);
    assert!(password.chars().filter(char::is_ascii_digit).count() >= 3);
    let listed = call(
        &core,
        Operation::List,
        "sys/policies/password",
        Some(&root),
        json!({}),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(listed.data.unwrap()["keys"], json!(["p1"]));

    let system = core.system_view();
    assert_eq!(
        system.generate_password(Some("p1")).await.unwrap().len(),
        12
    );
    assert_eq!(system.generate_password(None).await.unwrap().len(), 20);
    assert!(matches!(
        system.generate_password(Some("nope")).await,
        Err(Error::InvalidRequest(_))
    ));

    call(
        &core,
        Operation::Delete,
        "sys/policies/password/p1",
        Some(&root),
        json!({}),
    )
    .await
    .unwrap();
    let gone = call(
        &core,
        Operation::Read,
        "sys/policies/password/p1/generate",
        Some(&root),
        json!({}),
    )
    .await;
    assert!(matches!(gone, Err(Error::Coded { status: 404, .. })));
}

/// A backend that records its lifecycle and echoes what the router told it.
#[derive(Default)]
struct Probe {
    initialized: std::sync::atomic::AtomicUsize,
    cleaned: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl mayfly_sdk::LogicalBackend for Probe {
    async fn handle(&self, req: Request) -> mayfly_sdk::Result<Option<mayfly_sdk::Response>> {
        let password = req.system()?.generate_password(None).await?;
        Ok(Some(mayfly_sdk::Response::from_value(
            json!({"display_name": req.display_name, "password_len": password.len()}),
        )))
    }

    async fn initialize(&self, ctx: mayfly_sdk::MountContext) -> mayfly_sdk::Result<()> {
        ctx.storage.put("seen", b"1").await?;
        self.initialized
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    async fn cleanup(&self) {
        self.cleaned
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn mounts_are_initialized_and_cleaned_up_and_see_the_system() {
    use std::sync::atomic::Ordering::SeqCst;
    let probe = Arc::new(Probe::default());
    let mut registry = Registry::default();
    registry.register("cubbyhole", Arc::new(crate::cubbyhole::factory));
    let shared = probe.clone();
    registry.register(
        "probe",
        Arc::new(move |_| Ok(shared.clone() as Arc<dyn mayfly_sdk::LogicalBackend>)),
    );
    let storage = Arc::new(mayfly_storage::InmemBackend::new());
    let core = Core::new(
        storage,
        CoreConfig {
            default_lease_ttl: Duration::from_secs(3600),
            max_lease_ttl: Duration::from_secs(7200),
            cluster_name: None,
            version: "test".into(),
            registry,
        },
    );
    let init = core.initialize(1, 1, None).await.unwrap();
    core.submit_unseal_key(&init.keys[0]).await.unwrap();
    let root = init.root_token;
    call(
        &core,
        Operation::Update,
        "sys/mounts/p",
        Some(&root),
        json!({"type": "probe"}),
    )
    .await
    .unwrap();
    assert_eq!(probe.initialized.load(SeqCst), 1);
    let out = call(&core, Operation::Read, "p/x", Some(&root), json!({}))
        .await
        .unwrap()
        .unwrap()
        .data
        .unwrap();
    assert_eq!(out["display_name"], "root");
    assert_eq!(out["password_len"], 20);

    core.seal().await;
    assert_eq!(probe.cleaned.load(SeqCst), 1);
    core.submit_unseal_key(&init.keys[0]).await.unwrap();
    assert_eq!(
        probe.initialized.load(SeqCst),
        2,
        "initialized again after unseal"
    );
    call(
        &core,
        Operation::Delete,
        "sys/mounts/p",
        Some(&root),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(probe.cleaned.load(SeqCst), 2);
}
