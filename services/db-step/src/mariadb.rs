//! [`TenantDatabases`] over a real MariaDB/MySQL server, with an administrative
//! account (`TENANT_DB_ADMIN_URL`). The ledger lives in its own database
//! (`TENANT_DB_LEDGER`, default `saga_provisioning`); its `db_password` column (the
//! user's password, sealed) is added to a ledger made by an older release with
//! MariaDB's `ADD COLUMN IF NOT EXISTS`.
//!
//! Names are interpolated into SQL (identifiers cannot be bound), so every name is
//! checked against `[a-z0-9_]` first; passwords come from `[A-Za-z0-9]` only.
//!
//! A ledger the account may not create is a one-line error that names the statements
//! an administrator runs.

use std::str::FromStr;
use std::time::Duration;

use contracts::Sealed;
use secrets::{ExposeSecret, SecretString};
use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection, MySqlPool, Row};
use uuid::Uuid;

use crate::{Error, Holder, TenantDatabases};

/// MariaDB error numbers worth a retry: lock wait timeout, deadlock, too many
/// connections, server gone away, lost connection, server shutting down.
const TRANSIENT_CODES: &[u16] = &[1205, 1213, 1040, 2006, 2013, 1053];

/// MariaDB's "access denied" to a database, and "command denied" on a table.
const ACCESS_DENIED_CODES: &[u16] = &[1044, 1142];

/// The MariaDB error number of a statement the server refused.
fn error_number(e: &sqlx::Error) -> Option<u16> {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number),
        _ => None,
    }
}

fn classify(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(db) => {
            // The error number, not `db.code()`: that is the five-character SQLSTATE
            // (`40001` for a deadlock), which never equals a number.
            let number = error_number(&e);
            if number.is_some_and(|n| TRANSIENT_CODES.contains(&n)) {
                Error::Unavailable(db.message().to_string())
            } else {
                let code = number.map(|n| n.to_string()).unwrap_or_default();
                Error::Refused(format!("{} (error {code})", db.message()))
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => Error::Unavailable(e.to_string()),
        _ => Error::Refused(e.to_string()),
    }
}

/// Keeps a statement that carried a password out of error texts.
fn scrub(e: Error, password: &SecretString) -> Error {
    let secret = password.expose_secret();
    match e {
        Error::Unavailable(m) => Error::Unavailable(m.replace(secret, "***")),
        Error::Refused(m) => Error::Refused(m.replace(secret, "***")),
    }
}

fn checked_identifier(name: &str) -> Result<&str, Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(name)
    } else {
        Err(Error::Refused(format!(
            "{name:?} is not a safe database name"
        )))
    }
}

/// Tenant databases on a MariaDB server.
#[derive(Clone)]
pub struct MariaDb {
    pool: MySqlPool,
    ledger: String,
}

impl MariaDb {
    /// A lazily-connecting pool on `admin_url`; statements are never logged (they
    /// carry passwords).
    pub fn new(admin_url: &str, ledger: &str) -> anyhow::Result<Self> {
        let options = MySqlConnectOptions::from_str(admin_url)?.disable_statement_logging();
        let pool = MySqlPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            ledger: checked_identifier(ledger)
                .map_err(|e| anyhow::anyhow!("TENANT_DB_LEDGER: {e}"))?
                .to_string(),
        })
    }

    /// Creates the ledger if it is missing, and adds the password column to an older
    /// one (nullable: entries made before it have none). When the account may not
    /// create it, [`Error::Refused`] says, in one line, what an administrator runs.
    pub async fn prepare(&self) -> Result<(), Error> {
        let ledger = &self.ledger;
        let create = format!(
            "CREATE DATABASE IF NOT EXISTS `{ledger}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        );
        let prepared = sqlx::raw_sql(&format!(
            "{create};
             CREATE TABLE IF NOT EXISTS `{ledger}`.tenant_databases (
                db_name VARCHAR(64) NOT NULL PRIMARY KEY,
                saga_id CHAR(36) NOT NULL,
                created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
                db_password VARCHAR(512) NULL);
             ALTER TABLE `{ledger}`.tenant_databases ADD COLUMN IF NOT EXISTS db_password VARCHAR(512) NULL;"
        ))
        .execute(&self.pool)
        .await;
        match prepared {
            Ok(_) => Ok(()),
            Err(e) if error_number(&e).is_some_and(|n| ACCESS_DENIED_CODES.contains(&n)) => {
                let said = match &e {
                    sqlx::Error::Database(db) => db.message().to_string(),
                    other => other.to_string(),
                };
                let account = self.account().await;
                Err(Error::Refused(format!(
                    "{account} may not create the ledger database `{ledger}` ({said}); as a MariaDB administrator run: {create}; GRANT ALL PRIVILEGES ON `{ledger}`.* TO {account};"
                )))
            }
            Err(e) => Err(classify(e)),
        }
    }

    /// The account as the server knows it (`'user'@'host'`), for the GRANT to suggest.
    async fn account(&self) -> String {
        let current: Option<String> = sqlx::query_scalar("SELECT CURRENT_USER()")
            .fetch_one(&self.pool)
            .await
            .ok();
        match current.as_deref().and_then(|c| c.rsplit_once('@')) {
            Some((user, host)) => format!("'{user}'@'{host}'"),
            None => format!("'{}'@'%'", self.pool.connect_options().get_username()),
        }
    }

    async fn exists(&self, name: &str) -> Result<bool, Error> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?)
                  + (SELECT COUNT(*) FROM mysql.user WHERE User = ?) AS found",
        )
        .bind(name)
        .bind(name)
        .fetch_one(&self.pool)
        .await
        .map_err(classify)?;
        let found: i64 = row.try_get("found").map_err(classify)?;
        Ok(found > 0)
    }

    async fn ledger_holder(&self, name: &str) -> Result<Option<Uuid>, Error> {
        let row = sqlx::query(&format!(
            "SELECT saga_id FROM `{}`.tenant_databases WHERE db_name = ?",
            self.ledger
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.map(|r| {
            let id: String = r.try_get("saga_id").map_err(classify)?;
            Uuid::parse_str(&id)
                .map_err(|e| Error::Refused(format!("ledger holds a bad saga id: {e}")))
        })
        .transpose()
    }
}

impl TenantDatabases for MariaDb {
    async fn ping(&self) -> Result<(), Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(classify)
            .map(|_| ())
    }

    async fn holder(&self, name: &str) -> Result<Holder, Error> {
        let name = checked_identifier(name)?;
        if let Some(saga) = self.ledger_holder(name).await? {
            return Ok(Holder::Saga(saga));
        }
        Ok(if self.exists(name).await? {
            Holder::Foreign
        } else {
            Holder::Nobody
        })
    }

    async fn record(
        &self,
        name: &str,
        saga: Uuid,
        password: &Sealed,
    ) -> Result<Option<Uuid>, Error> {
        let name = checked_identifier(name)?;
        let inserted = sqlx::query(&format!(
            "INSERT INTO `{}`.tenant_databases (db_name, saga_id, db_password) VALUES (?, ?, ?)",
            self.ledger
        ))
        .bind(name)
        .bind(saga.to_string())
        .bind(&password.0)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(None),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(self
                .ledger_holder(name)
                .await?
                .filter(|holder| *holder != saga)),
            Err(e) => Err(classify(e)),
        }
    }

    async fn kept_password(&self, name: &str, saga: Uuid) -> Result<Option<Sealed>, Error> {
        let name = checked_identifier(name)?;
        let row = sqlx::query(&format!(
            "SELECT db_password FROM `{}`.tenant_databases WHERE db_name = ? AND saga_id = ?",
            self.ledger
        ))
        .bind(name)
        .bind(saga.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        let Some(row) = row else { return Ok(None) };
        let sealed: Option<String> = row.try_get("db_password").map_err(classify)?;
        Ok(sealed.filter(|s| !s.is_empty()).map(Sealed))
    }

    async fn keep_password(&self, name: &str, saga: Uuid, password: &Sealed) -> Result<(), Error> {
        let name = checked_identifier(name)?;
        sqlx::query(&format!(
            "UPDATE `{}`.tenant_databases SET db_password = ? WHERE db_name = ? AND saga_id = ?",
            self.ledger
        ))
        .bind(&password.0)
        .bind(name)
        .bind(saga.to_string())
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn adopt(
        &self,
        name: &str,
        from: Uuid,
        to: Uuid,
        password: &Sealed,
    ) -> Result<bool, Error> {
        let name = checked_identifier(name)?;
        let moved = sqlx::query(&format!(
            "UPDATE `{}`.tenant_databases SET saga_id = ?, db_password = ? WHERE db_name = ? AND saga_id = ?",
            self.ledger
        ))
        .bind(to.to_string())
        .bind(&password.0)
        .bind(name)
        .bind(from.to_string())
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(moved.rows_affected() == 1)
    }

    async fn login_works(&self, name: &str, password: &SecretString) -> Result<bool, Error> {
        let name = checked_identifier(name)?;
        let options = self
            .pool
            .connect_options()
            .as_ref()
            .clone()
            .username(name)
            .password(password.expose_secret())
            .database(name);
        match options.connect().await {
            Ok(connection) => {
                let _ = connection.close().await;
                Ok(true)
            }
            // Access denied (user or database), unknown database.
            Err(e) if error_number(&e).is_some_and(|n| [1044, 1045, 1049].contains(&n)) => {
                Ok(false)
            }
            Err(e) => Err(scrub(classify(e), password)),
        }
    }

    async fn user_exists(&self, name: &str) -> Result<bool, Error> {
        let name = checked_identifier(name)?;
        let found: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mysql.user WHERE User = ?")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        Ok(found > 0)
    }

    async fn create(&self, name: &str, password: &SecretString) -> Result<(), Error> {
        let name = checked_identifier(name)?;
        let secret = password.expose_secret();
        if !secret.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Error::Refused(
                "generated password has unexpected characters".into(),
            ));
        }
        // Text protocol (raw_sql): account statements are not all preparable.
        sqlx::raw_sql(&format!(
            "CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
             CREATE USER IF NOT EXISTS '{name}'@'%' IDENTIFIED BY '{secret}';
             ALTER USER '{name}'@'%' IDENTIFIED BY '{secret}';
             GRANT ALL PRIVILEGES ON `{name}`.* TO '{name}'@'%';"
        ))
        .execute(&self.pool)
        .await
        .map_err(|e| scrub(classify(e), password))?;
        Ok(())
    }

    async fn drop_and_forget(&self, name: &str, saga: Uuid) -> Result<(), Error> {
        let name = checked_identifier(name)?;
        sqlx::raw_sql(&format!(
            "DROP DATABASE IF EXISTS `{name}`; DROP USER IF EXISTS '{name}'@'%';"
        ))
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        sqlx::query(&format!(
            "DELETE FROM `{}`.tenant_databases WHERE db_name = ? AND saga_id = ?",
            self.ledger
        ))
        .bind(name)
        .bind(saga.to_string())
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lock wait timeout (as a deadlock or a server going away) is worth a retry:
    /// the saga's retry policy then gets its chance, instead of a rollback at once.
    #[tokio::test]
    async fn a_lock_wait_timeout_is_transient() {
        let url = std::env::var("TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
        let pool = MySqlPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .expect("MariaDB on TEST_MYSQL_URL");
        let db = format!(
            "dbstep_classify_{}",
            &Uuid::new_v4().simple().to_string()[..8]
        );
        sqlx::raw_sql(&format!(
            "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.t (id INT PRIMARY KEY); INSERT INTO `{db}`.t VALUES (1);"
        ))
        .execute(&pool)
        .await
        .expect("test table");
        let mut holder = pool.begin().await.expect("holder");
        sqlx::query(&format!("SELECT id FROM `{db}`.t WHERE id = 1 FOR UPDATE"))
            .execute(&mut *holder)
            .await
            .expect("lock the row");
        let mut waiter = pool.acquire().await.expect("waiter");
        sqlx::query("SET SESSION innodb_lock_wait_timeout = 1")
            .execute(&mut *waiter)
            .await
            .expect("short lock wait");
        let timed_out = sqlx::query(&format!("UPDATE `{db}`.t SET id = 2 WHERE id = 1"))
            .execute(&mut *waiter)
            .await
            .expect_err("the row is locked");
        drop(waiter);
        holder.rollback().await.expect("release");
        sqlx::query(&format!("DROP DATABASE `{db}`"))
            .execute(&pool)
            .await
            .expect("drop the test database");
        assert_eq!(error_number(&timed_out), Some(1205), "{timed_out}");
        assert!(
            matches!(classify(timed_out), Error::Unavailable(_)),
            "a lock wait timeout is retried"
        );
    }
}
