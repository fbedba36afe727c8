//! A MariaDB store whose database does not exist yet: created when the account may
//! create it; otherwise a one-line error that names the database and the statements
//! an administrator runs (and those statements are enough).

use orchestrator::store::{SagaStore, SqlStore};
use uuid::Uuid;

use super::{admin_sql_at_drop, started, MysqlDatabase};

async fn admin(server: &str) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    <sqlx::AnyConnection as sqlx::Connection>::connect(server)
        .await
        .expect("MariaDB on TEST_MYSQL_URL")
}

/// Whether the server has database `name` in utf8mb4.
async fn exists_in_utf8mb4(server: &str, name: &str) -> bool {
    let found: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ? AND DEFAULT_CHARACTER_SET_NAME = 'utf8mb4'",
    )
    .bind(name)
    .fetch_one(&mut admin(server).await)
    .await
    .expect("schemata");
    found == 1
}

#[tokio::test]
async fn mysql_store_creates_its_missing_database() {
    let database = MysqlDatabase::absent();
    let store = SqlStore::connect(&database.url())
        .await
        .expect("a store on a database that did not exist");
    assert!(exists_in_utf8mb4(&database.server, &database.name).await);
    let saga = started(&store, "created-db").await;
    assert_eq!(store.get(saga.id).await.expect("get"), Some(saga.clone()));
    // Opened again, it is found, not made again.
    let again = SqlStore::connect(&database.url()).await.expect("reopen");
    assert_eq!(again.get(saga.id).await.expect("get"), Some(saga));
}

/// A MariaDB account of one test's own, with only the grants the test gives it;
/// dropped when the test ends.
struct MysqlUser {
    server: String,
    name: String,
    password: String,
}

impl MysqlUser {
    async fn create(server: &str) -> Self {
        let user = Self {
            server: server.to_string(),
            name: format!("saga_nc_{}", &Uuid::new_v4().simple().to_string()[..12]),
            password: Uuid::new_v4().simple().to_string(),
        };
        sqlx::raw_sql(&format!(
            "CREATE USER '{}'@'%' IDENTIFIED BY '{}'",
            user.name, user.password
        ))
        .execute(&mut admin(server).await)
        .await
        .expect("test user");
        user
    }

    /// The URL of database `name` as this user.
    fn url(&self, database: &str) -> String {
        let host = match self.server.rsplit_once('@') {
            Some((_, host)) => host,
            None => self.server.trim_start_matches("mysql://"),
        };
        format!("mysql://{}:{}@{host}/{database}", self.name, self.password)
    }
}

impl Drop for MysqlUser {
    fn drop(&mut self) {
        let dropped = admin_sql_at_drop(
            &self.server,
            format!("DROP USER IF EXISTS '{}'@'%'", self.name),
        );
        if !dropped && !std::thread::panicking() {
            panic!("test user {} could not be dropped", self.name);
        }
    }
}

/// What the store says to an account that may not create its database; `state` is
/// what it says of the database.
async fn refusal(user: &MysqlUser, database: &MysqlDatabase, state: &str) -> String {
    let error = SqlStore::connect(&user.url(&database.name))
        .await
        .expect_err("the account may not create the database");
    let message = error.to_string();
    assert!(!message.contains('\n'), "one line: {message}");
    assert!(
        !message.contains(&user.password),
        "no password in: {message}"
    );
    assert!(
        message.contains(&format!("`{}` {state},", database.name)),
        "the error says the database {state}: {message}"
    );
    let create = format!("CREATE DATABASE IF NOT EXISTS `{}`", database.name);
    let grant = format!(
        "GRANT ALL PRIVILEGES ON `{}`.* TO '{}'@'%'",
        database.name, user.name
    );
    assert!(
        message.contains(&create) && message.contains(&grant),
        "the error names the database and the statements to run: {message}"
    );
    assert!(
        !exists_in_utf8mb4(&database.server, &database.name).await,
        "nothing was created"
    );
    message
}

#[tokio::test]
async fn mysql_store_says_what_to_run_when_it_may_not_create_its_database() {
    let (granted, ungranted) = (MysqlDatabase::absent(), MysqlDatabase::absent());
    let user = MysqlUser::create(&granted.server).await;
    // A grant on a missing database: the server says "unknown database" (1049).
    sqlx::raw_sql(&format!(
        "GRANT SELECT ON `{}`.* TO '{}'@'%'",
        granted.name, user.name
    ))
    .execute(&mut admin(&granted.server).await)
    .await
    .expect("grant");
    refusal(&user, &granted, "does not exist").await;

    // No grant at all: the server says "access denied" (1044), missing or not.
    let message = refusal(&user, &ungranted, "does not exist or is not granted").await;

    // What the message says to run is enough.
    let statements = message
        .split_once("run: ")
        .map(|(_, statements)| statements)
        .expect("statements to run");
    sqlx::raw_sql(statements)
        .execute(&mut admin(&ungranted.server).await)
        .await
        .expect("the statements the error names");
    let store = SqlStore::connect(&user.url(&ungranted.name))
        .await
        .expect("the account opens its store once the statements ran");
    assert!(store.leader().await.expect("leader").is_none());
}

/// Whether table `sagas` of database `name` has index `index`.
async fn has_index(server: &str, name: &str, index: &str) -> bool {
    let found: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'sagas' AND INDEX_NAME = ?",
    )
    .bind(name)
    .bind(index)
    .fetch_one(&mut admin(server).await)
    .await
    .expect("statistics");
    found > 0
}

#[tokio::test]
async fn mysql_store_made_by_an_earlier_release_gains_the_listing_index() {
    let database = MysqlDatabase::create().await;
    // The table as releases before the operators' lists made it: no index by creation.
    sqlx::raw_sql(&format!(
        "CREATE TABLE {}.sagas (
            saga_id VARCHAR(36) NOT NULL PRIMARY KEY, subdomain VARCHAR(64) NOT NULL,
            status VARCHAR(32) NOT NULL, sequence BIGINT NOT NULL, state MEDIUMTEXT NOT NULL,
            created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
            INDEX sagas_by_status (status, updated_at))",
        database.name
    ))
    .execute(&mut admin(&database.server).await)
    .await
    .expect("an earlier release's table");
    assert!(!has_index(&database.server, &database.name, "sagas_by_created").await);

    let store = database.store().await;
    assert!(has_index(&database.server, &database.name, "sagas_by_created").await);
    let saga = started(&store, "old-schema").await;
    assert_eq!(store.get(saga.id).await.expect("get"), Some(saga));
}
