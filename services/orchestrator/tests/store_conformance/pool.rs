//! The rest of the standby pool: the operators' size (none, set, cleared, kept by a
//! second instance), the misses (once per signup, a day kept) and the hourly figures
//! (claims given back not counted), the writes fenced, and a `standbys` table made by
//! an earlier release brought up to date.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use contracts::OperatorAction;
use orchestrator::store::{Error, PoolSetting, SagaStore, SqlStore, Standby, StandbyState};
use uuid::Uuid;

fn setting(size: Option<u32>, operator: &str) -> PoolSetting {
    PoolSetting {
        size,
        action: OperatorAction {
            action: if size.is_some() {
                "pool_size".into()
            } else {
                "pool_size_cleared".into()
            },
            operator: operator.into(),
            reason: "conformance".into(),
            at: chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis())
                .expect("now"),
            dead_letter: None,
        },
    }
}

/// The operators' size: none at first, set, replaced, cleared; `other` (another
/// instance on the same database, or the same store) reads what was written.
pub(crate) async fn settings(store: &impl SagaStore, other: &impl SagaStore) {
    assert_eq!(store.pool_setting().await.expect("read"), None);
    let three = setting(Some(3), "ann");
    store.set_pool_setting(&three).await.expect("set");
    assert_eq!(other.pool_setting().await.expect("read"), Some(three));
    let zero = setting(Some(0), "bob");
    store.set_pool_setting(&zero).await.expect("set again");
    assert_eq!(other.pool_setting().await.expect("read"), Some(zero));
    let cleared = setting(None, "cy");
    store.set_pool_setting(&cleared).await.expect("clear");
    assert_eq!(other.pool_setting().await.expect("read"), Some(cleared));
}

/// Claims and misses counted since an instant: a miss once per signup, a claim given
/// back not counted, a day-old miss pruned.
pub(crate) async fn figures(store: &impl SagaStore) {
    let now = Utc::now();
    let hour_ago = now - TimeDelta::hours(1);
    let before = store.pool_figures(hour_ago).await.expect("figures");

    let signup = Uuid::new_v4();
    store.standby_missed(signup, now).await.expect("miss");
    store
        .standby_missed(signup, now)
        .await
        .expect("the same again");
    store
        .standby_missed(Uuid::new_v4(), now - TimeDelta::hours(2))
        .await
        .expect("an older miss");

    let (kept, given_back) = (Uuid::new_v4(), Uuid::new_v4());
    for id in [kept, given_back] {
        let standby = Standby::building(
            id,
            format!("sb-{}.example.test", &id.simple().to_string()[..8]),
            now,
        );
        store.add_standby(&standby).await.expect("add");
        assert!(store.standby_ready(id, "t_db", now).await.expect("ready"));
    }
    // Claim both (oldest ready first, whichever that is), then give one back.
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    let a = store
        .claim_standby(first, now)
        .await
        .expect("claim")
        .expect("one");
    let b = store
        .claim_standby(second, now)
        .await
        .expect("claim")
        .expect("two");
    assert_eq!(
        a.claimed_at.map(|t| t.timestamp_millis()),
        Some(now.timestamp_millis())
    );
    assert!(store.release_standby(b.id, second).await.expect("release"));
    let released = store.standby(b.id).await.expect("get").expect("row");
    assert_eq!(released.claimed_at, None);

    let after = store.pool_figures(hour_ago).await.expect("figures");
    assert_eq!(
        after.missed - before.missed,
        1,
        "once per signup, within the hour"
    );
    assert_eq!(
        after.taken - before.taken,
        1,
        "a claim given back does not count"
    );
    let later = store
        .pool_figures(now + TimeDelta::seconds(1))
        .await
        .expect("figures");
    assert_eq!((later.taken, later.missed), (0, 0), "nothing after now");

    // A day on, the next miss prunes the old ones.
    let tomorrow = now + TimeDelta::days(1) + TimeDelta::minutes(1);
    store
        .standby_missed(Uuid::new_v4(), tomorrow)
        .await
        .expect("a miss a day on");
    let day = store
        .pool_figures(now - TimeDelta::hours(3))
        .await
        .expect("figures");
    assert_eq!(day.missed, 1, "only the newest is kept");
    // The rows stay listed with their state's start.
    let listed = store.standby(a.id).await.expect("get").expect("row");
    assert_eq!(listed.since.timestamp_millis(), now.timestamp_millis());
}

/// An instance fenced out writes neither a size nor a miss.
pub(crate) async fn fenced(store: &impl SagaStore) {
    let long = Duration::from_secs(60);
    assert!(store
        .try_lead("pool-a", long)
        .await
        .expect("lead")
        .is_some());
    store
        .set_pool_setting(&setting(Some(1), "leader"))
        .await
        .expect("the leader writes");
    assert_eq!(store.try_lead("pool-b", long).await.expect("lead"), None);
    let refused = |r: Result<(), Error>| matches!(r, Err(Error::Deposed(_)));
    assert!(refused(
        store.set_pool_setting(&setting(Some(9), "late")).await
    ));
    assert!(refused(
        store.standby_missed(Uuid::new_v4(), Utc::now()).await
    ));
    assert_eq!(
        store
            .pool_setting()
            .await
            .expect("read")
            .and_then(|s| s.size),
        Some(1),
        "nothing changed"
    );
}

/// A `standbys` table as the release before `changed_at` made it, with a ready row, in
/// the SQLite file at `url`: opening the store adds the column, and the row reads
/// back, `since` its ready time; a second opening finds the column there already.
pub(crate) async fn sqlite_migration(url: &str) {
    drop(SqlStore::connect(url).await.expect("make the file"));
    let mut raw = <sqlx::AnyConnection as sqlx::Connection>::connect(&format!("{url}?mode=rw"))
        .await
        .expect("raw connection");
    let id = Uuid::new_v4();
    for sql in [
        "DROP TABLE standbys".to_string(),
        "CREATE TABLE standbys (standby_id VARCHAR(36) NOT NULL PRIMARY KEY, site_name VARCHAR(255) NOT NULL, db_name VARCHAR(64) NOT NULL, state VARCHAR(16) NOT NULL, claimed_by VARCHAR(36) NULL UNIQUE, created_at BIGINT NOT NULL, ready_at BIGINT NULL, claimed_at BIGINT NULL)".into(),
        format!("INSERT INTO standbys VALUES ('{id}', 'sb-old.example.test', 't_old', 'ready', NULL, 1000, 2000, NULL)"),
    ] {
        sqlx::raw_sql(&sql).execute(&mut raw).await.expect(&sql);
    }
    drop(raw);
    let store = SqlStore::connect(url).await.expect("reopen and migrate");
    let old = store.standby(id).await.expect("read").expect("kept");
    assert_eq!(old.since.timestamp_millis(), 2000, "its ready time");
    // And a second opening finds the column there already.
    let again = SqlStore::connect(url).await.expect("reopen again");
    assert!(again
        .discard_standby(id, StandbyState::Ready)
        .await
        .expect("write"));
    assert!(
        again
            .standby(id)
            .await
            .expect("read")
            .expect("kept")
            .since
            .timestamp_millis()
            > 2000
    );
}

/// A `standbys` table without `changed_at` (an earlier release's) in the MariaDB
/// database at `url`: two instances opening at once both bring it up to date.
pub(crate) async fn mysql_migration(url: &str) {
    drop(SqlStore::connect(url).await.expect("make the tables"));
    let mut raw = <sqlx::AnyConnection as sqlx::Connection>::connect(url)
        .await
        .expect("raw connection");
    sqlx::raw_sql("ALTER TABLE standbys DROP COLUMN changed_at")
        .execute(&mut raw)
        .await
        .expect("an earlier table");
    drop(raw);
    let (first, second) = futures::join!(SqlStore::connect(url), SqlStore::connect(url));
    let store = first.expect("migrated");
    second.expect("two instances opening at once both work");
    let standby = Standby::building(Uuid::new_v4(), "sb-x.example.test".into(), Utc::now());
    store.add_standby(&standby).await.expect("add");
    assert_eq!(
        store.standby(standby.id).await.expect("read"),
        Some(standby)
    );
}
