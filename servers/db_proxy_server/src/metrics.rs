//! `GET /metrics` (not in the C++): the reactor's figures (msg_server
//! links, PDUs per command, bytes, the inbox the workers' replies come
//! back through, memory), the work queue and workers, request latency per
//! command, and the MySQL and Redis pools. Workers update their figures
//! with relaxed atomics ([`PoolMetrics`], [`RequestLatency`]); the scrape
//! reads them on the loop thread without a lock.

use crate::state::ProxyState;
use netlib::metrics::{AtomicCounter, AtomicGauge, Exposition, Histogram, Kind};
use netlib::Reactor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One pool's figures, updated by the workers that use it.
#[derive(Debug, Default)]
pub struct PoolMetrics {
    /// Connections lent out now.
    pub in_use: AtomicGauge,
    /// Callers waiting for a free connection now.
    pub waiting: AtomicGauge,
    /// Failures: no connection within the wait, a connect that failed, a
    /// query or command that failed.
    pub errors: AtomicCounter,
}

/// Counts one in a gauge for as long as it lives (a worker busy with a
/// request, even when the handler panics).
pub struct Busy<'a>(&'a AtomicGauge);

impl<'a> Busy<'a> {
    /// Adds one to `gauge` until dropped.
    pub fn new(gauge: &'a AtomicGauge) -> Busy<'a> {
        gauge.inc();
        Busy(gauge)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Request latency per command, from a worker taking the request to its
/// reply: a histogram per command the handler map knows, made at start, so
/// a worker finds its own without a lock.
#[derive(Debug)]
pub struct RequestLatency {
    /// Sorted by command id.
    by_command: Vec<(u16, Histogram)>,
}

impl RequestLatency {
    /// A histogram for each of `commands`.
    pub fn new(commands: impl IntoIterator<Item = u16>) -> RequestLatency {
        let mut ids: Vec<u16> = commands.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        RequestLatency {
            by_command: ids.into_iter().map(|c| (c, Histogram::latency())).collect(),
        }
    }

    /// Counts one request of `command_id` that took `took`.
    pub fn observe(&self, command_id: u16, took: Duration) {
        if let Ok(i) = self
            .by_command
            .binary_search_by_key(&command_id, |(c, _)| *c)
        {
            self.by_command[i].1.observe_duration(took);
        }
    }

    /// The histogram of `command_id`, if it has one.
    #[cfg(test)]
    pub fn get(&self, command_id: u16) -> Option<&Histogram> {
        self.by_command
            .binary_search_by_key(&command_id, |(c, _)| *c)
            .ok()
            .map(|i| &self.by_command[i].1)
    }
}

/// Writes db_proxy's metrics (a `tt_http::metrics::RenderFn`).
pub fn render(net: &Reactor<ProxyState>, state: &ProxyState, w: &mut Exposition) {
    net.write_metrics(w);
    let m = &state.metrics;
    w.single(
        "tt_db_msg_server_links",
        "Links from msg_servers (and http_msg_servers).",
        Kind::Gauge,
        state.links.len() as f64,
    );
    w.single(
        "tt_db_work_in_flight",
        "Requests handed to the workers: queued or running.",
        Kind::Gauge,
        state.work.in_flight() as f64,
    );
    let busy = m.busy_workers.get().max(0) as usize;
    w.single(
        "tt_db_work_queue_depth",
        "Requests handed to the workers and waiting for one.",
        Kind::Gauge,
        state.work.in_flight().saturating_sub(busy) as f64,
    );
    w.single(
        "tt_db_work_held",
        "Requests held back on their link by backpressure.",
        Kind::Gauge,
        state.work.held() as f64,
    );
    w.single(
        "tt_db_busy_workers",
        "Workers running a request now.",
        Kind::Gauge,
        busy as f64,
    );
    w.single(
        "tt_db_workers",
        "Worker threads (ThreadNum).",
        Kind::Gauge,
        m.workers as f64,
    );
    let counters: [(&str, &str, &AtomicU64); 6] = [
        (
            "tt_db_backpressure_engaged_total",
            "Times a link went over its bound and had its requests held.",
            &m.backpressure_engaged,
        ),
        (
            "tt_db_links_closed_over_hold_total",
            "Links closed because their held requests passed the hard cap.",
            &m.links_closed_over_hold,
        ),
        (
            "tt_db_message_batches_total",
            "Batches of one-to-one messages stored (one message alone counts as a batch).",
            &m.batches,
        ),
        (
            "tt_db_message_batched_total",
            "One-to-one messages stored through the batches.",
            &m.batched_messages,
        ),
        (
            "tt_db_login_batches_total",
            "Batches of validations looked up (one validation alone counts as a batch).",
            &m.login_batches,
        ),
        (
            "tt_db_login_batched_total",
            "Validations looked up through the batches.",
            &m.batched_logins,
        ),
    ];
    for (name, help, n) in counters {
        w.single(name, help, Kind::Counter, n.load(Ordering::Relaxed) as f64);
    }
    w.single(
        "tt_db_login_lane_waiting",
        "Validations waiting for the next batch now.",
        Kind::Gauge,
        state.logins.len() as f64,
    );
    w.family(
        "tt_db_lane_batches_total",
        "Batches of one-to-one messages stored, by lane (a load spills past lane 0 only when it falls behind).",
        Kind::Counter,
    );
    for (lane, n) in m.lane_batches.iter().enumerate() {
        w.sample(
            &[("lane", &lane.to_string())],
            n.load(Ordering::Relaxed) as f64,
        );
    }
    let (held, pairs) = state.lanes.load();
    w.family(
        "tt_db_lane_messages",
        "One-to-one messages a lane holds now, queued or being stored.",
        Kind::Gauge,
    );
    for (lane, n) in held.iter().enumerate() {
        w.sample(&[("lane", &lane.to_string())], *n as f64);
    }
    w.single(
        "tt_db_lane_pairs_in_flight",
        "User pairs with a one-to-one message in a lane (each stays on its lane until none is left).",
        Kind::Gauge,
        pairs as f64,
    );
    w.family(
        "tt_db_request_duration_seconds",
        "Time a worker spent on a request, by command.",
        Kind::Histogram,
    );
    for (cid, h) in &m.latency.by_command {
        let name = tt_proto::cid::name(*cid >> 8, *cid).unwrap_or("unknown");
        w.histogram(&[("command", name)], h);
    }
    let pools: Vec<(&str, &str, &PoolMetrics)> = state
        .services
        .db
        .pools()
        .map(|(n, p)| ("mysql", n, p))
        .chain(state.services.cache.pools().map(|(n, p)| ("redis", n, p)))
        .collect();
    let each = |w: &mut Exposition, f: &dyn Fn(&PoolMetrics) -> f64| {
        for (store, name, p) in &pools {
            w.sample(&[("store", store), ("pool", name)], f(p));
        }
    };
    w.family(
        "tt_db_pool_in_use",
        "MySQL and Redis connections lent out to workers.",
        Kind::Gauge,
    );
    each(w, &|p| p.in_use.get() as f64);
    w.family(
        "tt_db_pool_waiting",
        "Workers waiting for a free pool connection.",
        Kind::Gauge,
    );
    each(w, &|p| p.waiting.get() as f64);
    w.family(
        "tt_db_pool_errors_total",
        "Pool failures: no connection in time, a failed connect, a failed query or command.",
        Kind::Counter,
    );
    each(w, &|p| p.errors.get() as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_kept_per_known_command() {
        let l = RequestLatency::new([tt_proto::cid::MSG_DATA, tt_proto::cid::OTHER_VALIDATE_REQ]);
        l.observe(tt_proto::cid::MSG_DATA, Duration::from_millis(3));
        l.observe(0x7777, Duration::from_millis(3));
        let h = l.get(tt_proto::cid::MSG_DATA).unwrap().snapshot();
        assert_eq!(h.count(), 1);
        assert!((h.sum - 0.003).abs() < 1e-9);
        assert_eq!(
            l.get(tt_proto::cid::OTHER_VALIDATE_REQ)
                .unwrap()
                .snapshot()
                .count(),
            0
        );
        assert!(l.get(0x7777).is_none());
    }

    #[test]
    fn busy_counts_until_dropped_even_in_a_panic() {
        let g = AtomicGauge::default();
        let b = Busy::new(&g);
        assert_eq!(g.get(), 1);
        drop(b);
        let r = std::panic::catch_unwind(|| {
            let _b = Busy::new(&g);
            panic!("handler");
        });
        assert!(r.is_err());
        assert_eq!(g.get(), 0);
    }
}
