//! Scraping a server's `GET /metrics` from the tests' side: the port it
//! logged, the answer checked strictly (our own parser of the Prometheus
//! text format, and `promtool check metrics` where it is installed), and
//! sample values looked up by name and labels.

use crate::http::{http_exchange, parse_answer};
use crate::{ServerProcess, WAIT};
use std::collections::HashSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One sample line: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name (`tt_x_bucket` for a histogram's buckets).
    pub name: String,
    /// Label names and (unescaped) values, in order.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

/// A parsed scrape.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// The text as served.
    pub text: String,
    /// Every sample.
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// The sum of the samples named `name` that carry every label of
    /// `labels` (0 when none does).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// True when some sample is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

/// The metrics port `p` logged (`metrics: GET http://IP:PORT/metrics`).
pub fn metrics_port(p: &ServerProcess) -> u16 {
    let needle = "metrics: GET http://";
    p.wait_log(needle);
    let log = p.log();
    let line = log.lines().find(|l| l.contains(needle)).unwrap_or_default();
    let addr = line
        .split(needle)
        .nth(1)
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("metrics line {line:?}"));
    addr.rsplit(':').next().unwrap().trim().parse().unwrap()
}

/// `GET /metrics` from `p` (its logged port): the answer must be 200 with
/// the exposition content type, and its text must pass [`check_format`]
/// and, where installed, `promtool check metrics`.
pub fn scrape(p: &ServerProcess) -> Scrape {
    scrape_port(metrics_port(p))
}

/// The `MetricsPort=` of the conf file `p` was started with (for a bench
/// whose servers log at `warn`, so the port is not in their log).
pub fn configured_metrics_port(p: &ServerProcess) -> Option<u16> {
    std::fs::read_dir(p.dir()).ok()?.flatten().find_map(|e| {
        let text = std::fs::read_to_string(e.path()).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("MetricsPort="))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// [`scrape`] of the metrics port `port` on 127.0.0.1.
pub fn scrape_port(port: u16) -> Scrape {
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "metrics port {addr} never opened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let raw = http_exchange(&addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let answer = parse_answer(&raw);
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = String::from_utf8(answer.body).expect("UTF-8 exposition");
    let samples = check_format(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    if let Some(verdict) = promtool_check(&text) {
        verdict.unwrap_or_else(|e| panic!("promtool check metrics: {e}\n{text}"));
    }
    Scrape { text, samples }
}

/// `promtool check metrics` on `text`: `None` when promtool is not
/// installed (Debian's `prometheus` package), else its verdict.
pub fn promtool_check(text: &str) -> Option<Result<(), String>> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(text.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    })
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => v.parse().ok(),
    }
}

/// Parses `{a="x",b="y"}` (the braces included) into label pairs.
fn parse_labels(s: &str) -> Result<Vec<(String, String)>, String> {
    let inner = s
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or("labels not in braces")?;
    let mut out = Vec::new();
    let mut rest = inner;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").ok_or("label without =\"")?;
        if !valid_name(name) || name.starts_with("__") {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        if out.iter().any(|(n, _)| n == name) {
            return Err(format!("label {name} twice"));
        }
        out.push((name.to_string(), value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Ok(out)
}

/// Checks `text` against the text format and our naming rules, returning
/// its samples: `# HELP` then `# TYPE` once per family, before its
/// samples; every name `tt_`; counters `_total`; histogram series with
/// ascending cumulative `le` buckets ending in `+Inf` equal to `_count`;
/// no sample (name and labels) twice.
pub fn check_format(text: &str) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    let mut typed: HashSet<String> = HashSet::new();
    let mut helped: HashSet<String> = HashSet::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut current: Option<(String, String)> = None; // (family, type)
    if !text.ends_with('\n') {
        return Err("the text does not end with a newline".into());
    }
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            if !valid_name(name) || !helped.insert(name.to_string()) {
                return Err(at("bad or repeated HELP".into()));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or_else(|| at("TYPE".into()))?;
            if !["counter", "gauge", "histogram"].contains(&kind) {
                return Err(at(format!("type {kind}")));
            }
            if !name.starts_with("tt_") {
                return Err(at("name without tt_".into()));
            }
            if kind == "counter" && !name.ends_with("_total") {
                return Err(at("counter without _total".into()));
            }
            if !helped.contains(name) || !typed.insert(name.to_string()) {
                return Err(at("TYPE without HELP, or repeated".into()));
            }
            current = Some((name.to_string(), kind.to_string()));
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            return Err(at("stray line".into()));
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| at("no value".into()))?;
        let value = parse_value(value).ok_or_else(|| at("bad value".into()))?;
        let (name, labels) = match series.find('{') {
            Some(i) => (&series[..i], parse_labels(&series[i..]).map_err(at)?),
            None => (series, Vec::new()),
        };
        let (family, kind) = current
            .as_ref()
            .ok_or_else(|| at("sample before TYPE".into()))?;
        let ok_name = match kind.as_str() {
            "histogram" => [
                format!("{family}_bucket"),
                format!("{family}_sum"),
                format!("{family}_count"),
            ]
            .contains(&name.to_string()),
            _ => name == family,
        };
        if !ok_name {
            return Err(at(format!("sample outside its family {family}")));
        }
        if !seen.insert(series.to_string()) {
            return Err(at("sample repeated".into()));
        }
        if kind == "counter" && (value.is_nan() || value < 0.0) {
            return Err(at("negative counter".into()));
        }
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    check_histograms(&samples)?;
    Ok(samples)
}

/// Buckets of each histogram series ascend, are cumulative, end in `+Inf`
/// and that one equals `_count`.
fn check_histograms(samples: &[Sample]) -> Result<(), String> {
    let key = |s: &Sample| {
        let mut l: Vec<_> = s
            .labels
            .iter()
            .filter(|(k, _)| k != "le")
            .cloned()
            .collect();
        l.sort();
        format!("{:?}", l)
    };
    for s in samples.iter().filter(|s| s.name.ends_with("_count")) {
        let family = s.name.trim_end_matches("_count");
        let bucket = format!("{family}_bucket");
        let buckets: Vec<(f64, f64)> = samples
            .iter()
            .filter(|b| b.name == bucket && key(b) == key(s))
            .map(|b| {
                let le = b
                    .labels
                    .iter()
                    .find(|(k, _)| k == "le")
                    .map(|(_, v)| v.as_str());
                (le.and_then(parse_value).unwrap_or(f64::NAN), b.value)
            })
            .collect();
        if buckets.is_empty() {
            continue; // a counter named *_count? not ours
        }
        let ordered = buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
        let last = buckets[buckets.len() - 1];
        if !ordered || last.0 != f64::INFINITY || last.1 != s.value {
            return Err(format!(
                "histogram {family} {}: buckets {buckets:?}",
                key(s)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parser_takes_good_text_and_refuses_bad() {
        let good = "# HELP tt_a_total A.\n# TYPE tt_a_total counter\ntt_a_total{k=\"x\\\"y\"} 2\n\
                    # HELP tt_h_seconds H.\n# TYPE tt_h_seconds histogram\n\
                    tt_h_seconds_bucket{le=\"0.1\"} 1\ntt_h_seconds_bucket{le=\"+Inf\"} 2\n\
                    tt_h_seconds_sum 0.5\ntt_h_seconds_count 2\n";
        let s = check_format(good).unwrap();
        assert_eq!(s[0].labels, vec![("k".to_string(), "x\"y".to_string())]);
        for bad in [
            "tt_a 1\n",
            "# HELP tt_a A.\n# TYPE tt_a counter\ntt_a 1\n",
            "# HELP x_total A.\n# TYPE x_total counter\nx_total 1\n",
            "# HELP tt_a_total A.\n# TYPE tt_a_total counter\ntt_a_total 1\ntt_a_total 2\n",
            "# HELP tt_g G.\n# TYPE tt_g gauge\ntt_g{a=\"1} 1\n",
            "# HELP tt_h H.\n# TYPE tt_h histogram\ntt_h_bucket{le=\"+Inf\"} 2\ntt_h_sum 1\ntt_h_count 3\n",
        ] {
            assert!(check_format(bad).is_err(), "{bad}");
        }
    }
}
