//! One conformance suite, run against every saga store backend: the memory store,
//! embedded SQLite and MariaDB/MySQL (the server on `TEST_MYSQL_URL`, default
//! `mysql://root@127.0.0.1:3306`). Each MariaDB test gets its own database, dropped
//! afterwards. `groups.rs` holds the scenarios of many changes at once and of two
//! writers on one database, `lease.rs` the leader lease and its fencing, `paging.rs`
//! the operators' list filters and pages and the operator actions kept in a timeline,
//! `mysql_database.rs` a MariaDB store whose database does not exist yet, `standbys.rs`
//! the standby pool's rows, `pool.rs` the operators' pool size, misses and figures.

#[path = "store_conformance/groups.rs"]
mod groups;
#[path = "store_conformance/lease.rs"]
mod lease;
#[path = "store_conformance/mysql_database.rs"]
mod mysql_database;
#[path = "store_conformance/paging.rs"]
mod paging;
#[path = "store_conformance/pool.rs"]
mod pool;
#[path = "store_conformance/standbys.rs"]
mod standbys;

use std::time::Duration;

use chrono::Utc;
use contracts::signup::AuthProvider;
use contracts::{Rejection, SagaStatus, TenantContext};
use orchestrator::saga::{next, Decision, Input, Saga, SagaDefinition};
use orchestrator::store::{Inserted, MemoryStore, SagaStore, SqlStore, Updated};
use uuid::Uuid;

fn tenant(subdomain: &str) -> TenantContext {
    TenantContext {
        subdomain: subdomain.into(),
        site_name: format!("{subdomain}.localhost"),
        organization_name: "Org".into(),
        admin_email: "a@b.co".into(),
        admin_full_name: "A B".into(),
        auth_provider: AuthProvider::Google,
        admin_password: None,
        standby: None,
        standby_build: false,
    }
}

fn definition() -> SagaDefinition {
    SagaDefinition::tenant_provisioning()
        .with_timings(Duration::from_secs(5), Duration::from_millis(10))
}

/// Applies `input` and stores the transition, returning the new saga.
pub(crate) async fn advance(store: &impl SagaStore, saga: &Saga, input: Input) -> (Saga, Updated) {
    let Decision::Apply {
        saga: after,
        actions,
    } = next(&definition(), saga, input, Utc::now())
    else {
        panic!("input ignored")
    };
    let events: Vec<_> = actions
        .into_iter()
        .filter_map(|a| match a {
            orchestrator::saga::Action::Publish(e) => Some(e),
            _ => None,
        })
        .collect();
    let updated = store.update(saga, &after, &events).await.expect("update");
    (after, updated)
}

pub(crate) async fn started(store: &impl SagaStore, subdomain: &str) -> Saga {
    let saga = Saga::accepted(Uuid::new_v4(), tenant(subdomain), Utc::now());
    assert_eq!(
        store.insert(&saga, &[]).await.expect("insert"),
        Inserted::Stored
    );
    advance(store, &saga, Input::Start).await.0
}

pub(crate) async fn fail_first_step_and_roll_back(store: &impl SagaStore, saga: &Saga) -> Saga {
    let mut saga = saga.clone();
    let report = |saga: &Saga, action, report| {
        Input::Reported(contracts::StepEvent {
            command_id: String::new(),
            saga_id: saga.id,
            run: saga.run,
            step: "database".into(),
            action,
            attempt: 1,
            report,
            at: Utc::now(),
        })
    };
    let failed = contracts::StepReport::Failed {
        code: "x".into(),
        message: "x".into(),
        retryable: false,
    };
    saga = advance(
        store,
        &saga,
        report(&saga, contracts::StepAction::Execute, failed),
    )
    .await
    .0;
    let done = contracts::StepReport::Completed {
        output: serde_json::Value::Null,
    };
    saga = advance(
        store,
        &saga,
        report(&saga, contracts::StepAction::Compensate, done),
    )
    .await
    .0;
    assert_eq!(saga.status, SagaStatus::RolledBack);
    saga
}

async fn conformance(store: impl SagaStore) {
    let suffix = &Uuid::new_v4().simple().to_string()[..8];
    let sub = |name: &str| format!("{name}-{suffix}");

    // A stored saga reads back as it was, with its timeline in order.
    let saga = started(&store, &sub("alpha")).await;
    assert_eq!(store.get(saga.id).await.expect("get"), Some(saga.clone()));
    let timeline = store.timeline(saga.id).await.expect("timeline");
    assert_eq!(
        timeline.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        (1..=saga.sequence).collect::<Vec<_>>()
    );
    assert!(store.get(Uuid::new_v4()).await.expect("get").is_none());

    // The same id again is a duplicate; another id with the same subdomain is refused.
    assert_eq!(
        store.insert(&saga, &[]).await.expect("insert"),
        Inserted::Duplicate
    );
    let rival = Saga::accepted(Uuid::new_v4(), tenant(&sub("alpha")), Utc::now());
    assert_eq!(
        store.insert(&rival, &[]).await.expect("insert"),
        Inserted::SubdomainTaken(saga.id)
    );
    assert!(
        store.get(rival.id).await.expect("get").is_none(),
        "a refused insert leaves nothing"
    );
    assert_eq!(
        store.subdomain_holder(&sub("alpha")).await.expect("holder"),
        Some(saga.id)
    );

    // A rejected saga is stored but claims nothing.
    let rejection = Rejection {
        code: "invalid_email",
        message: "bad".into(),
    };
    let (rejected, event) =
        Saga::rejected(Uuid::new_v4(), tenant(&sub("beta")), &rejection, Utc::now());
    assert_eq!(
        store.insert(&rejected, &[event]).await.expect("insert"),
        Inserted::Stored
    );
    assert_eq!(
        store.subdomain_holder(&sub("beta")).await.expect("holder"),
        None
    );

    // A stale writer loses.
    let (moved, _) = advance(
        &store,
        &saga,
        Input::TimerFired(saga.timer().expect("timer")),
    )
    .await;
    let err = store
        .update(&saga, &moved, &[])
        .await
        .expect_err("stale update");
    assert!(matches!(err, orchestrator::store::Error::Conflict(id) if id == saga.id));
    // A transition must advance the sequence, or the check could pass twice.
    let unmoved = Saga {
        percent: moved.percent + 1,
        ..moved.clone()
    };
    assert!(matches!(
        store.update(&moved, &unmoved, &[]).await,
        Err(orchestrator::store::Error::Refused(_))
    ));
    assert_eq!(store.get(moved.id).await.expect("get"), Some(moved.clone()));

    // Rolling back frees the subdomain; a replay takes it back unless someone else has it.
    let rolled_back =
        fail_first_step_and_roll_back(&store, &started(&store, &sub("gamma")).await).await;
    assert_eq!(
        store.subdomain_holder(&sub("gamma")).await.expect("holder"),
        None
    );
    let (replayed, outcome) = advance(&store, &rolled_back, Input::Replay(None)).await;
    assert_eq!(outcome, Updated::Stored);
    assert_eq!(
        store.subdomain_holder(&sub("gamma")).await.expect("holder"),
        Some(replayed.id)
    );
    let rolled_again = fail_first_step_and_roll_back(&store, &replayed).await;
    let newcomer = started(&store, &sub("gamma")).await;
    let (_, outcome) = advance(&store, &rolled_again, Input::Replay(None)).await;
    assert_eq!(outcome, Updated::SubdomainTaken(newcomer.id));
    assert_eq!(
        store
            .get(rolled_again.id)
            .await
            .expect("get")
            .expect("saga")
            .status,
        SagaStatus::RolledBack
    );

    // In-flight sagas are the non-terminal ones.
    let in_flight: Vec<Uuid> = store
        .in_flight()
        .await
        .expect("in flight")
        .iter()
        .map(|s| s.id)
        .collect();
    assert!(in_flight.contains(&moved.id) && in_flight.contains(&newcomer.id));
    assert!(!in_flight.contains(&rejected.id) && !in_flight.contains(&rolled_again.id));

    // Lists filter by status, newest first.
    let rejected_list = store
        .list(Some(SagaStatus::Rejected), 10)
        .await
        .expect("list");
    assert!(rejected_list.iter().any(|s| s.id == rejected.id));
    assert!(rejected_list
        .iter()
        .all(|s| s.status == SagaStatus::Rejected));
    let all = store.list(None, 500).await.expect("list");
    // The store orders by millisecond; sagas made in the same millisecond may come in either order.
    assert!(all
        .windows(2)
        .all(|w| w[0].created_at.timestamp_millis() >= w[1].created_at.timestamp_millis()));
    assert_eq!(store.list(None, 1).await.expect("list").len(), 1);
    paging::pages_and_filters(&store, &sub("paged")).await;
    paging::operator_actions_are_kept(&store, &sub("replayed")).await;

    // The outbox: stored events are unpublished until marked.
    let pending = store.unpublished().await.expect("unpublished");
    let mine: Vec<(Uuid, u64)> = pending
        .iter()
        .filter(|e| e.saga_id == saga.id)
        .map(|e| (e.saga_id, e.sequence))
        .collect();
    assert_eq!(mine.len() as u64, moved.sequence);
    store.mark_published(&mine).await.expect("mark");
    assert!(store
        .unpublished()
        .await
        .expect("unpublished")
        .iter()
        .all(|e| e.saga_id != saga.id));
}

#[tokio::test]
async fn memory_store_conforms() {
    conformance(MemoryStore::default()).await;
}

#[tokio::test]
async fn memory_store_isolates_changes_made_at_once() {
    let store = MemoryStore::default();
    groups::many_changes_at_once(&store).await;
    groups::a_conflict_inside_a_group_fails_alone(&store).await;
    groups::a_refused_change_fails_alone(&store).await;
}

#[tokio::test]
async fn memory_store_lets_one_of_two_writers_win() {
    let store = MemoryStore::default();
    groups::two_writers_race(&store, &store, &groups::Gate::Open).await;
}

#[tokio::test]
async fn memory_store_keeps_the_standby_pool() {
    let store = MemoryStore::default();
    standbys::lifecycle(&store).await;
    standbys::claims_race(&store).await;
    standbys::fenced(&store).await;
}

#[tokio::test]
async fn memory_store_keeps_the_pool_size_and_figures() {
    let store = MemoryStore::default();
    pool::settings(&store, &store).await;
    pool::figures(&store).await;
    pool::fenced(&store).await;
}

#[tokio::test]
async fn memory_store_fences_writes_by_its_lease() {
    lease::one_instance(&MemoryStore::default()).await;
}

/// A SQLite file in a folder that goes with the test.
fn sqlite_file() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/nested/store.db", dir.path().display());
    (dir, url)
}

#[tokio::test]
async fn sqlite_store_conforms() {
    let (_dir, url) = sqlite_file();
    conformance(SqlStore::connect(&url).await.expect("sqlite store")).await;
    // Reopening finds the same data (and creates nothing twice).
    let again = SqlStore::connect(&url).await.expect("reopen");
    assert!(!again.list(None, 10).await.expect("list").is_empty());
}

#[tokio::test]
async fn sqlite_store_isolates_changes_made_at_once() {
    let (_dir, url) = sqlite_file();
    let store = SqlStore::connect(&url).await.expect("sqlite store");
    groups::many_changes_at_once(&store).await;
    groups::a_conflict_inside_a_group_fails_alone(&store).await;
    groups::a_refused_change_fails_alone(&store).await;
}

#[tokio::test]
async fn sqlite_store_lets_one_of_two_writers_win() {
    let (_dir, url) = sqlite_file();
    let first = SqlStore::connect(&url).await.expect("sqlite store");
    let second = SqlStore::connect(&url).await.expect("second sqlite store");
    let gate = groups::Gate::Sqlite(format!("{url}?mode=rw"));
    groups::two_writers_race(&first, &second, &gate).await;
}

#[tokio::test]
async fn sqlite_store_keeps_the_standby_pool() {
    let (_dir, url) = sqlite_file();
    let store = SqlStore::connect(&url).await.expect("sqlite store");
    standbys::lifecycle(&store).await;
    standbys::claims_race(&store).await;
    // Two instances on one file, claiming at once.
    let other = SqlStore::connect(&url).await.expect("second sqlite store");
    standbys::two_instances_race(&store, &other).await;
    standbys::fenced(&store).await;
}

#[tokio::test]
async fn sqlite_store_keeps_the_pool_size_and_figures() {
    let (_dir, url) = sqlite_file();
    let store = SqlStore::connect(&url).await.expect("sqlite store");
    let other = SqlStore::connect(&url).await.expect("second sqlite store");
    pool::settings(&store, &other).await;
    pool::figures(&store).await;
    pool::fenced(&store).await;
}

/// A `standbys` table an earlier release made, brought up to date.
#[tokio::test]
async fn sqlite_store_migrates_an_earlier_standbys_table() {
    let (_dir, url) = sqlite_file();
    pool::sqlite_migration(&url).await;
}

#[tokio::test]
async fn sqlite_store_fences_writes_by_its_lease() {
    let (_dir, url) = sqlite_file();
    lease::one_instance(&SqlStore::connect(&url).await.expect("sqlite store")).await;
}

#[tokio::test]
async fn sqlite_store_passes_the_lead_between_two_instances() {
    let (_dir, url) = sqlite_file();
    let first = SqlStore::connect(&url).await.expect("sqlite store");
    let second = SqlStore::connect(&url).await.expect("second sqlite store");
    let unfenced = SqlStore::connect(&url).await.expect("third sqlite store");
    lease::two_instances(&first, &second, &unfenced).await;
}

/// A MariaDB database of one test's own, dropped when the test ends, failed or not.
struct MysqlDatabase {
    server: String,
    name: String,
}

impl MysqlDatabase {
    async fn create() -> Self {
        let server = std::env::var("TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
        let name = format!("saga_store_test_{}", Uuid::new_v4().simple());
        sqlx::any::install_default_drivers();
        let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&server)
            .await
            .expect("MariaDB on TEST_MYSQL_URL");
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create db");
        Self { server, name }
    }

    /// A database name of one test's own that does not exist yet (the store under
    /// test creates it); dropped, if it exists, when the test ends.
    fn absent() -> Self {
        let server = std::env::var("TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
        let name = format!("saga_store_absent_{}", Uuid::new_v4().simple());
        Self { server, name }
    }

    fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    async fn store(&self) -> SqlStore {
        SqlStore::connect(&self.url()).await.expect("mysql store")
    }
}

/// Runs `sql` as the administrator from a thread and runtime of its own: the test's
/// runtime may be unwinding. Whether it ran.
fn admin_sql_at_drop(server: &str, sql: String) -> bool {
    let server = server.to_string();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&server)
                .await
                .expect("MariaDB on TEST_MYSQL_URL");
            sqlx::raw_sql(&sql).execute(&mut admin).await.expect(&sql);
        });
    })
    .join()
    .is_ok()
}

impl Drop for MysqlDatabase {
    fn drop(&mut self) {
        let dropped = admin_sql_at_drop(
            &self.server,
            format!("DROP DATABASE IF EXISTS {}", self.name),
        );
        if !dropped && !std::thread::panicking() {
            panic!("test database {} could not be dropped", self.name);
        }
    }
}

#[tokio::test]
async fn mysql_store_conforms() {
    let database = MysqlDatabase::create().await;
    conformance(database.store().await).await;
}

#[tokio::test]
async fn mysql_store_isolates_changes_made_at_once() {
    let database = MysqlDatabase::create().await;
    let store = database.store().await;
    groups::many_changes_at_once(&store).await;
    groups::a_conflict_inside_a_group_fails_alone(&store).await;
    groups::a_refused_change_fails_alone(&store).await;
}

#[tokio::test]
async fn mysql_store_lets_one_of_two_writers_win() {
    let database = MysqlDatabase::create().await;
    let (first, second) = (database.store().await, database.store().await);
    let gate = groups::Gate::Mysql {
        url: database.url(),
        database: database.name.clone(),
    };
    groups::two_writers_race(&first, &second, &gate).await;
}

#[tokio::test]
async fn mysql_store_keeps_the_standby_pool() {
    let database = MysqlDatabase::create().await;
    let store = database.store().await;
    standbys::lifecycle(&store).await;
    standbys::claims_race(&store).await;
    standbys::two_instances_race(&store, &database.store().await).await;
    standbys::fenced(&store).await;
}

#[tokio::test]
async fn mysql_store_keeps_the_pool_size_and_figures() {
    let database = MysqlDatabase::create().await;
    let (store, other) = (database.store().await, database.store().await);
    pool::settings(&store, &other).await;
    pool::figures(&store).await;
    pool::fenced(&store).await;
}

/// A `standbys` table an earlier release made, brought up to date on MariaDB, by two
/// instances opening at once.
#[tokio::test]
async fn mysql_store_migrates_an_earlier_standbys_table() {
    let database = MysqlDatabase::create().await;
    pool::mysql_migration(&database.url()).await;
}

#[tokio::test]
async fn mysql_store_fences_writes_by_its_lease() {
    let database = MysqlDatabase::create().await;
    lease::one_instance(&database.store().await).await;
}

#[tokio::test]
async fn mysql_store_passes_the_lead_between_two_instances() {
    let database = MysqlDatabase::create().await;
    let (first, second) = (database.store().await, database.store().await);
    lease::two_instances(&first, &second, &database.store().await).await;
}

#[tokio::test]
async fn mysql_store_takeover_waits_for_a_write_in_flight() {
    let database = MysqlDatabase::create().await;
    let (first, second) = (database.store().await, database.store().await);
    lease::takeover_waits_for_a_write_in_flight(&first, &second, &database.url(), &database.name)
        .await;
}
