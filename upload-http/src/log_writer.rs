//! Log lines gathered in a buffer and written to stderr every 100 ms, so a
//! request never waits on a write system call: at ~100k requests/s, one
//! write per access-log line costs a quarter of the throughput.

use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a line may wait in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

type Shared<W> = Arc<Mutex<BufWriter<W>>>;

/// A `Write` for `env_logger`'s `Target::Pipe`, buffering lines.
#[derive(Debug)]
pub struct BackgroundWriter<W: Write> {
    out: Shared<W>,
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
}
