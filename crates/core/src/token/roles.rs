//! Token roles (`auth/token/roles/:name`): named presets and limits for `create/:role`.

use std::sync::Arc;

use mayfly_sdk::{
    Error, Operation, Request, Response, Result,
    framework::{Field, FieldData, FieldKind, Path, existence, generic_name, handler},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Core;

/// A persisted token role.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TokenRole {
    pub version: u32,
    pub name: String,
    pub allowed_policies: Vec<String>,
    pub disallowed_policies: Vec<String>,
    pub allowed_policies_glob: Vec<String>,
    pub disallowed_policies_glob: Vec<String>,
    pub orphan: bool,
    pub renewable: bool,
    pub path_suffix: String,
    pub allowed_entity_aliases: Vec<String>,
    pub token_ttl: u64,
    pub token_max_ttl: u64,
    pub token_explicit_max_ttl: u64,
    pub token_period: u64,
    pub token_num_uses: i64,
    pub token_bound_cidrs: Vec<String>,
    pub token_no_default_policy: bool,
    pub token_type: String,
}

impl TokenRole {
    /// Whether the role lets a token carry `policy`.
    pub fn permits(&self, policy: &str) -> bool {
        let matches_glob = |globs: &[String]| {
            globs.iter().any(|glob| match glob.strip_suffix('*') {
                Some(prefix) => policy.starts_with(prefix),
                None => glob == policy,
            })
        };
        if self.disallowed_policies.iter().any(|p| p == policy)
            || matches_glob(&self.disallowed_policies_glob)
        {
            return false;
        }
        if self.allowed_policies.is_empty() && self.allowed_policies_glob.is_empty() {
            return true;
        }
        self.allowed_policies.iter().any(|p| p == policy)
            || matches_glob(&self.allowed_policies_glob)
    }

    fn to_data(&self) -> Value {
        json!({
            "name": self.name,
            "allowed_policies": self.allowed_policies,
            "disallowed_policies": self.disallowed_policies,
            "allowed_policies_glob": self.allowed_policies_glob,
            "disallowed_policies_glob": self.disallowed_policies_glob,
            "orphan": self.orphan,
            "renewable": self.renewable,
            "path_suffix": self.path_suffix,
            "allowed_entity_aliases": self.allowed_entity_aliases,
            "token_ttl": self.token_ttl,
            "token_max_ttl": self.token_max_ttl,
            "token_explicit_max_ttl": self.token_explicit_max_ttl,
            "explicit_max_ttl": self.token_explicit_max_ttl,
            "token_period": self.token_period,
            "period": self.token_period,
            "token_num_uses": self.token_num_uses,
            "token_bound_cidrs": self.token_bound_cidrs,
            "bound_cidrs": self.token_bound_cidrs,
            "token_no_default_policy": self.token_no_default_policy,
            "token_type": if self.token_type.is_empty() { "default-service" } else { &self.token_type },
        })
    }
}

pub(super) fn paths() -> Vec<Path<Core>> {
    let list = |name: &'static str, description: &'static str| {
        Field::new(name, FieldKind::StringList, description)
    };
    let duration = |name: &'static str, description: &'static str| {
        Field::new(name, FieldKind::Duration, description)
    };
    vec![
        Path::new("roles/?")
            .operation(Operation::List, handler(list_roles))
            .help("List token roles.", "Lists the names of the token roles."),
        Path::new(format!("roles/{}", generic_name("role_name")))
            .field(Field::new(
                "role_name",
                FieldKind::String,
                "Name of the role.",
            ))
            .field(list(
                "allowed_policies",
                "Policies a token from this role may have.",
            ))
            .field(list(
                "disallowed_policies",
                "Policies a token from this role may not have.",
            ))
            .field(list(
                "allowed_policies_glob",
                "Glob patterns of allowed policies.",
            ))
            .field(list(
                "disallowed_policies_glob",
                "Glob patterns of disallowed policies.",
            ))
            .field(Field::new(
                "orphan",
                FieldKind::Bool,
                "Tokens have no parent.",
            ))
            .field(
                Field::new("renewable", FieldKind::Bool, "Tokens can be renewed.")
                    .default_value(true.into()),
            )
            .field(Field::new(
                "path_suffix",
                FieldKind::String,
                "Suffix of the token path.",
            ))
            .field(list(
                "allowed_entity_aliases",
                "Entity aliases tokens may be tied to.",
            ))
            .field(duration("token_ttl", "Default TTL of tokens."))
            .field(duration("token_max_ttl", "Maximum TTL of tokens."))
            .field(duration(
                "token_explicit_max_ttl",
                "Hard TTL cap of tokens.",
            ))
            .field(duration(
                "explicit_max_ttl",
                "Deprecated: use token_explicit_max_ttl.",
            ))
            .field(duration(
                "token_period",
                "Tokens are periodic with this period.",
            ))
            .field(duration("period", "Deprecated: use token_period."))
            .field(Field::new(
                "token_num_uses",
                FieldKind::Int,
                "Uses per token; 0 is unlimited.",
            ))
            .field(list("token_bound_cidrs", "CIDRs tokens may be used from."))
            .field(list("bound_cidrs", "Deprecated: use token_bound_cidrs."))
            .field(Field::new(
                "token_no_default_policy",
                FieldKind::Bool,
                "Do not add the default policy.",
            ))
            .field(Field::new(
                "token_type",
                FieldKind::String,
                "service, default-service (batch is not supported yet).",
            ))
            .existence_check(existence(role_exists))
            .operation(Operation::Read, handler(read_role))
            .operation(Operation::Create, handler(write_role))
            .operation(Operation::Update, handler(write_role))
            .operation(Operation::Delete, handler(delete_role))
            .help(
                "Manage a token role.",
                "Token roles preset and limit what create/:role issues.",
            ),
    ]
}

async fn list_roles(core: Arc<Core>, _: Request, _: FieldData) -> Result<Option<Response>> {
    let names = core.unsealed()?.tokens.role_names().await?;
    Ok(Some(Response::list(names)))
}

async fn role_exists(core: Arc<Core>, _: Request, fields: FieldData) -> Result<bool> {
    let name = fields.string("role_name").unwrap_or_default();
    Ok(core.unsealed()?.tokens.role(&name).await?.is_some())
}

async fn read_role(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    let name = fields.string("role_name").unwrap_or_default();
    let role = core.unsealed()?.tokens.role(&name).await?;
    Ok(role.map(|role| Response::from_value(role.to_data())))
}

async fn write_role(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    let name = fields.string("role_name").unwrap_or_default();
    let tokens = &core.unsealed()?.tokens;
    let mut role = tokens.role(&name).await?.unwrap_or(TokenRole {
        version: 1,
        name: name.clone(),
        renewable: true,
        ..TokenRole::default()
    });
    let set_list = |target: &mut Vec<String>, field: &str| {
        if fields.is_set(field) {
            *target = fields.string_list(field).unwrap_or_default();
        }
    };
    set_list(&mut role.allowed_policies, "allowed_policies");
    set_list(&mut role.disallowed_policies, "disallowed_policies");
    set_list(&mut role.allowed_policies_glob, "allowed_policies_glob");
    set_list(
        &mut role.disallowed_policies_glob,
        "disallowed_policies_glob",
    );
    set_list(&mut role.allowed_entity_aliases, "allowed_entity_aliases");
    set_list(&mut role.token_bound_cidrs, "bound_cidrs");
    set_list(&mut role.token_bound_cidrs, "token_bound_cidrs");
    let seconds = |field: &str| fields.duration(field).map(|d| d.as_secs());
    if fields.is_set("orphan") {
        role.orphan = fields.bool("orphan").unwrap_or(false);
    }
    if fields.is_set("renewable") {
        role.renewable = fields.bool("renewable").unwrap_or(true);
    }
    if let Some(suffix) = fields.string("path_suffix") {
        if suffix.contains("..") {
            return Err(Error::invalid("path_suffix cannot contain '..'"));
        }
        role.path_suffix = suffix;
    }
    for (legacy, current, target) in [
        (
            "explicit_max_ttl",
            "token_explicit_max_ttl",
            &mut role.token_explicit_max_ttl,
        ),
        ("period", "token_period", &mut role.token_period),
    ] {
        if let Some(value) = seconds(current).or_else(|| seconds(legacy)) {
            *target = value;
        }
    }
    if let Some(value) = seconds("token_ttl") {
        role.token_ttl = value;
    }
    if let Some(value) = seconds("token_max_ttl") {
        role.token_max_ttl = value;
    }
    if let Some(uses) = fields.int("token_num_uses") {
        if uses < 0 {
            return Err(Error::invalid("token_num_uses cannot be negative"));
        }
        role.token_num_uses = uses;
    }
    if fields.is_set("token_no_default_policy") {
        role.token_no_default_policy = fields.bool("token_no_default_policy").unwrap_or(false);
    }
    if let Some(kind) = fields.string("token_type") {
        match kind.as_str() {
            "" | "service" | "default-service" | "default" => role.token_type = kind,
            "batch" | "default-batch" => {
                return Err(Error::invalid("batch tokens are not supported yet"));
            }
            other => return Err(Error::invalid(format!("invalid token_type {other:?}"))),
        }
    }
    if role.token_max_ttl > 0 && role.token_ttl > role.token_max_ttl {
        return Err(Error::invalid(
            "token_ttl cannot be greater than token_max_ttl",
        ));
    }
    tokens.put_role(&role).await?;
    Ok(None)
}

async fn delete_role(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    let name = fields.string("role_name").unwrap_or_default();
    core.unsealed()?.tokens.delete_role(&name).await?;
    Ok(None)
}
