//! One middleware for every request: `X-Process-Time`, Prometheus metrics
//! and the access log, kept cheap enough not to show in throughput.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::{Ready, ready};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use futures_util::future::LocalBoxFuture;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry,
};

/// The service's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    /// Request body bytes received by upload endpoints.
    pub(crate) bytes_received: IntCounter,
    uploads_in_flight: IntGauge,
    pool: compute::ComputePool,
}

impl Metrics {
    /// Registers the metrics; `pool`'s counters are read at each scrape.
    ///
    /// # Panics
    /// Never in practice: only on duplicate metric names, which are fixed here.
    #[allow(clippy::missing_panics_doc)]
    pub fn new(pool: compute::ComputePool) -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route, method and status"),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to the response head, by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
            &["route"],
        )
        .expect("valid metric");
        let bytes_received = IntCounter::new(
            "upload_bytes_received_total",
            "Request body bytes received by uploads",
        )
        .expect("valid metric");
        let uploads_in_flight =
            IntGauge::new("uploads_in_flight", "Files being received now").expect("valid metric");
        for metric in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(bytes_received.clone()),
            Box::new(uploads_in_flight.clone()),
        ] {
            registry.register(metric).expect("unique metric");
        }
        Self { registry, requests, latency, bytes_received, uploads_in_flight, pool }
    }

    /// Counts one file in flight until the guard drops.
    pub(crate) fn upload_in_flight(&self) -> InFlight {
        self.uploads_in_flight.inc();
        InFlight(self.uploads_in_flight.clone())
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding our own registry into a Vec cannot fail.
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out);
        let mut text = String::from_utf8_lossy(&out).into_owned();
        let s = self.pool.stats();
        text.push_str(&format!(
            "# HELP compute_jobs Compute jobs now, by state\n# TYPE compute_jobs gauge\n\
             compute_jobs{{state=\"running\"}} {}\ncompute_jobs{{state=\"queued\"}} {}\n\
             # HELP compute_jobs_total Compute jobs by outcome\n# TYPE compute_jobs_total counter\n\
             compute_jobs_total{{outcome=\"completed\"}} {}\ncompute_jobs_total{{outcome=\"rejected\"}} {}\n\
             compute_jobs_total{{outcome=\"cancelled\"}} {}\ncompute_jobs_total{{outcome=\"timed_out\"}} {}\n\
             compute_jobs_total{{outcome=\"panicked\"}} {}\n",
            s.running, s.queued, s.completed, s.rejected, s.cancelled, s.timed_out, s.panicked
        ));
        text
    }
}

/// Decrements `uploads_in_flight` when dropped.
pub(crate) struct InFlight(IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The middleware factory.
pub(crate) struct Telemetry(pub(crate) Arc<Metrics>);

impl<S, B> Transform<S, ServiceRequest> for Telemetry
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = TelemetryService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(TelemetryService {
            service: Rc::new(service),
            metrics: Arc::clone(&self.0),
            children: Rc::default(),
        }))
    }
}

pub(crate) struct TelemetryService<S> {
    service: Rc<S>,
    metrics: Arc<Metrics>,
    /// This worker's handles on the labelled series, so that a request costs
    /// two map lookups here instead of prometheus' hashing and locking.
    children: Rc<RefCell<Children>>,
}

/// route -> (method, status) -> (request counter, latency histogram)
type Children = HashMap<String, HashMap<(Method, u16), (IntCounter, Histogram)>>;

static PROCESS_TIME: HeaderName = HeaderName::from_static("x-process-time");

/// A duration shown as seconds with six decimals, formatted from whole
/// microseconds: `{:.6}` of an `f64` costs more than the rest of a request's
/// telemetry.
struct Seconds(std::time::Duration);

impl Seconds {
    /// Writes `12.000345` into `out`; returns the length.
    fn write_to(&self, out: &mut [u8; 32]) -> usize {
        let micros = self.0.as_micros();
        let mut cursor = std::io::Cursor::new(&mut out[..]);
        // 32 bytes hold any u64 number of seconds (20 digits), a dot and 6 digits.
        let _ = std::io::Write::write_fmt(
            &mut cursor,
            format_args!("{}.{:06}", micros / 1_000_000, micros % 1_000_000),
        );
        cursor.position() as usize
    }
}

impl<S, B> Service<ServiceRequest> for TelemetryService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let start = Instant::now();
        let metrics = Arc::clone(&self.metrics);
        let children = Rc::clone(&self.children);
        let fut = self.service.call(req);
        Box::pin(async move {
            let mut res = fut.await?;
            let elapsed = Seconds(start.elapsed());
            let mut text = [0u8; 32];
            let len = elapsed.write_to(&mut text);
            if let Ok(value) = HeaderValue::from_bytes(&text[..len]) {
                res.headers_mut().insert(PROCESS_TIME.clone(), value);
            }
            let req = res.request();
            let route = req.match_name().unwrap_or("unmatched");
            let status = res.status();
            {
                let mut children = children.borrow_mut();
                let by_route = match children.get_mut(route) {
                    Some(by_route) => by_route,
                    None => children.entry(route.to_owned()).or_default(),
                };
                let (count, latency) =
                    by_route.entry((req.method().clone(), status.as_u16())).or_insert_with(|| {
                        let labels = [route, req.method().as_str(), status.as_str()];
                        (
                            metrics.requests.with_label_values(&labels),
                            metrics.latency.with_label_values(&[route]),
                        )
                    });
                count.inc();
                latency.observe(elapsed.0.as_secs_f64());
            }
            if log::log_enabled!(target: "access", log::Level::Info) {
                let peer = req.peer_addr().map(|a| a.ip());
                let peer = peer.as_ref().map_or(&"-" as &dyn std::fmt::Display, |ip| ip);
                let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
                crate::log_writer::access(format_args!(
                    "{peer} \"{} {path} {:?}\" {} {}",
                    req.method().as_str(),
                    req.version(),
                    status.as_str(),
                    std::str::from_utf8(&text[..len]).unwrap_or("-"),
                ));
            }
            Ok(res)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Seconds;

    #[test]
    fn seconds_have_six_decimals() {
        for (d, text) in [
            (Duration::ZERO, "0.000000"),
            (Duration::from_nanos(1_999), "0.000001"),
            (Duration::from_micros(12_000_345), "12.000345"),
            (Duration::from_secs(u64::MAX), "18446744073709551615.000000"),
        ] {
            let mut out = [0u8; 32];
            let len = Seconds(d).write_to(&mut out);
            assert_eq!(std::str::from_utf8(&out[..len]), Ok(text));
        }
    }
}
