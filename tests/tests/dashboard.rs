//! The live dashboard at `/`, driven in headless Chromium (Debian's `chromium` through
//! `playwright-core`, `tests/browser/dashboard.mjs`) against real services: NATS with
//! its users, the saga store, the real db step and scripted steps whose first
//! registration attempt fails. A signup made while the page is open appears and ends
//! `completed` without a reload; a rolled-back one shows its failed step and its undos;
//! a replay from the page (the secret typed into its dialog) runs the saga again, with
//! the operator's action in its timeline; the standby pool's card and the kind filter
//! show. Screenshots go to
//! `target/test-output/dashboard/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tests::http_api::{wait_for_role, API_SECRET, READ_TOKEN};
use tests::{Behaviour, Harness};

const HOW_TO_INSTALL: &str =
    "run ./dev/test, or `source dev/lib.sh; ensure_chromium; ensure_npm_packages tests/browser` and then this test";

/// The browser test's folder, with its npm packages installed (`npm ci`) when missing or
/// older than the lock file, as `dev/lib.sh`'s `ensure_npm_packages` does.
fn browser_folder() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser");
    let modules = dir.join("node_modules");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let stale = match (
        modified(&modules.join("playwright-core")),
        modified(&dir.join("package-lock.json")),
    ) {
        (Some(installed), Some(lock)) => installed < lock,
        _ => true,
    };
    if stale {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .unwrap_or_else(|e| panic!("npm cannot run ({e}): {HOW_TO_INSTALL}"));
        assert!(
            status.success(),
            "npm ci in {} failed: {HOW_TO_INSTALL}",
            dir.display()
        );
    }
    dir
}

/// Debian's chromium, as `ensure_chromium` exports it.
fn chromium() -> String {
    let bin = std::env::var("CHROMIUM_BIN")
        .unwrap_or_else(|_| panic!("CHROMIUM_BIN is not set: {HOW_TO_INSTALL}"));
    assert!(
        Path::new(&bin).exists(),
        "CHROMIUM_BIN={bin} does not exist: {HOW_TO_INSTALL}"
    );
    bin
}

/// `target/test-output/dashboard/`, emptied.
fn screenshot_folder() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("test binaries live in <target>/<profile>/deps");
    let folder = target.join("test-output").join("dashboard");
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).expect("screenshot folder");
    folder
}

/// The page and its assets: content types, caching, the security headers; the
/// figures need the read token and a sane window.
async fn served_as_static_files_under_a_strict_policy(client: &reqwest::Client, base: &str) {
    let page = client.get(format!("{base}/")).send().await.expect("page");
    assert_eq!(page.status(), 200);
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&page, "cache-control"), "no-cache");
    let policy = header(&page, "content-security-policy");
    assert!(
        policy.contains("default-src 'none'")
            && policy.contains("script-src 'self'")
            && policy.contains("connect-src 'self'")
            && !policy.contains("unsafe"),
        "{policy}"
    );
    let html = page.text().await.expect("html");
    let script = html
        .split("src=\"")
        .filter_map(|rest| rest.split('"').next())
        .find(|src| src.ends_with("/app.js"))
        .unwrap_or_else(|| panic!("the page loads app.js: {html}"))
        .to_string();
    let asset = client
        .get(format!("{base}/{script}"))
        .send()
        .await
        .expect("asset");
    assert_eq!(asset.status(), 200);
    assert_eq!(
        header(&asset, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert!(header(&asset, "cache-control").contains("immutable"));
    assert!(header(&asset, "content-security-policy").contains("script-src 'self'"));
    let missing = client
        .get(format!("{base}/{}", script.replace("app.js", "nothing.js")))
        .send()
        .await
        .expect("asset");
    assert_eq!(missing.status(), 404);

    let stats = |query: &'static str, token: Option<&'static str>| {
        let mut request = client.get(format!("{base}/api/v1/stats{query}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.expect("stats").status() }
    };
    assert_eq!(stats("", None).await, 401);
    assert_eq!(stats("", Some(READ_TOKEN)).await, 200);
    assert_eq!(stats("?window=45d", Some(READ_TOKEN)).await, 400);
    assert_eq!(stats("?window=soon", Some(READ_TOKEN)).await, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_signups_live_shows_undos_and_replays() {
    let chromium = chromium();
    let browser = browser_folder();
    Command::new("node")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("node cannot run ({e}): {HOW_TO_INSTALL}"));
    let screenshots = screenshot_folder();

    let mut h = Harness::new().await;
    let journal = h.start_steps(&[
        // A little work with a progress line, so the page has output to show.
        (
            "site",
            Behaviour {
                delay: Duration::from_millis(600),
                ..Behaviour::default()
            },
        ),
        // The world's first admin user attempt fails and is retried.
        (
            "admin_user",
            Behaviour {
                fail_executes: 1,
                ..Behaviour::default()
            },
        ),
        // The world's first registration fails for good (the saga rolls back); the
        // replay's attempt succeeds.
        (
            "registration",
            Behaviour {
                fail_executes: 1,
                permanent: true,
                ..Behaviour::default()
            },
        ),
    ]);
    let base = h.start_api(&[]);
    let client = reqwest::Client::new();
    wait_for_role(&client, &base, "leader").await;

    served_as_static_files_under_a_strict_policy(&client, &base).await;

    let log = h.logs.join("browser.log");
    let (fail, ok) = (h.subdomain("dash-fail"), h.subdomain("dash-ok"));
    let script = browser.join("dashboard.mjs");
    let run = {
        let log = std::fs::File::create(&log).expect("browser log");
        let mut child = tokio::process::Command::new("node")
            .arg(&script)
            .current_dir(&browser)
            .env("DASHBOARD_URL", &base)
            .env("READ_TOKEN", READ_TOKEN)
            .env("API_SECRET", API_SECRET)
            .env("SUBDOMAIN_FAIL", &fail)
            .env("SUBDOMAIN_OK", &ok)
            .env("CHROMIUM_BIN", &chromium)
            .env("OUTPUT_DIR", &screenshots)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("node {} starts: {e}", script.display()));
        tokio::time::timeout(Duration::from_secs(300), child.wait())
            .await
            .expect("the browser run ends within 5 minutes")
            .expect("node ran")
    };
    // Both signups end completed (one after its replay): their databases stay.
    for subdomain in [&fail, &ok] {
        tests::drop_tenant(&db_step::database_name(subdomain)).await;
    }
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        run.success(),
        "the browser run failed (screenshots in {}):\n{said}",
        screenshots.display()
    );
    let result: Value = said
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .map(|r| serde_json::from_str(r).expect("result json"))
        .unwrap_or_else(|| panic!("no RESULT line:\n{said}"));

    // What the page showed is what the store holds.
    let saga = |id: Value| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            client
                .get(format!("{base}/api/v1/sagas/{}", id.as_str().expect("id")))
                .bearer_auth(READ_TOKEN)
                .send()
                .await
                .expect("get")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let completed = saga(result["ok_id"].clone()).await;
    assert_eq!(completed["saga"]["status"], "completed", "{completed}");
    assert_eq!(completed["saga"]["subdomain"], ok.as_str());
    let replayed = saga(result["fail_id"].clone()).await;
    assert_eq!(replayed["saga"]["status"], "completed", "{replayed}");
    assert_eq!(replayed["saga"]["run"], 2, "{replayed}");
    let action = &replayed["operator_actions"][0];
    assert_eq!(
        (&action["operator"], &action["reason"]),
        (&Value::from("dana"), &Value::from("registry fixed")),
        "{replayed}"
    );
    let fail_id: uuid::Uuid = result["fail_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let registrations: Vec<(u32, bool)> = journal
        .entries()
        .into_iter()
        .filter(|e| e.saga_id == fail_id && e.step == "registration")
        .filter(|e| e.action == contracts::StepAction::Execute)
        .map(|e| (e.run, e.ok))
        .collect();
    assert_eq!(
        registrations,
        [(1, false), (2, true)],
        "failed in run 1, done in run 2"
    );

    // The headline figures now: both completed (one after its replay), none in flight.
    let stats: Value = client
        .get(format!("{base}/api/v1/stats?window=24h"))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    println!("GET /api/v1/stats?window=24h: {stats}");
    assert_eq!(stats["counts"]["completed"], 2, "{stats}");
    assert_eq!(stats["success_rate"], 1.0, "{stats}");
    assert_eq!(stats["time_to_ready"]["count"], 2, "{stats}");
    assert_eq!(stats["in_flight"], 0, "{stats}");
    assert_eq!(stats["needing_attention"]["total"], 0, "{stats}");

    for shot in [
        "1-overview.png",
        "2-filtered.png",
        "3-rolled-back.png",
        "4-replay-dialog.png",
        "5-replayed.png",
    ] {
        let bytes = std::fs::read(screenshots.join(shot)).unwrap_or_default();
        assert!(bytes.starts_with(b"\x89PNG"), "{shot} is a PNG");
    }
    h.finish().await;
}
