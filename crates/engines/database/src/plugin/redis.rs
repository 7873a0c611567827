//! Redis (`redis-database-plugin`): users are ACL users. Configured like Vault's Redis plugin
//! (`host`, `port`, `username`, `password`, `tls`, `insecure_tls`, `ca_cert`); creation
//! statements are JSON arrays of ACL rules.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::{
    DatabasePlugin, DbError, DbResult, DeleteUserRequest, InitializeRequest, NewUserRequest,
    PoolSettings, UpdateUserRequest, UserChange, bool_setting, int_setting,
    resp::{Reply, RespConn, RespError},
    setting,
};
use crate::{
    pool::{Connector, Pool, Pooled},
    tls::{TlsSettings, Verify, client_config},
};

/// Vault's Redis username: `V_<DISPLAY>_<ROLE>_<RANDOM>_<unix>`, upper case, at most 100.
const DEFAULT_USERNAME_TEMPLATE: &str = r#"{{ printf "v_%s_%s_%s_%s" (.DisplayName | truncate 64) (.RoleName | truncate 64) (random 20) (unix_time) | truncate 100 | uppercase }}"#;
/// Read-only on every key, Vault's default when a role gives no rules.
const DEFAULT_RULES: &[&str] = &["~*", "+@read"];

struct RedisConnector {
    host: String,
    port: u16,
    username: String,
    password: String,
    tls: Option<Arc<rustls::ClientConfig>>,
}

fn io_error(err: RespError) -> DbError {
    DbError::Connection(err.to_string())
}

#[async_trait]
impl Connector for RedisConnector {
    type Conn = RespConn;

    async fn connect(&self) -> DbResult<RespConn> {
        let mut conn = RespConn::connect(&self.host, self.port, self.tls.clone())
            .await
            .map_err(io_error)?;
        let reply = conn
            .command(&[b"AUTH", self.username.as_bytes(), self.password.as_bytes()])
            .await
            .map_err(io_error)?;
        match reply {
            Reply::Error(message) => Err(DbError::Connection(message)),
            _ => Ok(conn),
        }
    }

    fn is_broken(conn: &RespConn) -> bool {
        conn.is_broken()
    }
}

struct Connected {
    pool: Pool<RedisConnector>,
    /// `REWRITE` or `ACLFILE`: how changes are made to survive a server restart.
    persistence: Option<String>,
}

impl Connected {
    async fn run(&self, conn: &mut Pooled<RedisConnector>, args: &[&[u8]]) -> DbResult<Reply> {
        match conn.command(args).await {
            Ok(Reply::Error(message)) => Err(DbError::Statement(message)),
            Ok(reply) => Ok(reply),
            Err(err) => Err(io_error(err)),
        }
    }

    async fn persist(&self, conn: &mut Pooled<RedisConnector>) -> DbResult<()> {
        match self.persistence.as_deref() {
            Some("REWRITE") => self.run(conn, &[b"CONFIG", b"REWRITE"]).await.map(drop),
            Some("ACLFILE") => self.run(conn, &[b"ACL", b"SAVE"]).await.map(drop),
            _ => Ok(()),
        }
    }
}

pub struct Redis {
    state: RwLock<Option<Arc<Connected>>>,
}

impl Default for Redis {
    fn default() -> Self {
        Redis::new()
    }
}

impl Redis {
    pub fn new() -> Self {
        Redis {
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

    fn replace(&self, next: Option<Arc<Connected>>) {
        let previous = std::mem::replace(
            &mut *self
                .state
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            next,
        );
        if let Some(previous) = previous {
            previous.pool.close();
        }
    }
}

/// The ACL rules of a role: each statement is a JSON array of rules (Vault's form), or a
/// single rule.
fn acl_rules(statements: &[String]) -> Vec<String> {
    let mut rules = Vec::new();
    for statement in statements
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        match serde_json::from_str::<Vec<String>>(statement) {
            Ok(items) => rules.extend(items),
            Err(_) => rules.push(statement.to_owned()),
        }
    }
    if rules.is_empty() {
        rules = DEFAULT_RULES.iter().map(|r| (*r).to_owned()).collect();
    }
    rules
}

fn connector(config: &Map<String, Value>) -> DbResult<(RedisConnector, Option<String>)> {
    let host = setting(config, "host")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| DbError::Config("host cannot be empty".to_owned()))?;
    let port = int_setting(config, "port")?
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .ok_or_else(|| DbError::Config("port cannot be empty".to_owned()))?;
    let username = setting(config, "username")
        .filter(|u| !u.is_empty())
        .ok_or_else(|| DbError::Config("username cannot be empty".to_owned()))?;
    let password = setting(config, "password")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| DbError::Config("password cannot be empty".to_owned()))?;
    let tls = if bool_setting(config, "tls")? {
        let verify = if bool_setting(config, "insecure_tls")? {
            Verify::Nothing
        } else {
            Verify::Full
        };
        let ca_pem = setting(config, "ca_cert").filter(|pem| !pem.trim().is_empty());
        Some(Arc::new(client_config(&TlsSettings {
            verify,
            ca_pem,
            client_cert_pem: None,
            client_key_pem: None,
        })?))
    } else {
        None
    };
    let persistence = match setting(config, "persistence_mode") {
        None => None,
        Some(mode) if mode.is_empty() => None,
        Some(mode) => {
            let mode = mode.to_ascii_uppercase();
            if mode != "REWRITE" && mode != "ACLFILE" {
                return Err(DbError::Config(format!(
                    "persistence_mode can only be 'REWRITE' or 'ACLFILE', not {mode}"
                )));
            }
            Some(mode)
        }
    };
    Ok((
        RedisConnector {
            host,
            port,
            username,
            password,
            tls,
        },
        persistence,
    ))
}

#[async_trait]
impl DatabasePlugin for Redis {
    fn type_name(&self) -> &'static str {
        "redis"
    }

    fn default_username_template(&self) -> &'static str {
        DEFAULT_USERNAME_TEMPLATE
    }

    async fn initialize(&self, req: InitializeRequest) -> DbResult<Map<String, Value>> {
        let (connector, persistence) = connector(&req.config)?;
        let password = connector.password.clone();
        let connected = Arc::new(Connected {
            pool: Pool::new(connector, PoolSettings::from_config(&req.config)?),
            persistence,
        });
        if req.verify_connection {
            let check = async {
                let mut conn = connected.pool.get().await?;
                connected.run(&mut conn, &[b"PING"]).await
            }
            .await;
            if let Err(err) = check {
                connected.pool.close();
                return Err(DbError::Connection(format!(
                    "error verifying connection: {}",
                    err.redact(&[&password])
                )));
            }
        }
        self.replace(Some(connected));
        Ok(req.config)
    }

    async fn new_user(&self, req: NewUserRequest<'_>) -> DbResult<()> {
        let state = self.connected()?;
        let rules = acl_rules(req.statements);
        let secret = format!(">{}", req.password);
        let mut args: Vec<&[u8]> = vec![
            b"ACL",
            b"SETUSER",
            req.username.as_bytes(),
            b"ON",
            secret.as_bytes(),
        ];
        args.extend(rules.iter().map(|rule| rule.as_bytes()));
        let mut conn = state.pool.get().await?;
        req.intent.wait().await?;
        // ACL SETUSER applies all rules or none, so a failure leaves nothing to roll back.
        state
            .run(&mut conn, &args)
            .await
            .map_err(|err| err.redact(&[req.password]))?;
        state.persist(&mut conn).await
    }

    async fn update_user(&self, req: UpdateUserRequest<'_>) -> DbResult<()> {
        let UserChange::Password { password, .. } = req.change else {
            // Redis users have no expiry of their own.
            return Ok(());
        };
        let state = self.connected()?;
        let mut conn = state.pool.get().await?;
        let user = state
            .run(&mut conn, &[b"ACL", b"GETUSER", req.username.as_bytes()])
            .await?;
        if matches!(user, Reply::Array(None) | Reply::Bulk(None)) {
            return Err(DbError::Statement(format!(
                "cannot change the password of {:?}: user not found",
                req.username
            )));
        }
        let secret = format!(">{password}");
        state
            .run(
                &mut conn,
                &[
                    b"ACL",
                    b"SETUSER",
                    req.username.as_bytes(),
                    b"RESETPASS",
                    secret.as_bytes(),
                ],
            )
            .await
            .map_err(|err| err.redact(&[password]))?;
        state.persist(&mut conn).await
    }

    async fn delete_user(&self, req: DeleteUserRequest<'_>) -> DbResult<()> {
        let state = self.connected()?;
        let mut conn = state.pool.get().await?;
        // Answers the number deleted: 0 for a user already gone, which counts as success.
        state
            .run(&mut conn, &[b"ACL", b"DELUSER", req.username.as_bytes()])
            .await?;
        state.persist(&mut conn).await
    }

    async fn close(&self) {
        self.replace(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_from_statements() {
        assert_eq!(acl_rules(&[]), ["~*", "+@read"]);
        assert_eq!(acl_rules(&[r#"["+@admin"]"#.to_owned()]), ["+@admin"]);
        assert_eq!(
            acl_rules(&["~foo".to_owned(), "+@read".to_owned()]),
            ["~foo", "+@read"]
        );
    }

    #[test]
    fn config_requires_what_vault_requires() {
        let check = |value: Value| {
            let Value::Object(map) = value else {
                unreachable!()
            };
            connector(&map).err().map(|e| e.to_string())
        };
        assert_eq!(
            check(serde_json::json!({})).as_deref(),
            Some("host cannot be empty")
        );
        assert_eq!(
            check(serde_json::json!({"host": "h"})).as_deref(),
            Some("port cannot be empty")
        );
        assert_eq!(
            check(serde_json::json!({"host": "h", "port": 6379, "username": "u"})).as_deref(),
            Some("password cannot be empty")
        );
        assert_eq!(
            check(
                serde_json::json!({"host": "h", "port": "6379", "username": "u",
                "password": "p", "persistence_mode": "nope"})
            )
            .as_deref(),
            Some("persistence_mode can only be 'REWRITE' or 'ACLFILE', not NOPE")
        );
        assert!(
            check(
                serde_json::json!({"host": "h", "port": 6379, "username": "u",
            "password": "p", "tls": true, "insecure_tls": true})
            )
            .is_none()
        );
    }
}
