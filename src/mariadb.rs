//! A private MariaDB server for the tests that kill or restart it.
//!
//! Most tests share the machine's MariaDB (`TT_MYSQL_URL`) with a scratch
//! database each ([`crate::TestDb`]); a test that takes MariaDB away
//! (failover, a restart in the middle of a batch) must not do that to the
//! others, so it starts its own `mariadbd` on a free loopback port with a
//! data directory in a [`ScratchDir`]. The binaries come from the Debian
//! packages `scripts/deps.sh` installs; data survives a kill -9 (InnoDB
//! with the default durable commit), so a test can check what was stored.

use crate::{free_port, ScratchDir, WAIT};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The account the private server accepts (it runs with
/// `--skip-grant-tables`, so any user and password get in; these are the
/// ones the confs are written with).
const USER: &str = "teamtalk";
const PASSWORD: &str = "teamtalk";

/// A `mariadbd` of this test's own on a free loopback port; killed on drop.
pub struct MariaDbServer {
    port: u16,
    child: Option<Child>,
    dir: ScratchDir,
    daemon: PathBuf,
}

/// The first of `names` found in `PATH` or the usual `sbin` folders.
fn find_binary(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/usr/bin", "/sbin"].iter().map(PathBuf::from));
    names
        .iter()
        .flat_map(|n| dirs.iter().map(move |d| d.join(n)))
        .find(|p| p.is_file())
}

/// The user mariadbd must run as: itself refuses root without `--user`.
fn current_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            let out = Command::new("id").arg("-un").output().ok();
            out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| "root".into())
        })
}

impl MariaDbServer {
    /// Creates a data directory and starts the server; waits until it
    /// answers. Panics naming `scripts/deps.sh` when MariaDB is not
    /// installed.
    pub fn start() -> MariaDbServer {
        let install = find_binary(&["mariadb-install-db", "mysql_install_db"])
            .expect("mariadb-install-db not found (scripts/deps.sh installs mariadb-server)");
        let daemon = find_binary(&["mariadbd", "mysqld"])
            .expect("mariadbd not found (scripts/deps.sh installs mariadb-server)");
        let dir = ScratchDir::new("mariadb");
        let data = dir.path().join("data");
        let out = Command::new(&install)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--user={}", current_user()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", install.display()));
        assert!(
            out.status.success(),
            "{} failed: {}{}",
            install.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut server = MariaDbServer {
            port: free_port(),
            child: None,
            dir,
            daemon,
        };
        server.restart();
        server
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mysql://teamtalk:teamtalk@127.0.0.1:<port>`, for [`crate::TestDb::empty_on`].
    pub fn url(&self) -> String {
        format!("mysql://{USER}:{PASSWORD}@127.0.0.1:{}", self.port)
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's error log (startup, crash recovery), for a failing test.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mariadb.err")).unwrap_or_default()
    }

    /// kill -9: a crash, as an operator's `kill -9` or the OOM killer.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the exit, as `service mariadb stop` does.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + WAIT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// (Re)starts it on the same port and data directory (after a kill this
    /// includes InnoDB's crash recovery) and waits until it takes a login.
    pub fn restart(&mut self) {
        self.stop();
        let data = self.data_dir();
        let child = Command::new(&self.daemon)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!(
                "--socket={}",
                self.dir.path().join("sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                self.dir.path().join("pid").display()
            ))
            .arg(format!(
                "--log-error={}",
                self.dir.path().join("mariadb.err").display()
            ))
            .arg(format!("--port={}", self.port))
            .arg(format!("--user={}", current_user()))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-grant-tables",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=64M",
                "--max-connections=500",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_bin",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.daemon.display()));
        self.child = Some(child);
        self.wait_ready(&data);
    }

    fn wait_ready(&mut self, data: &Path) {
        let deadline = Instant::now() + WAIT;
        let opts = mysql::Opts::from_url(&self.url()).expect("private MariaDB url");
        while Instant::now() < deadline {
            if mysql::Conn::new(opts.clone()).is_ok() {
                return;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!(
                        "mariadbd ({}) exited with {status}:\n{}",
                        data.display(),
                        self.log()
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("mariadbd did not answer on {}:\n{}", self.port, self.log());
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        self.kill();
    }
}
