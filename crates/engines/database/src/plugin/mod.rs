//! The database plugin interface (Vault's `dbplugin` v5): initialize a connection from its
//! details, create, update and delete users, close. Each supported database implements it.

mod mysql;
mod postgres;
mod redis;
pub(crate) mod resp;

use std::time::SystemTime;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::sync::watch;

pub use self::{
    mysql::{Flavor as MySqlFlavor, MySql},
    postgres::{
        Postgres, REVOCATION_LOOKUP as POSTGRES_REVOCATION_LOOKUP,
        revocation_steps as postgres_revocation_steps, scram_matches, scram_sha256_verifier,
    },
    redis::Redis,
};

/// Why a plugin call failed. Messages never contain passwords: plugins pass them through
/// [`DbError::redact`] before returning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbError {
    /// The connection details are invalid; retrying will not help.
    #[error("{0}")]
    Config(String),
    /// The database could not be reached or refused the login; it may come back.
    #[error("{0}")]
    Connection(String),
    /// The database rejected a statement.
    #[error("{0}")]
    Statement(String),
    /// The plugin was used before `initialize`, or after `close`.
    #[error("plugin is not initialized")]
    NotInitialized,
    /// The engine could not record the user it was about to create, so the plugin did not
    /// create it.
    #[error("the user was not created: its creation could not be recorded")]
    Abandoned,
}

impl DbError {
    /// Replaces the given secrets with `[password]`: database errors can echo a statement, and
    /// statements carry passwords. A syntax error may quote only part of a statement, so any
    /// run of six or more characters of a secret is removed too.
    pub fn redact(self, secrets: &[&str]) -> Self {
        let clean = |mut text: String| {
            for secret in secrets.iter().filter(|s| s.chars().count() >= 4) {
                text = scrub(&text, secret);
            }
            text
        };
        match self {
            DbError::Config(m) => DbError::Config(clean(m)),
            DbError::Connection(m) => DbError::Connection(clean(m)),
            DbError::Statement(m) => DbError::Statement(clean(m)),
            DbError::NotInitialized => DbError::NotInitialized,
            DbError::Abandoned => DbError::Abandoned,
        }
    }

    /// Whether the failure is about reaching the database rather than what was asked of it.
    pub fn is_connection(&self) -> bool {
        matches!(self, DbError::Connection(_) | DbError::NotInitialized)
    }
}

pub type DbResult<T> = Result<T, DbError>;

/// Removes `secret` and every substring of it of at least six characters from `text`,
/// longest first.
fn scrub(text: &str, secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    let shortest = chars.len().min(6);
    let mut out = text.to_owned();
    for len in (shortest..=chars.len()).rev() {
        for start in 0..=chars.len() - len {
            let piece: String = chars[start..start + len].iter().collect();
            if out.contains(&piece) {
                out = out.replace(&piece, "[password]");
            }
        }
    }
    out
}

/// Connection details as configured (`connection_url`, `username`, `password`, pool and TLS
/// settings…), and whether to connect now to check them.
#[derive(Debug, Clone)]
pub struct InitializeRequest {
    pub config: Map<String, Value>,
    pub verify_connection: bool,
}

/// Opens once the engine's record of the user about to be created is durable. A plugin waits
/// on it before the new user can exist: just before its commit where DDL is transactional
/// (PostgreSQL), so the record's write overlaps the statements; before its first statement
/// elsewhere, where checking out a connection and opening the transaction still overlap it.
#[derive(Debug, Clone)]
pub struct IntentGate(watch::Receiver<Option<bool>>);

/// The engine's side of an [`IntentGate`]. Dropped without [`IntentSignal::finish`], the gate
/// fails.
#[derive(Debug)]
pub struct IntentSignal(watch::Sender<Option<bool>>);

impl IntentGate {
    /// A gate with nothing to wait for.
    pub fn open() -> IntentGate {
        IntentGate(watch::channel(Some(true)).1)
    }

    /// A closed gate and the signal that opens it.
    pub fn pending() -> (IntentSignal, IntentGate) {
        let (signal, gate) = watch::channel(None);
        (IntentSignal(signal), IntentGate(gate))
    }

    /// Waits until the record is written; fails if it could not be.
    pub async fn wait(&self) -> DbResult<()> {
        let mut gate = self.0.clone();
        let written = gate
            .wait_for(Option::is_some)
            .await
            .is_ok_and(|outcome| *outcome == Some(true));
        if written {
            Ok(())
        } else {
            Err(DbError::Abandoned)
        }
    }
}

impl IntentSignal {
    /// Opens the gate (`written`) or fails it.
    pub fn finish(self, written: bool) {
        // No receiver left means no plugin waits any more: nothing to tell.
        let _ = self.0.send(Some(written));
    }
}

/// A user to create. The engine chooses the username (so it can record it before the user
/// exists) and the password.
#[derive(Debug, Clone, Copy)]
pub struct NewUserRequest<'a> {
    pub username: &'a str,
    pub password: &'a str,
    /// When the credential should stop working in the database, where it can say so.
    pub expiration: SystemTime,
    /// The role's creation statements, unexpanded.
    pub statements: &'a [String],
    /// Run if creation fails part-way, to remove what was created.
    pub rollback_statements: &'a [String],
    /// Opens when the user may come to exist.
    pub intent: &'a IntentGate,
}

/// What to change about an existing user.
#[derive(Debug, Clone, Copy)]
pub enum UserChange<'a> {
    /// A new password (root rotation, static roles); empty statements mean the plugin default.
    Password {
        password: &'a str,
        statements: &'a [String],
    },
    /// A later expiry (lease renewal); empty statements mean the plugin default.
    Expiration {
        expiration: SystemTime,
        statements: &'a [String],
    },
}

#[derive(Debug, Clone, Copy)]
pub struct UpdateUserRequest<'a> {
    pub username: &'a str,
    pub change: UserChange<'a>,
}

/// A user to remove; empty statements mean the plugin's default revocation. Deleting a user
/// that does not exist succeeds.
#[derive(Debug, Clone, Copy)]
pub struct DeleteUserRequest<'a> {
    pub username: &'a str,
    pub statements: &'a [String],
}

/// One database type, as Vault's database plugins see it.
#[async_trait]
pub trait DatabasePlugin: Send + Sync {
    /// The short type name (`postgres`, `mysql`, `redis`).
    fn type_name(&self) -> &'static str;

    /// The username template used when the connection does not configure one.
    fn default_username_template(&self) -> &'static str;

    /// Validates the connection details and sets up the connection; with
    /// `verify_connection`, connects (and logs in) now. Returns the details to store.
    async fn initialize(&self, req: InitializeRequest) -> DbResult<Map<String, Value>>;

    /// Creates a user with the role's statements. On failure nothing the statements created is
    /// left behind: the transaction is rolled back and the rollback statements run.
    async fn new_user(&self, req: NewUserRequest<'_>) -> DbResult<()>;

    async fn update_user(&self, req: UpdateUserRequest<'_>) -> DbResult<()>;

    async fn delete_user(&self, req: DeleteUserRequest<'_>) -> DbResult<()>;

    /// Closes every connection. The plugin can be initialized again afterwards.
    async fn close(&self);
}

/// The plugins this build includes, by Vault's `plugin_name`.
pub const PLUGIN_NAMES: &[&str] = &[
    "postgresql-database-plugin",
    "mysql-database-plugin",
    "mysql-aurora-database-plugin",
    "mysql-rds-database-plugin",
    "mysql-legacy-database-plugin",
    "redis-database-plugin",
];

/// A fresh, uninitialized plugin for a `plugin_name`, or `None` if this build lacks it.
pub fn new_plugin(plugin_name: &str) -> Option<Box<dyn DatabasePlugin>> {
    Some(match plugin_name {
        "postgresql-database-plugin" => Box::new(Postgres::new()),
        "mysql-database-plugin" => Box::new(MySql::new(MySqlFlavor::Current)),
        "mysql-aurora-database-plugin"
        | "mysql-rds-database-plugin"
        | "mysql-legacy-database-plugin" => Box::new(MySql::new(MySqlFlavor::Legacy)),
        "redis-database-plugin" => Box::new(Redis::new()),
        _ => return None,
    })
}

/// Vault's `{{expiration}}` format, Go layout `2006-01-02 15:04:05-0700`, in UTC.
pub fn format_expiration(at: SystemTime) -> String {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    match time::OffsetDateTime::from_unix_timestamp(secs as i64) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}+0000",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => String::new(),
    }
}

/// Reads a string setting from connection details (numbers and booleans are accepted as
/// their text, as Vault's weakly typed decoding does).
pub(crate) fn setting(config: &Map<String, Value>, name: &str) -> Option<String> {
    match config.get(name)? {
        Value::String(text) => Some(text.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(crate) fn bool_setting(config: &Map<String, Value>, name: &str) -> DbResult<bool> {
    match config.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(text)) => match text.trim().to_ascii_lowercase().as_str() {
            "" | "false" | "0" | "f" => Ok(false),
            "true" | "1" | "t" => Ok(true),
            _ => Err(DbError::Config(format!("{name} must be a boolean"))),
        },
        Some(Value::Number(n)) => Ok(n.as_i64() != Some(0)),
        Some(_) => Err(DbError::Config(format!("{name} must be a boolean"))),
    }
}

pub(crate) fn int_setting(config: &Map<String, Value>, name: &str) -> DbResult<Option<i64>> {
    match config.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| DbError::Config(format!("{name} must be an integer"))),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(Value::String(text)) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| DbError::Config(format!("{name} must be an integer"))),
        Some(_) => Err(DbError::Config(format!("{name} must be an integer"))),
    }
}

pub(crate) fn duration_setting(
    config: &Map<String, Value>,
    name: &str,
) -> DbResult<Option<std::time::Duration>> {
    match config.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => mayfly_sdk::duration::parse_duration_value(value)
            .map(|d| Some(d).filter(|d| !d.is_zero()))
            .map_err(|_| DbError::Config(format!("{name} must be a duration"))),
    }
}

/// Pool sizes shared by the SQL plugins: Vault's defaults are 4 open connections, idle equal
/// to open, and no lifetime limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolSettings {
    pub max_open: usize,
    pub max_idle: usize,
    pub max_lifetime: Option<std::time::Duration>,
}

impl PoolSettings {
    pub(crate) fn from_config(config: &Map<String, Value>) -> DbResult<Self> {
        let max_open = int_setting(config, "max_open_connections")?.unwrap_or(4);
        let max_open = usize::try_from(max_open)
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or(4);
        let max_idle = int_setting(config, "max_idle_connections")?.unwrap_or(0);
        let max_idle = usize::try_from(max_idle).unwrap_or(0);
        let max_idle = if max_idle == 0 || max_idle > max_open {
            max_open
        } else {
            max_idle
        };
        Ok(PoolSettings {
            max_open,
            max_idle,
            max_lifetime: duration_setting(config, "max_connection_lifetime")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    #[test]
    fn expiration_uses_vaults_layout() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_614_294_836);
        assert_eq!(format_expiration(at), "2021-02-25 23:13:56+0000");
    }

    #[test]
    fn redaction_removes_secrets() {
        let err = DbError::Statement("syntax error near 's3cret-pw'".into()).redact(&["s3cret-pw"]);
        assert_eq!(err.to_string(), "syntax error near '[password]'");
        let partial = DbError::Statement("near '-pw-tail TO x'".into()).redact(&["s3cret-pw-tail"]);
        assert_eq!(partial.to_string(), "near '[password] TO x'");
    }

    #[test]
    fn pool_settings_follow_vaults_defaults() {
        let Value::Object(empty) = json!({}) else {
            unreachable!()
        };
        let defaults = PoolSettings::from_config(&empty).unwrap();
        assert_eq!(
            (defaults.max_open, defaults.max_idle, defaults.max_lifetime),
            (4, 4, None)
        );
        let Value::Object(set) = json!({"max_open_connections": "8", "max_idle_connections": 2,
            "max_connection_lifetime": "30s"})
        else {
            unreachable!()
        };
        let set = PoolSettings::from_config(&set).unwrap();
        assert_eq!(
            (set.max_open, set.max_idle, set.max_lifetime),
            (8, 2, Some(Duration::from_secs(30)))
        );
    }

    #[test]
    fn every_listed_plugin_exists() {
        for name in PLUGIN_NAMES {
            assert!(new_plugin(name).is_some(), "{name}");
        }
        assert!(new_plugin("mongodb-database-plugin").is_none());
    }
}
