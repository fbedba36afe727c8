//! Opening a MariaDB/MySQL store: a database that does not exist yet is created, so a
//! fresh `SAGA_STORE_URL` works as SQLite's does. When the account may not create it,
//! the error is one line that names the statements an administrator runs.

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::mysql::MySqlDatabaseError;
use sqlx::{AnyPool, ConnectOptions, Row};

use super::Error;

/// MariaDB's "unknown database", and "access denied to database", which it answers
/// instead when the account has no grant on the name at all (missing or not).
const UNKNOWN_DATABASE: u16 = 1049;
const ACCESS_DENIED_TO_DATABASE: u16 = 1044;

/// A pool on the store's database, created first if it is missing.
pub(super) async fn connect(options: AnyConnectOptions) -> Result<AnyPool, Error> {
    match pool(options.clone()).await {
        Err(e) if unopened(&e) => {
            create(&options, number(&e) == Some(UNKNOWN_DATABASE)).await?;
            Ok(pool(options).await?)
        }
        opened => Ok(opened?),
    }
}

async fn pool(options: AnyConnectOptions) -> Result<AnyPool, sqlx::Error> {
    AnyPoolOptions::new()
        .max_connections(8)
        .after_connect(|conn, _| {
            Box::pin(async move {
                // The lease reads the clock with NOW(3) in the session's time zone;
                // UTC has no daylight saving hour to read twice. (sqlx sets UTC too,
                // unless the URL names another zone.) The store has no temporal
                // column, so nothing else depends on it.
                sqlx::Executor::execute(&mut *conn, "SET time_zone = '+00:00'").await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await
}

/// The MariaDB error number of a statement the server refused.
fn number(e: &sqlx::Error) -> Option<u16> {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number),
        _ => None,
    }
}

/// The database could not be opened because it is missing (or, for an account
/// without any grant on it, may be).
fn unopened(e: &sqlx::Error) -> bool {
    matches!(
        number(e),
        Some(UNKNOWN_DATABASE | ACCESS_DENIED_TO_DATABASE)
    )
}

/// Names we put in backquotes ourselves: no quote, dot or slash can slip in.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
}

/// Creates the URL's database through a connection to the server alone; `missing`
/// when the server said so (rather than denying access to the name).
async fn create(options: &AnyConnectOptions, missing: bool) -> Result<(), Error> {
    let mut server_url = options.database_url.clone();
    let name = server_url.path().trim_start_matches('/').to_string();
    if !plain_name(&name) {
        return Err(Error::Unavailable(format!(
            "the store database {name:?} cannot be opened, and a name other than letters, digits, '_', '-' or '$' is not created automatically: create it yourself"
        )));
    }
    let url_user = server_url.username().to_string();
    server_url.set_path("");
    let server = AnyConnectOptions::from_url(&server_url)?.disable_statement_logging();
    // A pool of one, not a bare connection: executing on `&mut AnyConnection` makes
    // the future's `Send` unprovable too.
    let conn = AnyPoolOptions::new()
        .max_connections(1)
        .connect_with(server)
        .await?;
    let account = account(&conn, url_user).await;
    let statement = format!(
        "CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    );
    let created = sqlx::raw_sql(&statement).execute(&conn).await;
    conn.close().await;
    match created {
        Ok(_) => {
            tracing::info!(database = %name, "saga store database created");
            Ok(())
        }
        Err(e) if number(&e).is_some() => {
            let said = match &e {
                sqlx::Error::Database(db) => db.message().to_string(),
                other => other.to_string(),
            };
            let state = if missing {
                "does not exist"
            } else {
                "does not exist or is not granted"
            };
            Err(Error::Unavailable(format!(
                "the store database `{name}` {state}, and {account} may not create it ({said}); as a MariaDB administrator run: {statement}; GRANT ALL PRIVILEGES ON `{name}`.* TO {account};"
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// The account as the server knows it (`'user'@'host'`), for the GRANT to suggest.
async fn account(conn: &AnyPool, url_user: String) -> String {
    let current = sqlx::query("SELECT CURRENT_USER()")
        .fetch_one(conn)
        .await
        .ok()
        .and_then(|row| {
            row.try_get::<String, _>(0).ok().or_else(|| {
                row.try_get::<Vec<u8>, _>(0)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
            })
        });
    let (user, host) = match current.as_deref().and_then(|c| c.rsplit_once('@')) {
        Some((user, host)) => (user.to_string(), host.to_string()),
        None => (url_user, "%".to_string()),
    };
    format!("'{user}'@'{host}'")
}
