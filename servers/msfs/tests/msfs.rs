//! msfs against the real binary on loopback: uploads and downloads as the
//! clients and db_proxy make them, the C++ answers and error codes, the
//! on-disk layout, the conf, and requests that must not get out of
//! `BaseDir` or stop the server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;
use tt_rs::{free_port, run_to_exit};

/// `g0/<d1>/<d2>/<usec>_<thread><suffix>`.
fn assert_layout(path: &str, d1: &str, d2: &str, suffix: &str) {
    let parts: Vec<&str> = path.split('/').collect();
    assert_eq!(parts.len(), 4, "{path}");
    assert_eq!(&parts[..3], ["g0", d1, d2], "{path}");
    let name = parts[3]
        .strip_suffix(suffix)
        .unwrap_or_else(|| panic!("{path} ends {suffix}"));
    let (usec, thread) = name.split_once('_').unwrap();
    assert!(
        usec.len() >= 16 && usec.bytes().all(|b| b.is_ascii_digit()),
        "{path}"
    );
    assert!(
        !thread.is_empty() && thread.bytes().all(|b| b.is_ascii_digit()),
        "{path}"
    );
}

#[test]
fn uploads_come_back_byte_identical_with_the_cpp_answers() {
    let msfs = Msfs::start();
    // No storage folder exists before the first upload.
    assert_eq!(std::fs::read_dir(msfs.base_dir()).unwrap().count(), 0);
    for (len, name) in [
        (1, "a.jpg"),
        (100 * 1024, "photo.png"),
        (5 << 20, "big.gif"),
        ((5 << 20) + 1, "over5.jpeg"),
    ] {
        let data = pattern(len, len as u64);
        let answer = msfs.upload(name, &data);
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("Connection"), Some("close"));
        assert_eq!(
            answer.header("Content-Type"),
            Some("text/html;charset=utf-8")
        );
        let json = answer.json();
        assert_eq!(json["error_code"], 0);
        assert_eq!(json["error_msg"], "成功");
        let path = json["path"].as_str().unwrap();
        let ext = name.rsplit_once('.').unwrap().1;
        assert_layout(path, "000", "000", &format!(".{ext}"));
        assert_eq!(json["url"], format!("http://{}/{path}", msfs.addr()));
        assert_eq!(json.as_object().unwrap().len(), 4);

        let meta = std::fs::metadata(msfs.file_of(path)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        assert_eq!(
            std::fs::read(msfs.file_of(path)).unwrap(),
            data,
            "stored exactly"
        );

        let got = msfs.get(path);
        assert_eq!(got.status, 200);
        assert_eq!(
            got.header("Content-Type"),
            Some(format!("image/{ext}").as_str())
        );
        assert_eq!(got.header("Content-Length"), Some(len.to_string().as_str()));
        assert!(got.body == data, "{len} bytes come back identical");
    }
    // A thumbnail's size stays in the name; the URL ignores the POST target.
    let answer = msfs.raw(&upload_request(
        &msfs.addr(),
        "/upload/",
        "IMG_0042_320x240.jpg",
        b"thumb",
    ));
    let path = answer.json()["path"].as_str().unwrap().to_string();
    assert_layout(&path, "000", "000", "_320x240.jpg");
    assert_eq!(msfs.get(&path).body, b"thumb");
}

#[test]
fn db_proxy_audio_client_round_trips() {
    let msfs = Msfs::start();
    let audio = pattern(30_000, 7);
    let url =
        tt_http::client::upload_byte_file(&format!("http://{}/", msfs.addr()), &audio).unwrap();
    assert!(
        url.starts_with(&format!("http://{}/g0/000/000/", msfs.addr())),
        "{url}"
    );
    assert!(url.ends_with(".audio"), "{url}");
    let back = tt_http::client::download_byte_file(&url, audio.len()).unwrap();
    assert_eq!(back, audio);
    let path = url.split_once("/g0/").unwrap().1;
    let got = msfs.get(&format!("g0/{path}"));
    assert_eq!(got.header("Content-Type"), Some("multipart/form-data"));
}

#[test]
fn every_error_code_from_a_request_that_provokes_it() {
    let msfs = Msfs::start();
    let host = msfs.addr();
    let mp = format!("multipart/form-data; boundary={BOUNDARY}");
    let part = |headers: &str, data: &str| {
        format!("--{BOUNDARY}\r\n{headers}\r\n\r\n{data}\r\n--{BOUNDARY}--\r\n")
    };
    let disp =
        |name: &str| format!("Content-Disposition: form-data; name=\"file\"; filename=\"{name}\"");
    let ok_type = "Content-Type: image/jpeg";
    let cases: Vec<(u64, Vec<u8>)> = vec![
        (2, post(&host, "/", &mp, part(ok_type, "x").as_bytes())),
        (
            3,
            post(
                &host,
                "/",
                &mp,
                part("Content-Disposition: form-data; name=\"file\"", "x").as_bytes(),
            ),
        ),
        // An unterminated filename (the C++ reads past the body).
        (
            3,
            post(
                &host,
                "/",
                &mp,
                b"Content-Disposition: form-data; filename=\"abc.jpg",
            ),
        ),
        (
            4,
            post(
                &host,
                "/",
                "multipart/form-data",
                part(&format!("{}\r\n{ok_type}", disp("a.jpg")), "x").as_bytes(),
            ),
        ),
        (
            5,
            post(
                &host,
                "/",
                "multipart/form-data; boundary=elsewhere",
                part(&format!("{}\r\n{ok_type}", disp("a.jpg")), "x").as_bytes(),
            ),
        ),
        (
            6,
            post(&host, "/", &mp, part(&disp("a.jpg"), "x").as_bytes()),
        ),
        (
            7,
            post(
                &host,
                "/",
                &mp,
                format!("--{BOUNDARY}\r\n{}\r\n{ok_type}\r\n", disp("a.jpg")).as_bytes(),
            ),
        ),
        (
            8,
            post(
                &host,
                "/",
                &mp,
                format!(
                    "--{BOUNDARY}\r\n{}\r\n{ok_type}\r\n\r\nno end",
                    disp("a.jpg")
                )
                .as_bytes(),
            ),
        ),
        (9, upload_request(&host, "/", "a.0123456789abcdef", b"x")),
        // An extension with a slash (aborts the C++ server).
        (9, upload_request(&host, "/", "a.x/../../y", b"x")),
        (10, upload_request(&host, "/", "no_dot", b"x")),
        (
            11,
            upload_request(&host, "/", &format!("{}.jpg", "n".repeat(252)), b"x"),
        ),
    ];
    for (code, request) in cases {
        let answer = msfs.raw(&request);
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.header("Content-Type"),
            Some("text/html;charset=utf-8")
        );
        let json = answer.json();
        assert_eq!(json["error_code"], code, "{json}");
        assert_eq!(json["error_msg"], "格式错误");
        assert_eq!(
            (json["path"].as_str(), json["url"].as_str()),
            (Some(""), Some(""))
        );
    }
    // Over 10 MiB: refused from the Content-Length, before the body is sent
    // (a client waiting for `100 Continue`), or while it is being sent.
    let too_big = serde_json::json!({"error_code": 1, "error_msg": "上传文件过大", "url": ""});
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: {mp}\r\nExpect: 100-continue\r\n\
         Content-Length: {}\r\n\r\n",
        (10 << 20) + 1
    );
    assert_eq!(msfs.raw(head.as_bytes()).json(), too_big);
    let whole = upload_request(&host, "/", "big.jpg", &vec![7u8; 10 << 20]);
    assert_eq!(msfs.raw(&whole).json(), too_big);
    // Nothing was stored by any of them.
    assert_eq!(std::fs::read_dir(msfs.base_dir()).unwrap().count(), 0);
    // The Host goes into the JSON escaped.
    let answer = msfs.raw(&upload_request("a\"b", "/", "x.jpg", b"1"));
    let json = answer.json();
    assert!(
        json["url"].as_str().unwrap().starts_with("http://a\"b/g0/"),
        "{json}"
    );
}

#[test]
fn downloads_refuse_what_is_not_a_stored_file() {
    let msfs = Msfs::start();
    let path = msfs.upload_ok("a.JPG", b"jpeg bytes");
    assert_eq!(msfs.get(&path).header("Content-Type"), Some("image/JPG"));
    let dir = path.rsplit_once('/').unwrap().0;
    for missing in ["g0/000/000/nope.jpg", dir, "g0/000", "g0", ""] {
        let answer = msfs.get(missing);
        assert_eq!(answer.status, 404, "{missing}");
        assert!(answer.body.is_empty());
    }
    for method in ["PUT", "DELETE", "HEAD"] {
        let answer = msfs.raw(format!("{method} /{path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        assert_eq!(answer.status, 403, "{method}");
    }
    // The file written by a C++ msfs (same layout) is served, under any group.
    let cpp = msfs.base_dir().join("017/254");
    std::fs::create_dir_all(&cpp).unwrap();
    std::fs::write(
        cpp.join("1416301384339463_140329882760960.png"),
        b"from the C++",
    )
    .unwrap();
    let got = msfs.get("g0/017/254/1416301384339463_140329882760960.png");
    assert_eq!(
        (got.status, got.body.as_slice()),
        (200, &b"from the C++"[..])
    );
    assert_eq!(got.header("Content-Type"), Some("image/png"));
    assert_eq!(
        msfs.get("g1/017/254/1416301384339463_140329882760960.png")
            .status,
        200
    );
    // And what we store is where the C++ looks: BaseDir + the path after the group.
    assert_eq!(std::fs::read(msfs.file_of(&path)).unwrap(), b"jpeg bytes");
}

#[test]
fn traversal_never_leaves_base_dir() {
    let msfs = Msfs::start();
    let server_dir = msfs.process.dir().to_path_buf();
    std::fs::write(server_dir.join("secret.jpg"), b"SECRET").unwrap();
    let outside = tt_rs::ScratchDir::new("msfs-outside");
    std::fs::write(outside.path().join("secret.jpg"), b"SECRET").unwrap();
    msfs.upload_ok("seed.jpg", b"x"); // makes 000/000
    let base = msfs.base_dir();
    std::os::unix::fs::symlink(
        outside.path().join("secret.jpg"),
        base.join("000/000/link.jpg"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), base.join("007")).unwrap();
    std::os::unix::fs::symlink("../../../secret.jpg", base.join("000/000/rel.jpg")).unwrap();
    let abs = outside.path().join("secret.jpg").display().to_string();
    let attempts = [
        "/g0/../secret.jpg".to_string(),
        "/g0/../msfs.conf".into(),
        "/g0/000/../../secret.jpg".into(),
        "/g0/%2e%2e/secret.jpg".into(),
        "/g0/%2E%2E/secret.jpg".into(),
        "/g0/..%2fsecret.jpg".into(),
        "/g0/000%2f..%2f..%2fsecret.jpg".into(),
        "/g0/..\\secret.jpg".into(),
        format!("/g0/{abs}"),
        format!("/g0//{}", abs.trim_start_matches('/')),
        abs.clone(),
        "/g0/000/000/link.jpg".into(),
        "/g0/000/000/rel.jpg".into(),
        "/g0/007/secret.jpg".into(),
        "http://127.0.0.1/../secret.jpg".into(),
        "/g0/000/000/seed.jpg%00.jpg".into(),
    ];
    for target in attempts {
        let bytes = http_exchange(
            &msfs.addr(),
            format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        );
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert!(!text.contains("SECRET"), "{target}: {text}");
        if !text.starts_with("HTTP/1.1 400") {
            assert!(text.starts_with("HTTP/1.1 404 "), "{target}: {text}");
        }
    }
    // Uploads never write through a planted folder symlink either.
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    assert!(msfs.get("g0/000/000/nope").status == 404, "still serving");
}

#[test]
fn twenty_concurrent_uploads_and_downloads_are_byte_identical() {
    let msfs = Msfs::start();
    let addr = msfs.addr();
    let workers: Vec<_> = (0..20u64)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let data = pattern(50 * 1024 + i as usize * 4099, i);
                let answer = parse_answer(&http_exchange(
                    &addr,
                    &upload_request(&addr, "/", "c.jpg", &data),
                ));
                let path = answer.json()["path"].as_str().unwrap().to_string();
                let got = parse_answer(&http_exchange(
                    &addr,
                    format!("GET /{path} HTTP/1.1\r\n\r\n").as_bytes(),
                ));
                assert!(got.body == data, "worker {i}");
                path
            })
        })
        .collect();
    let mut paths: Vec<String> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 20, "every upload has its own file");
}

#[test]
fn a_big_download_streams_whole_to_a_slow_reader() {
    let msfs = Msfs::start();
    let data = pattern(3 << 20, 3);
    let path = msfs.upload_ok("big.png", &data);
    let mut s = TcpStream::connect(msfs.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(format!("GET /{path} HTTP/1.1\r\n\r\n").as_bytes())
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        // Read slowly at first, so the server's out-buffer fills and drains.
        if got.len() < (1 << 20) {
            std::thread::sleep(Duration::from_millis(2));
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("{e}"),
        }
    }
    let answer = parse_answer(&got);
    assert_eq!(answer.status, 200);
    assert!(answer.body == data);
}

#[test]
fn files_per_dir_rotates_the_folders() {
    let msfs = Msfs::start_with(0, 2);
    let dirs: Vec<String> = (0..5)
        .map(|i| {
            let path = msfs.upload_ok("r.jpg", &[i]);
            let parts: Vec<&str> = path.split('/').collect();
            format!("{}/{}", parts[1], parts[2])
        })
        .collect();
    assert_eq!(
        dirs,
        ["000/000", "000/000", "000/001", "000/001", "000/002"]
    );
    // 255 folders of 2 files fill the first level: file 510 is in 001/000.
    let msfs = Msfs::start_with(510, 2);
    assert_layout(&msfs.upload_ok("r.jpg", b"x"), "001", "000", ".jpg");
}

#[test]
fn sigterm_writes_file_cnt_and_a_restart_continues_numbering() {
    let keep = tt_rs::ScratchDir::new("msfs-restart");
    let base = keep.path().join("store");
    let port = free_port();
    let text = conf(port, &base.display().to_string(), 7, 3);
    let conf_path = keep.path().join("msfs.conf");
    std::fs::write(&conf_path, &text).unwrap();
    let conf_arg = conf_path.display().to_string();
    let mut first = Msfs::start_conf(port, &text, &["-c", &conf_arg]);
    let a = first.upload_ok("1.jpg", b"one");
    let b = first.upload_ok("2.jpg", b"two");
    assert_layout(&a, "000", "002", ".jpg");
    // SAFETY: a plain kill(2) of our own child.
    assert_eq!(
        unsafe { libc::kill(first.process.pid() as i32, libc::SIGTERM) },
        0
    );
    assert_eq!(first.process.wait_exit(), Some(0));
    assert_eq!(conf_value(&conf_path, "FileCnt").as_deref(), Some("9"));
    let after = std::fs::read_to_string(&conf_path).unwrap();
    assert!(
        after.contains("# msfs under test") && after.contains("# files so far"),
        "{after}"
    );

    let second = Msfs::start_conf(port, "unused=1\n", &["-c", &conf_arg]);
    let c = second.upload_ok("3.jpg", b"three");
    assert_layout(&c, "000", "003", ".jpg");
    assert_eq!(second.get(&a).body, b"one");
    assert_eq!(second.get(&b).body, b"two");
    // SAFETY: as above.
    assert_eq!(
        unsafe { libc::kill(second.process.pid() as i32, libc::SIGINT) },
        0
    );
    let mut second = second;
    assert_eq!(second.process.wait_exit(), Some(0));
    assert_eq!(conf_value(&conf_path, "FileCnt").as_deref(), Some("10"));
}

#[test]
fn garbage_and_slow_requests_leave_other_clients_served() {
    let msfs = Msfs::start();
    // A slow client holding half a head, and one that never says anything.
    let mut slow = TcpStream::connect(msfs.addr()).unwrap();
    slow.write_all(b"POST / HTTP/1.1\r\nContent-Le").unwrap();
    let _silent = TcpStream::connect(msfs.addr()).unwrap();
    // A slow body: half of it now.
    let request = upload_request(&msfs.addr(), "/", "slow.jpg", &pattern(200_000, 9));
    let mut trickle = TcpStream::connect(msfs.addr()).unwrap();
    trickle.write_all(&request[..request.len() / 2]).unwrap();
    // Garbage gets a 400 at once.
    for garbage in [
        &b"\x00\x01\x02\x03garbage\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
    ] {
        let text = String::from_utf8_lossy(&http_exchange(&msfs.addr(), garbage)).into_owned();
        assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    }
    let mut long = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
    long.resize(70 * 1024, b'a');
    let text = String::from_utf8_lossy(&http_exchange(&msfs.addr(), &long)).into_owned();
    assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
    // Others are served meanwhile.
    let path = msfs.upload_ok("other.jpg", b"served");
    assert_eq!(msfs.get(&path).body, b"served");
    // The trickling upload completes.
    trickle.write_all(&request[request.len() / 2..]).unwrap();
    trickle
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut out = Vec::new();
    trickle.read_to_end(&mut out).unwrap();
    assert_eq!(parse_answer(&out).json()["error_code"], 0);
    slow.write_all(b"ngth: 0\r\n\r\n").unwrap();
    let mut out = Vec::new();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    slow.read_to_end(&mut out).unwrap();
    assert_eq!(parse_answer(&out).json()["error_code"], 2);
}

#[test]
fn a_missing_or_bad_key_exits_1_naming_it() {
    let port = free_port();
    let full = conf(port, "./tmp", 0, 30000);
    for (key, text) in [
        ("BaseDir", full.replace("BaseDir=./tmp", "")),
        (
            "GetThreadCount",
            full.replace("GetThreadCount=4", "GetThreadCount=0"),
        ),
        ("PostThreadCount", full.replace("PostThreadCount=2", "")),
    ] {
        let (code, log) = run_to_exit(&bin(), "msfs.conf", &text, &[]);
        assert_eq!(code, Some(1), "{key}: {log}");
        assert!(log.contains(key), "{key}: {log}");
    }
}
