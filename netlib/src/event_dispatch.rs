//! The old path of the event loop, kept so `netlib::event_dispatch::...`
//! still names what it named: the loop now lives in [`crate::reactor`].

pub use crate::reactor::{
    AcceptFn, ConnId, LoopFn, NetError, Reactor, SignalFn, TimerId, CONN_TICK_MS,
    DEFAULT_OUT_BUF_CAP, NETLIB_MAX_SOCKET_BUF_SIZE,
};
