//! `site-step`: serves the saga's `site` step with bench.

use std::time::Duration;

use anyhow::Context as _;
use site_step::{Settings, SiteStep};

fn main() -> anyhow::Result<()> {
    step_runtime::telemetry::init();
    let lookup = |k: &str| std::env::var(k).ok();
    let runtime_config = step_runtime::config_from(lookup)?;
    let driver = lookup("BENCH_DRIVER").unwrap_or_else(|| "local".into());
    anyhow::ensure!(
        driver == "local",
        "BENCH_DRIVER={driver:?} is not available yet: only \"local\""
    );
    let bench = bench::local::LocalBench::new(
        lookup("BENCH_BIN").unwrap_or_else(|| "bench".into()),
        lookup("BENCH_PATH").unwrap_or_else(|| "/home/frappe/frappe-bench".into()),
    );
    let apps: Vec<String> = lookup("FRAPPE_APPS")
        .unwrap_or_else(|| "erpnext".into())
        .split(',')
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .collect();
    let concurrency = lookup("SITE_CONCURRENCY")
        .map(|v| v.parse::<usize>())
        .transpose()
        .context("SITE_CONCURRENCY must be a whole number")?
        .unwrap_or(2);
    let settings = Settings {
        apps,
        concurrency,
        command_timeout: Duration::from_secs(900),
    };
    tokio::runtime::Runtime::new()?.block_on(async {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            step_runtime::telemetry::shutdown_signal().await;
            trigger.cancel();
        });
        step_runtime::run(SiteStep::new(bench, settings), runtime_config, shutdown).await
    })
}
