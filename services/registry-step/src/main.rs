//! `registry-step`: serves the saga's `registration` step against the Master site.

use anyhow::Context as _;
use registry_step::{Master, RegistryStep};

fn main() -> anyhow::Result<()> {
    step_runtime::telemetry::init();
    let lookup = |k: &str| std::env::var(k).ok();
    let runtime_config = step_runtime::config_from(lookup)?;
    let required = |k: &str| lookup(k).with_context(|| format!("{k} is required"));
    let master = Master {
        url: required("MASTER_SITE_URL")?,
        site_name: required("MASTER_SITE_NAME")?,
        api_key: required("MASTER_API_KEY")?,
        api_secret: required("MASTER_API_SECRET")?.into(),
        doctype: lookup("MASTER_TENANT_DOCTYPE").unwrap_or_else(|| "SaaS Tenant".into()),
    };
    let step = RegistryStep::new(master)?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            step_runtime::telemetry::shutdown_signal().await;
            trigger.cancel();
        });
        step_runtime::run(step, runtime_config, shutdown).await
    })
}
