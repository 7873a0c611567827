//! One audit device: its settings, salt and signing key, and the chained writer around its
//! sink. A device's lines are chained in the order they are written, under the device's own
//! lock; devices never wait for each other.
//!
//! Entries that arrive while the lock is held queue up, and whoever takes the lock next seals
//! and writes the whole queue with one write, so concurrent requests share a system call
//! instead of taking turns; an entry written by someone else is reported done without its
//! caller taking the lock at all.

use std::{
    collections::HashMap,
    io,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
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

/// An entry waiting to be written, and where to report how that went.
struct Pending {
    line: Vec<u8>,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
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
    /// Entries waiting for the next write, in arrival order.
    queue: std::sync::Mutex<Vec<Pending>>,
    /// The chain state last saved to the barrier, so idle devices are not saved again.
    persisted: std::sync::Mutex<Option<ChainState>>,
    failures: AtomicU64,
    /// Disabled: still finishes entries already started, and signs each one at once.
    retired: AtomicBool,
    ticks: AtomicU64,
    /// The hashed, serialized caller of recent tokens: a token's `auth` object never changes,
    /// and building it (two HMACs, the policies, a timestamp) was a fifth of an entry's cost.
    callers: std::sync::Mutex<HashMap<CallerKey, Arc<CallerParts>>>,
}

/// A token (its storage hash) and the ACL decision, which the `auth` object also carries.
pub(crate) type CallerKey = (String, Option<bool>);

/// What a request entry says about its caller, as this device writes it.
pub(crate) struct CallerParts {
    pub auth: Vec<u8>,
    pub client_token: Option<String>,
    pub accessor: Option<String>,
}

/// Beyond this many cached callers the cache starts over.
const CALLER_CACHE_LIMIT: usize = 10_000;

/// Barrier keys under a device's view.
pub(crate) const SALT_KEY: &str = "salt";
pub(crate) const SIGNING_KEY_KEY: &str = "signing-key";
pub(crate) const CHAIN_KEY: &str = "chain";
/// Ticks (seconds) between saves of the chain state.
const PERSIST_EVERY: u64 = 10;

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
            queue: std::sync::Mutex::new(Vec::new()),
            writer: tokio::sync::Mutex::new(Writer {
                sink,
                chain,
                needs_header: true,
                unsigned: 0,
            }),
            persisted: std::sync::Mutex::new(persisted),
            failures: AtomicU64::new(0),
            retired: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
            callers: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn callers(&self) -> std::sync::MutexGuard<'_, HashMap<CallerKey, Arc<CallerParts>>> {
        self.callers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached caller parts for `key`, or `build`'s, remembered.
    pub(crate) fn caller_parts(
        &self,
        key: CallerKey,
        build: impl FnOnce() -> CallerParts,
    ) -> Arc<CallerParts> {
        if let Some(parts) = self.callers().get(&key) {
            return Arc::clone(parts);
        }
        let parts = Arc::new(build());
        let mut callers = self.callers();
        if callers.len() >= CALLER_CACHE_LIMIT {
            callers.clear();
        }
        callers.insert(key, Arc::clone(&parts));
        parts
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

    /// Writes one entry: `line` holds the device's prefix and then the entry's JSON object,
    /// and gets the chain link appended. Fails only if the entry is not recorded.
    pub(crate) async fn write(&self, line: Vec<u8>) -> io::Result<()> {
        let (done, mut result) = tokio::sync::oneshot::channel();
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Pending { line, done });
        tokio::select! {
            biased;
            // Another writer took the entry along with its own.
            outcome = &mut result => return report(outcome),
            mut writer = self.writer.lock() => self.drain(&mut writer).await,
        }
        report(result.await)
    }

    /// Seals and writes everything queued, as one write.
    async fn drain(&self, writer: &mut Writer) {
        let batch = std::mem::take(
            &mut *self
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if batch.is_empty() {
            return;
        }
        let mut lines: Vec<Vec<u8>> = Vec::with_capacity(batch.len());
        let mut senders = Vec::with_capacity(batch.len());
        for pending in batch {
            lines.push(pending.line);
            senders.push(pending.done);
        }
        // A connection may have been closed by the other end since the last write; one new
        // attempt on a fresh connection tells that apart from a device that is down.
        let mut outcome = self.write_lines(writer, &mut lines).await;
        if outcome.is_err() {
            writer.sink.close();
            outcome = self.write_lines(writer, &mut lines).await;
        }
        let outcome = match outcome {
            Ok(()) => {
                writer.unsigned += lines.len() as u64;
                if writer.unsigned >= CHECKPOINT_EVERY || self.retired.load(Ordering::Relaxed) {
                    self.checkpoint_locked(writer).await;
                }
                Ok(())
            }
            Err(err) => {
                writer.sink.close();
                Err(err.to_string())
            }
        };
        for sender in senders {
            // The caller may have gone away (its request was cancelled); nothing to tell.
            let _ = sender.send(outcome.clone());
        }
    }

    /// Chains `lines` after the current state and writes them with one write. On failure the
    /// lines are restored to bare entries and the state is unchanged, so they can be retried.
    async fn write_lines(&self, writer: &mut Writer, lines: &mut [Vec<u8>]) -> io::Result<()> {
        self.ensure_header(writer).await?;
        let body_start = self.format.prefix.len();
        let mut state = writer.chain;
        let mut lengths = Vec::with_capacity(lines.len());
        for line in lines.iter_mut() {
            lengths.push(line.len());
            state = state.seal_in_place(line, body_start);
        }
        let result = if let [line] = lines {
            writer.sink.write(line).await
        } else {
            writer.sink.write(&lines.concat()).await
        };
        match result {
            Ok(()) => {
                writer.chain = state;
                Ok(())
            }
            Err(err) => {
                for (line, length) in lines.iter_mut().zip(lengths) {
                    line.truncate(length - 1);
                    line.push(b'}');
                }
                Err(err)
            }
        }
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

    /// Signs pending entries (run about once a second), and every [`PERSIST_EVERY`] ticks
    /// saves the chain state if it moved. Saving is a durable write, and the saved state is
    /// only the fallback for a file that went missing while the server was down: a file
    /// still there tells its own state.
    pub(crate) async fn tick(&self) {
        let chain = {
            let mut writer = self.writer.lock().await;
            self.checkpoint_locked(&mut writer).await;
            writer.chain
        };
        let ticks = self.ticks.fetch_add(1, Ordering::Relaxed);
        if ticks.is_multiple_of(PERSIST_EVERY) {
            self.persist(chain).await;
        }
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
        let chain = {
            let mut writer = self.writer.lock().await;
            self.checkpoint_locked(&mut writer).await;
            writer.chain
        };
        self.persist(chain).await;
    }

    /// Disabled: signs what was written; entries already under way are still written, each
    /// followed by a checkpoint.
    pub(crate) async fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
        let mut writer = self.writer.lock().await;
        self.checkpoint_locked(&mut writer).await;
    }
}

/// What a queued write came to, as an I/O result.
fn report(
    outcome: Result<Result<(), String>, tokio::sync::oneshot::error::RecvError>,
) -> io::Result<()> {
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err(io::Error::other(message)),
        Err(_) => Err(io::Error::other("audit write abandoned")),
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
