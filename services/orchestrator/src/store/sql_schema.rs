//! What the SQL store is made of: the tables and indexes it creates when missing (the
//! same portable DDL for SQLite and MySQL/MariaDB, but for the text type), and where
//! an embedded SQLite store's file is.

use super::{lease, pool, standbys, Error};

pub(super) fn ddl(mysql: bool) -> Vec<String> {
    // MySQL's TEXT stops at 64 KiB; a saga with bulky step outputs may need more.
    let text = if mysql { "MEDIUMTEXT" } else { "TEXT" };
    let mut statements = vec![
        format!(
            "CREATE TABLE IF NOT EXISTS sagas (
                saga_id VARCHAR(36) NOT NULL PRIMARY KEY,
                subdomain VARCHAR(64) NOT NULL,
                status VARCHAR(32) NOT NULL,
                sequence BIGINT NOT NULL,
                state {text} NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS progress_events (
                saga_id VARCHAR(36) NOT NULL,
                sequence BIGINT NOT NULL,
                event {text} NOT NULL,
                published BIGINT NOT NULL,
                PRIMARY KEY (saga_id, sequence))"
        ),
        "CREATE TABLE IF NOT EXISTS subdomain_claims (
            subdomain VARCHAR(64) NOT NULL PRIMARY KEY,
            saga_id VARCHAR(36) NOT NULL)"
            .to_string(),
    ];
    // Apart from the tables, so a store made by an earlier release gains the indexes
    // it lacks (MariaDB, like SQLite, takes `CREATE INDEX IF NOT EXISTS`).
    statements.extend([
        "CREATE INDEX IF NOT EXISTS sagas_by_status ON sagas (status, updated_at)".into(),
        // The operators' lists walk sagas newest first.
        "CREATE INDEX IF NOT EXISTS sagas_by_created ON sagas (created_at, saga_id)".into(),
        "CREATE INDEX IF NOT EXISTS progress_unpublished ON progress_events (published)".into(),
    ]);
    statements.extend(lease::sql::ddl(mysql));
    statements.extend(standbys::sql::ddl());
    statements.extend(pool::sql::ddl());
    statements
}

/// The sqlx URL of a `sqlite:` store URL (the file created when missing) and the
/// file's path, for the writer's own connection. Its folder is created when missing.
pub(super) fn sqlite_url(url: &str) -> Result<(String, std::path::PathBuf), Error> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        // The writer has a connection of its own, which would see another database.
        return Err(Error::Unavailable(format!(
            "the SQLite store needs a file (sqlite://path/to/file.db), not {url:?}"
        )));
    }
    if let Some(parent) = std::path::Path::new(path).parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::Corrupt(format!("cannot create {}: {e}", parent.display())))?;
        }
    }
    let url = if url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    };
    Ok((url, path.into()))
}
