//! The disk half of a request: the C++ `CHttpTask` (`OnUpload`'s store,
//! `OnDownload`) on the worker pools, and `CHttpConn::AddResponsePdu` /
//! `SendResponsePduList`, the hand-back of the answer to the loop.
//!
//! Each task runs on its pool (`PostThreadCount` upload workers,
//! `GetThreadCount` download workers) and hands its answer to the loop with
//! [`netlib::Remote::run`], which wakes the loop at once. The C++ workers
//! push answers into a locked list that the loop drains only after
//! `epoll_wait` returns, on an event or its 100 ms timeout: an upload, whose
//! connection has nothing more to say, waits for that timeout, which is
//! why the C++ stores ~150 uploads/s from 16 clients, each taking ~100 ms.
//!
//! A file of at most [`PART`] bytes is read whole and sent with its head. A
//! longer one is streamed: the head and the first part, then each next part
//! read by a download worker once the connection's out-buffer has drained
//! ([`netlib::Reactor::notify_when_drained`]), so a download holds at most
//! one part in memory however big the file (the C++ reads every file whole
//! into a cache of up to 10,000 files).

use crate::file_manager::{self, FileError, OpenedFile};
use crate::http_conn::{empty, upload_ok};
use crate::multipart::Upload;
use crate::state::{DownloadStream, MsfsState, MAX_STREAMS};
use netlib::{ConnId, Ctx, Reactor};
use std::sync::Arc;
use tt_http::{send_response, Response, Verdict};

/// Bytes read from disk and queued at a time for a download.
pub const PART: usize = 256 * 1024;

fn busy() -> Response {
    Response::new(503).with_body("text/plain;charset=utf-8", "busy, try again\n")
}

/// Queues the store of an upload on the upload pool (`CHttpTask::OnUpload`
/// after parsing); the answer follows from the worker.
pub fn start_upload(
    cx: &mut Ctx<'_, MsfsState>,
    upload: Upload,
    body: Vec<u8>,
    host: String,
) -> Verdict {
    let size = body.len();
    let state = &mut *cx.state;
    if !state.load.admit_upload(size) {
        log::warn!("upload pool full; answering 503");
        return Verdict::Reply(busy());
    }
    let dirs = state.next_file_dirs();
    let base = state.base_dir.clone();
    let remote = state.remote.clone();
    let id = cx.id;
    state.post_pool.add_task(move || {
        let data = body.get(upload.file.clone()).unwrap_or_default();
        let response = match file_manager::store(&base, &dirs, &upload.name_suffix, data) {
            Ok(path) => {
                log::debug!("stored {path} ({} bytes)", data.len());
                upload_ok(&host, &path)
            }
            Err(e) => {
                log::error!("upload not stored: {e}");
                empty(500)
            }
        };
        drop(body);
        remote.run(move |net, state| {
            state.load.upload_done(size);
            send_response(net, id, &response);
        });
    });
    Verdict::Later
}

/// Queues the open of a download on the download pool
/// (`CHttpTask::OnDownload`).
pub fn start_download(cx: &mut Ctx<'_, MsfsState>, segments: Vec<String>) -> Verdict {
    let state = &mut *cx.state;
    if !state.load.admit_download() {
        log::warn!("download pool full; answering 503");
        return Verdict::Reply(busy());
    }
    let content_type = file_manager::content_type(segments.last().map_or("", String::as_str));
    let base = state.base_dir.clone();
    let remote = state.remote.clone();
    let id = cx.id;
    state.get_pool.add_task(move || {
        let opened = file_manager::open_download(&base, &segments, PART);
        remote.run(move |net, state| {
            state.load.download_done();
            answer_download(net, state, id, &content_type, opened);
        });
    });
    Verdict::Later
}

/// On the loop: the head and first part of an opened download, or its
/// refusal.
fn answer_download(
    net: &mut Reactor<MsfsState>,
    state: &mut MsfsState,
    id: ConnId,
    content_type: &str,
    opened: Result<OpenedFile, FileError>,
) {
    let opened = match opened {
        Ok(o) => o,
        Err(FileError::NotFound) => {
            send_response(net, id, &empty(404));
            return;
        }
        Err(e) => {
            log::error!("download failed: {e}");
            send_response(net, id, &empty(500));
            return;
        }
    };
    let Ok(len) = usize::try_from(opened.len) else {
        send_response(net, id, &empty(500));
        return;
    };
    let whole = opened.first.len() == len;
    if !whole && state.streams.len() >= MAX_STREAMS {
        log::warn!("{MAX_STREAMS} downloads streaming; answering 503");
        send_response(net, id, &busy());
        return;
    }
    let head = Response::new(200).with_body(content_type, "");
    let mut bytes = head.head_bytes(len);
    bytes.extend_from_slice(&opened.first);
    if net.send(id, &bytes).is_err() {
        return; // gone meanwhile
    }
    if whole {
        net.close_after_flush(id);
        return;
    }
    state.streams.insert(
        id,
        DownloadStream {
            file: Arc::new(opened.file),
            offset: opened.first.len() as u64,
            len: opened.len,
            in_flight: false,
        },
    );
    net.notify_when_drained(id);
}

/// The out-buffer of `cx.id` drained: reads the next part of its download
/// on the download pool.
pub fn on_drained(cx: &mut Ctx<'_, MsfsState>) {
    let id = cx.id;
    let state = &mut *cx.state;
    let Some(stream) = state.streams.get_mut(&id) else {
        return;
    };
    if stream.in_flight {
        return;
    }
    let left = stream.len - stream.offset;
    let size = usize::try_from(left).map_or(PART, |l| l.min(PART));
    stream.in_flight = true;
    let file = stream.file.clone();
    let offset = stream.offset;
    let remote = state.remote.clone();
    state.get_pool.add_task(move || {
        let mut part = vec![0; size];
        let read = file_manager::read_exact_at(&file, &mut part, offset).map(|()| part);
        remote.run(move |net, state| send_part(net, state, id, read));
    });
}

/// On the loop: queues a part read by a worker, and ends the download
/// after its last part.
fn send_part(
    net: &mut Reactor<MsfsState>,
    state: &mut MsfsState,
    id: ConnId,
    read: std::io::Result<Vec<u8>>,
) {
    let Some(stream) = state.streams.get_mut(&id) else {
        return; // the connection closed meanwhile
    };
    stream.in_flight = false;
    let part = match read {
        Ok(p) => p,
        Err(e) => {
            // The head promised more: only closing tells the client.
            log::error!("download {id}: reading at {}: {e}; closing", stream.offset);
            state.streams.remove(&id);
            net.close(id);
            return;
        }
    };
    stream.offset += part.len() as u64;
    let last = stream.offset >= stream.len;
    if net.send(id, &part).is_err() {
        state.streams.remove(&id);
        return;
    }
    if last {
        state.streams.remove(&id);
        net.close_after_flush(id);
    } else {
        net.notify_when_drained(id);
    }
}
