//! A whole cluster of real processes on free loopback ports: route_server,
//! login_server, db_proxy_server (a scratch MariaDB database, a private
//! Redis) and any number of msg_servers, for tests and benchmarks that
//! speak to it as clients do.

use crate::{
    add_users, built_binary, db_proxy_conf, free_port, RedisServer, ServerProcess, TestDb, AES_KEY,
};

/// Starts the workspace binary `binary` with `conf` as `conf_name` in its
/// working directory, and waits until it listens on each of `ports`. Its
/// metrics port is on too, at a free port (see [`crate::metrics::scrape`]).
pub fn start_server(binary: &str, conf_name: &str, conf: &str, ports: &[u16]) -> ServerProcess {
    let bin = built_binary(binary);
    let conf = format!(
        "MetricsListenIP=127.0.0.1\nMetricsPort={}\n{conf}",
        free_port()
    );
    let mut p = ServerProcess::start(&bin.to_string_lossy(), conf_name, &conf);
    for &port in ports {
        p.wait_listening(port);
    }
    p
}

/// Starts route_server listening for msg_servers on `port`.
pub fn start_route_server(port: u16) -> ServerProcess {
    start_server(
        "route_server",
        "routeserver.conf",
        &format!("ListenIP=127.0.0.1\nListenMsgPort={port}\n"),
        &[port],
    )
}

/// Starts login_server on its client (TCP), HTTP and msg_server ports.
pub fn start_login_server(client_port: u16, http_port: u16, msg_port: u16) -> ServerProcess {
    start_server(
        "login_server",
        "loginserver.conf",
        &format!(
            "ClientListenIP=127.0.0.1\nClientPort={client_port}\n\
             HttpListenIP=127.0.0.1\nHttpPort={http_port}\n\
             MsgServerListenIP=127.0.0.1\nMsgServerPort={msg_port}\n\
             msfs=http://127.0.0.1:8700/\ndiscovery=http://127.0.0.1/api/discovery\n"
        ),
        &[http_port, client_port, msg_port],
    )
}

/// Starts db_proxy_server on `port` for `db` and the Redis on `redis_port`.
fn start_db_proxy(db: &TestDb, redis_port: u16, port: u16) -> ServerProcess {
    start_server(
        "db_proxy_server",
        "dbproxyserver.conf",
        &db_proxy_conf(db, redis_port, port, 4, 8, "http://127.0.0.1:8700/"),
        &[port],
    )
}

/// The two ports of a file_server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileServerPorts {
    /// `ClientListenPort`: clients log in for a task here.
    pub client: u16,
    /// `MsgServerListenPort`: msg_servers link here (their `FileServerPort1`).
    pub msg: u16,
}

impl FileServerPorts {
    /// Two free ports.
    pub fn free() -> FileServerPorts {
        FileServerPorts {
            client: free_port(),
            msg: free_port(),
        }
    }
}

/// A `fileserver.conf` on 127.0.0.1 with these ports and `TaskTimeout`
/// (seconds; tests use a short one), then the lines of `extra`.
pub fn file_server_conf(ports: FileServerPorts, task_timeout: u32, extra: &str) -> String {
    format!(
        "ClientListenIP=127.0.0.1\nClientListenPort={}\n\
         MsgServerListenIP=127.0.0.1\nMsgServerListenPort={}\n\
         TaskTimeout={task_timeout}\n{extra}",
        ports.client, ports.msg
    )
}

/// Starts file_server (see [`file_server_conf`]) and waits until both its
/// ports listen.
pub fn start_file_server(ports: FileServerPorts, task_timeout: u32, extra: &str) -> ServerProcess {
    start_server(
        "file_server",
        "fileserver.conf",
        &file_server_conf(ports, task_timeout, extra),
        &[ports.client, ports.msg],
    )
}

/// Where a msg_server finds its peers, for [`msg_server_conf`].
#[derive(Debug, Clone, Copy)]
pub struct MsgServerPeers {
    /// db_proxy_server's port (listed twice, as two db_proxies).
    pub db_proxy_port: u16,
    /// `ConcurrentDBConnCnt`.
    pub db_conns: usize,
    /// login_server's msg_server port.
    pub login_msg_port: u16,
    /// route_server's port.
    pub route_port: u16,
    /// push_server's port.
    pub push_port: u16,
    /// file_server's port.
    pub file_port: u16,
    /// `MaxConnCnt`.
    pub max_conn_cnt: u32,
}

/// A `msgserver.conf` for a msg_server on `port` with these peers, all on
/// 127.0.0.1.
pub fn msg_server_conf(port: u16, peers: &MsgServerPeers) -> String {
    format!(
        "ListenIP=127.0.0.1\nListenPort={port}\nConcurrentDBConnCnt={conns}\n\
         DBServerIP1=127.0.0.1\nDBServerPort1={db}\nDBServerIP2=127.0.0.1\nDBServerPort2={db}\n\
         LoginServerIP1=127.0.0.1\nLoginServerPort1={login}\n\
         RouteServerIP1=127.0.0.1\nRouteServerPort1={route}\n\
         PushServerIP1=127.0.0.1\nPushServerPort1={push}\n\
         FileServerIP1=127.0.0.1\nFileServerPort1={file}\n\
         IpAddr1=127.0.0.1\nIpAddr2=127.0.0.1\nMaxConnCnt={max}\naesKey={AES_KEY}\n",
        conns = peers.db_conns,
        db = peers.db_proxy_port,
        login = peers.login_msg_port,
        route = peers.route_port,
        push = peers.push_port,
        file = peers.file_port,
        max = peers.max_conn_cnt,
    )
}

/// The running cluster. Dropping it stops every process.
pub struct Cluster {
    /// The scratch database (users, groups... may be added through it).
    pub db: TestDb,
    /// The private Redis.
    pub redis: RedisServer,
    /// db_proxy_server's port.
    pub db_proxy_port: u16,
    /// route_server's port.
    pub route_port: u16,
    /// login_server's HTTP port (what clients ask).
    pub login_http_port: u16,
    /// login_server's TCP client port.
    pub login_client_port: u16,
    /// login_server's msg_server port.
    pub login_msg_port: u16,
    /// Running msg_servers and their client ports.
    pub msg_servers: Vec<(ServerProcess, u16)>,
    /// The users in the database: (id, name, plain password).
    pub users: Vec<(u32, String, String)>,
    /// The file_server, if [`add_file_server`](Self::add_file_server) started one.
    pub file_server: Option<(ServerProcess, FileServerPorts)>,
    /// A second db_proxy_server and a second route_server with their
    /// ports, if [`start_redundant`](Self::start_redundant) started them
    /// (msg_servers list them as `DBServerIP2` and `RouteServerIP2`).
    pub second: Option<SecondPeers>,
    processes: Vec<ServerProcess>,
}

/// The second db_proxy and route_server of a redundant cluster.
pub struct SecondPeers {
    /// The second db_proxy_server.
    pub db_proxy: ServerProcess,
    /// Its port.
    pub db_proxy_port: u16,
    /// The second route_server.
    pub route: ServerProcess,
    /// Its port.
    pub route_port: u16,
}

impl Cluster {
    /// Starts route, login and db_proxy servers with `users` (id, name,
    /// plain password) in the database, and `msg_servers` msg_servers.
    pub fn start(users: &[(u32, &str, &str)], msg_servers: usize) -> Cluster {
        Cluster::start_with(users, msg_servers, false)
    }

    /// [`start`](Self::start) with two db_proxy_servers and two
    /// route_servers (on the same database and Redis).
    pub fn start_redundant(users: &[(u32, &str, &str)], msg_servers: usize) -> Cluster {
        Cluster::start_with(users, msg_servers, true)
    }

    /// [`start`](Self::start) with the database on the MariaDB at `url`
    /// (a [`crate::MariaDbServer`] the test stops and restarts).
    pub fn start_on(url: &str, users: &[(u32, &str, &str)], msg_servers: usize) -> Cluster {
        Cluster::start_with_db(TestDb::with_schema_on(url), users, msg_servers, false)
    }

    fn start_with(users: &[(u32, &str, &str)], msg_servers: usize, redundant: bool) -> Cluster {
        Cluster::start_with_db(TestDb::with_schema(), users, msg_servers, redundant)
    }

    fn start_with_db(
        db: TestDb,
        users: &[(u32, &str, &str)],
        msg_servers: usize,
        redundant: bool,
    ) -> Cluster {
        add_users(&db, users, 100);
        let redis = RedisServer::start();
        let (db_proxy_port, route_port) = (free_port(), free_port());
        let (login_http_port, login_client_port, login_msg_port) =
            (free_port(), free_port(), free_port());
        let mut processes = vec![
            start_route_server(route_port),
            start_login_server(login_client_port, login_http_port, login_msg_port),
        ];
        processes.push(start_db_proxy(&db, redis.port(), db_proxy_port));
        let second = redundant.then(|| {
            let (db_proxy_port, route_port) = (free_port(), free_port());
            SecondPeers {
                db_proxy: start_db_proxy(&db, redis.port(), db_proxy_port),
                db_proxy_port,
                route: start_route_server(route_port),
                route_port,
            }
        });
        let mut cluster = Cluster {
            db,
            redis,
            db_proxy_port,
            route_port,
            login_http_port,
            login_client_port,
            login_msg_port,
            msg_servers: Vec::new(),
            users: users
                .iter()
                .map(|&(id, n, p)| (id, n.to_string(), p.to_string()))
                .collect(),
            file_server: None,
            second,
            processes,
        };
        for _ in 0..msg_servers {
            cluster.add_msg_server();
        }
        cluster
    }

    /// [`start`](Self::start) with `n` users `load1..loadN`, passwords
    /// `pw1..pwN` (ids 1..n): what load tests use.
    pub fn start_numbered(n: u32, msg_servers: usize) -> Cluster {
        let users: Vec<(u32, String, String)> = (1..=n)
            .map(|i| (i, format!("load{i}"), format!("pw{i}")))
            .collect();
        let refs: Vec<(u32, &str, &str)> = users
            .iter()
            .map(|(i, n, p)| (*i, n.as_str(), p.as_str()))
            .collect();
        Cluster::start(&refs, msg_servers)
    }

    /// The users as `name,password` lines, what `tt-load --csv` reads.
    pub fn users_csv(&self) -> String {
        self.users
            .iter()
            .map(|(_, n, p)| format!("{n},{p}\n"))
            .collect()
    }

    /// A `msgserver.conf` for a msg_server on `port` in this cluster (no
    /// push_server runs, nor a file_server unless one was added: those
    /// links just keep retrying).
    pub fn msg_server_conf(&self, port: u16) -> String {
        let peers = MsgServerPeers {
            db_proxy_port: self.db_proxy_port,
            db_conns: 2,
            login_msg_port: self.login_msg_port,
            route_port: self.route_port,
            push_port: free_port(),
            file_port: self
                .file_server
                .as_ref()
                .map_or_else(free_port, |(_, ports)| ports.msg),
            max_conn_cnt: 100_000,
        };
        let conf = msg_server_conf(port, &peers);
        match &self.second {
            None => conf,
            Some(second) => conf
                .replace(
                    &format!("DBServerPort2={}\n", self.db_proxy_port),
                    &format!("DBServerPort2={}\n", second.db_proxy_port),
                )
                .replace(
                    &format!("RouteServerPort1={}\n", self.route_port),
                    &format!(
                        "RouteServerPort1={}\nRouteServerIP2=127.0.0.1\nRouteServerPort2={}\n",
                        self.route_port, second.route_port
                    ),
                ),
        }
    }

    /// Starts a file_server (see [`start_file_server`]); msg_servers added
    /// after it link to it.
    pub fn add_file_server(&mut self, task_timeout: u32, extra: &str) -> FileServerPorts {
        let ports = FileServerPorts::free();
        let p = start_file_server(ports, task_timeout, extra);
        self.file_server = Some((p, ports));
        ports
    }

    /// Starts one more msg_server and waits until login_server knows it.
    pub fn add_msg_server(&mut self) -> u16 {
        let port = free_port();
        let conf = self.msg_server_conf(port);
        let p = start_server("msg_server", "msgserver.conf", &conf, &[port]);
        let login = &self.processes[1];
        login.wait_log(&format!("port={port},"));
        self.msg_servers.push((p, port));
        port
    }

    /// Every server process with the name reports use: `route_server`,
    /// `login_server`, `db_proxy_server`, `msg_server:<port>`.
    pub fn servers(&self) -> Vec<(String, &ServerProcess)> {
        let names = ["route_server", "login_server", "db_proxy_server"];
        self.processes
            .iter()
            .zip(names)
            .map(|(p, n)| (n.to_string(), p))
            .chain(
                self.msg_servers
                    .iter()
                    .map(|(p, port)| (format!("msg_server:{port}"), p)),
            )
            .chain(
                self.file_server
                    .iter()
                    .map(|(p, _)| ("file_server".to_string(), p)),
            )
            .collect()
    }

    /// The warnings and errors every process logged so far, for a report.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, p) in self.servers() {
            for line in p.log().lines() {
                if line.contains(" WARN ") || line.contains(" ERROR ") {
                    out.push(format!("{name}: {line}"));
                }
            }
        }
        out
    }

    /// `host:port` of login_server's HTTP port.
    pub fn login_http(&self) -> String {
        format!("127.0.0.1:{}", self.login_http_port)
    }

    /// An `httpmsgserver.conf` for an http_msg_server on `port` in this
    /// cluster (db_proxy listed twice, one link each), plus `extra` lines.
    pub fn http_msg_server_conf(&self, port: u16, extra: &str) -> String {
        format!(
            "ListenIP=127.0.0.1\nListenPort={port}\nConcurrentDBConnCnt=1\n\
             DBServerIP1=127.0.0.1\nDBServerPort1={db}\nDBServerIP2=127.0.0.1\nDBServerPort2={db}\n\
             RouteServerIP1=127.0.0.1\nRouteServerPort1={route}\n{extra}",
            db = self.db_proxy_port,
            route = self.route_port,
        )
    }

    /// Starts http_msg_server on a free port with [`http_msg_server_conf`]
    /// and waits until it is linked to db_proxy and route_server. Returns
    /// the process and its API port (`127.0.0.1:<port>`).
    ///
    /// [`http_msg_server_conf`]: Self::http_msg_server_conf
    pub fn start_http_msg_server(&self, extra_conf: &str) -> (ServerProcess, u16) {
        let port = free_port();
        let conf = self.http_msg_server_conf(port, extra_conf);
        let p = start_server("http_msg_server", "httpmsgserver.conf", &conf, &[port]);
        p.wait_log("connected to db_proxy");
        p.wait_log("is the master");
        (p, port)
    }

    /// Kills db_proxy_server (its peers see their links close).
    pub fn stop_db_proxy(&mut self) {
        self.processes[2].stop();
    }

    /// Starts db_proxy_server again on its port, after [`stop_db_proxy`].
    ///
    /// [`stop_db_proxy`]: Self::stop_db_proxy
    pub fn restart_db_proxy(&mut self) {
        self.processes[2] = start_db_proxy(&self.db, self.redis.port(), self.db_proxy_port);
    }

    /// Kills route_server (kill -9; its msg_servers see their links close).
    pub fn stop_route_server(&mut self) {
        self.processes[0].stop();
    }

    /// Starts route_server again on its port, after
    /// [`stop_route_server`](Self::stop_route_server), and waits until it
    /// listens.
    pub fn restart_route_server(&mut self) {
        self.processes[0].restart();
        self.processes[0].wait_listening(self.route_port);
    }

    /// SIGTERM to db_proxy_server (it tells its msg_servers to stop
    /// sending, drains and exits); waits for it to exit.
    pub fn terminate_db_proxy(&mut self) {
        self.processes[2].terminate();
        self.processes[2].wait_exit();
    }

    /// The names of the server processes that have exited.
    pub fn exited(&mut self) -> Vec<String> {
        let names = ["route_server", "login_server", "db_proxy_server"];
        let mut out: Vec<String> = self
            .processes
            .iter_mut()
            .zip(names)
            .filter_map(|(p, n)| (!p.is_running()).then(|| n.to_string()))
            .collect();
        for (p, port) in &mut self.msg_servers {
            if !p.is_running() {
                out.push(format!("msg_server:{port}"));
            }
        }
        if let Some(second) = &mut self.second {
            if !second.db_proxy.is_running() {
                out.push("db_proxy_server 2".into());
            }
            if !second.route.is_running() {
                out.push("route_server 2".into());
            }
        }
        out
    }

    /// Kills the second db_proxy_server of [`start_redundant`](Self::start_redundant).
    pub fn stop_second_db_proxy(&mut self) {
        if let Some(second) = &mut self.second {
            second.db_proxy.stop();
        }
    }

    /// Starts the second db_proxy_server again on its port.
    pub fn restart_second_db_proxy(&mut self) {
        if let Some(second) = &mut self.second {
            second.db_proxy.restart();
            second.db_proxy.wait_listening(second.db_proxy_port);
        }
    }

    /// The db_proxy_server process (for signals, its log).
    pub fn db_proxy(&self) -> &ServerProcess {
        &self.processes[2]
    }

    /// The route_server process.
    pub fn route_server(&self) -> &ServerProcess {
        &self.processes[0]
    }

    /// The login_server process.
    pub fn login_server(&self) -> &ServerProcess {
        &self.processes[1]
    }

    /// Puts `members` in a new normal group `group_id` (rows only; db_proxy
    /// fills its member cache from them).
    pub fn add_group(&self, group_id: u32, name: &str, members: &[u32]) {
        let rows: Vec<(u32, u32)> = members.iter().map(|&m| (m, 0)).collect();
        crate::add_group(&self.db, group_id, name, 1, 1, &rows);
    }
}
