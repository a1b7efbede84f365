//! What every request handler shares, and how it is opened.

use std::sync::Arc;

use actix_web::web;

use crate::auth::Caller;
use crate::body::{Body, BodyLimits};
use crate::error::ApiError;
use crate::quota::{Charge, Reserved};
use crate::settings::Settings;
use crate::sleepers::Sleepers;
use crate::telemetry::Metrics;

/// What every request handler shares. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The file store.
    pub storage: upload_core::Storage,
    /// The compute pool.
    pub pool: compute::ComputePool,
    /// The validated settings.
    pub settings: Arc<Settings>,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    pub(crate) sleepers: Arc<Sleepers>,
    /// Bytes of uploads in flight, reserved against the quotas.
    pub(crate) reserved: Arc<Reserved>,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error("cannot open storage: {0}")]
    Storage(#[from] upload_core::Error),
    /// The compute pool could not be built.
    #[error("cannot start the compute pool: {0}")]
    Compute(#[from] compute::Error),
    /// The address could not be bound, or the server failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

impl AppState {
    /// Opens the store and starts the compute pool and the `/wait` threads.
    ///
    /// # Errors
    /// [`StartError::Storage`], [`StartError::Compute`], or [`StartError::Io`]
    /// if the `/wait` runtime cannot start.
    pub async fn new(settings: Settings) -> Result<Self, StartError> {
        let storage = upload_core::Storage::open(&settings.storage).await?;
        let c = &settings.compute;
        let pool = compute::ComputePool::builder()
            .threads(c.threads)
            .max_jobs(c.max_jobs)
            .priority(c.priority)
            .thread_name("fib")
            .build()?;
        let metrics = Arc::new(Metrics::new(pool.clone(), storage.clone()));
        let sleepers =
            Arc::new(Sleepers::new(settings.bench.max_waits, metrics.waits_sleeping.clone())?);
        let settings = Arc::new(settings);
        Ok(Self { storage, pool, settings, metrics, sleepers, reserved: Arc::default() })
    }

    /// The body of an upload by `caller`, bounded by the limits and charged to the quotas.
    pub(crate) fn body(&self, payload: web::Payload, caller: &Caller) -> Body<web::Payload> {
        let s = &self.settings;
        let limits = BodyLimits {
            max_bytes: s.limits.max_request_size,
            timeout: s.server.read_timeout,
            min_rate: s.server.min_body_rate,
        };
        Body::new(payload, limits, self.metrics.bytes_received.clone(), self.charge(caller))
    }

    /// A quota reservation for `caller`'s upload, if any quota is set.
    pub(crate) fn charge(&self, caller: &Caller) -> Option<Charge> {
        let limits = self.settings.limits;
        let quotas = limits.max_total_size.is_some() || limits.max_total_size_per_token.is_some();
        quotas.then(|| {
            let reserved = Arc::clone(&self.reserved);
            Charge::new(reserved, self.storage.clone(), limits, caller.owner())
        })
    }

    pub(crate) fn storage_error(&self, e: upload_core::Error) -> ApiError {
        ApiError::from_storage(e, &self.settings.limits)
    }
}
