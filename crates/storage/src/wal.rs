//! The file backend's write-ahead log: each committed batch as one checksummed record, made
//! durable by one sequential write and one `fdatasync` in a preallocated file.
//!
//! A durable redb commit rewrites a dozen scattered B-tree and allocator pages and syncs them
//! all; a log record is one contiguous write inside space that already exists, so its sync
//! carries no file-size change. The backend commits batches to redb without syncing and logs
//! them here; a checkpoint (a durable redb commit) then makes the log's contents redundant.
//!
//! Records carry the *generation* of the log. A checkpoint stores the next generation in redb,
//! in the same durable commit, and the log restarts at offset 0 under it. Whatever an earlier
//! generation left further into the file can then never be replayed: reading stops at the first
//! record that is torn, out of sequence, or of another generation.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::{Entry, TxOp};

/// Name of the log file inside the storage directory.
pub const WAL_FILE_NAME: &str = "mayfly.wal";

const MAGIC: u32 = 0x4D46_574C;
/// magic, generation, sequence, payload length, checksum.
const HEADER_LEN: usize = 4 + 8 + 8 + 4 + 4;
const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;
/// Zero-filling writes go out in pieces of this size.
const FILL_CHUNK: usize = 1 << 20;
/// The first read of the log at open; it grows only while records continue.
const READ_CHUNK: usize = 64 << 10;
/// Unsynced records are held in memory up to this many bytes, then written out.
const UNWRITTEN_LIMIT: usize = 64 << 10;

/// The open log of one generation.
pub struct Wal {
    file: File,
    capacity: u64,
    generation: u64,
    next_sequence: u64,
    /// Where the next record goes: the end of the written records and of `unwritten`.
    position: u64,
    record: Vec<u8>,
    /// Records appended without a sync and not yet written, which start at
    /// `position - unwritten.len()`. A record nobody waits to be durable need not reach the
    /// file before the next sync does: the sync's one write carries them, and a write syscall
    /// per record costs more than the record's bookkeeping.
    unwritten: Vec<u8>,
}

/// What [`Wal::append`] did with a batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Appended {
    /// The record is written, and durable if the append synced.
    Logged,
    /// The record does not fit in what is left of the file; nothing was written.
    NoRoom,
}

impl Wal {
    /// Opens the log at `path`, creating it and zero-filling it to `capacity` bytes if needed, and
    /// returns it with the operations of every intact record of `generation`, in commit order.
    ///
    /// The returned log continues after those records; the caller is expected to fold them into
    /// redb durably and then [`restart`](Self::restart) the log under a new generation.
    pub fn open(path: &Path, capacity: u64, generation: u64) -> io::Result<(Self, Vec<TxOp>)> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let created = !path.exists();
        let file = options.open(path)?;
        let len = file.metadata()?.len();
        let capacity = capacity.max(len);
        if len < capacity {
            zero_fill(&file, len, capacity)?;
            file.sync_all()?;
            if created && let Some(dir) = path.parent() {
                // The log's own directory entry must be durable before anything relies on it.
                File::open(dir)?.sync_all()?;
            }
        }
        let replay = read_log(&file, capacity, generation)?;
        let wal = Self {
            file,
            capacity,
            generation,
            next_sequence: replay.records,
            position: replay.end as u64,
            record: Vec::new(),
            unwritten: Vec::new(),
        };
        Ok((wal, replay.ops))
    }

    /// Writes the batch as one record and, if `sync`, syncs it with every record before it.
    /// Without `sync` the record may stay in memory until the next sync (or until
    /// [`UNWRITTEN_LIMIT`] bytes wait), so it survives neither a power loss nor a crash of the
    /// process before then.
    /// On an error the record may be partly written; the caller must not acknowledge the batch,
    /// and should make its state durable by other means and restart the log before appending
    /// again.
    pub fn append<'a>(
        &mut self,
        ops: impl Iterator<Item = &'a TxOp>,
        sync: bool,
    ) -> io::Result<Appended> {
        encode_record(&mut self.record, self.generation, self.next_sequence, ops);
        if self.record.len() as u64 > self.capacity - self.position {
            return Ok(Appended::NoRoom);
        }
        if !sync && self.unwritten.len() + self.record.len() <= UNWRITTEN_LIMIT {
            self.unwritten.extend_from_slice(&self.record);
        } else if self.unwritten.is_empty() {
            self.file.write_all_at(&self.record, self.position)?;
        } else {
            // One write for the held records and this one.
            let start = self.position - self.unwritten.len() as u64;
            self.unwritten.extend_from_slice(&self.record);
            let written = self.file.write_all_at(&self.unwritten, start);
            self.unwritten.clear();
            written?;
        }
        if sync {
            self.file.sync_data()?;
        }
        self.position += self.record.len() as u64;
        self.next_sequence += 1;
        Ok(Appended::Logged)
    }

    /// Starts writing `generation` from the beginning of the file. Call only once a durable
    /// commit holding every logged batch has stored `generation` as the current one.
    pub fn restart(&mut self, generation: u64) {
        // The durable commit holds what they held.
        self.unwritten.clear();
        self.generation = generation;
        self.next_sequence = 0;
        self.position = 0;
    }

    /// Bytes of records written in the current generation.
    pub fn used(&self) -> u64 {
        self.position
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }
}

/// Reads only as much of the file as the records need: after a clean shutdown that is one
/// header, which keeps a restart from reading megabytes of stale bytes.
fn read_log(file: &File, capacity: u64, generation: u64) -> io::Result<Replay> {
    let capacity = usize::try_from(capacity).map_err(io::Error::other)?;
    let mut contents = Vec::new();
    let mut want = capacity.min(READ_CHUNK);
    loop {
        let have = contents.len();
        contents.resize(want, 0);
        file.read_exact_at(&mut contents[have..], have as u64)?;
        let replay = read_records(&contents, generation);
        let next = contents.len() - replay.end;
        match record_len(&contents[replay.end..], generation, replay.records) {
            Some(len) if len > next && want < capacity => {
                want = capacity.min((replay.end + len).max(want * 2));
            }
            _ if next < HEADER_LEN && want < capacity => want = capacity.min(want * 2),
            _ => return Ok(replay),
        }
    }
}

fn zero_fill(file: &File, from: u64, to: u64) -> io::Result<()> {
    // Written zeros, not a sparse extent: a later sync of a record must not have to allocate.
    let zeros = vec![0; FILL_CHUNK];
    let mut at = from;
    while at < to {
        let n = usize::try_from(to - at).map_or(FILL_CHUNK, |left| left.min(FILL_CHUNK));
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

fn encode_record<'a>(
    out: &mut Vec<u8>,
    generation: u64,
    sequence: u64,
    ops: impl Iterator<Item = &'a TxOp>,
) {
    out.clear();
    out.resize(HEADER_LEN, 0);
    for op in ops {
        match op {
            TxOp::Put(entry) => {
                out.push(TAG_PUT);
                put_bytes(out, entry.key.as_bytes());
                put_bytes(out, &entry.value);
            }
            TxOp::Delete(key) => {
                out.push(TAG_DELETE);
                put_bytes(out, key.as_bytes());
            }
        }
    }
    let payload_len = u32::try_from(out.len() - HEADER_LEN).unwrap_or(u32::MAX);
    out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    out[4..12].copy_from_slice(&generation.to_le_bytes());
    out[12..20].copy_from_slice(&sequence.to_le_bytes());
    out[20..24].copy_from_slice(&payload_len.to_le_bytes());
    let checksum = checksum(&out[4..24], &out[HEADER_LEN..]);
    out[24..28].copy_from_slice(&checksum.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // A record that long never fits the log (it goes to redb directly); saturating keeps the
    // encoder total without a second error path.
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(header);
    hasher.update(payload);
    hasher.finalize()
}

/// The intact prefix of a log image.
struct Replay {
    ops: Vec<TxOp>,
    records: u64,
    end: usize,
}

fn read_records(contents: &[u8], generation: u64) -> Replay {
    let mut replay = Replay {
        ops: Vec::new(),
        records: 0,
        end: 0,
    };
    while let Some((ops, len)) = read_record(&contents[replay.end..], generation, replay.records) {
        replay.ops.extend(ops);
        replay.records += 1;
        replay.end += len;
    }
    replay
}

/// The length of the record at the start of `bytes`, from its header alone, if the header is
/// that of record `sequence` of `generation`.
fn record_len(bytes: &[u8], generation: u64, sequence: u64) -> Option<usize> {
    let header = bytes.get(..HEADER_LEN)?;
    let word = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap());
    let long = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap());
    if word(0) != MAGIC || long(4) != generation || long(12) != sequence {
        return None;
    }
    HEADER_LEN.checked_add(usize::try_from(word(20)).ok()?)
}

/// Decodes the record at the start of `bytes` if it is intact and is record `sequence` of
/// `generation`; returns its operations and its length.
fn read_record(bytes: &[u8], generation: u64, sequence: u64) -> Option<(Vec<TxOp>, usize)> {
    let len = record_len(bytes, generation, sequence)?;
    let record = bytes.get(..len)?;
    let stored = u32::from_le_bytes(record[24..28].try_into().unwrap());
    let payload = &record[HEADER_LEN..];
    if checksum(&record[4..24], payload) != stored {
        return None;
    }
    Some((decode_ops(payload)?, len))
}

fn decode_ops(mut payload: &[u8]) -> Option<Vec<TxOp>> {
    let mut ops = Vec::new();
    while let Some((&tag, rest)) = payload.split_first() {
        payload = rest;
        let key = String::from_utf8(take_bytes(&mut payload)?.to_vec()).ok()?;
        ops.push(match tag {
            TAG_PUT => TxOp::Put(Entry {
                key,
                value: take_bytes(&mut payload)?.to_vec(),
            }),
            TAG_DELETE => TxOp::Delete(key),
            _ => return None,
        });
    }
    Some(ops)
}

fn take_bytes<'a>(payload: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = payload.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    let bytes = rest.get(..len)?;
    *payload = &rest[len..];
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &[u8]) -> TxOp {
        TxOp::Put(Entry {
            key: key.into(),
            value: value.into(),
        })
    }

    fn record(generation: u64, sequence: u64, ops: &[TxOp]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_record(&mut out, generation, sequence, ops.iter());
        out
    }

    #[test]
    fn records_round_trip_in_order() {
        let first = [put("a", b"1"), TxOp::Delete("b".into())];
        let second = [put("c/d", &[0, 255, 7]), put("e", b"")];
        let mut image = record(3, 0, &first);
        image.extend(record(3, 1, &second));
        let end = image.len();
        image.extend([0; 64]);

        let replay = read_records(&image, 3);
        assert_eq!(replay.ops, [first.as_slice(), &second].concat());
        assert_eq!(replay.records, 2);
        assert_eq!(replay.end, end);
    }

    #[test]
    fn reading_stops_at_another_generation_or_a_gap() {
        let live = record(5, 0, &[put("live", b"x")]);
        for stale in [
            record(4, 1, &[put("stale", b"x")]),
            record(5, 2, &[put("skipped", b"x")]),
        ] {
            let image = [live.clone(), stale].concat();
            let replay = read_records(&image, 5);
            assert_eq!(replay.ops, [put("live", b"x")]);
            assert_eq!(replay.end, live.len());
        }
        assert!(read_records(&live, 6).ops.is_empty());
    }

    #[test]
    fn a_torn_or_corrupted_record_ends_the_log() {
        let first = record(1, 0, &[put("a", b"kept")]);
        let second = record(1, 1, &[put("b", b"torn")]);
        let torn = [first.as_slice(), &second[..second.len() - 1]].concat();
        let mut flipped = [first.clone(), second.clone()].concat();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        for image in [torn, flipped] {
            let replay = read_records(&image, 1);
            assert_eq!(replay.ops, [put("a", b"kept")]);
            assert_eq!(replay.records, 1);
        }
    }

    #[test]
    fn append_refuses_what_does_not_fit_and_restart_rewinds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WAL_FILE_NAME);
        let (mut wal, replayed) = Wal::open(&path, 4096, 0).unwrap();
        assert!(replayed.is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096);

        let small = [put("k", b"v")];
        assert_eq!(wal.append(small.iter(), true).unwrap(), Appended::Logged);
        let big = [put("big", &[1; 5000])];
        assert_eq!(wal.append(big.iter(), true).unwrap(), Appended::NoRoom);
        assert_eq!(wal.append(small.iter(), true).unwrap(), Appended::Logged);
        let used = wal.used();
        drop(wal);

        let (mut wal, replayed) = Wal::open(&path, 4096, 0).unwrap();
        assert_eq!(replayed, [small.as_slice(), &small].concat());
        assert_eq!(wal.used(), used);

        wal.restart(1);
        assert_eq!(
            wal.append([put("new", b"gen")].iter(), true).unwrap(),
            Appended::Logged
        );
        drop(wal);
        let (_, replayed) = Wal::open(&path, 4096, 0).unwrap();
        assert!(
            replayed.is_empty(),
            "generation 0 was overwritten at its start"
        );
        let (_, replayed) = Wal::open(&path, 4096, 1).unwrap();
        assert_eq!(replayed, [put("new", b"gen")]);
    }

    #[test]
    fn unsynced_records_reach_the_file_with_the_next_sync_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WAL_FILE_NAME);
        let (mut wal, _) = Wal::open(&path, 1 << 20, 0).unwrap();
        let held = [put("a", b"1"), put("b", b"2")];
        for op in &held {
            assert_eq!(
                wal.append(std::iter::once(op), false).unwrap(),
                Appended::Logged
            );
        }
        let (_, replayed) = Wal::open(&path, 1 << 20, 0).unwrap();
        assert!(replayed.is_empty(), "held in memory, not written");

        let synced = put("c", b"3");
        wal.append(std::iter::once(&synced), true).unwrap();
        let (_, replayed) = Wal::open(&path, 1 << 20, 0).unwrap();
        assert_eq!(replayed, [held[0].clone(), held[1].clone(), synced.clone()]);

        // Held records past the limit are written without a sync.
        let bulky = put("bulky", &[7; UNWRITTEN_LIMIT / 4]);
        for _ in 0..5 {
            wal.append(std::iter::once(&bulky), false).unwrap();
        }
        let (_, replayed) = Wal::open(&path, 1 << 20, 0).unwrap();
        assert!(
            replayed.len() >= 3 + 4,
            "{} records written",
            replayed.len()
        );

        // A restart drops what was held: the durable commit before it covers them.
        wal.append(std::iter::once(&put("dropped", b"x")), false)
            .unwrap();
        wal.restart(1);
        wal.append(std::iter::once(&put("d", b"4")), true).unwrap();
        let (_, replayed) = Wal::open(&path, 1 << 20, 1).unwrap();
        assert_eq!(replayed, [put("d", b"4")]);
    }

    #[test]
    fn records_past_the_first_read_are_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WAL_FILE_NAME);
        let (mut wal, _) = Wal::open(&path, 1 << 20, 9).unwrap();
        let mut written = Vec::new();
        for i in 0..100 {
            let op = put(&format!("k{i}"), &[i as u8; 2000]);
            wal.append([&op].into_iter(), true).unwrap();
            written.push(op);
        }
        // One record that straddles several reads on its own.
        let big = put("big", &[1; 150 << 10]);
        wal.append([&big].into_iter(), true).unwrap();
        written.push(big);
        drop(wal);

        let (wal, replayed) = Wal::open(&path, 1 << 20, 9).unwrap();
        assert_eq!(replayed, written);
        assert!(wal.used() > (READ_CHUNK as u64) * 3);
    }
}
