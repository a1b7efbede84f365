//! Errors of client connections (a malformed request line, a reset
//! mid-body) that actix logs at ERROR. They are the client's doing, not
//! the service's: any client can send them as fast as it likes, so they
//! are logged at INFO, the first at once, then one summary line with a
//! count per [`QUIET_FOR`].

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use log::{Level, Log, Metadata, Record};

/// Where actix's HTTP/1 connection errors come from.
const CONNECTION_TARGET: &str = "actix_http::h1::dispatcher";

/// How long after one logged line the next ones are only counted.
const QUIET_FOR: Duration = Duration::from_secs(10);

/// A logger that passes everything to `inner` but actix's connection
/// errors, which the client causes: those become INFO lines with target
/// `client`, the first at once, then at most one per 10 s with a count of
/// the ones left out.
#[derive(Debug)]
pub struct ClientNoise<L> {
    inner: L,
    /// When the last line was logged, and how many were counted since.
    quiet: Mutex<Option<(Instant, u64)>>,
}

impl<L: Log> ClientNoise<L> {
    /// Wraps `inner`.
    pub const fn new(inner: L) -> Self {
        Self { inner, quiet: Mutex::new(None) }
    }

    fn client_error(&self, record: &Record<'_>) {
        let now = Instant::now();
        let mut quiet = self.quiet.lock().unwrap_or_else(PoisonError::into_inner);
        let message = match *quiet {
            Some((since, ref mut count)) if now - since < QUIET_FOR => {
                *count += 1;
                return;
            }
            Some((_, 0)) | None => format!("client connection error: {}", record.args()),
            Some((_, count)) => format!(
                "client connection error: {} ({count} more in the last {}s)",
                record.args(),
                QUIET_FOR.as_secs()
            ),
        };
        *quiet = Some((now, 0));
        drop(quiet);
        self.inner.log(
            &Record::builder()
                .level(Level::Info)
                .target("client")
                .args(format_args!("{message}"))
                .build(),
        );
    }
}

impl<L: Log> Log for ClientNoise<L> {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if record.target() == CONNECTION_TARGET && record.level() <= Level::Warn {
            self.client_error(record);
        } else {
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<String>>>);

    impl Log for Lines {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn log(&self, r: &Record<'_>) {
            self.0.lock().unwrap().push(format!("{} {} {}", r.level(), r.target(), r.args()));
        }
        fn flush(&self) {}
    }

    fn record<'a>(target: &'a str, level: Level, args: std::fmt::Arguments<'a>) -> Record<'a> {
        Record::builder().target(target).level(level).args(args).build()
    }

    #[test]
    fn a_flood_of_connection_errors_is_one_info_line_and_the_rest_passes() {
        let lines = Lines::default();
        let logger = ClientNoise::new(lines.clone());
        for _ in 0..1000 {
            logger.log(&record(CONNECTION_TARGET, Level::Error, format_args!("parse error")));
        }
        logger.log(&record("upload_http", Level::Error, format_args!("ours")));
        logger.log(&record(CONNECTION_TARGET, Level::Debug, format_args!("detail")));
        assert_eq!(
            *lines.0.lock().unwrap(),
            [
                "INFO client client connection error: parse error",
                "ERROR upload_http ours",
                "DEBUG actix_http::h1::dispatcher detail",
            ]
        );
        // Once the quiet time is over, the next line tells how many were left out.
        let past = Instant::now().checked_sub(QUIET_FOR).unwrap();
        logger.quiet.lock().unwrap().as_mut().unwrap().0 = past;
        logger.log(&record(CONNECTION_TARGET, Level::Error, format_args!("reset")));
        let last = lines.0.lock().unwrap().last().unwrap().clone();
        assert_eq!(last, "INFO client client connection error: reset (999 more in the last 10s)");
    }
}
