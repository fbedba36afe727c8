//! `user-step`: serves the saga's `admin_user` step with bench.

use std::time::Duration;

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
    tokio::runtime::Runtime::new()?.block_on(async {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            step_runtime::telemetry::shutdown_signal().await;
            trigger.cancel();
        });
        step_runtime::run(
            user_step::UserStep::new(bench, Duration::from_secs(120)),
            runtime_config,
            shutdown,
        )
        .await
    })
}
