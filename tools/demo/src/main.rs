//! `demo`: provisions "Test Org" end to end and shows a rollback, live, the way a
//! dashboard following `tenant.progress.<saga_id>` sees it.
//!
//! Runs the real orchestrator and the real database step against the NATS and
//! MariaDB of this machine. Until the Frappe steps land, the site, admin user and
//! registration positions are served by labelled stand-ins (the test suite's scripted
//! steps inside the real step runtime); the second signup's site stand-in fails on
//! purpose so the rollback can be seen.
//!
//! `--keep` leaves the demo tenant's database in place afterwards.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use contracts::{ProgressEvent, SagaStatus, StepStatus, Subjects};
use futures::StreamExt;
use secrets::ExposeSecret;
use tests::{Behaviour, Journal, ScriptedStep};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

fn print_event(e: &ProgressEvent) {
    let colour = match (e.status, e.step_status) {
        (SagaStatus::Completed, _) => GREEN,
        (SagaStatus::RolledBack | SagaStatus::Rejected | SagaStatus::CompensationFailed, _) => RED,
        (_, Some(StepStatus::Failed)) => RED,
        (SagaStatus::Compensating, _) => YELLOW,
        _ => "",
    };
    let step = e.step.as_deref().unwrap_or("-");
    let step_status = e
        .step_status
        .map(|s| format!("{s:?}").to_lowercase())
        .unwrap_or_default();
    println!(
        "  {DIM}#{:<3}{RESET} [{:>3}%] {colour}{:<13}{RESET} {:<13} {:<12} {}",
        e.sequence,
        e.percent,
        e.status.as_str(),
        step,
        step_status,
        e.message
    );
}

/// Follows one saga's progress subject from its first event to its end.
async fn follow(
    js: &jetstream::Context,
    subjects: &Subjects,
    saga_id: Uuid,
) -> anyhow::Result<ProgressEvent> {
    let stream = js
        .get_stream(subjects.progress_stream())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: subjects.progress(&saga_id),
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(60), messages.next())
            .await
            .context("no progress for 60 s")?
            .context("progress stream ended")?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let event: ProgressEvent = serde_json::from_slice(&message.payload)?;
        print_event(&event);
        if event.status.is_terminal() {
            return Ok(event);
        }
    }
}

async fn publish_signup(
    js: &jetstream::Context,
    subjects: &Subjects,
    signup: &serde_json::Value,
) -> anyhow::Result<()> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        "Nats-Msg-Id",
        signup["signup_id"].as_str().unwrap_or_default(),
    );
    js.publish_with_headers(
        subjects.signup_requested(),
        headers,
        serde_json::to_vec(signup)?.into(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

async fn database_state(admin: &sqlx::MySqlPool, name: &str) -> anyhow::Result<(bool, bool)> {
    let db: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
    )
    .bind(name)
    .fetch_one(admin)
    .await?;
    let user: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mysql.user WHERE User = ?")
        .bind(name)
        .fetch_one(admin)
        .await?;
    Ok((db > 0, user > 0))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let keep = std::env::args().any(|a| a == "--keep");
    let nats_url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let mysql_url = std::env::var("TENANT_DB_ADMIN_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
    let namespace = format!("demo{}", &Uuid::new_v4().simple().to_string()[..6]);
    let dir = tempfile::tempdir()?;
    let key = secrets::SecretsKey::generate_base64();
    let env = [
        ("NATS_URL", nats_url.clone()),
        ("NATS_NAMESPACE", namespace.clone()),
        ("SAGA_SECRETS_KEY", key.clone()),
        (
            "SAGA_STORE_URL",
            format!("sqlite://{}/orchestrator.db", dir.path().display()),
        ),
        ("PARENT_DOMAIN", "localhost".into()),
    ];
    let lookup = |k: &str| {
        env.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.clone())
    };
    let subjects = Subjects::new(&namespace);
    let stop = CancellationToken::new();

    println!("{BOLD}Tenant provisioning demo{RESET} {DIM}(NATS {nats_url}, MariaDB {}, namespace {namespace}){RESET}", mysql_url.split('@').next_back().unwrap_or_default());
    println!("{DIM}  orchestrator and database step: real; site, admin_user, registration: stand-ins until the Frappe steps land{RESET}\n");

    let config = orchestrator::config::from_lookup(lookup)?;
    let orchestrator = tokio::spawn(orchestrator::run(config, stop.clone()));
    let databases = db_step::mariadb::MariaDb::new(&mysql_url, "saga_provisioning")?;
    databases
        .prepare()
        .await
        .context("MariaDB: preparing the ledger")?;
    let mut services = vec![tokio::spawn(step_runtime::run(
        db_step::DatabaseStep::new(databases),
        step_runtime::config_from(lookup)?,
        stop.clone(),
    ))];
    let journal = Journal::default();
    for name in ["site", "admin_user", "registration"] {
        let behaviour = Behaviour {
            fail_subdomain: (name == "site").then(|| "broken-org".to_string()),
            delay: Duration::from_millis(400),
            ..Behaviour::default()
        };
        services.push(tokio::spawn(step_runtime::run(
            ScriptedStep::new(name, behaviour, journal.clone()),
            step_runtime::config_from(lookup)?,
            stop.clone(),
        )));
    }

    let client = async_nats::connect(&nats_url).await?;
    let js = jetstream::new(client);
    step_runtime::bus::ensure_streams(&js, &subjects).await?;
    let admin = sqlx::MySqlPool::connect(&mysql_url)
        .await
        .context("MariaDB")?;

    // 1. A signup that becomes a workspace.
    let first = Uuid::new_v4();
    println!("{BOLD}1. Signup for \"Test Org\"{RESET} (saga {first})");
    publish_signup(&js, &subjects, &serde_json::json!({
        "signup_id": first, "organization_name": "Test Org", "admin_email": "admin@test.com",
        "admin_full_name": "Test Admin", "admin_password": "TestPass123!", "auth_provider": "password",
    }))
    .await?;
    let started = std::time::Instant::now();
    let end = follow(&js, &subjects, first).await?;
    let db_name = db_step::database_name(&end.subdomain);
    if end.status == SagaStatus::Completed {
        let result = end.result.clone().unwrap_or_default();
        println!(
            "\n  {GREEN}{BOLD}Workspace ready{RESET} in {:.1}s: {} (admin {})",
            started.elapsed().as_secs_f64(),
            result["site_url"].as_str().unwrap_or_default(),
            result["admin_email"].as_str().unwrap_or_default()
        );
        let (db, user) = database_state(&admin, &db_name).await?;
        println!("  MariaDB: database {db_name} exists: {db}, its user exists: {user}");
        if let Some(entry) = journal
            .entries()
            .into_iter()
            .find(|e| e.saga_id == first && e.step == "site")
        {
            let sealed = contracts::Sealed(
                entry.outputs["database"]["db_password"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
            let password = secrets::SecretsKey::from_base64(&key)?.open(&sealed)?;
            let url = format!(
                "mysql://{db_name}:{}@127.0.0.1:3306/{db_name}",
                password.expose_secret()
            );
            let login = <sqlx::MySqlConnection as sqlx::Connection>::connect(&url)
                .await
                .is_ok();
            println!("  the tenant's user logs in with the (sealed) password handed to the site step: {login}");
        }
    } else {
        println!(
            "\n  {RED}ended {}{RESET}: {:?}",
            end.status.as_str(),
            end.error
        );
    }

    // 2. A signup whose site step fails: everything made is undone.
    let second = Uuid::new_v4();
    println!("\n{BOLD}2. Signup for \"Broken Org\"{RESET}, whose site step fails (saga {second})");
    publish_signup(&js, &subjects, &serde_json::json!({
        "signup_id": second, "organization_name": "Broken Org", "admin_email": "owner@broken.org",
        "admin_full_name": "Broken Owner", "auth_provider": "google",
    }))
    .await?;
    let end = follow(&js, &subjects, second).await?;
    let (db, user) = database_state(&admin, &db_step::database_name("broken-org")).await?;
    println!(
        "\n  {}{BOLD}{}{RESET}: {}; database left: {db}, user left: {user}",
        if end.status == SagaStatus::RolledBack {
            YELLOW
        } else {
            RED
        },
        end.status.as_str(),
        end.error.map(|e| e.message).unwrap_or_default()
    );

    stop.cancel();
    let _ = orchestrator.await;
    for service in services {
        let _ = service.await;
    }
    if keep {
        println!("\n{DIM}--keep: database {db_name} left in place{RESET}");
    } else {
        sqlx::raw_sql(&format!(
            "DROP DATABASE IF EXISTS `{db_name}`; DROP USER IF EXISTS '{db_name}'@'%';"
        ))
        .execute(&admin)
        .await?;
        sqlx::query("DELETE FROM saga_provisioning.tenant_databases WHERE db_name = ?")
            .bind(&db_name)
            .execute(&admin)
            .await?;
        println!("\n{DIM}demo tenant removed (run with --keep to keep it){RESET}");
    }
    for stream in subjects.streams() {
        let _ = js.delete_stream(&stream).await;
    }
    Ok(())
}
