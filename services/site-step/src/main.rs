//! `site-step`: serves the saga's `site` step with bench.

use std::time::Duration;

use anyhow::Context as _;
use site_step::{Settings, SiteStep};

fn main() -> std::process::ExitCode {
    step_runtime::serve_from_env(|| async {
        let lookup = |k: &str| std::env::var(k).ok();
        let bench = bench::Driver::from_lookup(lookup).map_err(anyhow::Error::msg)?;
        let apps = lookup("FRAPPE_APPS")
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
        Ok(SiteStep::new(bench, settings))
    })
}
