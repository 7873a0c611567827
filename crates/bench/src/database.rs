//! The database suite: dynamic PostgreSQL and MariaDB credentials (`database/creds/<role>`) and
//! their revocation (`sys/leases/revoke`) through Mayfly and OpenBao, each beside the same SQL
//! sent straight to the database over as many connections. It owns its fixtures (a database or
//! schema, tables, an admin login, a group role), its report (`database.md` and JSON) and the
//! removal of everything it created, including any `v-…` user left behind.

use std::{
    fmt::Write as _,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use mysql_async::{OptsBuilder, TxOpts, prelude::Queryable};
use reqwest::Method;
use serde::Serialize;
use serde_json::{Value, json};
use tokio_postgres::error::SqlState;

use crate::{
    args::Args,
    http1::HttpConn,
    load::{Latency, Target},
    machine::{Machine, ProcCounters},
    report::thousands,
    server::{Kind, Server},
};

const PG_HOST: &str = "127.0.0.1";
const PG_PORT: u16 = 5432;
const PG_SUPERUSER: &str = "postgres";
const MY_HOST: &str = "127.0.0.1";
const MY_PORT: u16 = 3306;
const MY_ROOT: &str = "root";

/// Tables in the bench database: enough that `GRANT … ON ALL TABLES` does real work.
const TABLES: usize = 10;
/// As in Mayfly's PostgreSQL plugin: a creation that lost a catalog race is run again, up to
/// this many times in all.
const CREATION_ATTEMPTS: u32 = 12;
/// Every role's `default_ttl`, and what the raw path puts in `VALID UNTIL`.
const TTL: Duration = Duration::from_secs(3600);
/// Vault and Mayfly let the database credential outlive its lease by this much.
const EXPIRY_BUFFER: Duration = Duration::from_secs(5);
/// The goal: Mayfly at no less than this fraction of the raw SQL rate.
pub const GOAL_RAW_RATIO: f64 = 0.9;
/// Users are dropped in batches of this many when cleaning up.
const DROP_BATCH: usize = 200;

/// Which database engine a level runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DbKind {
    Postgres,
    /// MySQL's plugin, run against MariaDB.
    Mysql,
}

impl DbKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Postgres => "PostgreSQL",
            Self::Mysql => "MariaDB",
        }
    }

    fn plugin(self) -> &'static str {
        match self {
            Self::Postgres => "postgresql-database-plugin",
            Self::Mysql => "mysql-database-plugin",
        }
    }

    /// The plugins' default username templates cut names to this length.
    fn max_username(self) -> usize {
        match self {
            Self::Postgres => 63,
            Self::Mysql => 32,
        }
    }
}

impl FromStr for DbKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "postgres" | "postgresql" | "pg" => Ok(Self::Postgres),
            "mysql" | "mariadb" => Ok(Self::Mysql),
            other => Err(format!(
                "unknown database {other:?} (expected postgres or mysql)"
            )),
        }
    }
}

/// How a new user gets read access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Form {
    /// The seed's statements: a `GRANT SELECT` to every new user.
    Grant,
    /// Membership of a pre-made group role that holds the grant.
    Role,
}

impl Form {
    pub fn label(self) -> &'static str {
        match self {
            Self::Grant => "per-user GRANT",
            Self::Role => "group role",
        }
    }

    /// Two letters that, with the run's suffix, make an 8-character role name: short enough
    /// that both plugins' default username templates keep it whole, so a run can find every
    /// user it made by name.
    fn tag(self) -> &'static str {
        match self {
            Self::Grant => "sg",
            Self::Role => "gr",
        }
    }
}

impl FromStr for Form {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "grant" => Ok(Self::Grant),
            "role" => Ok(Self::Role),
            other => Err(format!("unknown form {other:?} (expected grant or role)")),
        }
    }
}

/// What issues and revokes the credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// The same SQL sent directly by the benchmark.
    Raw,
    Mayfly,
    OpenBao,
}

impl Via {
    fn label(self) -> &'static str {
        match self {
            Self::Raw => "raw SQL",
            Self::Mayfly => "Mayfly",
            Self::OpenBao => "OpenBao",
        }
    }
}

/// The suite's own flags.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub clients: Vec<usize>,
    pub kinds: Vec<DbKind>,
    pub forms: Vec<Form>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clients: vec![1, 4, 16],
            kinds: vec![DbKind::Postgres, DbKind::Mysql],
            forms: vec![Form::Grant, Form::Role],
        }
    }
}

impl Options {
    /// Takes `--db-clients`, `--db-kinds` or `--db-forms` (named without the dashes).
    pub fn set(&mut self, flag: &str, value: &str) -> Result<(), String> {
        match flag {
            "db-clients" => {
                self.clients = list(flag, value)?;
                if self.clients.contains(&0) {
                    return Err("--db-clients needs positive levels, e.g. 1,4,16".into());
                }
            }
            "db-kinds" => self.kinds = list(flag, value)?,
            "db-forms" => self.forms = list(flag, value)?,
            other => return Err(format!("unknown flag --{other}")),
        }
        Ok(())
    }
}

/// A comma-separated list, in the order given, without repeats.
fn list<T: FromStr + PartialEq>(flag: &str, text: &str) -> Result<Vec<T>, String>
where
    T::Err: std::fmt::Display,
{
    let mut items = Vec::new();
    for piece in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let item: T = piece.parse().map_err(|e| format!("--{flag}: {e}"))?;
        if !items.contains(&item) {
            items.push(item);
        }
    }
    if items.is_empty() {
        return Err(format!("--{flag} needs at least one value"));
    }
    Ok(items)
}

/// A small, fast generator for names and passwords; nothing here needs cryptographic
/// randomness, and the workspace's own keeps the crate's dependencies unchanged.
struct Rng(u64);

impl Rng {
    fn seeded(seed: u64) -> Rng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        Rng(mix(seed ^ nanos ^ u64::from(std::process::id()) << 32))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn string(&mut self, len: usize, charset: &[u8]) -> String {
        (0..len)
            .map(|_| char::from(charset[self.below(charset.len() as u64) as usize]))
            .collect()
    }
}

fn mix(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// What one run creates, all named after one random suffix so runs never collide and cleanup
/// finds everything.
#[derive(Debug, Clone)]
struct Names {
    suffix: String,
    admin_password: String,
}

impl Names {
    fn new() -> Names {
        let mut rng = Rng::seeded(0x6d61_7966_6c79);
        Names {
            suffix: format!("{:06x}", rng.next() & 0xff_ffff),
            admin_password: rng.string(24, ALNUM),
        }
    }

    fn database(&self) -> String {
        format!("mayfly_bench_{}", self.suffix)
    }

    fn admin(&self) -> String {
        format!("benchadmin_{}", self.suffix)
    }

    fn group(&self) -> String {
        format!("bench_readers_{}", self.suffix)
    }

    fn role(&self, form: Form) -> String {
        format!("{}{}", form.tag(), self.suffix)
    }

    /// A `LIKE` pattern for the users made for `form`'s role, whoever made them.
    fn users_of(&self, form: Form) -> String {
        format!("v-%-{}-%", self.role(form))
    }

    /// A `LIKE` pattern for every user this run made.
    fn all_users(&self) -> String {
        format!("v-%-__{}-%", self.suffix)
    }
}

/// The creation statements of `form` on `kind`, with Vault's placeholders.
fn creation_statements(kind: DbKind, form: Form, names: &Names) -> String {
    let group = names.group();
    let database = names.database();
    match (kind, form) {
        (DbKind::Postgres, Form::Grant) => r#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{{name}}";"#.to_owned(),
        (DbKind::Postgres, Form::Role) => format!(
            r#"CREATE ROLE "{{{{name}}}}" WITH LOGIN PASSWORD '{{{{password}}}}' VALID UNTIL '{{{{expiration}}}}' IN ROLE {group};"#
        ),
        (DbKind::Mysql, Form::Grant) => format!(
            "CREATE USER '{{{{name}}}}'@'%' IDENTIFIED BY '{{{{password}}}}'; GRANT SELECT ON {database}.* TO '{{{{name}}}}'@'%';"
        ),
        (DbKind::Mysql, Form::Role) => format!(
            "CREATE USER '{{{{name}}}}'@'%' IDENTIFIED BY '{{{{password}}}}'; GRANT {group} TO '{{{{name}}}}'@'%'; SET DEFAULT ROLE {group} FOR '{{{{name}}}}'@'%';"
        ),
    }
}

/// Fills in the placeholders and splits into statements, as the plugins do (the generated
/// names and passwords hold no `;` or quote).
fn render(template: &str, name: &str, password: &str, expiration: &str) -> Vec<String> {
    template
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.replace("{{name}}", name)
                .replace("{{password}}", password)
                .replace("{{expiration}}", expiration)
        })
        .collect()
}

/// A username of the plugins' default form, `v-<display>-<role>-<random 20>-<unix time>`
/// (the root token's display name is `root`), cut to the plugin's limit.
fn username(kind: DbKind, role: &str, rng: &mut Rng) -> String {
    let mut name = format!(
        "v-root-{role}-{}-{}",
        rng.string(20, ALNUM),
        unix_now().as_secs()
    );
    name.truncate(kind.max_username());
    name
}

/// Like the default password policy: 20 characters of letters, digits and `-`.
fn password(rng: &mut Rng) -> String {
    let mut password = rng.string(19, ALNUM);
    password.insert(rng.below(20) as usize, '-');
    password
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Vault's `{{expiration}}` layout, `2006-01-02 15:04:05+0000`, in UTC.
fn format_expiration(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rest = unix_secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}+0000",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Howard Hinnant's days-to-civil: the proleptic Gregorian date `days` after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn pg_error(err: tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => err.to_string(),
    }
}

/// What Mayfly's PostgreSQL plugin retries: concurrent `GRANT … ON ALL TABLES` aborts with
/// "tuple concurrently updated", which succeeds when simply run again.
fn pg_retryable(err: &tokio_postgres::Error) -> bool {
    err.as_db_error().is_some_and(|db| {
        let code = db.code();
        *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || (*code == SqlState::INTERNAL_ERROR
                && (db.message().contains("tuple concurrently updated")
                    || db.message().contains("tuple concurrently deleted")))
    })
}

/// The plugin's backoff between attempts: full jitter under a cap that doubles from 20 ms to
/// a second.
fn backoff(attempt: u32, rng: &mut Rng) -> Duration {
    let cap_ms = (10u64 << attempt.min(7)).min(1000);
    Duration::from_millis(rng.below(cap_ms + 1).max(1))
}

fn my_error(err: mysql_async::Error) -> String {
    err.to_string()
}

async fn pg_connect(
    user: &str,
    password: Option<&str>,
    database: &str,
) -> Result<tokio_postgres::Client, String> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(PG_HOST)
        .port(PG_PORT)
        .user(user)
        .dbname(database)
        .connect_timeout(Duration::from_secs(10));
    if let Some(password) = password {
        config.password(password);
    }
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("connecting to PostgreSQL {PG_HOST}:{PG_PORT} as {user}: {e}"))?;
    tokio::spawn(async move { drop(connection.await) });
    Ok(client)
}

async fn my_connect(user: &str, password: Option<&str>) -> Result<mysql_async::Conn, String> {
    // Over TCP like the plugins' `tcp(…)` DSN: mysql_async would otherwise switch to the
    // server's unix socket.
    let opts = OptsBuilder::default()
        .ip_or_hostname(MY_HOST)
        .tcp_port(MY_PORT)
        .user(Some(user))
        .pass(password)
        .prefer_socket(false);
    mysql_async::Conn::new(opts)
        .await
        .map_err(|e| format!("connecting to MariaDB {MY_HOST}:{MY_PORT} as {user}: {e}"))
}

/// The run's database objects, and superuser connections to manage them between levels.
struct Fixtures {
    names: Names,
    /// The PostgreSQL superuser, connected to the bench database.
    pg: Option<tokio_postgres::Client>,
    /// MariaDB's root.
    my: Option<mysql_async::Conn>,
    pg_version: Option<String>,
    my_version: Option<String>,
}

impl Fixtures {
    /// Creates what `kinds` need. Whatever it managed to create before failing is still
    /// removed by [`Fixtures::cleanup`].
    async fn create(&mut self, kinds: &[DbKind]) -> Result<(), String> {
        let names = self.names.clone();
        let (db, admin, group) = (names.database(), names.admin(), names.group());
        let password = &names.admin_password;
        let tables = |prefix: &str| {
            (0..TABLES)
                .map(|i| {
                    format!(
                        "CREATE TABLE {prefix}t{i} (id bigint PRIMARY KEY, name varchar(100) NOT \
                         NULL, note varchar(200));"
                    )
                })
                .collect::<String>()
        };
        if kinds.contains(&DbKind::Postgres) {
            let su = pg_connect(PG_SUPERUSER, None, "postgres").await?;
            self.pg_version = Some(
                su.query_one("SHOW server_version", &[])
                    .await
                    .map_err(pg_error)?
                    .get(0),
            );
            su.batch_execute(&format!("CREATE DATABASE {db}"))
                .await
                .map_err(|e| format!("PostgreSQL: creating database {db}: {}", pg_error(e)))?;
            let pg = pg_connect(PG_SUPERUSER, None, &db).await?;
            let setup = format!(
                "CREATE ROLE {admin} LOGIN SUPERUSER PASSWORD '{password}'; \
                 CREATE ROLE {group} NOLOGIN; {} \
                 GRANT SELECT ON ALL TABLES IN SCHEMA public TO {group};",
                tables("")
            );
            self.pg = Some(pg);
            self.pg()?
                .batch_execute(&setup)
                .await
                .map_err(|e| format!("PostgreSQL: creating the fixtures: {}", pg_error(e)))?;
        }
        if kinds.contains(&DbKind::Mysql) {
            let mut my = my_connect(MY_ROOT, None).await?;
            self.my_version = my
                .query_first::<String, _>("SELECT VERSION()")
                .await
                .map_err(my_error)?;
            self.my = Some(my);
            let setup = format!(
                "CREATE DATABASE {db}; {} \
                 CREATE USER '{admin}'@'%' IDENTIFIED BY '{password}'; \
                 GRANT ALL ON *.* TO '{admin}'@'%' WITH GRANT OPTION; \
                 CREATE ROLE {group}; GRANT SELECT ON {db}.* TO {group}; \
                 GRANT {group} TO '{admin}'@'%' WITH ADMIN OPTION;",
                tables(&format!("{db}."))
            );
            // Granting a role needs its ADMIN OPTION, which root holds as its creator.
            self.my()?
                .query_drop(setup)
                .await
                .map_err(|e| format!("MariaDB: creating the fixtures: {e}"))?;
        }
        Ok(())
    }

    fn pg(&self) -> Result<&tokio_postgres::Client, String> {
        self.pg
            .as_ref()
            .ok_or_else(|| "no PostgreSQL connection".to_owned())
    }

    fn my(&mut self) -> Result<&mut mysql_async::Conn, String> {
        self.my
            .as_mut()
            .ok_or_else(|| "no MariaDB connection".to_owned())
    }

    /// Puts the catalogs back in shape before a level: every create and drop leaves dead rows
    /// in `pg_authid`, `pg_class` (each GRANT rewrites the tables' ACLs) and friends, which
    /// would otherwise make later levels pay for earlier ones.
    async fn before_level(&mut self, kind: DbKind) -> Result<(), String> {
        if kind == DbKind::Postgres {
            self.pg()?
                .batch_execute(
                    "VACUUM pg_catalog.pg_authid, pg_catalog.pg_auth_members, \
                     pg_catalog.pg_shdepend, pg_catalog.pg_class, pg_catalog.pg_depend",
                )
                .await
                .map_err(|e| format!("PostgreSQL: vacuuming the catalogs: {}", pg_error(e)))?;
        }
        Ok(())
    }

    /// Drops every user matching `pattern` (a `LIKE` pattern); returns how many there were.
    async fn drop_users(&mut self, kind: DbKind, pattern: &str) -> Result<u64, String> {
        match kind {
            DbKind::Postgres => {
                let pg = self.pg()?;
                let rows = pg
                    .query(
                        "SELECT rolname FROM pg_roles WHERE rolname LIKE $1",
                        &[&pattern],
                    )
                    .await
                    .map_err(pg_error)?;
                let users: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
                for batch in users.chunks(DROP_BATCH) {
                    let list = batch
                        .iter()
                        .map(|u| quote_ident(u))
                        .collect::<Vec<_>>()
                        .join(", ");
                    // Their grants live in the bench database only, so DROP OWNED here frees
                    // them to be dropped.
                    pg.batch_execute(&format!("DROP OWNED BY {list}; DROP ROLE {list}"))
                        .await
                        .map_err(|e| format!("PostgreSQL: dropping users: {}", pg_error(e)))?;
                }
                Ok(users.len() as u64)
            }
            DbKind::Mysql => {
                let my = self.my()?;
                let users: Vec<(String, String)> = my
                    .exec(
                        "SELECT User, Host FROM mysql.user WHERE User LIKE ? AND is_role = 'N'",
                        (pattern,),
                    )
                    .await
                    .map_err(my_error)?;
                for batch in users.chunks(DROP_BATCH) {
                    let list = batch
                        .iter()
                        .map(|(user, host)| format!("'{user}'@'{host}'"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    my.query_drop(format!("DROP USER {list}"))
                        .await
                        .map_err(|e| format!("MariaDB: dropping users: {e}"))?;
                }
                Ok(users.len() as u64)
            }
        }
    }

    /// Removes everything the run created; carries on past failures and reports them all.
    async fn cleanup(&mut self) -> Result<(), String> {
        let names = self.names.clone();
        let (db, admin, group) = (names.database(), names.admin(), names.group());
        let mut problems = Vec::new();
        if self.pg.is_some() {
            if let Err(e) = self.drop_users(DbKind::Postgres, &names.all_users()).await {
                problems.push(e);
            }
            self.pg = None;
            let steps = [
                format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                format!("DROP ROLE IF EXISTS {group}"),
                format!("DROP ROLE IF EXISTS {admin}"),
            ];
            match pg_connect(PG_SUPERUSER, None, "postgres").await {
                Ok(su) => {
                    for step in steps {
                        if let Err(e) = su.batch_execute(&step).await {
                            problems.push(format!("PostgreSQL: {step}: {}", pg_error(e)));
                        }
                    }
                }
                Err(e) => problems.push(e),
            }
        }
        if self.my.is_some() {
            if let Err(e) = self.drop_users(DbKind::Mysql, &names.all_users()).await {
                problems.push(e);
            }
            let steps = [
                format!("DROP DATABASE IF EXISTS {db}"),
                format!("DROP ROLE IF EXISTS {group}"),
                format!("DROP USER IF EXISTS '{admin}'@'%'"),
            ];
            if let Some(mut my) = self.my.take() {
                for step in steps {
                    if let Err(e) = my.query_drop(&step).await {
                        problems.push(format!("MariaDB: {step}: {e}"));
                    }
                }
                let _ = my.disconnect().await;
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("cleaning up: {}", problems.join("; ")))
        }
    }
}

/// What every client of a level shares.
struct Ctx {
    kind: DbKind,
    role: String,
    /// The role's creation statements, for the raw path.
    template: String,
    /// The root token, for the servers.
    token: String,
    /// As in Mayfly's PostgreSQL plugin: one whole-transaction revocation at a time.
    pg_revocations: tokio::sync::Mutex<()>,
    /// Whether the last raw revocation found nothing depending on its role (the plugin's
    /// hint, kept the same way).
    pg_plain_drops: std::sync::atomic::AtomicBool,
}

impl Ctx {
    fn new(kind: DbKind, form: Form, names: &Names, token: String) -> Arc<Ctx> {
        Arc::new(Ctx {
            kind,
            role: names.role(form),
            template: creation_statements(kind, form, names),
            token,
            pg_revocations: tokio::sync::Mutex::new(()),
            pg_plain_drops: std::sync::atomic::AtomicBool::new(true),
        })
    }
}

/// One client's connection: to the database for the raw path, else to the server.
enum Conn {
    Pg(tokio_postgres::Client),
    My(mysql_async::Conn),
    Http(HttpConn),
}

impl Conn {
    /// Issues one credential; returns its lease id (servers) or username (raw) and how many
    /// times the transaction was retried.
    async fn create(&mut self, ctx: &Ctx, rng: &mut Rng) -> (Result<String, String>, u32) {
        match self {
            Conn::Http(http) => (http_creds(http, ctx).await, 0),
            Conn::Pg(client) => {
                let name = username(ctx.kind, &ctx.role, rng);
                let queries = render(
                    &ctx.template,
                    &name,
                    &password(rng),
                    &format_expiration((unix_now() + TTL + EXPIRY_BUFFER).as_secs()),
                );
                let (result, retries) = pg_create(client, &queries, rng).await;
                (result.map(|()| name), retries)
            }
            Conn::My(conn) => {
                let name = username(ctx.kind, &ctx.role, rng);
                let queries = render(&ctx.template, &name, &password(rng), "");
                (my_transaction(conn, &queries).await.map(|()| name), 0)
            }
        }
    }

    /// Revokes what [`Conn::create`] returned.
    async fn revoke(&mut self, ctx: &Ctx, item: &str) -> Result<(), String> {
        match self {
            Conn::Http(http) => {
                let body = json!({ "lease_id": item }).to_string();
                let (status, body) = http
                    .send(Method::PUT, "sys/leases/revoke", &ctx.token, Some(body))
                    .await?;
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!(
                        "PUT sys/leases/revoke: HTTP {status}: {}",
                        String::from_utf8_lossy(&body)
                    ))
                }
            }
            Conn::Pg(client) => {
                pg_revoke(client, item, &ctx.pg_revocations, &ctx.pg_plain_drops).await
            }
            Conn::My(conn) => my_revoke(conn, item).await,
        }
    }

    async fn close(self) {
        if let Conn::My(conn) = self {
            let _ = conn.disconnect().await;
        }
    }
}

async fn http_creds(http: &mut HttpConn, ctx: &Ctx) -> Result<String, String> {
    let path = format!("database/creds/{}", ctx.role);
    let (status, body) = http.send(Method::GET, &path, &ctx.token, None).await?;
    if status != reqwest::StatusCode::OK {
        return Err(format!(
            "GET {path}: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let answer: Value =
        serde_json::from_slice(&body).map_err(|e| format!("GET {path}: invalid JSON ({e})"))?;
    match answer["lease_id"].as_str() {
        Some(id) if !id.is_empty() => Ok(id.to_owned()),
        _ => Err(format!("GET {path}: no lease_id in {answer}")),
    }
}

/// The creation as Mayfly's plugin runs it: one transaction, run again after a catalog race.
async fn pg_create(
    client: &mut tokio_postgres::Client,
    queries: &[String],
    rng: &mut Rng,
) -> (Result<(), String>, u32) {
    let mut attempt = 0;
    loop {
        let result = async {
            let tx = client.transaction().await?;
            for query in queries {
                tx.batch_execute(query).await?;
            }
            tx.commit().await
        }
        .await;
        match result {
            Ok(()) => return (Ok(()), attempt),
            Err(err) if pg_retryable(&err) && attempt + 1 < CREATION_ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(backoff(attempt, rng)).await;
            }
            Err(err) => return (Err(pg_error(err)), attempt),
        }
    }
}

/// Mayfly's default PostgreSQL revocation of one role, statement for statement: while the last
/// revocation found nothing depending on its role, `DROP ROLE` first; if that fails, or else,
/// one lookup (the plugin's own query, so the two cannot drift apart); a role that nothing
/// depends on is just dropped; otherwise all steps in one transaction, one such transaction at a
/// time, and if that fails each step on its own, so one failure does not keep the others from
/// taking access away, and the final `DROP ROLE` decides the outcome. (Revocations that arrive
/// together, Mayfly batches; the raw path has no such counterpart.)
async fn pg_revoke(
    client: &tokio_postgres::Client,
    name: &str,
    one_at_a_time: &tokio::sync::Mutex<()>,
    plain_drops: &std::sync::atomic::AtomicBool,
) -> Result<(), String> {
    use std::sync::atomic::Ordering::Relaxed;
    let role = quote_ident(name);
    let drop_role = format!("DROP ROLE IF EXISTS {role}");
    if plain_drops.load(Relaxed) {
        match client.batch_execute(&drop_role).await {
            Ok(()) => return Ok(()),
            Err(err) if err.as_db_error().is_none() => return Err(pg_error(err)),
            Err(_) => plain_drops.store(false, Relaxed),
        }
    }
    let row = client
        .query_typed_one(
            mayfly_database::plugin::POSTGRES_REVOCATION_LOOKUP,
            &[(&name, tokio_postgres::types::Type::TEXT)],
        )
        .await
        .map_err(pg_error)?;
    let (database, exists, has_dependencies, schemas): (String, bool, bool, Vec<String>) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    if !exists {
        return Ok(());
    }
    if !has_dependencies {
        plain_drops.store(true, Relaxed);
        match client.batch_execute(&drop_role).await {
            Ok(()) => return Ok(()),
            Err(err) if err.as_db_error().is_none() => return Err(pg_error(err)),
            Err(_) => {}
        }
    }
    let steps = mayfly_database::plugin::postgres_revocation_steps(&role, &schemas, &database);
    let script = format!("BEGIN; {}; {drop_role}; COMMIT", steps.join("; "));
    let _whole = one_at_a_time.lock().await;
    match client.batch_execute(&script).await {
        Ok(()) => return Ok(()),
        Err(err) if err.as_db_error().is_none() => return Err(pg_error(err)),
        Err(_) => client.batch_execute("ROLLBACK").await.map_err(pg_error)?,
    }
    let mut earlier = None;
    for step in &steps {
        if let Err(err) = client.batch_execute(step).await {
            earlier = Some(pg_error(err));
        }
    }
    match client.batch_execute(&drop_role).await {
        Ok(()) => Ok(()),
        Err(err) => Err(match earlier {
            Some(earlier) => format!(
                "could not perform all revocation statements: {earlier}; {}",
                pg_error(err)
            ),
            None => pg_error(err),
        }),
    }
}

/// One transaction, as Mayfly's MySQL plugin runs creations and revocations (MariaDB commits
/// each DDL statement anyway).
async fn my_transaction(conn: &mut mysql_async::Conn, queries: &[String]) -> Result<(), String> {
    let mut tx = conn
        .start_transaction(TxOpts::default())
        .await
        .map_err(my_error)?;
    for query in queries {
        tx.query_drop(query).await.map_err(my_error)?;
    }
    tx.commit().await.map_err(my_error)
}

/// Mayfly's default MySQL revocation: revoke and drop; a failure on a user that is already
/// gone counts as done.
async fn my_revoke(conn: &mut mysql_async::Conn, name: &str) -> Result<(), String> {
    let queries = [
        format!("REVOKE ALL PRIVILEGES, GRANT OPTION FROM '{name}'@'%'"),
        format!("DROP USER '{name}'@'%'"),
    ];
    let Err(err) = my_transaction(conn, &queries).await else {
        return Ok(());
    };
    let count: Option<i64> = conn
        .exec_first("SELECT COUNT(*) FROM mysql.user WHERE User = ?", (name,))
        .await
        .ok()
        .flatten();
    if count == Some(0) { Ok(()) } else { Err(err) }
}

/// Successes, failures and latencies of one phase, from one client or all.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    retries: u64,
    first_error: Option<String>,
    items: Vec<String>,
}

impl Tally {
    fn record(&mut self, started: Instant, result: Result<Option<String>, String>) {
        match result {
            Ok(item) => {
                let micros = started.elapsed().as_micros();
                self.latencies_us
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
                self.items.extend(item);
            }
            Err(message) => {
                self.errors += 1;
                self.first_error.get_or_insert(message);
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        self.retries += other.retries;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.items.extend(other.items);
    }
}

/// The outcome of one phase (creds or revokes) of a level.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Phase {
    /// Successful operations.
    pub ops: u64,
    /// Failed operations (any non-2xx answer, or a failed SQL transaction).
    pub errors: u64,
    /// Raw path only: transactions run again after "tuple concurrently updated" and the like.
    pub retries: u64,
    pub first_error: Option<String>,
    pub seconds: f64,
    pub per_sec: f64,
    pub latency_ms: Latency,
    /// Servers only: the server's CPU over the phase, in percent of one core.
    pub server_cpu_percent: Option<f64>,
}

impl Phase {
    fn new(tally: Tally, seconds: f64, server_cpu_secs: Option<f64>) -> Phase {
        let ops = tally.latencies_us.len() as u64;
        Phase {
            ops,
            errors: tally.errors,
            retries: tally.retries,
            first_error: tally.first_error,
            seconds,
            per_sec: rate(ops, seconds),
            latency_ms: Latency::from_micros(tally.latencies_us),
            server_cpu_percent: server_cpu_secs.map(|cpu| rate_f(cpu * 100.0, seconds)),
        }
    }
}

/// Operations per second; 0 for an empty interval.
pub fn rate(ops: u64, seconds: f64) -> f64 {
    rate_f(ops as f64, seconds)
}

fn rate_f(amount: f64, seconds: f64) -> f64 {
    if seconds > 0.0 { amount / seconds } else { 0.0 }
}

/// `mine / theirs`, when both are known and `theirs` is not 0.
pub fn ratio(mine: Option<f64>, theirs: Option<f64>) -> Option<f64> {
    match (mine, theirs) {
        (Some(mine), Some(theirs)) if theirs > 0.0 => Some(mine / theirs),
        _ => None,
    }
}

/// One (database, form, path, clients) level: creds for the duration, then revokes of those
/// credentials for at most as long.
#[derive(Debug, Clone, Serialize)]
pub struct Level {
    pub kind: DbKind,
    pub form: Form,
    pub via: Via,
    /// Raw SQL only: the server it took turns with.
    pub beside: Option<Via>,
    pub clients: usize,
    pub creds: Phase,
    pub revokes: Phase,
    /// Credentials whose revocation was never attempted because the revoke clock ran out.
    pub not_attempted: u64,
    /// Users of this level still in the database after the revokes (then dropped by the
    /// benchmark): the unattempted ones plus any failed revocations, else revocation lied.
    pub users_left: u64,
}

impl Level {
    /// The path, and for raw SQL the server it took turns with.
    fn path_label(&self) -> String {
        match self.beside {
            Some(server) => format!("{} (with {})", self.via.label(), server.label()),
            None => self.via.label().to_owned(),
        }
    }
}

/// Runs `timed_op` on every connection concurrently until `deadline`, or until `op` says
/// there is nothing left to do; returns the merged tally and the connections.
async fn phase<F, Fut>(
    conns: Vec<Conn>,
    deadline: Instant,
    op: F,
) -> Result<(Tally, Vec<Conn>), String>
where
    F: Fn(Conn, usize, Instant) -> Fut,
    Fut: Future<Output = (Tally, Conn)> + Send + 'static,
{
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(client, conn)| tokio::spawn(op(conn, client, deadline)))
        .collect();
    let mut total = Tally::default();
    let mut conns = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (tally, conn) = task.await.map_err(|e| format!("a client failed: {e}"))?;
        total.merge(tally);
        conns.push(conn);
    }
    Ok((total, conns))
}

/// Issues credentials on every connection until `deadline`.
async fn create_phase(
    conns: Vec<Conn>,
    ctx: &Arc<Ctx>,
    deadline: Instant,
    once: bool,
) -> Result<(Tally, Vec<Conn>), String> {
    phase(conns, deadline, |mut conn, client, deadline| {
        let ctx = Arc::clone(ctx);
        async move {
            let mut rng = Rng::seeded(client as u64 + 1);
            let mut tally = Tally::default();
            loop {
                let started = Instant::now();
                let (result, retries) = conn.create(&ctx, &mut rng).await;
                tally.retries += u64::from(retries);
                tally.record(started, result.map(Some));
                if once || Instant::now() >= deadline {
                    break;
                }
            }
            (tally, conn)
        }
    })
    .await
}

/// Revokes `items`, shared out among the connections, until they run out or `deadline`
/// passes; returns how many were never attempted too.
async fn revoke_phase(
    conns: Vec<Conn>,
    ctx: &Arc<Ctx>,
    items: Vec<String>,
    deadline: Instant,
) -> Result<(Tally, Vec<Conn>, u64), String> {
    let items = Arc::new(items);
    let next = Arc::new(AtomicUsize::new(0));
    let (tally, conns) = phase(conns, deadline, |mut conn, _, deadline| {
        let (ctx, items, next) = (Arc::clone(ctx), Arc::clone(&items), Arc::clone(&next));
        async move {
            let mut tally = Tally::default();
            while Instant::now() < deadline {
                let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                let started = Instant::now();
                let result = conn.revoke(&ctx, item).await;
                tally.record(started, result.map(|()| None));
            }
            (tally, conn)
        }
    })
    .await?;
    let claimed = next.load(Ordering::Relaxed).min(items.len());
    Ok((tally, conns, (items.len() - claimed) as u64))
}

/// Credentials a turn revokes at least, when issuing them takes at most [`TOP_UP_TURNS`] more
/// turns' duration.
const MIN_REVOKES: usize = 4000;
const TOP_UP_TURNS: u32 = 3;

/// Turns per level: raw SQL and the server alternate this many times each, so a machine that
/// speeds up or slows down over a level weighs on both paths alike.
const TURNS: u32 = 4;

/// One path's turns at one level, summed.
#[derive(Default)]
struct Turns {
    created: Tally,
    creds_secs: f64,
    creds_cpu: Option<f64>,
    revoked: Tally,
    revokes_secs: f64,
    revokes_cpu: Option<f64>,
    not_attempted: u64,
    users_left: u64,
}

impl Turns {
    /// Whether this path's earlier turns revoked everything in under a quarter of the time
    /// they took to issue it.
    fn revokes_fast(&self) -> bool {
        self.not_attempted == 0
            && self.revokes_secs > 0.0
            && self.revokes_secs * 4.0 < self.creds_secs
    }

    fn level(self, ctx: &Ctx, form: Form, via: Via, beside: Option<Via>, clients: usize) -> Level {
        let level = Level {
            kind: ctx.kind,
            form,
            via,
            beside,
            clients,
            creds: Phase::new(self.created, self.creds_secs, self.creds_cpu),
            revokes: Phase::new(self.revoked, self.revokes_secs, self.revokes_cpu),
            not_attempted: self.not_attempted,
            users_left: self.users_left,
        };
        eprintln!(
            "   {} ×{clients}: {:.0} creds/s ({} errors, {} retries), {:.0} revokes/s ({} errors), \
             {} not attempted, {} users left",
            level.path_label(),
            level.creds.per_sec,
            level.creds.errors,
            level.creds.retries,
            level.revokes.per_sec,
            level.revokes.errors,
            level.not_attempted,
            level.users_left
        );
        for error in [&level.creds.first_error, &level.revokes.first_error]
            .into_iter()
            .flatten()
        {
            eprintln!("     first error: {error}");
        }
        level
    }
}

fn add_cpu(total: Option<f64>, more: Option<f64>) -> Option<f64> {
    more.map(|more| total.unwrap_or(0.0) + more)
}

/// Brings the credentials about to be revoked to `target`, untimed: the ones past it are
/// revoked now, or more are issued, for at most [`TOP_UP_TURNS`] turns' time. With the `grant`
/// form one at a time on the first connection, so the raw path's PostgreSQL
/// `GRANT … ON ALL TABLES` cannot deadlock; group-role members on every connection. A
/// PostgreSQL revocation rewrites the ACL of every table, which lists every user still
/// holding grants, so revokes/s compare only between equal populations.
async fn match_population(
    conns: Vec<Conn>,
    ctx: &Arc<Ctx>,
    items: &mut Vec<String>,
    target: usize,
    form: Form,
    turn: Duration,
) -> Result<Vec<Conn>, String> {
    if items.len() > target {
        let extra = items.split_off(target);
        let far = Instant::now() + Duration::from_secs(3600);
        return revoke_phase(conns, ctx, extra, far)
            .await
            .map(|(_, conns, _)| conns);
    }
    let width = match form {
        Form::Grant => 1,
        Form::Role => conns.len(),
    };
    let until = Instant::now() + TOP_UP_TURNS * turn;
    top_up(conns, ctx, items, target, width, until).await
}

/// Issues credentials, untimed, on up to `width` connections at once, until `items` holds
/// `target` of them or `until` passes. A path that issues nothing three times running is left
/// short, so a path that cannot issue at all still ends its turn.
async fn top_up(
    mut conns: Vec<Conn>,
    ctx: &Arc<Ctx>,
    items: &mut Vec<String>,
    target: usize,
    width: usize,
    until: Instant,
) -> Result<Vec<Conn>, String> {
    let mut fruitless = 0;
    while items.len() < target && fruitless < 3 && Instant::now() < until {
        let idle = conns.split_off((target - items.len()).min(width).min(conns.len()));
        let (tally, busy) = create_phase(conns, ctx, Instant::now(), true).await?;
        conns = busy;
        conns.extend(idle);
        fruitless = if tally.items.is_empty() {
            fruitless + 1
        } else {
            0
        };
        items.extend(tally.items);
    }
    Ok(conns)
}

/// One turn of one path: warm-up, creds for `duration`, revokes of those credentials for at
/// most `duration`, then the count and removal of whatever users are left. The first turn of
/// a round sets `population`, how many credentials its revokes start from; the other turn of
/// the round revokes from as many.
#[allow(clippy::too_many_arguments)]
async fn run_turn(
    fixtures: &mut Fixtures,
    form: Form,
    conns: Vec<Conn>,
    ctx: &Arc<Ctx>,
    duration: Duration,
    pid: Option<u32>,
    turns: &mut Turns,
    population: &mut Option<usize>,
) -> Result<Vec<Conn>, String> {
    fixtures.before_level(ctx.kind).await?;
    // One credential per connection before the clock, so pools, HTTP connections and
    // statement caches are warm; a warm-up that fails everywhere means the setup is broken.
    let (warm, conns) = create_phase(conns, ctx, Instant::now(), true).await?;
    if warm.items.is_empty() {
        return Err(format!(
            "{} {}: no credential could be issued: {}",
            ctx.kind.label(),
            form.label(),
            warm.first_error.unwrap_or_default()
        ));
    }
    let (_, conns, _) = revoke_phase(conns, ctx, warm.items, Instant::now() + duration).await?;
    let pattern = fixtures.names.users_of(form);
    fixtures.drop_users(ctx.kind, &pattern).await?;

    let cpu = || pid.map(|pid| ProcCounters::read(Some(pid)));
    let cpu_since = |before: Option<ProcCounters>| {
        cpu()
            .zip(before)
            .map(|(after, before)| after.since(before).cpu_secs)
    };

    let (cpu_before, start) = (cpu(), Instant::now());
    let (mut created, mut conns) = create_phase(conns, ctx, start + duration, false).await?;
    turns.creds_secs += start.elapsed().as_secs_f64();
    turns.creds_cpu = add_cpu(turns.creds_cpu, cpu_since(cpu_before));
    let mut items = std::mem::take(&mut created.items);
    turns.created.merge(created);
    match *population {
        None => {
            // Where revoking is much faster than issuing (PostgreSQL group roles: 20k a second
            // against 650), the credentials of one turn are revoked in tens of milliseconds,
            // where one stall of the machine moves the rate by a quarter. Untimed issuance
            // tops them up once this path's earlier turns showed its revocations that fast.
            if turns.revokes_fast() {
                let width = conns.len();
                let until = Instant::now() + TOP_UP_TURNS * duration;
                conns = top_up(conns, ctx, &mut items, MIN_REVOKES, width, until).await?;
            }
            *population = Some(items.len());
        }
        Some(target) => {
            conns = match_population(conns, ctx, &mut items, target, form, duration).await?;
        }
    }

    let (cpu_before, start) = (cpu(), Instant::now());
    let (revoked, conns, not_attempted) = revoke_phase(conns, ctx, items, start + duration).await?;
    turns.revokes_secs += start.elapsed().as_secs_f64();
    turns.revokes_cpu = add_cpu(turns.revokes_cpu, cpu_since(cpu_before));
    turns.revoked.merge(revoked);
    turns.not_attempted += not_attempted;

    turns.users_left += fixtures.drop_users(ctx.kind, &pattern).await?;
    Ok(conns)
}

/// A setup call to a server; anything but 2xx fails.
async fn call(target: &Target, path: &str, body: Value) -> Result<(), String> {
    let (status, answer) = target
        .send(
            Method::POST,
            path,
            Some(&target.token),
            Some(body.to_string()),
        )
        .await?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!(
            "POST {path}: HTTP {status}: {}",
            String::from_utf8_lossy(&answer)
        ))
    }
}

/// The mount, connection and role, identical on both servers.
async fn configure(
    target: &Target,
    kind: DbKind,
    form: Form,
    names: &Names,
    connections: usize,
) -> Result<(), String> {
    let (admin, database) = (names.admin(), names.database());
    let connection_url = match kind {
        DbKind::Postgres => format!(
            "postgresql://{{{{username}}}}:{{{{password}}}}@{PG_HOST}:{PG_PORT}/{database}?sslmode=disable"
        ),
        DbKind::Mysql => format!("{{{{username}}}}:{{{{password}}}}@tcp({MY_HOST}:{MY_PORT})/"),
    };
    call(target, "sys/mounts/database", json!({ "type": "database" })).await?;
    call(
        target,
        "database/config/bench",
        json!({
            "plugin_name": kind.plugin(),
            "connection_url": connection_url,
            "username": admin,
            "password": names.admin_password,
            "allowed_roles": "*",
            "max_open_connections": connections,
            "max_idle_connections": connections,
        }),
    )
    .await?;
    call(
        target,
        &format!("database/roles/{}", names.role(form)),
        json!({
            "db_name": "bench",
            // A list, so no server splits the statements on commas.
            "creation_statements": [creation_statements(kind, form, names)],
            "default_ttl": format!("{}s", TTL.as_secs()),
        }),
    )
    .await
}

/// `count` connections for the raw path, as the servers' admin login.
async fn open_raw(kind: DbKind, names: &Names, count: usize) -> Result<Vec<Conn>, String> {
    let mut conns = Vec::with_capacity(count);
    for _ in 0..count {
        conns.push(match kind {
            DbKind::Postgres => Conn::Pg(
                pg_connect(
                    &names.admin(),
                    Some(&names.admin_password),
                    &names.database(),
                )
                .await?,
            ),
            DbKind::Mysql => {
                Conn::My(my_connect(&names.admin(), Some(&names.admin_password)).await?)
            }
        });
    }
    Ok(conns)
}

/// The servers' names and versions, as the report gives them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Versions {
    pub postgres: Option<String>,
    pub mariadb: Option<String>,
    pub mayfly: Option<String>,
    pub openbao: Option<String>,
    pub openbao_storage: Option<String>,
}

/// How long the cheapest request takes a server, answered over one of the suite's own
/// connections: what any request costs before the server does anything for it.
#[derive(Debug, Clone, Serialize)]
pub struct Floor {
    pub kind: DbKind,
    pub form: Form,
    pub via: Via,
    /// `GET sys/health`, one client, median.
    pub p50_us: f64,
}

/// Requests timed by [`http_floor`], after as many unmeasured ones.
const FLOOR_REQUESTS: usize = 2000;

/// Times [`FLOOR_REQUESTS`] `GET sys/health` round trips, one at a time over one connection.
async fn http_floor(base: &str) -> Result<f64, String> {
    let mut conn = HttpConn::connect(base).await?;
    let mut micros = Vec::with_capacity(FLOOR_REQUESTS);
    for round in 0..2 * FLOOR_REQUESTS {
        let started = Instant::now();
        let (status, body) = conn.send(Method::GET, "sys/health", "", None).await?;
        if !status.is_success() {
            return Err(format!(
                "GET sys/health: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        if round >= FLOOR_REQUESTS {
            micros.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
        }
    }
    Ok(Latency::from_micros(micros).p50 * 1000.0)
}

/// Runs every level of one database and form: raw SQL, then Mayfly, then OpenBao, each server
/// started fresh for it and stopped after.
async fn run_block(
    args: &Args,
    fixtures: &mut Fixtures,
    kind: DbKind,
    form: Form,
    versions: &mut Versions,
    levels: &mut Vec<Level>,
    floors: &mut Vec<Floor>,
) -> Result<(), String> {
    let opts = &args.database;
    let names = fixtures.names.clone();
    let raw_ctx = Ctx::new(kind, form, &names, String::new());
    let turn = args.duration / TURNS;

    let mut servers = vec![(Via::Mayfly, Kind::Mayfly, args.mayfly.clone())];
    if let Some(bao) = &args.bao {
        servers.push((Via::OpenBao, Kind::OpenBao(args.bao_storage), bao.clone()));
    }
    let connections = opts.clients.iter().copied().max().unwrap_or(1).max(16);
    for (via, server_kind, binary) in servers {
        let server = Server::prepare(server_kind, &binary, args.work_dir.as_deref())
            .map_err(|e| format!("{}: {e}", via.label()))?;
        let version = server.version().await;
        eprintln!(
            "== {} with {}: {version}, storage {}, in turns with raw SQL",
            kind.label(),
            form.label(),
            server_kind.storage()
        );
        match via {
            Via::OpenBao => {
                versions.openbao = Some(version);
                versions.openbao_storage = Some(server_kind.storage());
            }
            _ => versions.mayfly = Some(version),
        }
        let outcome = async {
            let (process, target, _) = crate::start_fresh(&server, connections).await?;
            configure(&target, kind, form, &names, connections).await?;
            floors.push(Floor {
                kind,
                form,
                via,
                p50_us: http_floor(&target.base).await?,
            });
            let ctx = Ctx::new(kind, form, &names, target.token.clone());
            for &clients in &opts.clients {
                let mut raw_conns = open_raw(kind, &names, clients).await?;
                let mut server_conns = Vec::with_capacity(clients);
                for _ in 0..clients {
                    server_conns.push(Conn::Http(HttpConn::connect(&target.base).await?));
                }
                let (mut raw, mut served) = (Turns::default(), Turns::default());
                for round in 0..TURNS {
                    let mut population = None;
                    // Alternating who goes first cancels any advantage of going first.
                    for raw_turn in [round % 2 == 0, round % 2 == 1] {
                        if raw_turn {
                            raw_conns = run_turn(
                                fixtures,
                                form,
                                raw_conns,
                                &raw_ctx,
                                turn,
                                None,
                                &mut raw,
                                &mut population,
                            )
                            .await?;
                        } else {
                            server_conns = run_turn(
                                fixtures,
                                form,
                                server_conns,
                                &ctx,
                                turn,
                                Some(target.pid),
                                &mut served,
                                &mut population,
                            )
                            .await?;
                        }
                    }
                }
                for conn in raw_conns {
                    conn.close().await;
                }
                levels.push(raw.level(&raw_ctx, form, Via::Raw, Some(via), clients));
                levels.push(served.level(&ctx, form, via, None, clients));
            }
            process.stop().await.map(drop)
        }
        .await;
        outcome.map_err(|e| {
            format!(
                "{} ({} with {}): {e}\n--- last lines of its log ---\n{}",
                via.label(),
                kind.label(),
                form.label(),
                server.log_tail()
            )
        })?;
    }
    Ok(())
}

/// The database suite: fixtures, every block, cleanup (even after a failure), the report.
pub async fn run(args: &Args, command: String, machine: Machine) -> Result<(), String> {
    let opts = &args.database;
    let mut fixtures = Fixtures {
        names: Names::new(),
        pg: None,
        my: None,
        pg_version: None,
        my_version: None,
    };
    eprintln!(
        "== database suite: fixtures named after {:?} ({} tables each)",
        fixtures.names.suffix, TABLES
    );
    let mut versions = Versions::default();
    let mut levels = Vec::new();
    let mut floors = Vec::new();
    let outcome = async {
        fixtures.create(&opts.kinds).await?;
        for &kind in &opts.kinds {
            for &form in &opts.forms {
                run_block(
                    args,
                    &mut fixtures,
                    kind,
                    form,
                    &mut versions,
                    &mut levels,
                    &mut floors,
                )
                .await?;
            }
        }
        Ok::<(), String>(())
    }
    .await;
    versions.postgres = fixtures.pg_version.take();
    versions.mariadb = fixtures.my_version.take();
    let cleanup = fixtures.cleanup().await;
    outcome?;
    cleanup?;

    let report = DbReport::new(
        command,
        machine,
        args.duration.as_secs_f64(),
        versions,
        levels,
        floors,
    );
    print!("{}", report.markdown());
    if let Some(path) = &args.json_out {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| format!("serializing the report: {e}"))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        eprintln!("JSON written to {}", path.display());
    }
    Ok(())
}

/// Which phase a comparison row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Creds,
    Revokes,
}

impl Op {
    fn label(self) -> &'static str {
        match self {
            Self::Creds => "creds/s",
            Self::Revokes => "revokes/s",
        }
    }

    fn of(self, level: &Level) -> &Phase {
        match self {
            Self::Creds => &level.creds,
            Self::Revokes => &level.revokes,
        }
    }
}

/// One line of a comparison table, with its goal.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub kind: DbKind,
    pub form: Form,
    pub op: Op,
    pub clients: usize,
    /// Raw SQL in turns with Mayfly.
    pub raw: Option<f64>,
    pub mayfly: Option<f64>,
    /// Raw SQL in turns with OpenBao.
    pub raw_beside_openbao: Option<f64>,
    pub openbao: Option<f64>,
    pub mayfly_vs_raw: Option<f64>,
    pub openbao_vs_raw: Option<f64>,
    pub mayfly_vs_openbao: Option<f64>,
    pub raw_errors: Option<u64>,
    pub mayfly_errors: Option<u64>,
    pub openbao_errors: Option<u64>,
    /// Mayfly ≥ 0.9× raw, ahead of OpenBao (when it ran), without errors; absent without a
    /// Mayfly or raw number.
    pub goal_met: Option<bool>,
}

/// Whether a row meets the goal.
pub fn goal_met(
    mayfly_vs_raw: Option<f64>,
    mayfly_vs_openbao: Option<f64>,
    openbao_ran: bool,
    mayfly_errors: u64,
) -> Option<bool> {
    let vs_raw = mayfly_vs_raw?;
    let ahead = if openbao_ran {
        mayfly_vs_openbao.is_none_or(|r| r > 1.0)
    } else {
        true
    };
    Some(vs_raw >= GOAL_RAW_RATIO && ahead && mayfly_errors == 0)
}

/// The comparison rows of `levels`, in the order the levels ran.
pub fn rows(levels: &[Level]) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut keys: Vec<(DbKind, Form, usize)> = Vec::new();
    for level in levels {
        let key = (level.kind, level.form, level.clients);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    for op in [Op::Creds, Op::Revokes] {
        for &(kind, form, clients) in &keys {
            let find = |via: Via, beside: Option<Via>| {
                levels.iter().find(|l| {
                    l.via == via
                        && l.beside == beside
                        && l.kind == kind
                        && l.form == form
                        && l.clients == clients
                })
            };
            let (raw, mayfly) = (find(Via::Raw, Some(Via::Mayfly)), find(Via::Mayfly, None));
            let (raw_beside_openbao, openbao) =
                (find(Via::Raw, Some(Via::OpenBao)), find(Via::OpenBao, None));
            let per_sec = |level: Option<&Level>| level.map(|l| op.of(l).per_sec);
            let errors = |level: Option<&Level>| level.map(|l| op.of(l).errors);
            let mayfly_vs_raw = ratio(per_sec(mayfly), per_sec(raw));
            let openbao_vs_raw = ratio(per_sec(openbao), per_sec(raw_beside_openbao));
            // The servers compare directly. Dividing each by its raw turns would cancel the
            // machine's drift between the two blocks, but raw SQL is no yardstick where it
            // fails on its own (PostgreSQL's per-user GRANT deadlocks at 4 and 16 clients); the
            // raw columns show how fast the machine was during each block instead.
            let mayfly_vs_openbao = ratio(per_sec(mayfly), per_sec(openbao));
            rows.push(Row {
                kind,
                form,
                op,
                clients,
                raw: per_sec(raw),
                mayfly: per_sec(mayfly),
                raw_beside_openbao: per_sec(raw_beside_openbao),
                openbao: per_sec(openbao),
                mayfly_vs_raw,
                openbao_vs_raw,
                mayfly_vs_openbao,
                raw_errors: errors(raw),
                mayfly_errors: errors(mayfly),
                openbao_errors: errors(openbao),
                goal_met: mayfly.and_then(|m| {
                    goal_met(
                        mayfly_vs_raw,
                        mayfly_vs_openbao,
                        openbao.is_some(),
                        op.of(m).errors,
                    )
                }),
            });
        }
    }
    rows
}

/// Everything the suite measured, as printed and as saved to JSON.
#[derive(Debug, Clone, Serialize)]
pub struct DbReport {
    pub command: String,
    pub machine: Machine,
    pub duration_secs: f64,
    pub versions: Versions,
    pub levels: Vec<Level>,
    pub floors: Vec<Floor>,
    pub rows: Vec<Row>,
    pub goals_met: usize,
    pub goals: usize,
}

impl DbReport {
    fn new(
        command: String,
        machine: Machine,
        duration_secs: f64,
        versions: Versions,
        levels: Vec<Level>,
        floors: Vec<Floor>,
    ) -> DbReport {
        let rows = rows(&levels);
        let goals = rows.iter().filter(|r| r.goal_met.is_some()).count();
        let goals_met = rows.iter().filter(|r| r.goal_met == Some(true)).count();
        DbReport {
            command,
            machine,
            duration_secs,
            versions,
            levels,
            floors,
            rows,
            goals_met,
            goals,
        }
    }

    /// At one client an operation takes the raw path's time plus at least one HTTP round
    /// trip, so no server can beat raw time / (raw time + round trip), whatever it does.
    fn one_client_ceiling(&self, floor: &Floor) -> String {
        let raw = self.levels.iter().find(|l| {
            l.kind == floor.kind
                && l.form == floor.form
                && l.via == Via::Raw
                && l.beside == Some(floor.via)
                && l.clients == 1
        });
        let ceiling = |phase: &Phase| {
            let raw_us = phase.latency_ms.p50 * 1000.0;
            if raw_us > 0.0 {
                format!("{:.2}×", raw_us / (raw_us + floor.p50_us))
            } else {
                "–".to_owned()
            }
        };
        let (creds, revokes) = raw.map_or(("–".to_owned(), "–".to_owned()), |l| {
            (ceiling(&l.creds), ceiling(&l.revokes))
        });
        format!(
            "{}'s floor: a `GET sys/health` round trip takes {:.0} µs (p50, one connection), so \
             at one client no server answering over HTTP could reach more than {creds} of raw \
             SQL's creds/s or {revokes} of its revokes/s here (raw p50 / (raw p50 + round trip)).",
            floor.via.label(),
            floor.p50_us
        )
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let v = &self.versions;
        let unknown = || "not run".to_owned();
        let _ = writeln!(
            out,
            "# Database credentials: Mayfly vs raw SQL vs OpenBao\n"
        );
        let _ = writeln!(out, "- command: `{}`", self.command);
        let _ = writeln!(
            out,
            "- machine: {} CPUs ({}), kernel {}, load average at start {}",
            m.nproc, m.cpu, m.kernel, m.load_average
        );
        let _ = writeln!(
            out,
            "- servers' data: {} ({})",
            m.data_dir, m.data_filesystem
        );
        let _ = writeln!(
            out,
            "- PostgreSQL {} at {PG_HOST}:{PG_PORT}; MariaDB {} at {MY_HOST}:{MY_PORT}",
            v.postgres.clone().unwrap_or_else(unknown),
            v.mariadb.clone().unwrap_or_else(unknown)
        );
        let _ = writeln!(
            out,
            "- Mayfly: {} (file storage); OpenBao: {} ({} storage)",
            v.mayfly.clone().unwrap_or_else(unknown),
            v.openbao.clone().unwrap_or_else(unknown),
            v.openbao_storage.clone().unwrap_or_else(unknown)
        );
        let _ = writeln!(
            out,
            "- each level: {TURNS} turns of `GET database/creds/<role>` for {:.1} s, then `PUT \
             sys/leases/revoke` of those leases for at most as long, {:.0} s of each in all; raw \
             SQL (the same statements over as many direct connections) takes turns with each \
             server, so each server's ratio to raw SQL is immune to the machine's drift, and the \
             raw columns show how fast the machine was during each server's block",
            self.duration_secs / f64::from(TURNS),
            self.duration_secs
        );
        let _ = writeln!(
            out,
            "- goal: Mayfly ≥ {GOAL_RAW_RATIO}× raw SQL, ahead of OpenBao, 0 errors: **met in {} of {} rows**\n",
            self.goals_met, self.goals
        );

        let mut sections: Vec<(DbKind, Form)> = Vec::new();
        for row in &self.rows {
            if !sections.contains(&(row.kind, row.form)) {
                sections.push((row.kind, row.form));
            }
        }
        let number = |value: Option<f64>| value.map_or("–".to_owned(), thousands);
        let times = |value: Option<f64>| value.map_or("–".to_owned(), |r| format!("{r:.2}×"));
        let count = |value: Option<u64>| value.map_or("–".to_owned(), |n| n.to_string());
        for (kind, form) in sections {
            let _ = writeln!(out, "## {}, {}\n", kind.label(), form.label());
            let names = Names {
                suffix: "XXXXXX".into(),
                admin_password: String::new(),
            };
            let _ = writeln!(out, "`{}`\n", creation_statements(kind, form, &names));
            for op in [Op::Creds, Op::Revokes] {
                let _ = writeln!(
                    out,
                    "| clients | raw {0} | Mayfly {0} | Mayfly/raw | raw {0} with OpenBao | OpenBao {0} | OpenBao/raw | Mayfly/OpenBao | errors raw / Mayfly / OpenBao | goal |",
                    op.label()
                );
                let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
                for row in self
                    .rows
                    .iter()
                    .filter(|r| r.kind == kind && r.form == form && r.op == op)
                {
                    let goal = match row.goal_met {
                        Some(true) => "met",
                        Some(false) => "**missed**",
                        None => "–",
                    };
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} | {goal} |",
                        row.clients,
                        number(row.raw),
                        number(row.mayfly),
                        times(row.mayfly_vs_raw),
                        number(row.raw_beside_openbao),
                        number(row.openbao),
                        times(row.openbao_vs_raw),
                        times(row.mayfly_vs_openbao),
                        count(row.raw_errors),
                        count(row.mayfly_errors),
                        count(row.openbao_errors),
                    );
                }
                out.push('\n');
            }
            for floor in self
                .floors
                .iter()
                .filter(|f| f.kind == kind && f.form == form)
            {
                let _ = writeln!(out, "{}\n", self.one_client_ceiling(floor));
            }
        }

        let _ = writeln!(out, "## Details\n");
        let _ = writeln!(
            out,
            "| database | form | path | clients | creds | creds/s | p50 ms | p99 ms | errors | retries | server CPU | revokes | revokes/s | p50 ms | p99 ms | errors | server CPU | not attempted | users left |"
        );
        let _ = writeln!(
            out,
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        let cpu = |p: &Phase| {
            p.server_cpu_percent
                .map_or("–".to_owned(), |c| format!("{c:.0}%"))
        };
        for l in &self.levels {
            let (c, r) = (&l.creds, &l.revokes);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {} | {} | {} | {} |",
                l.kind.label(),
                l.form.label(),
                l.path_label(),
                l.clients,
                c.ops,
                thousands(c.per_sec),
                c.latency_ms.p50,
                c.latency_ms.p99,
                c.errors,
                c.retries,
                cpu(c),
                r.ops,
                thousands(r.per_sec),
                r.latency_ms.p50,
                r.latency_ms.p99,
                r.errors,
                cpu(r),
                l.not_attempted,
                l.users_left,
            );
        }
        let errors: Vec<String> = self
            .levels
            .iter()
            .flat_map(|l| {
                [(Op::Creds, &l.creds), (Op::Revokes, &l.revokes)]
                    .into_iter()
                    .filter_map(move |(op, phase)| {
                        phase.first_error.as_ref().map(|e| {
                            format!(
                                "- {} {} {} ×{} {}: {} errors, first: `{}`",
                                l.path_label(),
                                l.kind.label(),
                                l.form.label(),
                                l.clients,
                                op.label(),
                                phase.errors,
                                e.replace('`', "'")
                            )
                        })
                    })
            })
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(out, "\n### Errors\n");
            for line in errors {
                let _ = writeln!(out, "{line}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names {
            suffix: "a1b2c3".into(),
            admin_password: "pw".into(),
        }
    }

    fn like(pattern: &str, text: &str) -> bool {
        // Enough of SQL LIKE for the suite's patterns: `%` and `_`.
        fn go(p: &[char], t: &[char]) -> bool {
            match p.first() {
                None => t.is_empty(),
                Some('%') => (0..=t.len()).any(|i| go(&p[1..], &t[i..])),
                Some('_') => !t.is_empty() && go(&p[1..], &t[1..]),
                Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
            }
        }
        let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
        go(&p, &t)
    }

    #[test]
    fn options_parse_lists() {
        let mut opts = Options::default();
        assert_eq!(opts.clients, [1, 4, 16]);
        assert_eq!(opts.kinds, [DbKind::Postgres, DbKind::Mysql]);
        assert_eq!(opts.forms, [Form::Grant, Form::Role]);
        opts.set("db-clients", "2, 8,2").expect("valid");
        opts.set("db-kinds", "mariadb").expect("valid");
        opts.set("db-forms", "role,grant").expect("valid");
        assert_eq!(opts.clients, [2, 8]);
        assert_eq!(opts.kinds, [DbKind::Mysql]);
        assert_eq!(opts.forms, [Form::Role, Form::Grant]);
        assert!(opts.set("db-clients", "1,0").is_err());
        assert!(opts.set("db-clients", "").is_err());
        assert!(opts.set("db-kinds", "oracle").is_err());
        assert!(opts.set("db-forms", "grant,view").is_err());
        assert!(opts.set("db-bogus", "1").is_err());
    }

    #[test]
    fn rates_ratios_and_goal() {
        assert_eq!(rate(500, 10.0), 50.0);
        assert_eq!(rate(5, 0.0), 0.0);
        assert_eq!(ratio(Some(90.0), Some(100.0)), Some(0.9));
        assert_eq!(ratio(Some(90.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
        assert_eq!(goal_met(Some(0.9), Some(1.1), true, 0), Some(true));
        assert_eq!(goal_met(Some(0.89), Some(2.0), true, 0), Some(false));
        assert_eq!(goal_met(Some(1.0), Some(1.0), true, 0), Some(false));
        assert_eq!(goal_met(Some(1.0), Some(2.0), true, 1), Some(false));
        assert_eq!(goal_met(Some(1.0), None, false, 0), Some(true));
        // OpenBao ran but managed nothing: Mayfly is ahead.
        assert_eq!(goal_met(Some(1.0), None, true, 0), Some(true));
        assert_eq!(goal_met(None, Some(2.0), true, 0), None);
    }

    fn level(
        via: Via,
        beside: Option<Via>,
        clients: usize,
        creds: f64,
        revokes: f64,
        errors: u64,
    ) -> Level {
        let phase = |per_sec| Phase {
            per_sec,
            errors,
            ..Phase::default()
        };
        Level {
            kind: DbKind::Postgres,
            form: Form::Grant,
            via,
            beside,
            clients,
            creds: phase(creds),
            revokes: phase(revokes),
            not_attempted: 0,
            users_left: 0,
        }
    }

    #[test]
    fn rows_pair_each_server_with_its_raw_turns() {
        // OpenBao's raw turns ran at half speed: its ratio to raw shows it, the direct
        // comparison does not hide it.
        let (mayfly, openbao) = (Some(Via::Mayfly), Some(Via::OpenBao));
        let mut levels = [
            level(Via::Raw, mayfly, 1, 100.0, 200.0, 0),
            level(Via::Mayfly, None, 1, 95.0, 150.0, 0),
            level(Via::Raw, mayfly, 4, 300.0, 400.0, 0),
            level(Via::Mayfly, None, 4, 290.0, 390.0, 0),
            level(Via::Raw, openbao, 1, 50.0, 100.0, 0),
            level(Via::OpenBao, None, 1, 40.0, 50.0, 0),
            level(Via::Raw, openbao, 4, 150.0, 200.0, 0),
            level(Via::OpenBao, None, 4, 100.0, 395.0, 3),
        ];
        let rows = rows(&levels);
        assert_eq!(rows.len(), 4);
        let find = |op, clients| {
            rows.iter()
                .find(|r| r.op == op && r.clients == clients)
                .expect("a row")
        };
        let r = find(Op::Creds, 1);
        assert_eq!(
            (r.raw, r.mayfly, r.raw_beside_openbao, r.openbao),
            (Some(100.0), Some(95.0), Some(50.0), Some(40.0))
        );
        assert_eq!(r.mayfly_vs_raw, Some(0.95));
        assert_eq!(r.openbao_vs_raw, Some(0.8));
        assert_eq!(r.mayfly_vs_openbao, Some(2.375));
        assert_eq!(r.goal_met, Some(true));
        assert_eq!(find(Op::Revokes, 1).goal_met, Some(false), "0.75× raw");
        assert_eq!(find(Op::Revokes, 4).goal_met, Some(false), "behind OpenBao");
        assert_eq!(find(Op::Revokes, 4).openbao_errors, Some(3));
        assert_eq!(rows[0].op, Op::Creds, "creds rows come first");

        levels[0].creds.latency_ms.p50 = 0.9;
        levels[0].revokes.latency_ms.p50 = 0.1;
        let floor = Floor {
            kind: DbKind::Postgres,
            form: Form::Grant,
            via: Via::Mayfly,
            p50_us: 100.0,
        };
        let report = DbReport::new(
            "bench".into(),
            Machine::detect(std::path::Path::new("/")),
            10.0,
            Versions::default(),
            levels.to_vec(),
            vec![floor],
        );
        assert_eq!((report.goals_met, report.goals), (2, 4));
        let ceiling = report.markdown();
        assert!(
            ceiling.contains("takes 100 µs")
                && ceiling
                    .contains("more than 0.90× of raw SQL's creds/s or 0.50× of its revokes/s"),
            "{ceiling}"
        );
        let text = report.markdown();
        assert!(
            text.contains("| 1 | 100 | 95 | 0.95× | 50 | 40 | 0.80× | 2.38× | 0 / 0 / 0 | met |"),
            "{text}"
        );
        assert!(text.contains("| raw SQL (with OpenBao) | 4 |"), "{text}");
        assert!(text.contains("**met in 2 of 4 rows**"), "{text}");
    }

    #[test]
    fn statements_render_and_split() {
        let n = names();
        let pg = creation_statements(DbKind::Postgres, Form::Grant, &n);
        let queries = render(&pg, "v-x", "pw-1", "2030-01-01 00:00:00+0000");
        assert_eq!(
            queries,
            [
                r#"CREATE ROLE "v-x" WITH LOGIN PASSWORD 'pw-1' VALID UNTIL '2030-01-01 00:00:00+0000'"#,
                r#"GRANT SELECT ON ALL TABLES IN SCHEMA public TO "v-x""#
            ]
        );
        let group = creation_statements(DbKind::Postgres, Form::Role, &n);
        assert!(group.ends_with("IN ROLE bench_readers_a1b2c3;"), "{group}");
        assert!(group.contains(r#""{{name}}""#), "{group}");
        let my = creation_statements(DbKind::Mysql, Form::Role, &n);
        assert_eq!(render(&my, "u", "p", "").len(), 3);
        assert!(
            my.contains("GRANT bench_readers_a1b2c3 TO '{{name}}'@'%'"),
            "{my}"
        );
        let my = creation_statements(DbKind::Mysql, Form::Grant, &n);
        assert!(
            my.contains("ON mayfly_bench_a1b2c3.* TO '{{name}}'@'%'"),
            "{my}"
        );
    }

    #[test]
    fn usernames_fit_and_are_found_by_cleanup() {
        let n = names();
        let mut rng = Rng::seeded(7);
        for kind in [DbKind::Postgres, DbKind::Mysql] {
            for form in [Form::Grant, Form::Role] {
                let name = username(kind, &n.role(form), &mut rng);
                assert!(name.len() <= kind.max_username(), "{name}");
                assert!(like(&n.users_of(form), &name), "{name}");
                assert!(like(&n.all_users(), &name), "{name}");
                let other = if form == Form::Grant {
                    Form::Role
                } else {
                    Form::Grant
                };
                assert!(!like(&n.users_of(other), &name), "{name}");
            }
        }
        assert_eq!(n.role(Form::Grant).len(), 8);
        let pw = password(&mut rng);
        assert_eq!(pw.len(), 20);
        assert!(pw.contains('-') && pw.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }

    #[test]
    fn expirations_use_vaults_layout() {
        assert_eq!(format_expiration(0), "1970-01-01 00:00:00+0000");
        assert_eq!(format_expiration(1_614_294_836), "2021-02-25 23:13:56+0000");
        assert_eq!(format_expiration(951_782_400), "2000-02-29 00:00:00+0000");
        assert_eq!(format_expiration(4_102_444_799), "2099-12-31 23:59:59+0000");
    }

    #[test]
    fn backoff_stays_under_its_cap() {
        let mut rng = Rng::seeded(1);
        for attempt in 1..20 {
            let cap = Duration::from_millis((10u64 << attempt.min(7)).min(1000));
            assert!(backoff(attempt, &mut rng) <= cap);
        }
    }
}
