//! `orchestrator`: runs the tenant-provisioning saga orchestrator.

use std::process::ExitCode;

fn main() -> ExitCode {
    step_runtime::telemetry::init();
    step_runtime::exit_code(serve())
}

fn serve() -> anyhow::Result<()> {
    let config = orchestrator::config::from_lookup(|k| std::env::var(k).ok())?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            step_runtime::telemetry::shutdown_signal().await;
            trigger.cancel();
        });
        orchestrator::run(config, shutdown).await
    })
}
