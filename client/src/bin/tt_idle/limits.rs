//! What the machine allows, checked before a run: the open-file limit
//! (raised from soft to hard), the ephemeral port range, and whether a
//! target fits; and what a run reports about the machine: each server's
//! resident memory and `/proc/net/sockstat`.

use std::net::{IpAddr, Ipv4Addr};

/// Files a run needs beside its client sockets (stdio, epoll, the JSON
/// file, a discovery socket per client in flight is counted separately).
pub const SPARE_FILES: u64 = 64;

/// `RLIMIT_NOFILE` as (soft, hard).
pub fn nofile() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Raises the soft `RLIMIT_NOFILE` to the hard one; returns the new soft
/// limit.
pub fn raise_nofile() -> std::io::Result<u64> {
    let (soft, hard) = nofile()?;
    if soft < hard {
        let lim = libc::rlimit {
            rlim_cur: hard,
            rlim_max: hard,
        };
        // SAFETY: setrlimit reads one rlimit through a valid pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(hard)
}

/// `net.ipv4.ip_local_port_range` as (first, last).
pub fn port_range() -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<u32>().ok());
    Some((it.next()??, it.next()??))
}

/// Why `clients` cannot all be held by one process with `nofile_hard`
/// files, `in_flight` discoveries at once, from `source_ips` addresses
/// (0: the kernel's choice, one address) over `ports` ephemeral ports per
/// address and destination; `None` when it fits. The text says what to set.
pub fn capacity_problem(
    clients: u64,
    in_flight: u64,
    nofile_hard: u64,
    source_ips: u64,
    ports: u64,
    destinations: u64,
) -> Option<String> {
    let files = clients + in_flight + SPARE_FILES;
    if files > nofile_hard {
        return Some(format!(
            "{clients} clients need about {files} open files but this process may open \
             {nofile_hard} (RLIMIT_NOFILE hard limit): raise it (`ulimit -Hn`, systemd \
             LimitNOFILE=, at most fs.nr_open) or split the clients over several tt-idle \
             processes with --skip and --users (each under {})",
            nofile_hard.saturating_sub(in_flight + SPARE_FILES)
        ));
    }
    // Every client holds one port towards its msg_server; login_server's
    // HTTP port sees each client once more (its TIME_WAIT stays on the
    // server's side, which closes first).
    let per_tuple = clients / destinations.max(1);
    let tuples = source_ips.max(1) * ports;
    if per_tuple > tuples {
        return Some(format!(
            "{per_tuple} connections to one msg_server from {} source address(es) need more \
             than the {ports} ephemeral ports of net.ipv4.ip_local_port_range: give more \
             --source-ips (127.0.0.0/8 is all loopback) or widen the range",
            source_ips.max(1)
        ));
    }
    None
}

/// Reads `--source-ips`: a `,` list of addresses and `A-B` ranges of IPv4
/// addresses (`127.0.1.1-127.0.1.200`), at most 65,536 in all.
pub fn parse_source_ips(text: &str) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.split_once('-') {
            Some((a, b)) => {
                let bad = |v: &str| format!("bad address {v} in {item}");
                let a: Ipv4Addr = a.trim().parse().map_err(|_| bad(a))?;
                let b: Ipv4Addr = b.trim().parse().map_err(|_| bad(b))?;
                let (a, b) = (u32::from(a), u32::from(b));
                if b < a || b - a >= 65_536 {
                    return Err(format!("range {item} is empty or over 65,536 addresses"));
                }
                out.extend((a..=b).map(|v| IpAddr::V4(Ipv4Addr::from(v))));
            }
            None => out.push(item.parse().map_err(|_| format!("bad address {item}"))?),
        }
        if out.len() > 65_536 {
            return Err("more than 65,536 source addresses".into());
        }
    }
    Ok(out)
}

/// `VmRSS` of process `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `/proc/net/sockstat` as (line name, (field, value)...), e.g.
/// `("TCP", [("inuse", 40012), ("mem", 1234), ...])`; `mem` is in pages.
pub fn sockstat() -> Vec<(String, Vec<(String, u64)>)> {
    let text = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    parse_sockstat(&text)
}

fn parse_sockstat(text: &str) -> Vec<(String, Vec<(String, u64)>)> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let words: Vec<&str> = rest.split_whitespace().collect();
            let fields = words
                .chunks(2)
                .filter_map(|kv| Some((kv.first()?.to_string(), kv.get(1)?.parse().ok()?)))
                .collect();
            Some((name.trim().to_string(), fields))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ips_read_lists_and_ranges() {
        let ips = parse_source_ips("127.0.0.2, 127.0.1.254-127.0.2.1").unwrap();
        let text: Vec<String> = ips.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "127.0.0.2",
                "127.0.1.254",
                "127.0.1.255",
                "127.0.2.0",
                "127.0.2.1"
            ]
        );
        assert!(parse_source_ips("127.0.0.9-127.0.0.1").is_err());
        assert!(parse_source_ips("127.0.0.x").is_err());
        assert!(parse_source_ips("10.0.0.0-10.2.0.0").is_err());
        assert!(parse_source_ips("").unwrap().is_empty());
    }

    #[test]
    fn capacity_names_the_limit_that_is_short() {
        assert_eq!(capacity_problem(10_000, 100, 20_000, 20, 28_232, 2), None);
        let files = capacity_problem(20_000, 100, 20_000, 20, 28_232, 2).unwrap();
        assert!(
            files.contains("RLIMIT_NOFILE") && files.contains("--skip"),
            "{files}"
        );
        let ports = capacity_problem(100_000, 100, 1 << 20, 1, 28_232, 1).unwrap();
        assert!(ports.contains("--source-ips"), "{ports}");
        assert_eq!(capacity_problem(100_000, 100, 1 << 20, 4, 28_232, 1), None);
    }

    #[test]
    fn sockstat_lines_parse() {
        let s = parse_sockstat(
            "sockets: used 23\nTCP: inuse 3 orphan 0 tw 43 alloc 4 mem 76\nUDP: inuse 0 mem 0\n",
        );
        assert_eq!(s[1].0, "TCP");
        assert_eq!(s[1].1[4], ("mem".to_string(), 76));
        assert_eq!(s[0].1, vec![("used".to_string(), 23)]);
    }

    #[test]
    fn this_process_has_limits() {
        let (soft, hard) = nofile().unwrap();
        assert!(soft <= hard && hard > 0);
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }
}
