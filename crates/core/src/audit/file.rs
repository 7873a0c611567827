//! The `file` device: appends lines to a file (or standard output, or nowhere).
//!
//! Each line is one `write(2)` on a file opened with `O_APPEND`, with no fsync, as in Vault:
//! an entry is in the operating system's hands before the request goes on, and survives the
//! server crashing but not the machine losing power. Reopened on SIGHUP for log rotation.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use async_trait::async_trait;
use mayfly_audit::{ChainState, chain::split_link};

use super::device::Sink;

/// How far back from the end of a file the chain state is looked for at startup.
const MAX_TAIL_SCAN: u64 = 256 * 1024 * 1024;
const TAIL_CHUNK: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Path(PathBuf),
    Stdout,
    Discard,
}

impl Target {
    pub(crate) fn parse(file_path: &str) -> Target {
        match file_path {
            "stdout" => Target::Stdout,
            "discard" => Target::Discard,
            path => Target::Path(PathBuf::from(path)),
        }
    }
}

pub(crate) struct FileSink {
    target: Target,
    /// Permission bits for the file; `None` leaves them alone (`mode=0000`).
    mode: Option<u32>,
    file: Option<File>,
    stdout_open: bool,
    /// The file's length after the last complete line; a failed write is cut back to it so a
    /// partial line never stays in the file.
    good_len: u64,
}

impl FileSink {
    pub(crate) fn new(target: Target, mode: Option<u32>) -> FileSink {
        FileSink {
            target,
            mode,
            file: None,
            stdout_open: false,
            good_len: 0,
        }
    }

    fn open_file(&self, path: &Path) -> io::Result<(File, u64)> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(self.mode.unwrap_or(0o600))
            .open(path)?;
        let metadata = file.metadata()?;
        if let Some(mode) = self.mode
            && metadata.is_file()
            && metadata.permissions().mode() & 0o7777 != mode
        {
            file.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        let mut len = metadata.len();
        // A line cut short by a crash is closed off, so the next line starts cleanly; the
        // verifier reports the cut line.
        if metadata.is_file() && len > 0 && last_byte(path, len)? != Some(b'\n') {
            file.write_all(b"\n")?;
            len += 1;
        }
        Ok((file, len))
    }
}

fn last_byte(path: &Path, len: u64) -> io::Result<Option<u8>> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(len - 1))?;
    let mut byte = [0u8; 1];
    match file.read(&mut byte)? {
        1 => Ok(Some(byte[0])),
        _ => Ok(None),
    }
}

#[async_trait]
impl Sink for FileSink {
    async fn open(&mut self) -> io::Result<bool> {
        match &self.target {
            Target::Discard => Ok(false),
            Target::Stdout => {
                let opened = !self.stdout_open;
                self.stdout_open = true;
                Ok(opened)
            }
            Target::Path(path) => {
                if self.file.is_some() {
                    return Ok(false);
                }
                let (file, len) = self.open_file(path)?;
                self.file = Some(file);
                self.good_len = len;
                Ok(true)
            }
        }
    }

    async fn write(&mut self, line: &[u8]) -> io::Result<()> {
        match &self.target {
            Target::Discard => Ok(()),
            Target::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(line)?;
                out.flush()
            }
            Target::Path(_) => {
                let file = self
                    .file
                    .as_mut()
                    .ok_or_else(|| io::Error::other("audit file is not open"))?;
                match file.write_all(line) {
                    Ok(()) => {
                        self.good_len += line.len() as u64;
                        Ok(())
                    }
                    Err(err) => {
                        if let Ok(metadata) = file.metadata()
                            && metadata.is_file()
                            && metadata.len() > self.good_len
                        {
                            let _ = file.set_len(self.good_len);
                        }
                        Err(err)
                    }
                }
            }
        }
    }

    fn close(&mut self) {
        self.file = None;
        self.stdout_open = false;
    }

    fn recover(&mut self, prefix: &str, persisted: Option<ChainState>) -> ChainState {
        let Target::Path(path) = &self.target else {
            return persisted.unwrap_or_default();
        };
        match recover_from_file(path, prefix, persisted) {
            Ok(state) => state,
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "Could not read the audit file's tail; continuing from the saved chain state.");
                persisted.unwrap_or_default()
            }
        }
    }
}

/// The chain state to continue from, given the file and the last saved state.
///
/// The saved state is at most a second old, so after a crash the file may hold newer lines.
/// They are adopted only if the file still contains the saved line unchanged; otherwise the
/// saved state wins, and the next header makes any difference visible to the verifier.
fn recover_from_file(
    path: &Path,
    prefix: &str,
    persisted: Option<ChainState>,
) -> io::Result<ChainState> {
    let persisted = persisted.filter(|state| state.next_seq > 0);
    let Ok(metadata) = fs::metadata(path) else {
        return Ok(persisted.unwrap_or_default());
    };
    if !metadata.is_file() {
        return Ok(persisted.unwrap_or_default());
    }
    let mut newest = None;
    let mut confirmed = false;
    scan_backwards(path, metadata.len(), |line| {
        let Some((_, link)) = line.strip_prefix(prefix.as_bytes()).and_then(split_link) else {
            return true;
        };
        if newest.is_none() {
            newest = Some(ChainState {
                next_seq: link.seq + 1,
                last_hash: link.hash,
            });
        }
        let Some(saved) = persisted else {
            return false;
        };
        if link.seq + 1 == saved.next_seq {
            confirmed = link.hash == saved.last_hash;
            return false;
        }
        link.seq + 1 > saved.next_seq
    })?;
    Ok(match (persisted, newest) {
        (None, newest) => newest.unwrap_or_default(),
        (Some(saved), None) => saved,
        (Some(saved), Some(newest)) if confirmed && newest.next_seq >= saved.next_seq => newest,
        (Some(saved), Some(_)) => {
            tracing::warn!(
                path = %path.display(),
                "The audit file does not continue the saved audit chain; continuing from the saved state."
            );
            saved
        }
    })
}

/// Calls `visit` with each complete line (without its newline), newest first, until it
/// returns false or [`MAX_TAIL_SCAN`] bytes were read.
fn scan_backwards(path: &Path, len: u64, mut visit: impl FnMut(&[u8]) -> bool) -> io::Result<()> {
    let mut file = File::open(path)?;
    let stop = len.saturating_sub(MAX_TAIL_SCAN);
    let mut end = len;
    // Bytes after the last newline seen, still to be completed by earlier chunks.
    let mut carry: Vec<u8> = Vec::new();
    while end > stop {
        let start = end.saturating_sub(TAIL_CHUNK).max(stop);
        let mut chunk = vec![0u8; (end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&carry);
        let mut rest = &chunk[..];
        while let Some(at) = rest.iter().rposition(|byte| *byte == b'\n') {
            let line = &rest[at + 1..];
            if !line.is_empty() && !visit(line) {
                return Ok(());
            }
            rest = &rest[..at];
        }
        carry = rest.to_vec();
        end = start;
    }
    if end == 0 && !carry.is_empty() {
        visit(&carry);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use mayfly_audit::SigningKey;

    use super::*;

    fn write_chain(path: &Path, state: ChainState, lines: usize) -> ChainState {
        let (key, _) = SigningKey::generate().unwrap();
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap();
        let (line, mut state) = state.header("", "t", "file/", &key);
        file.write_all(&line).unwrap();
        for i in 0..lines {
            let (line, next) =
                state.seal("", format!(r#"{{"type":"request","i":{i}}}"#).as_bytes());
            file.write_all(&line).unwrap();
            state = next;
        }
        state
    }

    #[tokio::test]
    async fn writes_lines_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/audit.log");
        let mut sink = FileSink::new(Target::Path(path.clone()), Some(0o640));
        assert!(sink.open().await.unwrap(), "a new file needs a header");
        assert!(!sink.open().await.unwrap());
        sink.write(b"one\n").await.unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        fs::rename(&path, dir.path().join("sub/audit.log.1")).unwrap();
        sink.close();
        assert!(sink.open().await.unwrap());
        sink.write(b"two\n").await.unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two\n");
        assert_eq!(
            fs::read(dir.path().join("sub/audit.log.1")).unwrap(),
            b"one\n"
        );
    }

    #[tokio::test]
    async fn a_full_device_fails_the_write() {
        let mut sink = FileSink::new(Target::Path(PathBuf::from("/dev/full")), None);
        sink.open().await.unwrap();
        assert!(sink.write(b"x\n").await.is_err());
    }

    #[tokio::test]
    async fn a_cut_line_is_closed_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        fs::write(&path, b"complete\npartial").unwrap();
        let mut sink = FileSink::new(Target::Path(path.clone()), None);
        sink.open().await.unwrap();
        sink.write(b"next\n").await.unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"complete\npartial\nnext\n");
    }

    #[test]
    fn recovery_adopts_newer_lines_only_if_they_extend_the_saved_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let saved = write_chain(&path, ChainState::default(), 3);
        let newest = write_chain(&path, saved, 2);
        // Nothing saved: the file's last line.
        assert_eq!(recover_from_file(&path, "", None).unwrap(), newest);
        // Saved state is older but in the file: the newer lines are adopted.
        assert_eq!(recover_from_file(&path, "", Some(saved)).unwrap(), newest);
        // Saved state is not in the file (another chain): the saved state wins.
        let elsewhere = ChainState {
            next_seq: 2,
            last_hash: mayfly_audit::Digest([9; 32]),
        };
        assert_eq!(
            recover_from_file(&path, "", Some(elsewhere)).unwrap(),
            elsewhere
        );
        // No file (rotated away): the saved state.
        let gone = dir.path().join("gone.log");
        assert_eq!(recover_from_file(&gone, "", Some(saved)).unwrap(), saved);
    }

    #[test]
    fn backward_scan_sees_every_line_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines");
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!("line {i}\n"));
        }
        fs::write(&path, &text).unwrap();
        let mut seen = Vec::new();
        scan_backwards(&path, text.len() as u64, |line| {
            seen.push(String::from_utf8(line.to_vec()).unwrap());
            true
        })
        .unwrap();
        assert_eq!(seen.len(), 20_000);
        assert_eq!(seen[0], "line 19999");
        assert_eq!(seen[19_999], "line 0");
    }
}
