//! The shipped `conf/*.conf` files: each loads with the C++-compatible
//! reader, carries exactly the keys of the C++ reference file of the same
//! name (when `../shared` is present), and holds the values the servers and
//! `scripts/` rely on (loopback addresses, the ports of the README, the
//! `teamtalk` database account, the 32-byte demo AES key).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base::config::{ConfigFileReader, ServerAddr};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The eight files, one per server, with the C++ names.
const CONF_FILES: [&str; 8] = [
    "dbproxyserver.conf",
    "fileserver.conf",
    "httpmsgserver.conf",
    "loginserver.conf",
    "msfs.conf",
    "msgserver.conf",
    "pushserver.conf",
    "routeserver.conf",
];

fn conf_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../conf"))
}

/// The C++ reference files; `None` when `../shared` is absent (a user's
/// checkout), so the comparisons that need it are skipped.
fn reference_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/reference/teamtalk/conf"
    ));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "{} is absent: skipping the comparison with the C++ reference files",
            dir.display()
        );
        None
    }
}

fn load(dir: &Path, name: &str) -> ConfigFileReader {
    let path = dir.join(name);
    match ConfigFileReader::load(&path) {
        Ok(c) => c,
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

fn ours(name: &str) -> ConfigFileReader {
    load(&conf_dir(), name)
}

fn keys(c: &ConfigFileReader) -> BTreeSet<String> {
    c.keys().map(str::to_string).collect()
}

fn value<'a>(c: &'a ConfigFileReader, file: &str, key: &str) -> &'a str {
    match c.require(key) {
        Ok(v) => v,
        Err(e) => panic!("{file}: {e}"),
    }
}

fn port(c: &ConfigFileReader, file: &str, key: &str) -> u16 {
    match c.require_parse::<u16>(key) {
        Ok(p) => p,
        Err(e) => panic!("{file}: {e}"),
    }
}

#[test]
fn every_file_exists_and_loads() {
    for name in CONF_FILES {
        let path = conf_dir().join(name);
        assert!(path.is_file(), "{} is missing", path.display());
        let c = ours(name);
        assert!(c.keys().next().is_some(), "{name} has no keys");
    }
}

#[test]
fn no_extra_files() {
    let mut found: Vec<String> = std::fs::read_dir(conf_dir())
        .expect("conf/ is readable")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".conf"))
        .collect();
    found.sort();
    assert_eq!(found, CONF_FILES.to_vec());
}

/// The keys the C++ server really reads for the reference file `name`'s
/// keys. The reference `fileserver.conf` is stale: the 2015 C++ reads
/// `ClientListenIP` and `ClientListenPort` (for which file_server takes
/// `Address` and `ListenPort` as aliases), and also `MsgServerListenIP` and
/// `MsgServerListenPort`, which the reference file lacks.
fn reference_keys_as_read(name: &str, keys: BTreeSet<String>) -> BTreeSet<String> {
    if name != "fileserver.conf" {
        return keys;
    }
    let aliases = [
        ("Address", "ClientListenIP"),
        ("ListenPort", "ClientListenPort"),
    ];
    keys.into_iter()
        .map(|k| {
            aliases
                .iter()
                .find(|(alias, _)| *alias == k)
                .map_or(k.clone(), |(_, real)| real.to_string())
        })
        .chain(["MsgServerListenIP", "MsgServerListenPort"].map(String::from))
        .collect()
}

/// Keys the shipped files set that no C++ server reads: optional, each
/// marked "not in the C++" in the README (the shipped files turn metrics
/// on; leaving them out keeps the C++ behaviour).
const OURS_NOT_IN_CPP: &[&str] = &["MetricsListenIP", "MetricsPort"];

#[test]
fn keys_match_the_reference_files() {
    let Some(reference) = reference_dir() else {
        return;
    };
    for name in CONF_FILES {
        let theirs = reference_keys_as_read(name, keys(&load(&reference, name)));
        let ours: BTreeSet<String> = keys(&ours(name))
            .into_iter()
            .filter(|k| !OURS_NOT_IN_CPP.contains(&k.as_str()))
            .collect();
        assert_eq!(
            ours,
            theirs,
            "{name}: keys differ from the reference (only ours: {:?}; only theirs: {:?})",
            ours.difference(&theirs).collect::<Vec<_>>(),
            theirs.difference(&ours).collect::<Vec<_>>()
        );
    }
}

#[test]
fn reference_quirks_are_read_like_the_cpp() {
    let Some(reference) = reference_dir() else {
        return;
    };
    // `ThreadNum=48\t\t# double the number of CPU core`
    let db = load(&reference, "dbproxyserver.conf");
    assert_eq!(db.get("ThreadNum"), Some("48"));
    assert_eq!(db.require_parse::<u32>("ThreadNum").unwrap(), 48);
    // `MsgServerListenIP=0.0.0.0 \t# can use multiple ip, seperate by ';'`
    let login = load(&reference, "loginserver.conf");
    assert_eq!(login.get("MsgServerListenIP"), Some("0.0.0.0"));
    assert_eq!(login.get("ClientListenIP"), Some("0.0.0.0"));
    // `ListenMsgPort=8200\t\t\t# Listening Port for MsgServer`
    let route = load(&reference, "routeserver.conf");
    assert_eq!(route.require_parse::<u16>("ListenMsgPort").unwrap(), 8200);
    // `Address=0.0.0.0         # address for client`
    let file = load(&reference, "fileserver.conf");
    assert_eq!(file.get("Address"), Some("0.0.0.0"));
    assert_eq!(file.require_parse::<u32>("TaskTimeout").unwrap(), 60);
    // `SandBox=0\t` and a value holding '@'
    let push = load(&reference, "pushserver.conf");
    assert_eq!(push.get("SandBox"), Some("0"));
    assert_eq!(push.get("KeyPassword"), Some("tt@mogujie"));
    // Commented-out pairs stop the numbered list; Chinese comments are cut.
    let msg = load(&reference, "msgserver.conf");
    assert_eq!(msg.get("LoginServerIP2"), None);
    assert_eq!(msg.get("IpAddr1"), Some("127.0.0.1"));
    assert_eq!(
        msg.read_server_config("LoginServerIP", "LoginServerPort")
            .unwrap()
            .len(),
        1
    );
    let msfs = load(&reference, "msfs.conf");
    assert_eq!(msfs.get("ListenIP"), Some("0.0.0.0"));
    // Every reference value is usable: no '#', no surrounding blanks.
    for name in CONF_FILES {
        let c = load(&reference, name);
        for key in c.keys() {
            let v = c.get(key).unwrap();
            assert_eq!(v, v.trim(), "{name}: {key} keeps blanks: {v:?}");
            assert!(!v.contains('#'), "{name}: {key} keeps a comment: {v:?}");
        }
    }
}

#[test]
fn no_value_holds_a_comment_or_blanks() {
    for name in CONF_FILES {
        let c = ours(name);
        for key in c.keys() {
            let v = c.get(key).unwrap();
            assert!(!v.contains('#'), "{name}: {key}={v:?} contains '#'");
            assert_eq!(v, v.trim(), "{name}: {key}={v:?} has blanks");
            assert!(v.is_ascii(), "{name}: {key}={v:?} is not ASCII");
        }
    }
}

#[test]
fn every_address_is_loopback() {
    for name in CONF_FILES {
        let c = ours(name);
        for key in c.keys() {
            // ListenIP, ClientListenIP, DBServerIP1, IpAddr2, unread_host...
            let is_address = key.contains("IP")
                || key.starts_with("IpAddr")
                || key.ends_with("_host")
                || key == "Address"
                || key == "MsfsSite";
            if !is_address {
                continue;
            }
            for ip in c.require_list(key, ';').unwrap() {
                assert_eq!(ip, "127.0.0.1", "{name}: {key}={ip} is not loopback");
            }
        }
        for key in ["msfs", "discovery"] {
            if let Some(url) = c.get(key) {
                assert!(
                    url.starts_with("http://127.0.0.1"),
                    "{name}: {key}={url} is not loopback"
                );
            }
        }
    }
}

#[test]
fn listen_ports_are_the_documented_ones() {
    let expected: [(&str, &str, u16); 11] = [
        ("loginserver.conf", "ClientPort", 8008),
        ("loginserver.conf", "HttpPort", 8080),
        ("loginserver.conf", "MsgServerPort", 8100),
        ("msgserver.conf", "ListenPort", 8000),
        ("routeserver.conf", "ListenMsgPort", 8200),
        ("dbproxyserver.conf", "ListenPort", 10600),
        ("fileserver.conf", "ClientListenPort", 8600),
        ("fileserver.conf", "MsgServerListenPort", 8601),
        ("msfs.conf", "ListenPort", 8700),
        ("httpmsgserver.conf", "ListenPort", 8400),
        ("pushserver.conf", "ListenPort", 8500),
    ];
    for (file, key, want) in expected {
        assert_eq!(port(&ours(file), file, key), want, "{file}: {key}");
    }
}

#[test]
fn peers_point_at_the_servers_that_listen() {
    let addr = |port| ServerAddr {
        ip: "127.0.0.1".to_string(),
        port,
    };
    let msg = ours("msgserver.conf");
    let peers = |ip: &str, port: &str| msg.read_server_config(ip, port).unwrap();
    let db = peers("DBServerIP", "DBServerPort");
    assert_eq!(db.len(), 2);
    assert!(db.iter().all(|s| s.port == 10600), "{db:?}");
    // The listen ports pinned by listen_ports_are_the_documented_ones.
    assert_eq!(peers("LoginServerIP", "LoginServerPort"), [addr(8100)]);
    assert_eq!(peers("RouteServerIP", "RouteServerPort"), [addr(8200)]);
    assert_eq!(peers("PushServerIP", "PushServerPort"), [addr(8500)]);
    // msg_server links to file_server's msg_server port, not its client port.
    assert_eq!(peers("FileServerIP", "FileServerPort"), [addr(8601)]);
    assert!(msg.require_parse::<u32>("ConcurrentDBConnCnt").unwrap() > 0);
    assert!(msg.require_parse::<u32>("MaxConnCnt").unwrap() > 0);

    let http = ours("httpmsgserver.conf");
    let db = http
        .read_server_config("DBServerIP", "DBServerPort")
        .unwrap();
    assert_eq!(db, vec![addr(10600), addr(10600)]);
    assert_eq!(
        http.read_server_config("RouteServerIP", "RouteServerPort")
            .unwrap(),
        vec![addr(8200)]
    );

    let login = ours("loginserver.conf");
    assert_eq!(login.require_parse::<u16>("ClientPort").unwrap(), 8008);
    let msfs_port = port(&ours("msfs.conf"), "msfs.conf", "ListenPort");
    assert_eq!(
        login.get("msfs"),
        Some(format!("http://127.0.0.1:{msfs_port}/").as_str())
    );
}

#[test]
fn db_proxy_pools_are_complete() {
    let file = "dbproxyserver.conf";
    let c = ours(file);
    assert!(c.require_parse::<u32>("ThreadNum").unwrap() > 0);

    let dbs = c.require_list("DBInstances", ',').unwrap();
    assert_eq!(dbs, vec!["teamtalk_master", "teamtalk_slave"]);
    for inst in &dbs {
        for suffix in [
            "host",
            "port",
            "dbname",
            "username",
            "password",
            "maxconncnt",
        ] {
            value(&c, file, &format!("{inst}_{suffix}"));
        }
        assert_eq!(port(&c, file, &format!("{inst}_port")), 3306);
        // scripts/deps.sh creates this account and database.
        assert_eq!(value(&c, file, &format!("{inst}_dbname")), "teamtalk");
        assert_eq!(value(&c, file, &format!("{inst}_username")), "teamtalk");
        assert_eq!(value(&c, file, &format!("{inst}_password")), "teamtalk");
        assert!(
            c.require_parse::<u32>(&format!("{inst}_maxconncnt"))
                .unwrap()
                > 0
        );
    }

    let caches = c.require_list("CacheInstances", ',').unwrap();
    assert_eq!(
        caches,
        vec!["unread", "group_set", "token", "sync", "group_member"]
    );
    for inst in &caches {
        for suffix in ["host", "port", "db", "maxconncnt"] {
            value(&c, file, &format!("{inst}_{suffix}"));
        }
        assert_eq!(port(&c, file, &format!("{inst}_port")), 6379);
        let db = c.require_parse::<u32>(&format!("{inst}_db")).unwrap();
        assert!((1..=15).contains(&db), "{inst}_db={db}");
        assert!(
            c.require_parse::<u32>(&format!("{inst}_maxconncnt"))
                .unwrap()
                > 0
        );
    }
    // Each cache has its own Redis database, as in the C++ setup.
    let dbs: BTreeSet<String> = caches
        .iter()
        .map(|i| value(&c, file, &format!("{i}_db")).to_string())
        .collect();
    assert_eq!(dbs.len(), caches.len());
}

#[test]
fn aes_keys_are_32_bytes_and_agree() {
    let db = ours("dbproxyserver.conf");
    let msg = ours("msgserver.conf");
    let key = value(&db, "dbproxyserver.conf", "aesKey");
    assert_eq!(key.len(), 32, "aesKey must be exactly 32 bytes");
    assert_eq!(value(&msg, "msgserver.conf", "aesKey"), key);
}

#[test]
fn file_settings_parse() {
    let msfs = ours("msfs.conf");
    for key in [
        "FileCnt",
        "FilesPerDir",
        "GetThreadCount",
        "PostThreadCount",
    ] {
        assert!(msfs.require_parse::<u32>(key).is_ok(), "msfs.conf: {key}");
    }
    assert!(!value(&msfs, "msfs.conf", "BaseDir").is_empty());
    let file = ours("fileserver.conf");
    assert!(file.require_parse::<u32>("TaskTimeout").unwrap() > 0);
    let push = ours("pushserver.conf");
    assert!(matches!(
        push.require_parse::<u8>("SandBox").unwrap(),
        0 | 1
    ));
}
