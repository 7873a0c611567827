//! Engine tests: each plugin's conformance run, and the engine's paths, leases, intents and
//! root rotation against the real local servers, on in-memory storage.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock, Weak},
    time::Duration,
};

use mayfly_sdk::{
    Error, LogicalBackend, MountContext, MountTtls, Operation, Request, Response, SecretLease,
    Storage, StorageChange, StorageExt, SystemView,
    system::StaticSystemView,
    testing::{MemoryStorage, request},
};
use serde_json::{Value, json};

use crate::{
    DatabaseBackend, Settings,
    intent::{self, Intent, IntentState, unix_now},
    plugin::{MySql, MySqlFlavor, Postgres, Redis},
    rotate_root::{RootRotationWal, WAL_PREFIX},
    state::DbConfig,
    testing::{TestDatabase, TestMySql, TestPostgres, TestRedis, exercise_db_plugin, unique},
};

/// Runs `body` and then the database's teardown, even if `body` panicked.
async fn with_db<D, F, Fut>(db: D, body: F)
where
    D: TestDatabase + 'static,
    F: FnOnce(Arc<D>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let db = Arc::new(db);
    let outcome = tokio::spawn(body(db.clone())).await;
    db.teardown().await;
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

#[tokio::test]
async fn postgres_conformance() {
    with_db(TestPostgres::start().await, |db| async move {
        exercise_db_plugin(&Postgres::new(), db.as_ref()).await;
    })
    .await;
}

#[tokio::test]
async fn mysql_conformance() {
    with_db(TestMySql::start().await, |db| async move {
        exercise_db_plugin(&MySql::new(MySqlFlavor::Current), db.as_ref()).await;
    })
    .await;
}

#[tokio::test]
async fn redis_conformance() {
    with_db(TestRedis::start().await, |db| async move {
        exercise_db_plugin(&Redis::new(), db.as_ref()).await;
    })
    .await;
}

/// The core's part in leases, for engine tests: registering a lease commits the engine's
/// writes at once, and revoking one runs the engine's revoke handler and commits its writes.
struct LeaseKeeper {
    passwords: StaticSystemView,
    storage: Arc<MemoryStorage>,
    backend: OnceLock<Weak<DatabaseBackend>>,
    leases: Mutex<HashMap<String, SecretLease>>,
}

impl LeaseKeeper {
    fn new(storage: Arc<MemoryStorage>, passwords: StaticSystemView) -> Arc<LeaseKeeper> {
        Arc::new(LeaseKeeper {
            passwords,
            storage,
            backend: OnceLock::new(),
            leases: Mutex::new(HashMap::new()),
        })
    }

    async fn apply(&self, changes: Vec<StorageChange>) -> Result<(), Error> {
        for change in changes {
            match change {
                StorageChange::Put { key, value } => self.storage.put(&key, &value).await?,
                StorageChange::Delete { key } => self.storage.delete(&key).await?,
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl SystemView for LeaseKeeper {
    async fn generate_password(&self, policy: Option<&str>) -> Result<String, Error> {
        self.passwords.generate_password(policy).await
    }

    async fn register_lease(
        &self,
        req: &Request,
        secret: &mut SecretLease,
    ) -> Result<Vec<String>, Error> {
        self.passwords.register_lease(req, secret).await?;
        self.apply(std::mem::take(&mut secret.commit_with_lease))
            .await?;
        self.leases
            .lock()
            .unwrap()
            .insert(secret.lease_id.clone(), secret.clone());
        Ok(Vec::new())
    }

    async fn revoke_lease(&self, lease_id: &str) -> Result<(), Error> {
        let Some(secret) = self.leases.lock().unwrap().get(lease_id).cloned() else {
            return Ok(());
        };
        let backend = self
            .backend
            .get()
            .and_then(Weak::upgrade)
            .ok_or(Error::Sealed)?;
        let req = request(
            Operation::Revoke,
            "database/",
            "creds/x",
            json!({}),
            self.storage.clone(),
        );
        let changes = backend.revoke_secret(req, secret).await?;
        self.apply(changes).await?;
        self.leases.lock().unwrap().remove(lease_id);
        Ok(())
    }
}

/// A mounted engine on in-memory storage, as the router would drive it.
struct Mount {
    backend: Arc<DatabaseBackend>,
    storage: Arc<MemoryStorage>,
    system: Arc<LeaseKeeper>,
}

impl Mount {
    async fn new() -> Mount {
        Mount::with_passwords(StaticSystemView::new()).await
    }

    async fn with_passwords(passwords: StaticSystemView) -> Mount {
        Mount::on(MemoryStorage::new(), passwords).await
    }

    /// The engine mounted afresh on existing storage, as after a restart.
    async fn on(storage: Arc<MemoryStorage>, passwords: StaticSystemView) -> Mount {
        let backend = Arc::new(DatabaseBackend::new(Settings {
            reconcile_interval: Duration::from_secs(3600),
            expiry_grace: Duration::ZERO,
            rotation_tick: Duration::from_millis(500),
        }));
        let system = LeaseKeeper::new(storage.clone(), passwords);
        let _ = system.backend.set(Arc::downgrade(&backend));
        backend
            .initialize(MountContext {
                mount_point: "database/".into(),
                storage: storage.clone(),
                system: system.clone(),
            })
            .await
            .unwrap();
        Mount {
            backend,
            storage,
            system,
        }
    }

    fn request(&self, operation: Operation, path: &str, data: Value) -> Request {
        let mut req = request(operation, "database/", path, data, self.storage.clone());
        req.system = Some(self.system.clone());
        req.display_name = "token".into();
        req.mount_ttls = MountTtls {
            default_lease_ttl: Duration::from_secs(3600),
            max_lease_ttl: Duration::from_secs(86400),
        };
        req
    }

    async fn call(
        &self,
        operation: Operation,
        path: &str,
        data: Value,
    ) -> Result<Option<Response>, Error> {
        self.backend
            .handle(self.request(operation, path, data))
            .await
    }

    async fn write(&self, path: &str, data: Value) {
        let exists = self
            .backend
            .exists(&self.request(Operation::Update, path, json!({})))
            .await;
        let operation = if matches!(exists, Ok(Some(false))) {
            Operation::Create
        } else {
            Operation::Update
        };
        self.call(operation, path, data)
            .await
            .unwrap_or_else(|err| panic!("write {path}: {err}"));
    }

    async fn read(&self, path: &str) -> Value {
        let response = self
            .call(Operation::Read, path, json!({}))
            .await
            .unwrap_or_else(|err| panic!("read {path}: {err}"))
            .unwrap_or_else(|| panic!("read {path}: nothing"));
        Value::Object(response.data.unwrap_or_default())
    }

    /// Reads credentials; returns the data and the lease.
    async fn creds(&self, role: &str) -> (String, String, SecretLease) {
        let response = self
            .call(Operation::Read, &format!("creds/{role}"), json!({}))
            .await
            .unwrap_or_else(|err| panic!("creds/{role}: {err}"))
            .expect("credentials");
        let data = response.data.expect("data");
        let secret = response.secret.expect("a lease");
        assert!(
            !secret.lease_id.is_empty(),
            "the engine registered the lease"
        );
        (
            data["username"].as_str().unwrap().to_owned(),
            data["password"].as_str().unwrap().to_owned(),
            secret,
        )
    }

    async fn renew(&self, secret: SecretLease, increment: u64) -> Result<Option<Response>, Error> {
        let req = self.request(Operation::Renew, "creds/x", json!({"increment": increment}));
        self.backend.renew_secret(req, secret).await
    }

    /// Revokes, and commits the writes the engine asked to go with the lease's deletion.
    async fn revoke(&self, secret: SecretLease) -> Result<(), Error> {
        let req = self.request(Operation::Revoke, "creds/x", json!({}));
        let changes = self.backend.revoke_secret(req, secret).await?;
        self.system.apply(changes).await
    }

    async fn stored_config(&self, name: &str) -> DbConfig {
        self.storage
            .get_json(&format!("config/{name}"))
            .await
            .unwrap()
            .unwrap()
    }

    async fn intents(&self) -> Vec<Intent> {
        let mut out = Vec::new();
        for id in self.storage.list(intent::INTENT_PREFIX).await.unwrap() {
            out.push(
                intent::load(self.storage.as_ref(), &id)
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        out
    }
}

const SEED_CREATION: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID \
    UNTIL '{{expiration}}'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\";";

/// An engine with connection `pg` to `db` allowing every role, and role `role` with the
/// seed's creation statement.
async fn seeded_postgres(db: &TestPostgres, role: &str) -> Mount {
    let mount = Mount::new().await;
    configure_postgres(&mount, db, "pg", "*").await;
    mount
        .write(
            &format!("roles/{role}"),
            json!({"db_name": "pg", "creation_statements": SEED_CREATION}),
        )
        .await;
    mount
}

async fn configure_postgres(mount: &Mount, db: &TestPostgres, name: &str, roles: &str) {
    mount
        .write(
            &format!("config/{name}"),
            json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": db.connection_url(),
                "username": "postgres",
                "password": "root-secret-pw",
                "allowed_roles": roles,
            }),
        )
        .await;
}

#[tokio::test]
async fn connections_are_configured_like_vault() {
    let mount = Mount::new().await;
    let missing = mount
        .call(
            Operation::Create,
            "config/x",
            json!({"connection_url": "x"}),
        )
        .await;
    assert!(matches!(missing, Err(Error::InvalidRequest(m)) if m == "empty plugin name"));
    let unknown = mount
        .call(
            Operation::Create,
            "config/x",
            json!({"plugin_name": "nope-plugin"}),
        )
        .await;
    assert!(matches!(unknown, Err(Error::InvalidRequest(m))
        if m.starts_with("error creating database object: invalid database version: plugin not found")));
    let unreachable = mount
        .call(
            Operation::Create,
            "config/x",
            json!({"plugin_name": "postgresql-database-plugin",
                   "connection_url": "postgresql://u:p@127.0.0.1:1/x?connect_timeout=2"}),
        )
        .await;
    assert!(
        matches!(unreachable, Err(Error::InvalidRequest(m)) if m.starts_with("error creating database object:"))
    );

    mount
        .write(
            "config/pg",
            json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:1/x",
                "username": "admin",
                "password": "never-shown",
                "allowed_roles": "ro, my-*",
                "verify_connection": false,
                "max_open_connections": 7,
                "root_rotation_statements": "ALTER ROLE \"{{username}}\" PASSWORD '{{password}}'",
            }),
        )
        .await;
    let read = mount.read("config/pg").await;
    assert_eq!(
        read,
        json!({
            "allowed_roles": ["ro", "my-*"],
            "connection_details": {
                "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:1/x",
                "max_open_connections": 7,
                "username": "admin",
            },
            "password_policy": "",
            "plugin_name": "postgresql-database-plugin",
            "plugin_version": "",
            "root_credentials_rotate_statements": ["ALTER ROLE \"{{username}}\" PASSWORD '{{password}}'"],
            "verify_connection": false,
        })
    );
    assert!(!read.to_string().contains("never-shown"));

    // An update merges connection details and keeps what it does not mention.
    mount
        .write(
            "config/pg",
            json!({"max_open_connections": 2, "verify_connection": false}),
        )
        .await;
    let read = mount.read("config/pg").await;
    assert_eq!(read["connection_details"]["max_open_connections"], 2);
    assert_eq!(read["allowed_roles"], json!(["ro", "my-*"]));
    assert_eq!(
        mount.stored_config("pg").await.root_password().as_deref(),
        Some("never-shown")
    );

    let literal = mount
        .call(
            Operation::Update,
            "config/lit",
            json!({"plugin_name": "postgresql-database-plugin", "verify_connection": false,
                   "connection_url": "postgresql://admin:hunter22@127.0.0.1:1/x"}),
        )
        .await
        .unwrap()
        .expect("a warning");
    assert!(literal.warnings[0].starts_with("Password found in connection_url"));
    assert_eq!(
        mount.read("config/lit").await["connection_details"]["connection_url"],
        "postgresql://admin:xxxxx@127.0.0.1:1/x"
    );

    let listed = mount
        .call(Operation::List, "config", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed.data.unwrap()["keys"], json!(["lit", "pg"]));
    mount
        .call(Operation::Delete, "config/pg", json!({}))
        .await
        .unwrap();
    assert!(
        mount
            .call(Operation::Read, "config/pg", json!({}))
            .await
            .unwrap()
            .is_none()
    );
    let reset = mount.call(Operation::Update, "reset/pg", json!({})).await;
    assert!(
        matches!(reset, Err(Error::Coded { status: 500, message }) if message.contains("failed to find entry"))
    );
}

#[tokio::test]
async fn role_writes_and_deletes_reach_the_role_cache() {
    let mount = Mount::new().await;
    let cached = || async {
        mount
            .backend
            .state
            .roles
            .load(mount.storage.as_ref(), "r")
            .await
            .unwrap()
    };
    mount
        .write(
            "roles/r",
            json!({"db_name": "d", "creation_statements": "x", "default_ttl": 60}),
        )
        .await;
    assert_eq!(cached().await.unwrap().default_ttl, 60);
    mount.write("roles/r", json!({"default_ttl": 120})).await;
    assert_eq!(cached().await.unwrap().default_ttl, 120);
    // Storage changed behind the engine's back is not seen: the cache answers.
    let mut edited = crate::role::load(mount.storage.as_ref(), "r")
        .await
        .unwrap()
        .unwrap();
    edited.default_ttl = 7;
    mount.storage.put_json("role/r", &edited).await.unwrap();
    assert_eq!(cached().await.unwrap().default_ttl, 120);
    mount
        .call(Operation::Delete, "roles/r", json!({}))
        .await
        .unwrap();
    assert!(cached().await.is_none());
}

#[tokio::test]
async fn roles_are_stored_like_vault() {
    let mount = Mount::new().await;
    let no_db = mount
        .call(
            Operation::Create,
            "roles/r",
            json!({"creation_statements": "x"}),
        )
        .await;
    assert!(matches!(no_db, Err(Error::InvalidRequest(m)) if m == "database name is required"));
    let bad_type = mount
        .call(
            Operation::Create,
            "roles/r",
            json!({"db_name": "d", "credential_type": "bogus"}),
        )
        .await;
    assert!(
        matches!(bad_type, Err(Error::InvalidRequest(m)) if m == "invalid credential_type \"bogus\"")
    );
    mount
        .write(
            "roles/r",
            json!({"db_name": "d", "creation_statements": "CREATE x; GRANT y;",
                   "default_ttl": "1h", "max_ttl": 86400,
                   "credential_config": {"password_policy": "p"}}),
        )
        .await;
    assert_eq!(
        mount.read("roles/r").await,
        json!({
            "creation_statements": ["CREATE x; GRANT y;"],
            "credential_config": {"password_policy": "p"},
            "credential_type": "password",
            "db_name": "d",
            "default_ttl": 3600,
            "max_ttl": 86400,
            "renew_statements": [],
            "revocation_statements": [],
            "rollback_statements": [],
        })
    );
    mount
        .write(
            "roles/r",
            json!({"revocation_statements": ["DROP x", "DROP y"]}),
        )
        .await;
    let read = mount.read("roles/r").await;
    assert_eq!(read["revocation_statements"], json!(["DROP x", "DROP y"]));
    assert_eq!(
        read["default_ttl"], 3600,
        "an update keeps what it does not mention"
    );
    let listed = mount
        .call(Operation::List, "roles", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed.data.unwrap()["keys"], json!(["r"]));
    mount
        .call(Operation::Delete, "roles/r", json!({}))
        .await
        .unwrap();
    assert!(
        mount
            .call(Operation::Read, "roles/r", json!({}))
            .await
            .unwrap()
            .is_none()
    );
    let unknown = mount.call(Operation::Read, "creds/r", json!({})).await;
    assert!(matches!(unknown, Err(Error::InvalidRequest(m)) if m == "unknown role: r"));
}

#[tokio::test]
async fn postgres_credentials_live_renew_and_die_with_their_lease() {
    with_db(TestPostgres::start().await, |db| async move {
        let mount = Mount::new().await;
        configure_postgres(&mount, &db, "pg", "readonly,other-*").await;
        mount
            .write(
                "roles/readonly",
                json!({"db_name": "pg", "creation_statements": SEED_CREATION,
                       "default_ttl": "10m", "max_ttl": "1h"}),
            )
            .await;
        let (username, password, lease) = mount.creds("readonly").await;
        let parts: Vec<&str> = username.split('-').collect();
        assert_eq!(&parts[..3], ["v", "token", "readonly"], "{username}");
        assert_eq!(parts[3].len(), 20);
        assert!(username.len() <= 63);
        assert_eq!(password.len(), 20);
        assert_eq!(lease.ttl, Duration::from_secs(600));
        assert_eq!(lease.max_ttl, Duration::from_secs(3600));
        assert!(lease.renewable);
        assert_eq!(lease.secret_type, "creds");
        for key in ["username", "role", "db_name", "revocation_statements"] {
            assert!(lease.internal_data.contains_key(key), "{key}");
        }
        assert!(db.password_works(&username, &password).await);
        let can_select = db
            .client
            .query_one(
                "SELECT has_table_privilege($1, 't7', 'SELECT')",
                &[&username],
            )
            .await
            .unwrap();
        assert!(can_select.get::<_, bool>(0), "the grant ran");
        let first_expiry = db.expiration(&username).await.expect("VALID UNTIL");
        let mut states: Vec<IntentState> = mount.intents().await.iter().map(|i| i.state).collect();
        states.sort_by_key(|state| *state == IntentState::Pending);
        assert_eq!(
            states,
            [IntentState::Issued, IntentState::Pending],
            "the credential's record and the next one's reservation"
        );

        let renewed = mount.renew(lease.clone(), 1800).await.unwrap().unwrap();
        assert_eq!(renewed.secret.unwrap().ttl, Duration::from_secs(1800));
        let renewed_expiry = db.expiration(&username).await.unwrap();
        assert!(renewed_expiry > first_expiry + Duration::from_secs(1000), "VALID UNTIL moved");
        let capped = mount.renew(lease.clone(), 7200).await.unwrap().unwrap();
        assert!(capped.secret.unwrap().ttl <= Duration::from_secs(3600));
        assert_eq!(capped.warnings.len(), 1, "capped at the role's max_ttl");

        // A role deleted after issue does not strand its users.
        mount.call(Operation::Delete, "roles/readonly", json!({})).await.unwrap();
        mount.revoke(lease.clone()).await.unwrap();
        assert!(!db.user_exists(&username).await);
        mount.revoke(lease).await.expect("revoking twice succeeds");
        assert!(mount.intents().await.is_empty());

        mount
            .write("roles/denied", json!({"db_name": "pg", "creation_statements": SEED_CREATION}))
            .await;
        let denied = mount.call(Operation::Read, "creds/denied", json!({})).await;
        assert!(matches!(denied, Err(Error::Coded { status: 500, message }) if message == "\"denied\" is not an allowed role"));
    })
    .await;
}

#[tokio::test]
async fn revocation_reassigns_objects_and_drops_the_role() {
    with_db(TestPostgres::start().await, |db| async move {
        let mount = Mount::new().await;
        configure_postgres(&mount, &db, "pg", "*").await;
        db.client
            .batch_execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
            .await
            .unwrap();
        mount
            .write(
                "roles/owner",
                json!({"db_name": "pg", "creation_statements": SEED_CREATION}),
            )
            .await;
        let (username, _, lease) = mount.creds("owner").await;
        // The user creates a table of its own: plain DROP ROLE would fail on it.
        db.client
            .batch_execute(&format!(
                "SET ROLE \"{username}\"; CREATE TABLE owned_by_user (x int); RESET ROLE;"
            ))
            .await
            .unwrap();
        mount.revoke(lease).await.unwrap();
        assert!(!db.user_exists(&username).await);
        let owner: String = db
            .client
            .query_one(
                "SELECT tableowner::text FROM pg_tables WHERE tablename = 'owned_by_user'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            owner, "postgres",
            "the table survives, owned by the connecting user"
        );
    })
    .await;
}

#[tokio::test]
async fn a_group_member_is_dropped_without_rewriting_the_tables() {
    with_db(TestPostgres::start().await, |db| async move {
        let group = unique("mayfly_g");
        db.client
            .batch_execute(&format!(
                "CREATE ROLE {group} NOLOGIN; GRANT SELECT ON t0 TO {group}"
            ))
            .await
            .unwrap();
        let mount = Mount::new().await;
        configure_postgres(&mount, &db, "pg", "*").await;
        mount
            .write(
                "roles/member",
                json!({"db_name": "pg", "creation_statements":
                    format!("CREATE ROLE \"{{{{name}}}}\" WITH LOGIN PASSWORD '{{{{password}}}}' \
                             VALID UNTIL '{{{{expiration}}}}' IN ROLE {group};")}),
            )
            .await;
        let (username, _, lease) = mount.creds("member").await;
        let privilege = |role: String| {
            let client = &db.client;
            async move {
                client
                    .query_one("SELECT has_table_privilege($1, 't0', 'SELECT')", &[&role])
                    .await
                    .unwrap()
                    .get::<_, bool>(0)
            }
        };
        assert!(privilege(username.clone()).await, "through the group");
        // A table's catalog row gets a new version whenever a REVOKE rewrites its ACL.
        let row_version =
            || db.scalar::<String>("SELECT xmin::text FROM pg_class WHERE relname = 't0'");
        let before = row_version().await;
        mount.revoke(lease.clone()).await.unwrap();
        assert!(!db.user_exists(&username).await);
        assert!(privilege(group.clone()).await, "the group keeps its grant");
        assert_eq!(
            row_version().await,
            before,
            "a user that holds nothing itself is dropped without revoking on every table"
        );
        mount.revoke(lease).await.expect("revoking twice succeeds");
    })
    .await;
}

/// Makes `username` own a table in a new sibling database, which keeps its role from being
/// dropped from the test database; returns the sibling's name and a client of it.
async fn owned_elsewhere(db: &TestPostgres, username: &str) -> (String, tokio_postgres::Client) {
    let (sibling, other) = db.create_sibling().await;
    other
        .batch_execute(&format!(
            "GRANT CREATE ON SCHEMA public TO \"{username}\"; SET ROLE \"{username}\"; \
             CREATE TABLE elsewhere (x int); RESET ROLE;"
        ))
        .await
        .unwrap();
    (sibling, other)
}

#[tokio::test]
async fn a_failed_postgres_revocation_still_takes_access_away() {
    with_db(TestPostgres::start().await, |db| async move {
        let mount = seeded_postgres(&db, "r").await;
        let (username, _, lease) = mount.creds("r").await;
        let can_select = || async {
            db.client
                .query_one(
                    "SELECT has_table_privilege($1, 't0', 'SELECT')",
                    &[&username],
                )
                .await
                .unwrap()
                .get::<_, bool>(0)
        };
        assert!(can_select().await);
        // What the user holds in another database survives DROP OWNED here, so DROP ROLE
        // fails, and with it the single transaction the revocation tries first.
        let (sibling, other) = owned_elsewhere(&db, &username).await;
        let failed = mount.revoke(lease.clone()).await;
        assert!(failed.is_err(), "{failed:?}");
        assert!(db.user_exists(&username).await);
        assert!(
            !can_select().await,
            "the statements run one by one took the grants away all the same"
        );
        drop(other);
        db.drop_database(&sibling).await;
        mount.revoke(lease).await.unwrap();
        assert!(!db.user_exists(&username).await);
    })
    .await;
}

#[tokio::test]
async fn a_revocation_that_fails_in_a_batch_fails_alone() {
    with_db(TestPostgres::start().await, |db| async move {
        let mount = seeded_postgres(&db, "r").await;
        let mut issued = Vec::new();
        for _ in 0..6 {
            issued.push(mount.creds("r").await);
        }
        // The third user owns a table in another database, which keeps its role from being
        // dropped from this one.
        let stuck = issued[2].0.clone();
        let (sibling, other) = owned_elsewhere(&db, &stuck).await;
        let outcomes = crate::testing::join_all(
            issued
                .iter()
                .map(|(_, _, lease)| mount.revoke(lease.clone()))
                .collect(),
        )
        .await;
        for ((username, _, _), outcome) in issued.iter().zip(&outcomes) {
            if *username == stuck {
                assert!(outcome.is_err(), "{username}: {outcome:?}");
                assert!(db.user_exists(username).await);
                let can_select: bool = db
                    .scalar(&format!(
                        "SELECT has_table_privilege('{username}', 't0', 'SELECT')"
                    ))
                    .await;
                assert!(!can_select, "its grants are gone all the same");
            } else {
                assert!(outcome.is_ok(), "{username}: {outcome:?}");
                assert!(!db.user_exists(username).await, "{username} is gone");
            }
        }
        drop(other);
        db.drop_database(&sibling).await;
        mount.revoke(issued[2].2.clone()).await.unwrap();
        assert!(!db.user_exists(&stuck).await);
    })
    .await;
}

#[tokio::test]
async fn failed_creation_leaves_nothing_behind() {
    with_db(TestMySql::start().await, |db| async move {
        let mount = Mount::new().await;
        mount
            .write(
                "config/my",
                json!({"plugin_name": "mysql-database-plugin",
                       "connection_url": db.connection_url(),
                       "username": db.admin_user, "password": db.admin_password,
                       "allowed_roles": "*",
                       "username_template": "{{ printf \"vt_%s_%s\" (.RoleName | truncate 8) (random 12) }}"}),
            )
            .await;
        let failing = "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'; \
                       GRANT SELECT ON no_such_db.no_table TO '{{name}}'@'%';";
        // With rollback statements, and without: MySQL commits CREATE USER on its own, so the
        // engine's revocation after the failure is what removes it in the second case.
        let prefix = unique("vt");
        let role_a = format!("{}a", &prefix[3..8]);
        let role_b = format!("{}b", &prefix[3..8]);
        mount
            .write(
                &format!("roles/{role_a}"),
                json!({"db_name": "my", "creation_statements": failing,
                       "rollback_statements": "DROP USER IF EXISTS '{{name}}'@'%'"}),
            )
            .await;
        mount
            .write(&format!("roles/{role_b}"), json!({"db_name": "my", "creation_statements": failing}))
            .await;
        for role in [&role_a, &role_b] {
            let failed = mount.call(Operation::Read, &format!("creds/{role}"), json!({})).await;
            assert!(matches!(failed, Err(Error::Coded { status: 500, .. })), "{failed:?}");
            assert!(db.users_like(&format!("vt_{role}")).await.is_empty(), "{role}: nothing left");
        }
        for intent in mount.intents().await {
            assert_eq!(intent.state, IntentState::Pending, "no issued intent left");
            assert!(!db.user_exists(&intent.username).await, "a reservation, not a user");
        }

        mount
            .write(
                "roles/works",
                json!({"db_name": "my",
                       "creation_statements": "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';"}),
            )
            .await;
        let (username, password, lease) = mount.creds("works").await;
        assert!(username.starts_with("vt_works_"));
        assert!(db.login(&username, &password).await);
        mount.revoke(lease).await.unwrap();
        assert!(!db.login(&username, &password).await);
        assert!(!db.user_exists(&username).await);
    })
    .await;
}

#[tokio::test]
async fn redis_users_are_acl_users() {
    with_db(TestRedis::start().await, |db| async move {
        let mount = Mount::new().await;
        mount
            .write(
                "config/cache",
                json!({"plugin_name": "redis-database-plugin", "host": db.host, "port": db.port,
                       "username": db.admin_user, "password": db.admin_password,
                       "allowed_roles": "reader"}),
            )
            .await;
        assert!(
            mount.read("config/cache").await["connection_details"]
                .get("password")
                .is_none()
        );
        mount
            .write(
                "roles/reader",
                json!({"db_name": "cache", "creation_statements": "[\"~app:*\", \"+@read\"]"}),
            )
            .await;
        let (username, password, lease) = mount.creds("reader").await;
        assert!(username.starts_with("V_TOKEN_READER_"), "{username}");
        assert!(db.login(&username, &password).await);
        mount.revoke(lease).await.unwrap();
        assert!(!db.login(&username, &password).await);
        assert!(!db.user_exists(&username).await);
    })
    .await;
}

#[tokio::test]
async fn reconciliation_drops_users_no_lease_covers() {
    with_db(TestPostgres::start().await, |db| async move {
        let mount = Mount::new().await;
        configure_postgres(&mount, &db, "pg", "*").await;
        let make = |state: IntentState, expires_at: u64| {
            let username = unique("v_orphan");
            Intent {
                version: 1,
                id: mayfly_sdk::password::random_uuid(),
                state,
                db_name: "pg".into(),
                role: "r".into(),
                username,
                revocation_statements: Vec::new(),
                created_at: unix_now(),
                expires_at,
                boot: String::new(),
            }
        };
        // A crash after the user was created and before the response: pending.
        let orphan = make(IntentState::Pending, 0);
        // Issued but its expiry passed and nothing revoked it (lease lost).
        let expired = make(IntentState::Issued, unix_now() - 5);
        // Issued and still valid: kept.
        let live = make(IntentState::Issued, unix_now() + 3600);
        for intent in [&orphan, &expired, &live] {
            db.client
                .batch_execute(&format!("CREATE ROLE \"{}\" LOGIN", intent.username))
                .await
                .unwrap();
            intent::put(mount.storage.as_ref(), intent).await.unwrap();
        }
        let report = mount.backend.reconcile().await.unwrap();
        assert_eq!(
            (
                report.orphans_dropped,
                report.expired_dropped,
                report.failed
            ),
            (1, 1, 0)
        );
        assert!(!db.user_exists(&orphan.username).await);
        assert!(!db.user_exists(&expired.username).await);
        assert!(db.user_exists(&live.username).await);
        assert_eq!(mount.intents().await, std::slice::from_ref(&live));
        db.client
            .batch_execute(&format!("DROP ROLE \"{}\"", live.username))
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn each_lease_reserves_the_next_username_and_a_crash_leaves_no_reserved_user() {
    with_db(TestPostgres::start().await, |db| async move {
        let mount = seeded_postgres(&db, "r").await;
        let pending = |intents: Vec<Intent>| -> Vec<Intent> {
            intents
                .into_iter()
                .filter(|i| i.state == IntentState::Pending)
                .collect()
        };
        let (first, _, first_lease) = mount.creds("r").await;
        let [reserved] = &pending(mount.intents().await)[..] else {
            panic!("one reservation after the first credential");
        };
        assert_ne!(reserved.username, first);
        assert!(
            !db.user_exists(&reserved.username).await,
            "reserved, not created"
        );

        let (second, password, second_lease) = mount.creds("r").await;
        assert_eq!(
            second, reserved.username,
            "the next credential takes the reservation"
        );
        assert!(db.password_works(&second, &password).await);
        let issued = mount.intents().await;
        let second_record = issued.iter().find(|i| i.username == second).unwrap();
        assert_eq!(second_record.state, IntentState::Issued);
        let [next] = &pending(issued.clone())[..] else {
            panic!("one reservation after the second credential");
        };

        // A crash after the reserved user was created and before its lease committed: the
        // user exists, only the pending record covers it.
        db.client
            .batch_execute(&format!("CREATE ROLE \"{}\" LOGIN", next.username))
            .await
            .unwrap();
        let storage = mount.storage.clone();
        drop(mount);
        let restarted = Mount::on(storage, StaticSystemView::new()).await;
        // Startup reconciles too; either pass may be the one that drops the user.
        restarted.backend.reconcile().await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while db.user_exists(&next.username).await
            || restarted.intents().await.iter().any(|i| i.id == next.id)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the reserved user was not dropped"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Issued credentials are the leases' business, not reconciliation's.
        assert!(db.user_exists(&first).await && db.user_exists(&second).await);
        restarted.revoke(first_lease).await.unwrap();
        restarted.revoke(second_lease).await.unwrap();
        assert!(!db.user_exists(&first).await && !db.user_exists(&second).await);
    })
    .await;
}

#[tokio::test]
async fn sixteen_concurrent_requesters_get_credentials_without_errors() {
    with_db(TestPostgres::start().await, |db| async move {
        let mount = Arc::new(seeded_postgres(&db, "conc").await);
        const REQUESTERS: usize = 16;
        const EACH: usize = 4;
        let started = std::time::Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..REQUESTERS {
            let mount = mount.clone();
            tasks.push(tokio::spawn(async move {
                let mut leases = Vec::new();
                let mut errors = Vec::new();
                for _ in 0..EACH {
                    match mount.call(Operation::Read, "creds/conc", json!({})).await {
                        Ok(Some(response)) => leases.push(response.secret.expect("lease")),
                        Ok(None) => errors.push("no response".to_owned()),
                        Err(err) => errors.push(err.to_string()),
                    }
                }
                (leases, errors)
            }));
        }
        let mut leases = Vec::new();
        let mut errors = Vec::new();
        for task in tasks {
            let (l, e) = task.await.unwrap();
            leases.extend(l);
            errors.extend(e);
        }
        let elapsed = started.elapsed();
        println!(
            "{} credentials from {REQUESTERS} concurrent requesters in {elapsed:?} ({} errors)",
            leases.len(),
            errors.len()
        );
        assert!(errors.is_empty(), "errors: {errors:?}");
        assert_eq!(leases.len(), REQUESTERS * EACH);
        for lease in leases {
            mount.revoke(lease).await.unwrap();
        }
        assert!(db.roles_like("v-token-conc-").await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn root_rotation_changes_the_password_and_keeps_working() {
    with_db(TestPostgres::start().await, |db| async move {
        let admin = unique("mayfly_root");
        db.client
            .batch_execute(&format!(
                "CREATE ROLE {admin} LOGIN CREATEROLE PASSWORD 'initial-root-pw'; \
                 GRANT SELECT ON ALL TABLES IN SCHEMA public TO {admin} WITH GRANT OPTION;"
            ))
            .await
            .unwrap();
        let mount = Mount::new().await;
        mount
            .write(
                "config/pg",
                json!({"plugin_name": "postgresql-database-plugin",
                       "connection_url": db.connection_url(),
                       "username": admin, "password": "initial-root-pw", "allowed_roles": "*"}),
            )
            .await;
        mount
            .write(
                "roles/r",
                json!({"db_name": "pg", "creation_statements": SEED_CREATION}),
            )
            .await;
        mount
            .call(Operation::Update, "rotate-root/pg", json!({}))
            .await
            .unwrap();
        let rotated = mount.stored_config("pg").await.root_password().unwrap();
        assert_ne!(rotated, "initial-root-pw");
        assert!(
            db.password_works(&admin, &rotated).await,
            "the database has the new password"
        );
        assert!(
            !db.password_works(&admin, "initial-root-pw").await,
            "the old one is dead"
        );
        assert!(mount.storage.list(WAL_PREFIX).await.unwrap().is_empty());
        assert!(!mount.read("config/pg").await.to_string().contains(&rotated));
        let (username, _, lease) = mount.creds("r").await;
        assert!(
            db.user_exists(&username).await,
            "the configuration keeps working"
        );
        mount.revoke(lease).await.unwrap();
        db.client
            .batch_execute(&format!("DROP OWNED BY {admin}; DROP ROLE {admin}"))
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn interrupted_root_rotations_settle_on_the_password_that_works() {
    with_db(TestMySql::start().await, |db| async move {
        let admin = unique("mayfly_rot");
        let mut root = mysql_async::Conn::new(
            mysql_async::OptsBuilder::default()
                .ip_or_hostname(db.host.clone())
                .tcp_port(db.port)
                .user(Some(db.admin_user.clone()))
                .pass(Some(db.admin_password.clone()))
                .prefer_socket(false),
        )
        .await
        .unwrap();
        use mysql_async::prelude::Queryable;
        root.query_drop(format!(
            "CREATE USER '{admin}'@'%' IDENTIFIED BY 'old-root-pw'; \
             GRANT ALL PRIVILEGES ON *.* TO '{admin}'@'%' WITH GRANT OPTION"
        ))
        .await
        .unwrap();
        let mount = Mount::new().await;
        mount
            .write(
                "config/my",
                json!({"plugin_name": "mysql-database-plugin", "connection_url": db.connection_url(),
                       "username": admin, "password": "old-root-pw", "allowed_roles": "*"}),
            )
            .await;
        let wal = |new: &str| RootRotationWal {
            connection_name: "my".into(),
            username: admin.clone(),
            old_password: "old-root-pw".into(),
            new_password: new.into(),
            created_at: unix_now(),
        };

        // Crash after the write-ahead entry, before the database changed: the old one stays.
        mount
            .storage
            .put_json(&format!("{WAL_PREFIX}my"), &wal("never-applied-pw"))
            .await
            .unwrap();
        crate::rotate_root::settle_all(&mount.backend.state, mount.storage.as_ref())
            .await
            .unwrap();
        assert_eq!(mount.stored_config("my").await.root_password().as_deref(), Some("old-root-pw"));
        assert!(mount.storage.list(WAL_PREFIX).await.unwrap().is_empty());

        // Crash after the database changed, before the configuration was saved: the new one
        // is adopted when the connection is next opened.
        root.query_drop(format!("ALTER USER '{admin}'@'%' IDENTIFIED BY 'applied-pw'"))
            .await
            .unwrap();
        mount
            .storage
            .put_json(&format!("{WAL_PREFIX}my"), &wal("applied-pw"))
            .await
            .unwrap();
        mount.call(Operation::Update, "reset/my", json!({})).await.unwrap();
        assert_eq!(mount.stored_config("my").await.root_password().as_deref(), Some("applied-pw"));
        assert!(mount.storage.list(WAL_PREFIX).await.unwrap().is_empty());

        // A full rotation: old password refused afterwards, the connection still works.
        mount.call(Operation::Update, "rotate-root/my", json!({})).await.unwrap();
        let rotated = mount.stored_config("my").await.root_password().unwrap();
        assert!(db.login(&admin, &rotated).await);
        assert!(!db.login(&admin, "applied-pw").await);
        mount
            .write("roles/r", json!({"db_name": "my",
                "creation_statements": "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';"}))
            .await;
        let (username, password, lease) = mount.creds("r").await;
        assert!(db.login(&username, &password).await);
        mount.revoke(lease).await.unwrap();
        root.query_drop(format!("DROP USER '{admin}'@'%'")).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn password_policies_and_username_templates_apply() {
    with_db(TestPostgres::start().await, |db| async move {
        let mount = Mount::with_passwords(StaticSystemView::new().with_policy(
            "digits",
            mayfly_sdk::password::PasswordPolicy::parse(
                "length = 12\nrule \"charset\" {\n charset = \"0123456789\"\n min-chars = 12\n}",
            )
            .unwrap(),
        ))
        .await;
        mount
            .write(
                "config/pg",
                json!({"plugin_name": "postgresql-database-plugin",
                       "connection_url": db.connection_url(), "username": "postgres",
                       "allowed_roles": "*", "password_policy": "digits",
                       "username_template": "{{ printf \"app_%s_%s\" (.RoleName | uppercase) (random 8) }}"}),
            )
            .await;
        mount
            .write("roles/tpl", json!({"db_name": "pg", "creation_statements": SEED_CREATION}))
            .await;
        let (username, password, lease) = mount.creds("tpl").await;
        assert!(username.starts_with("app_TPL_") && username.len() == 16, "{username}");
        assert!(password.len() == 12 && password.chars().all(|c| c.is_ascii_digit()));
        mount.revoke(lease).await.unwrap();
        let bad = mount
            .call(Operation::Update, "config/pg", json!({"password_policy": "missing"}))
            .await;
        assert!(bad.is_err(), "an unknown policy is refused at write");
        let bad_template = mount
            .call(Operation::Update, "config/pg", json!({"username_template": "{{ nope"}))
            .await;
        assert!(matches!(bad_template, Err(Error::InvalidRequest(m)) if m.contains("username template")));
    })
    .await;
}

/// A TCP relay to a real server that can be taken down and brought back on the same port,
/// to play a database outage.
struct Relay {
    port: u16,
    target: (String, u16),
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Relay {
    async fn start(target: (String, u16)) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let relay = Relay {
            port,
            target,
            task: std::sync::Mutex::new(None),
        };
        relay.serve(listener);
        relay
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let target = self.target.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// Closes the listener and every relayed connection.
    fn down(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }

    async fn up(&self) {
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        self.serve(listener);
    }
}

#[tokio::test]
async fn revocation_during_an_outage_fails_and_succeeds_once_the_database_returns() {
    with_db(TestPostgres::start().await, |db| async move {
        let relay = Relay::start((db.host.clone(), db.port)).await;
        let mount = Mount::new().await;
        mount
            .write(
                "config/pg",
                json!({"plugin_name": "postgresql-database-plugin",
                       "connection_url": format!(
                           "postgresql://{{{{username}}}}@127.0.0.1:{}/{}?sslmode=disable&connect_timeout=2",
                           relay.port, db.database),
                       "username": "postgres", "allowed_roles": "*"}),
            )
            .await;
        mount
            .write("roles/r", json!({"db_name": "pg", "creation_statements": SEED_CREATION}))
            .await;
        let (username, _, lease) = mount.creds("r").await;

        relay.down();
        let failed = mount.revoke(lease.clone()).await;
        assert!(
            matches!(&failed, Err(Error::Coded { status: 500, .. })),
            "a database outage is a retryable failure: {failed:?}"
        );
        assert!(db.user_exists(&username).await);
        assert!(
            mount.intents().await.iter().any(|i| i.username == username),
            "the user is not forgotten"
        );
        let report = mount.backend.reconcile().await.unwrap();
        assert_eq!(report.failed, 0, "not expired yet, so reconciliation leaves it to the lease");

        relay.up().await;
        mount.revoke(lease).await.expect("revoked once the database is back");
        assert!(!db.user_exists(&username).await);
        assert!(mount.intents().await.iter().all(|i| i.username != username));
        relay.down();
    })
    .await;
}

#[tokio::test]
async fn static_roles_rotate_on_creation_on_demand_and_on_their_period() {
    with_db(TestMySql::start().await, |db| async move {
        use mysql_async::prelude::Queryable;
        let account = unique("mayfly_st");
        let mut root = mysql_async::Conn::new(
            mysql_async::OptsBuilder::default()
                .ip_or_hostname(db.host.clone())
                .tcp_port(db.port)
                .user(Some(db.admin_user.clone()))
                .pass(Some(db.admin_password.clone()))
                .prefer_socket(false),
        )
        .await
        .unwrap();
        root.query_drop(format!("CREATE USER '{account}'@'%' IDENTIFIED BY 'original-pw'"))
            .await
            .unwrap();
        let mount = Mount::new().await;
        mount
            .write(
                "config/my",
                json!({"plugin_name": "mysql-database-plugin", "connection_url": db.connection_url(),
                       "username": db.admin_user, "password": db.admin_password,
                       "allowed_roles": "*"}),
            )
            .await;
        let too_fast = mount
            .call(Operation::Create, "static-roles/s",
                json!({"db_name": "my", "username": account, "rotation_period": 2}))
            .await;
        assert!(matches!(too_fast, Err(Error::InvalidRequest(m)) if m == "rotation_period must be 5 seconds or more"));
        mount
            .write("static-roles/s", json!({"db_name": "my", "username": account, "rotation_period": "1h"}))
            .await;
        let creds = mount.read("static-creds/s").await;
        let first = creds["password"].as_str().unwrap().to_owned();
        assert_eq!(creds["username"], account.as_str());
        assert_eq!(creds["rotation_period"], 3600);
        assert!(creds["ttl"].as_u64().unwrap() > 3590);
        assert!(creds["last_vault_rotation"].as_str().unwrap().ends_with('Z'));
        assert!(db.login(&account, &first).await, "creating the role rotated the password");
        assert!(!db.login(&account, "original-pw").await);
        let role = mount.read("static-roles/s").await;
        assert_eq!(role["username"], account.as_str());
        assert_eq!(role["rotation_statements"], json!([]));
        assert!(role.get("password").is_none());

        mount.call(Operation::Update, "rotate-role/s", json!({})).await.unwrap();
        let second = mount.read("static-creds/s").await["password"].as_str().unwrap().to_owned();
        assert_ne!(second, first);
        assert!(db.login(&account, &second).await && !db.login(&account, &first).await);

        // A rotation cut short after the database took the password is rolled forward.
        root.query_drop(format!("ALTER USER '{account}'@'%' IDENTIFIED BY 'cut-short-pw'"))
            .await
            .unwrap();
        mount
            .storage
            .put_json(
                "wal/static/s",
                &json!({"role": "s", "username": account, "new_password": "cut-short-pw",
                        "created_at": unix_now()}),
            )
            .await
            .unwrap();
        mount.call(Operation::Update, "rotate-role/s", json!({})).await.unwrap();
        assert_eq!(mount.read("static-creds/s").await["password"], "cut-short-pw");
        assert!(mount.storage.list("wal/static/").await.unwrap().is_empty());

        let renamed = mount
            .call(Operation::Update, "static-roles/s", json!({"username": "someone-else"}))
            .await;
        assert!(matches!(renamed, Err(Error::InvalidRequest(m)) if m == "cannot update static account username"));
        let clash = mount
            .call(Operation::Create, "roles/s", json!({"db_name": "my", "creation_statements": "x"}))
            .await;
        assert!(matches!(clash, Err(Error::InvalidRequest(m)) if m == "Role and Static Role names must be unique"));

        // On its period: the background loop rotates it.
        mount.write("static-roles/s", json!({"rotation_period": 5})).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let current = mount.read("static-creds/s").await["password"].as_str().unwrap().to_owned();
            if current != "cut-short-pw" {
                assert!(db.login(&account, &current).await);
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no rotation on the period");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }

        // On a schedule instead: the fields are checked as Vault checks them, and a scheduled
        // time that passed since the last rotation rotates it.
        let both = mount
            .call(Operation::Update, "static-roles/s",
                json!({"rotation_period": 60, "rotation_schedule": "0 * * * *"}))
            .await;
        assert!(matches!(both, Err(Error::InvalidRequest(m)) if m.starts_with("mutually exclusive")));
        let bad = mount
            .call(Operation::Update, "static-roles/s", json!({"rotation_schedule": "61 * * * *"}))
            .await;
        assert!(matches!(bad, Err(Error::InvalidRequest(m)) if m.contains("outside 0-59")));
        let short_window = mount
            .call(Operation::Update, "static-roles/s",
                json!({"rotation_schedule": "* * * * *", "rotation_window": "10m"}))
            .await;
        assert!(matches!(short_window, Err(Error::InvalidRequest(m)) if m == "rotation_window must be 3600 seconds or more"));
        mount
            .write("static-roles/s", json!({"rotation_schedule": "* * * * *", "rotation_window": "1h"}))
            .await;
        let role = mount.read("static-roles/s").await;
        assert_eq!(role["rotation_schedule"], "* * * * *");
        assert_eq!(role["rotation_window"], 3600);
        assert!(role.get("rotation_period").is_none(), "{role}");
        let creds = mount.read("static-creds/s").await;
        assert!(creds["ttl"].as_u64().unwrap() <= 60, "{creds}");
        let before = creds["password"].as_str().unwrap().to_owned();
        // Pretend the last rotation was two minutes ago: this minute's run is due.
        let mut stored: Value = mount.storage.get_json("static-role/s").await.unwrap().unwrap();
        stored["last_vault_rotation"] = json!([unix_now() - 120, 0]);
        mount.storage.put_json("static-role/s", &stored).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let current = mount.read("static-creds/s").await["password"].as_str().unwrap().to_owned();
            if current != before {
                assert!(db.login(&account, &current).await);
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no rotation on the schedule");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }

        let listed = mount.call(Operation::List, "static-roles", json!({})).await.unwrap().unwrap();
        assert_eq!(listed.data.unwrap()["keys"], json!(["s"]));
        mount.call(Operation::Delete, "static-roles/s", json!({})).await.unwrap();
        assert!(db.user_exists(&account).await, "deleting the role leaves the user");
        root.query_drop(format!("DROP USER '{account}'@'%'")).await.unwrap();
    })
    .await;
}

/// The local server's certificate: self-signed, issued to `localhost`.
const LOCAL_PG_CERT: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

#[tokio::test]
async fn postgres_tls_follows_libpq_sslmodes() {
    use crate::plugin::{DatabasePlugin, InitializeRequest};
    with_db(TestPostgres::start().await, |db| async move {
        let ssl_on: String = db.client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
        assert_eq!(ssl_on, "on", "the test server must offer TLS");
        let ca = std::fs::read_to_string(LOCAL_PG_CERT)
            .unwrap_or_else(|err| panic!("{LOCAL_PG_CERT}: {err}"));
        let attempt = |host: &str, mode: &str, with_ca: bool| {
            let mut config = serde_json::Map::new();
            config.insert(
                "connection_url".into(),
                json!(format!(
                    "postgresql://postgres@{host}:{}/{}?sslmode={mode}&connect_timeout=5",
                    db.port, db.database
                )),
            );
            if with_ca {
                config.insert("tls_ca".into(), json!(ca));
            }
            async move {
                let plugin = Postgres::new();
                let result = plugin
                    .initialize(InitializeRequest {
                        config,
                        verify_connection: true,
                    })
                    .await;
                plugin.close().await;
                result.map(drop).map_err(|err| err.to_string())
            }
        };
        let in_use: bool = db
            .client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(!in_use, "the harness itself connects without TLS");
        assert_eq!(attempt("127.0.0.1", "require", false).await, Ok(()));
        assert_eq!(attempt("127.0.0.1", "verify-ca", true).await, Ok(()));
        assert_eq!(attempt("localhost", "verify-full", true).await, Ok(()));
        let wrong_name = attempt("127.0.0.1", "verify-full", true).await;
        assert!(wrong_name.is_err(), "the certificate is for localhost only");
        let unknown_ca = attempt("localhost", "verify-full", false).await;
        assert!(
            unknown_ca.is_err(),
            "a self-signed certificate is not publicly trusted"
        );
        assert!(
            attempt("127.0.0.1", "bogus", false)
                .await
                .unwrap_err()
                .contains("sslmode")
        );
    })
    .await;
}

#[tokio::test]
async fn scram_password_authentication_sends_only_a_verifier() {
    with_db(TestPostgres::start().await, |db| async move {
        let mount = Mount::new().await;
        mount
            .write(
                "config/pg",
                json!({"plugin_name": "postgresql-database-plugin",
                       "connection_url": db.connection_url(), "username": "postgres",
                       "allowed_roles": "*", "password_authentication": "scram-sha-256"}),
            )
            .await;
        mount
            .write("roles/s", json!({"db_name": "pg", "creation_statements": SEED_CREATION}))
            .await;
        let (username, password, lease) = mount.creds("s").await;
        // The server stored the verifier computed here; the plaintext never left Mayfly.
        assert!(db.password_works(&username, &password).await);
        mount.revoke(lease).await.unwrap();
        let bad = mount
            .call(Operation::Update, "config/pg", json!({"password_authentication": "md4"}))
            .await;
        assert!(matches!(bad, Err(Error::InvalidRequest(m)) if m.contains("not a valid password authentication type")));
    })
    .await;
}
