//! The HTTP server around [`crate::app`]: workers, connection bounds,
//! timeouts, graceful shutdown, and the answer to `Expect: 100-continue`.

use std::net::TcpListener;
use std::time::Duration;

use actix_http::{HttpMessage as _, HttpService, Request};
use actix_service::{fn_service, map_config};
use actix_web::dev::{AppConfig, Server};

use crate::AppState;

/// The HTTP server on `listener`, not yet awaited. It stops on SIGTERM or
/// SIGINT, letting in-flight requests finish for up to
/// `server.shutdown_timeout`.
///
/// Built from actix's parts rather than `actix_web::HttpServer`, which has
/// no hook for `Expect: 100-continue`: an upload announcing more than its
/// limit gets its 413 before the client sends the body, not `100 Continue`.
///
/// # Errors
/// If the listener cannot be used.
pub fn server(state: AppState, listener: TcpListener) -> std::io::Result<Server> {
    let s = state.settings.server.clone();
    let addr = listener.local_addr()?;
    let builder = actix_server::Server::build();
    let shutdown = builder.graceful_shutdown_signal();
    Ok(builder
        .workers(s.workers)
        .max_concurrent_connections(s.max_connections.div_ceil(s.workers))
        .shutdown_timeout(s.shutdown_timeout.as_secs())
        .listen("upload-http", listener, move || {
            let shutdown = shutdown.clone();
            let limits = state.settings.limits;
            let expect = fn_service(move |req: Request| {
                let refused = crate::routes::files::check_upload_length(
                    req.method(),
                    req.path(),
                    req.headers(),
                    &limits,
                );
                async move { refused.map(|()| req).map_err(actix_web::Error::from) }
            });
            HttpService::build()
                .graceful_shutdown_signal(move || {
                    let shutdown = shutdown.clone();
                    async move { shutdown.notified().await }
                })
                .keep_alive(actix_http::KeepAlive::default())
                .client_request_timeout(s.read_timeout.max(Duration::from_secs(5)))
                .client_disconnect_timeout(Duration::from_secs(1))
                // A client that closes its side is gone: drop its handler (cancelling
                // its compute job or upload) rather than finish work nobody will read.
                .h1_allow_half_closed(false)
                .local_addr(addr)
                .expect(expect)
                .finish(map_config(crate::app(state.clone()), |()| AppConfig::default()))
                .tcp()
        })?
        .run())
}

/// Raises the soft limit of open files to the hard one: each connection
/// that uploads or downloads holds a socket and a file, and the usual soft
/// limit (1024) would turn a few hundred slow clients into EMFILE for all.
pub(crate) fn raise_open_files_limit() -> std::io::Result<u64> {
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
