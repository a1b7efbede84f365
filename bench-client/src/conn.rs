//! Requests over persistent HTTP/1.1 connections, each sending its next
//! request as soon as the last response is read, as wrk does. A
//! general-purpose client (connection pool, URL parsing per request) caps
//! the rate well below what a fast server answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use indicatif::ProgressBar;

use crate::Error;
use crate::report::Recorder;

/// Where the requests go: the socket address, the Host header and the request target.
#[derive(Debug)]
pub(crate) struct Target {
    addr: String,
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
        let path = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|e| bad(format!("{e}")))?;
        Ok(Arc::new(Self { addr, host: authority.to_string(), path }))
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
        let stream = match tokio::net::TcpStream::connect(&target.addr).await {
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
            let request = hyper::Request::get(target.path.clone())
                .header(hyper::header::HOST, &target.host)
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
