//! `tt-netlib`: the C++ `netlib` rebuilt on mio.
//!
//! Module map against the C++ `server/src/base/`:
//! - [`reactor`]: `EventDispatch.cpp`, `BaseSocket.cpp` and the
//!   `netlib.cpp` API (`netlib_listen`, `netlib_connect`, `netlib_send`,
//!   `netlib_close`, `netlib_register_timer`, `netlib_add_loop`,
//!   `netlib_eventloop`) as one [`Reactor`], in rooms: ids and tokens, the
//!   out-buffer, reading and its budgets, timers, listen/connect/accept,
//!   the turn. [`event_dispatch`] is its old name, re-exported.
//! - [`imconn`]: `imconn.cpp` (`CImConn`): the per-connection handler trait,
//!   PDU framing, heartbeats and timeouts.
//! - [`serv_info`]: `ServInfo.h` (`serv_init`, `serv_check_reconnect`,
//!   `serv_reset`): outgoing links to peer servers with reconnect back-off.
//! - [`peer_list`]: what each C++ `C*ServConn` keeps about its links
//!   (`m_bOpen`, `m_connect_time`) on top of a [`ServList`], so "is a peer
//!   available" and "pick a link" only consider links that completed their
//!   connect (msg_server's and http_msg_server's peer links).
//! - [`clock`]: `get_tick_count` as the reactor's own clock, monotonic, or
//!   driven by a test ([`ManualClock`]).
//! - [`metrics`]: counters, gauges, histograms and the Prometheus text
//!   format, once for every server (the C++ has none); the reactor counts
//!   connections, bytes and PDUs by itself ([`Reactor::write_metrics`]).
//! - [`conn_table`]: a server's values by connection (the C++ `ConnMap_t`
//!   maps), a vector by slab slot rather than a hash map.
//! - [`remote`]: the cross-thread hand-back the C++ lacks (its db_proxy
//!   workers' replies wait for the next 10 ms tick; ours wake the loop),
//!   through a bounded inbox.
//!
//! One reactor runs on one thread and owns every socket. The server's own
//! state `S` is passed to [`Reactor::run`] and handed to every callback next
//! to the reactor, so handlers reach both without shared mutable globals.

pub mod clock;
pub mod conn_table;
pub mod event_dispatch;
pub mod imconn;
pub mod metrics;
pub mod peer_list;
pub mod reactor;
pub mod remote;
pub mod serv_info;

pub use clock::{Clock, ManualClock, SystemClock};
pub use conn_table::ConnTable;
pub use imconn::{Ctx, Heartbeat, ImConn};
pub use peer_list::{PeerLink, PeerList};
pub use reactor::{bind_source, ConnId, NetError, Reactor, TimerId};
pub use remote::{InboxStats, Remote, DEFAULT_INBOX_BOUND};
pub use serv_info::{ServInfo, ServList};
