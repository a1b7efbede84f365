//! Log lines gathered in a buffer and written to stderr every 100 ms, so a
//! request never waits on a write system call: on the cheapest endpoints,
//! one write per access-log line costs much of the throughput (BENCHMARKS.md).

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
/// formatting (a large share of the cost of `/asyncwait`; BENCHMARKS.md).
static ACCESS_LOG: OnceLock<AccessLog> = OnceLock::new();

/// Access lines gather in one buffer per thread, handed to the shared writer
/// every 100 ms (by the flushing thread) or once 64 KiB are waiting. A lock
/// only the thread itself takes between hand-overs costs far less than the
/// shared writer's, whose cache line would move between cores on every
/// request. Any other log record first hands over every waiting access
/// line, so only access lines of different threads (within 100 ms) may
/// appear out of order.
struct AccessLog {
    sink: LineSink,
    buffers: Mutex<Vec<LineBuffer>>,
}

type LineSink = Box<dyn Fn(&[u8]) + Send + Sync>;
/// One thread's waiting access lines.
type LineBuffer = Arc<Mutex<Vec<u8>>>;

/// A thread hands its lines over once this much is waiting.
const HAND_OVER_AT: usize = 64 * 1024;

impl AccessLog {
    /// Hands every thread's waiting lines to the sink; forgets the buffers
    /// of threads that have ended.
    fn drain(&self) {
        lock(&self.buffers).retain(|buffer| {
            let lines = std::mem::take(&mut *lock(buffer));
            if !lines.is_empty() {
                (self.sink)(&lines);
            }
            Arc::strong_count(buffer) > 1
        });
    }
}

/// Sends access-log lines straight into `writer` (the one `env_logger`
/// writes to). Without it they go through `log`.
pub fn write_access_log_to<W: Write + Send + 'static>(writer: BackgroundWriter<W>) {
    let _ = ACCESS_LOG.set(AccessLog {
        sink: Box::new(move |lines| {
            let _ = lock(&writer.out).write_all(lines);
        }),
        buffers: Mutex::default(),
    });
}

/// Hands all waiting access lines to the writer.
fn drain_access_log() {
    if let Some(log) = ACCESS_LOG.get() {
        log.drain();
    }
}

/// Writes one access-log line, formatted as `env_logger` formats records:
/// `line` appends the message (without the newline) to the buffer it is
/// given, so the line is built in place, never copied.
pub(crate) fn access(line: impl FnOnce(&mut Vec<u8>)) {
    let Some(log) = ACCESS_LOG.get() else {
        let mut text = Vec::new();
        line(&mut text);
        log::info!(target: "access", "{}", String::from_utf8_lossy(&text));
        return;
    };
    thread_local! {
        /// The current second and its RFC 3339 text.
        static STAMP: std::cell::RefCell<(u64, String)> =
            const { std::cell::RefCell::new((u64::MAX, String::new())) };
        static BUFFER: std::cell::OnceCell<LineBuffer> = const { std::cell::OnceCell::new() };
    }
    BUFFER.with(|cell| {
        let buffer = cell.get_or_init(|| {
            let buffer = Arc::default();
            lock(&log.buffers).push(Arc::clone(&buffer));
            buffer
        });
        let mut waiting = lock(buffer);
        STAMP.with_borrow_mut(|(second, stamp)| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            if now.as_secs() != *second {
                *second = now.as_secs();
                *stamp = humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + Duration::from_secs(*second),
                )
                .to_string();
            }
            waiting.push(b'[');
            waiting.extend_from_slice(stamp.as_bytes());
        });
        waiting.extend_from_slice(b" INFO  access] ");
        line(&mut waiting);
        waiting.push(b'\n');
        if waiting.len() >= HAND_OVER_AT {
            let lines = std::mem::take(&mut *waiting);
            drop(waiting);
            (log.sink)(&lines);
        }
    });
}

/// Flushes every 100 ms (access lines included), and once more when
/// dropped (at the end of `main`).
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
                drain_access_log();
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
        // Other records are rare: the access lines before them go first, in order.
        drain_access_log();
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
        access(|out| out.extend_from_slice(b"127.0.0.1 \"GET / HTTP/1.1\" 200 0.000010"));
        drop(guard);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let (stamp, rest) = text.strip_prefix('[').unwrap().split_once(' ').unwrap();
        assert!(stamp.len() == 20 && stamp.ends_with('Z'), "{text}");
        assert_eq!(rest, "INFO  access] 127.0.0.1 \"GET / HTTP/1.1\" 200 0.000010\n");
    }

    #[test]
    fn access_lines_of_every_thread_come_in_order_and_before_a_later_record() {
        let out = Shared::default();
        let (mut writer, guard) = BackgroundWriter::spawn(out.clone()).unwrap();
        write_access_log_to(writer.clone());
        // ~120 KB per thread: each hands its lines over on its own at least once.
        std::thread::scope(|s| {
            for t in 0..2 {
                s.spawn(move || {
                    (0..2000).for_each(|i| access(|out| write!(out, "t{t} {i}").unwrap()));
                });
            }
        });
        writeln!(writer, "after").unwrap();
        drop(guard);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4001);
        assert_eq!(lines.last(), Some(&"after"));
        for t in 0..2 {
            let tag = format!("access] t{t} ");
            let mine: Vec<usize> = lines
                .iter()
                .filter_map(|l| l.split_once(tag.as_str()).map(|(_, i)| i.parse().unwrap()))
                .collect();
            assert_eq!(mine, (0..2000).collect::<Vec<_>>(), "thread {t}");
        }
    }
}
