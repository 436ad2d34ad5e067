//! The login_server links and the user counts sent on them: the C++
//! `LoginServConn.cpp`'s `send_to_all_login_server` for
//! `CID_OTHER_USER_CNT_UPDATE` (the handler of each link is
//! [`crate::login_serv_conn`]).
//!
//! Differences from the C++, on purpose: the C++ writes each login's and
//! each logout's count update to every login_server at once, so with many
//! msg_servers on one machine each login costs one more write here and one
//! more wake-up of login_server, every turn holding one login. Here the
//! updates are coalesced ([`CntBatch`]): an update after a quiet
//! [`CNT_FLUSH_MS`] goes out at once, as in the C++; the ones that follow
//! it within that time wait for it to pass and then go out together, in
//! order, in one write per login_server. Nothing is dropped and each
//! update is still one `IMUserCntUpdate` of ±1, so login_server is
//! unchanged; its count of this msg_server lags by at most
//! [`CNT_FLUSH_MS`], while its hand-outs not yet reported (kept for 10 s)
//! already rank us by the clients it sent here. A login_server that links
//! while updates wait gets them in its `IMMsgServInfo` count only: the
//! waiting ones are flushed to the older links first.

use base::ImPdu;
use netlib::{ConnId, PeerList, Reactor, TimerId};
use tt_proto::IM::Server::IMUserCntUpdate;

/// `USER_CNT_INC`.
pub const USER_CNT_INC: u32 = 1;
/// `USER_CNT_DEC`.
pub const USER_CNT_DEC: u32 = 2;

/// Longest an update waits to be sent with the ones after it (not in the
/// C++): under a steady stream of logins about ten writes a second per
/// login_server, while login_server's count is never more than this
/// behind.
pub const CNT_FLUSH_MS: u64 = 100;

/// When this many updates wait they all go at once (a bound on the queue
/// and on the size of one write).
pub const CNT_BATCH_MAX: usize = 4096;

/// What to do with one more count update, decided by [`CntBatch::offer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CntStep {
    /// Send what waits (this update included) now.
    SendNow,
    /// It waits; arm the flush timer to fire in this many ms.
    Arm(u64),
    /// It waits; the flush timer is already armed.
    Wait,
}

/// The count updates not yet sent and when the last ones were. Pure
/// bookkeeping with the time passed in; [`LoginServers`] does the sending.
#[derive(Debug, Default)]
pub struct CntBatch {
    /// Waiting updates, oldest first.
    waiting: Vec<IMUserCntUpdate>,
    /// When updates were last sent.
    last_sent_ms: Option<u64>,
    /// True while a flush timer is armed.
    armed: bool,
}

impl CntBatch {
    /// Queues `update` (at `now`) and says whether to send now, arm the
    /// flush timer or wait for it.
    pub fn offer(&mut self, update: IMUserCntUpdate, now: u64) -> CntStep {
        self.waiting.push(update);
        let quiet = self
            .last_sent_ms
            .is_none_or(|t| now.saturating_sub(t) >= CNT_FLUSH_MS);
        if self.waiting.len() >= CNT_BATCH_MAX || (quiet && !self.armed) {
            return CntStep::SendNow;
        }
        if self.armed {
            return CntStep::Wait;
        }
        let since = self.last_sent_ms.map_or(0, |t| now.saturating_sub(t));
        CntStep::Arm(CNT_FLUSH_MS.saturating_sub(since).max(1))
    }

    /// Takes the waiting updates to send at `now`; the timer, if armed,
    /// is the caller's to delete. Taking none (a flush with nothing
    /// waiting) leaves the interval as it was.
    pub fn take(&mut self, now: u64) -> Vec<IMUserCntUpdate> {
        self.armed = false;
        if !self.waiting.is_empty() {
            self.last_sent_ms = Some(now);
        }
        std::mem::take(&mut self.waiting)
    }

    /// Records that the flush timer is armed.
    pub fn armed(&mut self) {
        self.armed = true;
    }
}

/// The login_server links.
#[derive(Debug, Default)]
pub struct LoginServers {
    /// The links.
    pub peers: PeerList,
    /// Count updates waiting to go to every open link.
    cnt: CntBatch,
    /// The armed flush timer.
    flush_timer: Option<TimerId>,
}

impl LoginServers {
    /// The links to these login_servers; none is up yet.
    pub fn new(peers: PeerList) -> LoginServers {
        LoginServers {
            peers,
            cnt: CntBatch::default(),
            flush_timer: None,
        }
    }

    /// `send_to_all_login_server(CID_OTHER_USER_CNT_UPDATE)`: one user more
    /// (`online`) or less on this msg_server, sent now or within
    /// [`CNT_FLUSH_MS`]. Returns the delay for which the caller arms a
    /// timer that calls [`flush_cnt`](Self::flush_cnt) and hands it to
    /// [`armed`](Self::armed) (the caller knows the server state the timer
    /// reaches us through).
    pub fn user_cnt_update<S: 'static>(
        &mut self,
        net: &mut Reactor<S>,
        user_id: u32,
        online: bool,
    ) -> Option<u64> {
        let update = IMUserCntUpdate {
            user_action: if online { USER_CNT_INC } else { USER_CNT_DEC },
            user_id,
        };
        match self.cnt.offer(update, net.now_ms()) {
            CntStep::SendNow => {
                self.flush_cnt(net);
                None
            }
            CntStep::Arm(ms) => Some(ms),
            CntStep::Wait => None,
        }
    }

    /// Records the flush timer armed after [`user_cnt_update`](Self::user_cnt_update).
    pub fn armed(&mut self, timer: TimerId) {
        self.cnt.armed();
        self.flush_timer = Some(timer);
    }

    /// Sends every waiting count update, in order, to every open link
    /// (one write each at the end of the turn), and disarms the timer.
    pub fn flush_cnt<S: 'static>(&mut self, net: &mut Reactor<S>) {
        let updates = self.cnt.take(net.now_ms());
        if let Some(t) = self.flush_timer.take() {
            net.delete_timer(t);
        }
        if updates.is_empty() {
            return;
        }
        let links: Vec<ConnId> = self.peers.open_links();
        for update in &updates {
            match ImPdu::for_msg(0, update) {
                Ok(pdu) => {
                    for &link in &links {
                        let _ = net.send_pdu(link, &pdu);
                    }
                }
                Err(e) => log::error!("user count update not sent: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(user_id: u32) -> IMUserCntUpdate {
        IMUserCntUpdate {
            user_action: USER_CNT_INC,
            user_id,
        }
    }

    #[test]
    fn an_update_after_quiet_goes_at_once_the_next_wait_for_the_rest_of_the_interval() {
        let mut b = CntBatch::default();
        assert_eq!(b.offer(update(1), 1_000), CntStep::SendNow);
        assert_eq!(b.take(1_000).len(), 1);
        assert_eq!(b.offer(update(2), 1_030), CntStep::Arm(70));
        b.armed();
        assert_eq!(b.offer(update(3), 1_050), CntStep::Wait);
        // The timer fires: both go, in order.
        let sent = b.take(1_100);
        assert_eq!(sent.iter().map(|u| u.user_id).collect::<Vec<_>>(), [2, 3]);
        // Right after a flush the next one waits again; after a quiet
        // interval it goes at once.
        assert_eq!(b.offer(update(4), 1_100), CntStep::Arm(CNT_FLUSH_MS));
        b.armed();
        b.take(1_200);
        assert_eq!(b.offer(update(5), 1_400), CntStep::SendNow);
    }

    #[test]
    fn a_flush_with_nothing_waiting_does_not_hold_the_next_update() {
        let mut b = CntBatch::default();
        assert!(b.take(1_000).is_empty());
        assert_eq!(b.offer(update(1), 1_010), CntStep::SendNow);
    }

    #[test]
    fn a_full_batch_goes_at_once_and_a_late_timer_never_strands_an_update() {
        let mut b = CntBatch::default();
        assert_eq!(b.offer(update(0), 0), CntStep::SendNow);
        b.take(0);
        assert_eq!(b.offer(update(0), 10), CntStep::Arm(90));
        b.armed();
        for i in 1..CNT_BATCH_MAX - 1 {
            assert_eq!(b.offer(update(i as u32), 20), CntStep::Wait);
        }
        assert_eq!(b.offer(update(9_999), 20), CntStep::SendNow);
        let sent = b.take(20);
        assert_eq!(sent.len(), CNT_BATCH_MAX);
        assert!(b.waiting.is_empty());
        // Past the interval but with a timer still armed (it has not fired
        // yet): the update waits for that timer rather than racing it.
        b.armed();
        assert_eq!(b.offer(update(1), 500), CntStep::Wait);
    }
}
