//! Keys split by who must open what, and their rotation: a signup's password sealed by
//! the web app to the services' public key goes through and is the one that works; one
//! sealed for another signup, to another key, or given twice is refused before
//! anything is made; during a rotation values under the old key still open and new
//! ones use the new key; a key retired too early leaves what it sealed unopenable.

use contracts::{SagaStatus, StepAction};
use db_step::mariadb::MariaDb;
use db_step::{DatabaseOutput, DatabaseStep};
use secrets::{Binding, ExposeSecret as _, Field, Keyring, Recipient};
use step_runtime::{Step, StepContext, StepError};
use tests::steps::command;
use tests::Harness;
use uuid::Uuid;

const EMAIL: &str = "admin@test.com";

/// What the web app does with SAGA_PUBLIC_KEY: it holds only the public key.
fn seal_as_the_web_app(public_key: &str, password: &str, signup_id: Uuid) -> String {
    Recipient::parse(public_key)
        .expect("SAGA_PUBLIC_KEY")
        .seal(password, Binding::new(signup_id, Field::AdminPassword))
        .0
}

/// Makes a signup's `admin_password_sealed` for its id.
type SealFor<'a> = Box<dyn Fn(Uuid) -> serde_json::Value + 'a>;

/// The bytes of the saga store (its SQLite file and write-ahead log).
fn store_bytes(h: &Harness) -> Vec<u8> {
    let mut bytes = Vec::new();
    for name in ["orchestrator.db", "orchestrator.db-wal"] {
        bytes.extend(std::fs::read(h.dir.path().join(name)).unwrap_or_default());
    }
    bytes
}

/// A key pair's private entry, `<id>:<base64>`.
fn entry(id: &str) -> String {
    Keyring::generate_entry(&tests::key_id(id))
        .expose_secret()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_sealed_by_the_web_app_goes_through_and_is_the_one_that_works() {
    let mut h = Harness::new().await;
    let root = h.bench_folder(serde_json::json!({"delay_ms": 1}));
    let (master_url, _master) = h.start_master().await;
    let services = h.spawn_all(&h.frappe_env(&root, &master_url));
    let http = h.bench_http(&root);

    let chosen = format!("Sealed-Meadow-{}-Compass", h.suffix);
    let subdomain = h.subdomain("sealed");
    let site = format!("{subdomain}.example.test");
    let id = Uuid::new_v4();
    let mut signup = h.signup(id, &subdomain);
    signup["admin_password"] = serde_json::Value::Null;
    signup["admin_password_sealed"] = serde_json::json!(seal_as_the_web_app(
        &h.key.recipient().to_text(),
        &chosen,
        id
    ));
    h.publish_signup(&signup).await;
    assert_eq!(
        h.wait_terminal(id, 60).await,
        SagaStatus::Completed,
        "{:#?}",
        h.get(id).await
    );

    assert_eq!(http.login(&site, EMAIL, &chosen).await, 200);
    // The API secret in the result opens with the web app's key only.
    let result = h
        .timeline(id, 1)
        .await
        .last()
        .and_then(|e| e.result.clone())
        .expect("result");
    let sealed = contracts::Sealed(result["api_secret"].as_str().expect("sealed").into());
    assert!(sealed.0.starts_with("v2:web-app:"), "{}", sealed.0);
    let binding = Binding::new(id, Field::ApiSecret);
    let secret = h
        .web_app_key
        .open(&sealed, binding)
        .expect("the web app opens it");
    let key = result["api_key"].as_str().expect("api_key");
    assert_eq!(http.token(&site, key, secret.expose_secret()).await, 200);
    assert!(
        h.key.open(&sealed, binding).is_err(),
        "not with the services' key"
    );
    // Nothing of the test holds the password in clear, the saga store included.
    drop(services);
    let stored = store_bytes(&h);
    assert!(!stored.windows(chosen.len()).any(|w| w == chosen.as_bytes()));

    drop(http);
    tests::drop_tenant(&db_step::database_name(&subdomain)).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_password_for_another_signup_or_key_is_refused_and_nothing_is_made() {
    let mut h = Harness::new().await;
    h.start_orchestrator();
    let journal = h.start_steps(&[]);
    let public_key = h.key.recipient().to_text();
    let stranger = Keyring::random(&tests::key_id("services"));
    let password = "Sealed-Meadow-7-Compass";
    let cases: Vec<(&str, SealFor, &str)> = vec![
        (
            "moved",
            Box::new(|_| {
                serde_json::json!(seal_as_the_web_app(&public_key, password, Uuid::new_v4()))
            }),
            "password_unreadable",
        ),
        (
            "stranger",
            Box::new(|id| {
                serde_json::json!(
                    stranger
                        .seal(password, Binding::new(id, Field::AdminPassword))
                        .0
                )
            }),
            "password_unreadable",
        ),
        (
            "weak",
            Box::new(|id| serde_json::json!(seal_as_the_web_app(&public_key, "abcdefgh1", id))),
            "invalid_password",
        ),
    ];
    for (name, sealed, code) in cases {
        let subdomain = h.subdomain(name);
        let id = Uuid::new_v4();
        let mut signup = h.signup(id, &subdomain);
        signup["admin_password"] = serde_json::Value::Null;
        signup["admin_password_sealed"] = sealed(id);
        h.publish_signup(&signup).await;
        assert_eq!(
            h.wait_terminal(id, 30).await,
            SagaStatus::Rejected,
            "{name}"
        );
        let timeline = h.timeline(id, 1).await;
        let error = timeline[0].error.as_ref().expect("error");
        assert_eq!(error.code, code, "{name}: {}", error.message);
        assert!(journal.lines(id).is_empty(), "{name}: no step ran");
    }
    // Both the clear and the sealed password: refused, whichever would have worked.
    let id = Uuid::new_v4();
    let mut signup = h.signup(id, &h.subdomain("both"));
    signup["admin_password_sealed"] =
        serde_json::json!(seal_as_the_web_app(&public_key, password, id));
    h.publish_signup(&signup).await;
    assert_eq!(h.wait_terminal(id, 30).await, SagaStatus::Rejected);
    let timeline = h.timeline(id, 1).await;
    assert_eq!(
        timeline[0].error.as_ref().expect("error").code,
        "invalid_password"
    );
    h.finish().await;
}

/// The rotation README describes: the new key goes in front of the old one everywhere;
/// a web app still sealing to the old public key keeps working, and what the services
/// seal from then on is under the new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_rotation_the_old_public_key_still_works_and_new_values_use_the_new_one() {
    let mut h = Harness::new().await;
    let old = h.keys_text.clone();
    let new = entry("rotated");
    h.keys_text = format!("{new},{old}");
    h.key = Keyring::parse(&h.keys_text).expect("keyring");
    h.start_orchestrator();
    let _journal = h.start_steps(&[]);

    let old_public = Keyring::parse(&old).expect("old").recipient().to_text();
    let new_public = h.key.recipient().to_text();
    for (name, public_key) in [("old", old_public), ("new", new_public)] {
        let id = Uuid::new_v4();
        let mut signup = h.signup(id, &h.subdomain(name));
        signup["admin_password"] = serde_json::Value::Null;
        signup["admin_password_sealed"] = serde_json::json!(seal_as_the_web_app(
            &public_key,
            "Sealed-Meadow-7-Compass",
            id
        ));
        h.publish_signup(&signup).await;
        assert_eq!(
            h.wait_terminal(id, 30).await,
            SagaStatus::Completed,
            "{name}"
        );
    }
    // The saga store keeps both passwords sealed again under the new key.
    let store = store_bytes(&h);
    let count = |needle: &str| {
        store
            .windows(needle.len())
            .filter(|w| *w == needle.as_bytes())
            .count()
    };
    assert!(count("v2:rotated:") >= 2, "kept under the new key");
    assert_eq!(count("v2:services:"), 0, "nothing kept under the old key");
    h.finish().await;
}

/// db-step's ledger keeps each user's password sealed: under the old key it still opens
/// while both keys are in the ring, and the step answers with it; once the old key is
/// dropped too early, the step refuses rather than rotate a password a site uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_password_under_the_old_key_opens_during_a_rotation_and_not_after_retiring_it() {
    let h = Harness::new().await;
    let ledger = format!("ledger_rotation_{}", h.suffix);
    let databases = MariaDb::new(&tests::mysql_url(), &ledger).expect("mariadb");
    databases.prepare().await.expect("ledger");
    let step = DatabaseStep::new(databases);
    let subdomain = h.subdomain("rotation");
    let saga = Uuid::new_v4();
    let execute = command(saga, "database", StepAction::Execute, 1, &subdomain);
    let output = |value: serde_json::Value| -> DatabaseOutput {
        serde_json::from_value(value).expect("DatabaseOutput")
    };

    let old = entry("old");
    let new = entry("new");
    let before = Keyring::parse(&old).expect("old");
    let first = output(
        step.execute(&execute, &StepContext::standalone(before))
            .await
            .expect("made"),
    );
    assert!(first.db_password.0.starts_with("v2:old:"));

    let during = Keyring::parse(&format!("{new},{old}")).expect("both");
    let again = output(
        step.execute(&execute, &StepContext::standalone(during.clone()))
            .await
            .expect("run again during the rotation"),
    );
    assert_eq!(
        again.db_password, first.db_password,
        "the same kept password"
    );
    let other = command(
        Uuid::new_v4(),
        "database",
        StepAction::Execute,
        1,
        &h.subdomain("rotnew"),
    );
    let fresh = output(
        step.execute(&other, &StepContext::standalone(during))
            .await
            .expect("a new database"),
    );
    assert!(fresh.db_password.0.starts_with("v2:new:"));

    let after = Keyring::parse(&new).expect("new only");
    let refused = step
        .execute(&execute, &StepContext::standalone(after))
        .await
        .expect_err("the old key is gone");
    assert!(
        matches!(&refused, StepError::Permanent { code, .. } if code == "database_password_unknown"),
        "{refused:?}"
    );

    tests::drop_tenant(&db_step::database_name(&subdomain)).await;
    tests::drop_tenant(&db_step::database_name(&h.subdomain("rotnew"))).await;
    let pool = tests::admin_pool().await;
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS `{ledger}`"))
        .execute(&pool)
        .await
        .expect("ledger dropped");
    h.finish().await;
}
