//! `bench-client`: see `bench-client --help`.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    bench_client::run(bench_client::Opts::parse())?;
    Ok(())
}
