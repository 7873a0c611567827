//! The AppRole auth method: machines log in with a RoleID and a SecretID.
//!
//! Same paths, fields and responses as Vault's `approle` method: roles with the shared
//! `token_*` settings, SecretIDs (random or custom, with use counts, TTLs, CIDR bindings and
//! metadata), accessors, tidy, and an unauthenticated `login`. A login returns the token it
//! wants in `Response::auth`; the core creates it.

mod login;
mod role;
mod secret_id;
mod state;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use mayfly_sdk::{
    Auth, LogicalBackend, Operation, Request, Response, Result,
    framework::{Field, FieldKind, FrameworkBackend, Path, existence, generic_name, handler},
    token_fields::{LegacyTokenParams, token_fields},
};
use serde_json::{Map, Value};

use crate::{
    role::{LEGACY, RoleField},
    state::{AppRole, Clock, system_clock},
};

/// Builds an AppRole mount. It takes no options.
pub fn new_backend(_options: &Map<String, Value>) -> Result<Arc<dyn LogicalBackend>> {
    Ok(Arc::new(AppRoleBackend::new(system_clock())))
}

/// A mounted AppRole method: its path table plus the renewal hook for the tokens it issues.
pub struct AppRoleBackend {
    state: Arc<AppRole>,
    framework: Arc<FrameworkBackend<AppRole>>,
}

impl AppRoleBackend {
    fn new(clock: Clock) -> Self {
        AppRoleBackend {
            state: Arc::new(AppRole::new(clock)),
            framework: Arc::new(paths()),
        }
    }
}

#[async_trait]
impl LogicalBackend for AppRoleBackend {
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

fn role_name_field() -> Field {
    Field::new(
        "role_name",
        FieldKind::String,
        "Name of the role. Must be less than 4096 bytes.",
    )
}

fn role_path(suffix: &str) -> String {
    format!("role/{}{suffix}", generic_name("role_name"))
}

fn field_kind(name: &str) -> FieldKind {
    match name {
        "policies"
        | "token_policies"
        | "bound_cidr_list"
        | "secret_id_bound_cidrs"
        | "token_bound_cidrs" => FieldKind::StringList,
        "secret_id_num_uses" | "token_num_uses" => FieldKind::Int,
        "bind_secret_id" => FieldKind::Bool,
        _ => FieldKind::Duration,
    }
}

/// The `role/:name/<setting>` sub-resource for one setting.
fn role_field_path(which: RoleField) -> Path<AppRole> {
    let mut path = Path::new(role_path(&format!("/{}", which.suffix()))).field(role_name_field());
    for name in which.field_names() {
        path = path.field(Field::new(
            name,
            field_kind(name),
            "The new value of the setting.",
        ));
    }
    path = path.operation(
        Operation::Read,
        handler(move |_: Arc<AppRole>, req, fields| role::field_read(req, fields, which)),
    );
    if which.writable() {
        path = path
            .operation(
                Operation::Update,
                handler(move |state, req, fields| role::field_update(state, req, fields, which)),
            )
            .operation(
                Operation::Delete,
                handler(move |state, req, fields| role::field_delete(state, req, fields, which)),
            );
    }
    path.help(
        "Read, update or reset one setting of the role.",
        "Each setting of a role has its own path, so that access to it can be delegated \
         through policies. Deleting it restores the default.",
    )
}

fn secret_id_fields(path: Path<AppRole>) -> Path<AppRole> {
    path.field(Field::new(
        "metadata",
        FieldKind::Raw,
        "Metadata tied to the SecretID: a JSON-encoded string of key-value pairs. It is \
         attached to tokens as metadata and logged in the clear.",
    ))
    .field(Field::new(
        "cidr_list",
        FieldKind::StringList,
        "CIDR blocks the SecretID may be used from; a subset of the role's.",
    ))
    .field(Field::new(
        "token_bound_cidrs",
        FieldKind::StringList,
        "CIDR blocks the issued tokens may be used from; a subset of the role's.",
    ))
    .field(Field::new(
        "num_uses",
        FieldKind::Int,
        "Number of logins the SecretID allows; at most the role's secret_id_num_uses.",
    ))
    .field(Field::new(
        "ttl",
        FieldKind::Duration,
        "Lifetime of the SecretID; at most the role's secret_id_ttl.",
    ))
}

fn paths() -> FrameworkBackend<AppRole> {
    let mut role = Path::new(role_path(""))
        .field(role_name_field())
        .field(Field::new(
            "bind_secret_id",
            FieldKind::Bool,
            "Impose secret_id to be presented when logging in using this role. Defaults to \
             'true'.",
        ))
        .field(Field::new(
            "bound_cidr_list",
            FieldKind::StringList,
            "Use \"secret_id_bound_cidrs\" instead.",
        ))
        .field(Field::new(
            "secret_id_bound_cidrs",
            FieldKind::StringList,
            "Comma separated string or list of CIDR blocks. If set, specifies the blocks of IP \
             addresses which can perform the login operation.",
        ))
        .field(Field::new(
            "secret_id_num_uses",
            FieldKind::Int,
            "Number of times a SecretID can access the role; 0 means unlimited.",
        ))
        .field(Field::new(
            "secret_id_ttl",
            FieldKind::Duration,
            "Duration after which the issued SecretID expires; 0 means never.",
        ))
        .field(Field::new(
            "role_id",
            FieldKind::String,
            "Identifier of the role. Defaults to a UUID.",
        ))
        .field(Field::new(
            "local_secret_ids",
            FieldKind::Bool,
            "If set, the SecretIDs of this role are cluster local. Can only be set at creation.",
        ));
    for field in token_fields()
        .into_iter()
        .chain(LegacyTokenParams::fields(LEGACY))
    {
        role = role.field(field);
    }
    let role = role
        .existence_check(existence(role::exists))
        .operation(Operation::Read, handler(role::read))
        .operation(Operation::Create, handler(role::write))
        .operation(Operation::Update, handler(role::write))
        .operation(Operation::Delete, handler(role::delete))
        .help(
            "Register a role with the backend.",
            "A role can represent a service, a machine or anything that can be identified. \
             Its settings define the SecretIDs issued against it and the tokens issued at login.",
        );

    let mut table = vec![
        Path::new("role/?")
            .operation(Operation::List, handler(role::list))
            .help(
                "Lists all the roles registered with the backend.",
                "The list will contain the names of the roles.",
            ),
        role,
        Path::new(role_path("/role-id"))
            .field(role_name_field())
            .field(Field::new(
                "role_id",
                FieldKind::String,
                "Identifier of the role.",
            ))
            .operation(Operation::Read, handler(role::read_role_id))
            .operation(Operation::Update, handler(role::write_role_id))
            .help(
                "Returns the 'role_id' of the role.",
                "The RoleID is presented at login; it can be read here or set to a custom value.",
            ),
        secret_id_fields(Path::new(role_path("/secret-id/?")).field(role_name_field()))
            .operation(Operation::Update, handler(secret_id::generate))
            .operation(Operation::List, handler(secret_id::list))
            .help(
                "Generate a SecretID against this role.",
                "Writing generates a SecretID scoped to this role; listing returns the \
                 accessors of the role's SecretIDs.",
            ),
        secret_id_fields(Path::new(role_path("/custom-secret-id")).field(role_name_field()))
            .field(Field::new(
                "secret_id",
                FieldKind::String,
                "SecretID to be attached to the role.",
            ))
            .operation(Operation::Update, handler(secret_id::custom))
            .help(
                "Assign a SecretID of choice against the role.",
                "Not recommended unless there is a specific need: registers a client-supplied \
                 SecretID that otherwise behaves like a generated one.",
            ),
        Path::new(role_path("/secret-id/lookup/?"))
            .field(role_name_field())
            .field(Field::new(
                "secret_id",
                FieldKind::String,
                "SecretID attached to the role.",
            ))
            .operation(Operation::Update, handler(secret_id::lookup))
            .help(
                "Read the properties of an issued secret_id",
                "Returns the properties of a SecretID of the role, never the SecretID itself.",
            ),
        Path::new(role_path("/secret-id/destroy/?"))
            .field(role_name_field())
            .field(Field::new(
                "secret_id",
                FieldKind::String,
                "SecretID attached to the role.",
            ))
            .operation(Operation::Update, handler(secret_id::destroy))
            .operation(Operation::Delete, handler(secret_id::destroy))
            .help(
                "Invalidate an issued secret_id",
                "Deletes a SecretID of the role.",
            ),
        Path::new(role_path("/secret-id-accessor/lookup/?"))
            .field(role_name_field())
            .field(Field::new(
                "secret_id_accessor",
                FieldKind::String,
                "Accessor of the SecretID",
            ))
            .operation(Operation::Update, handler(secret_id::accessor_lookup))
            .help(
                "Read an issued secret_id, using its accessor",
                "Returns the properties of the SecretID an accessor refers to.",
            ),
        Path::new(role_path("/secret-id-accessor/destroy/?"))
            .field(role_name_field())
            .field(Field::new(
                "secret_id_accessor",
                FieldKind::String,
                "Accessor of the SecretID",
            ))
            .operation(Operation::Update, handler(secret_id::accessor_destroy))
            .operation(Operation::Delete, handler(secret_id::accessor_destroy))
            .help(
                "Delete an issued secret_id, using its accessor",
                "Deletes the SecretID an accessor refers to.",
            ),
        Path::new("login")
            .field(Field::new(
                "role_id",
                FieldKind::String,
                "Unique identifier of the Role.",
            ))
            .field(Field::new(
                "secret_id",
                FieldKind::String,
                "SecretID belonging to the role; required when bind_secret_id is set.",
            ))
            .operation(Operation::Update, handler(login::login))
            .help(
                "Issue a token based on the credentials supplied",
                "The RoleID is always required; the SecretID is required when the role's \
                 bind_secret_id constraint is set (the default).",
            ),
        Path::new("tidy/secret-id")
            .operation(Operation::Update, handler(secret_id::tidy))
            .help(
                "Trigger the clean-up of expired SecretID entries.",
                "Removes expired SecretIDs and dangling accessor entries in the background.",
            ),
    ];
    table.extend(RoleField::ALL.into_iter().map(role_field_path));
    FrameworkBackend::new(
        "The AppRole auth method lets machines and services log in with a RoleID and a SecretID.",
        table,
    )
    .with_unauthenticated_paths(&["login"])
}
