//! `GET /metrics` (not in the C++): the reactor's figures (client and
//! msg_server connections, PDUs, bytes, memory) and file_server's own:
//! tasks and file bytes moved, counted by the handlers on the loop thread.

use crate::state::FileState;
use netlib::metrics::{Exposition, Kind, LabeledCounter};
use netlib::Reactor;

/// How file bytes move: relayed sender to receiver, stored from an
/// uploader, read out to a downloader.
pub const TRANSFER_MODES: [&str; 3] = ["online", "upload", "download"];

/// file_server's own counters.
#[derive(Debug, Clone)]
pub struct FileMetrics {
    /// Tasks created for msg_servers, by result (`ok`, `refused`).
    pub tasks: LabeledCounter,
    /// File bytes moved, by [`TRANSFER_MODES`].
    pub bytes: LabeledCounter,
}

impl Default for FileMetrics {
    fn default() -> FileMetrics {
        FileMetrics {
            tasks: LabeledCounter::with_labels(&["ok", "refused"]),
            bytes: LabeledCounter::with_labels(&TRANSFER_MODES),
        }
    }
}

/// Writes file_server's metrics (a `tt_http::metrics::RenderFn`).
pub fn render(net: &Reactor<FileState>, state: &FileState, w: &mut Exposition) {
    net.write_metrics(w);
    w.single(
        "tt_file_open_tasks",
        "Transfer tasks open (waiting for their users, or moving).",
        Kind::Gauge,
        state.tasks.open_count() as f64,
    );
    w.counters(
        "tt_file_tasks_total",
        "Transfer tasks msg_servers asked for, by result.",
        "result",
        state.metrics.tasks.iter(),
    );
    w.counters(
        "tt_file_transferred_bytes_total",
        "File bytes moved, by mode (online relay, offline upload, offline download).",
        "mode",
        state.metrics.bytes.iter(),
    );
}
