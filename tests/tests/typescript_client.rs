//! The TypeScript client (`clients/typescript`) against the real services: its types
//! match `schemas/` (`npm run check:generated`), it builds with `tsc`, and its tests
//! (node's own runner) pass against a world of real services, connected as the web
//! app's NATS user: a signup completes with its events in order, a duplicate is one
//! saga, a reconnect mid-saga loses and repeats nothing, a signup the bus swallowed is
//! published again, a taken subdomain and a bad email are typed errors, and the opened
//! API secret authenticates against the emulated site; every signup it published
//! carried `Nats-Msg-Id: <signup_id>` (JetStream's dedup of a repeat). Sealed values interoperate with
//! the `secrets` crate both ways (the fixture below, and every signup's password).

use std::time::Duration;

use futures::StreamExt as _;
use secrets::{Binding, ExposeSecret as _, Field, Keyring};
use tests::node::{repo_root, require_node_packages, run_logged, WebAppWorld};
use uuid::Uuid;

const FIXTURE: &str = "clients/typescript/test/fixtures/sealed-by-rust.json";

/// `clients/typescript/test/fixtures/sealed-by-rust.json` is a value this crate sealed
/// and opens (the client's unit tests open it): rewritten with `UPDATE_FIXTURES=1`.
#[test]
fn the_fixture_the_typescript_tests_open_is_sealed_by_the_secrets_crate() {
    let path = repo_root().join(FIXTURE);
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        let private = Keyring::generate_entry(&tests::key_id("fixture"));
        let ring = Keyring::parse(private.expose_secret()).expect("keyring");
        let saga = Uuid::new_v4();
        let clear = "api-secret-ünïcode-0123456789abcdef";
        let sealed = ring.seal(clear, Binding::new(saga, Field::ApiSecret));
        let fixture = serde_json::json!({
            "about": "sealed by the Rust secrets crate (tests/tests/typescript_client.rs); a test key, secret nowhere",
            "private_key": private.expose_secret(),
            "public_key": ring.recipient().to_text(),
            "saga_id": saga,
            "field": "api_secret",
            "clear": clear,
            "sealed": sealed.0,
        });
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&fixture).expect("json") + "\n",
        )
        .expect("fixture");
    }
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json");
    let text = |k: &str| fixture[k].as_str().expect(k).to_string();
    let ring = Keyring::parse(&text("private_key")).expect("keyring");
    assert_eq!(ring.recipient().to_text(), text("public_key"));
    let saga: Uuid = text("saga_id").parse().expect("uuid");
    let opened = ring
        .open(
            &contracts::Sealed(text("sealed")),
            Binding::new(saga, Field::ApiSecret),
        )
        .expect("the fixture opens");
    assert_eq!(opened.expose_secret(), text("clear"));
}

/// How many tests `test:all` runs: the `test(` calls that open a line of
/// clients/typescript/test/{unit,e2e}/*.test.mjs.
fn declared_tests(dir: &std::path::Path) -> usize {
    ["test/unit", "test/e2e"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(dir.join(sub)).expect("test folder"))
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.to_string_lossy().ends_with(".test.mjs"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("test file");
            text.lines().filter(|l| l.starts_with("test(")).count()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_client_works_against_the_real_services() {
    let dir = require_node_packages("clients/typescript");
    // Slow enough (each bench command 150 ms) that a saga is still running while the
    // reconnect test cuts its connection.
    let world = WebAppWorld::start(serde_json::json!({"delay_ms": 150})).await;
    let logs = world.h.logs.clone();
    // Every subdomain clients/typescript/test/e2e signs up with or checks.
    let env = world.web_app_env(&[
        "ts-first",
        "ts-twice",
        "ts-free",
        "ts-mail",
        "ts-weak",
        "ts-reconnect",
        "ts-swallowed",
    ]);
    let step = |args: &[&str], name: &str, limit: u64| {
        let (status, output) = run_logged(
            "npm",
            args,
            &dir,
            &env,
            &logs.join(format!("{name}.log")),
            Duration::from_secs(limit),
        );
        assert!(status.success(), "npm {args:?} failed:\n{output}");
        output
    };
    // Every signup the client publishes, as the bus carries it (the harness's own user
    // may listen anywhere).
    let mut signups = world
        .h
        .client
        .subscribe("tenant.signup.requested")
        .await
        .expect("subscribe");
    world.h.client.flush().await.expect("flush");
    step(&["run", "check:generated"], "check-generated", 60);
    step(&["run", "build"], "build", 180);
    let output = step(&["run", "test:all"], "node-test", 600);
    // node's runner closes with its counts: every test ran and passed.
    for zero in ["# fail 0", "# cancelled 0", "# skipped 0", "# todo 0"] {
        assert!(output.contains(zero), "not {zero}:\n{output}");
    }
    let passed: usize = output
        .lines()
        .find_map(|l| l.strip_prefix("# pass "))
        .and_then(|n| n.trim().parse().ok())
        .expect("node's test count");
    assert_eq!(
        passed,
        declared_tests(&dir),
        "every test the files declare ran and passed:\n{output}"
    );

    signups.unsubscribe().await.expect("unsubscribe");
    let mut seen = 0;
    while let Some(message) = signups.next().await {
        let body: serde_json::Value = serde_json::from_slice(&message.payload).expect("json");
        let signup_id = body["signup_id"].as_str().expect("signup_id");
        let msg_id = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.as_str().to_string());
        assert_eq!(
            msg_id.as_deref(),
            Some(signup_id),
            "a signup published without Nats-Msg-Id = its signup_id"
        );
        seen += 1;
    }
    // The e2e tests sign up at least once per subdomain they complete a saga for.
    assert!(seen >= 4, "only {seen} signups seen on the bus");
    world.finish().await;
}
