//! The userpass auth method: people log in with a username and a password.
//!
//! Same paths, fields and responses as Vault's `userpass` method: users with the shared
//! `token_*` settings, password and policy updates, and an unauthenticated
//! `login/:username`. Passwords are stored only as Argon2id hashes. A login returns the token
//! it wants in `Response::auth`; the core creates it.

mod login;
mod password;
#[cfg(test)]
mod tests;
mod user;

use std::sync::Arc;

use async_trait::async_trait;
use mayfly_sdk::{
    Auth, LogicalBackend, Operation, Request, Response, Result,
    framework::{Field, FieldKind, FrameworkBackend, Path, existence, generic_name, handler},
    token_fields::{LegacyTokenParams, token_fields},
};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::{password::DummyHash, user::LEGACY};

/// Builds a userpass mount. It takes no options.
pub fn new_backend(_options: &Map<String, Value>) -> Result<Arc<dyn LogicalBackend>> {
    Ok(Arc::new(UserpassBackend::new()))
}

/// State shared by every request to one userpass mount.
pub(crate) struct Userpass {
    /// Serializes read-modify-write of users, so concurrent updates do not lose fields.
    user_lock: Mutex<()>,
    dummy_hash: DummyHash,
}

/// A mounted userpass method: its path table plus the renewal hook for the tokens it issues.
pub struct UserpassBackend {
    state: Arc<Userpass>,
    framework: Arc<FrameworkBackend<Userpass>>,
}

impl UserpassBackend {
    fn new() -> Self {
        UserpassBackend {
            state: Arc::new(Userpass {
                user_lock: Mutex::new(()),
                dummy_hash: DummyHash::new(),
            }),
            framework: Arc::new(paths()),
        }
    }
}

#[async_trait]
impl LogicalBackend for UserpassBackend {
    async fn handle(&self, req: Request) -> Result<Option<Response>> {
        self.framework.handle(self.state.clone(), req).await
    }

    async fn exists(&self, req: &Request) -> Result<Option<bool>> {
        self.framework.exists(self.state.clone(), req).await
    }

    fn unauthenticated_paths(&self) -> Vec<String> {
        self.framework.unauthenticated_paths().to_vec()
    }

    async fn renew_auth(&self, req: Request, auth: Auth) -> Result<Auth> {
        login::renew(&req, auth).await
    }
}

/// Response maps with keys in lexical order, as Vault (Go maps) renders them.
pub(crate) fn sorted(map: Map<String, Value>) -> Map<String, Value> {
    let mut entries: Vec<(String, Value)> = map.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().collect()
}

fn username_field() -> Field {
    Field::new("username", FieldKind::String, "Username for this user.")
}

fn password_field() -> Field {
    Field::new("password", FieldKind::String, "Password for this user.")
}

fn paths() -> FrameworkBackend<Userpass> {
    let user_path = |suffix: &str| format!("users/{}{suffix}", generic_name("username"));

    let mut user = Path::new(user_path(""))
        .field(username_field())
        .field(password_field());
    for field in token_fields()
        .into_iter()
        .chain(LegacyTokenParams::fields(LEGACY))
    {
        user = user.field(field);
    }
    let user = user
        .existence_check(existence(user::exists))
        .operation(Operation::Read, handler(user::read))
        .operation(Operation::Create, handler(user::write))
        .operation(Operation::Update, handler(user::write))
        .operation(Operation::Delete, handler(user::delete))
        .help(
            "Manage users allowed to authenticate.",
            "Create, read, update and delete users that may log in. Deleting a user does not \
             revoke tokens it already obtained, but they can no longer be renewed.",
        );

    FrameworkBackend::new(
        "The userpass auth method lets users log in with a username and a password.",
        vec![
            Path::new("users/?")
                .operation(Operation::List, handler(user::list))
                .help(
                    "Manage users allowed to authenticate.",
                    "Lists the usernames of the users.",
                ),
            user,
            Path::new(user_path("/password"))
                .field(username_field())
                .field(password_field())
                .operation(Operation::Update, handler(user::update_password))
                .help(
                    "Reset user's password.",
                    "This endpoint allows resetting the user's password.",
                ),
            Path::new(user_path("/policies"))
                .field(username_field())
                .field(Field::new(
                    "policies",
                    FieldKind::StringList,
                    "Use \"token_policies\" instead.",
                ))
                .field(Field::new(
                    "token_policies",
                    FieldKind::StringList,
                    "Comma-separated list of policies",
                ))
                .operation(Operation::Update, handler(user::update_policies))
                .help(
                    "Update the policies associated with the username.",
                    "This endpoint allows updating the policies associated with the username.",
                ),
            Path::new(format!("login/{}", generic_name("username")))
                .field(Field::new(
                    "username",
                    FieldKind::String,
                    "Username of the user.",
                ))
                .field(password_field())
                .operation(Operation::Update, handler(login::login))
                .help(
                    "Log in with a username and password.",
                    "This endpoint authenticates using a username and password.",
                ),
        ],
    )
    .with_unauthenticated_paths(&["login/*"])
}
