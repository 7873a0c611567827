//! The file backend: one redb database inside the configured directory, with group commit.
//!
//! Writes are funnelled to a single writer thread, which folds every request queued at the time
//! into one redb write transaction and one fsync. Concurrent writers therefore share the cost of
//! durability instead of queueing behind each other's fsyncs.

use std::fmt::Display;
use std::fs::{self, OpenOptions};
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;

use async_trait::async_trait;
use redb::{
    Database, DatabaseError, ReadOnlyTable, ReadableDatabase, TableDefinition,
    backends::FileBackend as RedbFile,
};
use tokio::sync::oneshot;

use crate::children::{Children, Step};
use crate::{Backend, Entry, Error, Result, TxOp};

/// Name of the database file inside the storage directory.
pub const DB_FILE_NAME: &str = "mayfly.redb";

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");

/// Upper bound on requests per commit, so one huge burst cannot delay its first waiters
/// indefinitely behind an ever-growing transaction.
const MAX_BATCH: usize = 1024;

/// Pages up to this many children are listed on the calling thread.
const INLINE_LIST_LIMIT: usize = 512;

type Table = ReadOnlyTable<&'static str, &'static [u8]>;

struct WriteRequest {
    ops: Vec<TxOp>,
    reply: oneshot::Sender<Result<()>>,
}

/// Durable storage in a single ACID file (`<dir>/mayfly.redb`).
///
/// Every acknowledged write has been fsynced. Dropping the backend lets the writer finish the
/// requests already queued; the file is released once in-flight reads have finished too.
pub struct FileBackend {
    db: Arc<Database>,
    db_path: PathBuf,
    queue: Option<mpsc::Sender<WriteRequest>>,
    writer: Option<thread::JoinHandle<()>>,
    commits: Arc<AtomicU64>,
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
        create_private_dir(dir)?;
        let db_path = dir.join(DB_FILE_NAME);
        let db = open_db(&db_path)?;

        // Creating the table up front lets readers assume it exists.
        let txn = db
            .begin_write()
            .map_err(|e| backend_err("begin write", e))?;
        txn.open_table(TABLE)
            .map_err(|e| backend_err("create table", e))?;
        txn.commit().map_err(|e| backend_err("commit", e))?;

        let db = Arc::new(db);
        let commits = Arc::new(AtomicU64::new(0));
        let (queue, requests) = mpsc::channel();
        let writer = thread::Builder::new()
            .name("mayfly-storage-writer".into())
            .spawn({
                let db = Arc::clone(&db);
                let commits = Arc::clone(&commits);
                move || run_writer(&db, &requests, &commits)
            })?;
        Ok(Self {
            db,
            db_path,
            queue: Some(queue),
            writer: Some(writer),
            commits,
        })
    }

    /// Number of write transactions committed since `open`. With concurrent writers this is
    /// lower than the number of writes: that is group commit at work.
    pub fn commit_count(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Path of the database file.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    async fn write(&self, ops: Vec<TxOp>) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .as_ref()
            .ok_or(Error::Closed)?
            .send(WriteRequest { ops, reply })
            .map_err(|_| Error::Closed)?;
        // A dropped reply means the writer thread died before answering.
        answer.await.map_err(|_| Error::Closed)?
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
        self.write(vec![TxOp::Put(entry)]).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.write(vec![TxOp::Delete(key.to_owned())]).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.list_page(prefix, "", 0).await
    }

    async fn list_page(&self, prefix: &str, after: &str, limit: usize) -> Result<Vec<String>> {
        if (1..=INLINE_LIST_LIMIT).contains(&limit) {
            // As with `get`: a bounded page is a short range scan, cheaper inline than the two
            // thread hand-offs of the blocking pool. Revoking a token lists three folders.
            let read = || -> Result<Vec<String>, redb::Error> {
                let txn = self.db.begin_read()?;
                let table = txn.open_table(TABLE)?;
                list_children(&table, prefix, after, limit)
            };
            return read().map_err(|e| backend_err("read", e));
        }
        let (prefix, after) = (prefix.to_owned(), after.to_owned());
        self.read(move |table| list_children(table, &prefix, &after, limit))
            .await
    }

    async fn transaction(&self, ops: Vec<TxOp>) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        self.write(ops).await
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

fn run_writer(db: &Database, requests: &mpsc::Receiver<WriteRequest>, commits: &AtomicU64) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = requests.recv() {
        batch.push(first);
        batch.extend(requests.try_iter().take(MAX_BATCH - 1));
        let outcome = commit_batch(db, &batch).map_err(|e| {
            tracing::warn!(requests = batch.len(), error = %e, "storage commit failed");
            e.to_string()
        });
        if outcome.is_ok() {
            commits.fetch_add(1, Ordering::Relaxed);
        }
        for request in batch.drain(..) {
            let result = outcome.clone().map_err(|e| backend_err("commit", e));
            // The waiter may have given up (its future was dropped); the write stands regardless.
            let _ = request.reply.send(result);
        }
    }
}

/// Applies every request of the batch, in order, in one transaction. Any error aborts the whole
/// batch (the transaction is dropped uncommitted), which keeps each request atomic.
fn commit_batch(db: &Database, batch: &[WriteRequest]) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut table = txn.open_table(TABLE)?;
        for op in batch.iter().flat_map(|request| &request.ops) {
            match op {
                TxOp::Put(entry) => {
                    table.insert(entry.key.as_str(), entry.value.as_slice())?;
                }
                TxOp::Delete(key) => {
                    table.remove(key.as_str())?;
                }
            }
        }
    }
    txn.commit()?;
    Ok(())
}

fn list_children(
    table: &Table,
    prefix: &str,
    after: &str,
    limit: usize,
) -> Result<Vec<String>, redb::Error> {
    let mut children = Children::new(prefix, after, limit);
    let mut from = children.start();
    'scan: loop {
        let lower = from.as_ref().map(String::as_str);
        for item in table.range::<&str>((lower, Bound::Unbounded))? {
            let (key, _) = item?;
            match children.feed(key.value()) {
                Step::Next => {}
                Step::Seek(next) => {
                    from = Bound::Included(next);
                    continue 'scan;
                }
                Step::Done => break 'scan,
            }
        }
        break;
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
