//! What the msg_server integration tests share: a cluster of the real
//! binaries on free loopback ports (route_server, login_server,
//! db_proxy_server with a scratch MariaDB database and a private Redis),
//! msg_servers joining it, and clients logging in.

#![allow(dead_code)]

pub mod fake_db;

use base::md5::md5_hex;
use base::pdu::ImPdu;
use std::time::{Duration, Instant};
use tt_proto::ProtoMessage;
use tt_proto::IM::BaseDefine::{ClientType, LoginCmdID, ResultType, ServiceID, UserStatType};
use tt_proto::IM::Login::{IMLoginReq, IMLoginRes, IMMsgServReq, IMMsgServRsp};
use tt_rs::{built_binary, free_port, PduClient, RedisServer, ServerProcess, TestDb, WAIT};

pub const MSG_SERVER: &str = env!("CARGO_BIN_EXE_msg_server");
pub const AES_KEY: &str = "12345678901234567890123456789012";
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

fn bin(name: &str) -> String {
    built_binary(name).to_string_lossy().into_owned()
}

/// Inserts a user whose plain password is `plain` (see `tt_rs::add_user`).
pub fn add_user(db: &TestDb, id: u32, name: &str, plain: &str) {
    tt_rs::add_user(db, id, name, plain, 100)
}

fn start_route(port: u16) -> ServerProcess {
    let mut route = ServerProcess::start(
        &bin("route_server"),
        "routeserver.conf",
        &format!("ListenIP=127.0.0.1\nListenMsgPort={port}\n"),
    );
    route.wait_listening(port);
    route
}

fn db_proxy_conf(db: &TestDb, redis: u16, port: u16) -> String {
    tt_rs::db_proxy_conf(db, redis, port, 2, 4, "http://127.0.0.1:8700/")
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
        let route = Some(start_route(route_port));
        let (login_client_port, http_port, login_msg_port) =
            (free_port(), free_port(), free_port());
        let mut login = ServerProcess::start(
            &bin("login_server"),
            "loginserver.conf",
            &format!(
                "ClientListenIP=127.0.0.1\nClientPort={login_client_port}\n\
                 HttpListenIP=127.0.0.1\nHttpPort={http_port}\n\
                 MsgServerListenIP=127.0.0.1\nMsgServerPort={login_msg_port}\n\
                 msfs=http://127.0.0.1:8700/\ndiscovery=http://127.0.0.1/api/discovery\n"
            ),
        );
        login.wait_listening(login_client_port);
        login.wait_listening(login_msg_port);
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
        self.route = Some(start_route(self.route_port));
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
        let mut p = ServerProcess::start(
            &bin("db_proxy_server"),
            "dbproxyserver.conf",
            &db_proxy_conf(db, redis.port(), self.db_proxy_port),
        );
        p.wait_listening(self.db_proxy_port);
        self.db_proxy = Some(p);
    }

    /// Kills db_proxy_server.
    pub fn stop_db_proxy(&mut self) {
        self.db_proxy = None;
    }

    /// A `msgserver.conf` for a msg_server on `port` in this cluster (no
    /// push_server or file_server listens on their ports).
    pub fn msg_server_conf(&self, port: u16) -> String {
        format!(
            "ListenIP=127.0.0.1\nListenPort={port}\nConcurrentDBConnCnt={conns}\n\
             DBServerIP1=127.0.0.1\nDBServerPort1={db}\nDBServerIP2=127.0.0.1\nDBServerPort2={db}\n\
             LoginServerIP1=127.0.0.1\nLoginServerPort1={login}\n\
             RouteServerIP1=127.0.0.1\nRouteServerPort1={route}\n\
             PushServerIP1=127.0.0.1\nPushServerPort1={push}\n\
             FileServerIP1=127.0.0.1\nFileServerPort1={file}\n\
             IpAddr1=127.0.0.1\nIpAddr2=127.0.0.1\nMaxConnCnt=1000\naesKey={AES_KEY}\n",
            conns = self.db_conns,
            db = self.db_proxy_port,
            login = self.login_msg_port,
            route = self.route_port,
            push = self.push.as_ref().map_or_else(free_port, |p| p.port),
            file = self.file.as_ref().map_or_else(free_port, |f| f.port),
        )
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
