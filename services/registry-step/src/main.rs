//! `registry-step`: serves the saga's `registration` step against the Master site.

use anyhow::Context as _;
use registry_step::{Master, RegistryStep};

fn main() -> std::process::ExitCode {
    step_runtime::serve_from_env(|| async {
        let lookup = |k: &str| std::env::var(k).ok();
        let required = |k: &str| lookup(k).with_context(|| format!("{k} is required"));
        let master = Master {
            url: required("MASTER_SITE_URL")?,
            site_name: required("MASTER_SITE_NAME")?,
            api_key: required("MASTER_API_KEY")?,
            api_secret: required("MASTER_API_SECRET")?.into(),
            doctype: lookup("MASTER_TENANT_DOCTYPE").unwrap_or_else(|| "SaaS Tenant".into()),
        };
        RegistryStep::new(master)
    })
}
