//! The loop thread's state: what the C++ keeps in the globals of
//! `ProxyConn.cpp` (`g_proxy_conn_map`, `g_thread_pool`, the response
//! list) and `db_proxy_server.cpp` (the handler map, the sync center it
//! starts), gathered in one struct owned by the event loop.
//!
//! Differences from the C++: requests go to the workers through the
//! bounded [`WorkQueue`] (the C++ queues without bound); a worker's reply
//! comes back through the reactor's [`Remote`], which wakes the loop at
//! once (the C++ drains its response list in a loop callback, up to 10 ms
//! later); and the shutdown waits for the queued work on another thread,
//! so the loop goes on answering while it drains (the C++ `exit`s after
//! 4 s, queued work or not).

use crate::business::{message_batch, relation_model, HandlerResult};
use crate::handler_map::Handler;
use crate::login_lane::{LoginLane, PendingLogin};
use crate::message_lanes::{lane_count, lane_message, spare_worker, MessageLanes, Pending};
use crate::metrics::{Busy, RequestLatency};
use crate::new_pairs::{self, PairMaker, ParkedPairs};
use crate::services::Services;
use crate::sync_center::SyncThread;
use crate::work_queue::{Limits, WorkQueue};
use base::pdu::ImPdu;
use base::thread_pool::ThreadPool;
use netlib::metrics::AtomicGauge;
use netlib::{ConnId, Reactor, Remote};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tt_proto::cid;

/// A request on its way to a worker (`CProxyTask`).
pub struct Request {
    /// Its handler, found when it arrived.
    pub handler: Handler,
    /// The request PDU.
    pub pdu: ImPdu,
}

/// Counters of the work queue and the workers, shared with the workers
/// (which update theirs with relaxed atomics) and read by `GET /metrics`.
#[derive(Debug)]
pub struct WorkMetrics {
    /// How often a link went over its bound and had its requests held.
    pub backpressure_engaged: AtomicU64,
    /// Links closed because their held requests passed the hard cap.
    pub links_closed_over_hold: AtomicU64,
    /// Workers running a request now.
    pub busy_workers: AtomicGauge,
    /// Worker threads.
    pub workers: usize,
    /// Time spent per request, by command.
    pub latency: RequestLatency,
    /// Batches of one-to-one messages stored (see `message_lanes`).
    pub batches: AtomicU64,
    /// Messages in those batches.
    pub batched_messages: AtomicU64,
    /// Batches per lane (how far a load spilled past the first).
    pub lane_batches: Vec<AtomicU64>,
    /// Batches of validations looked up (see `login_lane`).
    pub login_batches: AtomicU64,
    /// Validations in those batches.
    pub batched_logins: AtomicU64,
}

impl WorkMetrics {
    /// Zero counts, `workers` threads, a latency histogram per command.
    pub fn new(workers: usize, commands: impl IntoIterator<Item = u16>) -> WorkMetrics {
        WorkMetrics {
            backpressure_engaged: AtomicU64::new(0),
            links_closed_over_hold: AtomicU64::new(0),
            busy_workers: AtomicGauge::default(),
            workers,
            latency: RequestLatency::new(commands),
            batches: AtomicU64::new(0),
            batched_messages: AtomicU64::new(0),
            lane_batches: (0..lane_count(workers))
                .map(|_| AtomicU64::new(0))
                .collect(),
            login_batches: AtomicU64::new(0),
            batched_logins: AtomicU64::new(0),
        }
    }

    /// Counts one more engagement and returns the new total.
    pub fn engaged(&self) -> u64 {
        self.backpressure_engaged.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// The state of db_proxy's event loop, handed to every `ProxyConn` callback.
pub struct ProxyState {
    /// Pools and the rest, shared with the workers.
    pub services: Arc<Services>,
    /// Command id → handler.
    pub handlers: crate::handler_map::HandlerMap,
    /// The worker pool (`g_thread_pool`); taken when the shutdown has
    /// drained it.
    pub workers: Option<ThreadPool>,
    /// Hands replies back to this loop.
    pub remote: Remote<ProxyState>,
    /// Every open msg_server link (`g_proxy_conn_map`).
    pub links: HashSet<ConnId>,
    /// Links whose reads are paused while they have requests held back.
    pub paused: HashSet<ConnId>,
    /// The group-chat sync thread; asked to stop on SIGTERM, joined with
    /// the workers.
    pub sync_thread: Option<SyncThread>,
    /// Requests with the workers and those held back, per link.
    pub work: WorkQueue<Request>,
    /// How often backpressure engaged.
    pub metrics: Arc<WorkMetrics>,
    /// One-to-one messages waiting to be stored in batches, by user pair.
    pub lanes: Arc<MessageLanes>,
    /// Validations waiting to be looked up in batches.
    pub logins: Arc<LoginLane>,
    /// Messages waiting for their new pair to be made (`new_pairs`).
    pub parked: ParkedPairs,
    /// The new pairs to make, shared with the workers.
    pub pair_maker: Arc<PairMaker>,
    /// Round robin of every task but the lanes' (requests, login lookups,
    /// new pairs) over the workers without a lane ([`spare_worker`]).
    pub next_spare: usize,
    /// The exit delay after SIGTERM has passed: new requests are dropped,
    /// queued and held ones finish, then the loop stops.
    pub draining: bool,
    /// When (reactor ms) a msg_server last sent a request: after SIGTERM
    /// the drain starts once they have all gone quiet.
    pub last_request_at: u64,
    /// Set by a drain given up (`abandon_drain`): the requests it left
    /// unanswered. The process then exits non-zero.
    pub abandoned: Option<usize>,
}

impl ProxyState {
    /// The state before the loop runs.
    pub fn new(
        services: Arc<Services>,
        workers: ThreadPool,
        remote: Remote<ProxyState>,
        sync_thread: SyncThread,
        limits: Limits,
    ) -> ProxyState {
        let handlers = crate::handler_map::HandlerMap::new();
        let metrics = Arc::new(WorkMetrics::new(workers.size(), handlers.commands()));
        let lane_n = lane_count(workers.size());
        // A lane waits for more only where other workers take the rest.
        let lanes = Arc::new(MessageLanes::new(lane_n, workers.size() > lane_n));
        ProxyState {
            services,
            handlers,
            workers: Some(workers),
            remote,
            links: HashSet::new(),
            paused: HashSet::new(),
            sync_thread: Some(sync_thread),
            work: WorkQueue::new(limits),
            metrics,
            lanes,
            logins: Arc::new(LoginLane::default()),
            parked: ParkedPairs::default(),
            pair_maker: Arc::new(PairMaker::default()),
            next_spare: 0,
            draining: false,
            last_request_at: 0,
            abandoned: None,
        }
    }

    /// Hands `req` of `link` to a worker (`CThreadPool::AddTask`); the
    /// worker's [`Completion`] brings the reply back and frees its place in
    /// [`Self::work`], even when the handler panics.
    pub fn run_request(&mut self, link: ConnId, req: Request) {
        let completion = Completion {
            link,
            remote: Some(self.remote.clone()),
            reply: None,
        };
        let Some(workers) = self.workers.as_ref() else {
            // Only after the drain, when nothing is left to run.
            log::warn!(
                "shutting down: command {:#06x} dropped",
                req.pdu.command_id()
            );
            return;
        };
        if let Some(msg) = lane_message(&req.pdu) {
            let (from, to) = (msg.from_user_id, msg.to_session_id);
            let key = relation_model::ordered(from, to);
            let pending = Pending {
                pdu: req.pdu,
                msg,
                completion,
            };
            // A pair being made, or new to this process: its messages wait
            // (in order) while a worker without a lane makes it.
            let new_pair = || {
                message_batch::batchable(&pending.msg)
                    && self.services.pairs.get(key.0, key.1).is_none()
            };
            if self.parked.is_parked(key) || new_pair() {
                if self.parked.park(key, pending) {
                    self.pair_maker.push(from, to);
                    // On two workers, so that one held up by a lock
                    // another process holds does not keep the pair waiting.
                    let lanes = self.lanes.len();
                    for worker in
                        new_pairs::maker_workers(&mut self.next_spare, workers.size(), lanes)
                    {
                        let (maker, services, remote) = (
                            self.pair_maker.clone(),
                            self.services.clone(),
                            self.remote.clone(),
                        );
                        workers.add_task_to(worker, move || maker.make(&services, &remote));
                    }
                }
                return;
            }
            self.to_lane(pending);
            return;
        }
        if req.pdu.command_id() == cid::OTHER_VALIDATE_REQ {
            let pending = PendingLogin {
                pdu: req.pdu,
                completion,
            };
            if self.logins.push(pending) {
                self.drain_logins();
            }
            return;
        }
        let services = self.services.clone();
        let metrics = self.metrics.clone();
        // Never on a lane's worker, which may be waiting for its batch.
        let worker = spare_worker(&mut self.next_spare, workers.size(), self.lanes.len());
        workers.add_task_to(worker, move || {
            let mut completion = completion;
            let started = std::time::Instant::now();
            let busy = Busy::new(&metrics.busy_workers);
            let result = (req.handler)(&services, &req.pdu);
            drop(busy);
            metrics
                .latency
                .observe(req.pdu.command_id(), started.elapsed());
            match result {
                Ok(Some(reply)) => completion.reply = Some(reply.into_bytes()),
                Ok(None) => {}
                Err(e) => log::warn!("command {:#06x}: {e}", req.pdu.command_id()),
            }
        });
    }

    /// Hands a drain task of the login lane to a worker without a message
    /// lane (in turn), so logins never wait behind a batch's commit.
    fn drain_logins(&mut self) {
        let Some(workers) = self.workers.as_ref() else {
            return; // only after the drain, when nothing is left
        };
        let worker = spare_worker(&mut self.next_spare, workers.size(), self.lanes.len());
        let (logins, services, metrics) = (
            self.logins.clone(),
            self.services.clone(),
            self.metrics.clone(),
        );
        workers.add_task_to(worker, move || logins.drain(&services, &metrics));
    }

    /// Queues `p` in its pair's lane and a drain task on the lane's worker.
    fn to_lane(&self, p: Pending) {
        let Some(workers) = self.workers.as_ref() else {
            return; // only after the drain, when nothing is left
        };
        let lane = self.lanes.push(p);
        let (lanes, services, metrics) = (
            self.lanes.clone(),
            self.services.clone(),
            self.metrics.clone(),
        );
        workers.add_task_to(lane, move || lanes.drain(lane, &services, &metrics));
    }

    /// A worker made (or failed to make) the pairs `done`: their parked
    /// messages go into their lanes, in order, or are answered as not
    /// stored.
    pub fn pairs_made(&mut self, done: Vec<((u32, u32), bool)>) {
        for (key, made) in done {
            let Some(batch) = self.parked.release(key) else {
                continue;
            };
            if made {
                for p in batch {
                    self.to_lane(p);
                }
            } else if let Some(workers) = self.workers.as_ref() {
                let worker = spare_worker(&mut self.next_spare, workers.size(), self.lanes.len());
                workers.add_task_to(worker, move || new_pairs::answer_not_stored(batch));
            }
        }
    }

    /// A worker finished a request of `link`: sends its reply, hands the
    /// held requests that now fit to the workers, and ends a drained
    /// shutdown.
    pub fn request_done(
        &mut self,
        net: &mut Reactor<ProxyState>,
        link: ConnId,
        reply: Option<Vec<u8>>,
    ) {
        if let Some(bytes) = reply {
            // The link may have gone meanwhile: the reply is dropped, as the
            // C++ drops a reply whose connection is gone.
            if let Err(e) = net.send(link, &bytes) {
                log::debug!("reply dropped: {e}");
            }
        }
        for (held_link, req) in self.work.done(link) {
            self.run_request(held_link, req);
        }
        if self.logins.wants_drain() {
            self.drain_logins();
        }
        if !self.paused.is_empty() {
            let work = &self.work;
            self.paused.retain(|&l| {
                let holding = work.is_holding(l);
                if !holding {
                    net.resume_reading(l);
                }
                holding
            });
        }
        self.finish_when_drained();
    }

    /// Once draining and nothing is left with the workers or held: joins
    /// the workers and the sync thread on a thread of its own (they may
    /// still be finishing a MySQL call), which stops the loop when done.
    /// Until then the loop keeps its timers and heartbeats.
    pub fn finish_when_drained(&mut self) {
        if !self.draining || !self.work.is_idle() {
            return;
        }
        let (Some(workers), sync) = (self.workers.take(), self.sync_thread.take()) else {
            return; // already finishing
        };
        log::info!("all queued work done; stopping the workers");
        let remote = self.remote.clone();
        let joined = std::thread::Builder::new()
            .name("db-shutdown".into())
            .spawn(move || {
                drop(workers);
                drop(sync);
                remote.run(|net, _| net.stop());
            });
        if let Err(e) = joined {
            log::error!("cannot start the shutdown thread ({e}); stopping now");
            self.remote.run(|net, _| net.stop());
        }
    }
}

impl ProxyState {
    /// The drain took too long (a worker or the sync thread is stuck in a
    /// MySQL or Redis call that does not return): stops the loop without
    /// joining them. Their requests were never answered, so nothing they
    /// held was acknowledged; a store that still completes in MariaDB
    /// afterwards is one the msg_server will see as failed, as after a
    /// `kill -9`.
    pub fn abandon_drain(&mut self, net: &mut Reactor<ProxyState>) {
        if self.abandoned.is_some() {
            return;
        }
        let left = self.work.in_flight() + self.work.held();
        self.abandoned = Some(left);
        log::error!(
            "exiting with {left} requests unanswered: none has finished in {} s of the drain \
             (MariaDB or Redis not answering)",
            crate::proxy_conn::DRAIN_LIMIT_MS / 1000
        );
        // Dropping them would wait for the stuck calls; the process exit
        // ends those threads.
        std::mem::forget(self.workers.take());
        std::mem::forget(self.sync_thread.take());
        net.stop();
    }
}

/// Travels with a request to its worker; dropped when the task ends
/// (normally, by a panic, or unrun with a closed queue), it hands the
/// reply, if any, back to the loop and so always frees the request's place
/// in the work queue.
pub struct Completion {
    link: ConnId,
    /// `None` once a [`CompletionBatch`] took the hand-over on itself.
    remote: Option<Remote<ProxyState>>,
    reply: Option<Vec<u8>>,
}

/// How long a worker waits for room in the loop's full inbox before it
/// gives its reply up: the `SERVER_TIMEOUT` after which the msg_server
/// would have closed the link as silent anyway (a loop that drains nothing
/// for that long answers no heartbeat either).
pub const REPLY_WAIT: Duration = Duration::from_millis(netlib::imconn::SERVER_TIMEOUT);

impl Drop for Completion {
    fn drop(&mut self) {
        let Some(remote) = self.remote.take() else {
            return;
        };
        let link = self.link;
        let reply = self.reply.take();
        let had_reply = reply.is_some();
        let done = remote.run_timeout(
            move |net, state| state.request_done(net, link, reply),
            REPLY_WAIT,
        );
        if !done {
            log::error!(
                "request of link {link} lost on the way back (reply: {had_reply}): the event \
                 loop is gone or its inbox stayed full for {REPLY_WAIT:?} ({:?})",
                remote.inbox_stats()
            );
        }
    }
}

/// The completions of a batch: dropped (normally or by a panic), it hands
/// every reply back to the loop in one go, in the batch's order, so a
/// batch costs the loop one wake-up instead of one per message.
pub struct CompletionBatch {
    items: Vec<Completion>,
}

impl CompletionBatch {
    /// Takes over `items`.
    pub fn new(items: Vec<Completion>) -> CompletionBatch {
        CompletionBatch { items }
    }

    /// The reply of the `i`-th request.
    pub fn set_reply(&mut self, i: usize, bytes: Vec<u8>) {
        if let Some(c) = self.items.get_mut(i) {
            c.reply = Some(bytes);
        }
    }

    /// The handlers' results of a batch of `command` requests, in order,
    /// handled together in `took`: each is timed as that long, its reply
    /// kept, its error logged.
    pub fn set_results(
        &mut self,
        command: u16,
        results: Vec<HandlerResult>,
        took: Duration,
        metrics: &WorkMetrics,
    ) {
        for (i, result) in results.into_iter().enumerate() {
            metrics.latency.observe(command, took);
            match result {
                Ok(Some(pdu)) => self.set_reply(i, pdu.into_bytes()),
                Ok(None) => {}
                Err(e) => log::warn!("command {command:#06x}: {e}"),
            }
        }
    }
}

impl Drop for CompletionBatch {
    fn drop(&mut self) {
        let Some(remote) = self.items.first().and_then(|c| c.remote.clone()) else {
            return;
        };
        let done: Vec<(ConnId, Option<Vec<u8>>)> = self
            .items
            .iter_mut()
            .map(|c| {
                c.remote = None;
                (c.link, c.reply.take())
            })
            .collect();
        let n = done.len();
        let handed = remote.run_timeout(
            move |net, state| {
                for (link, reply) in done {
                    state.request_done(net, link, reply);
                }
            },
            REPLY_WAIT,
        );
        if !handed {
            log::error!(
                "{n} requests lost on the way back: the event loop is gone or its inbox \
                 stayed full for {REPLY_WAIT:?} ({:?})",
                remote.inbox_stats()
            );
        }
    }
}
