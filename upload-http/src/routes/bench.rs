//! The endpoints of the original benchmark: `/wait` (a blocking sleep),
//! `/asyncwait` (a timer) and `/fib/{n}` (CPU work on the compute pool).

use std::borrow::Cow;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use percent_encoding::percent_decode_str;
use serde::Serialize;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

const MAX_WAIT: f64 = 60.0;

/// The body of `/wait` and `/asyncwait`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Waited {
    /// The seconds slept.
    pub(crate) duration: f64,
}

/// The body of `/fib/{n}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Fib {
    /// The argument.
    pub(crate) n: u32,
    /// The `n`th Fibonacci number, computed naively.
    pub(crate) fib: u64,
}

/// The `duration` of a query string: read by hand, as this is the cheapest
/// endpoint and a general query deserialiser costs a measurable share of it.
fn wait_duration(query: &str) -> Result<(f64, Duration), ApiError> {
    let secs = match query_param(query, "duration") {
        None => 0.05,
        Some(text) => {
            text.trim().parse::<f64>().ok().filter(|s| (0.0..=MAX_WAIT).contains(s)).ok_or_else(
                || {
                    ApiError::bad_request(
                        "invalid_duration",
                        format!("duration must be a number of seconds from 0 to {MAX_WAIT}"),
                    )
                },
            )?
        }
    };
    Ok((secs, Duration::from_secs_f64(secs)))
}

/// The first value of `name` in a query string, form-decoded (`+` is a space).
fn query_param<'a>(query: &'a str, name: &str) -> Option<Cow<'a, str>> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| {
            if value.contains(['%', '+']) {
                let spaced = value.replace('+', " ");
                Cow::Owned(percent_decode_str(&spaced).decode_utf8_lossy().into_owned())
            } else {
                Cow::Borrowed(value)
            }
        })
    })
}

#[utoipa::path(get, path = "/wait", tag = "benchmark", security((), ("token" = [])),
    params(("duration" = Option<f64>, Query, minimum = 0, maximum = 60,
        description = "Seconds to sleep; 0.05 if absent.")),
    responses(
        (status = 200, description = "Slept.", body = Waited),
        (status = 400, description = "`invalid_duration`.", body = ErrorBody),
        (status = 503, description = "`wait_busy`: `bench.max_waits` sleeps are running.", body = ErrorBody),
    ))]
/// `GET /wait?duration=`: a blocking sleep, on a thread of its own (never
/// the blocking pool that storage uses); 503 once `bench.max_waits` sleep.
pub(crate) async fn wait(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    bench_allowed(&req, &state)?;
    let (secs, duration) = wait_duration(req.query_string())?;
    state.sleepers.sleep(duration).await.map_err(|busy| ApiError::WaitBusy(busy.0))?;
    Ok(HttpResponse::Ok().json(Waited { duration: secs }))
}

#[utoipa::path(get, path = "/asyncwait", tag = "benchmark", security((), ("token" = [])),
    params(("duration" = Option<f64>, Query, minimum = 0, maximum = 60,
        description = "Seconds to wait; 0.05 if absent.")),
    responses(
        (status = 200, description = "Waited.", body = Waited),
        (status = 400, description = "`invalid_duration`.", body = ErrorBody),
    ))]
/// `GET /asyncwait?duration=`: a timer.
pub(crate) async fn asyncwait(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    bench_allowed(&req, &state)?;
    let (secs, duration) = wait_duration(req.query_string())?;
    if !duration.is_zero() {
        tokio::time::sleep(duration).await;
    }
    Ok(HttpResponse::Ok().json(Waited { duration: secs }))
}

#[utoipa::path(get, path = "/fib/{n}", tag = "benchmark", security((), ("token" = [])),
    params(("n" = u32, Path, description = "At most `compute.max_n`.")),
    responses(
        (status = 200, description = "Computed on the compute pool.", body = Fib),
        (status = 400, description = "`invalid_n`: not an integer from 0 to `compute.max_n`.", body = ErrorBody),
        (status = 503, description = "`compute_busy`: the pool's queue is full; `compute_timeout`: \
            the job ran past `compute.timeout`.", body = ErrorBody),
    ))]
/// `GET /fib/{n}`: on the compute pool. A client that goes away drops this
/// future (`h1_allow_half_closed(false)` in [`crate::server`]), which cancels the job.
pub(crate) async fn fib(
    state: web::Data<AppState>,
    req: HttpRequest,
    n: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    bench_allowed(&req, &state)?;
    let max_n = state.settings.compute.max_n;
    let n = n.parse::<u32>().ok().filter(|&n| n <= max_n).ok_or_else(|| {
        ApiError::bad_request("invalid_n", format!("n must be an integer from 0 to {max_n}"))
    })?;
    let value = state
        .pool
        .fib(n, Some(state.settings.compute.timeout))
        .await
        .map_err(ApiError::from_compute)?;
    Ok(HttpResponse::Ok().json(Fib { n, fib: value }))
}

/// Open by default (`auth.open_bench`).
fn bench_allowed(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    Caller::require_bench(req, &state.settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_found_and_form_decoded() {
        for (query, expected) in [
            ("", None),
            ("duration=0.5", Some("0.5")),
            ("a=1&duration=2&b", Some("2")),
            ("duration=1&duration=2", Some("1")),
            ("duration", Some("")),
            ("durations=1&xduration=2", None),
            ("duration=%31%2E5", Some("1.5")),
            ("duration=+1+", Some(" 1 ")),
            ("duration=%FF", Some("\u{FFFD}")),
        ] {
            assert_eq!(query_param(query, "duration").as_deref(), expected, "{query}");
        }
        assert_eq!(wait_duration("duration=%31%2E5").unwrap().0, 1.5);
        assert_eq!(wait_duration("other=1").unwrap().0, 0.05);
        assert!(wait_duration("duration=").is_err());
    }
}
