//! The per-process state of msfs: what the C++ keeps in its globals
//! (`g_fileManager`, `g_PostThreadPool`, `g_GetThreadPool`, the response
//! list), owned by the loop thread and reached through each callback's
//! `Ctx`.

use base::thread_pool::ThreadPool;
use netlib::{ConnId, Remote};
use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

/// Uploads waiting for or on the upload workers, at most.
pub const MAX_QUEUED_UPLOADS: usize = 256;
/// Bytes of upload bodies waiting for or on the upload workers, at most
/// (each body is at most 10 MiB).
pub const MAX_QUEUED_UPLOAD_BYTES: usize = 128 << 20;
/// Download opens waiting for or on the download workers, at most.
pub const MAX_QUEUED_DOWNLOADS: usize = 1024;
/// Downloads of more than one part being streamed at once, at most (each
/// holds at most one part in its out-buffer).
pub const MAX_STREAMS: usize = 256;

/// A download longer than one part, sent part by part as the socket drains.
#[derive(Debug)]
pub struct DownloadStream {
    /// The open file (shared with the worker reading the next part).
    pub file: Arc<File>,
    /// Bytes sent (queued) so far.
    pub offset: u64,
    /// The `Content-Length` sent.
    pub len: u64,
    /// A worker is reading the next part.
    pub in_flight: bool,
}

/// Work handed to the pools and not answered yet: the bound that turns a
/// flood into 503s instead of unbounded queues.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PoolLoad {
    /// Uploads queued or being stored.
    pub uploads: usize,
    /// Their body bytes.
    pub upload_bytes: usize,
    /// Download opens queued or running.
    pub downloads: usize,
}

impl PoolLoad {
    /// Takes an upload of `bytes` if the bounds allow it.
    pub fn admit_upload(&mut self, bytes: usize) -> bool {
        if self.uploads >= MAX_QUEUED_UPLOADS
            || self.upload_bytes.saturating_add(bytes) > MAX_QUEUED_UPLOAD_BYTES
        {
            return false;
        }
        self.uploads += 1;
        self.upload_bytes += bytes;
        true
    }

    /// An admitted upload of `bytes` was answered.
    pub fn upload_done(&mut self, bytes: usize) {
        self.uploads = self.uploads.saturating_sub(1);
        self.upload_bytes = self.upload_bytes.saturating_sub(bytes);
    }

    /// Takes a download open if the bound allows it.
    pub fn admit_download(&mut self) -> bool {
        if self.downloads >= MAX_QUEUED_DOWNLOADS {
            return false;
        }
        self.downloads += 1;
        true
    }

    /// An admitted download open finished.
    pub fn download_done(&mut self) {
        self.downloads = self.downloads.saturating_sub(1);
    }
}

/// Everything msfs keeps (the C++ `FileManager` singleton and the pools).
pub struct MsfsState {
    /// `BaseDir`, as a real path (symlinks resolved).
    pub base_dir: Arc<PathBuf>,
    /// `FileCnt`: the number the next stored file gets.
    pub file_cnt: u64,
    /// `FilesPerDir`.
    pub files_per_dir: u64,
    /// The conf file, rewritten with `FileCnt` on the way out.
    pub conf_path: PathBuf,
    /// `g_GetThreadPool`: opens and reads downloads.
    pub get_pool: ThreadPool,
    /// `g_PostThreadPool`: stores uploads.
    pub post_pool: ThreadPool,
    /// Workers hand their answers back through this.
    pub remote: Remote<MsfsState>,
    /// What the pools hold.
    pub load: PoolLoad,
    /// Downloads being streamed, by connection.
    pub streams: HashMap<ConnId, DownloadStream>,
}

impl MsfsState {
    /// `createFileRelatePath`'s counter: the folders of the next file,
    /// counting it.
    pub fn next_file_dirs(&mut self) -> (String, String) {
        let dirs = crate::file_manager::file_dirs(self.file_cnt, self.files_per_dir);
        self.file_cnt += 1;
        dirs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_is_bounded_by_count_and_bytes() {
        let mut load = PoolLoad::default();
        assert!(load.admit_upload(100 << 20));
        assert!(!load.admit_upload(29 << 20), "over the byte bound");
        assert!(load.admit_upload(28 << 20));
        load.upload_done(100 << 20);
        load.upload_done(28 << 20);
        assert_eq!(load, PoolLoad::default());
        for _ in 0..MAX_QUEUED_UPLOADS {
            assert!(load.admit_upload(1));
        }
        assert!(!load.admit_upload(1));
        for _ in 0..MAX_QUEUED_DOWNLOADS {
            assert!(load.admit_download());
        }
        assert!(!load.admit_download());
        load.download_done();
        assert!(load.admit_download());
    }
}
