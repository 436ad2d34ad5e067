//! Offline files on disk: the C++ `OfflineFileHeader` (`transfer_task.h`),
//! `GetCurrentOfflinePath`, `OpenByRead`, `OpenByWrite` and the file parts
//! of `OfflineTransferTask` (`transfer_task.cpp`).
//!
//! The layout is the C++ one, so either server serves the other's files:
//! `<cwd>/offline_file/<first 2 chars of the task id>/<task id>`, a 960-byte
//! header of NUL-padded decimal strings (`task_id[128]`, `from[64]`,
//! `to[64]`, `create_time[128]`, `file_name[512]`, `size[64]`), then the
//! file's bytes.
//!
//! Differences from the C++, on purpose:
//! - A task id is only ever used as a path when it is a lowercase UUID
//!   ([`is_task_id`]); the C++ builds the path from whatever the client
//!   sends, so `../x/evil` opens a file outside `offline_file/`. Files are
//!   opened with `O_NOFOLLOW` and the two-character directory must be a
//!   real directory, so no symlink leads out either.
//! - An upload is written to `<task id>.part` and renamed when complete: a
//!   file under its final name is always whole (the C++ writes in place, so
//!   a lost upload leaves a truncated file). `.part` files left by a crash
//!   are removed at start-up.
//! - The header's `file_name` holds the name (the C++ writes it empty, and
//!   formats the name as a `printf` format string when it does not).
//! - A stored file is checked against its header (task id, size) before it
//!   is served; a download reads the segments it is asked for at their
//!   offset, so any number of downloads of one file run at once.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Size of the header before the file's bytes.
pub const HEADER_LEN: usize = 960;
/// `SEGMENT_SIZE`: offline files move in segments of 32 KiB.
pub const SEGMENT_SIZE: u32 = 32_768;
/// The directory under the working directory (`GetCurrentOfflinePath`).
pub const OFFLINE_DIR: &str = "offline_file";
/// Suffix of an upload in progress.
const PART_SUFFIX: &str = ".part";

/// Widths of the header fields, in order.
const TASK_ID_LEN: usize = 128;
const USER_LEN: usize = 64;
const TIME_LEN: usize = 128;
const NAME_LEN: usize = 512;
const SIZE_LEN: usize = 64;

/// Why an offline file could not be used.
#[derive(Debug, Error)]
pub enum OfflineError {
    /// The task id is not one we could have issued (not a lowercase UUID).
    #[error("task id {0:?} is not a task id")]
    BadTaskId(String),
    /// No stored file has this task id.
    #[error("no offline file for task {0}")]
    NotFound(String),
    /// The stored file does not hold what its header says.
    #[error("offline file {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A path under `offline_file/` is a symlink or not what it should be.
    #[error("{0} is not a plain file or directory of ours")]
    NotOurs(PathBuf),
    /// The file system failed.
    #[error("offline file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OfflineError + '_ {
    move |source| OfflineError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// True for a task id we could have issued: a UUID in the lowercase form
/// `uuid_unparse` writes (36 characters, hyphens at 8, 13, 18 and 23).
/// Only such ids ever become paths.
pub fn is_task_id(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// A new random (version 4) task id, as `uuid_generate` + `uuid_unparse`.
pub fn new_task_id(random: [u8; 16]) -> String {
    let mut b = random;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// One segment of an offline file: where it starts, how long it is, and
/// whether it is the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Offset in the file.
    pub offset: u32,
    /// Length (32 KiB, or the remainder for the last one).
    pub len: u32,
    /// The file ends with it.
    pub last: bool,
}

/// The segment starting at `offset` of a file of `file_size` bytes, if
/// `offset` starts one (`GetNextSegmentBlockSize`). A 0-byte file has one
/// empty segment at 0, so it completes at once (the C++ pulls it forever).
pub fn segment_at(offset: u32, file_size: u32) -> Option<Segment> {
    if file_size == 0 {
        return (offset == 0).then_some(Segment {
            offset: 0,
            len: 0,
            last: true,
        });
    }
    let aligned = offset / SEGMENT_SIZE * SEGMENT_SIZE == offset;
    if !aligned || offset >= file_size {
        return None;
    }
    let len = SEGMENT_SIZE.min(file_size - offset);
    Some(Segment {
        offset,
        len,
        last: offset + len == file_size,
    })
}

/// `OfflineFileHeader`: who sent what to whom, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHeader {
    /// The task id (the file's name).
    pub task_id: String,
    /// Sender.
    pub from_user_id: u32,
    /// Receiver.
    pub to_user_id: u32,
    /// When the upload started, unix seconds.
    pub create_time: u64,
    /// The file's name as the sender gave it (empty in files the C++ wrote).
    pub file_name: String,
    /// Bytes after the header.
    pub file_size: u32,
}

impl FileHeader {
    /// The 960 bytes on disk.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let mut at = 0;
        let name = truncate_utf8(&self.file_name, NAME_LEN - 1);
        for (value, width) in [
            (self.task_id.as_str(), TASK_ID_LEN),
            (&self.from_user_id.to_string(), USER_LEN),
            (&self.to_user_id.to_string(), USER_LEN),
            (&self.create_time.to_string(), TIME_LEN),
            (name, NAME_LEN),
            (&self.file_size.to_string(), SIZE_LEN),
        ] {
            let bytes = value.as_bytes();
            let n = bytes.len().min(width - 1);
            out[at..at + n].copy_from_slice(&bytes[..n]);
            at += width;
        }
        out
    }

    /// Reads a header; `Err` names the field that does not parse.
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Result<FileHeader, String> {
        let mut at = 0;
        let mut field = |width: usize| {
            let raw = &bytes[at..at + width];
            at += width;
            let end = raw.iter().position(|&b| b == 0).unwrap_or(width);
            String::from_utf8_lossy(&raw[..end]).into_owned()
        };
        let task_id = field(TASK_ID_LEN);
        let from = field(USER_LEN);
        let to = field(USER_LEN);
        let time = field(TIME_LEN);
        let file_name = field(NAME_LEN);
        let size = field(SIZE_LEN);
        fn number<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("header field {name} is {v:?}, not a number"));
            }
            v.parse()
                .map_err(|_| format!("header field {name} {v:?} is out of range"))
        }
        Ok(FileHeader {
            task_id,
            from_user_id: number("from_user_id", &from)?,
            to_user_id: number("to_user_id", &to)?,
            create_time: number("create_time", &time)?,
            file_name,
            file_size: number("file_size", &size)?,
        })
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The `offline_file/` directory and every file in it. Cheap to clone (a
/// path), so the retention sweep can run on its own thread.
#[derive(Debug, Clone)]
pub struct OfflineStore {
    root: PathBuf,
}

impl OfflineStore {
    /// Opens (creating it if needed) `root`, and removes the `.part` files
    /// of uploads a previous run did not finish.
    pub fn open(root: impl Into<PathBuf>) -> Result<OfflineStore, OfflineError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(io_err(&root))?;
        let store = OfflineStore { root };
        let stale = store.remove_parts();
        if stale > 0 {
            log::info!("removed {stale} unfinished uploads left by an earlier run");
        }
        Ok(store)
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/<first 2 chars>`, for a checked task id.
    fn dir_of(&self, task_id: &str) -> Result<PathBuf, OfflineError> {
        if !is_task_id(task_id) {
            return Err(OfflineError::BadTaskId(task_id.to_string()));
        }
        Ok(self.root.join(&task_id[..2]))
    }

    /// Where the finished file of `task_id` lives.
    pub fn path_of(&self, task_id: &str) -> Result<PathBuf, OfflineError> {
        Ok(self.dir_of(task_id)?.join(task_id))
    }

    fn part_of(&self, task_id: &str) -> Result<PathBuf, OfflineError> {
        Ok(self
            .dir_of(task_id)?
            .join(format!("{task_id}{PART_SUFFIX}")))
    }

    /// True when the directory exists and is a real directory (not a
    /// symlink); false when absent.
    fn real_dir(path: &Path) -> Result<bool, OfflineError> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_dir() => Ok(true),
            Ok(_) => Err(OfflineError::NotOurs(path.to_path_buf())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(OfflineError::Io {
                path: path.to_path_buf(),
                source: e,
            }),
        }
    }

    /// Whether a finished file exists for `task_id`.
    pub fn exists(&self, task_id: &str) -> bool {
        self.path_of(task_id)
            .ok()
            .and_then(|p| std::fs::symlink_metadata(p).ok())
            .is_some()
    }

    /// `OpenByWrite` + the header write of `DoRecvData`: starts the upload
    /// of `header.task_id`.
    pub fn create_upload(&self, header: &FileHeader) -> Result<UploadFile, OfflineError> {
        let dir = self.dir_of(&header.task_id)?;
        if !Self::real_dir(&dir)? {
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(&dir)(e)),
            }
            Self::real_dir(&dir)?;
        }
        let part = self.part_of(&header.task_id)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&part)
            .map_err(io_err(&part))?;
        file.write_all(&header.encode()).map_err(io_err(&part))?;
        Ok(UploadFile {
            file,
            task_id: header.task_id.clone(),
            part,
        })
    }

    /// Removes the unfinished upload of `task_id`, if any.
    pub fn remove_part(&self, task_id: &str) {
        if let Ok(part) = self.part_of(task_id) {
            match std::fs::remove_file(&part) {
                Ok(()) => log::info!("removed unfinished upload {}", part.display()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => log::warn!("cannot remove {}: {e}", part.display()),
            }
        }
    }

    /// `OpenByRead` + `LoadFromDisk`: the finished file of `task_id`,
    /// checked against its header.
    pub fn open_stored(&self, task_id: &str) -> Result<StoredFile, OfflineError> {
        let dir = self.dir_of(task_id)?;
        if !Self::real_dir(&dir)? {
            return Err(OfflineError::NotFound(task_id.to_string()));
        }
        let path = dir.join(task_id);
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(OfflineError::NotFound(task_id.to_string()))
            }
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(OfflineError::NotOurs(path))
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let meta = file.metadata().map_err(io_err(&path))?;
        if !meta.file_type().is_file() {
            return Err(OfflineError::NotOurs(path));
        }
        let corrupt = |reason: String| OfflineError::Corrupt {
            path: path.clone(),
            reason,
        };
        let mut raw = [0u8; HEADER_LEN];
        file.read_exact_at(&mut raw, 0)
            .map_err(|e| corrupt(format!("header unreadable: {e}")))?;
        let header = FileHeader::parse(&raw).map_err(corrupt)?;
        if header.task_id != task_id {
            return Err(corrupt(format!("header names task {:?}", header.task_id)));
        }
        let body = meta.len().saturating_sub(HEADER_LEN as u64);
        if body != u64::from(header.file_size) {
            return Err(corrupt(format!(
                "header says {} bytes, the file holds {body}",
                header.file_size
            )));
        }
        Ok(StoredFile { file, header, path })
    }

    /// Deletes the finished file of `task_id` if its header names this
    /// sender and receiver (its record was deleted). Returns whether it went.
    pub fn remove_stored(&self, task_id: &str, from: u32, to: u32) -> Result<bool, OfflineError> {
        let stored = match self.open_stored(task_id) {
            Ok(s) => s,
            Err(OfflineError::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        if (stored.header.from_user_id, stored.header.to_user_id) != (from, to) {
            log::warn!(
                "offline file {task_id} is {}->{}, not {from}->{to}: kept",
                stored.header.from_user_id,
                stored.header.to_user_id
            );
            return Ok(false);
        }
        std::fs::remove_file(&stored.path).map_err(io_err(&stored.path))?;
        Ok(true)
    }

    /// The two-character directories (real directories only).
    fn dirs(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter(|e| e.file_name().len() == 2)
            .map(|e| e.path())
            .collect()
    }

    /// Removes every `.part` file (at start-up: no upload is running).
    fn remove_parts(&self) -> usize {
        let mut n = 0;
        for dir in self.dirs() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.filter_map(Result::ok) {
                let name = e.file_name().to_string_lossy().into_owned();
                let is_part = name.strip_suffix(PART_SUFFIX).is_some_and(is_task_id);
                if is_part
                    && e.file_type().is_ok_and(|t| t.is_file())
                    && std::fs::remove_file(e.path()).is_ok()
                {
                    n += 1;
                }
            }
        }
        n
    }

    /// Deletes the finished files created more than `retention_secs`
    /// before `now_unix` (by their header's `create_time`). Returns how
    /// many went. Downloads under way keep reading a deleted file.
    pub fn sweep(&self, now_unix: u64, retention_secs: u64) -> usize {
        let mut n = 0;
        for dir in self.dirs() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.filter_map(Result::ok) {
                let name = e.file_name().to_string_lossy().into_owned();
                if !is_task_id(&name) {
                    continue;
                }
                let created = match self.open_stored(&name) {
                    Ok(s) => s.header.create_time,
                    Err(err) => {
                        log::debug!("retention: {err}");
                        continue;
                    }
                };
                if now_unix.saturating_sub(created) > retention_secs {
                    match std::fs::remove_file(e.path()) {
                        Ok(()) => {
                            log::info!("offline file {name} is past its retention: deleted");
                            n += 1;
                        }
                        Err(err) => log::warn!("cannot delete {}: {err}", e.path().display()),
                    }
                }
            }
        }
        n
    }
}

/// An upload in progress (`fp_` of an uploading `OfflineTransferTask`).
#[derive(Debug)]
pub struct UploadFile {
    file: File,
    task_id: String,
    part: PathBuf,
}

impl UploadFile {
    /// Appends one checked segment.
    pub fn write(&mut self, data: &[u8]) -> Result<(), OfflineError> {
        self.file.write_all(data).map_err(io_err(&self.part))
    }

    /// The upload is complete: flushed to disk and renamed to its final name.
    pub fn finish(self, store: &OfflineStore) -> Result<PathBuf, OfflineError> {
        self.file.sync_all().map_err(io_err(&self.part))?;
        let path = store.path_of(&self.task_id)?;
        std::fs::rename(&self.part, &path).map_err(io_err(&self.part))?;
        Ok(path)
    }
}

/// A finished offline file open for one download.
#[derive(Debug)]
pub struct StoredFile {
    file: File,
    /// What its header says.
    pub header: FileHeader,
    path: PathBuf,
}

impl StoredFile {
    /// The bytes of `segment`.
    pub fn read(&self, segment: Segment) -> Result<Vec<u8>, OfflineError> {
        let mut buf = vec![0u8; segment.len as usize];
        self.file
            .read_exact_at(&mut buf, HEADER_LEN as u64 + u64::from(segment.offset))
            .map_err(io_err(&self.path))?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(task_id: &str, size: u32) -> FileHeader {
        FileHeader {
            task_id: task_id.into(),
            from_user_id: 1,
            to_user_id: 2,
            create_time: 1_700_000_000,
            file_name: "notes.txt".into(),
            file_size: size,
        }
    }

    const ID: &str = "0a1b2c3d-4e5f-4a7b-8c9d-0e1f2a3b4c5d";

    #[test]
    fn task_ids_are_lowercase_uuids() {
        assert!(is_task_id(ID));
        for bad in [
            "",
            "../x/evil",
            "0A1B2C3D-4E5F-4A7B-8C9D-0E1F2A3B4C5D",
            "0a1b2c3d-4e5f-4a7b-8c9d-0e1f2a3b4c5",
            "0a1b2c3d-4e5f-4a7b-8c9d-0e1f2a3b4c5d0",
            "0a1b2c3d/4e5f-4a7b-8c9d-0e1f2a3b4c5d",
            "../../../../../../../../../etc/passwd",
        ] {
            assert!(!is_task_id(bad), "{bad:?}");
        }
        let id = new_task_id([0xff; 16]);
        assert!(is_task_id(&id), "{id}");
        assert_eq!(&id[14..15], "4", "version 4");
        assert_ne!(new_task_id([1; 16]), new_task_id([2; 16]));
    }

    #[test]
    fn segments_cover_the_file_and_nothing_else() {
        assert_eq!(
            segment_at(0, 0),
            Some(Segment {
                offset: 0,
                len: 0,
                last: true
            })
        );
        assert_eq!(segment_at(1, 0), None);
        assert_eq!(segment_at(0, 1).map(|s| (s.len, s.last)), Some((1, true)));
        let size = 100 * 1024 + 1;
        let mut offset = 0;
        let mut total = 0;
        loop {
            let s = segment_at(offset, size).expect("a segment");
            total += s.len;
            offset += s.len;
            if s.last {
                break;
            }
            assert_eq!(s.len, SEGMENT_SIZE);
        }
        assert_eq!(total, size);
        assert_eq!(segment_at(size - 1, size), None, "unaligned");
        assert_eq!(segment_at(4 * SEGMENT_SIZE, size), None, "past the end");
        assert_eq!(segment_at(SEGMENT_SIZE, SEGMENT_SIZE), None);
        assert_eq!(
            segment_at(0, SEGMENT_SIZE).map(|s| s.last),
            Some(true),
            "exactly one segment"
        );
    }

    #[test]
    fn header_round_trips_in_the_cpp_layout() {
        let h = header(ID, 12345);
        let raw = h.encode();
        assert_eq!(&raw[..36], ID.as_bytes());
        assert_eq!(raw[36], 0);
        assert_eq!(&raw[128..129], b"1");
        assert_eq!(&raw[192..193], b"2");
        assert_eq!(&raw[256..266], b"1700000000");
        assert_eq!(&raw[384..393], b"notes.txt");
        assert_eq!(&raw[896..901], b"12345");
        assert_eq!(FileHeader::parse(&raw), Ok(h));

        let mut long = header(ID, 1);
        long.file_name = "é".repeat(400);
        let back = FileHeader::parse(&long.encode()).unwrap();
        assert!(back.file_name.len() <= 511 && long.file_name.starts_with(&back.file_name));

        let mut bad = raw;
        bad[896] = b'x';
        assert!(FileHeader::parse(&bad).unwrap_err().contains("file_size"));
    }

    #[test]
    fn upload_then_read_back_and_delete() {
        let dir = std::env::temp_dir().join(format!("tt-offline-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = OfflineStore::open(&dir).unwrap();
        assert!(matches!(
            store.open_stored(ID),
            Err(OfflineError::NotFound(_))
        ));
        let mut up = store.create_upload(&header(ID, 5)).unwrap();
        up.write(b"hello").unwrap();
        assert!(!store.exists(ID), "not visible before it is finished");
        up.finish(&store).unwrap();
        let s = store.open_stored(ID).unwrap();
        assert_eq!(s.header, header(ID, 5));
        assert_eq!(s.read(segment_at(0, 5).unwrap()).unwrap(), b"hello");
        assert!(!store.remove_stored(ID, 2, 1).unwrap(), "wrong pair kept");
        assert!(store.remove_stored(ID, 1, 2).unwrap());
        assert!(!store.exists(ID));

        // A stale .part goes at start-up; a forged id is never a path.
        let other = "ffffffff-ffff-4fff-bfff-ffffffffffff";
        drop(store.create_upload(&header(other, 9)).unwrap());
        let store = OfflineStore::open(&dir).unwrap();
        assert!(!dir.join("ff").join(format!("{other}.part")).exists());
        assert!(matches!(
            store.open_stored("../x/evil"),
            Err(OfflineError::BadTaskId(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
