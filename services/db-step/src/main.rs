//! `db-step`: serves the saga's `database` step against MariaDB.

use anyhow::Context as _;
use backon::{ExponentialBuilder, Retryable};
use db_step::{mariadb::MariaDb, DatabaseStep};

fn main() -> std::process::ExitCode {
    step_runtime::serve_from_env(|| async {
        let lookup = |k: &str| std::env::var(k).ok();
        let admin_url =
            lookup("TENANT_DB_ADMIN_URL").unwrap_or_else(|| "mysql://root@127.0.0.1:3306".into());
        let ledger = lookup("TENANT_DB_LEDGER").unwrap_or_else(|| "saga_provisioning".into());
        let databases = MariaDb::new(&admin_url, &ledger).context("TENANT_DB_ADMIN_URL")?;
        (|| databases.prepare())
            .retry(
                ExponentialBuilder::default()
                    .with_max_times(10)
                    .with_jitter(),
            )
            // A refusal (privileges) stays one: fail at once with what to run.
            .when(|e| matches!(e, db_step::Error::Unavailable(_)))
            .notify(|e, delay| tracing::warn!(error = %e, ?delay, "MariaDB not ready, retrying"))
            .await
            .context("preparing the database ledger")?;
        Ok(DatabaseStep::new(databases))
    })
}
