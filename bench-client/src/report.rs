//! Latency recording and the reports every run returns.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency percentiles, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// Outcomes of a batch of requests: successes, failures by status, latencies.
#[derive(Debug)]
pub(crate) struct Recorder {
    histogram: Histogram<u64>,
    pub(crate) ok: u64,
    pub(crate) errors: BTreeMap<String, u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        // Microseconds, 1 µs to 1 h, 3 significant digits.
        let histogram =
            Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
        Self { histogram, ok: 0, errors: BTreeMap::new() }
    }
}

impl Recorder {
    /// Records one request: `Ok(status)` when a response arrived, `Err(kind)` when none did.
    pub(crate) fn record(&mut self, latency: Duration, outcome: Result<u16, String>) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
        let _ = self.histogram.record(micros.min(self.histogram.high()));
        match outcome {
            Ok(status) if (200..300).contains(&status) => self.ok += 1,
            Ok(status) => *self.errors.entry(status.to_string()).or_default() += 1,
            Err(kind) => *self.errors.entry(kind).or_default() += 1,
        }
    }

    pub(crate) fn merge(&mut self, other: &Recorder) {
        let _ = self.histogram.add(&other.histogram);
        self.ok += other.ok;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }

    pub(crate) fn latency(&self) -> Latency {
        let ms = |q: f64| self.histogram.value_at_quantile(q) as f64 / 1000.0;
        if self.histogram.is_empty() {
            return Latency::default();
        }
        Latency {
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            max_ms: self.histogram.max() as f64 / 1000.0,
        }
    }

    pub(crate) fn failed(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// What a batch of requests did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RequestReport {
    /// Target URL.
    pub url: String,
    /// Client style or load model.
    pub mode: String,
    /// Requests sent.
    pub requests: u64,
    /// 2xx responses.
    pub ok: u64,
    /// Failures: HTTP status, or `connect`, `timeout`, `io` when no response came.
    pub errors: BTreeMap<String, u64>,
    /// Wall time of the batch, seconds.
    pub elapsed_s: f64,
    /// Requests per second (all requests, failed ones included).
    pub rps: f64,
    /// Latency percentiles.
    pub latency: Latency,
}

impl RequestReport {
    pub(crate) fn new(url: &str, mode: &str, rec: &Recorder, elapsed: Duration) -> Self {
        let requests = rec.ok + rec.failed();
        let secs = elapsed.as_secs_f64();
        Self {
            url: url.to_owned(),
            mode: mode.to_owned(),
            requests,
            ok: rec.ok,
            errors: rec.errors.clone(),
            elapsed_s: secs,
            rps: if secs > 0.0 { requests as f64 / secs } else { 0.0 },
            latency: rec.latency(),
        }
    }

    /// The original client's line, then percentiles and errors.
    pub fn render(&self) -> String {
        let l = &self.latency;
        let mut out = format!(
            "{:.2} reqs / sec | {} reqs | {} | {}\n",
            self.rps, self.requests, self.url, self.mode
        );
        out += &format!(
            "  latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}\n",
            l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
        );
        if !self.errors.is_empty() {
            let errors: Vec<String> =
                self.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            out += &format!("  errors: {}\n", errors.join(", "));
        }
        out
    }
}

/// Classifies a request that got no response.
pub(crate) fn failure_kind(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "connect".into()
    } else if e.is_timeout() {
        "timeout".into()
    } else {
        "io".into()
    }
}
