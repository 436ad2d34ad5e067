//! What the msg_server integration tests share: a cluster of the real
//! binaries on free loopback ports (route_server, login_server,
//! db_proxy_server with a scratch MariaDB database and a private Redis),
//! msg_servers joining it, and clients logging in.

#![allow(dead_code)]

pub mod fake_db;

use base::aes::Aes;
use base::md5::md5_hex;
use base::pdu::ImPdu;
use std::time::{Duration, Instant};
use tt_proto::ProtoMessage;
use tt_proto::IM::BaseDefine::{
    ClientType, LoginCmdID, MessageCmdID, MsgType, ResultType, ServiceID, UserStatType,
};
use tt_proto::IM::Login::{IMLoginReq, IMLoginRes, IMMsgServReq, IMMsgServRsp};
use tt_proto::IM::Message::{IMClientTimeReq, IMClientTimeRsp, IMMsgData, IMMsgDataAck};
use tt_rs::cluster::{
    msg_server_conf, start_login_server, start_route_server, start_server, MsgServerPeers,
};
pub use tt_rs::AES_KEY;
use tt_rs::{free_port, PduClient, RedisServer, ServerProcess, TestDb, WAIT};

pub const MSG_SERVER: &str = env!("CARGO_BIN_EXE_msg_server");
pub const SID_LOGIN: u16 = ServiceID::SID_LOGIN as u16;
pub const SID_BUDDY: u16 = ServiceID::SID_BUDDY_LIST as u16;
pub const SID_MSG: u16 = ServiceID::SID_MSG as u16;
pub const SID_OTHER: u16 = ServiceID::SID_OTHER as u16;
pub const SID_GROUP: u16 = ServiceID::SID_GROUP as u16;
pub const PC: ClientType = ClientType::CLIENT_TYPE_WINDOWS;
pub const MAC: ClientType = ClientType::CLIENT_TYPE_MAC;
pub const IOS: ClientType = ClientType::CLIENT_TYPE_IOS;

/// The users every cluster has: (id, name, password).
pub const USERS: [(u32, &str, &str); 4] = [
    (1, "alice", "alice-pw"),
    (2, "bob", "bob-pw"),
    (3, "carol", "carol-pw"),
    (4, "dave", "dave-pw"),
];

/// Inserts a user whose plain password is `plain` (see `tt_rs::add_user`).
pub fn add_user(db: &TestDb, id: u32, name: &str, plain: &str) {
    tt_rs::add_user(db, id, name, plain, 100)
}

/// route_server + login_server + db_proxy_server (+ MariaDB, Redis), or
/// a [`fake_db::FakeDb`] in place of db_proxy_server and its stores.
pub struct Cluster {
    pub db: Option<TestDb>,
    pub redis: Option<RedisServer>,
    pub fake: Option<fake_db::FakeDb>,
    pub push: Option<fake_db::FakePush>,
    pub file: Option<fake_db::FakeFile>,
    pub db_proxy: Option<ServerProcess>,
    pub db_proxy_port: u16,
    /// `ConcurrentDBConnCnt` of the msg_servers.
    pub db_conns: usize,
    pub route: Option<ServerProcess>,
    pub route_port: u16,
    pub login: ServerProcess,
    pub login_client_port: u16,
    pub login_msg_port: u16,
}

impl Cluster {
    /// The whole cluster, with [`USERS`] in the database.
    pub fn start() -> Cluster {
        Self::start_with(true)
    }

    /// The cluster; without db_proxy_server when `with_db_proxy` is false
    /// (its port stays reserved for [`start_db_proxy`](Self::start_db_proxy)).
    pub fn start_with(with_db_proxy: bool) -> Cluster {
        let db = TestDb::with_schema();
        for (id, name, pw) in USERS {
            add_user(&db, id, name, pw);
        }
        let mut c = Self::peers(Some(db), Some(RedisServer::start()), None);
        if with_db_proxy {
            c.start_db_proxy();
        }
        c
    }

    /// route_server and login_server with a fake db_proxy knowing [`USERS`]
    /// and `groups`; the msg_servers open one link to each of its two
    /// entries, so all but logins go through one link, in order.
    pub fn start_fake(groups: std::collections::HashMap<u32, Vec<u32>>) -> Cluster {
        let fake = fake_db::FakeDb::start(&USERS, groups);
        let port = fake.port;
        let mut c = Self::peers(None, None, Some(fake));
        c.push = Some(fake_db::FakePush::start());
        c.file = Some(fake_db::FakeFile::start());
        c.db_proxy_port = port;
        c.db_conns = 1;
        c
    }

    fn peers(
        db: Option<TestDb>,
        redis: Option<RedisServer>,
        fake: Option<fake_db::FakeDb>,
    ) -> Cluster {
        let route_port = free_port();
        let route = Some(start_route_server(route_port));
        let (login_client_port, http_port, login_msg_port) =
            (free_port(), free_port(), free_port());
        let login = start_login_server(login_client_port, http_port, login_msg_port);
        Cluster {
            db,
            redis,
            fake,
            push: None,
            file: None,
            db_proxy: None,
            db_proxy_port: free_port(),
            db_conns: 2,
            route,
            route_port,
            login,
            login_client_port,
            login_msg_port,
        }
    }

    /// Kills route_server and starts a new one on the same port.
    pub fn restart_route(&mut self) {
        self.route = None;
        self.route = Some(start_route_server(self.route_port));
    }

    /// The fake db_proxy.
    pub fn fake(&self) -> &fake_db::FakeDb {
        self.fake.as_ref().expect("a cluster with a fake db_proxy")
    }

    /// Starts (or restarts) db_proxy_server on its port.
    pub fn start_db_proxy(&mut self) {
        let (Some(db), Some(redis)) = (&self.db, &self.redis) else {
            panic!("a cluster with a real db_proxy");
        };
        self.db_proxy = Some(start_server(
            "db_proxy_server",
            "dbproxyserver.conf",
            &tt_rs::db_proxy_conf(
                db,
                redis.port(),
                self.db_proxy_port,
                2,
                4,
                "http://127.0.0.1:8700/",
            ),
            &[self.db_proxy_port],
        ));
    }

    /// Kills db_proxy_server.
    pub fn stop_db_proxy(&mut self) {
        self.db_proxy = None;
    }

    /// A `msgserver.conf` for a msg_server on `port` in this cluster (no
    /// push_server or file_server listens on their ports).
    pub fn msg_server_conf(&self, port: u16) -> String {
        let peers = MsgServerPeers {
            db_proxy_port: self.db_proxy_port,
            db_conns: self.db_conns,
            login_msg_port: self.login_msg_port,
            route_port: self.route_port,
            push_port: self.push.as_ref().map_or_else(free_port, |p| p.port),
            file_port: self.file.as_ref().map_or_else(free_port, |f| f.port),
            max_conn_cnt: 1000,
        };
        msg_server_conf(port, &peers)
    }

    /// Starts a msg_server in this cluster and waits until it listens.
    pub fn start_msg_server(&self) -> MsgServer {
        let port = free_port();
        let mut server =
            ServerProcess::start(MSG_SERVER, "msgserver.conf", &self.msg_server_conf(port));
        server.wait_listening(port);
        MsgServer { server, port }
    }

    /// Asks login_server's client port for a msg_server.
    pub fn ask_login_server(&self) -> IMMsgServRsp {
        let mut c = PduClient::connect(self.login_client_port);
        c.send_msg(
            SID_LOGIN,
            LoginCmdID::CID_LOGIN_REQ_MSGSERVER as u16,
            1,
            &IMMsgServReq {},
        );
        c.recv_cmd::<IMMsgServRsp>(LoginCmdID::CID_LOGIN_RES_MSGSERVER as u16)
            .1
    }
}

/// A running msg_server.
pub struct MsgServer {
    pub server: ServerProcess,
    pub port: u16,
}

/// The login request a client sends (password as the clients send it: md5).
pub fn login_req(name: &str, plain: &str, client_type: ClientType) -> IMLoginReq {
    IMLoginReq {
        user_name: name.into(),
        password: md5_hex(plain.as_bytes()),
        online_status: UserStatType::USER_STATUS_ONLINE,
        client_type,
        client_version: Some("test/1.0".into()),
    }
}

/// Connects to `port` and sends one login request with `seq`; returns
/// the connection and the answer.
pub fn try_login(
    port: u16,
    name: &str,
    plain: &str,
    client_type: ClientType,
    seq: u16,
) -> (PduClient, IMLoginRes) {
    let mut c = PduClient::connect(port);
    c.send_msg(
        SID_LOGIN,
        LoginCmdID::CID_LOGIN_REQ_USERLOGIN as u16,
        seq,
        &login_req(name, plain, client_type),
    );
    let (pdu, res) = c.recv_cmd::<IMLoginRes>(LoginCmdID::CID_LOGIN_RES_USERLOGIN as u16);
    assert_eq!(pdu.seq_num(), seq, "the answer carries the request's seq");
    (c, res)
}

/// Logs in, retrying (bounded by `limit`) while the msg_server refuses
/// for lack of a peer link (it is still connecting). Panics on any other
/// refusal.
pub fn login_within(
    port: u16,
    name: &str,
    plain: &str,
    client_type: ClientType,
    limit: Duration,
) -> (PduClient, IMLoginRes) {
    let deadline = Instant::now() + limit;
    loop {
        let (c, res) = try_login(port, name, plain, client_type, 9);
        match res.result_code {
            ResultType::REFUSE_REASON_NONE => return (c, res),
            ResultType::REFUSE_REASON_NO_DB_SERVER
            | ResultType::REFUSE_REASON_NO_LOGIN_SERVER
            | ResultType::REFUSE_REASON_NO_ROUTE_SERVER
                if Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            other => panic!("login of {name} refused: {other:?} {res:?}"),
        }
    }
}

/// [`login_within`] the usual wait.
pub fn login(
    port: u16,
    name: &str,
    plain: &str,
    client_type: ClientType,
) -> (PduClient, IMLoginRes) {
    login_within(port, name, plain, client_type, WAIT)
}

/// The password of user `name` in [`USERS`].
pub fn password(name: &str) -> &'static str {
    USERS
        .iter()
        .find(|(_, n, _)| *n == name)
        .map(|(_, _, p)| *p)
        .expect("known user")
}

/// Sends `msg` and waits for the reply with `rsp_cid`, checking its seq.
pub fn ask<Req: ProtoMessage, Rsp: ProtoMessage>(
    c: &mut PduClient,
    sid: u16,
    cid: u16,
    seq: u16,
    msg: &Req,
    rsp_cid: u16,
) -> (ImPdu, Rsp) {
    c.send_msg(sid, cid, seq, msg);
    let (pdu, rsp) = c.recv_cmd::<Rsp>(rsp_cid);
    assert_eq!(pdu.seq_num(), seq, "reply {rsp_cid:#06x} carries the seq");
    (pdu, rsp)
}

/// Now, in unix seconds.
pub fn unix_now() -> u32 {
    base::tick::unix_time()
}

/// The server clock, asked with `CID_MSG_TIME_REQUEST`: also proves the
/// connection is up and logged in.
pub fn server_time(c: &mut PduClient, seq: u16) -> u32 {
    let (_, rsp) = ask::<_, IMClientTimeRsp>(
        c,
        SID_MSG,
        MessageCmdID::CID_MSG_TIME_REQUEST as u16,
        seq,
        &IMClientTimeReq {},
        MessageCmdID::CID_MSG_TIME_RESPONSE as u16,
    );
    rsp.server_time
}

/// `text` encrypted as clients send it (with [`AES_KEY`]).
pub fn encrypted(text: &str) -> Vec<u8> {
    Aes::new(AES_KEY.as_bytes())
        .unwrap()
        .encrypt(text.as_bytes())
        .unwrap()
        .into_bytes()
}

/// The `IMMsgData` a client sends (`from` is what it writes; the server
/// stamps the logged-in user).
pub fn msg_data(from: u32, to: u32, t: MsgType, data: &[u8]) -> IMMsgData {
    IMMsgData {
        from_user_id: from,
        to_session_id: to,
        msg_id: 0,
        create_time: 0,
        msg_type: t,
        msg_data: data.to_vec(),
        attach_data: None,
    }
}

/// Sends `msg` with `seq` and returns its ack, asserting it was stored
/// (whatever arrives meanwhile is skipped).
pub fn send_and_ack(c: &mut PduClient, seq: u16, msg: &IMMsgData) -> IMMsgDataAck {
    c.send_msg(SID_MSG, MessageCmdID::CID_MSG_DATA as u16, seq, msg);
    loop {
        let (pdu, ack) = c.recv_cmd::<IMMsgDataAck>(MessageCmdID::CID_MSG_DATA_ACK as u16);
        if pdu.seq_num() == seq {
            assert!(ack.msg_id > 0, "stored: {ack:?}");
            return ack;
        }
    }
}

/// Receives until a PDU `cid` whose body satisfies `pred` (others skipped).
pub fn recv_where<T: ProtoMessage>(c: &mut PduClient, cid: u16, pred: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        let pdu: ImPdu = c.recv();
        if pdu.command_id() == cid {
            let m: T = pdu.msg().unwrap();
            if pred(&m) {
                return m;
            }
        }
    }
    panic!("no matching {cid:#06x} within {WAIT:?}");
}

/// The message `msg_id` arrives (others skipped).
pub fn recv_msg(c: &mut PduClient, msg_id: u32) -> IMMsgData {
    recv_where(c, MessageCmdID::CID_MSG_DATA as u16, |m: &IMMsgData| {
        m.msg_id == msg_id
    })
}

/// Polls `cond` until it holds (bounded by [`WAIT`]).
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `args` on Redis database `db` (one connection, so SELECT applies)
/// and returns the raw reply of the last command.
pub fn redis(port: u16, db: u32, args: &[&str]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let db = db.to_string();
    let mut req = String::new();
    for cmd in [vec!["SELECT", db.as_str()], args.to_vec()] {
        req += &format!("*{}\r\n", cmd.len());
        for a in cmd {
            req += &format!("${}\r\n{a}\r\n", a.len());
        }
    }
    s.write_all(req.as_bytes()).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.trim_start_matches("+OK\r\n").to_string()
}
