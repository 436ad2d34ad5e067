//! Metrics, written once for every server: counters, gauges and histograms,
//! and the Prometheus text exposition format they are read in. The C++ has
//! none (its servers log a statistics line every few minutes at best).
//!
//! Two kinds of storage, chosen by who updates a value:
//! - values the event loop owns are plain integers in the loop's own state
//!   (the reactor's [`NetMetrics`](crate::reactor::NetMetrics), a server's
//!   counters in its `S`): no lock, no atomic, a `+= 1` on the hot path;
//!   [`LabeledCounter`] keeps a small set of labelled ones the same way;
//! - values worker threads update (db_proxy's pools and request latency)
//!   are [`AtomicCounter`], [`AtomicGauge`] and [`Histogram`], with relaxed
//!   atomics and no lock either.
//!
//! A scrape renders everything into an [`Exposition`] on the loop thread
//! (`GET /metrics`, served by `tt_http::metrics` on the server's own loop).
//! Naming follows the Prometheus conventions: every name starts `tt_`,
//! counters end `_total`, values are in base units (seconds, bytes).
//! [`process`] adds the process's resident memory and open descriptors.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The Prometheus metric type written in a family's `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (names end in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations counted into buckets, with their sum and count.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// The text a scrape answers with (the Prometheus text format, 0.0.4):
/// each family's `# HELP` and `# TYPE` once, then its samples.
///
/// ```
/// use netlib::metrics::{Exposition, Kind};
/// let mut w = Exposition::new();
/// w.family("tt_logins_total", "Logins by result.", Kind::Counter);
/// w.sample(&[("result", "ok")], 3.0);
/// assert!(w.text().contains("tt_logins_total{result=\"ok\"} 3\n"));
/// ```
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
    family: String,
}

/// The `Content-Type` of an [`Exposition`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts the family `name`: its `# HELP` and `# TYPE` lines. Samples
    /// that follow belong to it. Call it once per name.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) -> &mut Exposition {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        self.family.clear();
        self.family.push_str(name);
        self
    }

    /// One sample of the current family with these labels.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Exposition {
        self.line("", labels, None, value);
        self
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, help: &str, kind: Kind, value: f64) {
        self.family(name, help, kind).sample(&[], value);
    }

    /// A counter family with one sample per `(label value, count)`, under
    /// the label `label`.
    pub fn counters<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: impl IntoIterator<Item = (&'a str, u64)>,
    ) {
        self.family(name, help, Kind::Counter);
        for (v, n) in values {
            self.sample(&[(label, v)], n as f64);
        }
    }

    /// One histogram series of the current (histogram) family: its
    /// `_bucket` lines (cumulative, ending with `+Inf`), `_sum` and `_count`.
    pub fn histogram(&mut self, labels: &[(&str, &str)], h: &Histogram) -> &mut Exposition {
        let snap = h.snapshot();
        let mut cumulative = 0;
        for (i, bound) in h.bounds.iter().enumerate() {
            cumulative += snap.counts[i];
            let le = format_value(*bound);
            self.line("_bucket", labels, Some(&le), cumulative as f64);
        }
        cumulative += snap.counts[h.bounds.len()];
        self.line("_bucket", labels, Some("+Inf"), cumulative as f64);
        self.line("_sum", labels, None, snap.sum);
        self.line("_count", labels, None, cumulative as f64);
        self
    }

    fn line(&mut self, suffix: &str, labels: &[(&str, &str)], le: Option<&str>, value: f64) {
        self.out.push_str(&self.family);
        self.out.push_str(suffix);
        if !labels.is_empty() || le.is_some() {
            self.out.push('{');
            let mut first = true;
            for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
                if !first {
                    self.out.push(',');
                }
                first = false;
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(&format_value(value));
        self.out.push('\n');
    }

    /// The text so far.
    pub fn text(&self) -> &str {
        &self.out
    }

    /// The whole text.
    pub fn into_text(self) -> String {
        self.out
    }
}

/// A sample value as the text format writes it: whole numbers without a
/// fraction, `+Inf`, `-Inf`, `NaN`.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// A label value escaped: `\`, `"` and newlines.
fn escape_label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// A help text escaped: `\` and newlines.
fn escape_help(v: &str) -> String {
    v.replace('\\', r"\\").replace('\n', r"\n")
}

/// Counters under a few label values known when they are counted (message
/// types, results, commands): owned by the loop, no lock. The labels are
/// `&'static str` from the code, never from the network, so the set is
/// bounded by the program; lookup is a scan, fine for the dozen a server
/// has.
#[derive(Debug, Default, Clone)]
pub struct LabeledCounter {
    values: Vec<(&'static str, u64)>,
}

impl LabeledCounter {
    /// A set with these label values at 0 (so they are exported before
    /// the first event, as Prometheus advises).
    pub fn with_labels(labels: &[&'static str]) -> LabeledCounter {
        LabeledCounter {
            values: labels.iter().map(|l| (*l, 0)).collect(),
        }
    }

    /// Adds `n` under `label`.
    pub fn add(&mut self, label: &'static str, n: u64) {
        match self.values.iter_mut().find(|(l, _)| *l == label) {
            Some((_, v)) => *v += n,
            None => self.values.push((label, n)),
        }
    }

    /// Adds 1 under `label`.
    pub fn inc(&mut self, label: &'static str) {
        self.add(label, 1);
    }

    /// The count under `label`.
    pub fn get(&self, label: &str) -> u64 {
        self.values
            .iter()
            .find(|(l, _)| *l == label)
            .map_or(0, |(_, v)| *v)
    }

    /// Every label value and its count, in first-seen order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.values.iter().copied()
    }
}

/// A counter other threads add to (relaxed: a scrape needs no ordering).
#[derive(Debug, Default)]
pub struct AtomicCounter(AtomicU64);

impl AtomicCounter {
    /// Adds 1.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A gauge other threads move (connections lent out, callers waiting).
#[derive(Debug, Default)]
pub struct AtomicGauge(AtomicI64);

impl AtomicGauge {
    /// Adds 1.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes 1 off.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// The value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Request latency buckets, in seconds: 250 µs to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Observations counted into fixed buckets, with their sum: updated with
/// relaxed atomics from any thread, no lock.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One count per bound, then the overflow (`+Inf`) count.
    counts: Vec<AtomicU64>,
    /// The sum's `f64` bits.
    sum: AtomicU64,
}

/// What a [`Histogram`] held at one moment (not cumulative).
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Per bucket, then overflow.
    pub counts: Vec<u64>,
    /// Sum of every observation.
    pub sum: f64,
}

impl HistogramSnapshot {
    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl Histogram {
    /// A histogram with these upper bounds (ascending, `+Inf` implied).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// A histogram with [`LATENCY_BUCKETS`].
    pub fn latency() -> Histogram {
        Histogram::new(LATENCY_BUCKETS)
    }

    /// Counts one observation of `v`.
    pub fn observe(&self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let mut old = self.sum.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(old) + v).to_bits();
            match self
                .sum
                .compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => old = now,
            }
        }
    }

    /// Counts a duration, in seconds.
    pub fn observe_duration(&self, d: std::time::Duration) {
        self.observe(d.as_secs_f64());
    }

    /// The counts and sum now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum: f64::from_bits(self.sum.load(Ordering::Relaxed)),
        }
    }
}

/// The last path segment of a type's name without its generics
/// (`tt_http::conn::HttpConn<x::LoginHttp>` -> `HttpConn`): what a
/// connection handler is called in the `kind` label by default.
pub fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

/// Writes the state of peer links, one list per peer kind (`db_proxy`,
/// `route_server`...): `tt_peer_link_up` (1 when the connect completed and
/// the link is in use, 0 while down or connecting) and
/// `tt_peer_connects_total` (connects started: the first and every
/// reconnect), each labelled `peer`, `link` (the index in the list) and
/// `addr` (as the conf names it).
pub fn write_peer_links(w: &mut Exposition, lists: &[(&str, &crate::PeerList)]) {
    let each = |w: &mut Exposition, f: &dyn Fn(&crate::PeerList, usize) -> f64| {
        for (peer, list) in lists {
            for (i, s) in list.list.servers.iter().enumerate() {
                let link = i.to_string();
                let addr = format!("{}:{}", s.addr.ip, s.addr.port);
                w.sample(
                    &[("peer", peer), ("link", &link), ("addr", &addr)],
                    f(list, i),
                );
            }
        }
    };
    w.family(
        "tt_peer_link_up",
        "1 when the link to this peer server is connected and in use, 0 while it is down or connecting.",
        Kind::Gauge,
    );
    each(w, &|list, i| {
        let conn = list.list.servers[i].conn;
        f64::from(u8::from(conn.is_some_and(|c| list.is_open(c))))
    });
    w.family(
        "tt_peer_connects_total",
        "Connects started to this peer server: the first one and every reconnect.",
        Kind::Counter,
    );
    each(w, &|list, i| list.list.servers[i].connects as f64);
}

/// The process's own figures, read from `/proc/self` at scrape time.
pub mod process {
    use super::{Exposition, Kind};

    /// Resident memory in bytes (`/proc/self/statm`'s second field times
    /// the page size), `None` where `/proc` is not readable.
    pub fn resident_memory_bytes() -> Option<u64> {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Some(pages * u64::try_from(page).ok().filter(|p| *p > 0).unwrap_or(4096))
    }

    /// Open file descriptors (entries of `/proc/self/fd`, less the one
    /// the count itself holds open).
    pub fn open_fds() -> Option<u64> {
        let n = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        Some(n.saturating_sub(1))
    }

    /// The descriptor limit (`RLIMIT_NOFILE`'s soft value).
    pub fn max_fds() -> Option<u64> {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `r` is a valid rlimit to write into.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0;
        ok.then_some(r.rlim_cur)
    }

    /// Writes `tt_process_resident_memory_bytes`, `tt_process_open_fds`
    /// and `tt_process_max_fds` (each left out where unknown).
    pub fn write(w: &mut Exposition) {
        if let Some(v) = resident_memory_bytes() {
            w.single(
                "tt_process_resident_memory_bytes",
                "Resident memory of the process.",
                Kind::Gauge,
                v as f64,
            );
        }
        if let Some(v) = open_fds() {
            w.single(
                "tt_process_open_fds",
                "Open file descriptors of the process.",
                Kind::Gauge,
                v as f64,
            );
        }
        if let Some(v) = max_fds() {
            w.single(
                "tt_process_max_fds",
                "The process's open file descriptor limit (RLIMIT_NOFILE).",
                Kind::Gauge,
                v as f64,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escapes() {
        let mut w = Exposition::new();
        w.family("tt_x_total", "An x.\nTwo lines \\ here.", Kind::Counter)
            .sample(&[("a", "q\"u\\o\nte"), ("b", "2")], 5.0)
            .sample(&[], 0.5);
        w.single("tt_g", "A g.", Kind::Gauge, f64::INFINITY);
        assert_eq!(
            w.text(),
            "# HELP tt_x_total An x.\\nTwo lines \\\\ here.\n# TYPE tt_x_total counter\n\
             tt_x_total{a=\"q\\\"u\\\\o\\nte\",b=\"2\"} 5\ntt_x_total 0.5\n\
             # HELP tt_g A g.\n# TYPE tt_g gauge\ntt_g +Inf\n"
        );
    }

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        static B: &[f64] = &[0.1, 1.0];
        let h = Histogram::new(B);
        for v in [0.05, 0.1, 0.5, 3.0] {
            h.observe(v);
        }
        let mut w = Exposition::new();
        w.family("tt_h_seconds", "H.", Kind::Histogram)
            .histogram(&[("command", "c")], &h);
        assert_eq!(
            w.text(),
            "# HELP tt_h_seconds H.\n# TYPE tt_h_seconds histogram\n\
             tt_h_seconds_bucket{command=\"c\",le=\"0.1\"} 2\n\
             tt_h_seconds_bucket{command=\"c\",le=\"1\"} 3\n\
             tt_h_seconds_bucket{command=\"c\",le=\"+Inf\"} 4\n\
             tt_h_seconds_sum{command=\"c\"} 3.65\n\
             tt_h_seconds_count{command=\"c\"} 4\n"
        );
        assert_eq!(h.snapshot().count(), 4);
    }

    #[test]
    fn histograms_take_observations_from_many_threads() {
        let h = std::sync::Arc::new(Histogram::latency());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let h = h.clone();
                std::thread::spawn(move || (0..1000).for_each(|_| h.observe(0.001)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let s = h.snapshot();
        assert_eq!(s.count(), 4000);
        assert!((s.sum - 4.0).abs() < 1e-9, "{}", s.sum);
    }

    #[test]
    fn labeled_counters_and_type_names() {
        let mut c = LabeledCounter::with_labels(&["ok", "refused"]);
        c.inc("refused");
        c.add("other", 2);
        assert_eq!(
            c.iter().collect::<Vec<_>>(),
            vec![("ok", 0), ("refused", 1), ("other", 2)]
        );
        assert_eq!(c.get("other"), 2);
        struct Inner;
        #[allow(dead_code)]
        struct Outer<T>(T);
        assert_eq!(short_type_name::<Outer<Inner>>(), "Outer");
        assert_eq!(short_type_name::<Inner>(), "Inner");
    }

    #[test]
    fn the_process_reads_its_own_figures() {
        assert!(process::resident_memory_bytes().unwrap() > 4096);
        // stdin, stdout, stderr at least (other tests' sockets come and go).
        assert!(process::open_fds().unwrap() >= 3);
        assert!(process::max_fds().unwrap() >= 3);
    }
}
