//! One middleware for every request: `X-Process-Time`, Prometheus metrics
//! and the access log, kept cheap enough not to show in throughput.

mod access_log;
mod metrics;
mod middleware;

pub use metrics::Metrics;
pub(crate) use middleware::Telemetry;
