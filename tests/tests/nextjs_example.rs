//! The Next.js example (`examples/nextjs`) in a real browser: `next build`, then `next
//! start` against a world of real services (the web app's NATS user and keys, every
//! service as a process, the bench emulator failing `new-site` for one subdomain), and
//! its browser test (`examples/nextjs/test/browser.test.mjs`: headless Chromium from
//! Debian through playwright-core, `CHROMIUM_BIN` from dev/lib.sh's ensure_chromium):
//! a signup's stages up to "Workspace ready!" with the link, its API token in an
//! HTTP-only cookie, the redirect; a taken subdomain's reason next to the field; a
//! forged signup cookie refused; a failing site step's rollback. Screenshots in `target/test-output/nextjs/`.

use std::time::Duration;

use tests::http_api::free_port;
use tests::node::{require_node_packages, run_logged, test_output_folder, NodeServer, WebAppWorld};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nextjs_example_signs_up_in_a_real_browser() {
    let client = require_node_packages("clients/typescript");
    let app = require_node_packages("examples/nextjs");
    let chromium = std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| {
        panic!("this test needs CHROMIUM_BIN (Debian's chromium): `source dev/lib.sh; ensure_chromium` (dev/test does)")
    });
    // Each bench command takes 300 ms, so that the page shows the stages as they run.
    let world = WebAppWorld::start(serde_json::json!({"delay_ms": 300})).await;
    let failing = world.h.subdomain("web-fail");
    std::fs::write(
        world.root.join("emulator.json"),
        serde_json::json!({
            "delay_ms": 300,
            "fail": [{"command": "new-site", "site": format!("{failing}.example.test")}],
        })
        .to_string(),
    )
    .expect("emulator.json");
    let logs = world.h.logs.clone();
    // The subdomain examples/nextjs/test signs up with (`web`).
    let mut env = world.web_app_env(&["web"]);
    env.push(("NEXT_TELEMETRY_DISABLED".into(), "1".into()));
    let npm = |dir: &std::path::Path, args: &[&str], name: &str, env: &[(String, String)]| {
        let (status, output) = run_logged(
            "npm",
            args,
            dir,
            env,
            &logs.join(format!("{name}.log")),
            Duration::from_secs(600),
        );
        assert!(status.success(), "npm {args:?} failed:\n{output}");
        output
    };
    npm(&client, &["run", "build"], "client-build", &env);
    npm(&app, &["run", "build"], "next-build", &env);

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server_env = env.clone();
    server_env.push(("WORKSPACE_REDIRECT_SECONDS".into(), "3".into()));
    let mut server = NodeServer::start(
        "npx",
        &["next", "start", "-H", "127.0.0.1", "-p", &port.to_string()],
        &app,
        &server_env,
        &logs.join("next-start.log"),
    );
    server.wait_ready(&format!("{base}/"), 60).await;

    let screenshots = test_output_folder("nextjs");
    let mut test_env = env.clone();
    test_env.extend([
        ("BASE_URL".to_string(), base),
        ("CHROMIUM_BIN".to_string(), chromium),
        (
            "SCREENSHOT_DIR".to_string(),
            screenshots.display().to_string(),
        ),
        ("FAILING_SUBDOMAIN".to_string(), failing),
    ]);
    let output = npm(&app, &["run", "test:browser"], "browser-test", &test_env);
    for count in [
        "# pass 4",
        "# fail 0",
        "# cancelled 0",
        "# skipped 0",
        "# todo 0",
    ] {
        assert!(output.contains(count), "not {count}:\n{output}");
    }
    for name in [
        "1-signup-form",
        "2-stages",
        "3-workspace-ready",
        "4-subdomain-taken",
        "5-rolled-back",
        "6-forged-cookie",
    ] {
        assert!(
            screenshots.join(format!("{name}.png")).is_file(),
            "screenshot {name}"
        );
    }
    drop(server);
    world.finish().await;
}
