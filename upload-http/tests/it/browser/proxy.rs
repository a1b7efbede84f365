//! A TCP proxy between the browser and the service, on real sockets: it
//! paces what the browser sends (so that an interruption falls mid-upload),
//! can cut every connection (a network drop), and can be pointed at a
//! restarted service. (Chromium's own throttling holds chromedriver's
//! commands until the page's requests end, so it cannot be used here.)

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

pub struct Proxy {
    pub addr: String,
    target: Arc<Mutex<String>>,
    rate: Arc<AtomicU64>,
    /// Weak: a connection closes (its last handle dropped) when its pipes end.
    open: Arc<Mutex<Vec<Weak<TcpStream>>>>,
    down: Arc<AtomicBool>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = Self {
            addr: listener.local_addr().unwrap().to_string(),
            target: Arc::new(Mutex::new(target.to_owned())),
            rate: Arc::new(AtomicU64::new(0)),
            open: Arc::default(),
            down: Arc::default(),
        };
        let (target, rate, open, down) = (
            Arc::clone(&proxy.target),
            Arc::clone(&proxy.rate),
            Arc::clone(&proxy.open),
            Arc::clone(&proxy.down),
        );
        // Ends with the test process: accept blocks, and there is nothing to release.
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let address = target.lock().unwrap().clone();
                // The network down, or the service: the browser sees its connection closed.
                if down.load(Ordering::Relaxed) {
                    continue;
                }
                let Ok(server) = TcpStream::connect(address) else { continue };
                // A peer that stops reading (a server that answered early and
                // no longer reads the body) must not hold a pipe for ever.
                for stream in [&client, &server] {
                    stream.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
                }
                let (client, server) = (Arc::new(client), Arc::new(server));
                let mut live = open.lock().unwrap();
                live.retain(|s| s.strong_count() > 0);
                live.extend([Arc::downgrade(&client), Arc::downgrade(&server)]);
                drop(live);
                let (up_from, up_to) = (Arc::clone(&client), Arc::clone(&server));
                let rate = Arc::clone(&rate);
                std::thread::spawn(move || pipe(&up_from, &up_to, &rate));
                std::thread::spawn(move || pipe(&server, &client, &AtomicU64::new(0)));
            }
        });
        proxy
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Paces the browser's bytes to `bytes_per_second` (0: unpaced).
    pub fn pace(&self, bytes_per_second: u64) {
        self.rate.store(bytes_per_second, Ordering::Relaxed);
    }

    /// Forwards new connections to `target`.
    pub fn point_at(&self, target: &str) {
        *self.target.lock().unwrap() = target.to_owned();
    }

    /// Cuts every open connection and refuses new ones until [`Self::restore`],
    /// as a dropped network does.
    pub fn cut(&self) {
        self.down.store(true, Ordering::Relaxed);
        for stream in self.open.lock().unwrap().drain(..).filter_map(|s| s.upgrade()) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Proxy {
    /// The network is back.
    pub fn restore(&self) {
        self.down.store(false, Ordering::Relaxed);
    }
}

/// Copies `from` to `to` at `rate` bytes per second (0: as fast as it comes);
/// closes both when either side ends.
fn pipe(mut from: &TcpStream, mut to: &TcpStream, rate: &AtomicU64) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
        let rate = rate.load(Ordering::Relaxed);
        if rate > 0 {
            // Pacing, not synchronisation: the sleep is what makes the link slow.
            std::thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64));
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
