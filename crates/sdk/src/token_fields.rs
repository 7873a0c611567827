//! The `token_*` parameters every auth method's roles share (Vault's `tokenutil`): their field
//! declarations, parsing, read-back shape and how they shape the token a login asks for.
//!
//! Auth methods embed a [`TokenParams`] in their role (or user) entry, declare
//! [`token_fields`] on their role path, call [`TokenParams::update_from_fields`] on writes,
//! [`TokenParams::to_json`] on reads and [`TokenParams::apply_to_auth`] at login, so every
//! method accepts and returns these fields with the same names, types and validation.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    cidr::{Cidr, normalize_lenient_list, parse_remote_ip},
    error::{Error, Result},
    framework::{Field, FieldData, FieldKind},
    logical::Auth,
};

/// Durations persisted as whole seconds, the unit Vault's API reads and writes them in.
pub mod serde_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_secs)
    }
}

/// The kind of token a role issues. `Default` defers to the mount, which issues service
/// tokens unless tuned otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    #[default]
    Default,
    Service,
    Batch,
}

impl TokenType {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Default => "default",
            TokenType::Service => "service",
            TokenType::Batch => "batch",
        }
    }

    /// The concrete type a login asks the core for.
    pub fn for_auth(self) -> &'static str {
        match self {
            TokenType::Default | TokenType::Service => "service",
            TokenType::Batch => "batch",
        }
    }
}

/// The declarations of the shared `token_*` fields, to add to a role path.
pub fn token_fields() -> Vec<Field> {
    vec![
        Field::new(
            "token_bound_cidrs",
            FieldKind::StringList,
            "Comma separated string or JSON list of CIDR blocks. If set, specifies the blocks of \
             IP addresses which are allowed to use the generated token.",
        ),
        Field::new(
            "token_explicit_max_ttl",
            FieldKind::Duration,
            "If set, tokens created via this role carry an explicit maximum TTL that renewals \
             cannot pass.",
        ),
        Field::new(
            "token_max_ttl",
            FieldKind::Duration,
            "The maximum lifetime of the generated token",
        ),
        Field::new(
            "token_no_default_policy",
            FieldKind::Bool,
            "If true, the 'default' policy will not automatically be added to generated tokens",
        ),
        Field::new(
            "token_num_uses",
            FieldKind::Int,
            "The maximum number of times a token may be used, a value of zero means unlimited",
        ),
        Field::new(
            "token_period",
            FieldKind::Duration,
            "If set, tokens created via this role will have no max lifetime; instead, their \
             renewal period will be fixed to this value.",
        ),
        Field::new(
            "token_policies",
            FieldKind::StringList,
            "Comma-separated list of policies",
        ),
        Field::new(
            "token_strictly_bind_ip",
            FieldKind::Bool,
            "If true, the generated token is bound to the source IP address of the login request",
        ),
        Field::new(
            "token_type",
            FieldKind::String,
            "The type of token to generate, service or batch",
        ),
        Field::new(
            "token_ttl",
            FieldKind::Duration,
            "The initial ttl of the token to generate",
        ),
    ]
}

/// The token parameters of one role or user, as persisted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenParams {
    /// Normalized as Vault renders them: a host block is the bare address.
    pub token_bound_cidrs: Vec<String>,
    #[serde(with = "serde_secs")]
    pub token_explicit_max_ttl: Duration,
    #[serde(with = "serde_secs")]
    pub token_max_ttl: Duration,
    pub token_no_default_policy: bool,
    pub token_num_uses: u64,
    #[serde(with = "serde_secs")]
    pub token_period: Duration,
    pub token_policies: Vec<String>,
    pub token_strictly_bind_ip: bool,
    pub token_type: TokenType,
    #[serde(with = "serde_secs")]
    pub token_ttl: Duration,
}

/// A duration field in whole seconds, as Vault's `TypeDurationSecond` reads it.
fn whole_seconds(fields: &FieldData, name: &str) -> Duration {
    Duration::from_secs(fields.duration(name).unwrap_or_default().as_secs())
}

impl TokenParams {
    /// Parameters built from a request alone, with warnings for the client.
    pub fn from_fields(fields: &FieldData) -> Result<(TokenParams, Vec<String>)> {
        let mut params = TokenParams::default();
        let warnings = params.update_from_fields(fields)?;
        Ok((params, warnings))
    }

    /// Applies the fields the client supplied, leaving the others as they are, then checks
    /// the combination. Returns warnings to pass on to the client.
    pub fn update_from_fields(&mut self, fields: &FieldData) -> Result<Vec<String>> {
        let mut warnings = Vec::new();
        if fields.is_set("token_bound_cidrs") {
            let blocks = fields.string_list("token_bound_cidrs").unwrap_or_default();
            self.token_bound_cidrs = normalize_lenient_list(&blocks).map_err(Error::invalid)?;
        }
        if fields.is_set("token_explicit_max_ttl") {
            self.token_explicit_max_ttl = whole_seconds(fields, "token_explicit_max_ttl");
        }
        if fields.is_set("token_max_ttl") {
            self.token_max_ttl = whole_seconds(fields, "token_max_ttl");
        }
        if fields.is_set("token_no_default_policy") {
            self.token_no_default_policy = fields.bool("token_no_default_policy").unwrap_or(false);
        }
        if fields.is_set("token_period") {
            self.token_period = whole_seconds(fields, "token_period");
        }
        if fields.is_set("token_policies") {
            self.token_policies = fields.string_list("token_policies").unwrap_or_default();
        }
        if fields.is_set("token_strictly_bind_ip") {
            self.token_strictly_bind_ip = fields.bool("token_strictly_bind_ip").unwrap_or(false);
        }
        if fields.is_set("token_type") {
            let raw = fields.string("token_type").unwrap_or_default();
            self.token_type = match raw.as_str() {
                "" | "default" => TokenType::Default,
                "service" => TokenType::Service,
                "batch" => TokenType::Batch,
                // Token-store roles accept these; here they only mean the concrete type.
                "default-service" => {
                    warnings
                        .push("default-service has no useful meaning; adjusting to service".into());
                    TokenType::Service
                }
                "default-batch" => {
                    warnings.push("default-batch has no useful meaning; adjusting to batch".into());
                    TokenType::Batch
                }
                other => {
                    return Err(Error::invalid(format!(
                        "invalid 'token_type' value {other:?}"
                    )));
                }
            };
        }
        if fields.is_set("token_num_uses") {
            let uses = fields.int("token_num_uses").unwrap_or(0);
            self.token_num_uses = u64::try_from(uses)
                .map_err(|_| Error::invalid("'token_num_uses' cannot be negative"))?;
        }
        if fields.is_set("token_ttl") {
            self.token_ttl = whole_seconds(fields, "token_ttl");
        }
        self.validate()?;
        Ok(warnings)
    }

    /// The combination rules Vault enforces on every write.
    pub fn validate(&self) -> Result<()> {
        if self.token_type == TokenType::Batch {
            if !self.token_period.is_zero() {
                return Err(Error::invalid(
                    "'token_type' cannot be 'batch' or 'default_batch' when set to generate \
                     periodic tokens",
                ));
            }
            if self.token_num_uses != 0 {
                return Err(Error::invalid(
                    "'token_type' cannot be 'batch' or 'default_batch' when set to generate \
                     tokens with limited use count",
                ));
            }
        }
        if !self.token_ttl.is_zero()
            && !self.token_max_ttl.is_zero()
            && self.token_ttl > self.token_max_ttl
        {
            return Err(Error::invalid(
                "'token_ttl' cannot be greater than 'token_max_ttl'",
            ));
        }
        Ok(())
    }

    /// Adds the fields to a read response: durations as integer seconds, lists never null.
    pub fn to_json(&self, data: &mut Map<String, Value>) {
        let secs = |d: Duration| Value::from(d.as_secs());
        data.insert(
            "token_bound_cidrs".into(),
            Value::from(self.token_bound_cidrs.clone()),
        );
        data.insert(
            "token_explicit_max_ttl".into(),
            secs(self.token_explicit_max_ttl),
        );
        data.insert("token_max_ttl".into(), secs(self.token_max_ttl));
        data.insert(
            "token_no_default_policy".into(),
            Value::from(self.token_no_default_policy),
        );
        data.insert("token_num_uses".into(), Value::from(self.token_num_uses));
        data.insert("token_period".into(), secs(self.token_period));
        data.insert(
            "token_policies".into(),
            Value::from(self.token_policies.clone()),
        );
        data.insert(
            "token_strictly_bind_ip".into(),
            Value::from(self.token_strictly_bind_ip),
        );
        data.insert("token_type".into(), Value::from(self.token_type.as_str()));
        data.insert("token_ttl".into(), secs(self.token_ttl));
    }

    /// Shapes the token a login asks for. `remote_addr` is the login's client address, used
    /// when the token must be bound to it.
    pub fn apply_to_auth(&self, auth: &mut Auth, remote_addr: Option<&str>) {
        auth.bound_cidrs = self.token_bound_cidrs.clone();
        if self.token_strictly_bind_ip
            && let Some(ip) = remote_addr.and_then(parse_remote_ip)
        {
            auth.bound_cidrs = vec![Cidr::host(ip).to_string()];
        }
        auth.explicit_max_ttl = self.token_explicit_max_ttl;
        auth.max_ttl = self.token_max_ttl;
        auth.no_default_policy = self.token_no_default_policy;
        auth.period = self.token_period;
        auth.policies = self.token_policies.clone();
        auth.token_policies = self.token_policies.clone();
        auth.renewable = true;
        auth.token_type = self.token_type.for_auth().to_owned();
        auth.ttl = self.token_ttl;
        auth.num_uses = self.token_num_uses;
    }

    /// On renewal the token follows the role's current lifetimes.
    pub fn apply_to_renewal(&self, auth: &mut Auth) {
        auth.ttl = self.token_ttl;
        auth.max_ttl = self.token_max_ttl;
        auth.period = self.token_period;
    }
}

/// A deprecated spelling of a token field that some auth methods still accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyField {
    /// `policies` → `token_policies`
    Policies,
    /// `period` → `token_period`
    Period,
    /// `ttl` → `token_ttl`
    Ttl,
    /// `max_ttl` → `token_max_ttl`
    MaxTtl,
    /// `bound_cidrs` → `token_bound_cidrs`
    BoundCidrs,
}

impl LegacyField {
    pub fn name(self) -> &'static str {
        match self {
            LegacyField::Policies => "policies",
            LegacyField::Period => "period",
            LegacyField::Ttl => "ttl",
            LegacyField::MaxTtl => "max_ttl",
            LegacyField::BoundCidrs => "bound_cidrs",
        }
    }

    pub fn replacement(self) -> &'static str {
        match self {
            LegacyField::Policies => "token_policies",
            LegacyField::Period => "token_period",
            LegacyField::Ttl => "token_ttl",
            LegacyField::MaxTtl => "token_max_ttl",
            LegacyField::BoundCidrs => "token_bound_cidrs",
        }
    }

    pub fn field(self) -> Field {
        let kind = match self {
            LegacyField::Policies | LegacyField::BoundCidrs => FieldKind::StringList,
            LegacyField::Period | LegacyField::Ttl | LegacyField::MaxTtl => FieldKind::Duration,
        };
        let description = match self {
            LegacyField::Policies => "Use \"token_policies\" instead.",
            LegacyField::Period => "Use \"token_period\" instead.",
            LegacyField::Ttl => "Use \"token_ttl\" instead.",
            LegacyField::MaxTtl => "Use \"token_max_ttl\" instead.",
            LegacyField::BoundCidrs => "Use \"token_bound_cidrs\" instead.",
        };
        Field::new(self.name(), kind, description)
    }
}

/// The values last written through deprecated field names. Vault echoes a deprecated field
/// on read only while it was the way the value was set, so it is remembered separately.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LegacyTokenParams {
    pub policies: Vec<String>,
    #[serde(with = "serde_secs")]
    pub period: Duration,
    #[serde(with = "serde_secs")]
    pub ttl: Duration,
    #[serde(with = "serde_secs")]
    pub max_ttl: Duration,
    pub bound_cidrs: Vec<String>,
}

impl LegacyTokenParams {
    pub fn fields(which: &[LegacyField]) -> Vec<Field> {
        which.iter().map(|legacy| legacy.field()).collect()
    }

    /// Vault's upgrade rule for each deprecated name: the new name wins; the old name sets
    /// both when given alone; giving only the new name forgets the old value.
    pub fn upgrade(
        &mut self,
        token: &mut TokenParams,
        fields: &FieldData,
        which: &[LegacyField],
    ) -> Result<()> {
        for &legacy in which {
            let new_set = fields.is_set(legacy.replacement());
            let old_set = fields.is_set(legacy.name());
            match (new_set, old_set) {
                (false, false) => {}
                (false, true) => self.take_legacy(token, fields, legacy)?,
                (true, true) => self.copy_current(token, legacy),
                (true, false) => self.forget(legacy),
            }
        }
        Ok(())
    }

    fn take_legacy(
        &mut self,
        token: &mut TokenParams,
        fields: &FieldData,
        legacy: LegacyField,
    ) -> Result<()> {
        let name = legacy.name();
        match legacy {
            LegacyField::Policies => {
                self.policies = parse_policies(&fields.string_list(name).unwrap_or_default());
                token.token_policies = self.policies.clone();
            }
            LegacyField::Period => {
                self.period = whole_seconds(fields, name);
                token.token_period = self.period;
            }
            LegacyField::Ttl => {
                self.ttl = whole_seconds(fields, name);
                token.token_ttl = self.ttl;
            }
            LegacyField::MaxTtl => {
                self.max_ttl = whole_seconds(fields, name);
                token.token_max_ttl = self.max_ttl;
            }
            LegacyField::BoundCidrs => {
                let blocks = fields.string_list(name).unwrap_or_default();
                self.bound_cidrs = normalize_lenient_list(&blocks).map_err(Error::invalid)?;
                token.token_bound_cidrs = self.bound_cidrs.clone();
            }
        }
        Ok(())
    }

    fn copy_current(&mut self, token: &TokenParams, legacy: LegacyField) {
        match legacy {
            LegacyField::Policies => self.policies = token.token_policies.clone(),
            LegacyField::Period => self.period = token.token_period,
            LegacyField::Ttl => self.ttl = token.token_ttl,
            LegacyField::MaxTtl => self.max_ttl = token.token_max_ttl,
            LegacyField::BoundCidrs => self.bound_cidrs = token.token_bound_cidrs.clone(),
        }
    }

    pub fn forget(&mut self, legacy: LegacyField) {
        match legacy {
            LegacyField::Policies => self.policies.clear(),
            LegacyField::Period => self.period = Duration::ZERO,
            LegacyField::Ttl => self.ttl = Duration::ZERO,
            LegacyField::MaxTtl => self.max_ttl = Duration::ZERO,
            LegacyField::BoundCidrs => self.bound_cidrs.clear(),
        }
    }

    /// Adds the deprecated names that are in use to a read response.
    pub fn to_json(&self, data: &mut Map<String, Value>) {
        if !self.policies.is_empty() {
            data.insert("policies".into(), Value::from(self.policies.clone()));
        }
        if !self.period.is_zero() {
            data.insert("period".into(), Value::from(self.period.as_secs()));
        }
        if !self.ttl.is_zero() {
            data.insert("ttl".into(), Value::from(self.ttl.as_secs()));
        }
        if !self.max_ttl.is_zero() {
            data.insert("max_ttl".into(), Value::from(self.max_ttl.as_secs()));
        }
        if !self.bound_cidrs.is_empty() {
            data.insert("bound_cidrs".into(), Value::from(self.bound_cidrs.clone()));
        }
    }
}

/// Vault's policy-list clean-up for the deprecated `policies` fields: trimmed, lower-cased,
/// de-duplicated and sorted; `root` swallows everything else.
pub fn parse_policies(raw: &[String]) -> Vec<String> {
    let mut policies: Vec<String> = raw
        .iter()
        .map(|policy| policy.trim().to_lowercase())
        .filter(|policy| !policy.is_empty())
        .collect();
    policies.sort();
    policies.dedup();
    if policies.iter().any(|policy| policy == "root") {
        return vec!["root".to_owned()];
    }
    policies
}

/// Whether two policy sets grant the same thing, ignoring order, duplicates and `default`.
pub fn equivalent_policies(left: &[String], right: &[String]) -> bool {
    fn clean(list: &[String]) -> Vec<&str> {
        let mut out: Vec<&str> = list
            .iter()
            .map(String::as_str)
            .filter(|policy| *policy != "default")
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
    clean(left) == clean(right)
}

/// The display name of a login token, as Vault derives it: the mount path without `auth/`,
/// slashes turned into dashes, then the method's own name (`userpass-alice`, `approle`).
pub fn login_display_name(mount_point: &str, name: &str) -> String {
    let source = mount_point
        .strip_prefix("auth/")
        .unwrap_or(mount_point)
        .replace('/', "-");
    let full = format!("{source}{name}");
    match full.strip_suffix('-') {
        Some(trimmed) => trimmed.to_owned(),
        None => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Operation, Request, Response,
        framework::{FrameworkBackend, Path, handler},
    };
    use serde_json::json;
    use std::sync::Arc;

    struct Capture;

    async fn capture(_: Arc<Capture>, _: Request, fields: FieldData) -> Result<Option<Response>> {
        let mut token = TokenParams {
            token_policies: vec!["keep".into()],
            ..TokenParams::default()
        };
        let mut legacy = LegacyTokenParams::default();
        let warnings = token.update_from_fields(&fields)?;
        legacy.upgrade(
            &mut token,
            &fields,
            &[LegacyField::Policies, LegacyField::Ttl],
        )?;
        let mut data = Map::new();
        token.to_json(&mut data);
        legacy.to_json(&mut data);
        Ok(Some(Response {
            warnings,
            ..Response::with_data(data)
        }))
    }

    async fn run(body: Value) -> Result<Response> {
        let mut path = Path::new("role")
            .operation(Operation::Update, handler(capture))
            .help("", "");
        for field in token_fields()
            .into_iter()
            .chain(LegacyTokenParams::fields(&[
                LegacyField::Policies,
                LegacyField::Ttl,
            ]))
        {
            path = path.field(field);
        }
        let backend = FrameworkBackend::new("test", vec![path]);
        let mut req = Request::new(Operation::Update, "auth/x/role");
        req.mount_point = "auth/x/".into();
        if let Value::Object(map) = body {
            req.data = map;
        }
        backend
            .handle(Arc::new(Capture), req)
            .await
            .map(|res| res.unwrap_or_default())
    }

    #[tokio::test]
    async fn parses_and_renders_with_vault_types() {
        let res = run(json!({
            "token_ttl": "1h", "token_max_ttl": 7200, "token_bound_cidrs": "127.0.0.1/32,10.0.0.0/8",
            "token_num_uses": 3, "token_type": "default-service"
        }))
        .await
        .unwrap();
        let data = Value::Object(res.data.unwrap());
        assert_eq!(data["token_ttl"], 3600);
        assert_eq!(data["token_max_ttl"], 7200);
        assert_eq!(
            data["token_bound_cidrs"],
            json!(["127.0.0.1", "10.0.0.0/8"])
        );
        assert_eq!(
            data["token_policies"],
            json!(["keep"]),
            "untouched when absent"
        );
        assert_eq!(data["token_type"], "service");
        assert_eq!(data["token_num_uses"], 3);
        assert!(data.get("policies").is_none());
        assert_eq!(res.warnings.len(), 1);
    }

    #[tokio::test]
    async fn rejects_invalid_combinations() {
        for (body, message) in [
            (json!({"token_type": "bogus"}), "invalid 'token_type'"),
            (
                json!({"token_type": "batch", "token_period": 5}),
                "periodic",
            ),
            (
                json!({"token_ttl": 50, "token_max_ttl": 10}),
                "cannot be greater",
            ),
            (json!({"token_num_uses": -1}), "negative"),
            (json!({"token_bound_cidrs": "bogus"}), "bogus"),
        ] {
            match run(body).await {
                Err(Error::InvalidRequest(text)) => assert!(text.contains(message), "{text}"),
                other => panic!("expected an invalid request, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn legacy_names_upgrade_like_vault() {
        let res = run(json!({"policies": "B,a,a", "ttl": 60})).await.unwrap();
        let data = Value::Object(res.data.unwrap());
        assert_eq!(data["policies"], json!(["a", "b"]));
        assert_eq!(data["token_policies"], json!(["a", "b"]));
        assert_eq!(data["ttl"], 60);
        assert_eq!(data["token_ttl"], 60);
        let res = run(json!({"token_policies": "x", "policies": "y"}))
            .await
            .unwrap();
        let data = Value::Object(res.data.unwrap());
        assert_eq!(data["token_policies"], json!(["x"]));
        assert_eq!(data["policies"], json!(["x"]));
    }

    #[test]
    fn auth_gets_the_token_shape() {
        let params = TokenParams {
            token_policies: vec!["a".into()],
            token_ttl: Duration::from_secs(60),
            token_strictly_bind_ip: true,
            ..TokenParams::default()
        };
        let mut auth = Auth::default();
        params.apply_to_auth(&mut auth, Some("192.0.2.7"));
        assert_eq!(auth.policies, ["a"]);
        assert_eq!(auth.token_policies, ["a"]);
        assert_eq!(auth.ttl, Duration::from_secs(60));
        assert!(auth.renewable);
        assert_eq!(auth.token_type, "service");
        assert_eq!(auth.bound_cidrs, ["192.0.2.7"]);
    }

    #[test]
    fn helpers() {
        assert_eq!(login_display_name("auth/approle/", ""), "approle");
        assert_eq!(
            login_display_name("auth/userpass/", "alice"),
            "userpass-alice"
        );
        assert_eq!(login_display_name("auth/a/b/", "x"), "a-b-x");
        assert_eq!(
            parse_policies(&["root".into(), "x".into()]),
            vec!["root".to_owned()]
        );
        assert!(equivalent_policies(
            &["b".into(), "a".into(), "default".into()],
            &["a".into(), "b".into()]
        ));
        assert!(!equivalent_policies(&["a".into()], &["b".into()]));
    }
}
