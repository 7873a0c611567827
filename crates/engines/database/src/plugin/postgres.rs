//! PostgreSQL (`postgresql-database-plugin`): tokio-postgres over rustls, with libpq's
//! `sslmode` semantics, Vault's default statements, and an improved default revocation.

use std::{
    str::FromStr,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use base64::Engine;
use mayfly_sdk::inline_wake::InlineWakes;
use serde_json::{Map, Value};
use tokio_postgres::{Client, NoTls, config::SslMode, error::SqlState, types::Type};

use super::{
    DatabasePlugin, DbError, DbResult, DeleteUserRequest, InitializeRequest, IntentGate,
    NewUserRequest, PoolSettings, UpdateUserRequest, UserChange, bool_setting, format_expiration,
    setting,
};
use crate::{
    batch::{Batcher, REVOCATION_BATCHES},
    pool::{Connector, Pool, Pooled},
    statements::{Dialect, render, render_all},
    tls::{TlsSettings, Verify, client_config},
};

/// Vault's default PostgreSQL username: display and role names cut to 8, 63 bytes in all.
const DEFAULT_USERNAME_TEMPLATE: &str = r#"{{ printf "v-%s-%s-%s-%s" (.DisplayName | truncate 8) (.RoleName | truncate 8) (random 20) (unix_time) | truncate 63 }}"#;
const DEFAULT_RENEW: &str = r#"ALTER ROLE "{{name}}" VALID UNTIL '{{expiration}}';"#;
const DEFAULT_CHANGE_PASSWORD: &str = r#"ALTER ROLE "{{username}}" WITH PASSWORD '{{password}}';"#;

/// How often a statement that lost a catalog race is tried before giving up.
const CONFLICT_ATTEMPTS: u32 = 12;

/// How `{{password}}` reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PasswordAuth {
    /// The plaintext password (the server hashes it per `password_encryption`).
    Password,
    /// A SCRAM-SHA-256 verifier computed here, so the plaintext never reaches the server.
    ScramSha256,
}

struct PgConnector {
    config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

/// A pooled client; its connection task ends when the client is dropped.
pub(crate) struct PgConn {
    client: Client,
}

#[async_trait]
impl Connector for PgConnector {
    type Conn = PgConn;

    async fn connect(&self) -> DbResult<PgConn> {
        let (client, task) = match &self.tls {
            None => {
                let (client, connection) = self.config.connect(NoTls).await.map_err(classify)?;
                (client, tokio::spawn(InlineWakes::new(connection)))
            }
            Some(tls) => {
                let (client, connection) =
                    self.config.connect(tls.clone()).await.map_err(classify)?;
                (client, tokio::spawn(InlineWakes::new(connection)))
            }
        };
        drop(task);
        Ok(PgConn { client })
    }

    fn is_broken(conn: &PgConn) -> bool {
        conn.client.is_closed()
    }
}

struct Connected {
    pool: Pool<PgConnector>,
    password_auth: PasswordAuth,
    /// The root password, to keep it out of error messages.
    root_password: String,
    /// Held from a statement that grants or revokes on every object of a schema (`… ON ALL
    /// TABLES …`) to its transaction's commit. Run concurrently, PostgreSQL makes such
    /// statements deadlock (detected only after `deadlock_timeout`) or fail with "tuple
    /// concurrently updated"; measured with the seed's statement at 16 clients, one at a time
    /// was several times faster than concurrently with retries. Other statements (the
    /// `CREATE ROLE` before the grant, `IN ROLE` grants, dropping a user that holds nothing)
    /// still run in parallel.
    catalog_wide: CatalogLock,
    /// Default revocations waiting for, or running in, one batch (see [`crate::batch`]).
    revocations: Batcher<String>,
    /// Whether the last default revocation found nothing depending on its roles. While it
    /// does, the next one tries `DROP ROLE` before looking anything up: one round trip
    /// instead of two for members of group roles, at the cost of a failed statement when a
    /// role holding grants comes after such members.
    plain_drops: AtomicBool,
}

/// The lock behind [`Connected::catalog_wide`], which hands itself over: a holder that lets go
/// while others wait yields, so the next holder sends its statements before the releasing
/// request finishes its own bookkeeping. Only one such transaction runs at a time, so every
/// microsecond between one's end and the next one's start is lost throughput.
#[derive(Default)]
pub(crate) struct CatalogLock {
    mutex: tokio::sync::Mutex<()>,
    waiting: AtomicUsize,
}

pub(crate) struct CatalogGuard<'a> {
    _held: tokio::sync::MutexGuard<'a, ()>,
    waiting: &'a AtomicUsize,
}

impl CatalogLock {
    pub(crate) async fn lock(&self) -> CatalogGuard<'_> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let held = self.mutex.lock().await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        CatalogGuard {
            _held: held,
            waiting: &self.waiting,
        }
    }
}

impl CatalogGuard<'_> {
    /// Releases the lock, and lets a waiter run first if there is one.
    pub(crate) async fn hand_over(self) {
        let waiting = self.waiting.load(Ordering::Relaxed) > 0;
        drop(self);
        if waiting {
            tokio::task::yield_now().await;
        }
    }
}

/// Whether statements grant or revoke on all objects of a schema at once.
fn touches_whole_schemas(queries: &[String]) -> bool {
    queries.iter().any(|query| {
        let upper = query.to_ascii_uppercase();
        upper
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .any(|pair| pair == ["ON", "ALL"])
    })
}

/// The PostgreSQL plugin.
pub struct Postgres {
    state: RwLock<Option<Arc<Connected>>>,
}

impl Default for Postgres {
    fn default() -> Self {
        Postgres::new()
    }
}

impl Postgres {
    pub fn new() -> Self {
        Postgres {
            state: RwLock::new(None),
        }
    }

    fn connected(&self) -> DbResult<Arc<Connected>> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or(DbError::NotInitialized)
    }
}

/// Maps a driver error to the plugin's classes: unreachable or refused logins are connection
/// errors (worth retrying later), anything the server said about a statement is not.
fn classify(err: tokio_postgres::Error) -> DbError {
    match err.as_db_error() {
        None => DbError::Connection(err.to_string()),
        Some(db) => {
            let code = db.code().code();
            let message = format!("{}: {}", db.severity(), db.message());
            // Class 08: connection exceptions; 28: authorization; 57P0x: shutdown; 53: resources;
            // 3D000: the database does not exist.
            if code.starts_with("08")
                || code.starts_with("28")
                || code.starts_with("57P0")
                || code.starts_with("53")
                || code == "3D000"
            {
                DbError::Connection(message)
            } else {
                DbError::Statement(message)
            }
        }
    }
}

/// PostgreSQL aborts concurrent `GRANT … ON ALL TABLES` with "tuple concurrently updated"
/// (hashicorp/vault#1857); such a transaction, like a serialization failure or deadlock,
/// succeeds when simply run again.
fn is_retryable(err: &tokio_postgres::Error) -> bool {
    err.as_db_error().is_some_and(|db| {
        let code = db.code();
        *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || (*code == SqlState::INTERNAL_ERROR
                && (db.message().contains("tuple concurrently updated")
                    || db.message().contains("tuple concurrently deleted")))
    })
}

/// Quotes an identifier for interpolation into SQL.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Runs queries in one transaction on a pooled connection. A connection that failed at the
/// transport level is not returned to the pool.
/// How a transaction behind an [`IntentGate`] fails.
enum GatedError {
    Database(tokio_postgres::Error),
    /// The gate failed: the transaction was rolled back.
    Abandoned,
}

/// Runs `queries` in one transaction that commits only once `intent` opens. PostgreSQL's DDL
/// is transactional, so nothing the queries create exists before that commit. `catalog` is
/// taken from the first statement that grants or revokes on whole schemas until the commit:
/// what comes before it (`CREATE ROLE`, with its password hashing) runs in parallel.
async fn run_gated_transaction(
    conn: &mut Pooled<PgConnector>,
    queries: &[String],
    intent: &IntentGate,
    catalog: &CatalogLock,
) -> Result<(), GatedError> {
    let result = async {
        let mut one_at_a_time = None;
        let tx = conn
            .client
            .transaction()
            .await
            .map_err(GatedError::Database)?;
        for query in queries {
            if one_at_a_time.is_none() && touches_whole_schemas(std::slice::from_ref(query)) {
                one_at_a_time = Some(catalog.lock().await);
            }
            tx.batch_execute(query)
                .await
                .map_err(GatedError::Database)?;
        }
        intent.wait().await.map_err(|_| GatedError::Abandoned)?;
        tx.commit().await.map_err(GatedError::Database)
    }
    .await;
    if let Err(GatedError::Database(err)) = &result
        && err.as_db_error().is_none()
    {
        conn.discard();
    }
    result
}

/// The columns of the revocation lookups below, about a role `r` (NULL if it does not exist).
macro_rules! revocation_lookup_columns {
    () => {
        "SELECT current_database()::text, r.oid IS NOT NULL, \
         EXISTS (SELECT 1 FROM pg_shdepend d \
             WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = r.oid), \
         ARRAY(SELECT DISTINCT n.nspname::text FROM pg_shdepend d \
             JOIN pg_class c ON c.oid = d.objid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE d.refclassid = 'pg_authid'::regclass AND d.classid = 'pg_class'::regclass \
             AND d.deptype = 'a' AND d.refobjid = r.oid \
             AND d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())) "
    };
}

/// What a revocation needs to know about a role, in one round trip: the connected database,
/// whether the role exists, whether anything depends on it (privileges, owned objects, default
/// privileges, in any database), and the schemas in this database holding objects it has
/// privileges on. The last two come from the role's dependency records (an index lookup), not
/// from `information_schema.role_column_grants` as in Vault's plugin, a view that expands the
/// privileges of every role on every column and takes tens of milliseconds once hundreds of
/// roles hold grants.
pub const REVOCATION_LOOKUP: &str = concat!(
    revocation_lookup_columns!(),
    "FROM (VALUES (1)) AS one LEFT JOIN pg_roles r ON r.rolname = $1"
);

/// [`REVOCATION_LOOKUP`] for several roles in one query: a row per name of the `$1` array, in
/// its order.
const BATCH_REVOCATION_LOOKUP: &str = concat!(
    revocation_lookup_columns!(),
    "FROM unnest($1::text[]) WITH ORDINALITY AS wanted(name, position) \
     LEFT JOIN pg_roles r ON r.rolname = wanted.name ORDER BY wanted.position"
);

/// The statements that take everything away from `roles` (one quoted name, or several
/// separated by commas: every statement takes a list) short of dropping them: privileges in
/// `schemas` and `public`, the database's `CONNECT`, then owned objects (handed to the
/// connecting user) and whatever privileges and default privileges remain.
pub fn revocation_steps(roles: &str, schemas: &[String], database: &str) -> Vec<String> {
    let mut steps = Vec::new();
    for schema in schemas {
        let schema = quote_ident(schema);
        steps.push(format!(
            "REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA {schema} FROM {roles}"
        ));
        steps.push(format!("REVOKE USAGE ON SCHEMA {schema} FROM {roles}"));
    }
    steps.push(format!(
        "REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM {roles}"
    ));
    steps.push(format!(
        "REVOKE ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA public FROM {roles}"
    ));
    steps.push(format!("REVOKE USAGE ON SCHEMA public FROM {roles}"));
    steps.push(format!(
        "REVOKE CONNECT ON DATABASE {} FROM {roles}",
        quote_ident(database)
    ));
    // Objects the users created survive them, owned by the connecting user.
    steps.push(format!("REASSIGN OWNED BY {roles} TO CURRENT_USER"));
    steps.push(format!("DROP OWNED BY {roles}"));
    steps
}

/// The answer to [`REVOCATION_LOOKUP`].
struct RoleDependencies {
    database: String,
    exists: bool,
    has_dependencies: bool,
    privileged_schemas: Vec<String>,
}

impl Connected {
    async fn conn(&self) -> DbResult<Pooled<PgConnector>> {
        self.pool.get().await
    }

    fn password_value(&self, password: &str) -> String {
        match self.password_auth {
            PasswordAuth::Password => password.to_owned(),
            PasswordAuth::ScramSha256 => scram_sha256_verifier(password),
        }
    }

    async fn role_exists(&self, username: &str) -> DbResult<bool> {
        let conn = self.conn().await?;
        let row = conn
            .client
            .query_typed_one(
                "SELECT exists (SELECT 1 FROM pg_roles WHERE rolname = $1)",
                &[(&username, Type::TEXT)],
            )
            .await
            .map_err(classify)?;
        Ok(row.get(0))
    }

    /// Revokes what the role holds, hands its objects to the connecting user, and drops it:
    /// just `DROP ROLE` while [`Connected::plain_drops`] says so, else (or if that fails) a
    /// lookup of what depends on the role first. Each step is attempted even if an earlier one
    /// failed, to take away as much access as possible; only the final `DROP ROLE` decides the
    /// outcome.
    async fn default_delete(&self, username: &str) -> DbResult<()> {
        let conn = self.conn().await?;
        let role = quote_ident(username);
        let drop_role = format!("DROP ROLE IF EXISTS {role}");
        if self.plain_drops.load(Ordering::Relaxed) {
            match conn.client.batch_execute(&drop_role).await {
                Ok(()) => return Ok(()),
                Err(err) if err.as_db_error().is_none() => return Err(classify(err)),
                Err(_) => self.plain_drops.store(false, Ordering::Relaxed),
            }
        }
        let row = conn
            .client
            .query_typed_one(REVOCATION_LOOKUP, &[(&username, Type::TEXT)])
            .await
            .map_err(classify)?;
        let role_deps = RoleDependencies {
            database: row.get(0),
            exists: row.get(1),
            has_dependencies: row.get(2),
            privileged_schemas: row.get(3),
        };
        if !role_deps.exists {
            return Ok(());
        }
        // A role that holds no privilege and owns nothing (a member of a group role, say) is
        // simply dropped: every `REVOKE … ON ALL TABLES` would rewrite each table's catalog row
        // to change nothing, and would have to wait its turn with the others. If
        // something came to depend on the role since the lookup, the drop fails and the full
        // revocation below runs.
        if !role_deps.has_dependencies {
            self.plain_drops.store(true, Ordering::Relaxed);
            match conn.client.batch_execute(&drop_role).await {
                Ok(()) => return Ok(()),
                Err(err) if err.as_db_error().is_none() => return Err(classify(err)),
                Err(_) => {}
            }
        }
        let steps = revocation_steps(&role, &role_deps.privileged_schemas, &role_deps.database);
        // All of it in one transaction first: one round trip and one commit (one WAL flush)
        // instead of one per statement. Such a transaction rewrites the catalog rows of every
        // table, the schema and the database, and concurrent ones deadlock over them, so they
        // run one at a time; each takes a few milliseconds. If any statement fails, the
        // transaction is rolled back whole and the steps run one by one below, where a failing
        // step does not keep the others from taking access away.
        let whole = self.catalog_wide.lock().await;
        let script = format!("BEGIN; {}; {drop_role}; COMMIT", steps.join("; "));
        match conn.client.batch_execute(&script).await {
            Ok(()) => {
                whole.hand_over().await;
                return Ok(());
            }
            Err(err) if err.as_db_error().is_none() => return Err(classify(err)),
            Err(_) => {
                conn.client
                    .batch_execute("ROLLBACK")
                    .await
                    .map_err(classify)?;
            }
        }
        // Statement by statement, still one at a time. A conflict all the same (with statements
        // from outside Mayfly) is retried.
        let _whole = whole;
        let mut last_error = None;
        for step in &steps {
            let mut attempt = 0;
            loop {
                match conn.client.batch_execute(step).await {
                    Ok(()) => break,
                    Err(err) if is_retryable(&err) && attempt + 1 < CONFLICT_ATTEMPTS => {
                        attempt += 1;
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                    Err(err) => {
                        last_error = Some(classify(err));
                        break;
                    }
                }
            }
        }
        match conn.client.batch_execute(&drop_role).await {
            Ok(()) => Ok(()),
            Err(err) => {
                let err = classify(err);
                Err(match last_error {
                    Some(earlier) => DbError::Statement(format!(
                        "could not perform all revocation statements: {earlier}; {err}"
                    )),
                    None => err,
                })
            }
        }
    }

    /// [`Connected::default_delete`], batched with the default revocations that arrive while
    /// one runs (see [`crate::batch`]).
    async fn default_delete_batched(&self, username: &str) -> DbResult<()> {
        self.revocations
            .run(username.to_owned(), |names| self.delete_many(names))
            .await
    }

    /// Default revocation of several roles with a statement for all of them where one
    /// statement can do it: one `DROP ROLE` of them all while [`Connected::plain_drops`] says
    /// so; else, or if that fails, a lookup of them all, one `DROP ROLE` for those that nothing
    /// depends on and one transaction for the others. Whatever that does not settle (a failed
    /// statement fails all the roles in it) goes through [`Connected::default_delete`] one role
    /// at a time, so a role that cannot be dropped keeps none of the others from going.
    async fn delete_many(&self, names: Vec<String>) -> Vec<DbResult<()>> {
        if let [name] = names.as_slice() {
            return vec![self.default_delete(name).await];
        }
        let mut settled = vec![false; names.len()];
        if let Ok(conn) = self.conn().await {
            self.delete_together(&conn, &names, &mut settled).await;
        }
        let mut outcomes = Vec::with_capacity(names.len());
        for (name, done) in names.iter().zip(settled) {
            outcomes.push(if done {
                Ok(())
            } else {
                self.default_delete(name).await
            });
        }
        outcomes
    }

    /// The batched part of [`Connected::delete_many`]: marks the roles it dropped, or found
    /// gone, in `settled`.
    async fn delete_together(
        &self,
        conn: &Pooled<PgConnector>,
        names: &[String],
        settled: &mut [bool],
    ) {
        let quoted = |indexes: &mut dyn Iterator<Item = usize>| {
            indexes
                .map(|index| quote_ident(&names[index]))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if self.plain_drops.load(Ordering::Relaxed) {
            let all = quoted(&mut (0..names.len()));
            match conn
                .client
                .batch_execute(&format!("DROP ROLE IF EXISTS {all}"))
                .await
            {
                Ok(()) => {
                    settled.fill(true);
                    return;
                }
                Err(err) if err.as_db_error().is_none() => return,
                Err(_) => self.plain_drops.store(false, Ordering::Relaxed),
            }
        }
        let Ok(rows) = conn
            .client
            .query_typed(BATCH_REVOCATION_LOOKUP, &[(&names, Type::TEXT_ARRAY)])
            .await
        else {
            return;
        };
        if rows.len() != names.len() {
            return;
        }
        let mut database = String::new();
        let (mut simple, mut dependent) = (Vec::new(), Vec::new());
        let mut schemas: Vec<String> = Vec::new();
        for (index, row) in rows.iter().enumerate() {
            database = row.get(0);
            let (exists, has_dependencies): (bool, bool) = (row.get(1), row.get(2));
            if !exists {
                settled[index] = true;
            } else if !has_dependencies {
                simple.push(index);
            } else {
                dependent.push(index);
                for schema in row.get::<_, Vec<String>>(3) {
                    if !schemas.contains(&schema) {
                        schemas.push(schema);
                    }
                }
            }
        }
        if dependent.is_empty() {
            self.plain_drops.store(true, Ordering::Relaxed);
        }
        if !simple.is_empty()
            && conn
                .client
                .batch_execute(&format!(
                    "DROP ROLE IF EXISTS {}",
                    quoted(&mut simple.iter().copied())
                ))
                .await
                .is_ok()
        {
            for index in simple {
                settled[index] = true;
            }
        }
        if dependent.is_empty() {
            return;
        }
        let roles = quoted(&mut dependent.iter().copied());
        let steps = revocation_steps(&roles, &schemas, &database);
        let script = format!(
            "BEGIN; {}; DROP ROLE IF EXISTS {roles}; COMMIT",
            steps.join("; ")
        );
        let whole = self.catalog_wide.lock().await;
        match conn.client.batch_execute(&script).await {
            Ok(()) => {
                for index in dependent {
                    settled[index] = true;
                }
                whole.hand_over().await;
            }
            Err(_) => {
                // A broken connection is discarded by the pool's check; either way the roles
                // go one at a time after this.
                let _ = conn.client.batch_execute("ROLLBACK").await;
            }
        }
    }

    async fn run_statements(&self, queries: &[String]) -> DbResult<()> {
        let mut conn = self.conn().await?;
        match run_gated_transaction(&mut conn, queries, &IntentGate::open(), &self.catalog_wide)
            .await
        {
            Ok(()) => Ok(()),
            Err(GatedError::Database(err)) => Err(classify(err)),
            Err(GatedError::Abandoned) => Err(DbError::Abandoned),
        }
    }
}

#[async_trait]
impl DatabasePlugin for Postgres {
    fn type_name(&self) -> &'static str {
        "postgres"
    }

    fn default_username_template(&self) -> &'static str {
        DEFAULT_USERNAME_TEMPLATE
    }

    async fn initialize(&self, req: InitializeRequest) -> DbResult<Map<String, Value>> {
        let root_password = setting(&req.config, "password").unwrap_or_default();
        let connected = connect_settings(&req.config)
            .await
            .map_err(|err| err.redact(&[&root_password]))?;
        let connected = Arc::new(connected);
        if req.verify_connection {
            let conn = connected
                .conn()
                .await
                .map_err(|err| err.redact(&[&root_password]))?;
            conn.client
                .simple_query("SELECT 1")
                .await
                .map_err(|err| classify(err).redact(&[&root_password]))?;
        }
        let previous = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .replace(connected);
        if let Some(previous) = previous {
            previous.pool.close();
        }
        Ok(req.config)
    }

    async fn new_user(&self, req: NewUserRequest<'_>) -> DbResult<()> {
        if req.statements.is_empty() {
            return Err(DbError::Statement("empty creation statements".to_owned()));
        }
        let state = self.connected()?;
        let password = state.password_value(req.password);
        let expiration = format_expiration(req.expiration);
        let vars = [
            ("name", req.username),
            ("username", req.username),
            ("password", password.as_str()),
            ("expiration", expiration.as_str()),
        ];
        let queries: Vec<String> = render_all(req.statements, Dialect::Postgres, &vars);
        let secrets = [
            req.password,
            password.as_str(),
            state.root_password.as_str(),
        ];
        let mut attempt = 0;
        let failure = loop {
            let mut conn = match state.conn().await {
                Ok(conn) => conn,
                Err(err) => break err,
            };
            match run_gated_transaction(&mut conn, &queries, req.intent, &state.catalog_wide).await
            {
                Ok(()) => return Ok(()),
                // Rolled back before anything existed: there is nothing to undo.
                Err(GatedError::Abandoned) => return Err(DbError::Abandoned),
                Err(GatedError::Database(err))
                    if is_retryable(&err) && attempt + 1 < CONFLICT_ATTEMPTS =>
                {
                    attempt += 1;
                    drop(conn);
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(GatedError::Database(err)) => break classify(err),
            }
        };
        if !req.rollback_statements.is_empty() {
            let rollback: Vec<String> =
                render_all(req.rollback_statements, Dialect::Postgres, &vars);
            if let Ok(conn) = state.conn().await {
                for query in &rollback {
                    if let Err(err) = conn.client.batch_execute(query).await {
                        tracing::warn!(error = %classify(err).redact(&secrets), "A rollback statement failed.");
                    }
                }
            }
        }
        Err(failure.redact(&secrets))
    }

    async fn update_user(&self, req: UpdateUserRequest<'_>) -> DbResult<()> {
        let state = self.connected()?;
        match req.change {
            UserChange::Password {
                password,
                statements,
            } => {
                let value = state.password_value(password);
                let defaults = [DEFAULT_CHANGE_PASSWORD.to_owned()];
                let statements = if statements.is_empty() {
                    &defaults[..]
                } else {
                    statements
                };
                let vars = [
                    ("name", req.username),
                    ("username", req.username),
                    ("password", value.as_str()),
                ];
                let queries: Vec<String> = render_all(statements, Dialect::Postgres, &vars);
                state
                    .run_statements(&queries)
                    .await
                    .map_err(|err| err.redact(&[password, &value, &state.root_password]))
            }
            UserChange::Expiration {
                expiration,
                statements,
            } => {
                let defaults = [DEFAULT_RENEW.to_owned()];
                let statements = if statements.is_empty() {
                    &defaults[..]
                } else {
                    statements
                };
                let expiration = format_expiration(expiration);
                let vars = [
                    ("name", req.username),
                    ("username", req.username),
                    ("expiration", expiration.as_str()),
                ];
                let queries: Vec<String> = render_all(statements, Dialect::Postgres, &vars);
                state
                    .run_statements(&queries)
                    .await
                    .map_err(|err| err.redact(&[&state.root_password]))
            }
        }
    }

    async fn delete_user(&self, req: DeleteUserRequest<'_>) -> DbResult<()> {
        let state = self.connected()?;
        let result = if req.statements.is_empty() {
            state.default_delete_batched(req.username).await
        } else if !state.role_exists(req.username).await? {
            // Revocation must be idempotent; custom statements often are not.
            Ok(())
        } else {
            let vars = [("name", req.username), ("username", req.username)];
            let queries: Vec<String> = render_all(req.statements, Dialect::Postgres, &vars);
            state.run_statements(&queries).await
        };
        result.map_err(|err| err.redact(&[&state.root_password]))
    }

    async fn close(&self) {
        let previous = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(previous) = previous {
            previous.pool.close();
        }
    }
}

/// Exponential backoff with full jitter, capped at about a second.
fn backoff(attempt: u32) -> Duration {
    let cap_ms = (10u64 << attempt.min(7)).min(1000);
    let mut byte = [0u8; 2];
    // A failing random source only loses the jitter.
    let _ = aws_lc_rs::rand::fill(&mut byte);
    let jitter = u64::from(u16::from_le_bytes(byte)) % (cap_ms + 1);
    Duration::from_millis(jitter.max(1))
}

/// libpq's TLS parameters, which tokio-postgres does not all understand, taken out of the
/// connection string.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct TlsParams {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    sslcert: Option<String>,
    sslkey: Option<String>,
}

const TLS_KEYS: &[&str] = &["sslmode", "sslrootcert", "sslcert", "sslkey"];

impl TlsParams {
    fn set(&mut self, key: &str, value: String) {
        match key {
            "sslmode" => self.sslmode = Some(value),
            "sslrootcert" => self.sslrootcert = Some(value),
            "sslcert" => self.sslcert = Some(value),
            _ => self.sslkey = Some(value),
        }
    }
}

/// Splits the TLS parameters out of a URL (`postgres://…?sslmode=…`) or key/value
/// (`host=… sslmode=…`) connection string.
fn take_tls_params(conn_str: &str) -> (String, TlsParams) {
    let mut params = TlsParams::default();
    if conn_str.starts_with("postgres://") || conn_str.starts_with("postgresql://") {
        let Some((base, query)) = conn_str.split_once('?') else {
            return (conn_str.to_owned(), params);
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if TLS_KEYS.contains(&key) {
                let value = percent_encoding::percent_decode_str(value)
                    .decode_utf8_lossy()
                    .into_owned();
                params.set(key, value);
            } else {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return (rest, params);
    }
    let mut kept = Vec::new();
    for (key, raw, value) in key_value_pairs(conn_str) {
        if TLS_KEYS.contains(&key.as_str()) {
            params.set(&key, value);
        } else {
            kept.push(raw);
        }
    }
    (kept.join(" "), params)
}

/// The `key=value` pairs of a libpq connection string, each with its original text.
fn key_value_pairs(text: &str) -> Vec<(String, String, String)> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return pairs;
        }
        let mut raw = String::new();
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            raw.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            raw.push('=');
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek() == Some(&'\'') {
                raw.push('\'');
                chars.next();
                while let Some(c) = chars.next() {
                    raw.push(c);
                    match c {
                        '\\' => {
                            if let Some(escaped) = chars.next() {
                                raw.push(escaped);
                                value.push(escaped);
                            }
                        }
                        '\'' => break,
                        other => value.push(other),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    value.push(c);
                    raw.push(c);
                    chars.next();
                }
            }
        }
        pairs.push((key, raw, value));
    }
}

/// Reads a libpq file parameter, or a PEM value from the connection details.
async fn pem_source(inline: Option<String>, path: Option<&String>) -> DbResult<Option<String>> {
    if let Some(pem) = inline.filter(|pem| !pem.trim().is_empty()) {
        return Ok(Some(pem));
    }
    match path {
        None => Ok(None),
        Some(path) => tokio::fs::read_to_string(path)
            .await
            .map(Some)
            .map_err(|err| DbError::Config(format!("cannot read {path:?}: {err}"))),
    }
}

/// Parses the connection details into a ready (not yet connected) pool.
async fn connect_settings(config: &Map<String, Value>) -> DbResult<Connected> {
    let template = setting(config, "connection_url")
        .filter(|url| !url.is_empty())
        .ok_or_else(|| DbError::Config("connection_url cannot be empty".to_owned()))?;
    let username = setting(config, "username").unwrap_or_default();
    let password = setting(config, "password").unwrap_or_default();
    let escape = !bool_setting(config, "disable_escaping")?;
    let encode = |value: &str| {
        if escape {
            percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        } else {
            value.to_owned()
        }
    };
    let conn_str = render(
        &template,
        &[
            ("username", &encode(&username)),
            ("name", &encode(&username)),
            ("password", &encode(&password)),
        ],
    );
    let (conn_str, tls_params) = take_tls_params(&conn_str);
    let mut pg_config = tokio_postgres::Config::from_str(&conn_str)
        .map_err(|err| DbError::Config(format!("invalid connection_url: {err}")))?;
    if pg_config.get_connect_timeout().is_none() {
        pg_config.connect_timeout(Duration::from_secs(10));
    }
    pg_config.application_name("mayfly");

    let password_auth = match setting(config, "password_authentication").as_deref() {
        None | Some("") | Some("password") => PasswordAuth::Password,
        Some("scram-sha-256") => PasswordAuth::ScramSha256,
        Some(other) => {
            return Err(DbError::Config(format!(
                "'{other}' is not a valid password authentication type"
            )));
        }
    };

    let ca_pem = pem_source(setting(config, "tls_ca"), tls_params.sslrootcert.as_ref()).await?;
    let client_cert = pem_source(
        setting(config, "tls_certificate"),
        tls_params.sslcert.as_ref(),
    )
    .await?;
    let client_key = pem_source(setting(config, "private_key"), tls_params.sslkey.as_ref()).await?;
    let mode = tls_params.sslmode.as_deref().unwrap_or("prefer");
    let (ssl_mode, verify) = match mode {
        "disable" => (SslMode::Disable, None),
        "allow" | "prefer" => (SslMode::Prefer, Some(Verify::Nothing)),
        // libpq verifies the chain under `require` when a root certificate is given.
        "require" if ca_pem.is_some() => (SslMode::Require, Some(Verify::Chain)),
        "require" => (SslMode::Require, Some(Verify::Nothing)),
        "verify-ca" => (SslMode::Require, Some(Verify::Chain)),
        "verify-full" => (SslMode::Require, Some(Verify::Full)),
        other => return Err(DbError::Config(format!("invalid sslmode {other:?}"))),
    };
    pg_config.ssl_mode(ssl_mode);
    let tls = match verify {
        None => None,
        Some(verify) => Some(tokio_postgres_rustls::MakeRustlsConnect::new(
            client_config(&TlsSettings {
                verify,
                ca_pem,
                client_cert_pem: client_cert,
                client_key_pem: client_key,
            })?,
        )),
    };
    let settings = PoolSettings::from_config(config)?;
    Ok(Connected {
        pool: Pool::new(
            PgConnector {
                config: pg_config,
                tls,
            },
            settings,
        ),
        password_auth,
        root_password: password,
        catalog_wide: CatalogLock::default(),
        revocations: Batcher::new(REVOCATION_BATCHES),
        plain_drops: AtomicBool::new(true),
    })
}

/// A SCRAM-SHA-256 verifier in PostgreSQL's stored format
/// (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, RFC 5802/7677).
pub fn scram_sha256_verifier(password: &str) -> String {
    let mut salt = [0u8; 16];
    // Without randomness there is nothing safe to produce; this only fails if the OS does.
    aws_lc_rs::rand::fill(&mut salt).unwrap_or_else(|_| panic!("system random generator failed"));
    scram_with_salt(password, &salt, 4096)
}

fn scram_with_salt(password: &str, salt: &[u8], iterations: u32) -> String {
    use aws_lc_rs::{digest, hmac, pbkdf2};
    let mut salted = [0u8; 32];
    let rounds = std::num::NonZeroU32::new(iterations).unwrap_or(std::num::NonZeroU32::MIN);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        salt,
        password.as_bytes(),
        &mut salted,
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, &salted);
    let client_key = hmac::sign(&key, b"Client Key");
    let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
    let server_key = hmac::sign(&key, b"Server Key");
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        b64.encode(salt),
        b64.encode(stored_key.as_ref()),
        b64.encode(server_key.as_ref())
    )
}

/// Whether `password` matches a stored SCRAM-SHA-256 verifier (e.g. `pg_authid.rolpassword`).
pub fn scram_matches(verifier: &str, password: &str) -> bool {
    let parse = || -> Option<(u32, Vec<u8>)> {
        let rest = verifier.strip_prefix("SCRAM-SHA-256$")?;
        let (iterations, rest) = rest.split_once(':')?;
        let (salt, _) = rest.split_once('$')?;
        let salt = base64::engine::general_purpose::STANDARD
            .decode(salt)
            .ok()?;
        Some((iterations.parse().ok()?, salt))
    };
    match parse() {
        Some((iterations, salt)) => scram_with_salt(password, &salt, iterations) == verifier,
        None => false,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn schema_wide_grants_are_recognised() {
        let seed = [
            "CREATE ROLE \"v-x\" WITH LOGIN PASSWORD 'p'".to_owned(),
            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"v-x\"".to_owned(),
        ];
        assert!(touches_whole_schemas(&seed));
        let spaced = ["revoke all on\n  all   sequences in schema s from x".to_owned()];
        assert!(touches_whole_schemas(&spaced));
        let group = ["CREATE ROLE \"v-x\" WITH LOGIN IN ROLE readers".to_owned()];
        assert!(!touches_whole_schemas(&group));
    }

    use super::*;

    /// One batch drops group members, users holding grants and a user owning a table, and
    /// takes a name that is already gone as done, all without the one-role fallback.
    #[tokio::test]
    async fn one_batch_drops_members_grant_holders_and_owners_together() {
        use crate::testing::{TestDatabase, TestPostgres, unique};
        let db = TestPostgres::start().await;
        let group = unique("mayfly_g");
        let members: Vec<String> = (0..3).map(|_| unique("v_member")).collect();
        let holders: Vec<String> = (0..3).map(|_| unique("v_holder")).collect();
        let owner = unique("v_owner");
        let mut setup = format!(
            "CREATE ROLE {group} NOLOGIN; GRANT SELECT ON t0 TO {group}; \
             GRANT CREATE ON SCHEMA public TO PUBLIC; CREATE ROLE {owner} LOGIN; \
             SET ROLE {owner}; CREATE TABLE owned_by_{owner} (x int); RESET ROLE;"
        );
        for member in &members {
            setup.push_str(&format!("CREATE ROLE {member} LOGIN IN ROLE {group};"));
        }
        for holder in &holders {
            setup.push_str(&format!(
                "CREATE ROLE {holder} LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public \
                 TO {holder}; GRANT USAGE ON SCHEMA public TO {holder};"
            ));
        }
        db.client.batch_execute(&setup).await.unwrap();

        let plugin = Postgres::new();
        crate::testing::initialize(&plugin, &db).await;
        let state = plugin.connected().unwrap();
        let mut names: Vec<String> = members.iter().chain(&holders).cloned().collect();
        names.push(owner.clone());
        names.push(unique("v_gone"));
        let mut settled = vec![false; names.len()];
        {
            let conn = state.conn().await.unwrap();
            state.delete_together(&conn, &names, &mut settled).await;
        }
        assert!(settled.iter().all(|done| *done), "{names:?}: {settled:?}");
        for name in &names {
            assert!(!db.user_exists(name).await, "{name} is gone");
        }
        let table_owner: String = db
            .scalar(&format!(
                "SELECT tableowner::text FROM pg_tables WHERE tablename = 'owned_by_{owner}'"
            ))
            .await;
        assert_eq!(table_owner, "postgres");
        let group_reads: bool = db
            .scalar(&format!(
                "SELECT has_table_privilege('{group}', 't0', 'SELECT')"
            ))
            .await;
        assert!(group_reads, "the group keeps its grant");

        // Roles holding grants were in that batch: the next one looks before dropping, and
        // finding only members, lets the one after drop at once.
        assert!(!state.plain_drops.load(Ordering::Relaxed));
        for expect_plain_after in [true, true] {
            let members: Vec<String> = (0..3).map(|_| unique("v_member")).collect();
            let create: String = members
                .iter()
                .map(|member| format!("CREATE ROLE {member} LOGIN IN ROLE {group};"))
                .collect();
            db.client.batch_execute(&create).await.unwrap();
            let mut settled = vec![false; members.len()];
            let conn = state.conn().await.unwrap();
            state.delete_together(&conn, &members, &mut settled).await;
            assert!(settled.iter().all(|done| *done), "{members:?}: {settled:?}");
            for member in &members {
                assert!(!db.user_exists(member).await, "{member} is gone");
            }
            assert_eq!(
                state.plain_drops.load(Ordering::Relaxed),
                expect_plain_after
            );
        }
        plugin.close().await;
        db.client
            .batch_execute(&format!("DROP OWNED BY {group}; DROP ROLE {group}"))
            .await
            .unwrap();
        db.teardown().await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_released_catalog_lock_goes_to_its_waiter_first() {
        let lock = Arc::new(CatalogLock::default());
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let held = lock.lock().await;
        let waiter = {
            let (lock, order) = (lock.clone(), order.clone());
            tokio::spawn(async move {
                let _held = lock.lock().await;
                order.lock().unwrap().push("waiter sent its statements");
            })
        };
        // Let the waiter queue up behind the holder.
        tokio::task::yield_now().await;
        held.hand_over().await;
        order
            .lock()
            .unwrap()
            .push("holder finished its bookkeeping");
        waiter.await.unwrap();
        assert_eq!(
            *order.lock().unwrap(),
            [
                "waiter sent its statements",
                "holder finished its bookkeeping"
            ]
        );
        // With nobody waiting, letting go does not yield.
        let alone = lock.lock().await;
        assert_eq!(lock.waiting.load(Ordering::Relaxed), 0);
        alone.hand_over().await;
    }

    #[test]
    fn tls_parameters_are_taken_from_urls_and_key_value_strings() {
        let (rest, params) = take_tls_params(
            "postgresql://u:p@127.0.0.1:5432/db?sslmode=verify-full&connect_timeout=5&sslrootcert=%2Ftmp%2Fca.pem",
        );
        assert_eq!(rest, "postgresql://u:p@127.0.0.1:5432/db?connect_timeout=5");
        assert_eq!(params.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(params.sslrootcert.as_deref(), Some("/tmp/ca.pem"));

        let (rest, params) =
            take_tls_params("host=127.0.0.1 user=postgres password='a b\\'c' sslmode=require");
        assert_eq!(rest, "host=127.0.0.1 user=postgres password='a b\\'c'");
        assert_eq!(params.sslmode.as_deref(), Some("require"));
        assert!(tokio_postgres::Config::from_str(&rest).is_ok());
    }

    #[test]
    fn scram_verifiers_round_trip() {
        let verifier = scram_sha256_verifier("pencil");
        assert!(verifier.starts_with("SCRAM-SHA-256$4096:"));
        assert!(scram_matches(&verifier, "pencil"));
        assert!(!scram_matches(&verifier, "pencil2"));
    }

    #[test]
    fn backoff_stays_small() {
        for attempt in 0..20 {
            assert!(backoff(attempt) <= Duration::from_millis(1000));
        }
    }
}
