//! SecretIDs: generation (random or pushed by the client), listing, lookup and destruction by
//! value or by accessor, and the tidy that removes expired ones.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        Arc, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use base64::Engine;
use mayfly_sdk::{
    Error, Request, Response, Result, Storage, StorageExt,
    cidr::{Cidr, is_subset, parse_strict_list},
    framework::FieldData,
    token_fields::serde_secs,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    role::{RoleEntry, load_role, role_name, whole_seconds},
    sorted,
    state::{AccessorIndex, AppRole, SECRET_ID_PREFIX, read_accessor},
};

/// How Go renders the zero `time.Time`, which Vault returns for "never expires".
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// One SecretID's properties, stored under the keyed hash of the SecretID.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct SecretIdEntry {
    /// Kept alongside the key so a fetched entry can be checked against the presented
    /// SecretID in constant time.
    pub secret_id_hmac: String,
    pub secret_id_accessor: String,
    /// Uses left; zero means unlimited.
    pub secret_id_num_uses: u64,
    #[serde(with = "serde_secs")]
    pub secret_id_ttl: Duration,
    pub creation_time: String,
    pub expiration_time: Option<String>,
    pub last_updated_time: String,
    pub metadata: BTreeMap<String, String>,
    pub cidr_list: Vec<String>,
    pub token_bound_cidrs: Vec<String>,
}

impl SecretIdEntry {
    /// An unreadable expiry counts as expired, so corruption cannot make a SecretID immortal.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        match self.expiration_time.as_deref() {
            None => false,
            Some(text) => OffsetDateTime::parse(text, &Rfc3339).map_or(true, |exp| now > exp),
        }
    }

    fn to_json(&self) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert("cidr_list".into(), self.cidr_list.clone().into());
        data.insert("creation_time".into(), self.creation_time.clone().into());
        data.insert(
            "expiration_time".into(),
            self.expiration_time
                .clone()
                .unwrap_or_else(|| ZERO_TIME.to_owned())
                .into(),
        );
        data.insert(
            "last_updated_time".into(),
            self.last_updated_time.clone().into(),
        );
        data.insert(
            "metadata".into(),
            Value::Object(
                self.metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                    .collect(),
            ),
        );
        data.insert(
            "secret_id_accessor".into(),
            self.secret_id_accessor.clone().into(),
        );
        data.insert("secret_id_num_uses".into(), self.secret_id_num_uses.into());
        data.insert("secret_id_ttl".into(), self.secret_id_ttl.as_secs().into());
        data.insert(
            "token_bound_cidrs".into(),
            self.token_bound_cidrs.clone().into(),
        );
        sorted(data)
    }
}

pub(crate) fn format_time(time: OffsetDateTime) -> Result<String> {
    time.format(&Rfc3339)
        .map_err(|err| Error::internal(format!("cannot format a timestamp: {err}")))
}

pub(crate) fn secret_key(role_name_hmac: &str, secret_id_hmac: &str) -> String {
    format!("{SECRET_ID_PREFIX}{role_name_hmac}/{secret_id_hmac}")
}

fn role_missing(name: &str) -> Error {
    Error::invalid(format!("role {name:?} does not exist"))
}

/// Refuses SecretID CIDRs that reach outside the role's. A bare address on the role means
/// that one host.
pub(crate) fn verify_subset(role_blocks: &[String], secret_blocks: &[String]) -> Result<()> {
    if secret_blocks.is_empty() || role_blocks.is_empty() {
        return Ok(());
    }
    let outer: Option<Vec<Cidr>> = role_blocks
        .iter()
        .map(|block| Cidr::parse_lenient(block).ok())
        .collect();
    let inner = parse_strict_list(secret_blocks).ok();
    match (outer, inner) {
        (Some(outer), Some(inner)) if is_subset(&outer, &inner) => Ok(()),
        _ => Err(Error::invalid(format!(
            "failed to verify subset relationship between CIDR blocks on the role {role_blocks:?} \
             and CIDR blocks on the secret ID {secret_blocks:?}"
        ))),
    }
}

/// SecretID metadata: a JSON object, a JSON-encoded string (optionally base64-encoded), or
/// `key=value` pairs separated by commas, as Vault accepts it.
fn parse_metadata(raw: Option<&Value>) -> Result<BTreeMap<String, String>> {
    let fail = || {
        Error::invalid(
            "failed to parse metadata: failed to parse the input: invalid <key,value> format",
        )
    };
    let text = match raw {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(map)) => {
            return map
                .iter()
                .map(|(key, value)| match value {
                    Value::String(text) => Ok((key.clone(), text.clone())),
                    _ => Err(fail()),
                })
                .collect();
        }
        Some(Value::String(text)) => text.clone(),
        Some(_) => return Err(fail()),
    };
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let text = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or(text);
    if let Ok(map) = serde_json::from_str::<BTreeMap<String, String>>(&text) {
        return Ok(map);
    }
    let mut out = BTreeMap::new();
    for pair in text
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
    {
        let pair = pair.to_lowercase();
        let mut shards = pair.split('=');
        let (Some(key), Some(value), None) = (shards.next(), shards.next(), shards.next()) else {
            return Err(fail());
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() || value.is_empty() {
            return Err(fail());
        }
        out.insert(key.to_owned(), value.to_owned());
    }
    Ok(out)
}

pub(crate) async fn generate(
    state: Arc<AppRole>,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    create(&state, &req, &fields, mayfly_sdk::password::random_uuid()).await
}

pub(crate) async fn custom(
    state: Arc<AppRole>,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let secret_id = fields.string("secret_id").unwrap_or_default();
    create(&state, &req, &fields, secret_id).await
}

async fn create(
    state: &AppRole,
    req: &Request,
    fields: &FieldData,
    secret_id: String,
) -> Result<Option<Response>> {
    let name = role_name(fields)?;
    if secret_id.is_empty() {
        return Err(Error::invalid("missing secret_id"));
    }
    let storage = req.storage()?.as_ref();
    let _shared = state.role_lock.read().await;
    let Some(role) = load_role(storage, &name).await? else {
        return Err(Error::Coded {
            status: 404,
            message: format!("role {name:?} does not exist"),
        });
    };
    if !role.bind_secret_id {
        return Err(Error::invalid("bind_secret_id is not set on the role"));
    }

    let cidr_list = fields.string_list("cidr_list").unwrap_or_default();
    if !cidr_list.is_empty() {
        parse_strict_list(&cidr_list)
            .map_err(|_| Error::invalid("failed to validate CIDR blocks"))?;
    }
    verify_subset(&role.secret_id_bound_cidrs, &cidr_list)?;

    let token_bound_cidrs = fields.string_list("token_bound_cidrs").unwrap_or_default();
    if !token_bound_cidrs.is_empty() {
        parse_strict_list(&token_bound_cidrs)
            .map_err(|_| Error::invalid("failed to validate token CIDR blocks"))?;
    }
    verify_subset(&role.token.token_bound_cidrs, &token_bound_cidrs)?;

    // A SecretID may narrow the role's limits, never widen them.
    let num_uses = if fields.is_set("num_uses") {
        let uses = u64::try_from(fields.int("num_uses").unwrap_or(0))
            .map_err(|_| Error::invalid("num_uses cannot be negative"))?;
        let role_uses = role.secret_id_num_uses;
        if role_uses > 0 && (uses == 0 || uses > role_uses) {
            return Err(Error::invalid(
                "num_uses cannot be higher than the role's secret_id_num_uses",
            ));
        }
        uses
    } else {
        role.secret_id_num_uses
    };
    let mut ttl = if fields.is_set("ttl") {
        let ttl = whole_seconds(fields, "ttl");
        let role_ttl = role.secret_id_ttl;
        if !role_ttl.is_zero() && (ttl.is_zero() || ttl > role_ttl) {
            return Err(Error::invalid(
                "ttl cannot be longer than the role's secret_id_ttl",
            ));
        }
        ttl
    } else {
        role.secret_id_ttl
    };
    // The mount's maximum lease TTL caps every SecretID's lifetime.
    let max_lease = req.mount_ttls.max_lease_ttl;
    if !max_lease.is_zero() && ttl > max_lease {
        ttl = max_lease;
    }
    let metadata = parse_metadata(fields.raw("metadata"))?;

    let role_name_hmac = role.role_name_hmac()?;
    let secret_id_hmac = role.secret_id_hmac(&secret_id)?;
    let key = secret_key(&role_name_hmac, &secret_id_hmac);
    let _lock = state.lock_secret(&secret_id_hmac).await;
    if storage.get(&key).await?.is_some() {
        return Err(Error::invalid("SecretID is already registered"));
    }

    let now = state.now();
    let expiration = if ttl.is_zero() {
        None
    } else {
        Some(format_time(now + ttl)?)
    };
    let accessor = mayfly_sdk::password::random_uuid();
    let entry = SecretIdEntry {
        secret_id_hmac: secret_id_hmac.clone(),
        secret_id_accessor: accessor.clone(),
        secret_id_num_uses: num_uses,
        secret_id_ttl: ttl,
        creation_time: format_time(now)?,
        expiration_time: expiration,
        last_updated_time: format_time(now)?,
        metadata,
        cidr_list,
        token_bound_cidrs,
    };
    // The accessor index goes first: a SecretID without one is treated as revoked.
    let accessor_key = state.accessor_key(storage, &accessor).await?;
    storage
        .put_json(
            &accessor_key,
            &AccessorIndex {
                role_name_hmac,
                secret_id_hmac,
            },
        )
        .await?;
    storage.put_json(&key, &entry).await?;

    let mut data = Map::new();
    data.insert("secret_id".into(), secret_id.into());
    data.insert("secret_id_accessor".into(), accessor.into());
    data.insert("secret_id_num_uses".into(), num_uses.into());
    data.insert("secret_id_ttl".into(), ttl.as_secs().into());
    Ok(Some(Response::with_data(data)))
}

pub(crate) async fn list(
    _: Arc<AppRole>,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let name = role_name(&fields)?;
    let storage = req.storage()?.as_ref();
    let role = load_role(storage, &name)
        .await?
        .ok_or_else(|| role_missing(&name))?;
    let role_name_hmac = role.role_name_hmac()?;
    let mut accessors = Vec::new();
    for secret_id_hmac in storage
        .list(&format!("{SECRET_ID_PREFIX}{role_name_hmac}/"))
        .await?
    {
        let entry: Option<SecretIdEntry> = storage
            .get_json(&secret_key(&role_name_hmac, &secret_id_hmac))
            .await?;
        if let Some(entry) = entry {
            accessors.push(entry.secret_id_accessor);
        }
    }
    accessors.sort();
    Ok(Some(Response::list(accessors)))
}

fn secret_id_field(fields: &FieldData) -> Result<String> {
    let secret_id = fields.string("secret_id").unwrap_or_default();
    if secret_id.is_empty() {
        return Err(Error::invalid("missing secret_id"));
    }
    Ok(secret_id)
}

fn accessor_field(fields: &FieldData) -> Result<String> {
    let accessor = fields.string("secret_id_accessor").unwrap_or_default();
    if accessor.is_empty() {
        return Err(Error::invalid("missing secret_id_accessor"));
    }
    Ok(accessor)
}

pub(crate) async fn lookup(
    state: Arc<AppRole>,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let name = role_name(&fields)?;
    let secret_id = secret_id_field(&fields)?;
    let storage = req.storage()?.as_ref();
    let role = load_role(storage, &name)
        .await?
        .ok_or_else(|| role_missing(&name))?;
    let role_name_hmac = role.role_name_hmac()?;
    let secret_id_hmac = role.secret_id_hmac(&secret_id)?;
    let key = secret_key(&role_name_hmac, &secret_id_hmac);
    let _lock = state.lock_secret(&secret_id_hmac).await;
    let Some(entry) = storage.get_json::<SecretIdEntry>(&key).await? else {
        return Ok(None);
    };
    if read_accessor(&state, storage, &entry.secret_id_accessor)
        .await?
        .is_none()
    {
        storage.delete(&key).await?;
        return Err(Error::invalid("invalid secret id"));
    }
    Ok(Some(Response::with_data(entry.to_json())))
}

pub(crate) async fn destroy(
    state: Arc<AppRole>,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let name = role_name(&fields)?;
    let secret_id = secret_id_field(&fields)?;
    let storage = req.storage()?.as_ref();
    let role = load_role(storage, &name)
        .await?
        .ok_or_else(|| role_missing(&name))?;
    let role_name_hmac = role.role_name_hmac()?;
    let secret_id_hmac = role.secret_id_hmac(&secret_id)?;
    let key = secret_key(&role_name_hmac, &secret_id_hmac);
    let _lock = state.lock_secret(&secret_id_hmac).await;
    let Some(entry) = storage.get_json::<SecretIdEntry>(&key).await? else {
        return Ok(None);
    };
    remove(&state, storage, &key, &entry).await?;
    Ok(None)
}

/// Removes a SecretID and its accessor index. Callers hold the SecretID's lock.
pub(crate) async fn remove(
    state: &AppRole,
    storage: &dyn Storage,
    key: &str,
    entry: &SecretIdEntry,
) -> Result<()> {
    let accessor_key = state
        .accessor_key(storage, &entry.secret_id_accessor)
        .await?;
    storage.delete(&accessor_key).await?;
    storage.delete(key).await
}

/// The accessor's index entry, if it belongs to this role.
async fn accessor_of_role(
    state: &AppRole,
    storage: &dyn Storage,
    role: &RoleEntry,
    accessor: &str,
) -> Result<Option<AccessorIndex>> {
    let role_name_hmac = role.role_name_hmac()?;
    Ok(read_accessor(state, storage, accessor)
        .await?
        .filter(|index| index.role_name_hmac == role_name_hmac))
}

pub(crate) async fn accessor_lookup(
    state: Arc<AppRole>,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let name = role_name(&fields)?;
    let accessor = accessor_field(&fields)?;
    let storage = req.storage()?.as_ref();
    let role = load_role(storage, &name)
        .await?
        .ok_or_else(|| role_missing(&name))?;
    let Some(index) = accessor_of_role(&state, storage, &role, &accessor).await? else {
        // Vault answers 404 with the message in the data rather than as an error.
        let mut data = Map::new();
        data.insert(
            "error".into(),
            format!("failed to find accessor entry for secret_id_accessor: {accessor:?}").into(),
        );
        return Ok(Some(Response {
            status: Some(404),
            ..Response::with_data(data)
        }));
    };
    let _lock = state.lock_secret(&index.secret_id_hmac).await;
    let entry: Option<SecretIdEntry> = storage
        .get_json(&secret_key(&index.role_name_hmac, &index.secret_id_hmac))
        .await?;
    Ok(entry.map(|entry| Response::with_data(entry.to_json())))
}

pub(crate) async fn accessor_destroy(
    state: Arc<AppRole>,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let name = role_name(&fields)?;
    let accessor = accessor_field(&fields)?;
    let storage = req.storage()?.as_ref();
    let role = load_role(storage, &name)
        .await?
        .ok_or_else(|| role_missing(&name))?;
    let Some(index) = accessor_of_role(&state, storage, &role, &accessor).await? else {
        return Err(Error::invalid(format!(
            "failed to find accessor entry for secret_id_accessor: {accessor:?}"
        )));
    };
    let _lock = state.lock_secret(&index.secret_id_hmac).await;
    let key = secret_key(&index.role_name_hmac, &index.secret_id_hmac);
    let Some(entry) = storage.get_json::<SecretIdEntry>(&key).await? else {
        return Err(Error::invalid("invalid secret id accessor"));
    };
    remove(&state, storage, &key, &entry).await?;
    Ok(None)
}

/// Deletes every SecretID of a role (the role is being deleted).
pub(crate) async fn flush_role(
    state: &AppRole,
    storage: &dyn Storage,
    role: &RoleEntry,
) -> Result<()> {
    let role_name_hmac = role.role_name_hmac()?;
    for secret_id_hmac in storage
        .list(&format!("{SECRET_ID_PREFIX}{role_name_hmac}/"))
        .await?
    {
        let key = secret_key(&role_name_hmac, &secret_id_hmac);
        let _lock = state.lock_secret(&secret_id_hmac).await;
        match storage.get_json::<SecretIdEntry>(&key).await {
            Ok(Some(entry)) => remove(state, storage, &key, &entry).await?,
            // An unreadable entry still goes; its accessor is left for tidy.
            Ok(None) | Err(_) => storage.delete(&key).await?,
        }
    }
    Ok(())
}

const TIDY_STARTED: &str = "Tidy operation successfully started. Any information from the \
                            operation will be printed to Vault's server logs.";

pub(crate) async fn tidy(
    state: Arc<AppRole>,
    req: Request,
    _: FieldData,
) -> Result<Option<Response>> {
    let storage = req.storage()?.clone();
    if state.tidy_running.swap(true, Ordering::SeqCst) {
        return Ok(Some(Response {
            warnings: vec!["Tidy operation already in progress.".into()],
            ..Response::default()
        }));
    }
    // Tidy walks every SecretID; it runs in the background so the request returns at once.
    let task_state = state.clone();
    let task = tokio::spawn(async move {
        // Cleared on drop, so even a task that dies early lets the next tidy run.
        let _running = TidyFlag(task_state.tidy_running.clone());
        match tidy_all(&task_state, storage.as_ref()).await {
            Ok(removed) => tracing::info!(removed, "Tidied expired AppRole SecretIDs."),
            Err(err) => tracing::error!(error = %err, "Tidying AppRole SecretIDs failed."),
        }
    });
    *state
        .tidy_task
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(task);
    Ok(Some(Response {
        warnings: vec![TIDY_STARTED.into()],
        status: Some(202),
        ..Response::default()
    }))
}

/// Marks a tidy as running for as long as it lives.
struct TidyFlag(Arc<AtomicBool>);

impl Drop for TidyFlag {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Removes expired SecretIDs, SecretIDs without an accessor index, and accessor indexes
/// whose SecretID is gone. Returns how many entries it removed.
pub(crate) async fn tidy_all(state: &AppRole, storage: &dyn Storage) -> Result<usize> {
    let now = state.now();
    let mut removed = 0;
    let mut live_accessors = HashSet::new();
    for role_dir in storage.list(SECRET_ID_PREFIX).await? {
        let Some(role_name_hmac) = role_dir.strip_suffix('/') else {
            continue;
        };
        for secret_id_hmac in storage
            .list(&format!("{SECRET_ID_PREFIX}{role_dir}"))
            .await?
        {
            let key = secret_key(role_name_hmac, &secret_id_hmac);
            let _lock = state.lock_secret(&secret_id_hmac).await;
            let Some(entry) = storage.get_json::<SecretIdEntry>(&key).await? else {
                continue;
            };
            let accessor_key = state
                .accessor_key(storage, &entry.secret_id_accessor)
                .await?;
            if storage.get(&accessor_key).await?.is_none() {
                storage.delete(&key).await?;
                removed += 1;
            } else if entry.is_expired(now) {
                remove(state, storage, &key, &entry).await?;
                removed += 1;
            } else {
                live_accessors.insert(accessor_key);
            }
        }
    }
    for salted in storage.list(crate::state::ACCESSOR_PREFIX).await? {
        let accessor_key = format!("{}{salted}", crate::state::ACCESSOR_PREFIX);
        if live_accessors.contains(&accessor_key) {
            continue;
        }
        let Some(index) = storage.get_json::<AccessorIndex>(&accessor_key).await? else {
            continue;
        };
        // Creation writes the accessor before the SecretID under this lock, so holding it
        // rules out deleting the accessor of a SecretID being created.
        let _lock = state.lock_secret(&index.secret_id_hmac).await;
        let key = secret_key(&index.role_name_hmac, &index.secret_id_hmac);
        if storage.get(&key).await?.is_none() {
            storage.delete(&accessor_key).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_forms() {
        let map = |value: Value| parse_metadata(Some(&value));
        assert_eq!(
            map(json!("{\"env\":\"prod\"}")).unwrap(),
            BTreeMap::from([("env".to_owned(), "prod".to_owned())])
        );
        assert_eq!(
            map(json!({"env": "prod"})).unwrap(),
            BTreeMap::from([("env".to_owned(), "prod".to_owned())])
        );
        let encoded = base64::engine::general_purpose::STANDARD.encode("{\"a\":\"b\"}");
        assert_eq!(map(json!(encoded)).unwrap()["a"], "b");
        assert_eq!(map(json!("A=B, c=d")).unwrap()["a"], "b");
        assert!(map(json!("notjson")).is_err());
        assert!(map(json!({"n": 1})).is_err());
        assert!(map(json!("")).unwrap().is_empty());
        assert!(parse_metadata(None).unwrap().is_empty());
    }

    #[test]
    fn timestamps_render_like_go() {
        let at = time::macros::datetime!(2026-11-25 22:27:03.622950648 UTC);
        assert_eq!(format_time(at).unwrap(), "2026-11-25T22:27:03.622950648Z");
        let at = time::macros::datetime!(2026-11-25 22:27:03.5 UTC);
        assert_eq!(format_time(at).unwrap(), "2026-11-25T22:27:03.5Z");
    }

    #[test]
    fn subset_rules() {
        let role = vec!["10.0.0.0/8".to_owned(), "192.168.1.1".to_owned()];
        assert!(verify_subset(&role, &["10.1.0.0/16".to_owned()]).is_ok());
        assert!(verify_subset(&role, &["192.168.1.1/32".to_owned()]).is_ok());
        assert!(verify_subset(&role, &["11.0.0.0/8".to_owned()]).is_err());
        assert!(verify_subset(&[], &["11.0.0.0/8".to_owned()]).is_ok());
    }
}
