//! Streams 4 x 20 MiB and 1 x 2 GiB through the local backend (fsync on) in
//! 64 KiB chunks, as configured by default (direct I/O past one write batch) and
//! through the page cache only (`direct_io = false`),
//! next to a plain `std::fs` write + fsync of the same bytes in the same run,
//! and reports the ratios and the peak RSS of a 2 GiB put.
//!
//! `cargo bench -p upload-core --bench throughput [-- REPS]`; the files go to
//! `$BENCH_DIR` (default: the system temp dir), on the disk being measured.

use std::fs::File;
use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use upload_core::{LocalConfig, PutOptions, Storage, StorageConfig};

const CHUNK: usize = 64 * 1024;
const MIB: u64 = 1 << 20;

struct Workload {
    name: &'static str,
    files: usize,
    size: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let reps: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5);
    let base = std::env::var_os("BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(base)?;
    let rt = tokio::runtime::Runtime::new()?;
    let open = |name: &str, direct_io: bool| {
        let config = LocalConfig { direct_io, ..LocalConfig::new(dir.path().join(name)) };
        rt.block_on(Storage::open(&StorageConfig::Local(config)))
    };
    let (direct, buffered) = (open("direct", true)?, open("buffered", false)?);
    let block = Bytes::from((0..CHUNK).map(|i| (i * 7919 % 251) as u8).collect::<Vec<_>>());

    println!("upload-core local backend, fsync on, {CHUNK} B chunks, median of {reps} runs");
    println!("(ratios: median of each run's ratio to the plain write next to it)");
    println!(
        "{:<12} {:>14} {:>20} {:>22}",
        "workload", "plain fs MB/s", "upload-core", "direct_io = false"
    );
    for w in [
        Workload { name: "4 x 20 MiB", files: 4, size: 20 * MIB },
        Workload { name: "1 x 2 GiB", files: 1, size: 2048 * MIB },
    ] {
        // [plain, direct, buffered] per run, in an order that rotates so that
        // none always runs on a warmer (or more tired) disk.
        let mut runs: Vec<[Duration; 3]> = Vec::new();
        for rep in 0..reps {
            let mut times = [Duration::ZERO; 3];
            for k in 0..3 {
                let which = (rep + k) % 3;
                times[which] = match which {
                    0 => plain_write(&dir.path().join("plain"), &block, &w)?,
                    1 => rt.block_on(core_put(&direct, &block, &w))?,
                    _ => rt.block_on(core_put(&buffered, &block, &w))?,
                };
            }
            runs.push(times);
        }
        let bytes = w.files as u64 * w.size;
        let rate = |i: usize| {
            let mut v: Vec<Duration> = runs.iter().map(|t| t[i]).collect();
            mbps(bytes, median(&mut v))
        };
        // Each run's ratio to the reference run beside it: their median
        // shrugs off the machine's slow spells better than a ratio of medians.
        let ratio = |i: usize| {
            let mut r: Vec<f64> =
                runs.iter().map(|t| t[0].as_secs_f64() / t[i].as_secs_f64()).collect();
            r.sort_by(f64::total_cmp);
            r[r.len() / 2]
        };
        println!(
            "{:<12} {:>14.0} {:>12.0} ({:.2}x) {:>14.0} ({:.2}x)",
            w.name,
            rate(0),
            rate(1),
            ratio(1),
            rate(2),
            ratio(2)
        );
    }

    // The ceiling for any store that hashes: SHA-256 alone over the same bytes.
    let start = Instant::now();
    let mut sha = <sha2::Sha256 as sha2::Digest>::new();
    for _ in 0..2048 * MIB / CHUNK as u64 {
        sha2::Digest::update(&mut sha, &block);
    }
    let _ = sha2::Digest::finalize(sha);
    println!("SHA-256 alone over 2 GiB: {:.0} MB/s", mbps(2048 * MIB, start.elapsed()));

    // Fresh buffers per chunk, as a socket would hand them over: memory that
    // the pipeline kept alive would show here.
    let idle = rss_kib("VmRSS");
    reset_peak_rss();
    let body = stream::iter(0..2048 * MIB / CHUNK as u64)
        .map(|_| Ok::<_, std::io::Error>(Bytes::copy_from_slice(&block)));
    let info = rt.block_on(direct.put(body, PutOptions::default()))?;
    rt.block_on(direct.delete(&info.id))?;
    println!(
        "peak RSS storing 2 GiB: {} MiB (idle before: {} MiB; {} MiB above idle)",
        rss_kib("VmHWM") / 1024,
        idle / 1024,
        (rss_kib("VmHWM") - idle) / 1024
    );
    Ok(())
}

fn plain_write(path: &std::path::Path, block: &[u8], w: &Workload) -> std::io::Result<Duration> {
    let start = Instant::now();
    for _ in 0..w.files {
        let mut file = File::create(path)?;
        for _ in 0..w.size / CHUNK as u64 {
            file.write_all(block)?;
        }
        file.sync_all()?;
    }
    let elapsed = start.elapsed();
    std::fs::remove_file(path)?;
    Ok(elapsed)
}

async fn core_put(
    storage: &Storage,
    block: &Bytes,
    w: &Workload,
) -> Result<Duration, upload_core::Error> {
    let mut ids = Vec::new();
    let start = Instant::now();
    for _ in 0..w.files {
        let body = stream::repeat(block.clone())
            .take((w.size / CHUNK as u64) as usize)
            .map(Ok::<_, std::io::Error>);
        ids.push(storage.put(body, PutOptions::default()).await?.id);
    }
    let elapsed = start.elapsed();
    for id in ids {
        storage.delete(&id).await?;
    }
    Ok(elapsed)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// A field of /proc/self/status, in KiB (0 off Linux).
fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

/// Resets VmHWM to the current RSS (Linux >= 4.0).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
