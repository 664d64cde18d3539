//! The original's latency method: N sequential `GET`s on one keep-alive connection.
//! Prints the first call (connection setup included) apart from the steady state:
//! mean, p50, p99 and max in milliseconds.
//!
//! cargo run --release -p hits --example sequential -- http://127.0.0.1:8000/hits 1000

use std::time::{Duration, Instant};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: sequential URL [COUNT]";
    let url = args.next().ok_or(usage)?;
    let count: usize = args.next().map(|c| c.parse()).transpose()?.unwrap_or(1000);
    if count < 2 {
        return Err("COUNT must be at least 2".into());
    }
    aws_setup::install_tls_provider();
    let client = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let response = client.get(&url).send().await?;
        let status = response.status();
        response.bytes().await?;
        times.push(started.elapsed());
        if !status.is_success() {
            return Err(format!("{url} answered {status}").into());
        }
    }
    let first = times.remove(0);
    times.sort_unstable();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    println!(
        "{url}: first {:.3} ms; then n={} mean {:.3} ms, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        ms(first),
        times.len(),
        ms(mean),
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(*times.last().unwrap_or(&first)),
    );
    Ok(())
}
