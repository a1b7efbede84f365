//! The Prometheus metrics: request counts and latencies kept per worker
//! and summed when scraped, the service's gauges, and the exposition.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix_web::http::Method;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{Encoder, IntCounter, IntGauge, Registry};

/// The service's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub(super) requests: RequestMetrics,
    /// Request body bytes received by upload endpoints.
    pub(crate) bytes_received: IntCounter,
    uploads_in_flight: IntGauge,
    /// `/wait` requests asleep now.
    pub(crate) waits_sleeping: IntGauge,
    pool: compute::ComputePool,
    storage: upload_core::Storage,
}

impl Metrics {
    /// Registers the metrics; `pool`'s and `storage`'s counters are read at each scrape.
    ///
    /// # Panics
    /// Never in practice: only on duplicate metric names, which are fixed here.
    #[allow(clippy::missing_panics_doc)]
    pub fn new(pool: compute::ComputePool, storage: upload_core::Storage) -> Self {
        let registry = Registry::new();
        let requests = RequestMetrics::default();
        let bytes_received = IntCounter::new(
            "upload_bytes_received_total",
            "Request body bytes received by uploads",
        )
        .expect("valid metric");
        let uploads_in_flight =
            IntGauge::new("uploads_in_flight", "Files being received now").expect("valid metric");
        let waits_sleeping = IntGauge::new("bench_waits_sleeping", "/wait requests asleep now")
            .expect("valid metric");
        for metric in [
            Box::new(requests.clone()) as Box<dyn Collector>,
            Box::new(bytes_received.clone()),
            Box::new(uploads_in_flight.clone()),
            Box::new(waits_sleeping.clone()),
        ] {
            registry.register(metric).expect("unique metric");
        }
        Self {
            registry,
            requests,
            bytes_received,
            uploads_in_flight,
            waits_sleeping,
            pool,
            storage,
        }
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
        text.push_str(&format!(
            "# HELP storage_damaged_objects Stored objects found damaged (their ids are in the log)\n\
             # TYPE storage_damaged_objects gauge\nstorage_damaged_objects {}\n\
             # HELP uploads_expired_total Resumable uploads removed once expired\n\
             # TYPE uploads_expired_total counter\nuploads_expired_total {}\n\
             # HELP files_expired_total Stored files removed once their lifetime ended\n\
             # TYPE files_expired_total counter\nfiles_expired_total {}\n",
            self.storage.damaged_objects(),
            self.storage.expired_uploads_removed(),
            self.storage.expired_files_removed()
        ));
        text
    }
}

/// Upper bounds (seconds) of the latency histogram's buckets.
const LATENCY_BOUNDS: [f64; 15] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// `http_requests_total` and `http_request_duration_seconds`, kept per
/// worker thread and summed when scraped. Shared series cost a request
/// several atomic operations on cache lines that both cores write, a
/// measurable share of the cheapest endpoints.
#[derive(Clone, Debug)]
pub(super) struct RequestMetrics(Arc<AllSeries>);

#[derive(Debug)]
struct AllSeries {
    descs: [Desc; 2],
    series: Mutex<Vec<(Labels, Arc<Series>)>>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Labels {
    pub(super) route: String,
    pub(super) method: &'static str,
    pub(super) status: u16,
}

/// One worker's requests with the same labels. Only that worker's thread
/// writes it, so updates are plain loads and stores, no locked instruction.
#[derive(Debug, Default)]
pub(super) struct Series {
    /// Requests by latency bucket; the last one is above every bound.
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Series {
    /// Counts one request; called only by the thread that owns the series.
    pub(super) fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let bucket = LATENCY_BOUNDS.partition_point(|&bound| bound < secs);
        let add = |counter: &AtomicU64, n: u64| {
            counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
        };
        add(&self.buckets[bucket], 1);
        add(&self.sum_nanos, u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }
}

impl Default for RequestMetrics {
    fn default() -> Self {
        let desc = |name: &str, help: &str, labels: &[&str]| {
            let labels = labels.iter().map(ToString::to_string).collect();
            Desc::new(name.into(), help.into(), labels, HashMap::new()).expect("valid metric")
        };
        Self(Arc::new(AllSeries {
            descs: [
                desc(
                    "http_requests_total",
                    "HTTP requests by route, method and status",
                    &["route", "method", "status"],
                ),
                desc(
                    "http_request_duration_seconds",
                    "Time to the response head, by route",
                    &["route"],
                ),
            ],
            series: Mutex::default(),
        }))
    }
}

impl RequestMetrics {
    /// A new series for the calling worker.
    pub(super) fn series(&self, labels: Labels) -> Arc<Series> {
        let series = Arc::new(Series::default());
        let mut all = self.0.series.lock().unwrap_or_else(PoisonError::into_inner);
        all.push((labels, Arc::clone(&series)));
        series
    }
}

impl Collector for RequestMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.0.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // Sum the workers' series: by all labels for the counter, by route for the histogram.
        let mut counts: BTreeMap<&Labels, u64> = BTreeMap::new();
        let mut latency: BTreeMap<&str, ([u64; LATENCY_BOUNDS.len() + 1], u64)> = BTreeMap::new();
        let all = self.0.series.lock().unwrap_or_else(PoisonError::into_inner);
        for (labels, series) in all.iter() {
            let (buckets, sum) = latency.entry(&labels.route).or_default();
            let mut total = 0;
            for (bucket, counter) in buckets.iter_mut().zip(&series.buckets) {
                let n = counter.load(Ordering::Relaxed);
                *bucket += n;
                total += n;
            }
            *sum += series.sum_nanos.load(Ordering::Relaxed);
            *counts.entry(labels).or_default() += total;
        }
        let label = |name: &str, value: String| {
            let mut pair = proto::LabelPair::default();
            pair.set_name(name.into());
            pair.set_value(value);
            pair
        };
        let family = |desc: &Desc, kind: MetricType, metrics: Vec<proto::Metric>| {
            let mut family = MetricFamily::default();
            family.set_name(desc.fq_name.clone());
            family.set_help(desc.help.clone());
            family.set_field_type(kind);
            family.set_metric(metrics);
            family
        };
        let requests = counts
            .into_iter()
            .map(|(labels, n)| {
                let mut counter = proto::Counter::default();
                counter.set_value(n as f64);
                let mut metric = proto::Metric::from_label(vec![
                    label("method", labels.method.to_owned()),
                    label("route", labels.route.clone()),
                    label("status", labels.status.to_string()),
                ]);
                metric.set_counter(counter);
                metric
            })
            .collect();
        let histograms = latency
            .into_iter()
            .map(|(route, (buckets, sum_nanos))| {
                let count = buckets.iter().sum();
                let mut cumulative = 0;
                let buckets = LATENCY_BOUNDS
                    .iter()
                    .zip(buckets)
                    .map(|(&bound, n)| {
                        cumulative += n;
                        let mut bucket = proto::Bucket::default();
                        bucket.set_upper_bound(bound);
                        bucket.set_cumulative_count(cumulative);
                        bucket
                    })
                    .collect();
                let mut histogram = proto::Histogram::default();
                histogram.set_sample_count(count);
                histogram.set_sample_sum(Duration::from_nanos(sum_nanos).as_secs_f64());
                histogram.set_bucket(buckets);
                let mut metric = proto::Metric::from_label(vec![label("route", route.into())]);
                metric.set_histogram(histogram);
                metric
            })
            .collect();
        let [requests_desc, latency_desc] = &self.0.descs;
        vec![
            family(requests_desc, MetricType::COUNTER, requests),
            family(latency_desc, MetricType::HISTOGRAM, histograms),
        ]
    }
}

/// Decrements `uploads_in_flight` when dropped.
pub(crate) struct InFlight(IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The `method` label: the standard methods by name, any other as `other`, so
/// a client choosing methods cannot grow the series (and memory) without bound.
/// Every other label is bounded too: routes are the app's resource names or
/// `unmatched`, statuses are the ones the service answers with.
pub(super) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_of_every_worker_are_summed_when_scraped() {
        let metrics = RequestMetrics::default();
        let labels = |route: &str, status| Labels { route: route.into(), method: "GET", status };
        // Two workers' series for the same labels, as each worker makes its own.
        let (a, b) = (metrics.series(labels("/x", 200)), metrics.series(labels("/x", 200)));
        let other = metrics.series(labels("/x", 404));
        a.observe(Duration::from_micros(100)); // le 0.0005
        b.observe(Duration::from_micros(500)); // le 0.0005: bounds are inclusive
        b.observe(Duration::from_millis(20)); // le 0.025
        other.observe(Duration::from_secs(60)); // above every bound
        let registry = Registry::new();
        registry.register(Box::new(metrics)).unwrap();
        let mut out = Vec::new();
        prometheus::TextEncoder::new().encode(&registry.gather(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        for line in [
            "http_requests_total{method=\"GET\",route=\"/x\",status=\"200\"} 3",
            "http_requests_total{method=\"GET\",route=\"/x\",status=\"404\"} 1",
            "http_request_duration_seconds_bucket{route=\"/x\",le=\"0.0005\"} 2",
            "http_request_duration_seconds_bucket{route=\"/x\",le=\"0.01\"} 2",
            "http_request_duration_seconds_bucket{route=\"/x\",le=\"0.025\"} 3",
            "http_request_duration_seconds_bucket{route=\"/x\",le=\"30\"} 3",
            "http_request_duration_seconds_bucket{route=\"/x\",le=\"+Inf\"} 4",
            "http_request_duration_seconds_sum{route=\"/x\"} 60.0206",
            "http_request_duration_seconds_count{route=\"/x\"} 4",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn methods_outside_the_standard_ones_are_one_label() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for odd in ["M123", "get", "BREW"] {
            assert_eq!(method_label(&Method::from_bytes(odd.as_bytes()).unwrap()), "other");
        }
    }
}
