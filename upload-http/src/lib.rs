//! The fastupload HTTP service: streaming uploads into [`upload_core`],
//! CPU work on a [`compute`] pool, and the endpoints of the original
//! FastAPI benchmark.
//!
//! `main` loads [`Settings`] and calls [`run`]; tests build the same app
//! with [`app`], so they exercise exactly what ships.
//!
//! ```no_run
//! # async fn start() -> Result<(), Box<dyn std::error::Error>> {
//! let settings = upload_http::RawSettings::load(None, std::env::vars())?.validate()?;
//! upload_http::run(settings).await?;
//! # Ok(())
//! # }
//! ```

mod body;
mod client_noise;
mod error;
mod files;
mod log_writer;
mod misc;
mod serve;
mod settings;
mod sleepers;
mod telemetry;

use std::net::{TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpResponse, web};

pub use client_noise::ClientNoise;
pub use error::ApiError;
pub use log_writer::{BackgroundWriter, BackgroundWriterGuard, write_access_log_to};
pub use serve::server;
pub use settings::{
    BenchSettings, ComputeSettings, Limits, RawBench, RawCompute, RawLimits, RawServer,
    RawSettings, ServerSettings, Settings, SettingsError, Size, Span,
};
pub use telemetry::Metrics;

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
    sleepers: Arc<sleepers::Sleepers>,
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
    /// Opens the store and starts the compute pool.
    ///
    /// # Errors
    /// [`StartError::Storage`] or [`StartError::Compute`].
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
        let sleepers = Arc::new(sleepers::Sleepers::new(
            settings.bench.max_waits,
            metrics.waits_sleeping.clone(),
        )?);
        Ok(Self { storage, pool, settings: Arc::new(settings), metrics, sleepers })
    }

    fn body(&self, payload: web::Payload) -> body::Body<web::Payload> {
        let s = &self.settings;
        let limits = body::BodyLimits {
            max_bytes: s.limits.max_request_size,
            timeout: s.server.read_timeout,
            min_rate: s.server.min_body_rate,
        };
        body::Body::new(payload, limits, self.metrics.bytes_received.clone())
    }

    fn storage_error(&self, e: upload_core::Error) -> ApiError {
        ApiError::from_storage(e, &self.settings.limits)
    }
}

/// The whole application: every route, the shared state and the telemetry
/// middleware. [`server`] serves it; tests build exactly the same with
/// `actix_web::test::init_service(upload_http::app(state))`.
pub fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let telemetry = telemetry::Telemetry(Arc::clone(&state.metrics));
    let bad_query = |e: actix_web::error::QueryPayloadError, _: &actix_web::HttpRequest| {
        ApiError::bad_request("invalid_query", e.to_string()).into()
    };
    // Each resource is named by its path: the metrics label, read without allocating.
    let resource = |path: &str| {
        web::resource(path).name(path).default_service(web::to(misc::method_not_allowed))
    };
    let service_info =
        || async { HttpResponse::Ok().json(serde_json::json!({"service": "fastupload"})) };
    // The middleware wraps the app itself, not a scope: a scope is one more
    // router every request goes through, a measurable cost on cheap endpoints.
    App::new()
        .app_data(web::Data::new(state))
        .app_data(web::QueryConfig::default().error_handler(bad_query))
        .wrap(telemetry)
        // Static paths first: actix tries routes in order, and a pattern
        // such as /files/{name} is matched with a regex.
        .service(resource("/wait").route(web::get().to(misc::wait)))
        .service(resource("/asyncwait").route(web::get().to(misc::asyncwait)))
        .service(resource("/healthz").route(web::get().to(misc::healthz)))
        .service(resource("/readyz").route(web::get().to(misc::readyz)))
        .service(resource("/metrics").route(web::get().to(misc::metrics)))
        .service(resource("/fib/{n}").route(web::get().to(misc::fib)))
        .service(
            resource("/files")
                .route(web::post().to(files::upload_multipart))
                .route(web::get().to(files::list)),
        )
        .service(
            resource("/files/{name}")
                .route(web::get().to(files::download))
                .route(web::head().to(files::download))
                .route(web::put().to(files::upload_raw))
                .route(web::delete().to(files::delete)),
        )
        .service(
            resource("/")
                .route(web::post().to(files::upload_multipart))
                .route(web::get().to(service_info)),
        )
        .default_service(web::to(misc::no_route))
}

/// Asks the service described by `server` for `path` (e.g. `/readyz`) and
/// returns the response's status code: what a container health check runs,
/// with no tool but this binary. A wildcard host (`0.0.0.0`, `::`) is
/// reached on loopback.
///
/// # Errors
/// If there is no answer within `timeout` or the answer is not HTTP.
pub fn probe(server: &ServerSettings, path: &str, timeout: Duration) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    let host = match server.host.as_str() {
        "0.0.0.0" | "" => "127.0.0.1",
        "::" | "[::]" => "::1",
        host => host,
    };
    let addr = (host, server.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{host} has no address")))?;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    // "HTTP/1.1 200"
    std::str::from_utf8(&head[9..12])
        .ok()
        .filter(|_| head.starts_with(b"HTTP/1."))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP response"))
}

/// How often a shared store is swept of what crashed replicas left, and the
/// age past which no live upload can have left it.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);
const LEFTOVER_AGE: Duration = Duration::from_secs(24 * 3600);

/// Opens everything `settings` describes and serves until stopped. Every
/// hour, it also removes from a shared store what crashed replicas left
/// (uploads older than a day that never completed).
///
/// # Errors
/// See [`StartError`].
pub async fn run(settings: Settings) -> Result<(), StartError> {
    match raise_open_files_limit() {
        Ok(limit) => log::info!("open files limit: {limit}"),
        Err(e) => log::warn!("could not raise the open files limit: {e}"),
    }
    let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))?;
    let state = AppState::new(settings).await?;
    log::info!(
        "listening on http://{} ({} workers, storage {:?})",
        listener.local_addr()?,
        state.settings.server.workers,
        state.settings.storage
    );
    let storage = state.storage.clone();
    actix_web::rt::spawn(async move {
        loop {
            match storage.sweep(LEFTOVER_AGE).await {
                Ok(0) => {}
                Ok(n) => log::info!("removed {n} leftovers of interrupted uploads"),
                Err(e) => log::warn!("could not sweep leftovers of interrupted uploads: {e}"),
            }
            actix_web::rt::time::sleep(SWEEP_EVERY).await;
        }
    });
    let storage = state.storage.clone();
    server(state, listener)?.await?;
    // Requests the shutdown cut off roll back their stored parts in the background.
    storage.settle().await;
    log::info!("stopped");
    Ok(())
}

/// Raises the soft limit of open files to the hard one: each connection
/// that uploads or downloads holds a socket and a file, and the usual soft
/// limit (1024) would turn a few hundred slow clients into EMFILE for all.
fn raise_open_files_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(limit.rlim_cur)
}
