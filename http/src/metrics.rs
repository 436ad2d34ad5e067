//! `GET /metrics` on the server's own loop: the Prometheus scrape port every
//! server opens when its conf sets `MetricsListenIP` and `MetricsPort`
//! (both not in the C++; absent, no port is opened, so the C++ conf files
//! keep working unchanged).
//!
//! A scrape is answered at once on the loop thread by the server's
//! [`RenderFn`] (the reactor's own figures, [`Reactor::write_metrics`],
//! then the server's): it reads counters the loop owns and atomics the
//! workers bump, so it never waits on a lock or another thread. The answer
//! is written through the out-buffer like any other, so a slow scraper
//! never blocks the loop either.

use crate::conn::{HttpConn, HttpHandler, Verdict};
use crate::request::{Limits, Request};
use crate::response::Response;
use base::config::{ConfigError, ConfigFileReader};
use netlib::metrics::{Exposition, CONTENT_TYPE};
use netlib::{Ctx, ImConn, NetError, Reactor};
use std::net::SocketAddr;
use thiserror::Error;

/// The conf key naming the address(es) of the metrics port (`;` list).
pub const LISTEN_IP_KEY: &str = "MetricsListenIP";
/// The conf key naming the metrics port.
pub const PORT_KEY: &str = "MetricsPort";

/// Writes one server's metrics: what [`GET /metrics`](self) answers.
pub type RenderFn<S> = fn(&Reactor<S>, &S, &mut Exposition);

/// Why the metrics port could not be opened.
#[derive(Debug, Error)]
pub enum MetricsError {
    /// One of the two keys is set without the other, or is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The address could not be bound.
    #[error("cannot listen for metrics scrapes: {0}")]
    Listen(#[from] NetError),
}

/// Where the metrics port listens, from the conf: `None` when neither key
/// is set (metrics off, as the C++), an error naming the key when only one
/// is or the port is not a number.
pub fn metrics_addr(conf: &ConfigFileReader) -> Result<Option<(String, u16)>, ConfigError> {
    match (conf.get(LISTEN_IP_KEY), conf.get(PORT_KEY)) {
        (None, None) => Ok(None),
        (Some(ip), Some(_)) => Ok(Some((ip.to_string(), conf.require_parse(PORT_KEY)?))),
        (None, Some(_)) => Err(ConfigError::Missing {
            key: LISTEN_IP_KEY.into(),
        }),
        (Some(_), None) => Err(ConfigError::Missing {
            key: PORT_KEY.into(),
        }),
    }
}

/// Opens the metrics port the conf names, if any, serving `render`; logs
/// and returns the addresses bound (none when metrics are off).
pub fn listen_metrics<S: 'static>(
    net: &mut Reactor<S>,
    conf: &ConfigFileReader,
    render: RenderFn<S>,
) -> Result<Vec<SocketAddr>, MetricsError> {
    let Some((ip, port)) = metrics_addr(conf)? else {
        return Ok(Vec::new());
    };
    let bound = net.listen(&ip, port, move |_, _| {
        Box::new(HttpConn::for_handler(MetricsHttp { render })) as Box<dyn ImConn<S>>
    })?;
    for addr in &bound {
        log::info!("metrics: GET http://{addr}/metrics");
    }
    Ok(bound)
}

/// The answer to one request on the metrics port, a pure function of the
/// request: `render` is called only for `GET /metrics` (or `HEAD`);
/// another path is 404, another method 405.
pub fn answer(request: &Request, render: impl FnOnce() -> String) -> Response {
    if request.path() != "/metrics" {
        return Response::new(404).with_body("text/plain;charset=utf-8", "try /metrics\n");
    }
    match request.method.as_str() {
        "GET" => Response::new(200).with_body(CONTENT_TYPE, render()),
        "HEAD" => Response::new(200),
        _ => Response::new(405).with_header("Allow", "GET"),
    }
}

/// One connection on the metrics port.
pub struct MetricsHttp<S> {
    render: RenderFn<S>,
}

impl<S: 'static> HttpHandler<S> for MetricsHttp<S> {
    fn limits(&self) -> Limits {
        Limits {
            head: 8 * 1024,
            body: 0,
        }
    }

    fn idle_timeout_ms(&self) -> u64 {
        10_000
    }

    fn on_request(&mut self, cx: &mut Ctx<'_, S>, request: Request) -> Verdict {
        let render = self.render;
        Verdict::Reply(answer(&request, || {
            let mut w = Exposition::new();
            render(cx.net, cx.state, &mut w);
            w.into_text()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, target: &str) -> Request {
        Request {
            method: method.into(),
            target: target.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    #[test]
    fn only_get_metrics_renders() {
        let r = answer(&req("GET", "/metrics?x=1"), || "tt_a 1\n".into());
        assert_eq!((r.status, r.body.as_slice()), (200, &b"tt_a 1\n"[..]));
        assert_eq!(r.content_type.as_deref(), Some(CONTENT_TYPE));
        let never = || -> String { panic!("rendered") };
        assert_eq!(answer(&req("GET", "/"), never).status, 404);
        assert_eq!(answer(&req("GET", "/metricsx"), never).status, 404);
        assert_eq!(answer(&req("POST", "/metrics"), never).status, 405);
        assert_eq!(answer(&req("HEAD", "/metrics"), never).status, 200);
    }

    #[test]
    fn both_keys_or_neither() {
        let c = |t: &str| metrics_addr(&ConfigFileReader::parse(t));
        assert_eq!(c("ListenIP=1\n").unwrap(), None);
        assert_eq!(
            c("MetricsListenIP=127.0.0.1\nMetricsPort=9101\n").unwrap(),
            Some(("127.0.0.1".into(), 9101))
        );
        let e = c("MetricsPort=9101\n").unwrap_err().to_string();
        assert!(e.contains("MetricsListenIP"), "{e}");
        let e = c("MetricsListenIP=127.0.0.1\n").unwrap_err().to_string();
        assert!(e.contains("MetricsPort"), "{e}");
        let e = c("MetricsListenIP=127.0.0.1\nMetricsPort=x\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("MetricsPort"), "{e}");
    }
}
