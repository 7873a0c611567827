//! MySQL and MariaDB (`mysql-database-plugin` and the 16-character legacy variants for
//! Aurora, RDS and old servers): mysql_async over rustls, with Vault's connection URL format
//! and default statements.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use async_trait::async_trait;
use mysql_async::{
    ClientIdentity, Opts, OptsBuilder, PoolConstraints, PoolOpts, SslOpts, TxOpts,
    prelude::Queryable,
};
use serde_json::{Map, Value};

use super::{
    DatabasePlugin, DbError, DbResult, DeleteUserRequest, InitializeRequest, IntentGate,
    NewUserRequest, PoolSettings, UpdateUserRequest, UserChange, bool_setting, format_expiration,
    setting,
};
use crate::{
    batch::{Batcher, REVOCATION_BATCHES},
    pool::{Connector, Pool, Pooled},
    statements::{Dialect, expand, render, render_all},
    tls::split_cert_and_key,
};

const DEFAULT_USERNAME_TEMPLATE: &str = r#"{{ printf "v-%s-%s-%s-%s" (.DisplayName | truncate 10) (.RoleName | truncate 10) (random 20) (unix_time) | truncate 32 }}"#;
const LEGACY_USERNAME_TEMPLATE: &str =
    r#"{{ printf "v-%s-%s-%s" (.RoleName | truncate 4) (random 20) | truncate 16 }}"#;
const DEFAULT_REVOCATION: &str =
    "REVOKE ALL PRIVILEGES, GRANT OPTION FROM '{{name}}'@'%'; DROP USER '{{name}}'@'%'";
/// What a creation batch selects, with a user's position, once that user's statements ran.
const BATCH_MARKER: &str = "mayfly-batch-created";
/// One account in [`DEFAULT_REVOCATION`]'s statements, which take lists of them.
const DEFAULT_REVOCATION_ACCOUNT: &str = "'{{name}}'@'%'";
const DEFAULT_CHANGE_PASSWORD: &str = "ALTER USER '{{username}}'@'%' IDENTIFIED BY '{{password}}';";

/// How long a connection attempt may take before the database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which username limit applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// MySQL 5.7+ and MariaDB: 32-character usernames.
    Current,
    /// Older servers, Aurora and RDS variants: 16 characters.
    Legacy,
}

/// Opens connections for [`Pool`]. mysql_async's own pool hands every returned connection to
/// a recycler task, a task wake-up per statement batch that a driver holding its connection
/// never pays; this one puts it back in place.
struct MyConnector {
    opts: Opts,
}

#[async_trait]
impl Connector for MyConnector {
    type Conn = mysql_async::Conn;

    async fn connect(&self) -> DbResult<mysql_async::Conn> {
        match tokio::time::timeout(CONNECT_TIMEOUT, mysql_async::Conn::new(self.opts.clone())).await
        {
            Ok(result) => result.map_err(classify),
            Err(_) => Err(DbError::Connection(
                "timed out connecting to the database".to_owned(),
            )),
        }
    }

    /// mysql_async tells only by failing: a connection error discards the connection
    /// ([`Connected::conn`]'s callers), and an abandoned transaction is rolled back by the
    /// driver before the connection's next statement.
    fn is_broken(_: &mysql_async::Conn) -> bool {
        false
    }
}

struct Connected {
    pool: Pool<MyConnector>,
    root_password: String,
    /// Default revocations waiting for, or running in, one batch (see [`crate::batch`]).
    revocations: Batcher<String>,
    /// Creations waiting for, or running in, a batch; two batches at a time, which at 4 and 16
    /// clients was a little faster than one (the server takes its privilege lock per
    /// statement, so two batches' round trips overlap with each other's statements).
    creations: Batcher<Creation>,
}

/// One user's creation, rendered, as a batch of creations holds it.
#[derive(Clone)]
struct Creation {
    queries: Vec<String>,
    rollback: Vec<String>,
    intent: IntentGate,
    /// The user's password and the root password, kept out of errors.
    secrets: [String; 2],
}

pub struct MySql {
    flavor: Flavor,
    state: RwLock<Option<Arc<Connected>>>,
}

impl MySql {
    pub fn new(flavor: Flavor) -> Self {
        MySql {
            flavor,
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

    fn replace(&self, next: Option<Arc<Connected>>) -> Option<Arc<Connected>> {
        let mut state = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::replace(&mut *state, next)
    }
}

/// Server errors about logging in or reaching a database are connection errors (worth
/// retrying later); any other server error is about the statement.
fn classify(err: mysql_async::Error) -> DbError {
    match &err {
        mysql_async::Error::Server(server) => {
            let message = format!(
                "Error {} ({}): {}",
                server.code, server.state, server.message
            );
            // 1040 too many connections, 1045 access denied, 1049 unknown database,
            // 1053 shutdown in progress, 1129/1130 host blocked or not allowed.
            if matches!(server.code, 1040 | 1045 | 1049 | 1053 | 1129 | 1130) {
                DbError::Connection(message)
            } else {
                DbError::Statement(message)
            }
        }
        _ => DbError::Connection(err.to_string()),
    }
}

impl Connected {
    async fn conn(&self) -> DbResult<Pooled<MyConnector>> {
        match tokio::time::timeout(CONNECT_TIMEOUT, self.pool.get()).await {
            Ok(result) => result,
            Err(_) => Err(DbError::Connection(
                "timed out connecting to the database".to_owned(),
            )),
        }
    }

    async fn run_transaction(&self, queries: &[String]) -> DbResult<()> {
        self.run_gated_transaction(queries, &IntentGate::open())
            .await
    }

    /// Checks a connection out and opens the transaction while `gate` is still closed: neither
    /// creates anything, and MySQL commits DDL as it runs, so the first statement must wait.
    async fn run_gated_transaction(&self, queries: &[String], gate: &IntentGate) -> DbResult<()> {
        let mut conn = self.conn().await?;
        let result = async {
            let mut tx = conn
                .start_transaction(TxOpts::default())
                .await
                .map_err(classify)?;
            // A failed gate drops the transaction, which rolls back the nothing it holds.
            gate.wait().await?;
            for query in queries {
                tx.query_drop(query).await.map_err(classify)?;
            }
            tx.commit().await.map_err(classify)
        }
        .await;
        if matches!(result, Err(DbError::Connection(_))) {
            conn.discard();
        }
        result
    }

    /// Creates one user: its statements in one transaction once its intent gate opens; if
    /// they fail, its rollback statements.
    async fn create_one(&self, creation: &Creation) -> DbResult<()> {
        let Err(failure) = self
            .run_gated_transaction(&creation.queries, &creation.intent)
            .await
        else {
            return Ok(());
        };
        if matches!(failure, DbError::Abandoned) {
            return Err(failure);
        }
        self.roll_back(creation, None).await;
        Err(failure.redact(&creation.secrets.each_ref().map(String::as_str)))
    }

    /// Runs a failed creation's rollback statements, on `conn` if given. MySQL commits DDL
    /// implicitly: a `CREATE USER` survives a later failing `GRANT`, so the rollback
    /// statements are what undo it.
    async fn roll_back(&self, creation: &Creation, conn: Option<&mut Pooled<MyConnector>>) {
        if creation.rollback.is_empty() {
            return;
        }
        let secrets = creation.secrets.each_ref().map(String::as_str);
        let mut own = None;
        let conn = match conn {
            Some(conn) => conn,
            None => match self.conn().await {
                Ok(conn) => own.insert(conn),
                Err(err) => {
                    tracing::warn!(error = %err.redact(&secrets), "Could not run the rollback statements.");
                    return;
                }
            },
        };
        for query in &creation.rollback {
            if let Err(err) = conn.query_drop(query).await {
                tracing::warn!(error = %classify(err).redact(&secrets), "A rollback statement failed.");
            }
        }
    }

    /// Creates several users in one round trip: each user's statements in a transaction of
    /// its own, followed by a `SELECT` of [`BATCH_MARKER`] and its position, all sent as one multi-statement query,
    /// once every user's intent gate has opened. The positions read back say how far the
    /// server got: the users before a failure are created, the one at it fails (and is rolled
    /// back), and those after it are created one by one.
    async fn create_many(&self, batch: Vec<Creation>) -> Vec<DbResult<()>> {
        if let [creation] = batch.as_slice() {
            return vec![self.create_one(creation).await];
        }
        let mut outcomes: Vec<Option<DbResult<()>>> = batch.iter().map(|_| None).collect();
        let mut included = Vec::new();
        for (index, creation) in batch.iter().enumerate() {
            match creation.intent.wait().await {
                Ok(()) => included.push(index),
                Err(err) => outcomes[index] = Some(Err(err)),
            }
        }
        let mut script = String::new();
        for (position, &index) in included.iter().enumerate() {
            script.push_str("START TRANSACTION;");
            for query in &batch[index].queries {
                script.push_str(query);
                script.push(';');
            }
            script.push_str(&format!("COMMIT;SELECT '{BATCH_MARKER}', {position};"));
        }
        let mut completed = 0;
        let mut failure = None;
        match self.conn().await {
            Err(err) => failure = Some(err),
            Ok(mut conn) => {
                let run = async {
                    let mut result = conn.query_iter(script.as_str()).await?;
                    loop {
                        // A creation statement may return rows of its own (a `SELECT`): only
                        // the marker's rows count, and no row's shape can make this fail.
                        let rows: Vec<mysql_async::Row> = result.collect().await?;
                        for row in rows {
                            if let (Some(Ok(marker)), Some(Ok(position))) =
                                (row.get_opt::<String, _>(0), row.get_opt::<u64, _>(1))
                                && marker == BATCH_MARKER
                                && row.len() == 2
                            {
                                completed = usize::try_from(position).unwrap_or(usize::MAX) + 1;
                            }
                        }
                        if result.is_empty() {
                            return Ok(());
                        }
                    }
                };
                if let Err(err) = run.await {
                    let err = classify(err);
                    let at = included.get(completed).map(|&index| &batch[index]);
                    if matches!(err, DbError::Connection(_)) {
                        conn.discard();
                        drop(conn);
                        if let Some(creation) = at {
                            self.roll_back(creation, None).await;
                        }
                    } else if let Some(creation) = at {
                        let _ = conn.query_drop("ROLLBACK").await;
                        self.roll_back(creation, Some(&mut conn)).await;
                    }
                    failure = Some(err);
                }
            }
        }
        // The server quotes the script from where it failed, which can reach the statements,
        // and passwords, of the users after the failing one.
        let secrets: Vec<&str> = batch
            .iter()
            .flat_map(|creation| creation.secrets.iter().map(String::as_str))
            .collect();
        for (position, &index) in included.iter().enumerate() {
            outcomes[index] = Some(match &failure {
                _ if position < completed => Ok(()),
                Some(err) if position == completed => Err(err.clone().redact(&secrets)),
                _ => self.create_one(&batch[index]).await,
            });
        }
        outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or(Err(DbError::Abandoned)))
            .collect()
    }

    /// Runs one user's revocation `statements`.
    async fn delete_one(&self, username: &str, statements: &[String]) -> DbResult<()> {
        let vars = [("name", username), ("username", username)];
        let queries: Vec<String> = render_all(statements, Dialect::MySql, &vars);
        // Revocation must be idempotent, and the statements fail on a user that is already
        // gone. Asking first would cost every revocation a scan of `mysql.user` (a view over
        // all accounts in MariaDB), so the question is asked only of a failure.
        match self.run_transaction(&queries).await {
            Ok(()) => Ok(()),
            Err(DbError::Statement(_)) if self.user_exists(username).await? == Some(false) => {
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// The default revocation of several users, with one statement for all of them: the
    /// server does its privilege-table work and reloads its privileges once instead of once
    /// per user. If that fails, each user goes on its own, so one that cannot be dropped keeps
    /// none of the others from going.
    async fn delete_many(&self, names: Vec<String>) -> Vec<DbResult<()>> {
        if names.len() > 1 && self.delete_together(&names).await.is_ok() {
            return names.iter().map(|_| Ok(())).collect();
        }
        let defaults = [DEFAULT_REVOCATION.to_owned()];
        let mut outcomes = Vec::with_capacity(names.len());
        for name in &names {
            outcomes.push(self.delete_one(name, &defaults).await);
        }
        outcomes
    }

    /// [`DEFAULT_REVOCATION`] for all of `names` at once.
    async fn delete_together(&self, names: &[String]) -> DbResult<()> {
        let accounts = names
            .iter()
            .map(|name| render(DEFAULT_REVOCATION_ACCOUNT, &[("name", name)]))
            .collect::<Vec<_>>()
            .join(", ");
        self.run_transaction(&[
            format!("REVOKE ALL PRIVILEGES, GRANT OPTION FROM {accounts}"),
            format!("DROP USER {accounts}"),
        ])
        .await
    }

    async fn user_exists(&self, username: &str) -> DbResult<Option<bool>> {
        let mut conn = self.conn().await?;
        // Needs SELECT on mysql.user; without it the answer is unknown, not an error.
        let count: Option<i64> = match conn
            .exec_first(
                "SELECT COUNT(*) FROM mysql.user WHERE User = ?",
                (username,),
            )
            .await
        {
            Ok(count) => count,
            Err(err) => {
                if matches!(classify(err), DbError::Connection(_)) {
                    conn.discard();
                }
                None
            }
        };
        Ok(count.map(|n| n > 0))
    }
}

#[async_trait]
impl DatabasePlugin for MySql {
    fn type_name(&self) -> &'static str {
        "mysql"
    }

    fn default_username_template(&self) -> &'static str {
        match self.flavor {
            Flavor::Current => DEFAULT_USERNAME_TEMPLATE,
            Flavor::Legacy => LEGACY_USERNAME_TEMPLATE,
        }
    }

    async fn initialize(&self, req: InitializeRequest) -> DbResult<Map<String, Value>> {
        let root_password = setting(&req.config, "password").unwrap_or_default();
        let opts = connection_opts(&req.config).map_err(|err| err.redact(&[&root_password]))?;
        let settings = PoolSettings::from_config(&req.config)?;
        let connected = Arc::new(Connected {
            pool: Pool::new(MyConnector { opts }, settings),
            root_password: root_password.clone(),
            revocations: Batcher::new(REVOCATION_BATCHES),
            creations: Batcher::new(2),
        });
        if req.verify_connection {
            let check = async {
                let mut conn = connected.conn().await?;
                conn.ping().await.map_err(classify)
            }
            .await;
            if let Err(err) = check {
                connected.pool.close();
                return Err(err.redact(&[&root_password]));
            }
        }
        if let Some(previous) = self.replace(Some(connected)) {
            previous.pool.close();
        }
        Ok(req.config)
    }

    async fn new_user(&self, req: NewUserRequest<'_>) -> DbResult<()> {
        if req.statements.is_empty() {
            return Err(DbError::Statement("empty creation statements".to_owned()));
        }
        let state = self.connected()?;
        let expiration = format_expiration(req.expiration);
        let vars = [
            ("name", req.username),
            ("username", req.username),
            ("password", req.password),
            ("expiration", expiration.as_str()),
        ];
        let creation = Creation {
            queries: render_all(req.statements, Dialect::MySql, &vars),
            rollback: expand(req.rollback_statements, Dialect::MySql)
                .iter()
                .map(|query| render(query, &vars))
                .collect(),
            intent: req.intent.clone(),
            secrets: [req.password.to_owned(), state.root_password.clone()],
        };
        state
            .creations
            .run(creation, |batch| state.create_many(batch))
            .await
    }

    async fn update_user(&self, req: UpdateUserRequest<'_>) -> DbResult<()> {
        let state = self.connected()?;
        match req.change {
            UserChange::Password {
                password,
                statements,
            } => {
                let defaults = [DEFAULT_CHANGE_PASSWORD.to_owned()];
                let statements = if statements.is_empty() {
                    &defaults[..]
                } else {
                    statements
                };
                let vars = [
                    ("name", req.username),
                    ("username", req.username),
                    ("password", password),
                ];
                let queries: Vec<String> = render_all(statements, Dialect::MySql, &vars);
                state
                    .run_transaction(&queries)
                    .await
                    .map_err(|err| err.redact(&[password, &state.root_password]))
            }
            // MySQL accounts carry no expiry Vault manages, as in Vault's plugin.
            UserChange::Expiration { statements: [], .. } => Ok(()),
            UserChange::Expiration {
                expiration,
                statements,
            } => {
                let expiration = format_expiration(expiration);
                let vars = [
                    ("name", req.username),
                    ("username", req.username),
                    ("expiration", expiration.as_str()),
                ];
                let queries: Vec<String> = render_all(statements, Dialect::MySql, &vars);
                state
                    .run_transaction(&queries)
                    .await
                    .map_err(|err| err.redact(&[&state.root_password]))
            }
        }
    }

    async fn delete_user(&self, req: DeleteUserRequest<'_>) -> DbResult<()> {
        let state = self.connected()?;
        let result = if req.statements.is_empty() {
            state
                .revocations
                .run(req.username.to_owned(), |names| state.delete_many(names))
                .await
        } else {
            state.delete_one(req.username, req.statements).await
        };
        result.map_err(|err| err.redact(&[&state.root_password]))
    }

    async fn close(&self) {
        if let Some(previous) = self.replace(None) {
            previous.pool.close();
        }
    }
}

/// The parts of Vault's (Go driver) DSN, `user:password@tcp(host:port)/dbname?params`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Dsn {
    user: Option<String>,
    password: Option<String>,
    host: String,
    port: u16,
    socket: Option<String>,
    db_name: Option<String>,
    params: Vec<(String, String)>,
}

fn parse_go_dsn(dsn: &str) -> DbResult<Dsn> {
    let invalid = |why: &str| DbError::Config(format!("invalid connection_url: {why}"));
    let slash = dsn
        .rfind('/')
        .ok_or_else(|| invalid("missing the slash before the database name"))?;
    let (head, tail) = (&dsn[..slash], &dsn[slash + 1..]);
    let mut out = Dsn {
        host: "127.0.0.1".to_owned(),
        port: 3306,
        ..Dsn::default()
    };
    let address_part = match head.rfind('@') {
        Some(at) => {
            let credentials = &head[..at];
            match credentials.split_once(':') {
                Some((user, password)) => {
                    out.user = Some(user.to_owned());
                    out.password = Some(password.to_owned());
                }
                None => out.user = Some(credentials.to_owned()),
            }
            &head[at + 1..]
        }
        None => head,
    };
    if !address_part.is_empty() {
        let (net, address) = match address_part.split_once('(') {
            Some((net, rest)) => (
                net,
                rest.strip_suffix(')')
                    .ok_or_else(|| invalid("unclosed address"))?,
            ),
            None => (address_part, ""),
        };
        match net {
            "tcp" | "" => {
                if !address.is_empty() {
                    let (host, port) = match address.rsplit_once(':') {
                        Some((host, port)) if !port.contains(']') => {
                            (host, port.parse().map_err(|_| invalid("invalid port"))?)
                        }
                        _ => (address, 3306),
                    };
                    out.host = host
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned();
                    out.port = port;
                }
            }
            "unix" => out.socket = Some(address.to_owned()),
            other => return Err(invalid(&format!("unsupported network {other:?}"))),
        }
    }
    let (db_name, query) = tail.split_once('?').unwrap_or((tail, ""));
    if !db_name.is_empty() {
        out.db_name = Some(db_name.to_owned());
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_encoding::percent_decode_str(value)
            .decode_utf8_lossy()
            .into_owned();
        out.params.push((key.to_owned(), value));
    }
    Ok(out)
}

/// Builds the driver's options from the connection details.
fn connection_opts(config: &Map<String, Value>) -> DbResult<Opts> {
    let template = setting(config, "connection_url")
        .filter(|url| !url.is_empty())
        .ok_or_else(|| DbError::Config("connection_url cannot be empty".to_owned()))?;
    let username = setting(config, "username").unwrap_or_default();
    let password = setting(config, "password").unwrap_or_default();
    let url_form = template.starts_with("mysql://");
    // Vault's Go DSN takes credentials verbatim; the URL form needs them percent-encoded.
    let encode = |value: &str| {
        if url_form && !bool_setting(config, "disable_escaping").unwrap_or(false) {
            percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        } else {
            value.to_owned()
        }
    };
    let rendered = render(
        &template,
        &[
            ("username", &encode(&username)),
            ("name", &encode(&username)),
            ("password", &encode(&password)),
        ],
    );
    let (mut builder, tls_param) = if url_form {
        let opts = Opts::from_url(&rendered)
            .map_err(|err| DbError::Config(format!("invalid connection_url: {err}")))?;
        (OptsBuilder::from_opts(opts), None)
    } else {
        let dsn = parse_go_dsn(&rendered)?;
        let mut builder = OptsBuilder::default()
            .ip_or_hostname(dsn.host.clone())
            .tcp_port(dsn.port)
            .user(dsn.user.clone())
            .pass(dsn.password.clone())
            .db_name(dsn.db_name.clone())
            .prefer_socket(false);
        if let Some(socket) = &dsn.socket {
            builder = builder.socket(Some(socket.clone()));
        }
        let tls = dsn
            .params
            .iter()
            .find(|(key, _)| key == "tls")
            .map(|(_, value)| value.clone());
        (builder, tls)
    };

    let ca = setting(config, "tls_ca").filter(|s| !s.trim().is_empty());
    let cert_key = setting(config, "tls_certificate_key").filter(|s| !s.trim().is_empty());
    let server_name = setting(config, "tls_server_name").filter(|s| !s.is_empty());
    let skip_verify = bool_setting(config, "tls_skip_verify")?;
    let wants_tls = ca.is_some()
        || cert_key.is_some()
        || matches!(
            tls_param.as_deref(),
            Some("true" | "skip-verify" | "custom" | "default")
        );
    if wants_tls {
        let mut ssl = SslOpts::default();
        if let Some(ca) = ca {
            ssl = ssl.with_root_certs(vec![ca.into_bytes().into()]);
        }
        if let Some(bundle) = cert_key {
            let (cert, key) = split_cert_and_key(&bundle)?;
            ssl = ssl.with_client_identity(Some(ClientIdentity::new(
                cert.into_bytes().into(),
                key.into_bytes().into(),
            )));
        }
        if skip_verify || tls_param.as_deref() == Some("skip-verify") {
            ssl = ssl
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true);
        }
        if let Some(name) = server_name {
            ssl = ssl.with_danger_tls_hostname_override(Some(name));
        }
        builder = builder.ssl_opts(Some(ssl));
    }

    let pool = PoolSettings::from_config(config)?;
    let constraints = PoolConstraints::new(pool.max_idle.min(pool.max_open), pool.max_open)
        .ok_or_else(|| DbError::Config("invalid connection pool sizes".to_owned()))?;
    let pool_opts = PoolOpts::default()
        .with_constraints(constraints)
        .with_abs_conn_ttl(pool.max_lifetime)
        .with_reset_connection(false);
    Ok(builder.pool_opts(pool_opts).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestDatabase, TestMySql, unique};

    /// A test server, and the plugin connected to it.
    async fn initialized() -> (TestMySql, MySql, Arc<Connected>) {
        let db = TestMySql::start().await;
        let plugin = MySql::new(Flavor::Current);
        crate::testing::initialize(&plugin, &db).await;
        let state = plugin.connected().unwrap();
        (db, plugin, state)
    }

    /// A batch of creations goes in one round trip; a failing user in its middle fails alone,
    /// rolled back, and the users after it are still created.
    #[tokio::test]
    async fn a_batch_creates_its_users_and_a_failure_stays_with_its_user() {
        let (db, plugin, state) = initialized().await;
        let creation = |name: &str, password: &str, statements: &[String]| {
            let vars = [("name", name), ("password", password)];
            Creation {
                queries: render_all(statements, Dialect::MySql, &vars),
                rollback: vec![render("DROP USER IF EXISTS '{{name}}'@'%'", &vars)],
                intent: IntentGate::open(),
                secrets: [password.to_owned(), "root-unused".to_owned()],
            }
        };
        // Statements that return rows of their own do not confuse the batch's bookkeeping.
        let mut good = db.creation_statements();
        good.push("SELECT 7; SELECT 'text', 2, 3".to_owned());
        let failing = db.failing_creation_statements();
        let names: Vec<String> = (0..4).map(|_| unique("v_mk")).collect();
        let passwords: Vec<String> = (0..4).map(|n| format!("Pw-{n}-batch-xyz")).collect();
        let batch = names
            .iter()
            .zip(&passwords)
            .enumerate()
            .map(|(n, (name, password))| {
                creation(name, password, if n == 1 { &failing } else { &good })
            })
            .collect();
        let outcomes = state.create_many(batch).await;
        for (n, (name, outcome)) in names.iter().zip(&outcomes).enumerate() {
            if n == 1 {
                let message = outcome.as_ref().unwrap_err().to_string();
                assert!(
                    passwords
                        .iter()
                        .all(|password| !message.contains(password.as_str())),
                    "{message}"
                );
                assert!(
                    !db.user_exists(name).await,
                    "the failed user was rolled back"
                );
            } else {
                assert_eq!(outcome, &Ok(()), "{name}");
                assert!(db.login(name, &passwords[n]).await, "{name} logs in");
            }
        }
        let outcomes = state.delete_many(names.clone()).await;
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        plugin.close().await;
        db.teardown().await;
    }

    /// One statement pair drops every user of a batch; a batch naming a user that is gone
    /// fails as a whole, and each of its users then goes on its own.
    #[tokio::test]
    async fn a_batch_drops_its_users_together_and_falls_back_one_by_one() {
        let (db, plugin, state) = initialized().await;
        let create = |names: &[String]| {
            let state = Arc::clone(&state);
            let names = names.to_vec();
            async move {
                for name in &names {
                    state
                        .run_transaction(&[
                            format!("CREATE USER '{name}'@'%' IDENTIFIED BY 'Pw-1-batch'"),
                            format!("GRANT SELECT ON mysql.user TO '{name}'@'%'"),
                        ])
                        .await
                        .unwrap();
                }
            }
        };
        let together: Vec<String> = (0..4).map(|_| unique("v_my")).collect();
        create(&together).await;
        state.delete_together(&together).await.unwrap();
        for name in &together {
            assert!(!db.user_exists(name).await, "{name} is gone");
        }

        let mut mixed: Vec<String> = (0..3).map(|_| unique("v_my")).collect();
        create(&mixed).await;
        mixed.insert(1, unique("v_gone"));
        assert!(state.delete_together(&mixed).await.is_err());
        let outcomes = state.delete_many(mixed.clone()).await;
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        for name in &mixed {
            assert!(!db.user_exists(name).await, "{name} is gone");
        }
        plugin.close().await;
        db.teardown().await;
    }

    #[test]
    fn parses_vaults_dsn_forms() {
        let dsn =
            parse_go_dsn("root:p@ss:w@rd@tcp(127.0.0.1:3307)/app?tls=skip-verify&x=1").unwrap();
        assert_eq!(dsn.user.as_deref(), Some("root"));
        assert_eq!(dsn.password.as_deref(), Some("p@ss:w@rd"));
        assert_eq!((dsn.host.as_str(), dsn.port), ("127.0.0.1", 3307));
        assert_eq!(dsn.db_name.as_deref(), Some("app"));
        assert_eq!(dsn.params[0], ("tls".to_owned(), "skip-verify".to_owned()));

        let dsn = parse_go_dsn("u@tcp([::1]:3306)/").unwrap();
        assert_eq!(
            (dsn.host.as_str(), dsn.port, dsn.password),
            ("::1", 3306, None)
        );
        let dsn = parse_go_dsn("/").unwrap();
        assert_eq!((dsn.host.as_str(), dsn.port), ("127.0.0.1", 3306));
        let dsn = parse_go_dsn("u:p@unix(/run/mysqld/mysqld.sock)/db").unwrap();
        assert_eq!(dsn.socket.as_deref(), Some("/run/mysqld/mysqld.sock"));
        assert!(parse_go_dsn("no-slash").is_err());
    }

    #[test]
    fn builds_options_with_templated_credentials() {
        let Value::Object(config) = serde_json::json!({
            "connection_url": "{{username}}:{{password}}@tcp(db.example:3306)/",
            "username": "vault",
            "password": "s:e@c",
            "max_open_connections": 3,
        }) else {
            unreachable!()
        };
        let opts = connection_opts(&config).unwrap();
        assert_eq!(opts.user(), Some("vault"));
        assert_eq!(opts.pass(), Some("s:e@c"));
        assert_eq!(opts.ip_or_hostname(), "db.example");
        assert_eq!(opts.pool_opts().constraints().max(), 3);
        assert!(opts.ssl_opts().is_none());
    }
}
