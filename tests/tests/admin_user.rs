//! The real user step (in this process, over NATS) on a site of the bench emulator,
//! given its commands directly as the orchestrator sends them, and checked from
//! outside through the emulator's HTTP face (`bench serve`, which the step also sets
//! the password through): who can still get in.
//!
//! - Run again after it completed, the step hands back the same key and a secret that
//!   still works, and makes no second user.
//! - Its undo leaves nobody able to get in, whether Frappe lets the user be deleted or
//!   keeps it as the site's last System Manager, and says which.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use contracts::signup::AuthProvider;
use contracts::{StepAction, StepCommand, StepEvent, StepReport, TenantContext};
use futures::StreamExt;
use secrets::ExposeSecret;
use tests::Harness;
use uuid::Uuid;

const EMAIL: &str = "admin@test.com";
const PASSWORD: &str = "TestPass123!";

/// A site made by saga `saga`, as the site step leaves it: on its own database, with
/// the saga's marker. Returns the bench folder, the site and its database name.
async fn site_of_saga(
    h: &Harness,
    emulator: serde_json::Value,
    saga: Uuid,
) -> (PathBuf, String, String) {
    let root = h.bench_folder(emulator);
    let site = format!("{}.example.test", h.subdomain("admin"));
    let db = format!("t_admin_{}", h.suffix);
    h.track_database(&db);
    let pool = tests::admin_pool().await;
    sqlx::raw_sql(&format!(
        "CREATE DATABASE `{db}`; CREATE USER '{db}'@'%' IDENTIFIED BY 'Db-pass-1'; GRANT ALL ON `{db}`.* TO '{db}'@'%';"
    ))
    .execute(&pool)
    .await
    .expect("tenant database");
    let bench = |args: &[&str]| {
        let out = Command::new(tests::binary("bench-emulator"))
            .args(args)
            .current_dir(&root)
            .output()
            .expect("emulator runs");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    bench(&[
        "new-site",
        &site,
        "--no-setup-db",
        "--db-name",
        &db,
        "--db-password",
        "Db-pass-1",
        "--admin-password",
        "Adm1n-pass",
    ]);
    bench(&[
        "--site",
        &site,
        "set-config",
        "provisioning_saga_id",
        &saga.to_string(),
    ]);
    (root, site, db)
}

/// The command the orchestrator would send for `action`, attempt `attempt`.
fn command(h: &Harness, saga: Uuid, site: &str, action: StepAction, attempt: u32) -> StepCommand {
    StepCommand {
        command_id: StepCommand::id_for(saga, 1, "admin_user", action, attempt),
        saga_id: saga,
        run: 1,
        step: "admin_user".into(),
        action,
        attempt,
        deadline: chrono::Utc::now() + chrono::Duration::seconds(60),
        tenant: TenantContext {
            subdomain: site.split('.').next().unwrap_or(site).into(),
            site_name: site.into(),
            organization_name: "Test Org".into(),
            admin_email: EMAIL.into(),
            admin_full_name: "Test Admin".into(),
            auth_provider: AuthProvider::Password,
            admin_password: Some(h.key.seal(
                PASSWORD,
                secrets::Binding::new(saga, secrets::Field::AdminPassword),
            )),
            standby: None,
            standby_build: false,
        },
        outputs: Default::default(),
    }
}

/// Sends `command` to the user step; returns its output lines and its final report.
async fn send(h: &Harness, command: &StepCommand) -> (Vec<String>, StepReport) {
    let mut events = h
        .client
        .subscribe(h.subjects.step_event("admin_user"))
        .await
        .expect("subscribe");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", command.command_id.as_str());
    h.js.publish_with_headers(
        h.subjects.step_command("admin_user"),
        headers,
        serde_json::to_vec(command).expect("json").into(),
    )
    .await
    .expect("publish")
    .await
    .expect("command stored");
    let mut lines = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(60), events.next())
            .await
            .expect("the user step reports within 60 s")
            .expect("subscription open");
        let event: StepEvent = serde_json::from_slice(&message.payload).expect("step event");
        if event.command_id != command.command_id {
            continue;
        }
        match event.report {
            StepReport::Output { line, .. } => lines.push(line),
            report => return (lines, report),
        }
    }
}

/// The API key and the (opened) secret of a completed execute.
fn keys(h: &Harness, saga: Uuid, report: &StepReport) -> (String, String) {
    let StepReport::Completed { output } = report else {
        panic!("not completed: {report:?}");
    };
    let key = output["result"]["api_key"].as_str().expect("api_key");
    let sealed = contracts::Sealed(
        output["result"]["api_secret"]
            .as_str()
            .expect("sealed secret")
            .into(),
    );
    let secret = h
        .web_app_key
        .open(
            &sealed,
            secrets::Binding::new(saga, secrets::Field::ApiSecret),
        )
        .expect("the web app's key opens it");
    (key.to_string(), secret.expose_secret().to_string())
}

/// The site's users other than Administrator.
fn users(root: &Path, site: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root.join(format!("sites/{site}/emulator/users.json")))
        .expect("users.json");
    let users: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).expect("json");
    users
        .keys()
        .filter(|u| u.as_str() != "Administrator")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_twice_the_step_keeps_its_keys_and_its_undo_lets_nobody_in() {
    let mut h = Harness::new().await;
    let saga = Uuid::new_v4();
    let (root, site, db) = site_of_saga(&h, serde_json::json!({"delay_ms": 1}), saga).await;
    h.start_user_step(&root);
    let http = h.bench_http(&root);

    let (_, first) = send(&h, &command(&h, saga, &site, StepAction::Execute, 1)).await;
    let (key, secret) = keys(&h, saga, &first);
    assert_eq!(http.token(&site, &key, &secret).await, 200);
    assert_eq!(http.login(&site, EMAIL, PASSWORD).await, 200);

    // The orchestrator sends it again (its first report was lost, say): same result.
    let (lines, second) = send(&h, &command(&h, saga, &site, StepAction::Execute, 2)).await;
    assert_eq!(
        keys(&h, saga, &second),
        (key.clone(), secret.clone()),
        "the same key and secret: {lines:?}"
    );
    assert_eq!(
        http.token(&site, &key, &secret).await,
        200,
        "the secret handed on still works"
    );
    assert_eq!(users(&root, &site), [EMAIL], "still one user");

    let (lines, undo) = send(&h, &command(&h, saga, &site, StepAction::Compensate, 1)).await;
    assert!(matches!(undo, StepReport::Completed { .. }), "{undo:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("Removed user {EMAIL} from {site}"))),
        "{lines:?}"
    );
    assert_eq!(http.token(&site, &key, &secret).await, 401);
    assert_eq!(http.login(&site, EMAIL, PASSWORD).await, 401);
    assert!(users(&root, &site).is_empty());

    // Again: nothing left to undo, and done.
    let (lines, again) = send(&h, &command(&h, saga, &site, StepAction::Compensate, 2)).await;
    assert!(matches!(again, StepReport::Completed { .. }), "{again:?}");
    assert!(
        lines.iter().any(|l| l.contains("nothing to remove")),
        "{lines:?}"
    );

    drop(http);
    tests::drop_tenant(&db).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_frappe_keeps_is_left_disabled_without_keys_and_other_refusals_fail() {
    let mut h = Harness::new().await;
    let saga = Uuid::new_v4();
    // A Frappe that refuses even the delete without on_trash.
    let refuses = serde_json::json!({"delay_ms": 1, "fail": [{
        "command": "execute",
        "method": "frappe.delete_doc",
        "exception": "frappe.exceptions.ValidationError: There should remain at least one System Manager",
    }]});
    let (root, site, db) = site_of_saga(&h, refuses, saga).await;
    h.start_user_step(&root);
    let http = h.bench_http(&root);

    let (_, made) = send(&h, &command(&h, saga, &site, StepAction::Execute, 1)).await;
    let (key, secret) = keys(&h, saga, &made);
    assert_eq!(http.token(&site, &key, &secret).await, 200);

    let (lines, undo) = send(&h, &command(&h, saga, &site, StepAction::Compensate, 1)).await;
    assert!(matches!(undo, StepReport::Completed { .. }), "{undo:?}");
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "Kept user {EMAIL} on {site} disabled with its API keys revoked"
        ))),
        "{lines:?}"
    );
    assert_eq!(users(&root, &site), [EMAIL], "Frappe kept it");
    assert_eq!(http.token(&site, &key, &secret).await, 401, "no token");
    assert_eq!(http.login(&site, EMAIL, PASSWORD).await, 401, "no password");

    // A refusal for any other reason is not taken for done.
    std::fs::write(
        root.join("emulator.json"),
        serde_json::json!({"delay_ms": 1, "fail": [{
            "command": "execute",
            "method": "frappe.delete_doc",
            "exception": "frappe.exceptions.QueryTimeoutError: Lock wait timeout exceeded",
        }]})
        .to_string(),
    )
    .expect("emulator.json");
    let (_, failed) = send(&h, &command(&h, saga, &site, StepAction::Compensate, 2)).await;
    assert!(
        matches!(&failed, StepReport::Failed { code, retryable: true, .. } if code == "user_delete_failed"),
        "{failed:?}"
    );

    drop(http);
    tests::drop_tenant(&db).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_the_site_refuses_fails_the_step_for_good_with_the_sites_advice() {
    let mut h = Harness::new().await;
    let saga = Uuid::new_v4();
    let (root, site, db) = site_of_saga(&h, serde_json::json!({"delay_ms": 1}), saga).await;
    h.start_user_step(&root);
    let http = h.bench_http(&root);

    // The orchestrator refuses such a signup; a step given one anyway (an older
    // orchestrator) is told so by the site, and says why without the password.
    let weak = "abcdefgh";
    let mut command = command(&h, saga, &site, StepAction::Execute, 1);
    command.tenant.admin_password = Some(h.key.seal(
        weak,
        secrets::Binding::new(saga, secrets::Field::AdminPassword),
    ));
    let (_, report) = send(&h, &command).await;
    let StepReport::Failed {
        code,
        message,
        retryable,
    } = &report
    else {
        panic!("not failed: {report:?}");
    };
    assert_eq!((code.as_str(), *retryable), ("invalid_password", false));
    assert!(
        message.contains("Avoid sequences like abc or 6543 as they are easy to guess"),
        "{message}"
    );
    assert!(!message.contains(weak), "{message}");
    assert_eq!(http.login(&site, EMAIL, weak).await, 401);

    drop(http);
    tests::drop_tenant(&db).await;
    h.finish().await;
}
