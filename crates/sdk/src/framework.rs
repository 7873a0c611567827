//! The path-table framework: an engine declares patterns, fields, operations and help, and
//! the framework matches paths, validates fields and dispatches to handlers.

use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use async_trait::async_trait;
use regex::Regex;
use serde_json::{Map, Value};

use crate::{
    duration::parse_duration_value,
    error::{Error, Result},
    logical::{LogicalBackend, Operation, Request, Response, SecretLease, StorageChange},
};

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Option<Response>>> + Send>>;
/// A handler gets the engine's state, the request and the validated fields.
pub type Handler<S> = Arc<dyn Fn(Arc<S>, Request, FieldData) -> HandlerFuture + Send + Sync>;

pub type ExistenceFuture = Pin<Box<dyn Future<Output = Result<bool>> + Send>>;
/// Says whether the object a write targets exists (ACL `create` vs `update`).
pub type ExistenceCheck<S> =
    Arc<dyn Fn(Arc<S>, Request, FieldData) -> ExistenceFuture + Send + Sync>;

/// Wraps an `async fn(Arc<S>, Request, FieldData) -> Result<bool>` as an [`ExistenceCheck`].
pub fn existence<S, F, Fut>(f: F) -> ExistenceCheck<S>
where
    F: Fn(Arc<S>, Request, FieldData) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<bool>> + Send + 'static,
{
    Arc::new(move |state, req, fields| Box::pin(f(state, req, fields)))
}

/// Renews or revokes a secret of one declared type.
pub type SecretHandler<S> =
    Arc<dyn Fn(Arc<S>, Request, SecretLease) -> HandlerFuture + Send + Sync>;

/// Wraps an `async fn(Arc<S>, Request, SecretLease) -> Result<Option<Response>>`.
pub fn secret_handler<S, F, Fut>(f: F) -> SecretHandler<S>
where
    F: Fn(Arc<S>, Request, SecretLease) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Response>>> + Send + 'static,
{
    Arc::new(move |state, req, secret| Box::pin(f(state, req, secret)))
}

/// A kind of secret an engine hands out with a lease (Vault's `framework.Secret`).
pub struct SecretType<S> {
    /// The name responses put in `SecretLease::secret_type` (`creds`).
    pub name: &'static str,
    /// `None`: leases of this type cannot be renewed.
    pub renew: Option<SecretHandler<S>>,
    /// A response whose `secret` carries `commit_with_lease` has those changes committed
    /// with the lease's deletion.
    pub revoke: SecretHandler<S>,
}

/// Wraps an `async fn(Arc<S>, Request, FieldData) -> Result<Option<Response>>` as a [`Handler`].
pub fn handler<S, F, Fut>(f: F) -> Handler<S>
where
    F: Fn(Arc<S>, Request, FieldData) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Response>>> + Send + 'static,
{
    Arc::new(move |state, req, fields| Box::pin(f(state, req, fields)))
}

/// The type a field's value must have; requests are validated against it before dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    String,
    Int,
    Bool,
    /// Seconds as an integer, or a Go duration string.
    Duration,
    /// A JSON list of strings or a comma-separated string.
    StringList,
    Map,
    /// Any JSON value, unvalidated.
    Raw,
}

/// One declared field of a path.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: &'static str,
    pub kind: FieldKind,
    pub description: &'static str,
    pub default: Option<Value>,
    pub required: bool,
}

impl Field {
    pub fn new(name: &'static str, kind: FieldKind, description: &'static str) -> Self {
        Field {
            name,
            kind,
            description,
            default: None,
            required: false,
        }
    }

    pub fn default_value(mut self, value: Value) -> Self {
        self.default = Some(value);
        self
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
}

/// One route of an engine: a pattern, its fields, and a handler per operation.
pub struct Path<S> {
    pub pattern: String,
    pub fields: Vec<Field>,
    pub operations: Vec<(Operation, Handler<S>)>,
    pub synopsis: &'static str,
    pub description: &'static str,
    /// The path stores whatever data it is given (KV, cubbyhole): no unknown-field warning.
    pub takes_arbitrary_input: bool,
    pub existence_check: Option<ExistenceCheck<S>>,
}

impl<S> Path<S> {
    /// `pattern` is a regular expression matched against the whole path relative to the
    /// mount; named groups become fields.
    pub fn new(pattern: impl Into<String>) -> Self {
        Path {
            pattern: pattern.into(),
            fields: Vec::new(),
            operations: Vec::new(),
            synopsis: "",
            description: "",
            takes_arbitrary_input: false,
            existence_check: None,
        }
    }

    pub fn existence_check(mut self, check: ExistenceCheck<S>) -> Self {
        self.existence_check = Some(check);
        self
    }

    pub fn arbitrary_input(mut self) -> Self {
        self.takes_arbitrary_input = true;
        self
    }

    pub fn field(mut self, field: Field) -> Self {
        self.fields.push(field);
        self
    }

    pub fn operation(mut self, operation: Operation, handler: Handler<S>) -> Self {
        self.operations.push((operation, handler));
        self
    }

    pub fn help(mut self, synopsis: &'static str, description: &'static str) -> Self {
        self.synopsis = synopsis;
        self.description = description;
        self
    }
}

/// A segment of a name: letters, digits, `-`, `_`, `.`, not starting or ending with `.`/`-`.
pub fn generic_name(field: &str) -> String {
    format!(r"(?P<{field}>\w(([\w\-.]+)?\w)?)")
}

/// Everything after this point, slashes included.
pub fn match_all_after(field: &str) -> String {
    format!(r"(?P<{field}>.*)")
}

/// A request's fields after validation against the path's schema.
#[derive(Debug, Clone, Default)]
pub struct FieldData {
    values: Map<String, Value>,
    defaults: HashMap<&'static str, Value>,
}

impl FieldData {
    /// The raw value of a field as given, or its declared default.
    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.values.get(name).or_else(|| self.defaults.get(name))
    }

    /// Whether the client supplied the field (defaults do not count).
    pub fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    pub fn string(&self, name: &str) -> Option<String> {
        match self.raw(name)? {
            Value::String(text) => Some(text.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        self.raw(name).and_then(|value| coerce_int(value).ok())
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        self.raw(name).and_then(|value| coerce_bool(value).ok())
    }

    pub fn duration(&self, name: &str) -> Option<Duration> {
        self.raw(name)
            .and_then(|value| parse_duration_value(value).ok())
    }

    pub fn string_list(&self, name: &str) -> Option<Vec<String>> {
        self.raw(name)
            .and_then(|value| coerce_string_list(value).ok())
    }

    pub fn map(&self, name: &str) -> Option<Map<String, Value>> {
        match self.raw(name)? {
            Value::Object(map) => Some(map.clone()),
            _ => None,
        }
    }
}

fn coerce_int(value: &Value) -> Result<i64, ()> {
    match value {
        Value::Number(number) => number
            .as_i64()
            .or_else(|| {
                number
                    .as_f64()
                    .filter(|f| f.fract() == 0.0)
                    .map(|f| f as i64)
            })
            .ok_or(()),
        Value::String(text) => text.trim().parse().map_err(|_| ()),
        _ => Err(()),
    }
}

fn coerce_bool(value: &Value) -> Result<bool, ()> {
    match value {
        Value::Bool(flag) => Ok(*flag),
        Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "t" => Ok(true),
            "false" | "0" | "f" | "" => Ok(false),
            _ => Err(()),
        },
        Value::Number(number) => match number.as_i64() {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            _ => Err(()),
        },
        _ => Err(()),
    }
}

fn coerce_string_list(value: &Value) -> Result<Vec<String>, ()> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Ok(text.trim().to_owned()),
                Value::Number(number) => Ok(number.to_string()),
                Value::Bool(flag) => Ok(flag.to_string()),
                _ => Err(()),
            })
            .collect(),
        Value::String(text) => Ok(text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(str::to_owned)
            .collect()),
        Value::Null => Ok(Vec::new()),
        _ => Err(()),
    }
}

fn validate_field(field: &Field, value: &Value) -> Result<()> {
    let valid = match field.kind {
        FieldKind::String => matches!(
            value,
            Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null
        ),
        FieldKind::Int => coerce_int(value).is_ok(),
        FieldKind::Bool => coerce_bool(value).is_ok(),
        FieldKind::Duration => parse_duration_value(value).is_ok(),
        FieldKind::StringList => coerce_string_list(value).is_ok(),
        FieldKind::Map => matches!(value, Value::Object(_) | Value::Null),
        FieldKind::Raw => true,
    };
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "error converting input for field {:?}: expected {}",
            field.name,
            kind_name(field.kind)
        )))
    }
}

fn kind_name(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::String => "a string",
        FieldKind::Int => "an integer",
        FieldKind::Bool => "a boolean",
        FieldKind::Duration => "a duration (seconds or a string like \"1h30m\")",
        FieldKind::StringList => "a list of strings or a comma-separated string",
        FieldKind::Map => "an object",
        FieldKind::Raw => "any value",
    }
}

struct CompiledPath<S> {
    regex: Regex,
    /// What every path the pattern matches starts with: a test that turns most paths of a
    /// big table away before its regex runs.
    literal_prefix: String,
    path: Path<S>,
}

/// The literal text a path pattern starts with, up to its first regex syntax. A character
/// followed by a quantifier may be absent, so it is left out; a pattern with an alternation
/// anywhere gets no prefix, since another branch may start differently.
fn literal_prefix(pattern: &str) -> String {
    const SYNTAX: &[char] = &[
        '\\', '.', '+', '*', '?', '(', ')', '|', '[', ']', '{', '}', '^', '$',
    ];
    if pattern.contains('|') {
        return String::new();
    }
    let end = pattern.find(SYNTAX).unwrap_or(pattern.len());
    let mut prefix = &pattern[..end];
    if pattern[end..].starts_with(['?', '*', '{']) {
        prefix = prefix
            .char_indices()
            .last()
            .map_or("", |(last, _)| &prefix[..last]);
    }
    prefix.to_owned()
}

/// An engine's whole path table; matches a relative path to its route and dispatches.
pub struct FrameworkBackend<S> {
    paths: Vec<CompiledPath<S>>,
    help: &'static str,
    unauthenticated: Vec<String>,
    secrets: Vec<SecretType<S>>,
}

impl<S: Send + Sync + 'static> FrameworkBackend<S> {
    /// Compiles the table. Patterns are fixed at build time, so an invalid one is a programming
    /// error caught by each engine's unit tests.
    pub fn new(help: &'static str, paths: Vec<Path<S>>) -> Self {
        let paths = paths
            .into_iter()
            .map(|path| CompiledPath {
                regex: Regex::new(&format!("^(?:{})$", path.pattern))
                    .unwrap_or_else(|err| panic!("invalid path pattern {:?}: {err}", path.pattern)),
                literal_prefix: literal_prefix(&path.pattern),
                path,
            })
            .collect();
        FrameworkBackend {
            paths,
            help,
            unauthenticated: Vec::new(),
            secrets: Vec::new(),
        }
    }

    /// Declares a secret type this engine issues leases for.
    pub fn with_secret(mut self, secret: SecretType<S>) -> Self {
        self.secrets.push(secret);
        self
    }

    fn secret_type(&self, secret: &SecretLease) -> Result<&SecretType<S>> {
        self.secrets
            .iter()
            .find(|declared| declared.name == secret.secret_type)
            .ok_or_else(|| Error::internal(format!("unknown secret type {:?}", secret.secret_type)))
    }

    pub async fn renew_secret(
        &self,
        state: Arc<S>,
        req: Request,
        secret: SecretLease,
    ) -> Result<Option<Response>> {
        let declared = self.secret_type(&secret)?;
        let renew = declared
            .renew
            .clone()
            .ok_or_else(|| Error::invalid("lease is not renewable"))?;
        renew(state, req, secret).await
    }

    pub async fn revoke_secret(
        &self,
        state: Arc<S>,
        req: Request,
        secret: SecretLease,
    ) -> Result<Vec<StorageChange>> {
        let revoke = self.secret_type(&secret)?.revoke.clone();
        let response = revoke(state, req, secret).await?;
        Ok(response
            .and_then(|response| response.secret)
            .map(|secret| secret.commit_with_lease)
            .unwrap_or_default())
    }

    pub fn with_unauthenticated_paths(mut self, paths: &[&str]) -> Self {
        self.unauthenticated = paths.iter().map(|p| (*p).to_owned()).collect();
        self
    }

    pub fn unauthenticated_paths(&self) -> &[String] {
        &self.unauthenticated
    }

    /// The patterns of the table, for conformance checks.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.paths
            .iter()
            .map(|compiled| compiled.path.pattern.as_str())
    }

    fn route(&self, relative_path: &str) -> Option<(&CompiledPath<S>, Map<String, Value>)> {
        self.paths.iter().find_map(|compiled| {
            // A match test runs on the lazy DFA; captures need a slower engine, so only the
            // path that matches pays for them.
            if !relative_path.starts_with(compiled.literal_prefix.as_str())
                || !compiled.regex.is_match(relative_path)
            {
                return None;
            }
            let captures = compiled.regex.captures(relative_path)?;
            let mut values = Map::new();
            for name in compiled.regex.capture_names().flatten() {
                if let Some(capture) = captures.name(name) {
                    values.insert(name.to_owned(), Value::String(capture.as_str().to_owned()));
                }
            }
            Some((compiled, values))
        })
    }

    /// Whether some route serves the path (for existence checks and routing decisions).
    pub fn has_route(&self, relative_path: &str) -> bool {
        self.route(relative_path).is_some()
    }

    pub async fn handle(&self, state: Arc<S>, req: Request) -> Result<Option<Response>> {
        let relative_path = req.relative_path().to_owned();
        let Some((compiled, captures)) = self.route(&relative_path) else {
            if req.operation == Operation::Help {
                return Ok(Some(help_response(self.help)));
            }
            return Err(Error::UnsupportedPath);
        };
        if req.operation == Operation::Help {
            let text = format!(
                "{}\n\n{}",
                compiled.path.synopsis, compiled.path.description
            );
            return Ok(Some(help_response(text.trim())));
        }
        // Create and update share a handler unless the path declares both.
        let wanted = req.operation;
        let handler = compiled
            .path
            .operations
            .iter()
            .find(|(operation, _)| *operation == wanted)
            .or_else(|| match wanted {
                Operation::Create => compiled
                    .path
                    .operations
                    .iter()
                    .find(|(operation, _)| *operation == Operation::Update),
                Operation::Update => compiled
                    .path
                    .operations
                    .iter()
                    .find(|(operation, _)| *operation == Operation::Create),
                _ => None,
            })
            .map(|(_, handler)| handler.clone())
            .ok_or(Error::UnsupportedOperation)?;

        let fields = collect_fields(&compiled.path, captures, &req)?;
        let mut response = handler(state, req.clone(), fields).await?;
        let unknown: Vec<&String> = req
            .data
            .keys()
            .filter(|key| {
                !compiled
                    .path
                    .fields
                    .iter()
                    .any(|field| field.name == key.as_str())
            })
            .collect();
        // Like Vault, the warning rides on a response; a write that returns nothing stays 204.
        if !unknown.is_empty()
            && !compiled.path.takes_arbitrary_input
            && matches!(wanted, Operation::Create | Operation::Update)
            && let Some(response) = response.as_mut()
        {
            let warning = format!(
                "Endpoint ignored these unrecognized parameters: [{}]",
                unknown
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            response.warnings.push(warning);
        }
        Ok(response)
    }

    /// Runs the route's existence check: `None` when the route has none (or there is no route).
    pub async fn exists(&self, state: Arc<S>, req: &Request) -> Result<Option<bool>> {
        let Some((compiled, captures)) = self.route(req.relative_path()) else {
            return Ok(None);
        };
        let Some(check) = compiled.path.existence_check.clone() else {
            return Ok(None);
        };
        let fields = collect_fields(&compiled.path, captures, req)?;
        check(state, req.clone(), fields).await.map(Some)
    }
}

/// Validates the request's data against the path's fields and merges in path captures.
fn collect_fields<S>(
    path: &Path<S>,
    captures: Map<String, Value>,
    req: &Request,
) -> Result<FieldData> {
    let wanted = req.operation;
    {
        let mut values = Map::new();
        let mut defaults = HashMap::new();
        for field in &path.fields {
            if let Some(default) = &field.default {
                defaults.insert(field.name, default.clone());
            }
            // Path captures win over body fields of the same name, as the URL names the object.
            let value = captures
                .get(field.name)
                .or_else(|| req.data.get(field.name))
                .cloned();
            match value {
                Some(value) => {
                    validate_field(field, &value)?;
                    values.insert(field.name.to_owned(), value);
                }
                None if field.required
                    && matches!(wanted, Operation::Create | Operation::Update) =>
                {
                    return Err(Error::invalid(format!(
                        "missing required field {:?}",
                        field.name
                    )));
                }
                None => {}
            }
        }
        for (name, value) in captures {
            values.entry(name).or_insert(value);
        }
        Ok(FieldData { values, defaults })
    }
}

fn help_response(text: &str) -> Response {
    let mut data = Map::new();
    data.insert("help".to_owned(), Value::String(text.to_owned()));
    Response::with_data(data)
}

/// A framework backend bound to its state: what the router mounts.
pub struct Mounted<S> {
    pub state: Arc<S>,
    pub framework: Arc<FrameworkBackend<S>>,
}

#[async_trait]
impl<S: Send + Sync + 'static> LogicalBackend for Mounted<S> {
    async fn handle(&self, req: Request) -> Result<Option<Response>> {
        self.framework.handle(self.state.clone(), req).await
    }

    async fn exists(&self, req: &Request) -> Result<Option<bool>> {
        self.framework.exists(self.state.clone(), req).await
    }

    async fn renew_secret(&self, req: Request, secret: SecretLease) -> Result<Option<Response>> {
        self.framework
            .renew_secret(self.state.clone(), req, secret)
            .await
    }

    async fn revoke_secret(&self, req: Request, secret: SecretLease) -> Result<Vec<StorageChange>> {
        self.framework
            .revoke_secret(self.state.clone(), req, secret)
            .await
    }

    fn unauthenticated_paths(&self) -> Vec<String> {
        self.framework.unauthenticated_paths().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_prefixes_never_turn_away_a_matching_path() {
        let cases = [
            ("leases/revoke/?", "leases/revoke"),
            ("creds/(?P<name>\\w(([\\w\\-.]+)?\\w)?)", "creds/"),
            ("roles/?$", "roles"),
            ("config/(?P<name>.+)", "config/"),
            ("keys/?", "keys"),
            ("a*b", ""),
            ("tidy|tidy-status", ""),
            ("(?i)policy/(?P<name>.+)", ""),
            ("rotate-root/(?P<name>.+)", "rotate-root/"),
            ("über/x{1,2}", "über/"),
        ];
        let paths = [
            "leases/revoke",
            "leases/revoke/",
            "creds/app",
            "roles",
            "roles/",
            "config/db",
            "keys",
            "key",
            "b",
            "aab",
            "tidy",
            "tidy-status",
            "POLICY/x",
            "rotate-root/x",
            "über/x",
            "über/xx",
        ];
        for (pattern, expected) in cases {
            let prefix = literal_prefix(pattern);
            assert_eq!(prefix, expected, "{pattern}");
            let regex = Regex::new(&format!("^(?:{pattern})$")).unwrap();
            for path in paths {
                if regex.is_match(path) {
                    assert!(path.starts_with(&prefix), "{pattern} matches {path}");
                }
            }
        }
    }

    struct Echo;

    async fn echo(_: Arc<Echo>, _: Request, fields: FieldData) -> Result<Option<Response>> {
        let mut data = Map::new();
        data.insert("name".into(), Value::from(fields.string("name")));
        data.insert(
            "ttl".into(),
            Value::from(fields.duration("ttl").map(|d| d.as_secs())),
        );
        data.insert("list".into(), Value::from(fields.string_list("list")));
        Ok(Some(Response::with_data(data)))
    }

    fn backend() -> FrameworkBackend<Echo> {
        FrameworkBackend::new(
            "echo backend",
            vec![
                Path::new(format!("roles/{}", generic_name("name")))
                    .field(Field::new("name", FieldKind::String, "role name"))
                    .field(Field::new("ttl", FieldKind::Duration, "ttl").default_value(60.into()))
                    .field(Field::new("list", FieldKind::StringList, "a list"))
                    .operation(Operation::Read, handler(echo))
                    .operation(Operation::Update, handler(echo))
                    .help("Echo a role.", "Returns its fields."),
            ],
        )
    }

    fn request(operation: Operation, path: &str, data: Value) -> Request {
        let mut req = Request::new(operation, format!("echo/{path}"));
        req.mount_point = "echo/".into();
        if let Value::Object(map) = data {
            req.data = map;
        }
        req
    }

    async fn check(operation: Operation, path: &str, data: Value) -> Result<Value> {
        let res = backend()
            .handle(Arc::new(Echo), request(operation, path, data))
            .await?;
        let res = res.expect("echo always answers");
        Ok(serde_json::json!({"data": res.data, "warnings": res.warnings}))
    }

    #[tokio::test]
    async fn captures_defaults_and_coercion() {
        let out = check(
            Operation::Update,
            "roles/web-1",
            serde_json::json!({"list": "a, b", "ttl": "1h"}),
        )
        .await
        .unwrap();
        assert_eq!(out["data"]["name"], "web-1");
        assert_eq!(out["data"]["ttl"], 3600);
        assert_eq!(out["data"]["list"], serde_json::json!(["a", "b"]));
        let out = check(Operation::Read, "roles/x", serde_json::json!({}))
            .await
            .unwrap();
        assert_eq!(out["data"]["ttl"], 60);
    }

    #[tokio::test]
    async fn create_falls_back_to_update_and_unknown_fields_warn_on_responses() {
        let out = check(
            Operation::Create,
            "roles/x",
            serde_json::json!({"bogus": 1}),
        )
        .await
        .unwrap();
        assert_eq!(
            out["warnings"][0],
            "Endpoint ignored these unrecognized parameters: [bogus]"
        );
    }

    #[tokio::test]
    async fn errors_classify_the_failure() {
        let bad_type = check(
            Operation::Update,
            "roles/x",
            serde_json::json!({"ttl": "soon"}),
        )
        .await;
        assert!(matches!(bad_type, Err(Error::InvalidRequest(msg)) if msg.contains("ttl")));
        let no_route = check(Operation::Read, "nothing/here", serde_json::json!({})).await;
        assert!(matches!(no_route, Err(Error::UnsupportedPath)));
        let no_op = check(Operation::Delete, "roles/x", serde_json::json!({})).await;
        assert!(matches!(no_op, Err(Error::UnsupportedOperation)));
        let bad_name = check(Operation::Read, "roles/-x", serde_json::json!({})).await;
        assert!(matches!(bad_name, Err(Error::UnsupportedPath)));
    }

    #[tokio::test]
    async fn help_returns_synopsis() {
        let out = check(Operation::Help, "roles/x", serde_json::json!({}))
            .await
            .unwrap();
        assert!(
            out["data"]["help"]
                .as_str()
                .unwrap()
                .starts_with("Echo a role.")
        );
    }
}
