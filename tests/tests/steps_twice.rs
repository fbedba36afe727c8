//! Steps that get their completed command a second time: called again directly
//! (bypassing the runtime's memory) they find their work done and answer with the same
//! result; through the runtime the second delivery is answered from memory. Real
//! MariaDB, the Master stand-in, real NATS.

use std::str::FromStr;

use contracts::{StepAction, StepCommand, StepReport};
use db_step::mariadb::MariaDb;
use db_step::{DatabaseOutput, DatabaseStep};
use secrets::ExposeSecret;
use sqlx::ConnectOptions;
use step_runtime::{Step, StepContext, StepError};
use tests::steps::command;
use tests::Harness;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Whether `user` logs in to database `db` with `password`.
async fn logs_in(db: &str, user: &str, password: &str) -> bool {
    let options = sqlx::mysql::MySqlConnectOptions::from_str(&tests::mysql_url())
        .expect("TEST_MYSQL_URL")
        .username(user)
        .password(password)
        .database(db)
        .disable_statement_logging();
    match options.connect().await {
        Ok(mut conn) => sqlx::query("SELECT 1").execute(&mut conn).await.is_ok(),
        Err(_) => false,
    }
}

/// A ledger database of this test's own, dropped by [`drop_ledger`].
fn ledger_name(h: &Harness, what: &str) -> String {
    format!("ledger_{what}_{}", h.suffix)
}

async fn drop_ledger(ledger: &str) {
    let pool = tests::admin_pool().await;
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS `{ledger}`"))
        .execute(&pool)
        .await
        .expect("ledger dropped");
}

fn output(value: serde_json::Value) -> DatabaseOutput {
    serde_json::from_value(value).expect("DatabaseOutput")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_step_run_again_answers_with_its_first_password_and_the_user_still_logs_in() {
    let h = Harness::new().await;
    let ledger = ledger_name(&h, "twice");
    let databases = MariaDb::new(&tests::mysql_url(), &ledger).expect("mariadb");
    databases.prepare().await.expect("ledger");
    let stop = CancellationToken::new();
    let service = tokio::spawn(step_runtime::run(
        DatabaseStep::new(databases.clone()),
        h.runtime_config("database"),
        stop.clone(),
    ));
    let subdomain = h.subdomain("twice");
    let name = db_step::database_name(&subdomain);
    let saga = Uuid::new_v4();
    let execute = command(saga, "database", StepAction::Execute, 1, &subdomain);

    // Through the runtime: done once, then the same command again.
    h.publish_command(&execute, &execute.command_id).await;
    let StepReport::Completed { output: first } =
        h.final_report("database", &execute.command_id, 30).await
    else {
        panic!("the database step failed")
    };
    let first = output(first);
    let password = h
        .key
        .open(&first.db_password, db_binding(saga))
        .expect("sealed password");
    assert!(logs_in(&name, &name, password.expose_secret()).await);
    h.publish_command(&execute, "sent-again").await;
    tests::assert_eventually!(10, "second delivery handled", h.commands_left().await == 0);
    let events = h.step_events("database").await;
    assert_eq!(
        events.len(),
        3,
        "two output lines and one report, all of the first run: {events:#?}"
    );

    // Called again directly, as when the runtime's memory is gone: the same password.
    let step = DatabaseStep::new(databases);
    let context = StepContext::standalone(h.key.clone());
    for _ in 0..2 {
        let again = output(step.execute(&execute, &context).await.expect("run again"));
        assert_eq!(again, first, "the same result, the same sealed password");
    }
    assert!(
        logs_in(&name, &name, password.expose_secret()).await,
        "the user still logs in with the password of the first result"
    );

    stop.cancel();
    service
        .await
        .expect("joined")
        .expect("db-step ends cleanly");
    tests::drop_tenant(&name).await;
    drop_ledger(&ledger).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_ledger_gets_the_password_column_and_no_user_in_use_is_rotated() {
    let h = Harness::new().await;
    let ledger = ledger_name(&h, "old");
    let pool = tests::admin_pool().await;
    // The ledger as the previous release made it, with two of its entries: one whose
    // user exists (a site may use its password), one whose user was never made.
    let (in_use, unfinished) = (h.subdomain("inuse"), h.subdomain("unfinished"));
    let (in_use_db, unfinished_db) = (
        db_step::database_name(&in_use),
        db_step::database_name(&unfinished),
    );
    let saga = Uuid::new_v4();
    sqlx::raw_sql(&format!(
        "CREATE DATABASE `{ledger}`;
         CREATE TABLE `{ledger}`.tenant_databases (
            db_name VARCHAR(64) NOT NULL PRIMARY KEY,
            saga_id CHAR(36) NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
         INSERT INTO `{ledger}`.tenant_databases (db_name, saga_id)
            VALUES ('{in_use_db}', '{saga}'), ('{unfinished_db}', '{saga}');
         CREATE DATABASE `{in_use_db}`;
         CREATE USER '{in_use_db}'@'%' IDENTIFIED BY 'OldPassword1';
         GRANT ALL PRIVILEGES ON `{in_use_db}`.* TO '{in_use_db}'@'%';"
    ))
    .execute(&pool)
    .await
    .expect("old ledger");

    let databases = MariaDb::new(&tests::mysql_url(), &ledger).expect("mariadb");
    databases.prepare().await.expect("ledger upgraded");
    databases.prepare().await.expect("upgrading is idempotent");
    let columns: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.COLUMNS
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'tenant_databases' AND COLUMN_NAME = 'db_password'",
    )
    .bind(&ledger)
    .fetch_one(&pool)
    .await
    .expect("columns");
    assert_eq!(columns, 1);

    let step = DatabaseStep::new(databases);
    let context = StepContext::standalone(h.key.clone());
    // In use, password unknown: refused, and the user keeps its password.
    let refused = step
        .execute(
            &command(saga, "database", StepAction::Execute, 1, &in_use),
            &context,
        )
        .await
        .expect_err("no password to answer with");
    assert!(
        matches!(&refused, StepError::Permanent { code, .. } if code == "database_password_unknown"),
        "{refused:?}"
    );
    assert!(logs_in(&in_use_db, &in_use_db, "OldPassword1").await);

    // Never made: a password is chosen, kept, and then answered every time.
    let unfinished_cmd = command(saga, "database", StepAction::Execute, 1, &unfinished);
    let first = output(
        step.execute(&unfinished_cmd, &context)
            .await
            .expect("finished now"),
    );
    let again = output(
        step.execute(&unfinished_cmd, &context)
            .await
            .expect("again"),
    );
    assert_eq!(again, first);
    let password = h
        .key
        .open(&first.db_password, db_binding(saga))
        .expect("sealed");
    assert!(logs_in(&unfinished_db, &unfinished_db, password.expose_secret()).await);

    // Kept under a key these SAGA_SECRETS_KEYS lack, user in use: refused, not rotated.
    let other_key = secrets::Keyring::random(&tests::key_id("other"));
    let refused = step
        .execute(&unfinished_cmd, &StepContext::standalone(other_key))
        .await
        .expect_err("a password this key cannot open");
    assert!(
        matches!(&refused, StepError::Permanent { code, .. } if code == "database_password_unknown"),
        "{refused:?}"
    );
    assert!(logs_in(&unfinished_db, &unfinished_db, password.expose_secret()).await);

    tests::drop_tenant(&in_use_db).await;
    tests::drop_tenant(&unfinished_db).await;
    drop_ledger(&ledger).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_step_run_again_makes_no_second_record() {
    let mut h = Harness::new().await;
    let (url, master) = h.start_master().await;
    h.start_registry_step(&url);
    let step = registry_step::RegistryStep::new(registry_step::Master {
        url: url.clone(),
        site_name: "master.example.test".into(),
        api_key: "key123".into(),
        api_secret: "secret456".to_string().into(),
        doctype: "SaaS Tenant".into(),
    })
    .expect("client");
    let context = StepContext::standalone(h.key.clone());
    let records = |subdomain: &str| {
        let master = master.lock().expect("master");
        (
            master.records.len(),
            master
                .records
                .get(subdomain)
                .and_then(|r| r["saga_id"].as_str().map(str::to_string)),
        )
    };

    // Called twice directly: one record, the same result.
    let (saga, subdomain) = (Uuid::new_v4(), h.subdomain("direct"));
    let execute = command(saga, "registration", StepAction::Execute, 1, &subdomain);
    let first = step.execute(&execute, &context).await.expect("registered");
    let again = step.execute(&execute, &context).await.expect("again");
    assert_eq!(again, first);
    assert_eq!(records(&subdomain), (1, Some(saga.to_string())));

    // Through the runtime, delivered twice: the Master is written to once.
    let (saga, subdomain) = (Uuid::new_v4(), h.subdomain("runtime"));
    let execute: StepCommand = command(saga, "registration", StepAction::Execute, 1, &subdomain);
    let posts_before = master.lock().expect("master").posts;
    h.publish_command(&execute, &execute.command_id).await;
    let report = h
        .final_report("registration", &execute.command_id, 30)
        .await;
    assert!(matches!(report, StepReport::Completed { .. }), "{report:?}");
    h.publish_command(&execute, "sent-again").await;
    tests::assert_eventually!(10, "second delivery handled", h.commands_left().await == 0);
    assert_eq!(records(&subdomain), (2, Some(saga.to_string())));
    assert_eq!(
        master.lock().expect("master").posts,
        posts_before + 1,
        "the second delivery was answered from memory"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_step_probe_says_held_for_a_registered_tenant_and_free_otherwise() {
    let mut h = Harness::new().await;
    let (url, master) = h.start_master().await;
    let registered = h.subdomain("registered");
    master.lock().expect("master").records.insert(
        registered.clone(),
        serde_json::json!({ "name": registered, "subdomain": registered, "saga_id": "someone" }),
    );
    h.start_registry_step(&url);

    let held = h.probe("registration", &registered).await;
    assert_eq!(
        held,
        contracts::ProbeReply::answer(Some("a registered tenant".into()))
    );
    let free = h.probe("registration", &h.subdomain("free")).await;
    assert_eq!(free, contracts::ProbeReply::answer(None));
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_step_probe_reports_an_unreachable_master_as_an_error() {
    let mut h = Harness::new().await;
    // A port nothing listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    h.start_registry_step(&url);
    let reply = h.probe("registration", &h.subdomain("unknown")).await;
    assert!(!reply.held);
    assert!(
        reply
            .error
            .as_deref()
            .is_some_and(|e| e.contains("master_unreachable")),
        "{reply:?}"
    );
    h.finish().await;
}

fn db_binding(saga: Uuid) -> secrets::Binding {
    secrets::Binding::new(saga, secrets::Field::DbPassword)
}
