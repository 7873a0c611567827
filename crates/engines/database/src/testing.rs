//! The plugin conformance suite, and harnesses for the real servers it runs against.
//!
//! [`exercise_db_plugin`] checks what the engine relies on: initialize (and refuse an
//! unreachable server), create a user who can log in, change its password and expiry, delete
//! it (twice), roll back a creation that fails part-way, keep passwords out of errors, close
//! and initialize again. Each harness works in its own database or with its own admin user
//! with unique names, and removes them when dropped… or, since drop cannot be async, in
//! [`TestDatabase::teardown`].
//!
//! Servers come from `TEST_PG_URL`, `TEST_MYSQL_URL` and `TEST_REDIS_URL`, defaulting to the
//! local servers. A server that cannot be reached fails the test with instructions.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use serde_json::{Map, Value, json};

use crate::plugin::{
    DatabasePlugin, DbError, DeleteUserRequest, InitializeRequest, IntentGate, NewUserRequest,
    UpdateUserRequest, UserChange,
    resp::{Reply, RespConn},
    scram_matches,
};

/// A real database prepared for one test.
#[async_trait]
pub trait TestDatabase: Send + Sync {
    /// The `plugin_name` to configure.
    fn plugin_name(&self) -> &'static str;
    /// Connection details for an admin that may create users.
    fn config(&self) -> Map<String, Value>;
    /// The same server at an address where nothing listens.
    fn unreachable_config(&self) -> Map<String, Value>;
    /// Creation statements for a user who can log in.
    fn creation_statements(&self) -> Vec<String>;
    /// Statements that create the user and then fail.
    fn failing_creation_statements(&self) -> Vec<String>;
    /// Statements that undo the partial creation above.
    fn rollback_statements(&self) -> Vec<String>;
    async fn user_exists(&self, username: &str) -> bool;
    /// Whether the user can log in with this password.
    async fn password_works(&self, username: &str, password: &str) -> bool;
    /// The expiry the database enforces for the user, where it has one.
    async fn expiration(&self, username: &str) -> Option<SystemTime>;
    /// Removes everything the harness created.
    async fn teardown(&self);
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", crate::random_suffix(10).to_ascii_lowercase())
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The password of every user the suite creates.
const SUITE_PASSWORD: &str = "Conf-1-password-xyz";

/// A creation request of the suite: the suite's password, valid for an hour.
fn creation<'a>(
    username: &'a str,
    statements: &'a [String],
    rollback_statements: &'a [String],
    intent: &'a IntentGate,
) -> NewUserRequest<'a> {
    NewUserRequest {
        username,
        password: SUITE_PASSWORD,
        expiration: SystemTime::now() + Duration::from_secs(3600),
        statements,
        rollback_statements,
        intent,
    }
}

/// Initializes `plugin` against `db`, checking the connection; panics if that fails.
pub async fn initialize(plugin: &dyn DatabasePlugin, db: &dyn TestDatabase) {
    plugin
        .initialize(InitializeRequest {
            config: db.config(),
            verify_connection: true,
        })
        .await
        .unwrap_or_else(|err| panic!("initialize {}: {err}", plugin.type_name()));
}

/// Runs futures concurrently on the caller's task and returns their outputs in order.
pub async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// Runs the conformance suite against one plugin and its server.
pub async fn exercise_db_plugin(plugin: &dyn DatabasePlugin, db: &dyn TestDatabase) {
    let unreachable = plugin
        .initialize(InitializeRequest {
            config: db.unreachable_config(),
            verify_connection: true,
        })
        .await;
    assert!(
        matches!(unreachable, Err(DbError::Connection(_))),
        "an unreachable server is a connection error: {unreachable:?}"
    );
    initialize(plugin, db).await;

    let username = unique("v_conf");
    let password = SUITE_PASSWORD;
    let statements = db.creation_statements();
    let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
    plugin
        .new_user(creation(&username, &statements, &[], &IntentGate::open()))
        .await
        .unwrap_or_else(|err| panic!("new_user: {err}"));
    assert!(db.user_exists(&username).await, "the user exists");
    assert!(
        db.password_works(&username, password).await,
        "it can log in"
    );
    if let Some(expiry) = db.expiration(&username).await {
        let off = expiry
            .duration_since(in_an_hour)
            .unwrap_or_else(|e| e.duration());
        assert!(off < Duration::from_secs(2), "expiry is the one asked for");
    }

    let new_password = "Conf-2-password-abc";
    plugin
        .update_user(UpdateUserRequest {
            username: &username,
            change: UserChange::Password {
                password: new_password,
                statements: &[],
            },
        })
        .await
        .unwrap_or_else(|err| panic!("change password: {err}"));
    assert!(db.password_works(&username, new_password).await);
    assert!(
        !db.password_works(&username, password).await,
        "the old password is dead"
    );

    let later = SystemTime::now() + Duration::from_secs(7200);
    plugin
        .update_user(UpdateUserRequest {
            username: &username,
            change: UserChange::Expiration {
                expiration: later,
                statements: &[],
            },
        })
        .await
        .unwrap_or_else(|err| panic!("change expiration: {err}"));
    if let Some(expiry) = db.expiration(&username).await {
        assert!(
            expiry > in_an_hour + Duration::from_secs(1800),
            "expiry moved forward"
        );
    }

    for attempt in 0..2 {
        plugin
            .delete_user(DeleteUserRequest {
                username: &username,
                statements: &[],
            })
            .await
            .unwrap_or_else(|err| panic!("delete_user (attempt {attempt}): {err}"));
        assert!(!db.user_exists(&username).await, "the user is gone");
    }

    let doomed = unique("v_fail");
    let failed = plugin
        .new_user(creation(
            &doomed,
            &db.failing_creation_statements(),
            &db.rollback_statements(),
            &IntentGate::open(),
        ))
        .await;
    assert!(failed.is_err(), "the failing creation fails");
    let message = failed.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(!message.contains(password), "no password in {message:?}");
    assert!(
        !db.user_exists(&doomed).await,
        "a failed creation leaves nothing behind"
    );

    // A user comes to exist only once the engine's record of it is durable.
    let waiting = unique("v_wait");
    let (signal, gate) = IntentGate::pending();
    let record_later = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let existed_early = db.user_exists(&waiting).await;
        signal.finish(true);
        existed_early
    };
    let (created, existed_early) = tokio::join!(
        plugin.new_user(creation(&waiting, &statements, &[], &gate)),
        record_later
    );
    created.unwrap_or_else(|err| panic!("new_user behind a gate: {err}"));
    assert!(
        !existed_early,
        "no user exists before its creation is recorded"
    );
    assert!(
        db.user_exists(&waiting).await,
        "the user exists once recorded"
    );
    plugin
        .delete_user(DeleteUserRequest {
            username: &waiting,
            statements: &[],
        })
        .await
        .unwrap_or_else(|err| panic!("delete_user: {err}"));

    // A creation the engine could not record creates nothing.
    let unrecorded = unique("v_unrec");
    let (signal, gate) = IntentGate::pending();
    signal.finish(false);
    let abandoned = plugin
        .new_user(creation(
            &unrecorded,
            &statements,
            &db.rollback_statements(),
            &gate,
        ))
        .await;
    assert_eq!(abandoned, Err(DbError::Abandoned));
    assert!(
        !db.user_exists(&unrecorded).await,
        "an unrecorded creation leaves nothing behind"
    );

    // Revocations that arrive together all succeed, whether or not their user still exists.
    let many: Vec<String> = (0..10).map(|_| unique("v_many")).collect();
    for name in &many {
        plugin
            .new_user(creation(name, &statements, &[], &IntentGate::open()))
            .await
            .unwrap_or_else(|err| panic!("new_user {name}: {err}"));
    }
    plugin
        .delete_user(DeleteUserRequest {
            username: &many[3],
            statements: &[],
        })
        .await
        .unwrap_or_else(|err| panic!("delete_user: {err}"));
    let never_created = unique("v_never");
    let outcomes = join_all(
        many.iter()
            .chain(std::iter::once(&never_created))
            .map(|name| {
                plugin.delete_user(DeleteUserRequest {
                    username: name,
                    statements: &[],
                })
            })
            .collect(),
    )
    .await;
    for (name, outcome) in many.iter().zip(&outcomes) {
        assert_eq!(outcome, &Ok(()), "concurrent delete_user of {name}");
        assert!(!db.user_exists(name).await, "{name} is gone");
    }
    assert_eq!(outcomes.last(), Some(&Ok(())), "a user that never existed");

    plugin.close().await;
    let closed = plugin
        .new_user(creation(
            &unique("v_closed"),
            &statements,
            &[],
            &IntentGate::open(),
        ))
        .await;
    assert_eq!(closed, Err(DbError::NotInitialized));
    initialize(plugin, db).await;
    plugin.close().await;
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// `host` and `port` of a URL like `scheme://user:pw@host:port/…`.
fn host_port(url: &str, default_port: u16) -> (String, u16) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.split(['/', '?']).next().unwrap_or(rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    match rest.rsplit_once(':') {
        Some((host, port)) => (host.to_owned(), port.parse().unwrap_or(default_port)),
        None => (rest.to_owned(), default_port),
    }
}

/// A port on this machine where nothing listens.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(1)
}

/// A PostgreSQL database of its own, with a few tables for grants to touch.
pub struct TestPostgres {
    pub admin_url: String,
    pub database: String,
    pub host: String,
    pub port: u16,
    admin: tokio_postgres::Client,
    /// A superuser client connected to the test database itself.
    pub client: tokio_postgres::Client,
}

impl TestPostgres {
    pub const HOW_TO_START: &'static str = "PostgreSQL is needed at TEST_PG_URL (default \
        postgresql://postgres@127.0.0.1:5432/postgres with trust auth): start it with \
        `service postgresql start` or point TEST_PG_URL at a server";

    pub async fn start() -> TestPostgres {
        let admin_url = env_or(
            "TEST_PG_URL",
            "postgresql://postgres@127.0.0.1:5432/postgres?sslmode=disable",
        );
        let admin = pg_connect(&admin_url).await;
        let database = unique("mayfly_t");
        admin
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .await
            .unwrap_or_else(|err| panic!("create test database: {err}"));
        let (host, port) = host_port(&admin_url, 5432);
        let db_url = replace_database(&admin_url, &database);
        let client = pg_connect(&db_url).await;
        let tables: String = (0..20)
            .map(|i| format!("CREATE TABLE t{i} (id int primary key, v text);"))
            .collect();
        client
            .batch_execute(&tables)
            .await
            .unwrap_or_else(|err| panic!("create test tables: {err}"));
        TestPostgres {
            admin_url,
            database,
            host,
            port,
            admin,
            client,
        }
    }

    /// Creates another database beside the test database, with a superuser client of it;
    /// [`drop_database`](Self::drop_database) removes it.
    pub async fn create_sibling(&self) -> (String, tokio_postgres::Client) {
        let name = unique("mayfly_s");
        self.admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|err| panic!("create sibling database: {err}"));
        let client = pg_connect(&replace_database(&self.admin_url, &name)).await;
        (name, client)
    }

    pub async fn drop_database(&self, name: &str) {
        self.admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .unwrap_or_else(|err| panic!("drop database {name}: {err}"));
    }

    /// The single value a parameterless query of the test database returns.
    pub async fn scalar<T: for<'a> tokio_postgres::types::FromSql<'a>>(&self, sql: &str) -> T {
        self.client
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"))
            .get(0)
    }

    /// A `connection_url` template for this database.
    pub fn connection_url(&self) -> String {
        format!(
            "postgresql://{{{{username}}}}:{{{{password}}}}@{}:{}/{}?sslmode=disable",
            self.host, self.port, self.database
        )
    }

    /// Roles whose names start with `prefix`.
    pub async fn roles_like(&self, prefix: &str) -> Vec<String> {
        self.client
            .query(
                "SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)",
                &[&prefix],
            )
            .await
            .map(|rows| rows.iter().map(|r| r.get(0)).collect())
            .unwrap_or_else(|err| panic!("list roles: {err}"))
    }

    async fn drop_roles_of_database(&self) {
        // Roles the tests created are named v-…, v_… or mayfly_…; only those that still hold
        // something in this database are dropped here.
        let rows = self
            .client
            .query(
                "SELECT DISTINCT r.rolname FROM pg_roles r JOIN pg_shdepend d ON d.refobjid = r.oid \
                 JOIN pg_database db ON db.oid = d.dbid WHERE db.datname = current_database()",
                &[],
            )
            .await
            .unwrap_or_default();
        for row in rows {
            let role: String = row.get(0);
            let quoted = format!("\"{}\"", role.replace('"', "\"\""));
            let _ = self
                .client
                .batch_execute(&format!(
                    "DROP OWNED BY {quoted}; DROP ROLE IF EXISTS {quoted}"
                ))
                .await;
        }
    }
}

fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{database}", &base[..host_end]);
    if !query.is_empty() {
        out.push('?');
        out.push_str(query);
    }
    out
}

async fn pg_connect(url: &str) -> tokio_postgres::Client {
    match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(async move { drop(connection.await) });
            client
        }
        Err(err) => panic!("{}: {err}", TestPostgres::HOW_TO_START),
    }
}

#[async_trait]
impl TestDatabase for TestPostgres {
    fn plugin_name(&self) -> &'static str {
        "postgresql-database-plugin"
    }

    fn config(&self) -> Map<String, Value> {
        object(json!({
            "connection_url": self.connection_url(),
            "username": "postgres",
            "password": "unused-with-trust",
        }))
    }

    fn unreachable_config(&self) -> Map<String, Value> {
        object(json!({
            "connection_url": format!("postgresql://postgres@127.0.0.1:{}/x?sslmode=disable&connect_timeout=2", dead_port()),
        }))
    }

    fn creation_statements(&self) -> Vec<String> {
        vec![
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL \
             '{{expiration}}'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\";"
                .to_owned(),
        ]
    }

    fn failing_creation_statements(&self) -> Vec<String> {
        vec![
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}'; \
             GRANT SELECT ON no_such_table_{{password}} TO \"{{name}}\";"
                .to_owned(),
        ]
    }

    fn rollback_statements(&self) -> Vec<String> {
        vec!["DROP ROLE IF EXISTS \"{{name}}\";".to_owned()]
    }

    async fn user_exists(&self, username: &str) -> bool {
        !self
            .roles_like(username)
            .await
            .iter()
            .all(|r| r != username)
    }

    /// The server trusts local logins, so the stored verifier is checked instead: it is what
    /// a password login would be checked against.
    async fn password_works(&self, username: &str, password: &str) -> bool {
        let row = self
            .client
            .query_opt(
                "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
                &[&username],
            )
            .await
            .unwrap_or_else(|err| panic!("read pg_authid: {err}"));
        let Some(row) = row else { return false };
        let stored: Option<String> = row.get(0);
        stored.is_some_and(|stored| scram_matches(&stored, password))
    }

    async fn expiration(&self, username: &str) -> Option<SystemTime> {
        let row = self
            .client
            .query_opt(
                "SELECT extract(epoch FROM rolvaliduntil)::float8 FROM pg_roles WHERE rolname = $1",
                &[&username],
            )
            .await
            .ok()??;
        let epoch: Option<f64> = row.get(0);
        epoch.map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs))
    }

    async fn teardown(&self) {
        self.drop_roles_of_database().await;
        let _ = self
            .admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.database
            ))
            .await;
    }
}

/// A MySQL/MariaDB admin user of its own.
pub struct TestMySql {
    pub host: String,
    pub port: u16,
    pub admin_user: String,
    pub admin_password: String,
    root: mysql_async::Pool,
}

impl TestMySql {
    pub const HOW_TO_START: &'static str = "MySQL/MariaDB is needed at TEST_MYSQL_URL (default \
        mysql://root@127.0.0.1:3306 with an empty root password): start it with \
        `service mariadb start` or point TEST_MYSQL_URL at a server";

    pub async fn start() -> TestMySql {
        let url = env_or("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306");
        let opts =
            mysql_async::Opts::from_url(&url).unwrap_or_else(|err| panic!("TEST_MYSQL_URL: {err}"));
        let root = mysql_async::Pool::new(opts);
        let mut conn = root
            .get_conn()
            .await
            .unwrap_or_else(|err| panic!("{}: {err}", Self::HOW_TO_START));
        let (host, port) = host_port(&url, 3306);
        let admin_user = unique("mayfly_adm");
        let admin_password = format!("Adm-{}", crate::random_suffix(16));
        conn.query_drop(format!(
            "CREATE USER '{admin_user}'@'%' IDENTIFIED BY '{admin_password}'; \
             GRANT ALL PRIVILEGES ON *.* TO '{admin_user}'@'%' WITH GRANT OPTION"
        ))
        .await
        .unwrap_or_else(|err| panic!("create the test admin: {err}"));
        TestMySql {
            host,
            port,
            admin_user,
            admin_password,
            root,
        }
    }

    /// A `connection_url` template (Vault's Go DSN form) for this server.
    pub fn connection_url(&self) -> String {
        format!(
            "{{{{username}}}}:{{{{password}}}}@tcp({}:{})/",
            self.host, self.port
        )
    }

    /// Users whose names start with `prefix`.
    pub async fn users_like(&self, prefix: &str) -> Vec<String> {
        let mut conn = self
            .root
            .get_conn()
            .await
            .unwrap_or_else(|err| panic!("{}: {err}", Self::HOW_TO_START));
        conn.exec(
            "SELECT User FROM mysql.user WHERE User LIKE CONCAT(?, '%')",
            (prefix.replace('_', "\\_"),),
        )
        .await
        .unwrap_or_else(|err| panic!("list users: {err}"))
    }

    /// Whether `user` can log in with `password`.
    pub async fn login(&self, user: &str, password: &str) -> bool {
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(user))
            .pass(Some(password))
            .prefer_socket(false);
        match mysql_async::Conn::new(opts).await {
            Ok(conn) => {
                let _ = conn.disconnect().await;
                true
            }
            Err(_) => false,
        }
    }
}

#[async_trait]
impl TestDatabase for TestMySql {
    fn plugin_name(&self) -> &'static str {
        "mysql-database-plugin"
    }

    fn config(&self) -> Map<String, Value> {
        object(json!({
            "connection_url": self.connection_url(),
            "username": self.admin_user,
            "password": self.admin_password,
        }))
    }

    fn unreachable_config(&self) -> Map<String, Value> {
        object(json!({
            "connection_url": format!("root@tcp(127.0.0.1:{})/", dead_port()),
        }))
    }

    fn creation_statements(&self) -> Vec<String> {
        vec![
            "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'; \
             GRANT SELECT ON mysql.user TO '{{name}}'@'%';"
                .to_owned(),
        ]
    }

    fn failing_creation_statements(&self) -> Vec<String> {
        vec![
            "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'; \
             GRANT SELECT ON no_such_db.t_{{password}} TO '{{name}}'@'%';"
                .to_owned(),
        ]
    }

    fn rollback_statements(&self) -> Vec<String> {
        vec!["DROP USER IF EXISTS '{{name}}'@'%';".to_owned()]
    }

    async fn user_exists(&self, username: &str) -> bool {
        self.users_like(username)
            .await
            .iter()
            .any(|u| u == username)
    }

    async fn password_works(&self, username: &str, password: &str) -> bool {
        self.login(username, password).await
    }

    async fn expiration(&self, _: &str) -> Option<SystemTime> {
        None
    }

    async fn teardown(&self) {
        if let Ok(mut conn) = self.root.get_conn().await {
            let _ = conn
                .query_drop(format!("DROP USER IF EXISTS '{}'@'%'", self.admin_user))
                .await;
        }
        let _ = self.root.clone().disconnect().await;
    }
}

/// A Redis ACL admin user of its own.
pub struct TestRedis {
    pub host: String,
    pub port: u16,
    pub admin_user: String,
    pub admin_password: String,
}

impl TestRedis {
    pub const HOW_TO_START: &'static str = "Redis is needed at TEST_REDIS_URL (default \
        redis://127.0.0.1:6379, whose default user may run ACL commands): start it with \
        `service redis-server start` or point TEST_REDIS_URL at a server";

    pub async fn start() -> TestRedis {
        let url = env_or("TEST_REDIS_URL", "redis://127.0.0.1:6379");
        let (host, port) = host_port(&url, 6379);
        let admin_user = unique("mayfly_adm");
        let admin_password = format!("Adm-{}", crate::random_suffix(16));
        let redis = TestRedis {
            host,
            port,
            admin_user,
            admin_password,
        };
        let secret = format!(">{}", redis.admin_password);
        let reply = redis
            .default_command(&[
                b"ACL",
                b"SETUSER",
                redis.admin_user.as_bytes(),
                b"on",
                secret.as_bytes(),
                b"~*",
                b"&*",
                b"+@all",
            ])
            .await;
        assert_eq!(
            reply,
            Reply::Simple("OK".to_owned()),
            "create the test admin"
        );
        redis
    }

    /// Runs a command as the server's default user.
    pub async fn default_command(&self, args: &[&[u8]]) -> Reply {
        let mut conn = RespConn::connect(&self.host, self.port, None)
            .await
            .unwrap_or_else(|err| panic!("{}: {err}", Self::HOW_TO_START));
        conn.command(args)
            .await
            .unwrap_or_else(|err| panic!("redis command: {err}"))
    }

    /// Whether `user` can log in with `password`.
    pub async fn login(&self, user: &str, password: &str) -> bool {
        let Ok(mut conn) = RespConn::connect(&self.host, self.port, None).await else {
            return false;
        };
        matches!(
            conn.command(&[b"AUTH", user.as_bytes(), password.as_bytes()])
                .await,
            Ok(Reply::Simple(_))
        )
    }

    /// ACL users whose names start with `prefix`.
    pub async fn users_like(&self, prefix: &str) -> Vec<String> {
        match self.default_command(&[b"ACL", b"USERS"]).await {
            Reply::Array(Some(items)) => items
                .into_iter()
                .filter_map(|item| match item {
                    Reply::Bulk(Some(name)) => String::from_utf8(name).ok(),
                    _ => None,
                })
                .filter(|name| name.starts_with(prefix))
                .collect(),
            other => panic!("ACL USERS: {other:?}"),
        }
    }
}

#[async_trait]
impl TestDatabase for TestRedis {
    fn plugin_name(&self) -> &'static str {
        "redis-database-plugin"
    }

    fn config(&self) -> Map<String, Value> {
        object(json!({
            "host": self.host,
            "port": self.port,
            "username": self.admin_user,
            "password": self.admin_password,
        }))
    }

    fn unreachable_config(&self) -> Map<String, Value> {
        object(json!({
            "host": "127.0.0.1",
            "port": dead_port(),
            "username": "u",
            "password": "p",
        }))
    }

    fn creation_statements(&self) -> Vec<String> {
        vec![r#"["~*", "+@read"]"#.to_owned()]
    }

    fn failing_creation_statements(&self) -> Vec<String> {
        vec![r#"["~*", "+@no-such-category"]"#.to_owned()]
    }

    fn rollback_statements(&self) -> Vec<String> {
        Vec::new()
    }

    async fn user_exists(&self, username: &str) -> bool {
        self.users_like(username)
            .await
            .iter()
            .any(|u| u == username)
    }

    async fn password_works(&self, username: &str, password: &str) -> bool {
        self.login(username, password).await
    }

    async fn expiration(&self, _: &str) -> Option<SystemTime> {
        None
    }

    async fn teardown(&self) {
        self.default_command(&[b"ACL", b"DELUSER", self.admin_user.as_bytes()])
            .await;
    }
}
