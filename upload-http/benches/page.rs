//! `scripts/bench-page.sh`: the browser page's upload rate for one large file
//! in a real Chromium (tus, 32 MiB PATCHes, each with its SHA-256 from Web
//! Crypto) against `curl -T` of the same file to the same service, in the
//! same run; repetitions interleaved, each file deleted and the disk synced
//! between them; medians and the ratio.
//!
//! Settings by environment: `FASTUPLOAD_BIN` (the service binary),
//! `SIZE_MIB` (1024), `REPS` (5), `FSYNC` (true).

#[path = "../tests/it/browser/driver.rs"]
#[allow(dead_code, unreachable_pub)]
mod driver;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use driver::Browser;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// `len` pseudo-random bytes (incompressible, like a real upload).
fn write_file(path: &Path, len: usize) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..len >> 20 {
        for word in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        file.write_all(&block).unwrap();
    }
    file.flush().unwrap();
}

/// CPU seconds (user + system) the processes whose command line starts
/// with `program` have used so far; processes that end between two readings
/// drop out, so take readings while the ones of interest run.
fn cpu_seconds(program: &str) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc").unwrap().map_while(Result::ok) {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if !cmdline.starts_with(program.as_bytes()) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // Fields after the command name, which is in parentheses: utime is the 12th, stime the 13th.
        let fields: Vec<&str> =
            stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
        if fields.len() > 12 {
            total +=
                (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / ticks;
        }
    }
    total
}

/// CPU seconds of this process's finished children (curl).
fn children_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn delete_all(base: &str) {
    let client = reqwest::blocking::Client::new();
    let page: serde_json::Value =
        client.get(format!("{base}/files?limit=1000")).send().unwrap().json().unwrap();
    for file in page["files"].as_array().unwrap() {
        let id = file["id"].as_str().unwrap();
        assert_eq!(client.delete(format!("{base}/files/{id}")).send().unwrap().status(), 204);
    }
    assert!(Command::new("sync").status().unwrap().success());
}

fn main() {
    if !driver::installed() {
        return;
    }
    let bin = env_or("FASTUPLOAD_BIN", "target/release/upload-http");
    let size_mib: usize = env_or("SIZE_MIB", "1024").parse().unwrap();
    let reps: usize = env_or("REPS", "5").parse().unwrap();
    let fsync = env_or("FSYNC", "true");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upload.bin");
    write_file(&file, size_mib << 20);

    let mut service = Command::new(&bin)
        .env("UPLOAD__SERVER__PORT", "0")
        .env("UPLOAD__SERVER__WORKERS", "2")
        .env("UPLOAD__STORAGE__ROOT", dir.path().join("data"))
        .env("UPLOAD__STORAGE__FSYNC", &fsync)
        .env("UPLOAD__LIMITS__MAX_FILE_SIZE", "8GiB")
        .env("UPLOAD__LIMITS__MAX_REQUEST_SIZE", "8GiB")
        .env("RUST_LOG", "info,access=off")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e} (build it: cargo build --release -p upload-http)"));
    let mut lines = BufReader::new(service.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("the service exited").unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));

    let browser = Browser::start(&dir.path().join("downloads"));
    browser.goto(&format!("{base}/"));
    browser.wait_for("document.body.dataset.ready === 'tus'", Duration::from_secs(10));
    let mb = (size_mib << 20) as f64 / 1e6;
    let (mut curl, mut page) = (Vec::new(), Vec::new());
    // CPU milliseconds per MB: (service, client) for curl and for the page.
    let (mut curl_cpu, mut page_cpu) = (Vec::new(), Vec::new());
    let service_cpu = || cpu_seconds(&bin);
    let browser_cpu = || cpu_seconds("/usr/lib/chromium/chromium");
    for rep in 0..reps {
        let (svc0, client0) = (service_cpu(), children_cpu_seconds());
        let started = Instant::now();
        let status = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-T"])
            .arg(&file)
            .arg(format!("{base}/files/upload.bin"))
            .output()
            .unwrap();
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(String::from_utf8_lossy(&status.stdout), "201");
        curl.push(mb / secs);
        curl_cpu.push((service_cpu() - svc0, children_cpu_seconds() - client0));
        delete_all(&base);

        let (svc0, client0) = (service_cpu(), browser_cpu());
        let started = Instant::now();
        browser.choose_files("#picker", &[&file]);
        let done = format!(
            "document.querySelectorAll('#queue li[data-state=done]').length === {}",
            rep + 1
        );
        browser.wait_for(&done, Duration::from_secs(600));
        page.push(mb / started.elapsed().as_secs_f64());
        page_cpu.push((service_cpu() - svc0, browser_cpu() - client0));
        delete_all(&base);
        eprintln!("rep {}: curl -T {:.0} MB/s, page {:.0} MB/s", rep + 1, curl[rep], page[rep]);
    }
    let per_mb = |cpu: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| {
        median(cpu.iter().map(|c| pick(c) * 1000.0 / mb).collect())
    };
    let (c, p) = (median(curl), median(page));
    println!("{size_mib} MiB, fsync={fsync}, medians of {reps}:");
    println!(
        "  curl -T                {c:>5.0} MB/s   CPU ms/MB: service {:.2}, curl {:.2}",
        per_mb(&curl_cpu, |c| c.0),
        per_mb(&curl_cpu, |c| c.1)
    );
    println!(
        "  page (Chromium, tus)   {p:>5.0} MB/s   CPU ms/MB: service {:.2}, Chromium {:.2}",
        per_mb(&page_cpu, |c| c.0),
        per_mb(&page_cpu, |c| c.1)
    );
    println!("  page/curl {:.2}", p / c);
    let _ = service.kill();
    let _ = service.wait();
}
