//! The file backend: one redb database inside the configured directory, in front of it a
//! write-ahead log and the set of writes the log holds.
//!
//! Writes are funnelled to a single writer thread, which folds every request queued at the time
//! into one batch, logs it as one record of [`crate::wal`], syncs the log, and applies the batch
//! to the *overlay*: the newest value (or deletion) of every key written since the last
//! checkpoint, which reads consult before the database file. A batch thus costs one short
//! sequential write and no B-tree work; a batch of nothing but
//! [`Durability::Deferred`](crate::Durability::Deferred) writes skips the sync, and the next
//! synced record or checkpoint covers it; its record waits in memory until then (see
//! [`crate::wal`]). A deferred write that finds the writer idle is
//! logged and applied on its caller's thread instead, under the same lock the writer commits
//! under, so the log's order stays the order readers saw: handing it over and being woken with
//! the answer costs more than the write.
//!
//! A checkpoint moves the overlay into redb in one durable commit, which also stores the next
//! log generation, and then empties the overlay and restarts the log. It runs when the log is
//! half full, every [`FileOptions::checkpoint_interval`] while writes keep coming, once the
//! writer has been idle for [`FileOptions::checkpoint_idle`], and at shutdown; opening the
//! store replays whatever the log holds past the last checkpoint. In between, an overlay of
//! [`FileOptions::checkpoint_keys`] keys is moved into redb without a sync. Many batches share one
//! commit, so redb's per-commit work and the copying of B-tree pages is paid once per
//! checkpoint instead of once per batch.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::fs::{self, OpenOptions};
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redb::{
    Database, DatabaseError, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable,
    TableDefinition, WriteTransaction, backends::FileBackend as RedbFile,
};
use tokio::sync::oneshot;

use crate::children::{Children, Step};
use crate::wal::{Appended, WAL_FILE_NAME, Wal};
use crate::{Backend, Entry, Error, Result, TxOp};

/// Name of the database file inside the storage directory.
pub const DB_FILE_NAME: &str = "mayfly.redb";

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// The backend's own bookkeeping, apart from the stored keys so listings never see it.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The log generation whose records are not yet in a durable commit.
const WAL_GENERATION: &str = "wal_generation";

/// Upper bound on requests per commit, so one huge burst cannot delay its first waiters
/// indefinitely behind an ever-growing transaction.
const MAX_BATCH: usize = 1024;

/// Pages up to this many children are listed on the calling thread.
const INLINE_LIST_LIMIT: usize = 512;

/// Tuning of the file backend; [`FileOptions::default`] is what the server uses.
#[derive(Debug, Clone)]
pub struct FileOptions {
    /// Size of the preallocated log file, in bytes. A batch that does not fit in what is left of
    /// it is committed to redb durably instead, which also empties it.
    pub wal_capacity: u64,
    /// Longest time logged writes wait for a checkpoint while writes keep coming.
    pub checkpoint_interval: Duration,
    /// Idle time after which the writer checkpoints what the log holds.
    pub checkpoint_idle: Duration,
    /// Keys in the overlay at which the writer moves it into redb without a sync (a full
    /// checkpoint waits for its own triggers): bounds the overlay, how long one move holds up
    /// the writes queued behind it, and how many deleted keys a listing skips.
    pub checkpoint_keys: usize,
}

impl Default for FileOptions {
    fn default() -> Self {
        Self {
            wal_capacity: 8 << 20,
            checkpoint_interval: Duration::from_secs(2),
            checkpoint_idle: Duration::from_millis(200),
            checkpoint_keys: 4096,
        }
    }
}

type Table = ReadOnlyTable<&'static str, &'static [u8]>;

/// Every key written since the last checkpoint, with its newest value (`None`: deleted).
type Overlay = BTreeMap<String, Option<Vec<u8>>>;

/// The overlay, shared by the writer thread (its only mutator) and readers.
#[derive(Default)]
struct SharedOverlay(RwLock<Overlay>);

impl SharedOverlay {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Overlay> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Overlay> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The overlay's keys under `prefix`, each with `Some(())` if live.
    fn under(&self, prefix: &str) -> BTreeMap<String, Option<()>> {
        self.read()
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.clone(), value.as_ref().map(|_| ())))
            .collect()
    }
}

struct WriteRequest {
    ops: Vec<TxOp>,
    durability: crate::Durability,
    reply: oneshot::Sender<Result<()>>,
}

/// What the writer thread is sent.
enum Message {
    Write(WriteRequest),
    /// A write was logged on its caller's thread: the writer's checkpoint timers start, or a
    /// checkpoint is due.
    Logged,
}

/// Durable storage in a single ACID file (`<dir>/mayfly.redb`) and its log (`<dir>/mayfly.wal`).
///
/// Every acknowledged write has been fsynced, to the log or to the database file, except
/// deferred ones, which the next sync or checkpoint (at most [`FileOptions::checkpoint_idle`]
/// after the writer falls idle) covers. Dropping the backend lets the writer finish the
/// requests already queued; the file is released once in-flight reads have finished too.
pub struct FileBackend {
    db: Arc<Database>,
    overlay: Arc<SharedOverlay>,
    db_path: PathBuf,
    /// The log and the overlay's owner. The writer thread holds it while it commits; a
    /// deferred write that finds it free is logged on its caller's thread.
    state: Arc<Mutex<Writer>>,
    queue: Option<mpsc::Sender<Message>>,
    writer: Option<thread::JoinHandle<()>>,
    commits: Arc<AtomicU64>,
    log_syncs: Arc<AtomicU64>,
    checkpoints: Arc<AtomicU64>,
}

impl std::fmt::Debug for FileBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileBackend")
            .field("db_path", &self.db_path)
            .field("commits", &self.commit_count())
            .finish_non_exhaustive()
    }
}

impl FileBackend {
    /// Opens (creating if needed) the store in directory `dir`.
    ///
    /// Fails with a clear error if the database is already open, by this or another process.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, FileOptions::default())
    }

    /// [`open`](Self::open) with explicit tuning.
    pub fn open_with(dir: &Path, options: FileOptions) -> Result<Self> {
        create_private_dir(dir)?;
        let db_path = dir.join(DB_FILE_NAME);
        let db = open_db(&db_path)?;
        let wal_path = dir.join(WAL_FILE_NAME);
        let writer = Writer::recover(db, &wal_path, options)?;

        let db = Arc::clone(&writer.db);
        let overlay = Arc::clone(&writer.overlay);
        let commits = Arc::clone(&writer.commits);
        let log_syncs = Arc::clone(&writer.log_syncs);
        let checkpoints = Arc::clone(&writer.checkpoints);
        let (queue, requests) = mpsc::channel();
        let state = Arc::new(Mutex::new(writer));
        let shared = Arc::clone(&state);
        let writer = thread::Builder::new()
            .name("mayfly-storage-writer".into())
            .spawn(move || Writer::run(&shared, &requests))?;
        Ok(Self {
            db,
            overlay,
            db_path,
            state,
            queue: Some(queue),
            writer: Some(writer),
            commits,
            log_syncs,
            checkpoints,
        })
    }

    /// Number of write transactions committed since `open`. With concurrent writers this is
    /// lower than the number of writes: that is group commit at work.
    pub fn commit_count(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Number of durable commits to the database file since `open`.
    pub fn checkpoint_count(&self) -> u64 {
        self.checkpoints.load(Ordering::Relaxed)
    }

    /// Number of log records synced since `open`.
    pub fn log_sync_count(&self) -> u64 {
        self.log_syncs.load(Ordering::Relaxed)
    }

    /// Path of the database file.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    async fn write(&self, ops: Vec<TxOp>, durability: crate::Durability) -> Result<()> {
        let queue = self.queue.as_ref().ok_or(Error::Closed)?;
        if durability == crate::Durability::Deferred
            && let Some(logged) = self.log_inline(&ops)
        {
            if logged.wake_writer {
                // A dead writer only loses its timers; the write stands.
                let _ = queue.send(Message::Logged);
            }
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        queue
            .send(Message::Write(WriteRequest {
                ops,
                durability,
                reply,
            }))
            .map_err(|_| Error::Closed)?;
        // A dropped reply means the writer thread died before answering.
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Logs a deferred write on the calling thread when the writer is not busy: a record that
    /// needs no sync is held in memory for the next sync to write, which takes less than
    /// handing it to the writer thread and being woken with the answer. `None` leaves it to the writer thread: the writer is
    /// busy (syncing, or checkpointing), or the log has no room for it.
    fn log_inline(&self, ops: &[TxOp]) -> Option<InlineLogged> {
        let mut writer = self.state.try_lock().ok()?;
        let was_idle = writer.logged_since.is_none();
        if !writer.log_and_apply(ops.iter(), false).ok()? {
            return None;
        }
        writer.commits.fetch_add(1, Ordering::Relaxed);
        let wake_writer = was_idle
            || writer.checkpoint_due()
            || self.overlay.read().len() >= writer.options.checkpoint_keys;
        Some(InlineLogged { wake_writer })
    }

    /// Runs `f` in a read transaction on the blocking pool: a cold read may hit the disk.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Table) -> Result<T, redb::Error> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read()?;
            let table = txn.open_table(TABLE)?;
            f(&table)
        })
        .await
        .map_err(|_| Error::Backend("storage read task failed".into()))?
        .map_err(|e| backend_err("read", e))
    }
}

impl Drop for FileBackend {
    fn drop(&mut self) {
        // Closing the queue makes the writer drain what is queued, then exit.
        self.queue.take();
        if let Some(Err(_)) = self.writer.take().map(thread::JoinHandle::join) {
            tracing::error!("storage writer thread panicked");
        }
    }
}

#[async_trait]
impl Backend for FileBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        // The overlay first: a checkpoint empties it only after redb holds its contents.
        if let Some(logged) = self.overlay.read().get(key) {
            return Ok(logged.clone());
        }
        // A point read is a few page lookups, mostly from redb's cache: running it inline costs
        // microseconds, while handing it to the blocking pool costs two thread wake-ups, which
        // measured as a fifth of the CPU of a write request (every request reads its token).
        let read = || -> Result<Option<Vec<u8>>, redb::Error> {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(TABLE)?;
            Ok(table.get(key)?.map(|v| v.value().to_vec()))
        };
        read().map_err(|e| backend_err("read", e))
    }

    async fn put(&self, entry: Entry) -> Result<()> {
        self.write(vec![TxOp::Put(entry)], crate::Durability::Immediate)
            .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.write(
            vec![TxOp::Delete(key.to_owned())],
            crate::Durability::Immediate,
        )
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.list_page(prefix, "", 0).await
    }

    async fn list_page(&self, prefix: &str, after: &str, limit: usize) -> Result<Vec<String>> {
        if (1..=INLINE_LIST_LIMIT).contains(&limit) {
            // As with `get`: a bounded page is a short range scan, cheaper inline than the two
            // thread hand-offs of the blocking pool. Revoking a token lists three folders. The
            // overlay stays locked for the scan (taken before redb is read, as in `get`): the
            // writer waits for one page at most, and a big overlay is not copied per page.
            let read = || -> Result<Vec<String>, redb::Error> {
                let logged = self.overlay.read();
                let txn = self.db.begin_read()?;
                let table = txn.open_table(TABLE)?;
                list_children(&table, &logged, prefix, after, limit)
            };
            return read().map_err(|e| backend_err("read", e));
        }
        // Taken before redb is read, as in `get`.
        let logged = self.overlay.under(prefix);
        let (prefix, after) = (prefix.to_owned(), after.to_owned());
        self.read(move |table| list_children(table, &logged, &prefix, &after, limit))
            .await
    }

    async fn transaction(&self, ops: Vec<TxOp>) -> Result<()> {
        self.transaction_with(ops, crate::Durability::Immediate)
            .await
    }

    async fn transaction_with(&self, ops: Vec<TxOp>, durability: crate::Durability) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        self.write(ops, durability).await
    }

    fn kind(&self) -> &'static str {
        "file"
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| {
        Error::Io(io::Error::new(
            e.kind(),
            format!("creating storage directory {}: {e}", dir.display()),
        ))
    })
}

fn open_db(path: &Path) -> Result<Database> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path).map_err(|e| {
        Error::Io(io::Error::new(
            e.kind(),
            format!("opening {}: {e}", path.display()),
        ))
    })?;
    RedbFile::new(file)
        .and_then(|file| Database::builder().create_with_backend(file))
        .map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen => Error::Backend(format!(
                "{} is already open (by another process, or another backend in this one)",
                path.display()
            )),
            e => backend_err(&format!("opening {}", path.display()), e),
        })
}

/// The writer thread's state: the database, its log, and the overlay of what the log holds.
/// A deferred write logged on its caller's thread.
struct InlineLogged {
    /// The writer thread must look at its checkpoint timers.
    wake_writer: bool,
}

struct Writer {
    db: Arc<Database>,
    overlay: Arc<SharedOverlay>,
    /// `None` once the log failed: every batch is then committed to redb durably.
    wal: Option<Wal>,
    generation: u64,
    options: FileOptions,
    /// When the oldest batch that only the log holds was logged.
    logged_since: Option<Instant>,
    /// When the newest batch was logged.
    last_logged: Instant,
    commits: Arc<AtomicU64>,
    log_syncs: Arc<AtomicU64>,
    checkpoints: Arc<AtomicU64>,
}

impl Writer {
    /// Creates the tables, replays the log into one durable commit, and readies the log.
    fn recover(db: Database, wal_path: &Path, options: FileOptions) -> Result<Self> {
        let txn = db
            .begin_write()
            .map_err(|e| backend_err("begin write", e))?;
        let generation = {
            // Creating the table up front lets readers assume it exists.
            txn.open_table(TABLE)
                .map_err(|e| backend_err("create table", e))?;
            let meta = txn
                .open_table(META)
                .map_err(|e| backend_err("create table", e))?;
            let generation = meta
                .get(WAL_GENERATION)
                .map_err(|e| backend_err("read log generation", e))?;
            generation.map_or(0, |g| g.value())
        };
        txn.commit().map_err(|e| backend_err("commit", e))?;

        let (wal, replay) = Wal::open(wal_path, options.wal_capacity, generation).map_err(|e| {
            Error::Io(io::Error::new(
                e.kind(),
                format!("opening {}: {e}", wal_path.display()),
            ))
        })?;
        let mut writer = Self {
            db: Arc::new(db),
            overlay: Arc::default(),
            wal: Some(wal),
            generation,
            options,
            logged_since: None,
            last_logged: Instant::now(),
            commits: Arc::new(AtomicU64::new(0)),
            log_syncs: Arc::new(AtomicU64::new(0)),
            checkpoints: Arc::new(AtomicU64::new(0)),
        };
        if !replay.is_empty() {
            tracing::info!(operations = replay.len(), "Replaying the storage log.");
            writer
                .commit_durably(&replay)
                .map_err(|e| backend_err("replay", e))?;
        }
        Ok(writer)
    }

    fn run(state: &Mutex<Writer>, requests: &mpsc::Receiver<Message>) {
        let lock = || state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let (logged, idle_after) = {
                let writer = lock();
                (
                    writer.logged_since.is_some(),
                    writer.options.checkpoint_idle,
                )
            };
            let first = if logged {
                match requests.recv_timeout(idle_after) {
                    Ok(first) => first,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        // Writes logged on their callers' threads do not reach this loop:
                        // idle means none of those either.
                        let mut writer = lock();
                        if writer.last_logged.elapsed() >= idle_after || writer.checkpoint_due() {
                            writer.checkpoint();
                        }
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match requests.recv() {
                    Ok(first) => first,
                    Err(_) => break,
                }
            };
            batch.extend(
                std::iter::once(first)
                    .chain(requests.try_iter().take(MAX_BATCH - 1))
                    .filter_map(|message| match message {
                        Message::Write(request) => Some(request),
                        Message::Logged => None,
                    }),
            );
            let mut writer = lock();
            if !batch.is_empty() {
                let outcome = writer.commit_batch(&batch).map_err(|e| {
                    tracing::warn!(requests = batch.len(), error = %e, "storage commit failed");
                    e
                });
                if outcome.is_ok() {
                    writer.commits.fetch_add(1, Ordering::Relaxed);
                }
                for request in batch.drain(..) {
                    let result = outcome.clone().map_err(|e| backend_err("commit", e));
                    // The waiter may have given up (its future was dropped); the write stands regardless.
                    let _ = request.reply.send(result);
                }
            }
            if writer.checkpoint_due() {
                writer.checkpoint();
            } else if writer.overlay.read().len() >= writer.options.checkpoint_keys {
                // Only this thread writes redb, so the flush needs no lock of the writer's:
                // released, it lets callers keep logging deferred writes meanwhile instead of
                // queueing behind a flush (measured at 6 to 30 ms for 4,096 keys).
                let (db, overlay) = (Arc::clone(&writer.db), Arc::clone(&writer.overlay));
                drop(writer);
                flush_overlay(&db, &overlay);
            }
        }
        // A clean shutdown leaves an empty log, so the next open has nothing to replay.
        lock().checkpoint();
    }

    /// Logs every request of the batch as one record and applies it to the overlay; or, when
    /// the log cannot take it, commits it to redb durably with everything logged before. Either
    /// the whole batch is applied or none of it, which keeps each request atomic.
    fn commit_batch(&mut self, batch: &[WriteRequest]) -> Result<(), String> {
        let ops = || batch.iter().flat_map(|request| &request.ops);
        // One request that needs its write durable now syncs the whole batch, and with it
        // every deferred record logged before.
        let sync = batch
            .iter()
            .any(|request| request.durability == crate::Durability::Immediate);
        if self.log_and_apply(ops(), sync)? {
            Ok(())
        } else {
            self.commit_durably(ops()).map_err(|e| e.to_string())
        }
    }

    /// Logs `ops` as one record (synced if `sync`) and applies them to the overlay. `false`
    /// when there is no log or it has no room, with nothing done: the caller commits them
    /// durably instead. A failing log is given up on, and `ops` go into a durable commit.
    fn log_and_apply<'a>(
        &mut self,
        ops: impl Iterator<Item = &'a TxOp> + Clone,
        sync: bool,
    ) -> Result<bool, String> {
        let Some(wal) = &mut self.wal else {
            return Ok(false);
        };
        match wal.append(ops.clone(), sync) {
            Ok(Appended::Logged) => {
                if sync {
                    self.log_syncs.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Appended::NoRoom) => return Ok(false),
            Err(e) => {
                // The record may be half on disk; a durable commit under the next generation
                // makes it unreadable, and the batch durable without it.
                tracing::error!(error = %e, "The storage log failed; committing to the database file directly from now on.");
                self.wal = None;
                self.commit_durably(ops).map_err(|e| e.to_string())?;
                return Ok(true);
            }
        }
        let mut overlay = self.overlay.write();
        for op in ops {
            match op {
                TxOp::Put(entry) => overlay.insert(entry.key.clone(), Some(entry.value.clone())),
                TxOp::Delete(key) => overlay.insert(key.clone(), None),
            };
        }
        drop(overlay);
        self.last_logged = Instant::now();
        self.logged_since.get_or_insert(self.last_logged);
        Ok(true)
    }

    /// Commits the overlay and then `ops` to redb with a sync, as the checkpoint of everything
    /// logged so far: the next generation goes in with it, the overlay empties, and the log
    /// starts over. On failure nothing changes, and `ops` are not applied.
    fn commit_durably<'a>(
        &mut self,
        ops: impl IntoIterator<Item = &'a TxOp>,
    ) -> Result<(), redb::Error> {
        let next = self.generation + 1;
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)
            .map_err(redb::Error::from)?;
        self.write_overlay(&txn)?;
        apply(&txn, ops.into_iter())?;
        txn.open_table(META)?.insert(WAL_GENERATION, next)?;
        txn.commit()?;
        // Readers that missed the overlay now find the same values in redb.
        self.overlay.write().clear();
        self.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.generation = next;
        if let Some(wal) = &mut self.wal {
            wal.restart(next);
        }
        self.logged_since = None;
        Ok(())
    }

    fn checkpoint_due(&self) -> bool {
        let Some(since) = self.logged_since else {
            return false;
        };
        since.elapsed() >= self.options.checkpoint_interval
            || self
                .wal
                .as_ref()
                .is_some_and(|wal| wal.used() > wal.capacity() / 2)
    }

    /// Applies the overlay to `txn`.
    fn write_overlay(&self, txn: &WriteTransaction) -> Result<(), redb::Error> {
        write_entries(txn, &self.overlay.read())
    }

    fn checkpoint(&mut self) {
        if self.logged_since.is_none() {
            return;
        }
        if let Err(e) = self.commit_durably([]) {
            // The log and the overlay still hold every batch; the next checkpoint tries again.
            tracing::warn!(error = %e, "storage checkpoint failed");
        }
    }
}

/// Moves the overlay into redb without a sync: the log still holds every batch since the
/// last checkpoint, which a crash replays, and the next checkpoint makes redb durable.
/// Bounds the overlay (and the deleted keys a listing skips) without paying a durable commit
/// each time. It writes a copy, so writes logged meanwhile go on changing the overlay; an
/// entry leaves the overlay only if it still holds the value written to redb, and only once
/// redb has committed it, so a reader that misses the overlay finds it in redb.
fn flush_overlay(db: &Database, overlay: &SharedOverlay) {
    let copy = overlay.read().clone();
    let flushed = (|| -> Result<(), redb::Error> {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::None)
            .map_err(redb::Error::from)?;
        write_entries(&txn, &copy)?;
        txn.commit()?;
        Ok(())
    })();
    match flushed {
        Ok(()) => overlay
            .write()
            .retain(|key, value| copy.get(key) != Some(value)),
        // The overlay still serves every batch; the next checkpoint writes it.
        Err(e) => tracing::warn!(error = %e, "storage overlay flush failed"),
    }
}

/// Writes every entry of `overlay` (a `None` value deletes its key) in `txn`.
fn write_entries(txn: &WriteTransaction, overlay: &Overlay) -> Result<(), redb::Error> {
    let mut table = txn.open_table(TABLE)?;
    for (key, value) in overlay {
        match value {
            Some(value) => table.insert(key.as_str(), value.as_slice())?,
            None => table.remove(key.as_str())?,
        };
    }
    Ok(())
}

fn apply<'a>(
    txn: &WriteTransaction,
    ops: impl Iterator<Item = &'a TxOp>,
) -> Result<(), redb::Error> {
    let mut table = txn.open_table(TABLE)?;
    for op in ops {
        match op {
            TxOp::Put(entry) => {
                table.insert(entry.key.as_str(), entry.value.as_slice())?;
            }
            TxOp::Delete(key) => {
                table.remove(key.as_str())?;
            }
        }
    }
    Ok(())
}

/// The immediate children of `prefix` in redb's keys as `logged` (the overlay, or its part
/// under `prefix`: `None` for a deleted key) amends them.
fn list_children<V>(
    table: &Table,
    logged: &BTreeMap<String, Option<V>>,
    prefix: &str,
    after: &str,
    limit: usize,
) -> Result<Vec<String>, redb::Error> {
    let mut children = Children::new(prefix, after, limit);
    let mut from = children.start();
    'scan: loop {
        let lower = match &from {
            Bound::Included(key) => Bound::Included(key.as_str()),
            Bound::Excluded(key) => Bound::Excluded(key.as_str()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut stored = table.range::<&str>((lower, Bound::Unbounded))?;
        let mut overlaid = logged
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .peekable();
        let mut next_stored = match stored.next() {
            Some(item) => Some(item?.0),
            None => None,
        };
        loop {
            // The smaller key of the two streams; on a tie the overlay's entry replaces redb's.
            let from_overlay = match (&next_stored, overlaid.peek()) {
                (None, None) => break 'scan,
                (Some(stored_key), Some((key, _))) => key.as_str() <= stored_key.value(),
                (None, Some(_)) => true,
                (Some(_), None) => false,
            };
            let step = if from_overlay {
                let Some((key, live)) = overlaid.next() else {
                    break 'scan;
                };
                if next_stored
                    .as_ref()
                    .is_some_and(|stored_key| stored_key.value() == key.as_str())
                {
                    next_stored = match stored.next() {
                        Some(item) => Some(item?.0),
                        None => None,
                    };
                }
                if live.is_none() {
                    continue;
                }
                children.feed(key)
            } else {
                let Some(stored_key) = next_stored.take() else {
                    break 'scan;
                };
                let step = children.feed(stored_key.value());
                next_stored = match stored.next() {
                    Some(item) => Some(item?.0),
                    None => None,
                };
                step
            };
            match step {
                Step::Next => {}
                Step::Seek(next) => {
                    from = Bound::Included(next);
                    continue 'scan;
                }
                Step::Done => break 'scan,
            }
        }
    }
    Ok(children.finish())
}

fn backend_err(context: &str, error: impl Display) -> Error {
    Error::Backend(format!("{context}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{exercise_backend, exercise_concurrent_writers};

    fn entry(key: &str, value: &[u8]) -> Entry {
        Entry {
            key: key.into(),
            value: value.into(),
        }
    }

    #[tokio::test]
    async fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::open(dir.path()).unwrap();
        assert_eq!(backend.kind(), "file");
        exercise_backend(&backend).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_share_commits() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(FileBackend::open(dir.path()).unwrap());
        exercise_concurrent_writers(backend.clone()).await;
        let commits = backend.commit_count();
        assert!(commits > 0);
        assert!(
            commits < 64 * 50,
            "group commit never batched: {commits} commits for {} writes",
            64 * 50
        );
    }

    #[tokio::test]
    async fn data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::open(dir.path()).unwrap();
        backend.put(entry("a/b", b"one")).await.unwrap();
        backend
            .transaction(vec![
                TxOp::Put(entry("a/c", b"two")),
                TxOp::Put(entry("gone", b"x")),
                TxOp::Delete("gone".into()),
            ])
            .await
            .unwrap();
        drop(backend);

        let backend = FileBackend::open(dir.path()).unwrap();
        assert_eq!(
            backend.get("a/b").await.unwrap().as_deref(),
            Some(&b"one"[..])
        );
        assert_eq!(
            backend.get("a/c").await.unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert_eq!(backend.get("gone").await.unwrap(), None);
        assert_eq!(backend.list("").await.unwrap(), ["a/"]);
    }

    /// Acknowledged writes must be on disk, not in a buffer a clean shutdown would flush: the
    /// child process writes, then aborts without running any destructor.
    #[test]
    fn acknowledged_writes_survive_abort() {
        const CHILD_DIR: &str = "MAYFLY_STORAGE_TEST_ABORT_DIR";
        let runtime = tokio::runtime::Runtime::new().unwrap();
        if let Some(dir) = std::env::var_os(CHILD_DIR) {
            let backend = FileBackend::open(Path::new(&dir)).unwrap();
            runtime.block_on(async {
                for i in 0..100 {
                    backend.put(entry(&format!("k{i:03}"), b"v")).await.unwrap();
                }
            });
            std::process::abort();
        }

        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "file::tests::acknowledged_writes_survive_abort"])
            .env(CHILD_DIR, dir.path())
            // Any core dump lands in the temporary directory, not the source tree.
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "child should have aborted");
        let backend = FileBackend::open(dir.path()).unwrap();
        let keys = runtime.block_on(backend.list("")).unwrap();
        assert_eq!(keys.len(), 100, "writes lost after abort");
    }

    /// Options under which nothing but a full log or a shutdown checkpoints.
    fn no_timed_checkpoints(wal_capacity: u64) -> FileOptions {
        FileOptions {
            wal_capacity,
            checkpoint_interval: Duration::from_secs(3600),
            checkpoint_idle: Duration::from_secs(3600),
            checkpoint_keys: usize::MAX,
        }
    }

    /// What a crash of the process would leave on disk right now: the files as the kernel has
    /// them, taken while the backend is still open. `with_log: false` drops the log, to show
    /// what the database file alone holds.
    fn crash_image(dir: &Path, with_log: bool) -> tempfile::TempDir {
        let image = tempfile::tempdir().unwrap();
        fs::copy(dir.join(DB_FILE_NAME), image.path().join(DB_FILE_NAME)).unwrap();
        if with_log {
            fs::copy(dir.join(WAL_FILE_NAME), image.path().join(WAL_FILE_NAME)).unwrap();
        }
        image
    }

    async fn value(backend: &FileBackend, key: &str) -> Option<Vec<u8>> {
        backend.get(key).await.unwrap()
    }

    #[tokio::test]
    async fn the_log_carries_acknowledged_writes_through_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        // The overlay moves into redb every two keys, without a sync: only the log is durable.
        let options = FileOptions {
            checkpoint_keys: 2,
            ..no_timed_checkpoints(1 << 20)
        };
        let backend = FileBackend::open_with(dir.path(), options).unwrap();
        backend.put(entry("kept", b"old")).await.unwrap();
        backend.put(entry("kept", b"new")).await.unwrap();
        backend.put(entry("dropped", b"x")).await.unwrap();
        backend.delete("dropped").await.unwrap();
        backend
            .transaction(vec![
                TxOp::Put(entry("tx/a", b"1")),
                TxOp::Put(entry("tx/b", b"2")),
            ])
            .await
            .unwrap();

        let without_log = crash_image(dir.path(), false);
        let reopened = FileBackend::open(without_log.path()).unwrap();
        assert_eq!(
            value(&reopened, "kept").await,
            None,
            "the writes must live in the log alone, or this test proves nothing"
        );
        drop(reopened);

        let image = crash_image(dir.path(), true);
        let reopened = FileBackend::open(image.path()).unwrap();
        assert_eq!(value(&reopened, "kept").await.as_deref(), Some(&b"new"[..]));
        assert_eq!(value(&reopened, "dropped").await, None);
        assert_eq!(reopened.list("tx/").await.unwrap(), ["a", "b"]);
    }

    /// A backend shared by concurrent tasks whose overlay is flushed every `keys` keys.
    fn flushing_every(dir: &Path, keys: usize, wal_capacity: u64) -> Arc<FileBackend> {
        let options = FileOptions {
            checkpoint_keys: keys,
            ..no_timed_checkpoints(wal_capacity)
        };
        Arc::new(FileBackend::open_with(dir, options).unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn writes_logged_by_callers_and_by_the_writer_replay_as_readers_saw_them() {
        let dir = tempfile::tempdir().unwrap();
        let backend = flushing_every(dir.path(), 7, 1 << 22);
        let mut tasks = Vec::new();
        for task in 0..8u8 {
            let backend = Arc::clone(&backend);
            tasks.push(tokio::spawn(async move {
                for round in 0..150u8 {
                    let key = format!("k{}", (task + round) % 5);
                    let durability = if (task + round) % 3 == 0 {
                        crate::Durability::Immediate
                    } else {
                        crate::Durability::Deferred
                    };
                    let op = if round % 7 == 0 {
                        TxOp::Delete(key)
                    } else {
                        TxOp::Put(entry(&key, &[task, round]))
                    };
                    backend
                        .transaction_with(vec![op], durability)
                        .await
                        .unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let mut seen = Vec::new();
        for k in 0..5 {
            seen.push(value(&backend, &format!("k{k}")).await);
        }
        // Every write was logged: with a sync behind the last one, a crash keeps them all, in
        // the order the overlay applied them.
        backend.put(entry("last", b"x")).await.unwrap();
        let image = crash_image(dir.path(), true);
        let reopened = FileBackend::open(image.path()).unwrap();
        for (k, expected) in seen.iter().enumerate() {
            assert_eq!(&value(&reopened, &format!("k{k}")).await, expected, "k{k}");
        }
        assert!(seen.iter().any(Option::is_some));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn writes_logged_during_an_overlay_flush_keep_their_newest_value() {
        let dir = tempfile::tempdir().unwrap();
        let backend = flushing_every(dir.path(), 16, 1 << 24);
        // Each task owns its keys, so their last values are known; values come back (`a`,
        // gone, `a` again) so a flush sees the same value written before and after it.
        let value_of = |task: u8, round: u16| -> Option<Vec<u8>> {
            match round % 4 {
                1 => None,
                3 => Some(vec![task, 1]),
                _ => Some(vec![task, 0]),
            }
        };
        let mut tasks = Vec::new();
        for task in 0..6u8 {
            let backend = Arc::clone(&backend);
            tasks.push(tokio::spawn(async move {
                for round in 0..400u16 {
                    let key = format!("t{task}/k{}", round % 9);
                    let op = match value_of(task, round) {
                        Some(value) => TxOp::Put(entry(&key, &value)),
                        None => TxOp::Delete(key.clone()),
                    };
                    backend
                        .transaction_with(vec![op], crate::Durability::Deferred)
                        .await
                        .unwrap();
                    let seen = backend.get(&key).await.unwrap();
                    assert_eq!(seen, value_of(task, round), "{key} just after its write");
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let expected = |task: u8, k: u16| {
            let last = (0..400u16).rev().find(|round| round % 9 == k).unwrap();
            value_of(task, last)
        };
        for task in 0..6u8 {
            for k in 0..9u16 {
                let key = format!("t{task}/k{k}");
                assert_eq!(backend.get(&key).await.unwrap(), expected(task, k), "{key}");
            }
        }
        backend.put(entry("last", b"x")).await.unwrap();
        let image = crash_image(dir.path(), true);
        let reopened = FileBackend::open(image.path()).unwrap();
        for task in 0..6u8 {
            for k in 0..9u16 {
                let key = format!("t{task}/k{k}");
                assert_eq!(
                    reopened.get(&key).await.unwrap(),
                    expected(task, k),
                    "{key}"
                );
            }
        }
    }

    #[tokio::test]
    async fn deferred_writes_ride_on_the_next_sync() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::open_with(dir.path(), no_timed_checkpoints(1 << 20)).unwrap();
        backend.put(entry("revoked", b"lease")).await.unwrap();
        let syncs = backend.log_sync_count();
        backend
            .transaction_with(
                vec![
                    TxOp::Delete("revoked".into()),
                    TxOp::Put(entry("deferred", b"1")),
                ],
                crate::Durability::Deferred,
            )
            .await
            .unwrap();
        assert_eq!(
            backend.log_sync_count(),
            syncs,
            "a deferred write waited for a sync"
        );
        assert_eq!(
            value(&backend, "revoked").await,
            None,
            "not visible at once"
        );
        assert_eq!(
            value(&backend, "deferred").await.as_deref(),
            Some(&b"1"[..])
        );

        backend.put(entry("after", b"2")).await.unwrap();
        assert_eq!(backend.log_sync_count(), syncs + 1);
        let without_log = crash_image(dir.path(), false);
        let reopened = FileBackend::open(without_log.path()).unwrap();
        assert_eq!(
            value(&reopened, "deferred").await,
            None,
            "only the log holds it"
        );
        drop(reopened);
        // The immediate write's sync covered the deferred record logged before it.
        let image = crash_image(dir.path(), true);
        let reopened = FileBackend::open(image.path()).unwrap();
        assert_eq!(value(&reopened, "revoked").await, None);
        assert_eq!(
            value(&reopened, "deferred").await.as_deref(),
            Some(&b"1"[..])
        );
        assert_eq!(value(&reopened, "after").await.as_deref(), Some(&b"2"[..]));
    }

    /// Reads merge the overlay with the database file: the same operations on the in-memory
    /// backend give the same answers, whichever checkpoints happened in between.
    #[tokio::test]
    async fn reads_see_the_overlay_over_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        // A small log checkpoints every few dozen writes, and a small overlay moves into redb
        // every few, so keys sit on both sides.
        let options = FileOptions {
            checkpoint_keys: 5,
            ..no_timed_checkpoints(4 << 10)
        };
        let file = FileBackend::open_with(dir.path(), options).unwrap();
        let model = crate::InmemBackend::new();
        let keys = [
            "a",
            "a/x",
            "a/y/z",
            "b",
            "b/1",
            "b/2/3",
            "c/d/e",
            "c0",
            "cz",
            "d/",
            "lease/1",
            "lease/2",
            "lease/3/x",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut random = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for round in 0..600 {
            let key = keys[random(keys.len())];
            let ops = if random(3) == 0 {
                vec![TxOp::Delete(key.to_owned())]
            } else {
                vec![TxOp::Put(entry(key, format!("{round}").as_bytes()))]
            };
            let commits_before = file.commit_count();
            file.transaction(ops.clone()).await.unwrap();
            model.transaction(ops).await.unwrap();
            assert_eq!(file.commit_count(), commits_before + 1);
            for prefix in ["", "a/", "b/", "c", "c/", "c/d/", "lease/", "d/"] {
                assert_eq!(
                    file.list(prefix).await.unwrap(),
                    model.list(prefix).await.unwrap(),
                    "list({prefix:?}) after round {round}"
                );
                let all = model.list(prefix).await.unwrap();
                for after in all.iter().map(String::as_str).chain(["", "b"]) {
                    assert_eq!(
                        file.list_page(prefix, after, 2).await.unwrap(),
                        model.list_page(prefix, after, 2).await.unwrap(),
                        "list_page({prefix:?}, {after:?}, 2) after round {round}"
                    );
                }
            }
            for key in keys {
                assert_eq!(file.get(key).await.unwrap(), model.get(key).await.unwrap());
            }
        }
        let checkpoints = file.checkpoint_count();
        assert!(
            checkpoints > 10,
            "only {checkpoints} checkpoints: the test needs both sides"
        );
    }

    #[tokio::test]
    async fn a_replayed_log_is_not_replayed_again() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::open_with(dir.path(), no_timed_checkpoints(1 << 20)).unwrap();
        backend.put(entry("a", &[7; 300])).await.unwrap();
        backend.put(entry("b", &[8; 300])).await.unwrap();
        let first = crash_image(dir.path(), true);

        // The replay checkpoints and the log starts over. The next record has the length of
        // the first one, so the first crash's second record, which would set `b` back, lies
        // exactly where a second record would: only its generation tells it apart.
        let recovered =
            FileBackend::open_with(first.path(), no_timed_checkpoints(1 << 20)).unwrap();
        assert_eq!(value(&recovered, "b").await, Some(vec![8; 300]));
        recovered.put(entry("b", &[9; 300])).await.unwrap();
        let second = crash_image(first.path(), true);

        let reopened = FileBackend::open(second.path()).unwrap();
        assert_eq!(value(&reopened, "a").await, Some(vec![7; 300]));
        assert_eq!(
            value(&reopened, "b").await,
            Some(vec![9; 300]),
            "a stale record came back"
        );
    }

    #[tokio::test]
    async fn checkpoints_keep_the_log_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let capacity = 16 << 10;
        let backend = FileBackend::open_with(dir.path(), no_timed_checkpoints(capacity)).unwrap();
        for i in 0..200 {
            backend
                .put(entry(&format!("k{i:03}"), &[1; 500]))
                .await
                .unwrap();
        }
        // Larger than the whole log: committed to the database file directly.
        backend.put(entry("big", &[2; 40 << 10])).await.unwrap();
        backend.put(entry("last", b"x")).await.unwrap();
        assert_eq!(
            fs::metadata(dir.path().join(WAL_FILE_NAME)).unwrap().len(),
            capacity
        );

        let image = crash_image(dir.path(), true);
        let reopened = FileBackend::open(image.path()).unwrap();
        assert_eq!(reopened.list("").await.unwrap().len(), 202);
        assert_eq!(value(&reopened, "big").await, Some(vec![2; 40 << 10]));
        assert_eq!(value(&reopened, "last").await.as_deref(), Some(&b"x"[..]));
    }

    #[tokio::test]
    async fn an_idle_writer_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let options = FileOptions {
            checkpoint_idle: Duration::from_millis(10),
            ..no_timed_checkpoints(1 << 20)
        };
        let backend = FileBackend::open_with(dir.path(), options).unwrap();
        // Deferred: nothing else will sync it.
        backend
            .transaction_with(
                vec![TxOp::Put(entry("k", b"v"))],
                crate::Durability::Deferred,
            )
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let image = crash_image(dir.path(), false);
            let reopened = FileBackend::open(image.path()).unwrap();
            if value(&reopened, "k").await.is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "no checkpoint after 10 s idle");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn second_open_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let first = FileBackend::open(dir.path()).unwrap();
        let err = FileBackend::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("already open"), "{err}");
        // The failed open must not have disturbed the first handle's lock or data.
        first.put(entry("k", b"v")).await.unwrap();
        drop(first);
        let again = FileBackend::open(dir.path()).unwrap();
        assert_eq!(again.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[cfg(unix)]
    #[test]
    fn creates_private_directory() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("x/y");
        let backend = FileBackend::open(&nested).unwrap();
        let mode = fs::metadata(&nested).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let mode = fs::metadata(backend.db_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "database file must not be group/world accessible"
        );
        assert_eq!(backend.db_path(), nested.join(DB_FILE_NAME));
    }

    #[test]
    fn open_on_a_regular_file_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        fs::write(&file, b"not a directory").unwrap();
        assert!(FileBackend::open(&file).is_err());
    }
}
