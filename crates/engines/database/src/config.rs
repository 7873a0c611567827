//! `config/:name`, `config/` and `reset/:name`: database connections.

use std::sync::Arc;

use mayfly_sdk::{
    Error, Operation, Request, Response, Result,
    framework::{Field, FieldData, FieldKind, Path, existence, generic_name, handler},
    template::StringTemplate,
};
use serde_json::{Map, Value, json};

use crate::{
    plugin::{InitializeRequest, PLUGIN_NAMES, new_plugin},
    sorted,
    state::{CONFIG_PREFIX, Database, Instance},
    statements,
};

/// Request fields that configure the engine's side of a connection; everything else is a
/// connection detail handed to the plugin.
const ENGINE_FIELDS: &[&str] = &[
    "name",
    "plugin_name",
    "plugin_version",
    "allowed_roles",
    "verify_connection",
    "root_rotation_statements",
    "password_policy",
];

/// Connection details never shown on read: they are credentials.
const SECRET_DETAILS: &[&str] = &["password", "private_key", "tls_certificate_key"];

pub(crate) fn paths() -> Vec<Path<Database>> {
    let name = || {
        Field::new(
            "name",
            FieldKind::String,
            "Name of this database connection",
        )
    };
    vec![
        Path::new("config/?")
            .operation(Operation::List, handler(list))
            .help(
                "Configure connection details to a database plugin.",
                "Lists the configured database connections.",
            ),
        Path::new(format!("config/{}", generic_name("name")))
            .field(name())
            .field(Field::new(
                "plugin_name",
                FieldKind::String,
                "The name of a builtin plugin known to Mayfly, such as \
                 postgresql-database-plugin.",
            ))
            .field(Field::new(
                "plugin_version",
                FieldKind::String,
                "The version of the plugin to use.",
            ))
            .field(
                Field::new(
                    "verify_connection",
                    FieldKind::Bool,
                    "If true, the connection details are verified by actually connecting to \
                     the database. Defaults to true.",
                )
                .default_value(json!(true)),
            )
            .field(Field::new(
                "allowed_roles",
                FieldKind::StringList,
                "Comma separated string or array of the role names allowed to get creds from \
                 this database connection. If empty no roles are allowed. If \"*\" all roles \
                 are allowed.",
            ))
            .field(Field::new(
                "root_rotation_statements",
                FieldKind::Raw,
                "Statements executed to rotate the root user's credentials.",
            ))
            .field(Field::new(
                "password_policy",
                FieldKind::String,
                "Password policy to use when generating passwords.",
            ))
            .arbitrary_input()
            .existence_check(existence(config_exists))
            .operation(Operation::Read, handler(read))
            .operation(Operation::Create, handler(write))
            .operation(Operation::Update, handler(write))
            .operation(Operation::Delete, handler(delete))
            .help(
                "Configure connection details to a database plugin.",
                "Configures the connection to a database: plugin_name, the plugin's connection \
                 details (connection_url with {{username}}/{{password}}, username, password, \
                 pool and TLS settings), allowed_roles, root_rotation_statements and \
                 password_policy. The password is never returned.",
            ),
        Path::new(format!("reset/{}", generic_name("name")))
            .field(name())
            .operation(Operation::Update, handler(reset))
            .help(
                "Resets a database plugin.",
                "Closes the connection to the database and opens a new one.",
            ),
    ]
}

fn connection_name(fields: &FieldData) -> Result<String> {
    fields
        .string("name")
        .filter(|name| !name.is_empty())
        .ok_or_else(|| Error::invalid("empty name attribute given"))
}

async fn config_exists(state: Arc<Database>, req: Request, fields: FieldData) -> Result<bool> {
    let name = connection_name(&fields)?;
    Ok(state
        .config(req.storage()?.as_ref(), &name)
        .await?
        .is_some())
}

async fn list(_: Arc<Database>, req: Request, _: FieldData) -> Result<Option<Response>> {
    let names = req.storage()?.list(CONFIG_PREFIX).await?;
    Ok(Some(Response::list(names)))
}

/// A URL with its password replaced by `xxxxx`, as Go's `url.Redacted` shows it. Templated
/// URLs (`{{password}}`) hold no password and are shown as they are.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    match userinfo.split_once(':') {
        Some((user, password)) if !password.is_empty() && !password.contains("{{") => format!(
            "{scheme}://{user}:xxxxx@{}{}",
            &authority[at + 1..],
            &rest[authority_end..]
        ),
        _ => url.to_owned(),
    }
}

/// Whether a URL carries a literal password rather than `{{password}}`.
fn url_has_password(url: &str) -> bool {
    redact_url(url) != url
}

async fn read(state: Arc<Database>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let name = connection_name(&fields)?;
    let Some(config) = state.config(req.storage()?.as_ref(), &name).await? else {
        return Ok(None);
    };
    let mut details = config.connection_details.clone();
    for secret in SECRET_DETAILS {
        details.remove(*secret);
    }
    if let Some(Value::String(url)) = details.get("connection_url") {
        let redacted = redact_url(url);
        details.insert("connection_url".to_owned(), Value::String(redacted));
    }
    let data = json!({
        "plugin_name": config.plugin_name,
        "plugin_version": config.plugin_version,
        "connection_details": Value::Object(sorted(details)),
        "allowed_roles": config.allowed_roles,
        "root_credentials_rotate_statements": config.root_credentials_rotate_statements,
        "password_policy": config.password_policy,
        "verify_connection": config.verify_connection,
    });
    let Value::Object(data) = data else {
        return Err(Error::internal("config response is not an object"));
    };
    Ok(Some(Response::with_data(sorted(data))))
}

fn creation_error(err: impl std::fmt::Display) -> Error {
    Error::invalid(format!("error creating database object: {err}"))
}

async fn write(state: Arc<Database>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let name = connection_name(&fields)?;
    let storage = req.storage()?.clone();
    let create = req.operation == Operation::Create;
    let mut config = state
        .config(storage.as_ref(), &name)
        .await?
        .unwrap_or_default();
    if let Some(plugin_name) = fields
        .string("plugin_name")
        .filter(|_| fields.is_set("plugin_name"))
    {
        config.plugin_name = plugin_name;
    }
    if config.plugin_name.is_empty() {
        return Err(Error::invalid("empty plugin name"));
    }
    if fields.is_set("plugin_version") {
        config.plugin_version = fields.string("plugin_version").unwrap_or_default();
    }
    if fields.is_set("allowed_roles") || create {
        config.allowed_roles = fields.string_list("allowed_roles").unwrap_or_default();
    }
    if fields.is_set("root_rotation_statements") || create {
        config.root_credentials_rotate_statements = fields
            .raw("root_rotation_statements")
            .map(|value| {
                statements::from_value(value).ok_or_else(|| {
                    Error::invalid("root_rotation_statements must be a string or a list of strings")
                })
            })
            .transpose()?
            .unwrap_or_default();
    }
    if fields.is_set("password_policy") {
        config.password_policy = fields.string("password_policy").unwrap_or_default();
    }
    config.verify_connection = fields.bool("verify_connection").unwrap_or(true);

    let details: Map<String, Value> = req
        .data
        .iter()
        .filter(|(key, _)| !ENGINE_FIELDS.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    if create {
        config.connection_details = details;
    } else {
        config.connection_details.extend(details);
    }

    if let Some(Value::String(template)) = config.connection_details.get("username_template")
        && !template.is_empty()
    {
        StringTemplate::parse(template).map_err(|err| {
            creation_error(format!("unable to initialize username template: {err}"))
        })?;
    }
    if !config.password_policy.is_empty() {
        // Fails now rather than at the first credential if the policy does not exist.
        req.system()?
            .generate_password(Some(&config.password_policy))
            .await?;
    }

    let plugin = new_plugin(&config.plugin_name).ok_or_else(|| {
        creation_error(format!(
            "invalid database version: plugin not found in the catalog: {} (available: {})",
            config.plugin_name,
            PLUGIN_NAMES.join(", ")
        ))
    })?;
    let stored_details = plugin
        .initialize(InitializeRequest {
            config: config.connection_details.clone(),
            verify_connection: config.verify_connection,
        })
        .await
        .map_err(creation_error)?;
    config.connection_details = stored_details;

    if let Err(err) = state.put_config(storage.as_ref(), &name, &config).await {
        plugin.close().await;
        return Err(err);
    }
    let previous = state.connections.lock().await.insert(
        name.clone(),
        Arc::new(Instance::new(plugin, config.clone())),
    );
    if let Some(previous) = previous {
        previous.plugin.close().await;
    }

    if let Some(Value::String(url)) = config.connection_details.get("connection_url")
        && url_has_password(url)
    {
        let mut response = Response::default();
        response.warnings.push(
            "Password found in connection_url, use a templated url to enable root rotation \
             and prevent read access to password information."
                .to_owned(),
        );
        return Ok(Some(response));
    }
    Ok(None)
}

async fn delete(state: Arc<Database>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let name = connection_name(&fields)?;
    req.storage()?
        .delete(&format!("{CONFIG_PREFIX}{name}"))
        .await?;
    state.clear_connection(&name).await;
    Ok(None)
}

async fn reset(state: Arc<Database>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let name = connection_name(&fields)?;
    state.clear_connection(&name).await;
    state.connection(req.storage()?.as_ref(), &name).await?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_like_go() {
        assert_eq!(
            redact_url("postgresql://u:secret@h:5432/db?sslmode=disable"),
            "postgresql://u:xxxxx@h:5432/db?sslmode=disable"
        );
        let templated = "postgresql://{{username}}:{{password}}@h:5432/db";
        assert_eq!(redact_url(templated), templated);
        assert_eq!(
            redact_url("{{username}}:{{password}}@tcp(h)/"),
            "{{username}}:{{password}}@tcp(h)/"
        );
        assert!(url_has_password("mysql://root:pw@h/"));
        assert!(!url_has_password("postgresql://u@h/db"));
    }
}
