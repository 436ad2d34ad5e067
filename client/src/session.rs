//! A logged-in connection to a msg_server, as the real TeamTalk clients
//! speak it: the password travels as the MD5 hex of the plain password,
//! message text is encrypted with the shared AES key, a heartbeat goes out
//! every 30 s.
//!
//! A reader thread receives every PDU; calls that expect an answer wait for
//! its command id and keep everything else (incoming messages, notifies)
//! for [`Session::next_event`].

use crate::error::ClientError;
use base::aes::Aes;
use base::md5::md5_hex;
use base::pdu::ImPdu;
use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError};
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::VecDeque;
use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tt_proto::IM::BaseDefine::{
    ClientType, GroupInfo, GroupVersionInfo, KickReasonType, MsgInfo, MsgType, ResultType,
    SessionType, UserInfo, UserStatType,
};
use tt_proto::IM::Buddy::{IMAllUserReq, IMAllUserRsp, IMUsersInfoReq, IMUsersInfoRsp};
use tt_proto::IM::Group::{
    IMGroupInfoListReq, IMGroupInfoListRsp, IMNormalGroupListReq, IMNormalGroupListRsp,
};
use tt_proto::IM::Login::{IMKickUser, IMLoginReq, IMLoginRes, IMLogoutReq};
use tt_proto::IM::Message::{
    IMGetMsgListReq, IMGetMsgListRsp, IMMsgData, IMMsgDataAck, IMMsgDataReadAck,
    IMMsgDataReadNotify, IMUnreadMsgCntReq, IMUnreadMsgCntRsp,
};
use tt_proto::IM::Other::IMHeartBeat;
use tt_proto::{cid, Command};

/// How long a call waits for its answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// `CLIENT_HEARTBEAT_INTERVAL`.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);

/// Reads one whole PDU from a blocking stream.
pub fn read_pdu(s: &mut TcpStream) -> Result<ImPdu, ClientError> {
    base::pdu::read_frame(s).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => ClientError::Closed,
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            ClientError::Timeout(Duration::ZERO)
        }
        std::io::ErrorKind::InvalidData => ClientError::Protocol(e.to_string()),
        _ => ClientError::Io(e),
    })
}

/// Connects to `addr`, from `source` when given.
pub fn connect_from(addr: &str, source: Option<IpAddr>) -> Result<TcpStream, ClientError> {
    let Some(source) = source else {
        return Ok(TcpStream::connect(addr)?);
    };
    let target = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| ClientError::Protocol(format!("{addr} resolves to nothing")))?;
    let socket = Socket::new(
        Domain::for_address(target),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect(&target.into())?;
    Ok(socket.into())
}

/// Writes one PDU.
pub fn write_pdu(s: &mut TcpStream, pdu: &ImPdu) -> Result<(), ClientError> {
    s.write_all(pdu.as_bytes()).map_err(ClientError::Io)
}

/// How to log in.
#[derive(Debug, Clone)]
pub struct LoginOptions {
    /// PC or mobile kind.
    pub client_type: ClientType,
    /// Presence to announce.
    pub status: UserStatType,
    /// Sent as `client_version`.
    pub version: String,
    /// The cluster's `aesKey` (32 bytes) for message text.
    pub aes_key: String,
    /// Local address to connect from (`127.0.0.x`), so a load test can open
    /// more connections than one source address has ephemeral ports.
    pub source_ip: Option<IpAddr>,
}

impl Default for LoginOptions {
    fn default() -> Self {
        LoginOptions {
            client_type: ClientType::CLIENT_TYPE_WINDOWS,
            status: UserStatType::USER_STATUS_ONLINE,
            version: concat!("tt-rs/", env!("CARGO_PKG_VERSION")).into(),
            aes_key: "12345678901234567890123456789012".into(),
            source_ip: None,
        }
    }
}

/// A message that arrived.
#[derive(Debug, Clone)]
pub struct IncomingMessage {
    /// Sender.
    pub from: u32,
    /// Our user id (one-to-one) or the group id.
    pub to_session: u32,
    /// Id in its session.
    pub msg_id: u32,
    /// Text or audio, one-to-one or group.
    pub msg_type: MsgType,
    /// The decrypted text (or the raw bytes, lossily, when not text).
    pub text: String,
    /// Server time of sending.
    pub created: u32,
    /// When our reader thread took it off the socket (for latency).
    pub received_at: Instant,
}

/// Something the server sent on its own.
#[derive(Debug)]
pub enum Event {
    /// A message for us (already acknowledged to the server).
    Message(IncomingMessage),
    /// Another of our devices read a session.
    ReadNotify(IMMsgDataReadNotify),
    /// The server kicked this session.
    Kicked(KickReasonType),
    /// Anything else (status notifies...), undecoded.
    Other(ImPdu),
}

/// A logged-in session.
pub struct Session {
    writer: Arc<Mutex<TcpStream>>,
    inbox: Receiver<Result<(Instant, ImPdu), ClientError>>,
    pending: VecDeque<(Instant, ImPdu)>,
    seq: u16,
    aes: Aes,
    stop: Arc<AtomicBool>,
    /// Set when the server kicked us: the session is over (see [`Session::end_by_kick`]).
    kicked: Option<KickReasonType>,
    /// Our profile as the server returned it.
    pub user: UserInfo,
}

impl Session {
    /// Connects to the msg_server at `addr` (`host:port`) and logs in with the
    /// plain password (sent as its MD5 hex, as the real clients do).
    pub fn login(
        addr: &str,
        name: &str,
        password: &str,
        opts: &LoginOptions,
    ) -> Result<Session, ClientError> {
        let stream = connect_from(addr, opts.source_ip)?;
        stream.set_nodelay(true)?;
        let aes = Aes::new(opts.aes_key.as_bytes())?;
        let mut reader = stream.try_clone()?;
        let (tx, inbox) = unbounded();
        std::thread::Builder::new()
            .name(format!("tt-reader-{name}"))
            .spawn(move || loop {
                let got = read_pdu(&mut reader).map(|p| (Instant::now(), p));
                let end = got.is_err();
                if tx.send(got).is_err() || end {
                    break;
                }
            })?;
        let writer = Arc::new(Mutex::new(stream));
        let stop = Arc::new(AtomicBool::new(false));
        spawn_heartbeat(writer.clone(), stop.clone())?;
        let mut session = Session {
            writer,
            inbox,
            pending: VecDeque::new(),
            seq: 0,
            aes,
            stop,
            kicked: None,
            user: UserInfo::default(),
        };
        let req = IMLoginReq {
            user_name: name.into(),
            password: md5_hex(password.as_bytes()),
            online_status: opts.status,
            client_type: opts.client_type,
            client_version: Some(opts.version.clone()),
        };
        let rsp: IMLoginRes = session.call(&req)?;
        if rsp.result_code != ResultType::REFUSE_REASON_NONE {
            return Err(ClientError::Refused(rsp.result_code as u32));
        }
        session.user = rsp
            .user_info
            .ok_or_else(|| ClientError::Protocol("login answer without user info".into()))?;
        Ok(session)
    }

    /// Our user id.
    pub fn user_id(&self) -> u32 {
        self.user.user_id
    }

    /// The error every call gives once the server has kicked us.
    fn kicked_error(&self) -> Option<ClientError> {
        self.kicked.map(|r| ClientError::Kicked(format!("{r:?}")))
    }

    /// A kick ends the session, as in the real clients: the connection is
    /// shut (no more heartbeats, no more messages taken and acknowledged
    /// here) and every later call fails with [`ClientError::Kicked`]. The
    /// C++ msg_server sends the kick but leaves the old connection open and
    /// goes on delivering to it; ours closes it.
    fn end_by_kick(&mut self, reason: KickReasonType) {
        self.kicked = Some(reason);
        self.shut();
    }

    /// Stops the heartbeat thread and shuts the connection (the reader
    /// thread then ends on end-of-stream).
    fn shut(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Ok(w) = self.writer.lock() {
            let _ = w.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Sends `msg` under the command its type is carried by.
    fn send<M: Command>(&mut self, msg: &M) -> Result<u16, ClientError> {
        if let Some(e) = self.kicked_error() {
            return Err(e);
        }
        self.seq = self.seq.wrapping_add(1);
        let pdu =
            ImPdu::for_msg(self.seq, msg).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let mut w = self
            .writer
            .lock()
            .map_err(|_| ClientError::Protocol("writer poisoned".into()))?;
        write_pdu(&mut w, &pdu)?;
        Ok(self.seq)
    }

    /// Sends `msg` and waits for the answer `R` (the PDU of `R`'s command).
    fn call<M: Command, R: Command>(&mut self, msg: &M) -> Result<R, ClientError> {
        self.send(msg)?;
        let pdu = self.wait_for(R::CID, CALL_TIMEOUT)?;
        pdu.msg().map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Waits for a PDU with `command_id`; others are kept for `next_event`.
    fn wait_for(&mut self, command_id: u16, timeout: Duration) -> Result<ImPdu, ClientError> {
        if let Some(i) = self
            .pending
            .iter()
            .position(|(_, p)| p.command_id() == command_id)
        {
            return self
                .pending
                .remove(i)
                .map(|(_, p)| p)
                .ok_or(ClientError::Closed);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.inbox.recv_timeout(left) {
                Ok(Ok((_, pdu))) if pdu.command_id() == command_id => return Ok(pdu),
                Ok(Ok((at, pdu))) => self.keep(at, pdu)?,
                Ok(Err(e)) => return Err(e),
                Err(RecvTimeoutError::Timeout) => return Err(ClientError::Timeout(timeout)),
                Err(RecvTimeoutError::Disconnected) => return Err(ClientError::Closed),
            }
        }
    }

    fn keep(&mut self, at: Instant, pdu: ImPdu) -> Result<(), ClientError> {
        if pdu.command_id() == cid::LOGIN_KICK_USER {
            let kick: IMKickUser = pdu
                .msg()
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            self.end_by_kick(kick.kick_reason);
            return Err(ClientError::Kicked(format!("{:?}", kick.kick_reason)));
        }
        if pdu.command_id() != cid::OTHER_HEARTBEAT {
            self.pending.push_back((at, pdu));
        }
        Ok(())
    }

    /// The next thing the server sent on its own, waiting at most `timeout`.
    /// Incoming messages are acknowledged to the server and decrypted.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, ClientError> {
        let (received_at, pdu) = match self.pending.pop_front() {
            Some(p) => p,
            None if self.kicked.is_some() => {
                return Err(self.kicked_error().unwrap_or(ClientError::Closed))
            }
            None => match self.inbox.recv_timeout(timeout) {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => return Err(e),
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                Err(RecvTimeoutError::Disconnected) => return Err(ClientError::Closed),
            },
        };
        let bad = |e: base::pdu::PduError| ClientError::Protocol(e.to_string());
        match pdu.command_id() {
            cid::MSG_DATA => {
                let m: IMMsgData = pdu.msg().map_err(bad)?;
                self.take_message(m, received_at).map(Some)
            }
            cid::MSG_READ_NOTIFY => Ok(Some(Event::ReadNotify(pdu.msg().map_err(bad)?))),
            cid::LOGIN_KICK_USER => {
                let kick: IMKickUser = pdu.msg().map_err(bad)?;
                self.end_by_kick(kick.kick_reason);
                Ok(Some(Event::Kicked(kick.kick_reason)))
            }
            _ => Ok(Some(Event::Other(pdu))),
        }
    }

    /// An incoming message: acknowledged to the server, then handed to the
    /// caller decrypted.
    fn take_message(&mut self, m: IMMsgData, received_at: Instant) -> Result<Event, ClientError> {
        if self.kicked.is_some() {
            // Taken off the socket before the kick: shown, but not
            // acknowledged (the connection is shut), so the server keeps
            // it unread for the session that replaced us.
            return Ok(Event::Message(self.incoming(m, received_at)));
        }
        let ack = IMMsgDataAck {
            user_id: self.user_id(),
            session_id: if base::msg_type::is_group_msg(m.msg_type) {
                m.to_session_id
            } else {
                m.from_user_id
            },
            msg_id: m.msg_id,
            session_type: session_type(m.msg_type),
        };
        self.send(&ack)?;
        Ok(Event::Message(self.incoming(m, received_at)))
    }

    /// A message for the caller, its text decrypted.
    fn incoming(&self, m: IMMsgData, received_at: Instant) -> IncomingMessage {
        let text = match m.msg_type {
            MsgType::MSG_TYPE_SINGLE_TEXT | MsgType::MSG_TYPE_GROUP_TEXT => {
                match self.aes.decrypt(&m.msg_data) {
                    Ok(plain) => String::from_utf8_lossy(&plain).into_owned(),
                    Err(_) => String::from_utf8_lossy(&m.msg_data).into_owned(),
                }
            }
            _ => String::from_utf8_lossy(&m.msg_data).into_owned(),
        };
        IncomingMessage {
            from: m.from_user_id,
            to_session: m.to_session_id,
            msg_id: m.msg_id,
            msg_type: m.msg_type,
            text,
            created: m.create_time,
            received_at,
        }
    }

    fn send_message(&mut self, to: u32, msg_type: MsgType, text: &str) -> Result<u32, ClientError> {
        let msg = IMMsgData {
            from_user_id: self.user_id(),
            to_session_id: to,
            msg_id: 0,
            create_time: base::tick::unix_time(),
            msg_type,
            msg_data: self.aes.encrypt(text.as_bytes())?.into_bytes(),
            attach_data: None,
        };
        let ack: IMMsgDataAck = self.call(&msg)?;
        Ok(ack.msg_id)
    }

    /// Sends `text` to user `to`; returns the id the server stored it under.
    pub fn send_text(&mut self, to: u32, text: &str) -> Result<u32, ClientError> {
        self.send_message(to, MsgType::MSG_TYPE_SINGLE_TEXT, text)
    }

    /// Sends `text` to group `group`; returns its id.
    pub fn send_group_text(&mut self, group: u32, text: &str) -> Result<u32, ClientError> {
        self.send_message(group, MsgType::MSG_TYPE_GROUP_TEXT, text)
    }

    /// Marks a session read up to `msg_id` (`CID_MSG_READ_ACK`).
    pub fn read_ack(
        &mut self,
        session_id: u32,
        session_type: SessionType,
        msg_id: u32,
    ) -> Result<(), ClientError> {
        let ack = IMMsgDataReadAck {
            user_id: self.user_id(),
            session_id,
            msg_id,
            session_type,
        };
        self.send(&ack)?;
        Ok(())
    }

    /// Unread counts per session.
    pub fn unread(&mut self) -> Result<IMUnreadMsgCntRsp, ClientError> {
        let req = IMUnreadMsgCntReq {
            user_id: self.user_id(),
            attach_data: None,
        };
        self.call(&req)
    }

    /// Up to `count` messages of a session from `begin` (0: the newest) backwards.
    pub fn history(
        &mut self,
        session_id: u32,
        session_type: SessionType,
        begin: u32,
        count: u32,
    ) -> Result<Vec<MsgInfo>, ClientError> {
        let req = IMGetMsgListReq {
            user_id: self.user_id(),
            session_type,
            session_id,
            msg_id_begin: begin,
            msg_cnt: count,
            attach_data: None,
        };
        let rsp: IMGetMsgListRsp = self.call(&req)?;
        Ok(rsp.msg_list)
    }

    /// Decrypts a stored message's text.
    pub fn decrypt(&self, msg: &MsgInfo) -> String {
        match self.aes.decrypt(&msg.msg_data) {
            Ok(plain) => String::from_utf8_lossy(&plain).into_owned(),
            Err(_) => String::from_utf8_lossy(&msg.msg_data).into_owned(),
        }
    }

    /// Users changed since `since` (0: all).
    pub fn users(&mut self, since: u32) -> Result<Vec<UserInfo>, ClientError> {
        let req = IMAllUserReq {
            user_id: self.user_id(),
            latest_update_time: since,
            attach_data: None,
        };
        let rsp: IMAllUserRsp = self.call(&req)?;
        Ok(rsp.user_list)
    }

    /// Profiles of the listed users.
    pub fn user_info(&mut self, ids: &[u32]) -> Result<Vec<UserInfo>, ClientError> {
        let req = IMUsersInfoReq {
            user_id: self.user_id(),
            user_id_list: ids.to_vec(),
            attach_data: None,
        };
        let rsp: IMUsersInfoRsp = self.call(&req)?;
        Ok(rsp.user_info_list)
    }

    /// Our groups with their versions.
    pub fn groups(&mut self) -> Result<Vec<GroupVersionInfo>, ClientError> {
        let req = IMNormalGroupListReq {
            user_id: self.user_id(),
            attach_data: None,
        };
        let rsp: IMNormalGroupListRsp = self.call(&req)?;
        Ok(rsp.group_version_list)
    }

    /// Every group we are in, with details: the normal-group list, then
    /// their info asked at version 0 (a client with no cache; the server
    /// answers only groups newer than the version asked).
    pub fn all_groups(&mut self) -> Result<Vec<GroupInfo>, ClientError> {
        let fresh = self
            .groups()?
            .into_iter()
            .map(|g| GroupVersionInfo {
                group_id: g.group_id,
                version: 0,
            })
            .collect();
        self.group_info(fresh)
    }

    /// Details of the listed groups that are newer than the versions given.
    pub fn group_info(
        &mut self,
        groups: Vec<GroupVersionInfo>,
    ) -> Result<Vec<GroupInfo>, ClientError> {
        let req = IMGroupInfoListReq {
            user_id: self.user_id(),
            group_version_list: groups,
            attach_data: None,
        };
        let rsp: IMGroupInfoListRsp = self.call(&req)?;
        Ok(rsp.group_info_list)
    }

    /// Logs out and closes.
    pub fn logout(mut self) -> Result<(), ClientError> {
        self.send(&IMLogoutReq {})?;
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shut();
    }
}

fn session_type(t: MsgType) -> SessionType {
    if base::msg_type::is_group_msg(t) {
        SessionType::SESSION_TYPE_GROUP
    } else {
        SessionType::SESSION_TYPE_SINGLE
    }
}

fn spawn_heartbeat(writer: Arc<Mutex<TcpStream>>, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("tt-heartbeat".into())
        .spawn(move || {
            let beat = ImPdu::for_msg(0, &IMHeartBeat {});
            let Ok(beat) = beat else { return };
            let mut next = Instant::now() + HEARTBEAT_INTERVAL;
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(200));
                if Instant::now() < next {
                    continue;
                }
                next = Instant::now() + HEARTBEAT_INTERVAL;
                let Ok(mut w) = writer.lock() else { return };
                if write_pdu(&mut w, &beat).is_err() {
                    return;
                }
            }
        })?;
    Ok(())
}
