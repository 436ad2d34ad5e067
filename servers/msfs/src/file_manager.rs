//! Where files live under `BaseDir`: the C++ `FileManager.cpp` (and the
//! `FileLin.cpp` file calls it makes).
//!
//! The layout is the C++ one, so either server reads what the other wrote:
//! the n-th stored file (counting from `FileCnt`) goes to
//! `BaseDir/<d1>/<d2>/<usec>_<thread><suffix>` with `d1 = n / FilesPerDir /
//! 255` and `d2 = n % (FilesPerDir * 255) / FilesPerDir`, each written
//! `%03d`, and its URL path is `g0/<d1>/<d2>/<name>`. A download of
//! `/<group>/<rest>` reads `BaseDir/<rest>`.
//!
//! The decisions ([`file_dirs`], [`download_path`]) are pure; the functions
//! that touch the disk ([`store`], [`open_download`]) run on the worker
//! pools, never on the loop.
//!
//! Differences from the C++:
//! - Folders are created when a file first needs them (the C++ creates all
//!   65,536 before it listens: 5–11 s), each checked to be a real folder,
//!   not a symlink.
//! - A file is created with `O_EXCL` (another name is taken if one exists),
//!   mode 0640, and written whole before the answer; there is no in-memory
//!   cache of 10,000 files (the kernel's page cache does that job).
//! - Files of 5 to 10 MiB are stored (the C++ `uploadFile` refuses them
//!   after telling the client `error_code` 0 with an empty path).
//! - A download serves only a regular file whose real path (symlinks
//!   resolved) is under `BaseDir`; the URL must name it plainly: no `..` or
//!   `.` segment, no empty segment, no `%`, `\` or control character (the
//!   C++ closes on `..` and serves whatever `BaseDir + path` opens, a
//!   directory as a 200 with an empty body). Anything else is a 404.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// `FIRST_DIR_MAX`: the divisor of both folder levels.
pub const FIRST_DIR_MAX: u64 = 255;
/// The group every URL starts with.
pub const GROUP: &str = "g0";
/// Mode of stored files.
pub const FILE_MODE: u32 = 0o640;

/// Why a file could not be stored or served.
#[derive(Debug, Error)]
pub enum FileError {
    /// Nothing servable at that path (missing, not a regular file, or
    /// outside `BaseDir`).
    #[error("not found")]
    NotFound,
    /// A storage folder is a symlink or not a folder.
    #[error("{0} is not a plain directory")]
    NotADirectory(PathBuf),
    /// The disk failed.
    #[error("{path}: {source}")]
    Io {
        /// What we were working on.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `getFirstDir`, `getSecondDir`: the folders of file number `file_cnt`.
pub fn file_dirs(file_cnt: u64, files_per_dir: u64) -> (String, String) {
    let per = files_per_dir.max(1);
    let first = (file_cnt / per) / FIRST_DIR_MAX;
    let second = (file_cnt % (per * FIRST_DIR_MAX)) / per;
    (format!("{first:03}"), format!("{second:03}"))
}

/// The checked segments of a download target (`/g0/000/001/x.jpg` ->
/// `["000", "001", "x.jpg"]`), or `None` when it names nothing we serve.
pub fn download_path(target: &str) -> Option<Vec<&str>> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let rest = path.strip_prefix('/')?;
    let (group, rest) = rest.split_once('/')?;
    if group.is_empty() {
        return None;
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let plain = |s: &&str| {
        !s.is_empty()
            && *s != "."
            && *s != ".."
            && !s.chars().any(|c| c.is_control() || c == '%' || c == '\\')
    };
    segments.iter().all(plain).then_some(segments)
}

/// The download `Content-Type`: `image/<ext>` for jpg, jpeg, png and gif
/// (any case, written as in the name; `image/jpg` as the C++), else
/// `multipart/form-data`.
pub fn content_type(name: &str) -> String {
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    if ["jpg", "jpeg", "png", "gif"]
        .iter()
        .any(|k| ext.eq_ignore_ascii_case(k))
    {
        format!("image/{ext}")
    } else {
        "multipart/form-data".to_string()
    }
}

/// Makes `BaseDir` (not its parents, as the C++ `mkdirNoRecursion`) and
/// returns its real path.
pub fn init_base_dir(base: &Path) -> Result<PathBuf, FileError> {
    match std::fs::create_dir(base) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(source) => return Err(io(base)(source)),
    }
    let real = base.canonicalize().map_err(io(base))?;
    if !real.is_dir() {
        return Err(FileError::NotADirectory(real));
    }
    Ok(real)
}

/// Creates `dir` if needed and checks it is a real folder.
fn ensure_dir(dir: &Path) -> Result<(), FileError> {
    match std::fs::create_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(source) => return Err(io(dir)(source)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(io(dir))?;
    if meta.is_dir() {
        Ok(())
    } else {
        Err(FileError::NotADirectory(dir.to_path_buf()))
    }
}

/// A numeric id of the calling thread, as the C++ writes `pthread_self()`.
fn thread_number() -> u64 {
    // SAFETY: pthread_self has no preconditions and cannot fail.
    unsafe { libc::pthread_self() as u64 }
}

/// `FileManager::uploadFile` on a worker: stores `data` as a new file in
/// `BaseDir/<d1>/<d2>/` and returns its URL path `g0/<d1>/<d2>/<name>`.
pub fn store(
    base: &Path,
    dirs: &(String, String),
    name_suffix: &str,
    data: &[u8],
) -> Result<String, FileError> {
    let first = base.join(&dirs.0);
    ensure_dir(&first)?;
    let second = first.join(&dirs.1);
    ensure_dir(&second)?;
    let thread = thread_number();
    let mut usec = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    loop {
        let name = format!("{usec}_{thread}{name_suffix}");
        let path = second.join(&name);
        let created = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path);
        let mut file = match created {
            Ok(f) => f,
            // Same microsecond, same thread: take the next one.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                usec += 1;
                continue;
            }
            Err(source) => return Err(io(&path)(source)),
        };
        // The umask may have taken bits off: the C++ files are 0640.
        let written = file
            .write_all(data)
            .and_then(|()| file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE)));
        if let Err(source) = written {
            let _ = std::fs::remove_file(&path);
            return Err(io(&path)(source));
        }
        return Ok(format!("{GROUP}/{}/{}/{name}", dirs.0, dirs.1));
    }
}

/// An opened download: the file, its length and its first bytes.
#[derive(Debug)]
pub struct OpenedFile {
    /// The file, for the parts after `first`.
    pub file: File,
    /// Its length when opened (the `Content-Length`).
    pub len: u64,
    /// Its first `min(len, part)` bytes.
    pub first: Vec<u8>,
}

/// `getOrCreateEntry` on a worker: opens `BaseDir/<segments>` if it is a
/// regular file whose real path is under `base` (itself a real path), and
/// reads its first `part` bytes.
pub fn open_download(
    base: &Path,
    segments: &[String],
    part: usize,
) -> Result<OpenedFile, FileError> {
    let mut path = base.to_path_buf();
    path.extend(segments);
    let real = match path.canonicalize() {
        Ok(p) => p,
        Err(_) => return Err(FileError::NotFound),
    };
    if !real.starts_with(base) {
        log::warn!(
            "{} leads out of BaseDir to {}; refused",
            path.display(),
            real.display()
        );
        return Err(FileError::NotFound);
    }
    // O_NONBLOCK: a FIFO planted in BaseDir must not hold a worker.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&real)
        .map_err(|_| FileError::NotFound)?;
    let meta = file.metadata().map_err(io(&real))?;
    if !meta.is_file() {
        return Err(FileError::NotFound);
    }
    let len = meta.len();
    let want = usize::try_from(len).map_or(part, |l| l.min(part));
    let mut first = vec![0; want];
    read_exact_at(&file, &mut first, 0).map_err(io(&real))?;
    Ok(OpenedFile { file, len, first })
}

/// Reads `buf.len()` bytes at `offset` (a file that shrank is an error).
pub fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_follow_the_cpp_formula() {
        assert_eq!(file_dirs(0, 30000), ("000".into(), "000".into()));
        assert_eq!(file_dirs(29_999, 30000), ("000".into(), "000".into()));
        assert_eq!(file_dirs(30_000, 30000), ("000".into(), "001".into()));
        assert_eq!(file_dirs(254 * 30_000, 30000), ("000".into(), "254".into()));
        assert_eq!(file_dirs(255 * 30_000, 30000), ("001".into(), "000".into()));
        assert_eq!(file_dirs(5, 2), ("000".into(), "002".into()));
        assert_eq!(file_dirs(255 * 256, 1), ("256".into(), "000".into()));
    }

    #[test]
    fn download_paths_are_plain_segments() {
        assert_eq!(
            download_path("/g0/000/001/1_2.jpg"),
            Some(vec!["000", "001", "1_2.jpg"])
        );
        assert_eq!(
            download_path("/g0/000/001/1_2.jpg?v=1"),
            Some(vec!["000", "001", "1_2.jpg"])
        );
        assert_eq!(download_path("/anygroup/x"), Some(vec!["x"]));
        for bad in [
            "/g0/../etc/passwd",
            "/g0/000/./x",
            "/g0/%2e%2e/x",
            "/g0/000%2f..%2fx",
            "/g0//etc/passwd",
            "/g0/000/",
            "/g0",
            "//000/x",
            "g0/000/x",
            "/g0/a\\b",
            "/g0/a\u{1}b",
        ] {
            assert_eq!(download_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn image_types() {
        assert_eq!(content_type("1_2.jpg"), "image/jpg");
        assert_eq!(content_type("1_2_3x4.JPEG"), "image/JPEG");
        assert_eq!(content_type("x.Png"), "image/Png");
        assert_eq!(content_type("x.gif"), "image/gif");
        assert_eq!(content_type("1.audio"), "multipart/form-data");
        assert_eq!(content_type("noext"), "multipart/form-data");
    }

    #[test]
    fn stored_files_come_back_and_symlinks_lead_nowhere() {
        let dir = std::env::temp_dir().join(format!("msfs-fm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let base = init_base_dir(&dir).unwrap();
        let dirs = file_dirs(0, 10);
        let url = store(&base, &dirs, ".jpg", b"abc").unwrap();
        let url2 = store(&base, &dirs, ".jpg", b"abc").unwrap();
        assert_ne!(url, url2);
        let segments: Vec<String> = url.split('/').skip(1).map(String::from).collect();
        let opened = open_download(&base, &segments, 2).unwrap();
        assert_eq!((opened.len, opened.first.as_slice()), (3, &b"ab"[..]));
        let meta = std::fs::metadata(base.join(url.strip_prefix("g0/").unwrap())).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, FILE_MODE);
        // A folder, a symlink out, a missing file: not found.
        std::os::unix::fs::symlink("/etc", base.join("001")).unwrap();
        assert!(base.join("001/hostname").exists() || base.join("001/passwd").exists());
        for segs in [vec!["000"], vec!["001", "passwd"], vec!["000", "nope"]] {
            let segs: Vec<String> = segs.into_iter().map(String::from).collect();
            assert!(matches!(
                open_download(&base, &segs, 8),
                Err(FileError::NotFound)
            ));
        }
        // A planted symlink folder is not written through.
        assert!(matches!(
            store(&base, &("001".into(), "000".into()), ".jpg", b"x"),
            Err(FileError::NotADirectory(_))
        ));
        assert_eq!(
            std::fs::read(base.join(url.strip_prefix("g0/").unwrap())).unwrap(),
            b"abc"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
