//! Requests over persistent HTTP/1.1 connections, each sending its next
//! request as soon as the last response is read, as wrk does. A
//! general-purpose client (connection pool, URL parsing per request) caps
//! the rate well below what a fast server answers.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use indicatif::ProgressBar;

use crate::Error;
use crate::report::Recorder;

/// Where the requests go: the socket addresses, the Host header and the request target.
#[derive(Debug)]
pub(crate) struct Target {
    /// Resolved once, as wrk does: a thousand connections must not measure a
    /// thousand DNS lookups (in a compose network, half the rate of `/wait`).
    addrs: Vec<SocketAddr>,
    host: String,
    path: hyper::Uri,
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Arc<Self>, Error> {
        let bad = |why: String| Error::Client(format!("{url}: {why}"));
        let uri: hyper::Uri = url.parse().map_err(|e| bad(format!("{e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// URLs are supported".into()));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host".into()))?;
        let addr = format!("{}:{}", authority.host(), authority.port_u16().unwrap_or(80));
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|e| bad(format!("cannot resolve {}: {e}", authority.host())))?
            .collect();
        let path = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|e| bad(format!("{e}")))?;
        Ok(Arc::new(Self { addrs, host: authority.to_string(), path }))
    }
}

/// When connections stop sending.
#[derive(Clone, Debug)]
pub(crate) enum Until {
    /// At this time.
    Deadline(Instant),
    /// When this many requests, shared by all connections, have been sent.
    Requests(Arc<AtomicU64>),
}

impl Until {
    /// Whether to send one more request (and, for a budget, takes it).
    fn take(&self) -> bool {
        match self {
            Self::Deadline(end) => Instant::now() < *end,
            Self::Requests(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }
}

/// One connection's requests until `until`, reconnecting after a failure.
pub(crate) async fn connection(target: Arc<Target>, until: Until, bar: ProgressBar) -> Recorder {
    let mut rec = Recorder::default();
    'connect: while until.take() {
        let started = Instant::now();
        let stream = match tokio::net::TcpStream::connect(&target.addrs[..]).await {
            Ok(stream) => stream,
            Err(_) => {
                rec.record(started.elapsed(), Err("connect".into()));
                bar.inc(1);
                if let Until::Deadline(_) = until {
                    // Not a hot loop against a closed port; the run still ends on time.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let io = hyper_util::rt::TokioIo::new(stream);
        let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(io).await else {
            rec.record(started.elapsed(), Err("io".into()));
            bar.inc(1);
            continue;
        };
        tokio::spawn(conn);
        loop {
            let mut request =
                hyper::Request::get(target.path.clone()).header(hyper::header::HOST, &target.host);
            if let Some(value) = crate::authorization() {
                request = request.header(hyper::header::AUTHORIZATION, value.as_bytes());
            }
            let request = request
                .body(Empty::<bytes::Bytes>::new())
                .expect("a GET with a valid URI and Host is a valid request");
            let sent = Instant::now();
            let outcome = match sender.send_request(request).await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    response
                        .into_body()
                        .collect()
                        .await
                        .map(|_| status)
                        .map_err(|_| "io".to_owned())
                }
                Err(_) => Err("io".to_owned()),
            };
            let failed = outcome.is_err();
            rec.record(sent.elapsed(), outcome);
            bar.inc(1);
            if failed {
                continue 'connect;
            }
            if !until.take() {
                break 'connect;
            }
        }
    }
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_resolved_once_with_host_and_path_kept() {
        let t = Target::parse("http://127.0.0.1:8000/wait?duration=0.05").unwrap();
        assert_eq!(t.addrs, ["127.0.0.1:8000".parse::<SocketAddr>().unwrap()]);
        assert_eq!(
            (t.host.as_str(), t.path.to_string().as_str()),
            ("127.0.0.1:8000", "/wait?duration=0.05")
        );
        let t = Target::parse("http://[::1]/").unwrap();
        assert_eq!(t.addrs, ["[::1]:80".parse::<SocketAddr>().unwrap()]);
        let t = Target::parse("http://localhost:9/").unwrap();
        assert!(
            !t.addrs.is_empty() && t.addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 9)
        );
        assert!(Target::parse("https://127.0.0.1/").is_err());
    }
}
