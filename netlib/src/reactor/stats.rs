//! What the reactor counts for metrics (the C++ netlib counts nothing):
//! connections by kind, bytes and PDUs in and out, out-buffer backlog,
//! closes for bad input or a full out-buffer, the inbox. Every server gets
//! these for free; they are plain integers owned by the loop, bumped on the
//! hot path without a lock or an atomic, and rendered by
//! [`Reactor::write_metrics`] at scrape time.
//!
//! A connection's kind is its handler's [`ImConn::kind`](crate::ImConn::kind)
//! (by default the handler's type name, `MsgConn`, `DbServConn`...), asked
//! once when the connection is registered.

use super::Reactor;
use crate::metrics::{process, Exposition, Kind};

/// Services with a slot in the PDU tables (`SID_LOGIN` 1 .. `SID_OTHER` 7).
const SIDS: usize = 8;
/// Commands per service with a slot: every command id the protocol defines
/// has the service in its high byte and a low byte below this.
const CIDS: usize = 64;

/// Per-command PDU counts: a flat table indexed by service and the low
/// byte of the command (so an update is an index, no hash); a PDU outside
/// the table (or, at render time, without a name) counts as `unknown`,
/// so a peer sending made-up command ids cannot grow the label set.
#[derive(Debug, Clone)]
pub(crate) struct PduCounts {
    slots: Vec<u64>,
    unknown: u64,
}

impl Default for PduCounts {
    fn default() -> PduCounts {
        PduCounts {
            slots: vec![0; SIDS * CIDS],
            unknown: 0,
        }
    }
}

impl PduCounts {
    fn slot(service_id: u16, command_id: u16) -> Option<usize> {
        let (sid, hi, lo) = (
            service_id as usize,
            (command_id >> 8) as usize,
            (command_id & 0xff) as usize,
        );
        (sid < SIDS && hi == sid && lo < CIDS).then_some(sid * CIDS + lo)
    }

    pub(crate) fn count(&mut self, service_id: u16, command_id: u16) {
        match Self::slot(service_id, command_id) {
            Some(i) => self.slots[i] += 1,
            None => self.unknown += 1,
        }
    }

    /// `(command name, count)` of every command seen, then `unknown`.
    fn named(&self) -> Vec<(&'static str, u64)> {
        let mut out = Vec::new();
        let mut unknown = self.unknown;
        for (i, &n) in self.slots.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let sid = (i / CIDS) as u16;
            let cid = (sid << 8) | (i % CIDS) as u16;
            match tt_proto::cid::name(sid, cid) {
                Some(name) => out.push((name, n)),
                None => unknown += n,
            }
        }
        if unknown > 0 {
            out.push(("unknown", unknown));
        }
        out
    }
}

/// Counters of one kind of connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct KindStats {
    pub(crate) name: &'static str,
    pub(crate) open: u64,
    pub(crate) opened: u64,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
}

/// Everything the reactor counts (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct NetMetrics {
    pub(crate) kinds: Vec<KindStats>,
    pub(crate) pdus_in: PduCounts,
    pub(crate) pdus_out: PduCounts,
    pub(crate) bad_input_closes: u64,
    pub(crate) out_buf_full_closes: u64,
    pub(crate) over_conn_limit_closes: u64,
}

impl NetMetrics {
    /// The index of kind `name`, added at its first connection (the kinds
    /// are the program's handler types: a handful).
    pub(crate) fn kind_index(&mut self, name: &'static str) -> usize {
        match self.kinds.iter().position(|k| k.name == name) {
            Some(i) => i,
            None => {
                self.kinds.push(KindStats {
                    name,
                    ..KindStats::default()
                });
                self.kinds.len() - 1
            }
        }
    }

    /// Counts the PDUs framed at the start of `bytes` (what a PDU
    /// connection is sent is whole PDUs, one or several).
    pub(crate) fn count_sent_pdus(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while rest.len() >= base::pdu::IM_PDU_HEADER_LEN {
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let sid = u16::from_be_bytes([rest[8], rest[9]]);
            let cid = u16::from_be_bytes([rest[10], rest[11]]);
            self.pdus_out.count(sid, cid);
            if len < base::pdu::IM_PDU_HEADER_LEN || len > rest.len() {
                break;
            }
            rest = &rest[len..];
        }
    }
}

impl<S: 'static> Reactor<S> {
    /// Counters of connections of kind `kind` (open, opened, bytes), for
    /// tests and servers' own figures: `(open, opened, bytes_in, bytes_out)`.
    pub fn kind_stats(&self, kind: &str) -> Option<(u64, u64, u64, u64)> {
        self.stats
            .kinds
            .iter()
            .find(|k| k.name == kind)
            .map(|k| (k.open, k.opened, k.bytes_in, k.bytes_out))
    }

    /// Writes what every server exports: connections, bytes and PDUs by
    /// kind and command, out-buffers, closes, the inbox, and the process's
    /// memory and descriptors.
    pub fn write_metrics(&self, w: &mut Exposition) {
        let kinds = &self.stats.kinds;
        w.family(
            "tt_connections",
            "Open connections by kind (the handler: MsgConn for clients, DbServConn for a db_proxy link...).",
            Kind::Gauge,
        );
        for k in kinds {
            w.sample(&[("kind", k.name)], k.open as f64);
        }
        w.counters(
            "tt_connections_opened_total",
            "Connections accepted or connected, by kind.",
            "kind",
            kinds.iter().map(|k| (k.name, k.opened)),
        );
        w.counters(
            "tt_received_bytes_total",
            "Bytes read from connections, by kind.",
            "kind",
            kinds.iter().map(|k| (k.name, k.bytes_in)),
        );
        w.counters(
            "tt_sent_bytes_total",
            "Bytes queued to connections to be sent, by kind.",
            "kind",
            kinds.iter().map(|k| (k.name, k.bytes_out)),
        );
        let mut backlog = vec![0u64; kinds.len()];
        for (_, c) in self.conns.iter() {
            if let Some(b) = backlog.get_mut(c.kind) {
                *b += c.out.backlog() as u64;
            }
        }
        w.family(
            "tt_out_buffer_bytes",
            "Bytes waiting in out-buffers for the kernel to take, by kind.",
            Kind::Gauge,
        );
        for (k, b) in kinds.iter().zip(&backlog) {
            w.sample(&[("kind", k.name)], *b as f64);
        }
        w.single(
            "tt_out_buffer_cap_bytes",
            "The out-buffer cap per connection; a connection past it is closed.",
            Kind::Gauge,
            self.out_buf_cap as f64,
        );
        w.counters(
            "tt_pdus_received_total",
            "PDUs received, by command (tt_proto::cid::name; unknown for ids no enum defines).",
            "command",
            self.stats.pdus_in.named(),
        );
        w.counters(
            "tt_pdus_sent_total",
            "PDUs queued to be sent, by command.",
            "command",
            self.stats.pdus_out.named(),
        );
        w.family(
            "tt_connections_closed_total",
            "Connections closed by the reactor itself, by reason.",
            Kind::Counter,
        )
        .sample(
            &[("reason", "bad_input")],
            self.stats.bad_input_closes as f64,
        )
        .sample(
            &[("reason", "out_buffer_full")],
            self.stats.out_buf_full_closes as f64,
        )
        .sample(
            &[("reason", "over_connection_limit")],
            self.stats.over_conn_limit_closes as f64,
        );
        let inbox = self.inbox_stats();
        w.single(
            "tt_inbox_queued",
            "Messages from other threads waiting for the loop.",
            Kind::Gauge,
            inbox.queued as f64,
        );
        w.single(
            "tt_inbox_bound",
            "The most messages the loop's inbox holds.",
            Kind::Gauge,
            inbox.bound as f64,
        );
        w.single(
            "tt_inbox_waiting_senders",
            "Threads waiting for room in the full inbox.",
            Kind::Gauge,
            inbox.waiting as f64,
        );
        w.single(
            "tt_inbox_full_total",
            "Messages that found the inbox full.",
            Kind::Counter,
            inbox.full as f64,
        );
        w.single(
            "tt_inbox_refused_total",
            "Messages refused because the inbox stayed full.",
            Kind::Counter,
            inbox.refused as f64,
        );
        process::write(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdu_counts_are_named_and_bounded() {
        let mut c = PduCounts::default();
        c.count(tt_proto::sid::MSG, tt_proto::cid::MSG_DATA);
        c.count(tt_proto::sid::MSG, tt_proto::cid::MSG_DATA);
        c.count(1, 0x0201); // service and command disagree
        c.count(7, 0x073f); // in the table, no name
        c.count(0xffff, 0xffff);
        let named = c.named();
        assert_eq!(named, vec![("CID_MSG_DATA", 2), ("unknown", 3)]);
    }

    #[test]
    fn sent_pdus_are_counted_from_their_headers() {
        let mut m = NetMetrics::default();
        let a = base::ImPdu::new(tt_proto::sid::OTHER, tt_proto::cid::OTHER_HEARTBEAT);
        let mut two = a.as_bytes().to_vec();
        two.extend_from_slice(a.as_bytes());
        m.count_sent_pdus(&two);
        m.count_sent_pdus(&two[..10]); // not a whole header: nothing
        assert_eq!(m.pdus_out.named(), vec![("CID_OTHER_HEARTBEAT", 2)]);
    }

    struct Echo;
    impl crate::ImConn<()> for Echo {
        fn on_pdu(&mut self, cx: &mut crate::Ctx<'_, ()>, pdu: base::ImPdu) {
            cx.send_pdu(&pdu);
        }
    }

    #[test]
    fn a_connection_is_counted_by_kind_bytes_and_commands() {
        use std::io::{Read, Write};
        let mut net = Reactor::<()>::new().unwrap();
        let addr = net
            .listen("127.0.0.1", 0, |_, _| {
                Box::new(Echo) as Box<dyn crate::ImConn<()>>
            })
            .unwrap()[0];
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let hb = base::ImPdu::new(tt_proto::sid::OTHER, tt_proto::cid::OTHER_HEARTBEAT);
        client.write_all(hb.as_bytes()).unwrap();
        client.write_all(hb.as_bytes()).unwrap();
        client.set_nonblocking(true).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < 32 {
            net.run_once(&mut (), 10).unwrap();
            if let Ok(n) = client.read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
        }
        assert_eq!(net.kind_stats("Echo"), Some((1, 1, 32, 32)));
        let mut w = Exposition::new();
        net.write_metrics(&mut w);
        let text = w.into_text();
        for line in [
            "tt_connections{kind=\"Echo\"} 1",
            "tt_received_bytes_total{kind=\"Echo\"} 32",
            "tt_pdus_received_total{command=\"CID_OTHER_HEARTBEAT\"} 2",
            "tt_pdus_sent_total{command=\"CID_OTHER_HEARTBEAT\"} 2",
            "tt_out_buffer_bytes{kind=\"Echo\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        drop(client);
        while net.kind_stats("Echo").unwrap().0 == 1 {
            net.run_once(&mut (), 10).unwrap();
        }
        assert_eq!(net.kind_stats("Echo"), Some((0, 1, 32, 32)));
    }
}
