//! db-step's ledger database against real MariaDB: `prepare` creates it when it is
//! missing; an account that may not create it gets a one-line error naming the
//! database and the statements an administrator runs (and they are enough).

use db_step::mariadb::MariaDb;
use sqlx::Connection;
use uuid::Uuid;

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", &Uuid::new_v4().simple().to_string()[..12])
}

/// Statements run as the administrator when the test ends, failed or not: drops what
/// the test made.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let statements = self.0.join("; ");
        // The test's runtime may be unwinding: a thread and a runtime of their own.
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let mut admin = sqlx::MySqlConnection::connect(&tests::mysql_url())
                    .await
                    .expect("MariaDB on TEST_MYSQL_URL");
                sqlx::raw_sql(&statements)
                    .execute(&mut admin)
                    .await
                    .expect("cleanup");
            });
        })
        .join();
        if done.is_err() && !std::thread::panicking() {
            panic!("the test's databases and users could not be dropped");
        }
    }
}

/// Whether the server has database `name` in utf8mb4, with the ledger's table.
async fn ledger_exists(name: &str) -> bool {
    let found: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA s
         JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = s.SCHEMA_NAME
         WHERE s.SCHEMA_NAME = ? AND s.DEFAULT_CHARACTER_SET_NAME = 'utf8mb4'
           AND t.TABLE_NAME = 'tenant_databases'",
    )
    .bind(name)
    .fetch_one(&tests::admin_pool().await)
    .await
    .expect("schemata");
    found == 1
}

#[tokio::test]
async fn prepare_creates_a_missing_ledger() {
    let ledger = unique("ledger_new");
    let _cleanup = Cleanup(vec![format!("DROP DATABASE IF EXISTS `{ledger}`")]);
    assert!(!ledger_exists(&ledger).await);
    let databases = MariaDb::new(&tests::mysql_url(), &ledger).expect("mariadb");
    databases.prepare().await.expect("ledger created");
    assert!(ledger_exists(&ledger).await);
}

#[tokio::test]
async fn prepare_names_what_to_run_when_the_account_may_not_create_the_ledger() {
    let ledger = unique("ledger_denied");
    let user = unique("ledger_nc");
    let password = Uuid::new_v4().simple().to_string();
    let _cleanup = Cleanup(vec![
        format!("DROP DATABASE IF EXISTS `{ledger}`"),
        format!("DROP USER IF EXISTS '{user}'@'%'"),
    ]);
    let admin = tests::admin_pool().await;
    sqlx::raw_sql(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"
    ))
    .execute(&admin)
    .await
    .expect("test user");
    let server = tests::mysql_url();
    let host = server
        .rsplit_once('@')
        .map_or(server.trim_start_matches("mysql://"), |(_, host)| host);
    let url = format!("mysql://{user}:{password}@{host}");

    let databases = MariaDb::new(&url, &ledger).expect("mariadb");
    let error = databases
        .prepare()
        .await
        .expect_err("the account may not create databases");
    let db_step::Error::Refused(message) = &error else {
        panic!("a missing privilege is no outage: {error:?}")
    };
    assert!(!message.contains('\n'), "one line: {message}");
    assert!(!message.contains(&password), "no password in: {message}");
    let create = format!("CREATE DATABASE IF NOT EXISTS `{ledger}`");
    let grant = format!("GRANT ALL PRIVILEGES ON `{ledger}`.* TO '{user}'@'%'");
    assert!(
        message.contains(&create) && message.contains(&grant),
        "the error names the ledger and the statements to run: {message}"
    );
    assert!(!ledger_exists(&ledger).await, "nothing was created");

    // What the message says to run is enough.
    let statements = message
        .split_once("run: ")
        .map(|(_, statements)| statements)
        .expect("statements to run");
    sqlx::raw_sql(statements)
        .execute(&admin)
        .await
        .expect("the statements the error names");
    databases
        .prepare()
        .await
        .expect("the account prepares its ledger once they ran");
    assert!(ledger_exists(&ledger).await);
}
