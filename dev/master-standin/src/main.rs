//! `master-standin`: the Master site STAND-IN for the demo. Settings: `MASTER_STANDIN_ADDR`
//! (default 127.0.0.1:8010), `MASTER_SITE_NAME`, `MASTER_API_KEY`, `MASTER_API_SECRET`,
//! `MASTER_TENANT_DOCTYPE`, and `MASTER_STANDIN_REFUSE` (comma-separated names refused
//! with a 417, to show a failing registration).

use std::sync::{Arc, Mutex};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let master = master_standin::Master {
        site_name: env("MASTER_SITE_NAME", "master.localhost"),
        api_key: env("MASTER_API_KEY", "standin-key"),
        api_secret: env("MASTER_API_SECRET", "standin-secret"),
        doctype: env("MASTER_TENANT_DOCTYPE", "SaaS Tenant"),
        refuse_names: env("MASTER_STANDIN_REFUSE", "")
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        ..Default::default()
    };
    let listener =
        tokio::net::TcpListener::bind(env("MASTER_STANDIN_ADDR", "127.0.0.1:8010")).await?;
    eprintln!(
        "master-standin (NOT Frappe) on http://{}",
        listener.local_addr()?
    );
    master_standin::serve(listener, Arc::new(Mutex::new(master))).await
}
