//! One audit device: its settings, salt and signing key, and the chained writer around its
//! sink. A device's lines are written one at a time under its own lock, because each line's
//! link depends on the line before; devices never wait for each other.

use std::{
    io,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
};

use async_trait::async_trait;
use mayfly_audit::{CHECKPOINT_EVERY, ChainState, Salt, SigningKey};
use mayfly_sdk::{Result, Storage, StorageExt};

use super::{AuditEntry, now_rfc3339};
use crate::view::BarrierView;

/// Where a device's lines go: a file, a socket, syslog.
#[async_trait]
pub(crate) trait Sink: Send {
    /// Makes sure there is somewhere to write. `Ok(true)` means it was (re)opened just now: a
    /// new file or connection, which must start with a header.
    async fn open(&mut self) -> io::Result<bool>;

    /// Writes one complete line (newline included).
    async fn write(&mut self, line: &[u8]) -> io::Result<()>;

    /// Lets go of the file or connection; the next write opens a new one.
    fn close(&mut self);

    /// Where the chain stands, given what was last persisted. Sinks that can read back what
    /// they wrote (files) reconcile the two; the others trust the persisted state.
    fn recover(&mut self, _prefix: &str, persisted: Option<ChainState>) -> ChainState {
        persisted.unwrap_or_default()
    }
}

/// How entries are formatted for one device (Vault's formatter options).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FormatConfig {
    /// Log values in clear instead of HMACs.
    pub log_raw: bool,
    /// HMAC token accessors too (Vault's default).
    pub hmac_accessor: bool,
    /// Replace `keys` and `key_info` of list responses by their counts.
    pub elide_list_responses: bool,
    /// Written before every line.
    pub prefix: String,
}

struct Writer {
    sink: Box<dyn Sink>,
    chain: ChainState,
    needs_header: bool,
    /// Entries written since the last checkpoint.
    unsigned: u64,
}

pub(crate) struct Device {
    pub entry: AuditEntry,
    pub format: FormatConfig,
    salt: Salt,
    key: SigningKey,
    storage: BarrierView,
    writer: tokio::sync::Mutex<Writer>,
    /// The chain state last saved to the barrier, so idle devices are not saved again.
    persisted: std::sync::Mutex<Option<ChainState>>,
    failures: AtomicU64,
    /// Disabled: still finishes entries already started, and signs each one at once.
    retired: AtomicBool,
}

/// Barrier keys under a device's view.
pub(crate) const SALT_KEY: &str = "salt";
pub(crate) const SIGNING_KEY_KEY: &str = "signing-key";
pub(crate) const CHAIN_KEY: &str = "chain";

impl Device {
    pub(crate) fn new(
        entry: AuditEntry,
        format: FormatConfig,
        salt: Salt,
        key: SigningKey,
        storage: BarrierView,
        mut sink: Box<dyn Sink>,
        persisted: Option<ChainState>,
    ) -> Device {
        let chain = sink.recover(&format.prefix, persisted);
        Device {
            entry,
            format,
            salt,
            key,
            storage,
            writer: tokio::sync::Mutex::new(Writer {
                sink,
                chain,
                needs_header: true,
                unsigned: 0,
            }),
            persisted: std::sync::Mutex::new(persisted),
            failures: AtomicU64::new(0),
            retired: AtomicBool::new(false),
        }
    }

    pub(crate) fn path(&self) -> &str {
        &self.entry.path
    }

    pub(crate) fn salt(&self) -> &Salt {
        &self.salt
    }

    pub(crate) fn public_key(&self) -> String {
        self.key.public_key_hex()
    }

    /// The HMAC key, or none when the device logs values raw.
    pub(crate) fn hashing_salt(&self) -> Option<&Salt> {
        (!self.format.log_raw).then_some(&self.salt)
    }

    /// Entries this device failed to record since it was set up.
    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub(crate) fn record_failure(&self, what: &str, err: &io::Error) {
        let count = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::error!(
            device = %self.entry.path,
            error = %err,
            failures = count,
            "Audit device failed to record the {what} entry."
        );
    }

    /// Opens the sink and writes the header now rather than at the first entry, so a new
    /// file shows up at once and a device that cannot write is known before it is needed.
    pub(crate) async fn start(&self) -> io::Result<()> {
        let mut writer = self.writer.lock().await;
        self.ensure_header(&mut writer).await
    }

    /// Writes one entry (a JSON object as bytes). Fails only if the entry is not recorded.
    pub(crate) async fn write(&self, body: &[u8]) -> io::Result<()> {
        let mut writer = self.writer.lock().await;
        // A connection may have been closed by the other end since the last write; one new
        // attempt on a fresh connection tells that apart from a device that is down.
        let mut result = self.write_line(&mut writer, body).await;
        if result.is_err() {
            writer.sink.close();
            result = self.write_line(&mut writer, body).await;
        }
        if result.is_err() {
            writer.sink.close();
            return result;
        }
        writer.unsigned += 1;
        if writer.unsigned >= CHECKPOINT_EVERY || self.retired.load(Ordering::Relaxed) {
            self.checkpoint_locked(&mut writer).await;
        }
        Ok(())
    }

    async fn write_line(&self, writer: &mut Writer, body: &[u8]) -> io::Result<()> {
        self.ensure_header(writer).await?;
        let (line, next) = writer.chain.seal(&self.format.prefix, body);
        writer.sink.write(&line).await?;
        writer.chain = next;
        Ok(())
    }

    async fn ensure_header(&self, writer: &mut Writer) -> io::Result<()> {
        if writer.sink.open().await? {
            writer.needs_header = true;
        }
        if writer.needs_header {
            let (line, next) = writer.chain.header(
                &self.format.prefix,
                &now_rfc3339(),
                &self.entry.path,
                &self.key,
            );
            writer.sink.write(&line).await?;
            writer.chain = next;
            writer.needs_header = false;
        }
        Ok(())
    }

    /// Signs what was written since the last checkpoint. A failure is logged and retried
    /// later: the entries themselves are already recorded.
    async fn checkpoint_locked(&self, writer: &mut Writer) {
        if writer.unsigned == 0 || writer.needs_header {
            return;
        }
        let (line, next) = writer
            .chain
            .checkpoint(&self.format.prefix, &now_rfc3339(), &self.key);
        match writer.sink.write(&line).await {
            Ok(()) => {
                writer.chain = next;
                writer.unsigned = 0;
            }
            Err(err) => {
                writer.sink.close();
                tracing::warn!(device = %self.entry.path, error = %err, "Audit checkpoint failed; will retry.");
            }
        }
    }

    /// Signs pending entries, then saves the chain state if it moved. Run about once a second.
    pub(crate) async fn tick(&self) {
        let chain = {
            let mut writer = self.writer.lock().await;
            self.checkpoint_locked(&mut writer).await;
            writer.chain
        };
        self.persist(chain).await;
    }

    async fn persist(&self, chain: ChainState) {
        let saved = *self
            .persisted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if saved == Some(chain) {
            return;
        }
        match self.storage.put_json(CHAIN_KEY, &chain).await {
            Ok(()) => {
                *self
                    .persisted
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(chain);
            }
            Err(err) => {
                tracing::warn!(device = %self.entry.path, error = %err, "Saving the audit chain state failed; will retry.")
            }
        }
    }

    /// Log rotation: signs the old file's end, then starts a new file (or connection) with a
    /// header that continues the chain. If the new one cannot be opened yet, every entry
    /// retries, and fails until it can.
    pub(crate) async fn reopen(&self) {
        let mut writer = self.writer.lock().await;
        self.checkpoint_locked(&mut writer).await;
        writer.sink.close();
        if let Err(err) = self.ensure_header(&mut writer).await {
            writer.sink.close();
            tracing::error!(device = %self.entry.path, error = %err, "Audit device could not be reopened.");
        }
    }

    /// Signs and saves everything, for a seal or a shutdown.
    pub(crate) async fn flush(&self) {
        self.tick().await;
    }

    /// Disabled: signs what was written; entries already under way are still written, each
    /// followed by a checkpoint.
    pub(crate) async fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
        let mut writer = self.writer.lock().await;
        self.checkpoint_locked(&mut writer).await;
    }
}

/// Loads a device's stored salt, signing key and chain state.
pub(crate) async fn load_secrets(
    storage: &BarrierView,
) -> Result<(Option<String>, Option<Vec<u8>>, Option<ChainState>)> {
    let salt = storage
        .get(SALT_KEY)
        .await?
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    let key = storage.get(SIGNING_KEY_KEY).await?;
    let chain = storage.get_json(CHAIN_KEY).await?;
    Ok((salt, key, chain))
}

#[cfg(test)]
pub(crate) mod testing {
    //! An in-memory sink for tests of the broker and the pipeline.

    use std::sync::{Arc, Mutex};

    use super::*;

    /// Records lines in memory; can be told to fail everything, or only response entries.
    #[derive(Clone, Default)]
    pub(crate) struct MemorySink {
        pub lines: Arc<Mutex<Vec<Vec<u8>>>>,
        pub fail: Arc<AtomicBool>,
        pub fail_responses: Arc<AtomicBool>,
        open: bool,
    }

    impl MemorySink {
        pub(crate) fn text(&self) -> String {
            let lines = self
                .lines
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            String::from_utf8_lossy(&lines.concat()).into_owned()
        }

        /// The request and response entries, parsed.
        pub(crate) fn entries(&self) -> Vec<serde_json::Value> {
            self.text()
                .lines()
                .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
                .filter(|entry| matches!(entry["type"].as_str(), Some("request" | "response")))
                .collect()
        }
    }

    #[async_trait]
    impl Sink for MemorySink {
        async fn open(&mut self) -> io::Result<bool> {
            if self.fail.load(Ordering::SeqCst) {
                return Err(io::Error::other("device down"));
            }
            let opened = !self.open;
            self.open = true;
            Ok(opened)
        }

        async fn write(&mut self, line: &[u8]) -> io::Result<()> {
            let needle = b"\"type\":\"response\"";
            let is_response = line.windows(needle.len()).any(|window| window == needle);
            if self.fail.load(Ordering::SeqCst)
                || (is_response && self.fail_responses.load(Ordering::SeqCst))
            {
                return Err(io::Error::other("device down"));
            }
            self.lines
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(line.to_vec());
            Ok(())
        }

        fn close(&mut self) {
            self.open = false;
        }
    }
}
