//! Audit devices: the persisted table of enabled devices, the broker that records every
//! request and response on them, and what `sys/audit` does with them.
//!
//! A request entry is written before the backend runs and a response entry after it; when no
//! enabled device records an entry, the request fails (see `Core::handle_request`). Entries
//! are built and hashed here, per device, so no secret leaves the broker in clear unless the
//! device asked for `log_raw`. The chain and checkpoint format is `mayfly_audit`'s.

mod device;
mod entry;
mod file;
mod socket;
mod syslog;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, RwLock},
    time::Duration,
};

use mayfly_audit::{Salt, SigningKey};
use mayfly_barrier::Barrier;
use mayfly_sdk::{
    Error, Operation, Response, Result, Storage, StorageExt, duration::parse_duration,
};
use serde::{Deserialize, Serialize};

use self::device::{Device, FormatConfig, SALT_KEY, SIGNING_KEY_KEY, Sink};
pub(crate) use self::entry::{MountInfo, RequestContext, now_rfc3339};
use crate::{
    mounts::{RouteEntry, delete_tree},
    random::uuid,
    view::BarrierView,
};

/// Logical key of the persisted audit table.
const AUDIT_TABLE_KEY: &str = "core/audit";
/// Each device's salt, signing key and chain state live under `audit/<uuid>/`.
const DEVICE_STORAGE_PREFIX: &str = "audit/";
/// Vault's default for how long a socket device may take to connect or write.
const DEFAULT_SOCKET_TIMEOUT: Duration = Duration::from_secs(2);

/// One enabled device, as persisted and as `sys/audit` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// With a trailing slash: `file/`.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub options: BTreeMap<String, String>,
    pub local: bool,
    pub uuid: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AuditTable {
    version: u32,
    entries: Vec<AuditEntry>,
}

/// Why a request could not be audited.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("no audit device could record the {0} entry")]
    Unrecorded(&'static str),
}

impl From<AuditError> for Error {
    fn from(err: AuditError) -> Error {
        Error::internal(err)
    }
}

/// An enabled device as `sys/audit` reports it.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    pub entry: AuditEntry,
    /// The Ed25519 key that signs the device's checkpoints, hex.
    pub public_key: String,
    /// Entries the device failed to record since the server unsealed.
    pub failures: u64,
}

/// The live devices. Requests take a snapshot of the list, so enabling or disabling a device
/// never waits for requests in flight, nor they for it.
pub struct AuditBroker {
    barrier: Arc<Barrier>,
    devices: RwLock<Arc<Vec<Arc<Device>>>>,
    changes: tokio::sync::Mutex<()>,
}

fn device_view(barrier: &Arc<Barrier>, entry: &AuditEntry) -> BarrierView {
    BarrierView::new(
        barrier.clone(),
        format!("{DEVICE_STORAGE_PREFIX}{}/", entry.uuid),
    )
}

async fn load_table(barrier: &Arc<Barrier>) -> Result<AuditTable> {
    Ok(BarrierView::new(barrier.clone(), "")
        .get_json(AUDIT_TABLE_KEY)
        .await?
        .unwrap_or_default())
}

async fn save_table(barrier: &Arc<Barrier>, entries: Vec<AuditEntry>) -> Result<()> {
    BarrierView::new(barrier.clone(), "")
        .put_json(
            AUDIT_TABLE_KEY,
            &AuditTable {
                version: 1,
                entries,
            },
        )
        .await
}

impl AuditBroker {
    /// Sets up the persisted devices (on unseal). A device that cannot write yet is kept:
    /// requests fail until it can, rather than go unaudited.
    pub(crate) async fn load(barrier: Arc<Barrier>) -> Result<AuditBroker> {
        let table = load_table(&barrier).await?;
        let mut devices = Vec::new();
        for entry in table.entries {
            let path = entry.path.clone();
            match open_device(&barrier, entry, false).await {
                Ok(device) => {
                    if let Err(err) = device.start().await {
                        tracing::error!(device = %path, error = %err, "Audit device cannot write; requests fail until it can.");
                    }
                    devices.push(Arc::new(device));
                }
                Err(err) => {
                    // Running without a device that is meant to record everything would
                    // let requests through unaudited.
                    return Err(Error::internal(format!(
                        "cannot set up audit device {path:?}: {err}"
                    )));
                }
            }
        }
        Ok(AuditBroker {
            barrier,
            devices: RwLock::new(Arc::new(devices)),
            changes: tokio::sync::Mutex::new(()),
        })
    }

    fn snapshot(&self) -> Arc<Vec<Arc<Device>>> {
        self.devices
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn replace(&self, devices: Vec<Arc<Device>>) {
        *self
            .devices
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(devices);
    }

    /// The devices to record a request on, or `None` when auditing is off.
    pub(crate) fn active(&self) -> Option<Arc<Vec<Arc<Device>>>> {
        let devices = self.snapshot();
        (!devices.is_empty()).then_some(devices)
    }

    pub fn list(&self) -> Vec<DeviceInfo> {
        self.snapshot()
            .iter()
            .map(|device| DeviceInfo {
                entry: device.entry.clone(),
                public_key: device.public_key(),
                failures: device.failures(),
            })
            .collect()
    }

    /// `sys/audit-hash`: the HMAC a device would log for `input`.
    pub fn hash(&self, path: &str, input: &str) -> Result<String> {
        self.snapshot()
            .iter()
            .find(|device| device.path() == path)
            .map(|device| device.salt().hash(input))
            .ok_or_else(|| Error::invalid(format!("unknown audit backend {path:?}")))
    }

    /// Enables a device. `entry.path` must be normalised (`file/`); the UUID is assigned here.
    /// The device must be able to write its first line unless `skip_test` is set.
    pub async fn enable(&self, mut entry: AuditEntry) -> Result<()> {
        let _guard = self.changes.lock().await;
        let table = load_table(&self.barrier).await?;
        if table.entries.iter().any(|existing| {
            existing.path.starts_with(&entry.path) || entry.path.starts_with(&existing.path)
        }) {
            return Err(Error::invalid("path already in use"));
        }
        let skip_test = parse_bool_option(&entry.options, "skip_test", false)?;
        entry.uuid = uuid();
        let device = open_device(&self.barrier, entry.clone(), true).await?;
        if let Err(err) = device.start().await {
            if !skip_test {
                let _ = delete_tree(&device_view(&self.barrier, &entry), "").await;
                return Err(Error::invalid(format!(
                    "sanity check failed; unable to write to audit device {:?}: {err}",
                    entry.path
                )));
            }
            tracing::warn!(device = %entry.path, error = %err, "Audit device cannot write yet (skip_test is set).");
        }
        let mut entries = table.entries;
        entries.push(entry.clone());
        if let Err(err) = save_table(&self.barrier, entries).await {
            let _ = delete_tree(&device_view(&self.barrier, &entry), "").await;
            return Err(err);
        }
        let mut devices = (*self.snapshot()).clone();
        devices.push(Arc::new(device));
        self.replace(devices);
        tracing::info!(path = %entry.path, kind = %entry.kind, "Audit device enabled.");
        Ok(())
    }

    /// Disables a device and destroys its salt and keys. Returns whether one was enabled.
    pub async fn disable(&self, path: &str) -> Result<bool> {
        let _guard = self.changes.lock().await;
        let table = load_table(&self.barrier).await?;
        let Some(removed) = table.entries.iter().find(|e| e.path == path).cloned() else {
            return Ok(false);
        };
        let remaining = table
            .entries
            .into_iter()
            .filter(|entry| entry.path != path)
            .collect();
        save_table(&self.barrier, remaining).await?;
        let mut devices = (*self.snapshot()).clone();
        let retired: Vec<Arc<Device>> = devices
            .iter()
            .filter(|device| device.path() == path)
            .cloned()
            .collect();
        devices.retain(|device| device.path() != path);
        self.replace(devices);
        for device in retired {
            device.retire().await;
        }
        if let Err(err) = delete_tree(&device_view(&self.barrier, &removed), "").await {
            tracing::warn!(device = %path, error = %err, "Failed to delete a disabled audit device's keys.");
        }
        tracing::info!(path = %path, "Audit device disabled.");
        Ok(true)
    }

    /// SIGHUP: every device reopens its file or connection.
    pub async fn reopen(&self) {
        for device in self.snapshot().iter() {
            device.reopen().await;
        }
    }

    /// About once a second: sign pending entries and save each chain's state.
    pub async fn tick(&self) {
        for device in self.snapshot().iter() {
            device.tick().await;
        }
    }

    /// Before sealing or shutting down.
    pub async fn flush(&self) {
        for device in self.snapshot().iter() {
            device.flush().await;
        }
    }
}

#[cfg(test)]
impl AuditBroker {
    /// Adds a device writing to memory, with options as `sys/audit` would take them.
    pub(crate) async fn add_memory_device(
        &self,
        path: &str,
        options: &[(&str, &str)],
    ) -> device::testing::MemorySink {
        let entry = AuditEntry {
            path: path.to_owned(),
            kind: "file".to_owned(),
            description: String::new(),
            options: options
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .chain([("file_path".to_owned(), "discard".to_owned())])
                .collect(),
            local: false,
            uuid: uuid(),
        };
        let (format, _) = configure(&entry).unwrap();
        let sink = device::testing::MemorySink::default();
        let (key, _) = SigningKey::generate().unwrap();
        let device = Device::new(
            entry.clone(),
            format,
            Salt::new(&uuid()),
            key,
            device_view(&self.barrier, &entry),
            Box::new(sink.clone()),
            None,
        );
        let mut devices = (*self.snapshot()).clone();
        devices.push(Arc::new(device));
        self.replace(devices);
        sink
    }
}

/// Builds a device from its entry: its salt and key (created when `create`), its format and
/// its sink. Nothing is written yet.
async fn open_device(barrier: &Arc<Barrier>, entry: AuditEntry, create: bool) -> Result<Device> {
    let (format, sink) = configure(&entry)?;
    let storage = device_view(barrier, &entry);
    let (salt, key, chain) = if create {
        (None, None, None)
    } else {
        device::load_secrets(&storage).await?
    };
    let salt = match salt {
        Some(salt) => salt,
        None => {
            let salt = uuid();
            storage.put(SALT_KEY, salt.as_bytes()).await?;
            salt
        }
    };
    let key = match key {
        Some(pkcs8) => SigningKey::from_pkcs8(&pkcs8).map_err(Error::internal)?,
        None => {
            let (key, pkcs8) = SigningKey::generate().map_err(Error::internal)?;
            storage.put(SIGNING_KEY_KEY, &pkcs8).await?;
            key
        }
    };
    Ok(Device::new(
        entry,
        format,
        Salt::new(&salt),
        key,
        storage,
        sink,
        chain,
    ))
}

/// Go's `strconv.ParseBool`, which Vault uses for device options.
fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

fn parse_bool_option(
    options: &BTreeMap<String, String>,
    name: &str,
    default: bool,
) -> Result<bool> {
    match options.get(name) {
        None => Ok(default),
        Some(text) if text.is_empty() => Ok(default),
        Some(text) => parse_bool(text).ok_or_else(|| {
            Error::invalid(format!(
                "invalid value {text:?} for {name}: expected a boolean"
            ))
        }),
    }
}

/// Validates a device's options and builds its format and sink.
fn configure(entry: &AuditEntry) -> Result<(FormatConfig, Box<dyn Sink>)> {
    let options = &entry.options;
    match options.get("format").map(String::as_str) {
        None | Some("") | Some("json") => {}
        Some("jsonx") => {
            return Err(Error::invalid(
                "format \"jsonx\" is not supported; use \"json\"",
            ));
        }
        Some(other) => return Err(Error::invalid(format!("unknown format type {other:?}"))),
    }
    let format = FormatConfig {
        log_raw: parse_bool_option(options, "log_raw", false)?,
        hmac_accessor: parse_bool_option(options, "hmac_accessor", true)?,
        elide_list_responses: parse_bool_option(options, "elide_list_responses", false)?,
        prefix: options.get("prefix").cloned().unwrap_or_default(),
    };
    let sink: Box<dyn Sink> = match entry.kind.as_str() {
        "file" => {
            let path = options
                .get("file_path")
                .or_else(|| options.get("path"))
                .filter(|path| !path.is_empty())
                .ok_or_else(|| Error::invalid("file_path is required"))?;
            let mode = match options.get("mode").map(String::as_str) {
                None | Some("") => Some(0o600),
                Some(text) => match u32::from_str_radix(text, 8) {
                    Ok(0) => None,
                    Ok(mode) if mode <= 0o7777 => Some(mode),
                    _ => {
                        return Err(Error::invalid(format!(
                            "invalid mode {text:?}: expected octal permission bits such as 0600"
                        )));
                    }
                },
            };
            Box::new(file::FileSink::new(file::Target::parse(path), mode))
        }
        "socket" => {
            let address = options
                .get("address")
                .filter(|address| !address.is_empty())
                .ok_or_else(|| Error::invalid("address is required"))?;
            let kind = match options.get("socket_type").map(String::as_str) {
                None | Some("") => socket::SocketType::Tcp,
                Some(text) => socket::SocketType::parse(text).ok_or_else(|| {
                    Error::invalid(format!(
                        "unknown socket_type {text:?}: expected tcp, udp or unix"
                    ))
                })?,
            };
            let timeout = match options.get("write_timeout").map(String::as_str) {
                None | Some("") => DEFAULT_SOCKET_TIMEOUT,
                Some(text) => parse_duration(text)
                    .map_err(|_| Error::invalid(format!("invalid write_timeout {text:?}")))?,
            };
            Box::new(socket::SocketSink::new(address.clone(), kind, timeout))
        }
        "syslog" => {
            let name = options
                .get("facility")
                .filter(|f| !f.is_empty())
                .map(String::as_str)
                .unwrap_or("AUTH");
            let facility = syslog::facility_code(name)
                .ok_or_else(|| Error::invalid(format!("unknown syslog facility {name:?}")))?;
            let tag = options
                .get("tag")
                .filter(|t| !t.is_empty())
                .cloned()
                .unwrap_or_else(|| "vault".to_owned());
            let candidates = syslog::SOCKET_PATHS.iter().map(PathBuf::from).collect();
            Box::new(syslog::SyslogSink::new(candidates, facility, tag))
        }
        other => return Err(Error::invalid(format!("unknown backend type: {other:?}"))),
    };
    Ok((format, sink))
}

/// What a request entry left for its response entry: the devices that recorded it, with
/// their serialized `auth` and `request` parts.
pub(crate) struct Ticket {
    recorded: Vec<(Arc<Device>, entry::RequestParts)>,
    operation: Operation,
    /// The mount serving the request, for the response object's mount fields and its
    /// `audit_non_hmac_response_keys`.
    route: Option<Arc<RouteEntry>>,
}

/// Records the request entry on every device. Fails when devices are enabled and none of
/// them recorded it; the request must then not be served.
pub(crate) async fn log_request(
    devices: &[Arc<Device>],
    ctx: &RequestContext<'_>,
    route: Option<&Arc<RouteEntry>>,
    error: Option<&Error>,
) -> Result<Ticket, AuditError> {
    let time = now_rfc3339();
    let error = error.map(entry::error_text);
    let mount = MountInfo::of(ctx.mount);
    let mut recorded = Vec::with_capacity(devices.len());
    for device in devices {
        let parts = entry::request_parts(device, ctx, mount);
        let line = entry::request_entry(&device.format.prefix, &time, &parts, error.as_deref());
        match device.write(line).await {
            Ok(()) => recorded.push((device.clone(), parts)),
            Err(err) => device.record_failure("request", &err),
        }
    }
    if recorded.is_empty() && !devices.is_empty() {
        return Err(AuditError::Unrecorded("request"));
    }
    Ok(Ticket {
        recorded,
        operation: ctx.req.operation,
        route: route.cloned(),
    })
}

/// Records the response entry on the devices that recorded the request. Fails when none of
/// them does; the response must then not be returned.
pub(crate) async fn log_response(
    ticket: Ticket,
    response: Option<&Response>,
    error: Option<&Error>,
) -> Result<(), AuditError> {
    if ticket.recorded.is_empty() {
        return Ok(());
    }
    let time = now_rfc3339();
    let error = error.map(entry::error_text);
    let mount = ticket.route.as_ref().map(|route| &route.entry);
    let ctx = entry::ResponseContext {
        operation: ticket.operation,
        mount: MountInfo::of(mount),
        non_hmac_keys: mount
            .map(|m| m.config.audit_non_hmac_response_keys.as_slice())
            .unwrap_or(&[]),
    };
    let mut any = false;
    for (device, parts) in &ticket.recorded {
        let line = entry::response_entry(device, &time, parts, &ctx, response, error.as_deref());
        match device.write(line).await {
            Ok(()) => any = true,
            Err(err) => device.record_failure("response", &err),
        }
    }
    if any {
        Ok(())
    } else {
        Err(AuditError::Unrecorded("response"))
    }
}

#[cfg(test)]
mod tests;
