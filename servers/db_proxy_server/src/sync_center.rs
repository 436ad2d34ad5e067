//! The sync center: the C++ `SyncCenter.cpp` (`CSyncCenter`).
//!
//! It keeps two times in the `unread` cache: `total_user_updated`, when any
//! user profile last changed (clients' "changed users since" requests are
//! answered from MySQL only when it is newer than their time), and
//! `last_update_group`, up to when group chats have been folded into the
//! members' recent sessions. A thread does that folding every 5 s
//! (`doSyncGroupChat`).
//!
//! Two C++ faults fixed: it reads `total_user_updated` but writes
//! `total_user_update`, so its value never survives a restart (we write
//! both keys and read the first); and it ignores a stored
//! `last_update_group` because its emptiness test is inverted.

use crate::business::{group_model, session_model, HandlerError};
use crate::cache_keys;
use crate::cache_pool::{pools, CacheManager};
use crate::db_pool::{MASTER, SLAVE};
use crate::services::Services;
use crossbeam_channel::{bounded, RecvTimeoutError, Sender};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tt_proto::IM::BaseDefine::SessionType;

/// `doSyncGroupChat` runs every 5 s.
const SYNC_INTERVAL: Duration = Duration::from_secs(5);

/// The two sync times, shared by the workers and the sync thread.
#[derive(Default)]
pub struct SyncCenter {
    last_update: AtomicU32,
    last_update_group: AtomicU32,
}

impl SyncCenter {
    /// `CSyncCenter::init`: loads the times from the cache, setting them to
    /// now when absent.
    pub fn init(&self, cache: &CacheManager) {
        let now = base::tick::unix_time();
        let stored = cache.get(pools::UNREAD).and_then(|mut c| {
            c.run(|c| {
                redis::cmd("MGET")
                    .arg(cache_keys::TOTAL_USER_UPDATED)
                    .arg(cache_keys::LAST_UPDATE_GROUP)
                    .query::<(Option<String>, Option<String>)>(c)
            })
        });
        match stored {
            Ok((total, group)) => {
                match total.and_then(|v| v.parse().ok()) {
                    Some(t) => self.last_update.store(t, Ordering::SeqCst),
                    None => self.update_total_update(cache, now),
                }
                match group.and_then(|v| v.parse().ok()) {
                    Some(t) => self.last_update_group.store(t, Ordering::SeqCst),
                    None => self.update_last_update_group(cache, now),
                }
            }
            Err(e) => {
                log::error!("sync center: cannot load times: {e}");
                self.last_update.store(now, Ordering::SeqCst);
                self.last_update_group.store(now, Ordering::SeqCst);
            }
        }
    }

    /// When a user profile last changed.
    pub fn last_update(&self) -> u32 {
        self.last_update.load(Ordering::SeqCst)
    }

    /// Up to when group chats are folded into recent sessions.
    pub fn last_update_group(&self) -> u32 {
        self.last_update_group.load(Ordering::SeqCst)
    }

    /// `updateTotalUpdate`: a profile changed at `now`.
    pub fn update_total_update(&self, cache: &CacheManager, now: u32) {
        self.last_update.store(now, Ordering::SeqCst);
        let stored = cache.get(pools::UNREAD).and_then(|mut c| {
            c.run(|c| {
                redis::pipe()
                    .cmd("SET")
                    .arg(cache_keys::TOTAL_USER_UPDATED)
                    .arg(now)
                    .ignore()
                    .cmd("SET")
                    .arg(cache_keys::TOTAL_USER_UPDATE_CPP)
                    .arg(now)
                    .ignore()
                    .query::<()>(c)
            })
        });
        if let Err(e) = stored {
            log::error!(
                "sync center: cannot store {}: {e}",
                cache_keys::TOTAL_USER_UPDATED
            );
        }
    }

    /// `updateLastUpdateGroup`.
    pub fn update_last_update_group(&self, cache: &CacheManager, now: u32) {
        self.last_update_group.store(now, Ordering::SeqCst);
        let stored = cache.get(pools::UNREAD).and_then(|mut c| {
            c.run(|c| {
                redis::cmd("SET")
                    .arg(cache_keys::LAST_UPDATE_GROUP)
                    .arg(now)
                    .query::<()>(c)
            })
        });
        if let Err(e) = stored {
            log::error!(
                "sync center: cannot store {}: {e}",
                cache_keys::LAST_UPDATE_GROUP
            );
        }
    }
}

/// One pass of `doSyncGroupChat`: groups chatted in since the last pass →
/// each member's group session touched, or created.
pub fn sync_group_chat(services: &Services) {
    let since = services.sync.last_update_group();
    let changed: Result<Vec<(u32, u32)>, _> = services.db.get(SLAVE).and_then(|mut c| {
        c.run(|c| {
            crate::db_rows::exec(
                c,
                "SELECT id, lastChated FROM IMGroup WHERE status = 0 AND lastChated >= ?",
                (since,),
            )
        })
    });
    let now = base::tick::unix_time();
    let changed: BTreeMap<u32, u32> = match changed {
        Ok(rows) => rows.into_iter().filter(|&(_, t)| t != 0).collect(),
        Err(e) => {
            log::error!("group chat sync: {e}");
            BTreeMap::new()
        }
    };
    services.sync.update_last_update_group(&services.cache, now);
    let group_type = SessionType::SESSION_TYPE_GROUP as u32;
    for (group_id, last_chat) in changed {
        let members = match group_model::get_group_user(services, group_id) {
            Ok(m) => m,
            Err(e) => {
                log::error!("group chat sync: members of group {group_id}: {e}");
                continue;
            }
        };
        for user_id in members {
            let db = &services.db;
            let done = match session_model::get_session_id(db, user_id, group_id, group_type, true)
            {
                Ok(Some(id)) => session_model::update_session(db, id, last_chat)
                    .map(|_| ())
                    .map_err(HandlerError::from),
                Ok(None) => db
                    .get(MASTER)
                    .map_err(HandlerError::from)
                    .and_then(|mut conn| {
                        session_model::add_session_locked(
                            &mut conn, user_id, group_id, group_type, now,
                        )
                        .map(|_| ())
                    }),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = done {
                log::error!("group chat sync: session of user {user_id} in group {group_id}: {e}");
            }
        }
    }
}

/// The running sync thread (`startSync`); [`SyncThread::stop`] is `stopSync`.
pub struct SyncThread {
    stop: Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl SyncThread {
    /// Starts the group-chat sync thread: a pass now, then every 5 s.
    pub fn start(services: Arc<Services>) -> std::io::Result<SyncThread> {
        let (stop, stopped) = bounded::<()>(1);
        let thread = std::thread::Builder::new()
            .name("sync-group-chat".into())
            .spawn(move || loop {
                sync_group_chat(&services);
                // A stop message, or the handle dropped: end; a time-out: next pass.
                if !matches!(
                    stopped.recv_timeout(SYNC_INTERVAL),
                    Err(RecvTimeoutError::Timeout)
                ) {
                    break;
                }
            })?;
        Ok(SyncThread {
            stop,
            thread: Some(thread),
        })
    }

    /// Asks the thread to stop after its current pass, without waiting
    /// (the loop thread must not wait for a pass stuck on MySQL).
    pub fn request_stop(&self) {
        let _ = self.stop.try_send(());
    }

    /// Stops the thread after its current pass and waits for it.
    pub fn stop(&mut self) {
        self.request_stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SyncThread {
    fn drop(&mut self) {
        self.stop();
    }
}
