//! The middleware: times each request, sets `X-Process-Time`, counts it
//! in its worker's series and writes its access line.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::{Ready, ready};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{HeaderName, HeaderValue};
use futures_util::future::LocalBoxFuture;

use super::access_log::write_access_line;
use super::metrics::{Labels, Metrics, RequestMetrics, Series, method_label};

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
            worker: Rc::new(Worker {
                requests: self.0.requests.clone(),
                series: RefCell::default(),
                access_log: log::log_enabled!(target: "access", log::Level::Info),
            }),
        }))
    }
}

pub(crate) struct TelemetryService<S> {
    service: Rc<S>,
    /// Per worker, and behind an `Rc`: a request touches nothing the other
    /// workers write, not even a reference count.
    worker: Rc<Worker>,
}

/// One worker's series: route -> (method, status) -> series.
type WorkerSeries = HashMap<String, HashMap<(&'static str, u16), Arc<Series>>>;

/// One worker's part of the telemetry.
struct Worker {
    /// Where a new series is registered.
    requests: RequestMetrics,
    series: RefCell<WorkerSeries>,
    /// Whether access lines are written (the log filter is fixed once logging starts).
    access_log: bool,
}

static PROCESS_TIME: HeaderName = HeaderName::from_static("x-process-time");

/// A duration shown as seconds with six decimals, formatted from whole
/// microseconds without `fmt`: `{:.6}` of an `f64` costs more than the rest
/// of a request's telemetry.
struct Seconds(Duration);

impl Seconds {
    /// Writes `12.000345` into `out`; returns the length.
    fn write_to(&self, out: &mut [u8; 32]) -> usize {
        let micros = self.0.as_micros();
        // 32 bytes hold any u64 number of seconds (20 digits), a dot and 6 digits.
        let mut digits = itoa::Buffer::new();
        let whole = digits.format(micros / 1_000_000).as_bytes();
        out[..whole.len()].copy_from_slice(whole);
        out[whole.len()] = b'.';
        let mut fraction = micros % 1_000_000;
        for digit in out[whole.len() + 1..whole.len() + 7].iter_mut().rev() {
            *digit = b'0' + (fraction % 10) as u8;
            fraction /= 10;
        }
        whole.len() + 7
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
        let worker = Rc::clone(&self.worker);
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
                let mut series = worker.series.borrow_mut();
                let by_route = match series.get_mut(route) {
                    Some(by_route) => by_route,
                    None => series.entry(route.to_owned()).or_default(),
                };
                let method = method_label(req.method());
                by_route
                    .entry((method, status.as_u16()))
                    .or_insert_with(|| {
                        worker.requests.series(Labels {
                            route: route.to_owned(),
                            method,
                            status: status.as_u16(),
                        })
                    })
                    .observe(elapsed.0);
            }
            if worker.access_log {
                crate::log_writer::access(|out| {
                    write_access_line(out, req, status.as_u16(), &text[..len]);
                });
            }
            Ok(res)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
