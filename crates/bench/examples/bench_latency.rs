//! Measures what one command costs through a bench driver, configured as the services
//! configure it (`BENCH_DRIVER`, `BENCH_PATH`, `BENCH_CONTAINER` or
//! `BENCH_COMPOSE_PROJECT`, `DOCKER_HOST`, ...): runs a trivial command `N` times, one
//! after the other, and prints the latency distribution. The site step makes about
//! ten bench calls per signup, so this is the driver's share of a saga's time.
//!
//! ```sh
//! BENCH_DRIVER=docker BENCH_CONTAINER=frappe-backend \
//!   cargo run --release -p bench --example bench_latency -- 200 true
//! ```

use std::time::{Duration, Instant};

use bench::{Bench, CommandLine, Driver};

#[tokio::main]
async fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let runs: usize = args
        .next()
        .map(|n| n.parse().map_err(|e| format!("runs: {e}")))
        .transpose()?
        .unwrap_or(100);
    let words: Vec<String> = args.collect();
    let program = words.first().cloned().unwrap_or_else(|| "true".into());
    let command = CommandLine::new(&program).args(words.iter().skip(1).map(String::as_str));
    let driver = Driver::from_lookup(|k| std::env::var(k).ok())?;
    driver.check().await?;

    let mut samples = Vec::with_capacity(runs);
    let started = Instant::now();
    for _ in 0..runs {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let begun = Instant::now();
        let finished = driver
            .run(&command, Duration::from_secs(60), tx)
            .await
            .map_err(|e| e.to_string())?;
        if finished.exit_code != 0 {
            return Err(format!("`{command}` exited {}", finished.exit_code));
        }
        samples.push(begun.elapsed());
    }
    let total = started.elapsed();
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "driver {} · `{command}` × {runs}: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {:.1} calls/s",
        match driver {
            Driver::Local(_) => "local",
            Driver::Docker(_) => "docker",
        },
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99)),
        ms(*samples.last().unwrap_or(&Duration::ZERO)),
        runs as f64 / total.as_secs_f64()
    );
    Ok(())
}
