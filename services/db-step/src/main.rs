//! `db-step`: serves the saga's `database` step against MariaDB.

use anyhow::Context as _;
use backon::{ExponentialBuilder, Retryable};
use db_step::{mariadb::MariaDb, settings::Settings, DatabaseStep};

fn main() -> std::process::ExitCode {
    step_runtime::serve_from_env(|| async {
        let settings = Settings::from_lookup(|k| std::env::var(k).ok());
        let databases = MariaDb::new(settings.admin_url.expose(), &settings.ledger)
            .context("TENANT_DB_ADMIN_URL")?;
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
