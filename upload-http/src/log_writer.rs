//! Log lines gathered in a buffer and written to stderr every 100 ms, so a
//! request never waits on a write system call: at ~100k requests/s, one
//! write per access-log line costs a quarter of the throughput.

use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a line may wait in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

type Shared<W> = Arc<Mutex<BufWriter<W>>>;

/// A `Write` for `env_logger`'s `Target::Pipe`, buffering lines. Clones
/// share the buffer.
#[derive(Debug)]
pub struct BackgroundWriter<W: Write> {
    out: Shared<W>,
}

impl<W: Write> Clone for BackgroundWriter<W> {
    fn clone(&self) -> Self {
        Self { out: Arc::clone(&self.out) }
    }
}

/// Where the access log writes directly, bypassing `log`'s per-record
/// formatting (which costs about a fifth of the throughput of `/asyncwait`).
static ACCESS_LOG: OnceLock<LineSink> = OnceLock::new();

type LineSink = Box<dyn Fn(&[u8]) + Send + Sync>;

/// Sends access-log lines straight into `writer` (the one `env_logger`
/// writes to, so lines stay in order). Without it they go through `log`.
pub fn write_access_log_to<W: Write + Send + 'static>(writer: BackgroundWriter<W>) {
    let _ = ACCESS_LOG.set(Box::new(move |line| {
        let _ = lock(&writer.out).write_all(line);
    }));
}

/// Writes one access-log line (without the newline), formatted as `env_logger` formats records.
pub(crate) fn access(args: std::fmt::Arguments<'_>) {
    let Some(sink) = ACCESS_LOG.get() else {
        log::info!(target: "access", "{args}");
        return;
    };
    thread_local! {
        static LINE: std::cell::RefCell<(u64, String, String)> = const {
            std::cell::RefCell::new((u64::MAX, String::new(), String::new()))
        };
    }
    LINE.with_borrow_mut(|(second, stamp, line)| {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        if now.as_secs() != *second {
            *second = now.as_secs();
            *stamp = humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + Duration::from_secs(*second),
            )
            .to_string();
        }
        line.clear();
        let _ = std::fmt::Write::write_fmt(line, format_args!("[{stamp} INFO  access] {args}\n"));
        sink(line.as_bytes());
    });
}

/// Flushes every 100 ms, and once more when dropped (at the end of `main`).
#[derive(Debug)]
pub struct BackgroundWriterGuard {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl<W: Write + Send + 'static> BackgroundWriter<W> {
    /// A buffered writer to `out` and the guard whose thread flushes it.
    ///
    /// # Errors
    /// If the flushing thread cannot be started.
    pub fn spawn(out: W) -> io::Result<(Self, BackgroundWriterGuard)> {
        let out: Shared<W> = Arc::new(Mutex::new(BufWriter::with_capacity(64 * 1024, out)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new().name("log-flush".into()).spawn({
            let (out, stop) = (Arc::clone(&out), Arc::clone(&stop));
            move || loop {
                std::thread::park_timeout(FLUSH_EVERY);
                let _ = lock(&out).flush();
                if stop.load(Ordering::Acquire) {
                    return;
                }
            }
        })?;
        Ok((Self { out }, BackgroundWriterGuard { stop, thread: Some(thread) }))
    }
}

fn lock<W>(out: &Mutex<W>) -> std::sync::MutexGuard<'_, W> {
    out.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<W: Write> Write for BackgroundWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        lock(&self.out).write(buf)
    }

    /// A no-op: env_logger flushes after every line; the thread flushes every 100 ms.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for BackgroundWriterGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_in_order_by_the_time_the_guard_drops() {
        let out = Shared::default();
        let (mut writer, guard) = BackgroundWriter::spawn(out.clone()).unwrap();
        for i in 0..50_000 {
            writeln!(writer, "line {i}").unwrap();
        }
        drop(guard);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 50_000);
        assert_eq!((lines[0], lines[49_999]), ("line 0", "line 49999"));
    }

    #[test]
    fn access_lines_go_straight_into_the_buffer_in_env_loggers_format() {
        let out = Shared::default();
        let (writer, guard) = BackgroundWriter::spawn(out.clone()).unwrap();
        write_access_log_to(writer);
        access(format_args!("127.0.0.1 \"GET / HTTP/1.1\" 200 0.000010"));
        drop(guard);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let (stamp, rest) = text.strip_prefix('[').unwrap().split_once(' ').unwrap();
        assert!(stamp.len() == 20 && stamp.ends_with('Z'), "{text}");
        assert_eq!(rest, "INFO  access] 127.0.0.1 \"GET / HTTP/1.1\" 200 0.000010\n");
    }
}
