//! Outgoing links to peer servers: the C++ `ServInfo.h` (`serv_info_t`,
//! `serv_init`, `serv_check_reconnect`, `serv_reset`).
//!
//! msg_server keeps one of these lists per peer kind (db_proxy, login,
//! route, push, file). A link that closes is reconnected after an idle
//! count of timer ticks that starts at [`MIN_RECONNECT_CNT`] and doubles on
//! every failure up to [`MAX_RECONNECT_CNT`], then starts over, exactly as
//! `serv_reset` does.

use crate::imconn::ImConn;
use crate::reactor::{ConnId, Reactor};
use base::config::ServerAddr;

/// `MIN_RECONNECT_CNT`: ticks before the first reconnect after a failure.
pub const MIN_RECONNECT_CNT: u32 = 4;
/// `MAX_RECONNECT_CNT`: the back-off's ceiling, in ticks.
pub const MAX_RECONNECT_CNT: u32 = 64;

/// One peer server and our link to it (`serv_info_t`).
#[derive(Debug, Clone)]
pub struct ServInfo {
    /// Where the peer listens.
    pub addr: ServerAddr,
    /// The open (or connecting) link, if any.
    pub conn: Option<ConnId>,
    /// Ticks since the link was lost.
    pub idle_cnt: u32,
    /// Ticks to wait before the next try.
    pub reconnect_cnt: u32,
}

/// The list of peers of one kind.
#[derive(Debug, Clone, Default)]
pub struct ServList {
    /// The peers, in configuration order (index = the C++ `serv_idx`).
    pub servers: Vec<ServInfo>,
}

impl ServList {
    /// A list for the configured addresses; nothing is connected yet.
    pub fn new(addrs: Vec<ServerAddr>) -> ServList {
        ServList {
            servers: addrs
                .into_iter()
                .map(|addr| ServInfo {
                    addr,
                    conn: None,
                    idle_cnt: 0,
                    reconnect_cnt: MIN_RECONNECT_CNT / 2,
                })
                .collect(),
        }
    }

    /// `serv_init`: connects to every peer; `make(idx)` builds the handler
    /// for the link to peer `idx`.
    pub fn serv_init<S: 'static>(
        &mut self,
        net: &mut Reactor<S>,
        mut make: impl FnMut(usize) -> Box<dyn ImConn<S>>,
    ) {
        for idx in 0..self.servers.len() {
            self.servers[idx].idle_cnt = 0;
            self.servers[idx].reconnect_cnt = MIN_RECONNECT_CNT / 2;
            self.connect(net, idx, &mut make);
        }
    }

    /// `serv_check_reconnect`: call once per tick (the C++ uses its 1 s
    /// timers); reconnects each lost link whose back-off has run out.
    pub fn check_reconnect<S: 'static>(
        &mut self,
        net: &mut Reactor<S>,
        mut make: impl FnMut(usize) -> Box<dyn ImConn<S>>,
    ) {
        for idx in 0..self.servers.len() {
            let s = &mut self.servers[idx];
            if s.conn.is_some() {
                continue;
            }
            s.idle_cnt += 1;
            if s.idle_cnt >= s.reconnect_cnt {
                self.connect(net, idx, &mut make);
            }
        }
    }

    fn connect<S: 'static>(
        &mut self,
        net: &mut Reactor<S>,
        idx: usize,
        make: &mut impl FnMut(usize) -> Box<dyn ImConn<S>>,
    ) {
        let s = &mut self.servers[idx];
        match net.connect(&s.addr.ip, s.addr.port, make(idx)) {
            Ok(id) => s.conn = Some(id),
            Err(e) => {
                log::warn!("cannot connect to {}:{}: {e}", s.addr.ip, s.addr.port);
                s.conn = None;
                Self::back_off(s);
            }
        }
    }

    /// `serv_reset`: the link to peer `idx` closed; wait longer before the
    /// next try. Call it from the link's `on_close`.
    pub fn reset(&mut self, idx: usize) {
        if let Some(s) = self.servers.get_mut(idx) {
            s.conn = None;
            Self::back_off(s);
        }
    }

    fn back_off(s: &mut ServInfo) {
        s.idle_cnt = 0;
        s.reconnect_cnt *= 2;
        if s.reconnect_cnt > MAX_RECONNECT_CNT {
            s.reconnect_cnt = MIN_RECONNECT_CNT;
        }
    }

    /// The peer whose link is `id`, if any.
    pub fn index_of(&self, id: ConnId) -> Option<usize> {
        self.servers.iter().position(|s| s.conn == Some(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_then_wraps() {
        let mut list = ServList::new(vec![ServerAddr {
            ip: "127.0.0.1".into(),
            port: 1,
        }]);
        let mut seen = Vec::new();
        for _ in 0..7 {
            list.reset(0);
            seen.push(list.servers[0].reconnect_cnt);
        }
        assert_eq!(seen, vec![4, 8, 16, 32, 64, 4, 8]);
    }
}
