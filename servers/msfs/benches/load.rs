//! msfs under load: uploads/s and downloads/s of 50 KiB images from 16
//! concurrent clients (one request per connection, as every client does),
//! with latency percentiles and the server's peak resident memory.
//!
//! `cargo bench -p msfs --bench load` starts the release msfs (the shipped
//! thread counts: 32 download workers, 1 upload worker) in a scratch
//! directory; the load generator runs on the same machine and cores.
//!
//! Environment: `TT_MSFS_SECONDS` (per phase, default 5),
//! `TT_MSFS_CLIENTS` (default 16), `TT_MSFS_SIZE` (bytes, default 51200);
//! `TT_MSFS_ADDR=host:port` loads a server already running instead (e.g.
//! the C++ msfs), and `TT_MSFS_PID` names its process for the memory line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BOUNDARY: &str = "----tt-rs-bench-7MA4YWxkTrZu0gW";

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One request on a fresh connection; the whole answer.
fn exchange(addr: &str, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request)?;
    let mut out = Vec::with_capacity(64 * 1024);
    s.read_to_end(&mut out)?;
    Ok(out)
}

fn body_of(answer: &[u8]) -> Option<&[u8]> {
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    answer
        .starts_with(b"HTTP/1.1 200")
        .then(|| &answer[end + 4..])
}

fn upload_request(addr: &str, data: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.jpg\"\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let mut request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    request
}

/// What one phase measured.
struct Phase {
    done: usize,
    failed: usize,
    latencies_us: Vec<u64>,
    elapsed: Duration,
    paths: Vec<String>,
}

/// Runs `clients` threads doing `one` in a loop for `secs`.
fn phase(
    clients: usize,
    secs: u64,
    one: impl Fn(usize, u64) -> Result<Option<String>, String> + Send + Sync + 'static,
) -> Phase {
    let stop = Arc::new(AtomicBool::new(false));
    let one = Arc::new(one);
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let stop = stop.clone();
            let one = one.clone();
            std::thread::spawn(move || {
                let (mut lat, mut paths, mut failed) = (Vec::new(), Vec::new(), 0usize);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match one(c, n) {
                        Ok(path) => {
                            lat.push(t.elapsed().as_micros() as u64);
                            paths.extend(path);
                        }
                        Err(e) => {
                            if failed < 3 {
                                eprintln!("client {c}: {e}");
                            }
                            failed += 1;
                        }
                    }
                    n += 1;
                }
                (lat, paths, failed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let mut all = Phase {
        done: 0,
        failed: 0,
        latencies_us: Vec::new(),
        elapsed: Duration::ZERO,
        paths: Vec::new(),
    };
    for t in threads {
        let (lat, paths, failed) = t.join().expect("client thread");
        all.done += lat.len();
        all.latencies_us.extend(lat);
        all.paths.extend(paths);
        all.failed += failed;
    }
    all.elapsed = start.elapsed();
    all.latencies_us.sort_unstable();
    all
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

fn report(what: &str, p: &Phase) {
    println!(
        "{what}: {:.0}/s ({} in {:.1} s, {} failed); latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        p.done as f64 / p.elapsed.as_secs_f64(),
        p.done,
        p.elapsed.as_secs_f64(),
        p.failed,
        pct(&p.latencies_us, 0.50),
        pct(&p.latencies_us, 0.99),
        pct(&p.latencies_us, 1.0),
    );
}

fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let secs: u64 = env_or("TT_MSFS_SECONDS", 5);
    let clients: usize = env_or("TT_MSFS_CLIENTS", 16);
    let size: usize = env_or("TT_MSFS_SIZE", 50 * 1024);
    let mut own = None;
    let (addr, pid) = match std::env::var("TT_MSFS_ADDR") {
        Ok(addr) => (
            addr,
            std::env::var("TT_MSFS_PID")
                .ok()
                .and_then(|p| p.parse().ok()),
        ),
        Err(_) => {
            // The harness starts servers at debug unless told otherwise.
            if std::env::var_os("RUST_LOG").is_none() {
                std::env::set_var("RUST_LOG", "info");
            }
            let port = tt_rs::free_port();
            let conf = format!(
                "ListenIP=127.0.0.1\nListenPort={port}\nBaseDir=./tmp\nFileCnt=0\n\
                 FilesPerDir=30000\nGetThreadCount=32\nPostThreadCount=1\n"
            );
            let mut p = tt_rs::ServerProcess::start(
                &tt_rs::built_binary("msfs").to_string_lossy(),
                "msfs.conf",
                &conf,
            );
            p.wait_listening(port);
            let pid = p.pid();
            own = Some(p);
            (format!("127.0.0.1:{port}"), Some(pid))
        }
    };
    println!("msfs load: {addr}, {clients} clients, {size}-byte images, {secs} s per phase");

    let data: Arc<Vec<u8>> = Arc::new((0..size).map(|i| (i * 31 % 251) as u8).collect());
    let request = Arc::new(upload_request(&addr, &data));
    let up_addr = addr.clone();
    let uploads = phase(clients, secs, move |_, _| {
        let answer = exchange(&up_addr, &request).map_err(|e| e.to_string())?;
        let body = body_of(&answer).ok_or("not a 200")?;
        let json: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        if json["error_code"] != 0 {
            return Err(format!("refused: {json}"));
        }
        Ok(json["path"].as_str().map(String::from))
    });
    report("uploads", &uploads);

    let paths = Arc::new(uploads.paths.clone());
    assert!(!paths.is_empty(), "no upload worked");
    let down_addr = addr.clone();
    let downloads = phase(clients, secs, move |c, n| {
        let path = &paths[(c * 7919 + n as usize * 104_729) % paths.len()];
        let request = format!("GET /{path} HTTP/1.1\r\nHost: {down_addr}\r\n\r\n");
        let answer = exchange(&down_addr, request.as_bytes()).map_err(|e| e.to_string())?;
        let body = body_of(&answer).ok_or("not a 200")?;
        if body.len() != size {
            return Err(format!("{} bytes", body.len()));
        }
        Ok(None)
    });
    report("downloads", &downloads);
    if let Some((rss, hwm)) = pid.and_then(memory_kib) {
        println!(
            "server memory: VmRSS {:.1} MiB, peak (VmHWM) {:.1} MiB",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
    }
    drop(own);
}
