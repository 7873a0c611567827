//! Static roles: `static-roles/:name`, `static-creds/:name` and `rotate-role/:name`. An
//! existing database user whose password Mayfly rotates on a period.
//!
//! A rotation writes the new password ahead (`wal/static/<role>`) before changing it in the
//! database, then stores the role and deletes the entry. A rotation that fails or is cut
//! short leaves the entry; the next attempt reuses its password, so whether or not the
//! database took it, the role ends with the password the database has.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use mayfly_sdk::{
    Error, Operation, Request, Response, Result, Storage, StorageExt, SystemView,
    framework::{Field, FieldData, FieldKind, Path, existence, generic_name, handler},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    intent::unix_now,
    plugin::{UpdateUserRequest, UserChange},
    role::role_name,
    schedule::Schedule,
    sorted,
    state::{Database, ROLE_PREFIX, STATIC_ROLE_PREFIX, missing_connection, plugin_error},
    statements,
};

const WAL_PREFIX: &str = "wal/static/";
/// Vault polls its rotation queue this often, hence the shortest period it accepts.
pub(crate) const MIN_ROTATION_PERIOD: Duration = Duration::from_secs(5);
/// A failed rotation is tried again after this long.
const RETRY_AFTER: Duration = Duration::from_secs(10);
/// Vault's shortest `rotation_window`.
const MIN_ROTATION_WINDOW: Duration = Duration::from_secs(3600);

/// A static role, stored at `static-role/<name>`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct StaticRole {
    pub db_name: String,
    pub username: String,
    /// The current password; only ever returned by `static-creds`.
    #[serde(default)]
    pub password: String,
    /// Seconds; zero when the role rotates on `rotation_schedule`.
    pub rotation_period: u64,
    /// Cron schedule (UTC); empty when the role rotates on `rotation_period`.
    #[serde(default)]
    pub rotation_schedule: String,
    /// Seconds after a scheduled time during which the rotation may still run; zero: any
    /// time until the next scheduled time.
    #[serde(default)]
    pub rotation_window: u64,
    #[serde(default)]
    pub rotation_statements: Vec<String>,
    #[serde(default = "password_type")]
    pub credential_type: String,
    /// Unix seconds and nanoseconds of the last rotation.
    #[serde(default)]
    pub last_vault_rotation: Option<(u64, u32)>,
}

fn password_type() -> String {
    "password".to_owned()
}

/// The password a rotation is about to set, written before the database is touched.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct StaticWal {
    role: String,
    username: String,
    new_password: String,
    created_at: u64,
}

/// When failed rotations may be tried again, per role.
#[derive(Default)]
pub(crate) struct RetryTimes(Mutex<HashMap<String, SystemTime>>);

impl RetryTimes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SystemTime>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl StaticRole {
    fn last_rotation(&self) -> Option<SystemTime> {
        self.last_vault_rotation
            .map(|(secs, nanos)| SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
    }

    fn schedule(&self) -> Option<Schedule> {
        if self.rotation_schedule.is_empty() {
            return None;
        }
        Schedule::parse(&self.rotation_schedule).ok()
    }

    /// Whether a rotation is due at `now`: the period has passed since the last one, or a
    /// scheduled time passed since the last one and its window (if any) is still open.
    fn is_due(&self, now: SystemTime) -> bool {
        let last = self.last_rotation().unwrap_or(SystemTime::UNIX_EPOCH);
        match self.schedule() {
            None => last + Duration::from_secs(self.rotation_period) <= now,
            Some(schedule) => {
                let Some(scheduled) = schedule.last_at_or_before(to_offset(now)) else {
                    return false;
                };
                let scheduled = SystemTime::from(scheduled);
                scheduled > last
                    && (self.rotation_window == 0
                        || now < scheduled + Duration::from_secs(self.rotation_window))
            }
        }
    }

    /// When the next rotation will happen, as far as it can be known now.
    fn next_rotation(&self, now: SystemTime) -> SystemTime {
        match self.schedule() {
            None => {
                self.last_rotation().unwrap_or(SystemTime::UNIX_EPOCH)
                    + Duration::from_secs(self.rotation_period)
            }
            Some(schedule) => schedule
                .next_after(to_offset(now))
                .map_or(now, SystemTime::from),
        }
    }

    /// Seconds until the next rotation, never negative.
    fn ttl(&self) -> u64 {
        let now = SystemTime::now();
        self.next_rotation(now)
            .duration_since(now)
            .map(|d| d.as_secs_f64().round() as u64)
            .unwrap_or(0)
    }

    /// The rotation fields of `read` and `static-creds`: the period, or the schedule and
    /// window, whichever the role uses.
    fn rotation_fields(&self, data: &mut Value) {
        if self.rotation_schedule.is_empty() {
            data["rotation_period"] = json!(self.rotation_period);
        } else {
            data["rotation_schedule"] = json!(self.rotation_schedule);
            if self.rotation_window != 0 {
                data["rotation_window"] = json!(self.rotation_window);
            }
        }
    }

    fn rotated_at_rfc3339(&self) -> Option<String> {
        let (secs, nanos) = self.last_vault_rotation?;
        let time = time::OffsetDateTime::from_unix_timestamp(secs as i64)
            .ok()?
            .replace_nanosecond(nanos)
            .ok()?;
        time.format(&time::format_description::well_known::Rfc3339)
            .ok()
    }
}

pub(crate) async fn load(storage: &dyn Storage, name: &str) -> Result<Option<StaticRole>> {
    storage
        .get_json(&format!("{STATIC_ROLE_PREFIX}{name}"))
        .await
}

pub(crate) fn paths() -> Vec<Path<Database>> {
    let name = || Field::new("name", FieldKind::String, "Name of the static role.");
    vec![
        Path::new("static-roles/?")
            .operation(Operation::List, handler(list))
            .help(
                "Manage the static roles that can be created with this backend.",
                "Lists the static roles.",
            ),
        Path::new(format!("static-roles/{}", generic_name("name")))
            .field(name())
            .field(Field::new(
                "db_name",
                FieldKind::String,
                "Name of the database this role acts on.",
            ))
            .field(Field::new(
                "username",
                FieldKind::String,
                "Name of the static user account for Mayfly to manage.",
            ))
            .field(Field::new(
                "rotation_period",
                FieldKind::Duration,
                "Period for automatic credential rotation of the given username.",
            ))
            .field(Field::new(
                "rotation_schedule",
                FieldKind::String,
                "Schedule for automatic rotation, in cron format (UTC).",
            ))
            .field(Field::new(
                "rotation_window",
                FieldKind::Duration,
                "How long after a scheduled time the rotation may still happen (with \
                 rotation_schedule).",
            ))
            .field(Field::new(
                "rotation_statements",
                FieldKind::Raw,
                "Statements to be executed to rotate the account's credentials.",
            ))
            .field(
                Field::new(
                    "credential_type",
                    FieldKind::String,
                    "The type of credential to manage. Only 'password' is supported.",
                )
                .default_value(json!("password")),
            )
            .field(Field::new(
                "credential_config",
                FieldKind::Raw,
                "The configuration for the given credential_type.",
            ))
            .existence_check(existence(exists))
            .operation(Operation::Read, handler(read))
            .operation(Operation::Create, handler(write))
            .operation(Operation::Update, handler(write))
            .operation(Operation::Delete, handler(delete))
            .help(
                "Manage the static roles that can be created with this backend.",
                "A static role manages the password of one existing database user, rotating \
                 it every rotation_period. Creating the role rotates the password at once.",
            ),
        Path::new(format!("static-creds/{}", generic_name("name")))
            .field(name())
            .operation(Operation::Read, handler(creds))
            .help(
                "Request database credentials for a certain static role.",
                "Returns the static account's current password; it stays the same until the \
                 next rotation.",
            ),
        Path::new(format!("rotate-role/{}", generic_name("name")))
            .field(name())
            .operation(Operation::Update, handler(rotate_now))
            .help(
                "Request to rotate the credentials for a static user account.",
                "Rotates the static account's password now.",
            ),
    ]
}

async fn exists(_: Arc<Database>, req: Request, fields: FieldData) -> Result<bool> {
    Ok(load(req.storage()?.as_ref(), &role_name(&fields)?)
        .await?
        .is_some())
}

async fn list(_: Arc<Database>, req: Request, _: FieldData) -> Result<Option<Response>> {
    Ok(Some(Response::list(
        req.storage()?.list(STATIC_ROLE_PREFIX).await?,
    )))
}

async fn read(_: Arc<Database>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let Some(role) = load(req.storage()?.as_ref(), &role_name(&fields)?).await? else {
        return Ok(None);
    };
    let mut data = json!({
        "db_name": role.db_name,
        "username": role.username,
        "rotation_statements": role.rotation_statements,
        "credential_type": role.credential_type,
    });
    role.rotation_fields(&mut data);
    if let Some(at) = role.rotated_at_rfc3339() {
        data["last_vault_rotation"] = Value::String(at);
    }
    let Value::Object(data) = data else {
        return Err(Error::internal("static role response is not an object"));
    };
    Ok(Some(Response::with_data(sorted(data))))
}

async fn write(state: Arc<Database>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let name = role_name(&fields)?;
    let storage = req.storage()?.clone();
    let _rotations = state.static_rotations.lock().await;
    if storage
        .get(&format!("{ROLE_PREFIX}{name}"))
        .await?
        .is_some()
    {
        return Err(Error::invalid("Role and Static Role names must be unique"));
    }
    let existing = load(storage.as_ref(), &name).await?;
    let create = existing.is_none();
    let mut role = existing.unwrap_or_default();
    if role.credential_type.is_empty() {
        role.credential_type = password_type();
    }
    if fields.is_set("db_name") || create {
        role.db_name = fields.string("db_name").unwrap_or_default();
    }
    if role.db_name.is_empty() {
        return Err(Error::invalid("database name is a required field"));
    }
    let username = fields.string("username").unwrap_or_default();
    if create {
        if username.is_empty() {
            return Err(Error::invalid(
                "username is a required field to create a static account",
            ));
        }
        crate::statements::check_substitution("username", &username).map_err(Error::invalid)?;
        role.username = username;
    } else if fields.is_set("username") && username != role.username {
        return Err(Error::invalid("cannot update static account username"));
    }
    apply_rotation_fields(&mut role, &fields, create)?;
    if fields.is_set("rotation_statements") || create {
        let value = fields
            .raw("rotation_statements")
            .cloned()
            .unwrap_or(Value::Null);
        role.rotation_statements = statements::from_value(&value).ok_or_else(|| {
            Error::invalid("rotation_statements must be a string or a list of strings")
        })?;
    }
    if fields.is_set("credential_type") {
        match fields
            .string("credential_type")
            .unwrap_or_default()
            .as_str()
        {
            "password" => role.credential_type = password_type(),
            other => return Err(Error::invalid(format!("invalid credential_type {other:?}"))),
        }
    }
    if create {
        // Mayfly must know the password: creating the role sets a new one now.
        rotate(
            &state,
            storage.as_ref(),
            req.system()?.as_ref(),
            &name,
            role,
        )
        .await?;
    } else {
        storage
            .put_json(&format!("{STATIC_ROLE_PREFIX}{name}"), &role)
            .await?;
    }
    Ok(None)
}

/// `rotation_period` or `rotation_schedule` (with `rotation_window`): exactly one of them,
/// checked as Vault does; setting one on update replaces the other.
fn apply_rotation_fields(role: &mut StaticRole, fields: &FieldData, create: bool) -> Result<()> {
    let period = fields
        .duration("rotation_period")
        .filter(|_| fields.is_set("rotation_period"));
    let schedule = fields
        .string("rotation_schedule")
        .filter(|_| fields.is_set("rotation_schedule"))
        .filter(|schedule| !schedule.is_empty());
    let window = fields
        .duration("rotation_window")
        .filter(|_| fields.is_set("rotation_window"));
    match (period, &schedule) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "mutually exclusive fields rotation_period and rotation_schedule were both \
                 specified; only one of them can be provided",
            ));
        }
        (None, None) if create => {
            return Err(Error::invalid(
                "one of rotation_schedule or rotation_period must be provided to create a \
                 static account",
            ));
        }
        (Some(period), None) => {
            if period < MIN_ROTATION_PERIOD {
                return Err(Error::invalid(format!(
                    "rotation_period must be {} seconds or more",
                    MIN_ROTATION_PERIOD.as_secs()
                )));
            }
            role.rotation_period = period.as_secs();
            role.rotation_schedule.clear();
            role.rotation_window = 0;
        }
        (None, Some(text)) => {
            Schedule::parse(text).map_err(|err| {
                Error::invalid(format!("could not parse rotation_schedule: {err}"))
            })?;
            role.rotation_schedule = text.clone();
            role.rotation_period = 0;
        }
        (None, None) => {}
    }
    if let Some(window) = window {
        if role.rotation_schedule.is_empty() {
            return Err(Error::invalid(
                "rotation_window is invalid with use of rotation_period",
            ));
        }
        if window < MIN_ROTATION_WINDOW {
            return Err(Error::invalid(format!(
                "rotation_window must be {} seconds or more",
                MIN_ROTATION_WINDOW.as_secs()
            )));
        }
        role.rotation_window = window.as_secs();
    }
    Ok(())
}

/// A generated password that can go into rotation statements.
pub(crate) fn safe_password(password: String) -> Result<String> {
    crate::statements::check_substitution("generated password", &password).map_err(|err| {
        Error::invalid(format!(
            "{err}; remove it from the password policy's charsets"
        ))
    })?;
    Ok(password)
}

fn to_offset(at: SystemTime) -> time::OffsetDateTime {
    time::OffsetDateTime::from(at)
}

async fn delete(state: Arc<Database>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let name = role_name(&fields)?;
    let storage = req.storage()?;
    let _rotations = state.static_rotations.lock().await;
    // The database user is left as it is, as Vault does.
    storage
        .delete(&format!("{STATIC_ROLE_PREFIX}{name}"))
        .await?;
    storage.delete(&format!("{WAL_PREFIX}{name}")).await?;
    state.static_retries.lock().remove(&name);
    Ok(None)
}

async fn creds(state: Arc<Database>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let name = role_name(&fields)?;
    let storage = req.storage()?;
    let role = load(storage.as_ref(), &name)
        .await?
        .ok_or_else(|| Error::invalid(format!("unknown role: {name}")))?;
    let config = state
        .config(storage.as_ref(), &role.db_name)
        .await?
        .ok_or_else(|| missing_connection(&role.db_name))?;
    if !config.allows_role(&name) {
        return Err(Error::Coded {
            status: 500,
            message: format!("{name:?} is not an allowed role"),
        });
    }
    let mut data = json!({
        "username": role.username,
        "password": role.password,
        "ttl": role.ttl(),
    });
    role.rotation_fields(&mut data);
    if let Some(at) = role.rotated_at_rfc3339() {
        data["last_vault_rotation"] = Value::String(at);
    }
    let Value::Object(data) = data else {
        return Err(Error::internal("static creds response is not an object"));
    };
    Ok(Some(Response::with_data(sorted(data))))
}

async fn rotate_now(
    state: Arc<Database>,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let name = role_name(&fields)?;
    let storage = req.storage()?.clone();
    let _rotations = state.static_rotations.lock().await;
    let role = load(storage.as_ref(), &name)
        .await?
        .ok_or_else(|| Error::invalid("no static role found for role name"))?;
    rotate(
        &state,
        storage.as_ref(),
        req.system()?.as_ref(),
        &name,
        role,
    )
    .await
    .map_err(|err| Error::Coded {
        status: 500,
        message: format!(
            "unable to finish rotating credentials; retries will continue in the \
                     background but it is also safe to retry manually: {err}"
        ),
    })?;
    Ok(None)
}

/// Sets a new password for the role's user and stores it. The caller holds
/// `static_rotations`.
async fn rotate(
    state: &Database,
    storage: &dyn Storage,
    system: &dyn SystemView,
    name: &str,
    mut role: StaticRole,
) -> Result<()> {
    let config = state.require_config(storage, &role.db_name).await?;
    let wal_key = format!("{WAL_PREFIX}{name}");
    // An earlier attempt may have reached the database: finish it with the same password.
    let wal = match storage.get_json::<StaticWal>(&wal_key).await? {
        Some(wal) if wal.username == role.username => wal,
        _ => {
            let policy = Some(config.password_policy.as_str()).filter(|p| !p.is_empty());
            let wal = StaticWal {
                role: name.to_owned(),
                username: role.username.clone(),
                new_password: safe_password(system.generate_password(policy).await?)?,
                created_at: unix_now(),
            };
            storage.put_json(&wal_key, &wal).await?;
            wal
        }
    };
    let instance = state.connection(storage, &role.db_name).await?;
    let result = {
        let _shared = instance.lock.read().await;
        instance
            .plugin
            .update_user(UpdateUserRequest {
                username: &role.username,
                change: UserChange::Password {
                    password: &wal.new_password,
                    statements: &role.rotation_statements,
                },
            })
            .await
    };
    if let Err(err) = result {
        state
            .static_retries
            .lock()
            .insert(name.to_owned(), SystemTime::now() + RETRY_AFTER);
        return Err(plugin_error("failed to rotate the static account", err));
    }
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    role.password = wal.new_password;
    role.last_vault_rotation = Some((now.as_secs(), now.subsec_nanos()));
    storage
        .put_json(&format!("{STATIC_ROLE_PREFIX}{name}"), &role)
        .await?;
    state.static_retries.lock().remove(name);
    if let Err(err) = storage.delete(&wal_key).await {
        tracing::warn!(role = %name, error = %err, "Could not delete a finished rotation entry.");
    }
    Ok(())
}

/// Rotates every static role whose period has passed (and whose last failure is old enough).
pub(crate) async fn rotate_due(state: &Database, storage: &dyn Storage, system: &dyn SystemView) {
    let names = match storage.list(STATIC_ROLE_PREFIX).await {
        Ok(names) => names,
        Err(err) => {
            tracing::warn!(error = %err, "Listing static roles failed.");
            return;
        }
    };
    let now = SystemTime::now();
    for name in names.into_iter().filter(|n| !n.ends_with('/')) {
        if state
            .static_retries
            .lock()
            .get(&name)
            .is_some_and(|retry_at| *retry_at > now)
        {
            continue;
        }
        let _rotations = state.static_rotations.lock().await;
        let role = match load(storage, &name).await {
            Ok(Some(role)) => role,
            Ok(None) => continue,
            Err(err) => {
                tracing::warn!(role = %name, error = %err, "Loading a static role failed.");
                continue;
            }
        };
        if !role.is_due(now) {
            continue;
        }
        if let Err(err) = rotate(state, storage, system, &name, role).await {
            tracing::warn!(role = %name, error = %err, "Static role rotation failed; will retry.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SystemTime {
        let format = time::format_description::well_known::Rfc3339;
        SystemTime::from(time::OffsetDateTime::parse(text, &format).unwrap())
    }

    fn scheduled(schedule: &str, window: u64, last: &str) -> StaticRole {
        let last = at(last).duration_since(SystemTime::UNIX_EPOCH).unwrap();
        StaticRole {
            rotation_schedule: schedule.to_owned(),
            rotation_window: window,
            last_vault_rotation: Some((last.as_secs(), 0)),
            ..StaticRole::default()
        }
    }

    #[test]
    fn a_scheduled_rotation_is_due_only_inside_its_window() {
        // Daily at 02:00 with a one-hour window; last rotated yesterday at 02:00.
        let role = scheduled("0 2 * * *", 3600, "2026-11-25T02:00:10Z");
        assert!(!role.is_due(at("2026-11-26T01:59:00Z")));
        assert!(role.is_due(at("2026-11-26T02:00:00Z")));
        assert!(role.is_due(at("2026-11-26T02:59:59Z")));
        // The window closed: wait for tomorrow's run.
        assert!(!role.is_due(at("2026-11-26T03:00:00Z")));
        assert_eq!(
            role.next_rotation(at("2026-11-26T03:00:00Z")),
            at("2026-11-27T02:00:00Z")
        );
        // Without a window, a missed run happens as soon as the server can.
        let role = scheduled("0 2 * * *", 0, "2026-11-25T02:00:10Z");
        assert!(role.is_due(at("2026-11-26T09:00:00Z")));
        // Once rotated for today's run, not again until tomorrow's.
        let role = scheduled("0 2 * * *", 0, "2026-11-26T02:00:05Z");
        assert!(!role.is_due(at("2026-11-26T09:00:00Z")));
    }

    #[test]
    fn a_period_rotation_is_due_when_the_period_passed() {
        let last = at("2026-11-26T00:00:00Z")
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        let role = StaticRole {
            rotation_period: 3600,
            last_vault_rotation: Some((last.as_secs(), 0)),
            ..StaticRole::default()
        };
        assert!(!role.is_due(at("2026-11-26T00:59:59Z")));
        assert!(role.is_due(at("2026-11-26T01:00:00Z")));
    }
}
