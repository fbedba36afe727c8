//! What a saga leaves behind, checked on the bench folder and the MariaDB server.

use crate::mysql_url;

/// What a rollback must leave of `subdomain` (site `<subdomain>.example.test` on the
/// bench at `root`): no site in `sites/`, no provisioning bookkeeping, no database, no
/// database user.
pub async fn assert_nothing_left(root: &std::path::Path, subdomain: &str) {
    assert!(
        !root
            .join(format!("sites/{subdomain}.example.test"))
            .exists(),
        "{subdomain}: site left in sites/"
    );
    assert_no_claims(root, subdomain);
    assert_eq!(
        mariadb_has(&db_step::database_name(subdomain)).await,
        (false, false),
        "{subdomain}: database or user left"
    );
}

/// What any ended saga must leave of the site step's bookkeeping for `subdomain`'s site
/// on the bench at `root`: nothing under `sites/.provisioning/`.
pub fn assert_no_claims(root: &std::path::Path, subdomain: &str) {
    let claims = root.join(format!("sites/.provisioning/{subdomain}.example.test"));
    let inside: Vec<String> = std::fs::read_dir(&claims)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !claims.exists(),
        "{subdomain}: provisioning bookkeeping left in sites/: {} holding {inside:?}",
        claims.display()
    );
}

/// Whether a database or a user of that name exists on the MariaDB server.
pub async fn mariadb_has(name: &str) -> (bool, bool) {
    let pool = admin_pool().await;
    let db: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
    )
    .bind(name)
    .fetch_one(&pool)
    .await
    .expect("schemata");
    let user: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mysql.user WHERE User = ?")
        .bind(name)
        .fetch_one(&pool)
        .await
        .expect("users");
    (db > 0, user > 0)
}

/// A pool with the MariaDB admin account.
pub async fn admin_pool() -> sqlx::MySqlPool {
    sqlx::MySqlPool::connect(&mysql_url())
        .await
        .expect("MariaDB on TEST_MYSQL_URL")
}

/// Drops a tenant database and user `name` (`[a-z0-9_]+`) and its ledger row, now
/// (a harness drops those of its names itself when it finishes or drops).
pub async fn drop_tenant(name: &str) {
    let pool = admin_pool().await;
    let _ = crate::tenants::drop_one(&pool, name).await;
}
