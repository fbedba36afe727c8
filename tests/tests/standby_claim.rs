//! A standby site taken over by a signup, with the real database and site steps (in
//! this process, over NATS) given their commands directly as the orchestrator sends
//! them, on the bench emulator and a real MariaDB:
//!
//! - a standby is built the usual way under a placeholder name and records what it was
//!   built with;
//! - claimed, its folder is renamed to the tenant's site (marker, `host_name`, the
//!   kept Administrator password sealed for the signup) and its ledger entry moved to
//!   the signup, whose database login works; run again, nothing changes; undone, the
//!   site is archived and the database dropped, the ledger forgets it;
//! - a claim interrupted right after the rename (the folder under the tenant's name
//!   with the standby's marker) is finished by the next attempt;
//! - an unusable standby (folder removed, apps changed, database not the standby's)
//!   fails with `standby_unusable` and creates nothing under the tenant's name.

use std::collections::BTreeMap;
use std::path::Path;

use contracts::{StandbyRef, StepAction, StepCommand, StepReport, STANDBY_UNUSABLE};
use secrets::ExposeSecret;
use tests::Harness;
use uuid::Uuid;

fn read(path: &Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .expect("json")
}

/// Sends `command` and waits for its final report.
async fn run(h: &Harness, command: &StepCommand) -> StepReport {
    h.publish_command(command, &command.command_id).await;
    h.final_report(&command.step, &command.command_id, 90).await
}

fn completed(report: StepReport) -> serde_json::Value {
    match report {
        StepReport::Completed { output } => output,
        other => panic!("expected completed, got {other:?}"),
    }
}

fn failed_code(report: StepReport) -> String {
    match report {
        StepReport::Failed { code, .. } => code,
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// A command of `saga` for `step` about `subdomain`, with `outputs` of earlier steps.
fn command(
    saga: Uuid,
    step: &str,
    action: StepAction,
    attempt: u32,
    subdomain: &str,
    outputs: &BTreeMap<String, serde_json::Value>,
) -> StepCommand {
    let mut command = tests::steps::command(saga, step, action, attempt, subdomain);
    command.outputs = outputs.clone();
    command
}

/// The database and site steps on a fresh bench at `root`.
async fn world(h: &mut Harness, root: &Path) {
    h.start_db_step();
    h.start_site_step(root, 2);
    h.wait_step_consumer("database").await;
    h.wait_step_consumer("site").await;
}

/// Builds a standby (a saga with `standby_build`, the database and site steps run the
/// usual way) named `sb<n>-<suffix>`; returns what a claim names.
async fn build_standby(h: &Harness, root: &Path, n: u32) -> StandbyRef {
    let saga = Uuid::new_v4();
    let subdomain = h.subdomain(&format!("sb{n}"));
    let mut outputs = BTreeMap::new();
    let mut db = command(
        saga,
        "database",
        StepAction::Execute,
        1,
        &subdomain,
        &outputs,
    );
    db.tenant.standby_build = true;
    let db_output = completed(run(h, &db).await);
    outputs.insert("database".to_string(), db_output.clone());
    let mut site = command(saga, "site", StepAction::Execute, 1, &subdomain, &outputs);
    site.tenant.standby_build = true;
    completed(run(h, &site).await);
    let placeholder = format!("{subdomain}.example.test");
    let config = read(&root.join(format!("sites/{placeholder}/site_config.json")));
    assert_eq!(
        config["provisioning_built_with"], "apps: erpnext; bench: frappe 15.44.2 (bench-emulator)",
        "a standby records what it was built with"
    );
    StandbyRef {
        saga_id: saga,
        site_name: placeholder,
        db_name: db_output["db_name"].as_str().expect("db_name").to_string(),
    }
}

/// The saga the ledger names for `db_name`, if any.
async fn ledger_holder(db_name: &str) -> Option<String> {
    sqlx::query_scalar("SELECT saga_id FROM saga_provisioning.tenant_databases WHERE db_name = ?")
        .bind(db_name)
        .fetch_optional(&tests::admin_pool().await)
        .await
        .expect("ledger")
}

/// Whether `user` logs in to its database with `password`.
async fn logs_in(user: &str, password: &str) -> bool {
    use sqlx::ConnectOptions;
    let options: sqlx::mysql::MySqlConnectOptions = tests::mysql_url().parse().expect("url");
    options
        .username(user)
        .password(password)
        .database(user)
        .connect()
        .await
        .is_ok()
}

/// The claim commands of signup `saga` for `subdomain` with `standby`.
fn claim_command(
    saga: Uuid,
    step: &str,
    action: StepAction,
    attempt: u32,
    subdomain: &str,
    standby: &StandbyRef,
    outputs: &BTreeMap<String, serde_json::Value>,
) -> StepCommand {
    let mut c = command(saga, step, action, attempt, subdomain, outputs);
    c.tenant.standby = Some(standby.clone());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_standby_becomes_the_tenants_site_and_its_undo_leaves_nothing() {
    let mut h = Harness::new().await;
    let root = h.bench_folder(serde_json::json!({"delay_ms": 1}));
    world(&mut h, &root).await;
    let standby = build_standby(&h, &root, 1).await;

    let signup = Uuid::new_v4();
    let subdomain = h.subdomain("claim");
    let site = format!("{subdomain}.example.test");
    let mut outputs = BTreeMap::new();
    let db_command = |attempt| {
        claim_command(
            signup,
            "database",
            StepAction::Execute,
            attempt,
            &subdomain,
            &standby,
            &BTreeMap::new(),
        )
    };
    let db = completed(run(&h, &db_command(1)).await);
    assert_eq!(
        db["db_name"],
        standby.db_name.as_str(),
        "the database keeps the standby's name"
    );
    assert_eq!(
        ledger_holder(&standby.db_name).await,
        Some(signup.to_string()),
        "the ledger names the signup now"
    );
    let password = h
        .key
        .open(
            &contracts::Sealed(db["db_password"].as_str().expect("sealed").into()),
            secrets::Binding::new(signup, secrets::Field::DbPassword),
        )
        .expect("the password is sealed for the signup");
    assert!(logs_in(&standby.db_name, password.expose_secret()).await);
    outputs.insert("database".to_string(), db.clone());

    let site_command = |attempt| {
        claim_command(
            signup,
            "site",
            StepAction::Execute,
            attempt,
            &subdomain,
            &standby,
            &outputs,
        )
    };
    let first = completed(run(&h, &site_command(1)).await);
    assert!(
        !root.join(format!("sites/{}", standby.site_name)).exists(),
        "the placeholder is gone"
    );
    let config = read(&root.join(format!("sites/{site}/site_config.json")));
    assert_eq!(
        config["provisioning_saga_id"],
        signup.to_string(),
        "the marker moved"
    );
    assert_eq!(config["host_name"], format!("https://{site}"));
    assert_eq!(config["db_name"], standby.db_name.as_str());
    assert_eq!(first["standby"], standby.saga_id.to_string());
    assert_eq!(first["site_name"], site.as_str());
    h.key
        .open(
            &contracts::Sealed(
                first["administrator_password"]
                    .as_str()
                    .expect("sealed")
                    .into(),
            ),
            secrets::Binding::new(signup, secrets::Field::AdministratorPassword),
        )
        .expect("Administrator's password is sealed for the signup");
    let lines: Vec<String> = h
        .step_events("site")
        .await
        .into_iter()
        .filter(|e| e.saga_id == signup)
        .filter_map(|e| match e.report {
            StepReport::Output { line, .. } => Some(line),
            _ => None,
        })
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("prepared workspace")),
        "progress says a prepared workspace was used: {lines:?}"
    );

    // Run again (a later attempt): the same result, nothing moves.
    assert_eq!(completed(run(&h, &db_command(2)).await), db);
    assert_eq!(completed(run(&h, &site_command(2)).await), first);

    // Undone: archived, dropped, forgotten.
    let undo_site = claim_command(
        signup,
        "site",
        StepAction::Compensate,
        1,
        &subdomain,
        &standby,
        &outputs,
    );
    completed_or_ok(run(&h, &undo_site).await);
    let undo_db = claim_command(
        signup,
        "database",
        StepAction::Compensate,
        1,
        &subdomain,
        &standby,
        &outputs,
    );
    completed_or_ok(run(&h, &undo_db).await);
    assert!(
        !root.join(format!("sites/{site}")).exists(),
        "the site is archived"
    );
    assert!(
        archived(&root).iter().any(|a| a.starts_with(&site)),
        "{:?}",
        archived(&root)
    );
    assert_eq!(
        tests::mariadb_has(&standby.db_name).await,
        (false, false),
        "database dropped"
    );
    assert_eq!(
        ledger_holder(&standby.db_name).await,
        None,
        "the ledger forgot it"
    );
    h.finish().await;
}

fn completed_or_ok(report: StepReport) {
    assert!(matches!(report, StepReport::Completed { .. }), "{report:?}");
}

fn archived(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("sites/archived"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_interrupted_after_the_rename_is_finished_by_the_next_attempt() {
    let mut h = Harness::new().await;
    let root = h.bench_folder(serde_json::json!({"delay_ms": 1}));
    world(&mut h, &root).await;
    let standby = build_standby(&h, &root, 1).await;
    let signup = Uuid::new_v4();
    let subdomain = h.subdomain("cut");
    let site = format!("{subdomain}.example.test");
    let db = completed(
        run(
            &h,
            &claim_command(
                signup,
                "database",
                StepAction::Execute,
                1,
                &subdomain,
                &standby,
                &BTreeMap::new(),
            ),
        )
        .await,
    );
    let outputs = BTreeMap::from([("database".to_string(), db)]);
    // What a SIGKILL right after `mv` leaves: the tenant's folder, the standby's marker.
    std::fs::rename(
        root.join(format!("sites/{}", standby.site_name)),
        root.join(format!("sites/{site}")),
    )
    .expect("rename as the step would");
    let output = completed(
        run(
            &h,
            &claim_command(
                signup,
                "site",
                StepAction::Execute,
                2,
                &subdomain,
                &standby,
                &outputs,
            ),
        )
        .await,
    );
    assert_eq!(output["standby"], standby.saga_id.to_string());
    let config = read(&root.join(format!("sites/{site}/site_config.json")));
    assert_eq!(config["provisioning_saga_id"], signup.to_string());
    assert_eq!(config["host_name"], format!("https://{site}"));
    tests::drop_tenant(&standby.db_name).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_standby_is_refused_and_nothing_is_made_under_the_tenants_name() {
    let mut h = Harness::new().await;
    let root = h.bench_folder(serde_json::json!({"delay_ms": 1}));
    world(&mut h, &root).await;
    let missing = build_standby(&h, &root, 1).await;
    let changed = build_standby(&h, &root, 2).await;
    let db_of_other = build_standby(&h, &root, 3).await;
    let outputs = |db: &str| {
        BTreeMap::from([(
            "database".to_string(),
            serde_json::json!({"db_name": db, "db_user": db, "db_password": "v2:x:y"}),
        )])
    };

    // Folder removed behind the pool's back.
    std::fs::remove_dir_all(root.join(format!("sites/{}", missing.site_name))).expect("remove");
    let sub = h.subdomain("miss");
    let code = failed_code(
        run(
            &h,
            &claim_command(
                Uuid::new_v4(),
                "site",
                StepAction::Execute,
                1,
                &sub,
                &missing,
                &outputs(&missing.db_name),
            ),
        )
        .await,
    );
    assert_eq!(code, STANDBY_UNUSABLE);
    assert!(!root.join(format!("sites/{sub}.example.test")).exists());

    // Built with other apps than a new site would get now.
    let placeholder_config = root.join(format!("sites/{}/site_config.json", changed.site_name));
    let mut config = read(&placeholder_config);
    config["provisioning_built_with"] = "apps: frappe; bench: frappe 15.0.0".into();
    std::fs::write(&placeholder_config, config.to_string()).expect("config");
    let sub = h.subdomain("apps");
    let code = failed_code(
        run(
            &h,
            &claim_command(
                Uuid::new_v4(),
                "site",
                StepAction::Execute,
                1,
                &sub,
                &changed,
                &outputs(&changed.db_name),
            ),
        )
        .await,
    );
    assert_eq!(code, STANDBY_UNUSABLE);
    assert!(!root.join(format!("sites/{sub}.example.test")).exists());
    assert!(
        root.join(format!("sites/{}", changed.site_name)).exists(),
        "left as it was"
    );

    // A database the ledger gives to someone else than the standby named.
    let wrong = StandbyRef {
        db_name: changed.db_name.clone(),
        ..db_of_other.clone()
    };
    let signup = Uuid::new_v4();
    let code = failed_code(
        run(
            &h,
            &claim_command(
                signup,
                "database",
                StepAction::Execute,
                1,
                &h.subdomain("db"),
                &wrong,
                &BTreeMap::new(),
            ),
        )
        .await,
    );
    assert_eq!(code, STANDBY_UNUSABLE);
    assert_eq!(
        ledger_holder(&changed.db_name).await,
        Some(changed.saga_id.to_string()),
        "not moved"
    );

    // A database whose login is refused (its user's password changed behind it).
    sqlx::raw_sql(&format!(
        "ALTER USER '{0}'@'%' IDENTIFIED BY 'Changed-behind-1'",
        db_of_other.db_name
    ))
    .execute(&tests::admin_pool().await)
    .await
    .expect("alter user");
    let code = failed_code(
        run(
            &h,
            &claim_command(
                signup,
                "database",
                StepAction::Execute,
                2,
                &h.subdomain("db"),
                &db_of_other,
                &BTreeMap::new(),
            ),
        )
        .await,
    );
    assert_eq!(code, STANDBY_UNUSABLE);
    assert_eq!(
        ledger_holder(&db_of_other.db_name).await,
        Some(db_of_other.saga_id.to_string()),
        "not moved"
    );

    for standby in [&missing, &changed, &db_of_other] {
        tests::drop_tenant(&standby.db_name).await;
    }
    h.finish().await;
}
