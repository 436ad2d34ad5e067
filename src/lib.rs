//! `tt-rs` test harness: what the integration tests of every server share.
//!
//! Tests start the real server binaries as child processes, each in its own
//! scratch directory holding its `.conf` (as the C++ servers read their conf
//! from the working directory), on free loopback ports, and talk to them
//! over TCP with [`PduClient`]. Nothing here is used by the servers.

// The harness runs only inside tests and benches, where a failed step is
// the test failing: unwrap()/expect() say so with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base::pdu::ImPdu;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tt_proto::ProtoMessage;

/// How long a test waits for anything (a port to open, a reply) before failing.
pub const WAIT: Duration = Duration::from_secs(30);

/// A loopback port nothing listens on right now, and never handed out
/// before in this process.
///
/// Taken below the kernel's ephemeral range (`ip_local_port_range`), so an
/// outgoing connection of some other test (or server) cannot be given the
/// same port between this call and the server's bind; each process starts
/// at its own offset in that range and walks on. Falls back to a port the
/// kernel picks when the ephemeral range leaves no room below it.
pub fn free_port() -> u16 {
    const LOW: u32 = 20_000;
    static CURSOR: std::sync::Mutex<Option<u32>> = std::sync::Mutex::new(None);
    let ephemeral_low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(32_768);
    let high = ephemeral_low.min(65_536);
    let mut cursor = CURSOR.lock().unwrap_or_else(|e| e.into_inner());
    if high > LOW + 1_000 {
        let span = high - LOW;
        let start = *cursor.get_or_insert_with(|| std::process::id().wrapping_mul(7_919) % span);
        for step in 0..span {
            let offset = (start + step) % span;
            let port = (LOW + offset) as u16;
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                *cursor = Some((offset + 1) % span);
                return port;
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a loopback port")
}

/// A fresh scratch directory under the system temp dir, removed on drop.
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `$TMPDIR/tt-rs-<pid>-<n>-<label>`.
    pub fn new(label: &str) -> ScratchDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("tt-rs-{}-{n}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create scratch dir");
        ScratchDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A server binary running as a child process in its own scratch directory.
/// Killed on drop; its log is printed if the test is failing.
pub struct ServerProcess {
    name: String,
    child: Child,
    dir: ScratchDir,
    binary: String,
    args: Vec<String>,
}

impl ServerProcess {
    /// Writes `conf_text` as `dir/conf_name` and starts `binary` there with
    /// no arguments, as the C++ servers are started.
    pub fn start(binary: &str, conf_name: &str, conf_text: &str) -> ServerProcess {
        Self::start_with_args(binary, conf_name, conf_text, &[])
    }

    /// Like [`start`](Self::start), with extra command-line arguments.
    pub fn start_with_args(
        binary: &str,
        conf_name: &str,
        conf_text: &str,
        args: &[&str],
    ) -> ServerProcess {
        let name = Path::new(binary)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| binary.to_string());
        let dir = ScratchDir::new(&name);
        std::fs::write(dir.path().join(conf_name), conf_text).expect("write conf");
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let child = Self::spawn(binary, &args, dir.path());
        ServerProcess {
            name,
            child,
            dir,
            binary: binary.to_string(),
            args,
        }
    }

    fn spawn(binary: &str, args: &[String], dir: &Path) -> Child {
        // A C++ reference server (`TT_SERVER_BIN_DIR` naming its build, for
        // a side-by-side bench) reads `log4cxx.properties` from its working
        // directory and logs under `log/`; [`log`](Self::log) reads it there.
        let props = Path::new(binary).with_file_name("log4cxx.properties");
        if props.exists() {
            let _ = std::fs::copy(&props, dir.join("log4cxx.properties"));
            let _ = std::fs::create_dir_all(dir.join("log"));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .expect("open log");
        let log2 = log.try_clone().expect("dup log");
        Command::new(binary)
            .args(args)
            .current_dir(dir)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "debug".into()),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("start {binary}: {e}"))
    }

    /// Kills the server and starts it again in the same directory with the
    /// same conf and arguments (what it stored there stays); its log goes
    /// on in the same file.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(&self.binary, &self.args, self.dir.path());
    }

    /// The scratch directory the server runs in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the server logged so far (its output, then the files a
    /// C++ reference server writes under `log/`).
    pub fn log(&self) -> String {
        let mut text =
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let cpp_log = self.dir.path().join("log").join("default.log");
        if let Ok(more) = std::fs::read(cpp_log) {
            text.push_str(&String::from_utf8_lossy(&more));
        }
        text
    }

    /// The process id (to send signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now and at its peak (`VmRSS`, `VmHWM` from
    /// `/proc/<pid>/status`), in KiB; `None` where /proc does not say.
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Waits until `port` on 127.0.0.1 accepts connections; panics with
    /// the server's log if it exits or does not listen within [`WAIT`].
    pub fn wait_listening(&mut self, port: u16) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited with {status}:\n{}", self.name, self.log());
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{} does not listen on {port}:\n{}", self.name, self.log());
    }

    /// Kills the process and waits for it (a server going down mid-test);
    /// the scratch directory and log stay until drop.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM (a graceful stop), without waiting.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
    }

    /// The process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to exit (bounded by [`WAIT`]) and returns its code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{} did not exit:\n{}", self.name, self.log());
    }

    /// How many times the log contains `needle` so far.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    /// Waits until the log contains `needle` at least `n` times (bounded
    /// by [`WAIT`]).
    pub fn wait_log_count(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.log_count(needle) >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "{} logged {needle:?} {} times, not {n}:\n{}",
            self.name,
            self.log_count(needle),
            self.log()
        );
    }

    /// Waits until the log contains `needle` (bounded by [`WAIT`]).
    pub fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{} never logged {needle:?}:\n{}", self.name, self.log());
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- {} log ----\n{}", self.name, self.log());
        }
    }
}

/// Runs `binary` with `args` in a scratch dir holding `conf_text` as
/// `conf_name`, waits for it to exit (bounded) and returns (code, output).
pub fn run_to_exit(
    binary: &str,
    conf_name: &str,
    conf_text: &str,
    args: &[&str],
) -> (Option<i32>, String) {
    let mut p = ServerProcess::start_with_args(binary, conf_name, conf_text, args);
    let code = p.wait_exit();
    (code, p.log())
}

/// A blocking PDU connection to a server, as a peer server or client.
pub struct PduClient {
    stream: TcpStream,
}

impl PduClient {
    /// Connects to 127.0.0.1:`port`.
    pub fn connect(port: u16) -> PduClient {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
        stream.set_nodelay(true).expect("nodelay");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        PduClient { stream }
    }

    /// Our local address.
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local addr")
    }

    /// Sends a PDU.
    pub fn send(&mut self, pdu: &ImPdu) {
        self.stream.write_all(pdu.as_bytes()).expect("send PDU");
    }

    /// Sends `msg` as service/command with `seq`.
    pub fn send_msg<M: ProtoMessage>(
        &mut self,
        service_id: u16,
        command_id: u16,
        seq: u16,
        msg: &M,
    ) {
        self.send(&ImPdu::with_msg(service_id, command_id, seq, msg).expect("encode"));
    }

    /// Sends raw bytes (garbage tests).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send raw");
    }

    /// Receives the next PDU (panics after [`WAIT`] or on close).
    pub fn recv(&mut self) -> ImPdu {
        self.try_recv(WAIT)
            .unwrap_or_else(|| panic!("no PDU within {WAIT:?}"))
    }

    /// Receives the next PDU within `timeout`; `None` on timeout or close.
    pub fn try_recv(&mut self, timeout: Duration) -> Option<ImPdu> {
        self.stream.set_read_timeout(Some(timeout)).ok()?;
        let got = base::pdu::read_frame(&mut self.stream);
        self.stream.set_read_timeout(Some(WAIT)).ok()?;
        got.ok()
    }

    /// Receives PDUs until one with `command_id` arrives (skipping
    /// heartbeats and anything else), and decodes it as `M`.
    pub fn recv_cmd<M: ProtoMessage>(&mut self, command_id: u16) -> (ImPdu, M) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let pdu = self.recv();
            if pdu.command_id() == command_id {
                let msg = pdu
                    .msg::<M>()
                    .unwrap_or_else(|e| panic!("decode {command_id:#x}: {e}"));
                return (pdu, msg);
            }
        }
        panic!("no command {command_id:#x} within {WAIT:?}");
    }

    /// True when the server closes the connection within [`WAIT`]
    /// (anything it sends first is discarded).
    pub fn is_closed_by_peer(&mut self) -> bool {
        let deadline = Instant::now() + WAIT;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                    return false
                }
                Err(_) => return true,
            }
        }
        false
    }

    /// The raw stream, for tests that need it.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }
}

/// The MariaDB server the tests use: `TT_MYSQL_URL` (set by
/// `scripts/test.sh`), else the account `scripts/deps.sh` creates.
pub fn mysql_url() -> String {
    std::env::var("TT_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://teamtalk:teamtalk@127.0.0.1:3306".into())
}

/// A scratch MariaDB database named `teamtalk_test_<pid>_<n>`, dropped on drop.
pub struct TestDb {
    name: String,
    opts: mysql::Opts,
}

impl TestDb {
    /// Creates an empty database on the shared server ([`mysql_url`]).
    pub fn empty() -> TestDb {
        TestDb::empty_on(&mysql_url())
    }

    /// Creates an empty database on the server at `url` (a
    /// [`MariaDbServer`] of the test's own).
    pub fn empty_on(url: &str) -> TestDb {
        use mysql::prelude::Queryable;
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let name = format!("teamtalk_test_{}_{n}", std::process::id());
        let opts = mysql::Opts::from_url(url).expect("MariaDB url");
        let mut conn = mysql::Conn::new(opts.clone())
            .unwrap_or_else(|e| panic!("MariaDB at {url}: {e} (run scripts/test.sh)"));
        conn.query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
            .expect("drop");
        conn.query_drop(format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        ))
        .expect("create database");
        TestDb { name, opts }
    }

    /// Creates a database with our schema (`sql/schema.sql`).
    pub fn with_schema() -> TestDb {
        TestDb::with_schema_on(&mysql_url())
    }

    /// [`TestDb::with_schema`] on the server at `url`.
    pub fn with_schema_on(url: &str) -> TestDb {
        let db = TestDb::empty_on(url);
        db.load_file(&repo_root().join("sql/schema.sql"));
        db
    }

    /// Runs every statement of an SQL file (split at `;` line ends).
    pub fn load_file(&self, path: &Path) {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        self.load_sql(&text);
    }

    /// Runs every statement of SQL text (split at `;` line ends; `--` lines dropped).
    pub fn load_sql(&self, text: &str) {
        use mysql::prelude::Queryable;
        let mut conn = self.conn();
        let mut stmt = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with("--") || trimmed.is_empty() {
                continue;
            }
            stmt.push_str(line);
            stmt.push('\n');
            if trimmed.ends_with(';') {
                conn.query_drop(&stmt)
                    .unwrap_or_else(|e| panic!("{e} in:\n{stmt}"));
                stmt.clear();
            }
        }
    }

    /// A connection to this database.
    pub fn conn(&self) -> mysql::Conn {
        let opts =
            mysql::OptsBuilder::from_opts(self.opts.clone()).db_name(Some(self.name.clone()));
        mysql::Conn::new(opts).expect("connect to test database")
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Host, port, user and password of the server, for a `.conf`.
    pub fn server(&self) -> (String, u16, String, String) {
        (
            self.opts.get_ip_or_hostname().to_string(),
            self.opts.get_tcp_port(),
            self.opts.get_user().unwrap_or("").to_string(),
            self.opts.get_pass().unwrap_or("").to_string(),
        )
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        use mysql::prelude::Queryable;
        if let Ok(mut conn) = mysql::Conn::new(self.opts.clone()) {
            let _ = conn.query_drop(format!("DROP DATABASE IF EXISTS `{}`", self.name));
        }
    }
}

/// The repository root (where `sql/` and `conf/` are).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A private `redis-server` on a free loopback port, so tests never share
/// keys; killed on drop. Needs the `redis-server` binary (`scripts/deps.sh`
/// installs it).
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    dir: ScratchDir,
}

impl RedisServer {
    /// Starts it and waits until it answers.
    pub fn start() -> RedisServer {
        let mut r = RedisServer {
            port: free_port(),
            child: None,
            dir: ScratchDir::new("redis"),
        };
        r.restart();
        r
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops it (a test of what happens when Redis goes away).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// (Re)starts it on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--dir"])
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start redis-server (scripts/deps.sh installs it): {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let mut buf = [0u8; 7];
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read_exact(&mut buf).is_ok()
                    && &buf == b"+PONG\r\n"
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not answer on {}", self.port);
    }

    /// Runs a command with `redis-cli`-like simplicity: RESP in, raw reply out.
    pub fn command(&self, args: &[&str]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect redis");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).expect("send");
        let mut buf = vec![0u8; 64 * 1024];
        let n = s.read(&mut buf).expect("reply");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Path of the workspace binary `name` (`db_proxy_server`...) for tests of
/// another crate: `target/<profile>/<name>` next to the running test.
/// `cargo test --workspace` builds every binary first; when it is missing
/// (e.g. `cargo test -p msg_server` alone) it is built here. (Cargo holds
/// its build lock while compiling, not while tests run.) With
/// `TT_SERVER_BIN_DIR` set, a binary of that name there is taken instead
/// (a bench comparing builds).
pub fn built_binary(name: &str) -> PathBuf {
    built_binary_in(name, name)
}

/// [`built_binary`] for a binary `name` of package `package` (`tt-load` of
/// `tt-client`).
pub fn built_binary_in(package: &str, name: &str) -> PathBuf {
    // A before/after bench points the servers at other builds.
    if let Some(dir) = std::env::var_os("TT_SERVER_BIN_DIR") {
        let path = PathBuf::from(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf();
    let path = profile_dir.join(name);
    let release = profile_dir.file_name().is_some_and(|p| p == "release");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "--quiet", "-p", package, "--bin", name])
        .current_dir(repo_root());
    if release {
        cmd.arg("--release");
    }
    // Debug test runs come from `cargo test --workspace`, which built every
    // binary; release runs (benches) always ask cargo, so a stale binary
    // left by an older `scripts/up.sh` is never measured.
    if path.exists() && !release {
        return path;
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cargo build {name}: {e}"));
    assert!(status.success(), "cargo build -p {name} failed");
    assert!(path.exists(), "{} missing after build", path.display());
    path
}

/// The demo `aesKey`, as in `conf/`.
pub const AES_KEY: &str = "12345678901234567890123456789012";

/// A `dbproxyserver.conf` for `db` and a private Redis on `redis_port`:
/// both MySQL pools on the scratch database, the cache pools on Redis
/// databases 1..5 in the order `unread, group_set, token, sync, group_member`.
pub fn db_proxy_conf(
    db: &TestDb,
    redis_port: u16,
    listen_port: u16,
    threads: usize,
    max_conn: usize,
    msfs_site: &str,
) -> String {
    let (host, db_port, user, pass) = db.server();
    let mut c = format!(
        "ListenIP=127.0.0.1\nListenPort={listen_port}\nThreadNum={threads}\nMsfsSite={msfs_site}\n\
         aesKey={AES_KEY}\nDBInstances=teamtalk_master,teamtalk_slave\n\
         CacheInstances=unread,group_set,token,sync,group_member\n"
    );
    for inst in ["teamtalk_master", "teamtalk_slave"] {
        c += &format!(
            "{inst}_host={host}\n{inst}_port={db_port}\n{inst}_dbname={}\n\
             {inst}_username={user}\n{inst}_password={pass}\n{inst}_maxconncnt={max_conn}\n",
            db.name()
        );
    }
    for (i, inst) in ["unread", "group_set", "token", "sync", "group_member"]
        .iter()
        .enumerate()
    {
        c += &format!(
            "{inst}_host=127.0.0.1\n{inst}_port={redis_port}\n{inst}_db={}\n\
             {inst}_maxconncnt={max_conn}\n",
            i + 1
        );
    }
    c
}

/// Inserts a user whose plain password is `plain`, stored as the admin UI
/// does: md5(md5(plain) + salt), with a 4-digit salt.
pub fn add_user(db: &TestDb, id: u32, name: &str, plain: &str, updated: u32) {
    use base::md5::md5_hex;
    use mysql::prelude::Queryable;
    let salt = format!("{:04}", id % 10_000);
    let stored = md5_hex(format!("{}{salt}", md5_hex(plain.as_bytes())).as_bytes());
    db.conn()
        .exec_drop(
            "INSERT INTO IMUser (id, sex, name, domain, nick, password, salt, phone, email, avatar, \
             departId, status, created, updated, sign_info) \
             VALUES (?, 1, ?, ?, ?, ?, ?, '1380000', ?, 'http://a/x.png', 1, 0, ?, ?, 'hi')",
            (
                id,
                name,
                format!("{name}-domain"),
                format!("{name}-nick"),
                stored,
                salt,
                format!("{name}@example.com"),
                updated,
                updated,
            ),
        )
        .expect("insert user");
}

/// [`add_user`] for many users at once: multi-row parameterized inserts of
/// 1,000 rows in one transaction (20,000 users take about a second, one
/// by one they take a commit each).
pub fn add_users(db: &TestDb, users: &[(u32, &str, &str)], updated: u32) {
    use base::md5::md5_hex;
    use mysql::prelude::Queryable;
    let mut conn = db.conn();
    let mut tx = conn
        .start_transaction(mysql::TxOpts::default())
        .expect("begin");
    for chunk in users.chunks(1000) {
        let mut sql = String::from(
            "INSERT INTO IMUser (id, sex, name, domain, nick, password, salt, phone, email, \
             avatar, departId, status, created, updated, sign_info) VALUES ",
        );
        let mut params: Vec<mysql::Value> = Vec::with_capacity(chunk.len() * 9);
        for (i, &(id, name, plain)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str("(?, 1, ?, ?, ?, ?, ?, '1380000', ?, 'http://a/x.png', 1, 0, ?, ?, 'hi')");
            let salt = format!("{:04}", id % 10_000);
            let stored = md5_hex(format!("{}{salt}", md5_hex(plain.as_bytes())).as_bytes());
            params.extend([
                id.into(),
                name.into(),
                format!("{name}-domain").into(),
                format!("{name}-nick").into(),
                stored.into(),
                salt.into(),
                format!("{name}@example.com").into(),
                updated.into(),
                updated.into(),
            ]);
        }
        tx.exec_drop(sql, params).expect("insert users");
    }
    tx.commit().expect("commit");
}

/// Writes a normal group as an admin tool or the C++ servers leave it:
/// an `IMGroup` row (`version`, creator the first member, timestamps `at`)
/// and one `IMGroupMember` row per (user, status); no Redis keys.
pub fn add_group(
    db: &TestDb,
    group_id: u32,
    name: &str,
    version: u32,
    at: u32,
    members: &[(u32, u32)],
) {
    use mysql::prelude::Queryable;
    let mut conn = db.conn();
    let active = members.iter().filter(|m| m.1 == 0).count() as u32;
    conn.exec_drop(
        "INSERT INTO IMGroup (id, name, avatar, creator, type, userCnt, status, version, \
         lastChated, created, updated) VALUES (?, ?, '', ?, 1, ?, 0, ?, 0, ?, ?)",
        (
            group_id,
            name,
            members.first().map_or(0, |m| m.0),
            active,
            version,
            at,
            at,
        ),
    )
    .expect("insert group");
    for &(user, status) in members {
        conn.exec_drop(
            "INSERT INTO IMGroupMember (groupId, userId, status, created, updated) \
             VALUES (?, ?, ?, ?, ?)",
            (group_id, user, status, at, at),
        )
        .expect("insert member");
    }
}

pub mod cluster;
pub mod http;
mod mariadb;
pub use mariadb::MariaDbServer;
pub mod metrics;
