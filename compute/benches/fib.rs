//! `cargo bench -p compute --bench fib`: fib(32..=40) sequential and parallel
//! (1 and 2 threads), then the effect of the pool's priority on concurrent
//! request-like work. Every figure comes with its reference from the same run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use compute::{ComputePool, Priority, fib, fib_parallel};

fn main() -> Result<(), compute::Error> {
    let one = ComputePool::builder().threads(1).priority(Priority::Nice(0)).build()?;
    let two = ComputePool::builder().threads(2).priority(Priority::Nice(0)).build()?;
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");

    println!("n   sequential   parallel/1t   parallel/2t   2t vs 1t   2t vs seq");
    for n in 32..=40 {
        let seq = time(|| fib(n).map(drop))?;
        let p1 = time(|| rt.block_on(one.submit(move |c| fib_parallel(n, c)))?.map(drop))?;
        let p2 = time(|| rt.block_on(two.submit(move |c| fib_parallel(n, c)))?.map(drop))?;
        println!(
            "{n}  {:>9.1}ms  {:>10.1}ms  {:>10.1}ms  {:>8.2}x  {:>8.2}x",
            ms(seq),
            ms(p1),
            ms(p2),
            p1.as_secs_f64() / p2.as_secs_f64(),
            seq.as_secs_f64() / p2.as_secs_f64()
        );
    }

    println!(
        "\nrequest-like work on 2 normal threads while fib(42) runs back-to-back on 2 pool threads:"
    );
    let idle = request_rate(None);
    println!("  no compute load      {:>10.0} ops/s  1.00x", idle);
    for priority in [Priority::Nice(0), Priority::Nice(10), Priority::Nice(19), Priority::Idle] {
        let pool = ComputePool::builder().threads(2).priority(priority).build()?;
        let rate = request_rate(Some(&pool));
        let name = format!("{priority:?}");
        println!("  pool at {name:<12} {:>10.0} ops/s  {:.2}x", rate, rate / idle);
    }
    Ok(())
}

fn time(f: impl Fn() -> Result<(), compute::Error>) -> Result<Duration, compute::Error> {
    // Best of 5: the machine is shared, the minimum is the least disturbed.
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        f()?;
        best = best.min(start.elapsed());
    }
    Ok(best)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Small CPU units (fib(18), ~20 µs) on two threads for 2 s, as request
/// handlers would run, with the pool computing fib(42) meanwhile if given.
fn request_rate(pool: Option<&ComputePool>) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let load = pool.map(|pool| {
        let (pool, stop) = (pool.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            while !stop.load(Relaxed) {
                let _ = rt.block_on(pool.fib(42, None));
            }
        })
    });
    let ops = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let ops = Arc::clone(&ops);
            std::thread::spawn(move || {
                while start.elapsed() < Duration::from_secs(2) {
                    std::hint::black_box(fib(std::hint::black_box(18)).ok());
                    ops.fetch_add(1, Relaxed);
                }
            })
        })
        .collect();
    workers.into_iter().for_each(|w| w.join().expect("worker"));
    let rate = ops.load(Relaxed) as f64 / start.elapsed().as_secs_f64();
    stop.store(true, Relaxed);
    if let Some(load) = load {
        load.join().expect("load");
    }
    rate
}
