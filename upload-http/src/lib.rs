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

mod auth;
mod body;
mod client_noise;
mod cors;
mod error;
mod log_writer;
mod multipart;
mod openapi;
mod probe;
mod quota;
mod routes;
mod serve;
mod settings;
mod sleepers;
mod state;
mod telemetry;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, web};

pub use auth::{NewToken, Scopes, TokenDigest};
pub use client_noise::ClientNoise;
pub use error::ApiError;
pub use log_writer::{BackgroundWriter, BackgroundWriterGuard, write_access_log_to};
pub use probe::probe;
pub use serve::server;
pub use settings::{
    AuthSettings, BenchSettings, ComputeSettings, FileSettings, Limits, Nice, RawAuth, RawBench,
    RawCompute, RawLimits, RawServer, RawSettings, RawStorage, RawToken, RawUploads,
    ServerSettings, Settings, SettingsError, Size, Span, TokenEntry, UploadSettings,
};
pub use state::{AppState, StartError};
pub use telemetry::Metrics;

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
    let resumable = state.settings.uploads.resumable;
    let telemetry = telemetry::Telemetry(Arc::clone(&state.metrics));
    let cors = cors::cors(&state.settings.server.cors_origins);
    let cors = actix_web::middleware::Condition::new(cors.is_some(), cors.unwrap_or_default());
    let bad_query = |e: actix_web::error::QueryPayloadError, _: &actix_web::HttpRequest| {
        ApiError::bad_request("invalid_query", e.to_string()).into()
    };
    // The middleware wraps the app itself, not a scope: a scope is one more
    // router every request goes through, a measurable cost on cheap endpoints.
    App::new()
        .app_data(web::Data::new(state))
        .app_data(web::QueryConfig::default().error_handler(bad_query))
        // CORS inside telemetry: preflights are timed and counted too.
        .wrap(cors)
        .wrap(telemetry)
        // Static paths first: actix tries routes in order, and a pattern
        // such as /files/{name} is matched with a regex.
        .service(resource("/wait").route(web::get().to(routes::bench::wait)))
        .service(resource("/asyncwait").route(web::get().to(routes::bench::asyncwait)))
        .service(resource("/healthz").route(web::get().to(routes::ops::healthz)))
        .service(resource("/readyz").route(web::get().to(routes::ops::readyz)))
        .service(resource("/metrics").route(web::get().to(routes::ops::metrics)))
        .service(resource("/openapi.json").route(web::get().to(openapi::serve)))
        .service(resource("/fib/{n}").route(web::get().to(routes::bench::fib)))
        .service(
            resource("/files")
                .route(web::post().to(routes::files::upload_multipart))
                .route(web::get().to(routes::files::list)),
        )
        .service(resource("/files/{id}/links").route(web::post().to(routes::links::create)))
        .service(
            resource("/files/{name}")
                .route(web::get().to(routes::files::download))
                .route(web::head().to(routes::files::download))
                .route(web::put().to(routes::files::upload_raw))
                .route(web::delete().to(routes::files::delete)),
        )
        .configure(|app| {
            // Off (`uploads.resumable = false`): /uploads/ is no route, and the page falls back.
            if resumable {
                tus_routes(app);
            }
        })
        .service(
            web::resource(["/ui", "/ui/"])
                .name("/ui/")
                .route(web::get().to(routes::ui::page))
                .route(web::head().to(routes::ui::page))
                .default_service(web::to(routes::method_not_allowed)),
        )
        .service(
            resource("/ui/{file}")
                .route(web::get().to(routes::ui::file))
                .route(web::head().to(routes::ui::file)),
        )
        .service(
            resource("/")
                .route(web::post().to(routes::files::upload_multipart))
                .route(web::get().to(routes::ui::root))
                .route(web::head().to(routes::ui::root)),
        )
        .default_service(web::to(routes::no_route))
}

/// A resource named by its path (the metrics label, read without
/// allocating) that answers other methods with 405.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).name(path).default_service(web::to(routes::method_not_allowed))
}

/// The tus endpoints (`routes::tus`).
fn tus_routes(app: &mut web::ServiceConfig) {
    app.service(
        web::resource(["/uploads", "/uploads/"])
            .name("/uploads/")
            .route(web::method(actix_web::http::Method::OPTIONS).to(routes::tus::options))
            .route(web::post().to(routes::tus::create))
            .default_service(web::to(routes::method_not_allowed)),
    )
    .service(
        resource("/uploads/{id}")
            .route(web::head().to(routes::tus::head))
            .route(web::patch().to(routes::tus::patch))
            .route(web::delete().to(routes::tus::delete))
            .route(web::post().to(routes::tus::overridden))
            .route(web::method(actix_web::http::Method::OPTIONS).to(routes::tus::options)),
    );
}

/// Opens everything `settings` describes and serves until stopped, with
/// the store's maintenance ([`upload_core::Storage::maintain`]) alongside.
///
/// # Errors
/// See [`StartError`].
pub async fn run(settings: Settings) -> Result<(), StartError> {
    match serve::raise_open_files_limit() {
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
    if state.settings.auth.tokens.is_none() {
        if state.settings.server.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
            log::info!(
                "no tokens are configured: everyone who reaches this address may do everything"
            );
        } else {
            log::warn!(
                "auth.mode = \"open\": everyone who reaches this service may read and delete every file"
            );
        }
    }
    let (uploads_every, files_every) =
        (state.settings.uploads.sweep_interval, state.settings.files.sweep_interval);
    actix_web::rt::spawn(state.storage.clone().maintain(uploads_every, files_every));
    let storage = state.storage.clone();
    server(state, listener)?.await?;
    // Requests the shutdown cut off roll back their stored parts in the background.
    storage.settle().await;
    log::info!("stopped");
    Ok(())
}
