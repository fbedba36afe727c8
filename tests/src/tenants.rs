//! The tenants a test's world hands out, and what becomes of them: every subdomain the
//! harness names ([`Harness::subdomain`]) or is told of ([`Harness::track_subdomain`])
//! is recorded, and when the world finishes or drops (a panicking test included) the
//! tenant database and user of each, and its row in the ledger of this world's
//! db-step ([`LEDGER`]), are dropped by their exact names. The MariaDB server is
//! shared with other projects' tests: nothing is ever dropped by pattern.
//!
//! Nothing is dropped earlier, so a test that checks a rollback left nothing checks
//! what the services left, not what the harness cleaned.

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::{admin_pool, Harness};

/// The ledger database of the db-step every world runs (`TENANT_DB_LEDGER`, in
/// process and as a process): db-step's default, as in production.
pub const LEDGER: &str = "saga_provisioning";

/// The tenant database names of one world, dropped with it.
#[derive(Default)]
pub(crate) struct Tenants(Mutex<BTreeSet<String>>);

impl Tenants {
    /// Records database (and user) `name`.
    fn track(&self, name: String) {
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "not a tenant database name: {name:?}"
        );
        self.0.lock().expect("tenants").insert(name);
    }

    /// The names recorded so far, forgotten here (dropping them is the caller's).
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            .collect()
    }

    /// Drops every recorded tenant; the errors of those that could not be dropped.
    pub(crate) async fn drop_all(&self) -> Vec<String> {
        let names = self.take();
        if names.is_empty() {
            return Vec::new();
        }
        let pool = admin_pool().await;
        let mut errors = Vec::new();
        for name in names {
            if let Err(e) = drop_one(&pool, &name).await {
                errors.push(format!("{name}: {e}"));
            }
        }
        pool.close().await;
        errors
    }

    /// [`Tenants::drop_all`] from synchronous code (a `Drop`, possibly inside an async
    /// runtime's thread): on a thread with a runtime of its own.
    pub(crate) fn drop_all_blocking(&self) -> Vec<String> {
        if self.0.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
            return Vec::new();
        }
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| vec![format!("a runtime to drop the tenants: {e}")])
                        .map_or_else(|e| e, |runtime| runtime.block_on(self.drop_all()))
                })
                .join()
                .unwrap_or_else(|_| vec!["dropping the tenants panicked".to_string()])
        })
    }
}

/// Drops database and user `name` and its row in [`LEDGER`] (if the ledger exists).
pub(crate) async fn drop_one(pool: &sqlx::MySqlPool, name: &str) -> Result<(), sqlx::Error> {
    // `name` is `[a-z0-9_]+` (checked when tracked; db-step's names are so), safe
    // between backticks and quotes.
    sqlx::raw_sql(&format!(
        "DROP DATABASE IF EXISTS `{name}`; DROP USER IF EXISTS '{name}'@'%';"
    ))
    .execute(pool)
    .await?;
    let ledger: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'tenant_databases'",
    )
    .bind(LEDGER)
    .fetch_one(pool)
    .await?;
    if ledger > 0 {
        sqlx::query(&format!(
            "DELETE FROM `{LEDGER}`.tenant_databases WHERE db_name = ?"
        ))
        .bind(name)
        .execute(pool)
        .await?;
    }
    Ok(())
}

impl Harness {
    /// Records `subdomain`, named by the test itself (or by a program it runs), as a
    /// tenant of this world: its database, user and ledger row are dropped when the
    /// world finishes or drops. [`Harness::subdomain`] records its names itself.
    pub fn track_subdomain(&self, subdomain: &str) {
        self.tenants.track(db_step::database_name(subdomain));
    }

    /// Records a tenant database (and user) the test makes itself under `name`
    /// (`[a-z0-9_]+`), dropped like a tracked subdomain's.
    pub fn track_database(&self, name: &str) {
        self.tenants.track(name.to_string());
    }
}
