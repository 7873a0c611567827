//! `auth/token/`: create, look up, renew and revoke tokens, by ID, accessor or self.

use std::{sync::Arc, time::Duration};

use mayfly_sdk::{
    Auth, Error, Operation, Request, Response, Result,
    framework::{Field, FieldData, FieldKind, FrameworkBackend, Path, generic_name, handler},
};
use serde_json::{Map, Value, json};

use super::{
    NewToken, TokenEntry, TokenRole, finalize_policies, lookup_data, sanitize_display_name,
};
use crate::Core;

pub(crate) fn backend() -> FrameworkBackend<Core> {
    let token_field = || Field::new("token", FieldKind::String, "The token.");
    let accessor_field = || Field::new("accessor", FieldKind::String, "The token's accessor.");
    let increment = || {
        Field::new(
            "increment",
            FieldKind::Duration,
            "Requested TTL, counted from now.",
        )
    };
    let create_fields = |path: Path<Core>| {
        path.field(Field::new(
            "id",
            FieldKind::String,
            "Token ID (root or sudo only).",
        ))
        .field(Field::new(
            "policies",
            FieldKind::StringList,
            "Policies of the token.",
        ))
        .field(Field::new(
            "meta",
            FieldKind::Map,
            "Metadata (string values).",
        ))
        .field(Field::new(
            "no_parent",
            FieldKind::Bool,
            "Create an orphan (root or sudo only).",
        ))
        .field(Field::new(
            "no_default_policy",
            FieldKind::Bool,
            "Do not add the default policy.",
        ))
        .field(Field::new(
            "renewable",
            FieldKind::Bool,
            "Whether the token can be renewed.",
        ))
        .field(Field::new("ttl", FieldKind::Duration, "TTL of the token."))
        .field(Field::new(
            "lease",
            FieldKind::Duration,
            "Deprecated: use ttl.",
        ))
        .field(Field::new(
            "type",
            FieldKind::String,
            "service (batch is not supported yet).",
        ))
        .field(Field::new(
            "explicit_max_ttl",
            FieldKind::Duration,
            "Hard TTL cap.",
        ))
        .field(Field::new(
            "display_name",
            FieldKind::String,
            "Display name.",
        ))
        .field(Field::new(
            "num_uses",
            FieldKind::Int,
            "Uses before the token dies; 0 is unlimited.",
        ))
        .field(Field::new(
            "period",
            FieldKind::Duration,
            "Periodic token period (root or sudo only).",
        ))
        .field(Field::new(
            "entity_alias",
            FieldKind::String,
            "Not supported yet.",
        ))
    };
    let mut paths = vec![
        create_fields(Path::new("create"))
            .operation(Operation::Update, handler(create))
            .help("Create a token.", "Creates a child of the calling token."),
        create_fields(Path::new("create-orphan"))
            .operation(Operation::Update, handler(create))
            .help(
                "Create an orphan token.",
                "Creates a token without a parent.",
            ),
        create_fields(Path::new(format!("create/{}", generic_name("role_name"))))
            .field(Field::new("role_name", FieldKind::String, "The role."))
            .operation(Operation::Update, handler(create))
            .help(
                "Create a token from a role.",
                "Creates a token with the role's settings.",
            ),
        Path::new("lookup")
            .field(token_field())
            .operation(Operation::Read, handler(lookup))
            .operation(Operation::Update, handler(lookup))
            .help("Look up a token.", "Returns the properties of a token."),
        Path::new("lookup-self")
            .operation(Operation::Read, handler(lookup_self))
            .operation(Operation::Update, handler(lookup_self))
            .help(
                "Look up the calling token.",
                "Returns the properties of the calling token.",
            ),
        Path::new("lookup-accessor")
            .field(accessor_field())
            .operation(Operation::Update, handler(lookup_accessor))
            .help(
                "Look up a token by accessor.",
                "Returns a token's properties, without its ID.",
            ),
        Path::new("renew")
            .field(token_field())
            .field(increment())
            .operation(Operation::Update, handler(renew))
            .help("Renew a token.", "Extends a token's TTL."),
        Path::new("renew-self")
            .field(increment())
            .operation(Operation::Update, handler(renew_self))
            .help(
                "Renew the calling token.",
                "Extends the calling token's TTL.",
            ),
        Path::new("renew-accessor")
            .field(accessor_field())
            .field(increment())
            .operation(Operation::Update, handler(renew_accessor))
            .help("Renew a token by accessor.", "Extends a token's TTL."),
        Path::new("revoke")
            .field(token_field())
            .operation(Operation::Update, handler(revoke))
            .help(
                "Revoke a token.",
                "Revokes a token and all its descendants.",
            ),
        Path::new("revoke-self")
            .operation(Operation::Update, handler(revoke_self))
            .help(
                "Revoke the calling token.",
                "Revokes the calling token and its descendants.",
            ),
        Path::new("revoke-accessor")
            .field(accessor_field())
            .operation(Operation::Update, handler(revoke_accessor))
            .help(
                "Revoke a token by accessor.",
                "Revokes a token and all its descendants.",
            ),
        Path::new("revoke-orphan")
            .field(token_field())
            .operation(Operation::Update, handler(revoke_orphan))
            .help(
                "Revoke a token only.",
                "Revokes a token; its children become orphans.",
            ),
        Path::new("accessors/?")
            .operation(Operation::List, handler(accessors))
            .help("List accessors.", "Lists the accessors of every token."),
        Path::new("tidy")
            .operation(Operation::Update, handler(tidy))
            .help(
                "Tidy the token store.",
                "Removes index entries of tokens that are gone.",
            ),
    ];
    paths.extend(super::roles::paths());
    FrameworkBackend::new("The token store issues and manages client tokens.", paths)
}

/// The `auth` block of a token response.
pub(crate) fn auth_for(token: &str, entry: &TokenEntry, lease_duration: Duration) -> Auth {
    Auth {
        client_token: token.to_owned(),
        accessor: entry.accessor.clone(),
        display_name: entry.display_name.clone(),
        policies: entry.policies.clone(),
        token_policies: entry.policies.clone(),
        metadata: (!entry.meta.is_empty()).then(|| entry.meta.clone()),
        lease_duration,
        renewable: entry.renewable && entry.expire_time.is_some(),
        token_type: "service".to_owned(),
        orphan: entry.parent_hash.is_none(),
        num_uses: entry.num_uses.max(0) as u64,
        ..Auth::default()
    }
}

fn string_meta(fields: &FieldData) -> Result<Map<String, Value>> {
    let Some(meta) = fields.map("meta") else {
        return Ok(Map::new());
    };
    meta.into_iter()
        .map(|(key, value)| match value {
            Value::String(_) => Ok((key, value)),
            _ => Err(Error::invalid(format!(
                "meta value for {key:?} must be a string"
            ))),
        })
        .collect()
}

async fn create(core: Arc<Core>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let unsealed = core.unsealed()?;
    let caller = core.caller(&req).await?;
    if caller.num_uses != 0 {
        return Err(Error::invalid(
            "restricted use token cannot generate child tokens",
        ));
    }
    let privileged = caller.is_root() || req.root_privileges;
    let role: Option<TokenRole> = match fields.string("role_name") {
        Some(name) => Some(
            unsealed
                .tokens
                .role(&name)
                .await?
                .ok_or_else(|| Error::invalid(format!("unknown role {name}")))?,
        ),
        None => None,
    };
    let relative = req.relative_path().to_owned();

    if let Some(kind) = fields.string("type")
        && !matches!(kind.as_str(), "" | "service")
    {
        return Err(Error::invalid(if kind == "batch" {
            "batch tokens are not supported yet".to_owned()
        } else {
            format!("invalid token type {kind:?}")
        }));
    }
    let id = fields.string("id").filter(|id| !id.is_empty());
    if let Some(id) = &id {
        if !privileged {
            return Err(Error::invalid(
                "root or sudo privileges required to specify token id",
            ));
        }
        if id.contains('.') && !id.starts_with(super::SERVICE_TOKEN_PREFIX) {
            return Err(Error::invalid("token IDs can not contain a '.'"));
        }
    }
    let no_parent = fields.bool("no_parent").unwrap_or(false);
    if no_parent && !privileged && role.as_ref().is_none_or(|r| !r.orphan) {
        return Err(Error::invalid(
            "root or sudo privileges required to create orphan token",
        ));
    }
    let orphan =
        no_parent || relative == "create-orphan" || role.as_ref().is_some_and(|r| r.orphan);

    let requested = fields.string_list("policies").filter(|p| !p.is_empty());
    let no_default_policy = fields.bool("no_default_policy").unwrap_or(false)
        || role.as_ref().is_some_and(|r| r.token_no_default_policy);
    let policies = match (&role, requested) {
        (Some(role), requested) => {
            let wanted = requested.unwrap_or_else(|| role.allowed_policies.clone());
            if let Some(bad) = wanted.iter().find(|p| *p != "default" && !role.permits(p)) {
                return Err(Error::invalid(format!(
                    "token policies ({bad}) must be subset of the role's allowed policies"
                )));
            }
            wanted
        }
        (None, Some(requested)) => {
            if !privileged {
                let parent: Vec<&String> = caller.policies.iter().collect();
                if requested
                    .iter()
                    .any(|p| p != "default" && !parent.contains(&p))
                {
                    return Err(Error::invalid(
                        "child policies must be subset of parent's policies",
                    ));
                }
            }
            requested
        }
        (None, None) => caller.policies.clone(),
    };
    let policies = finalize_policies(policies, no_default_policy);
    if policies.iter().any(|p| p == "root") && !caller.is_root() {
        return Err(Error::invalid(
            "root tokens may only be created by a root token",
        ));
    }

    let period = fields
        .duration("period")
        .or_else(|| role.as_ref().map(|r| Duration::from_secs(r.token_period)))
        .unwrap_or_default();
    if fields.is_set("period") && !period.is_zero() && !privileged {
        return Err(Error::invalid(
            "root or sudo privileges required to create periodic token",
        ));
    }
    let explicit_max_ttl = fields
        .duration("explicit_max_ttl")
        .or_else(|| {
            role.as_ref()
                .map(|r| Duration::from_secs(r.token_explicit_max_ttl))
        })
        .unwrap_or_default();
    let num_uses = match fields.int("num_uses") {
        Some(uses) if uses < 0 => return Err(Error::invalid("number of uses cannot be negative")),
        Some(uses) => uses,
        None => role.as_ref().map(|r| r.token_num_uses).unwrap_or(0),
    };
    let requested_ttl = fields
        .duration("ttl")
        .or_else(|| fields.duration("lease"))
        .or_else(|| role.as_ref().map(|r| Duration::from_secs(r.token_ttl)))
        .unwrap_or_default();
    let renewable =
        fields.bool("renewable").unwrap_or(true) && role.as_ref().is_none_or(|r| r.renewable);
    let backend_max_ttl = role
        .as_ref()
        .map(|r| Duration::from_secs(r.token_max_ttl))
        .unwrap_or_default();

    let is_root = policies.iter().any(|p| p == "root");
    let mut warnings = Vec::new();
    let ttl =
        if is_root && requested_ttl.is_zero() && period.is_zero() && explicit_max_ttl.is_zero() {
            Duration::ZERO
        } else {
            let decision = mayfly_sdk::ttl::calculate_ttl(
                core.mount_ttls("auth/token/"),
                mayfly_sdk::ttl::TtlRequest {
                    increment: requested_ttl,
                    backend_max_ttl,
                    period,
                    explicit_max_ttl,
                    ..mayfly_sdk::ttl::TtlRequest::issued_at(core.clock().now())
                },
                core.clock().now(),
            )?;
            warnings.extend(decision.warnings);
            decision.ttl
        };
    let display_name = match fields.string("display_name").filter(|n| !n.is_empty()) {
        Some(name) => sanitize_display_name(&format!("token-{name}")),
        None => "token".to_owned(),
    };
    let mut path = format!("auth/token/{relative}");
    if let Some(role) = &role
        && !role.path_suffix.is_empty()
    {
        path = format!("{path}/{}", role.path_suffix);
    }
    warnings.extend(core.missing_policy_warnings(&policies).await?);
    let (token, entry) = core
        .issue_token(NewToken {
            id,
            policies,
            parent_hash: (!orphan).then(|| caller.id_hash.clone()),
            path,
            display_name,
            meta: string_meta(&fields)?,
            ttl,
            explicit_max_ttl,
            period,
            backend_max_ttl,
            num_uses,
            renewable,
            bound_cidrs: role
                .as_ref()
                .map(|r| r.token_bound_cidrs.clone())
                .unwrap_or_default(),
            role: role.as_ref().map(|r| r.name.clone()),
            no_default_policy,
            ..NewToken::default()
        })
        .await?;
    Ok(Some(Response {
        auth: Some(auth_for(&token, &entry, ttl)),
        warnings,
        ..Response::default()
    }))
}

fn required(fields: &FieldData, name: &str) -> Result<String> {
    fields
        .string(name)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| Error::invalid(format!("missing {name}")))
}

async fn lookup(core: Arc<Core>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let token = match fields.string("token").filter(|t| !t.is_empty()) {
        Some(token) => token,
        // GET lookup without a token looks up the caller, as Vault does.
        None if req.operation == Operation::Read => return lookup_self(core, req, fields).await,
        None => return Err(Error::invalid("missing token")),
    };
    let entry = core
        .unsealed()?
        .tokens
        .lookup(&token)
        .await?
        .ok_or_else(bad_token)?;
    Ok(Some(Response::with_data(lookup_data(
        &token,
        &entry,
        core.clock().unix_ms(),
    ))))
}

fn bad_token() -> Error {
    Error::Coded {
        status: 403,
        message: "bad token".to_owned(),
    }
}

async fn lookup_self(core: Arc<Core>, req: Request, _: FieldData) -> Result<Option<Response>> {
    let token = req.client_token.as_ref().ok_or(Error::PermissionDenied)?;
    let entry = core.caller(&req).await?;
    Ok(Some(Response::with_data(lookup_data(
        &token.0,
        &entry,
        core.clock().unix_ms(),
    ))))
}

async fn lookup_accessor(
    core: Arc<Core>,
    _: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let accessor = required(&fields, "accessor")?;
    let entry = core
        .unsealed()?
        .tokens
        .lookup_accessor(&accessor)
        .await?
        .ok_or_else(bad_token)?;
    Ok(Some(Response::with_data(lookup_data(
        "",
        &entry,
        core.clock().unix_ms(),
    ))))
}

async fn renew_response(
    core: &Core,
    token_shown: &str,
    entry: TokenEntry,
    fields: &FieldData,
) -> Result<Option<Response>> {
    let increment = fields.duration("increment").unwrap_or_default();
    let (renewed, ttl, warnings) = core.renew_token(entry, increment).await?;
    Ok(Some(Response {
        auth: Some(auth_for(token_shown, &renewed, ttl)),
        warnings,
        ..Response::default()
    }))
}

async fn renew(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    let token = required(&fields, "token")?;
    let entry = core
        .unsealed()?
        .tokens
        .lookup(&token)
        .await?
        .ok_or_else(|| Error::invalid("invalid token"))?;
    renew_response(&core, &token, entry, &fields).await
}

async fn renew_self(core: Arc<Core>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let token = req.client_token.clone().ok_or(Error::PermissionDenied)?;
    let entry = core.caller(&req).await?;
    renew_response(&core, &token.0, entry, &fields).await
}

async fn renew_accessor(
    core: Arc<Core>,
    _: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let accessor = required(&fields, "accessor")?;
    let entry = core
        .unsealed()?
        .tokens
        .lookup_accessor(&accessor)
        .await?
        .ok_or_else(|| Error::invalid("invalid accessor"))?;
    renew_response(&core, "", entry, &fields).await
}

async fn revoke(core: Arc<Core>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    let token = required(&fields, "token")?;
    let hash = core.unsealed()?.tokens.hash(&token);
    core.revoke_token_tree(&hash).await?;
    Ok(None)
}

async fn revoke_self(core: Arc<Core>, req: Request, _: FieldData) -> Result<Option<Response>> {
    let hash = req
        .client_token_hash
        .clone()
        .ok_or(Error::PermissionDenied)?;
    core.revoke_token_tree(&hash).await?;
    Ok(None)
}

async fn revoke_accessor(
    core: Arc<Core>,
    _: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let accessor = required(&fields, "accessor")?;
    if let Some(entry) = core.unsealed()?.tokens.lookup_accessor(&accessor).await? {
        core.revoke_token_tree(&entry.id_hash).await?;
    }
    Ok(None)
}

async fn revoke_orphan(
    core: Arc<Core>,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let caller = core.caller(&req).await?;
    if !caller.is_root() && !req.root_privileges {
        return Err(Error::invalid(
            "root or sudo privileges required to revoke and orphan",
        ));
    }
    let token = required(&fields, "token")?;
    let hash = core.unsealed()?.tokens.hash(&token);
    core.revoke_token_orphan(&hash).await?;
    Ok(None)
}

async fn accessors(core: Arc<Core>, _: Request, _: FieldData) -> Result<Option<Response>> {
    Ok(Some(Response::list(
        core.unsealed()?.tokens.accessors().await?,
    )))
}

async fn tidy(core: Arc<Core>, _: Request, _: FieldData) -> Result<Option<Response>> {
    let report = core.unsealed()?.tokens.tidy().await?;
    tracing::info!(
        accessors = report.accessors,
        parent_links = report.parent_links,
        "Token store tidied."
    );
    Ok(Some(Response {
        data: json!({}).as_object().cloned(),
        warnings: vec![
            "Tidy operation successfully started. Any information from the operation will be printed to Vault's server logs."
                .to_owned(),
        ],
        status: Some(202),
        ..Response::default()
    }))
}
