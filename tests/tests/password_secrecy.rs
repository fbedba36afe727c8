//! The admin's password never shows where bench would show it: a real saga through
//! the five services as processes, with every process's arguments sampled while it
//! runs, then every file of the test (bench.log, the sites, the saga store, the
//! services' logs) searched. And the password is the one that works: the throwaway
//! that bench.log does show is dead. A weak password is refused at signup.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use contracts::SagaStatus;
use tests::Harness;
use uuid::Uuid;

const EMAIL: &str = "admin@test.com";

/// Every distinct command line (`/proc/*/cmdline`, arguments joined by spaces) seen
/// until `stop`, read as often as the machine allows.
fn sample_command_lines(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<HashSet<String>> {
    std::thread::spawn(move || {
        let mut seen = HashSet::new();
        while !stop.load(Ordering::Relaxed) {
            for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                if let Ok(bytes) = std::fs::read(entry.path().join("cmdline")) {
                    if !bytes.is_empty() {
                        let line = String::from_utf8_lossy(&bytes).replace('\0', " ");
                        seen.insert(line.trim_end().to_string());
                    }
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        seen
    })
}

/// Files under `folder` (recursively) whose bytes contain `needle`.
fn files_holding(folder: &Path, needle: &str, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(folder).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_holding(&path, needle, found);
        } else if let Ok(bytes) = std::fs::read(&path) {
            if bytes
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
            {
                found.push(path.display().to_string());
            }
        }
    }
}

/// The password `add-system-manager` was given for `email` on `site`, read from
/// bench.log (where bench writes every command line).
fn throwaway_in_bench_log(root: &Path, site: &str) -> String {
    let log = std::fs::read_to_string(root.join("logs/bench.log")).expect("bench.log");
    log.lines()
        .find(|l| l.contains(&format!("--site {site} add-system-manager {EMAIL}")))
        .and_then(|l| l.split("--password ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no add-system-manager for {site} in bench.log:\n{log}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chosen_password_is_never_on_a_command_line_or_in_a_file_and_is_the_one_that_works() {
    let mut h = Harness::new().await;
    // Every bench command lasts a while, so the sampler sees each one.
    let root = h.bench_folder(serde_json::json!({"delay_ms": 1, "command_ms": 300}));
    let (master_url, _master) = h.start_master().await;
    let services = h.spawn_all(&h.frappe_env(&root, &master_url));
    let http = h.bench_http(&root);

    let chosen = format!("Quiet-Harbor-{}-Lantern", h.suffix);
    let subdomain = h.subdomain("secret");
    let site = format!("{subdomain}.example.test");
    let id = Uuid::new_v4();
    let mut signup = h.signup(id, &subdomain);
    signup["admin_password"] = serde_json::json!(chosen);

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_command_lines(stop.clone());
    h.publish_signup(&signup).await;
    let status = h.wait_terminal(id, 120).await;
    stop.store(true, Ordering::Relaxed);
    let seen = sampler.join().expect("sampler");
    assert_eq!(status, SagaStatus::Completed, "{:#?}", h.get(id).await);

    // The sampler did see bench's command lines, the throwaway password included.
    let throwaway = throwaway_in_bench_log(&root, &site);
    assert!(
        seen.iter()
            .any(|l| l.contains("add-system-manager") && l.contains(&throwaway)),
        "the sampler saw add-system-manager's arguments"
    );
    let shown: Vec<&String> = seen.iter().filter(|l| l.contains(&chosen)).collect();
    assert!(
        shown.is_empty(),
        "the password on a command line: {shown:#?}"
    );

    // Nowhere in a file: bench.log, the sites, the saga store, the services' logs.
    drop(services);
    let mut found = Vec::new();
    files_holding(h.dir.path(), &chosen, &mut found);
    files_holding(&h.logs, &chosen, &mut found);
    assert!(found.is_empty(), "the password in {found:#?}");

    // It is the password that works; the one bench.log shows does not.
    assert_eq!(http.login(&site, EMAIL, &chosen).await, 200);
    assert_eq!(http.login(&site, EMAIL, &throwaway).await, 401);

    tests::drop_tenant(&db_step::database_name(&subdomain)).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_google_signups_throwaway_from_bench_log_does_not_log_in() {
    let mut h = Harness::new().await;
    let root = h.bench_folder(serde_json::json!({"delay_ms": 1}));
    let (master_url, _master) = h.start_master().await;
    let _services = h.spawn_all(&h.frappe_env(&root, &master_url));
    let http = h.bench_http(&root);

    let subdomain = h.subdomain("google");
    let site = format!("{subdomain}.example.test");
    let id = Uuid::new_v4();
    let mut signup = h.signup(id, &subdomain);
    signup["admin_password"] = serde_json::Value::Null;
    signup["auth_provider"] = serde_json::json!("google");
    h.publish_signup(&signup).await;
    assert_eq!(h.wait_terminal(id, 60).await, SagaStatus::Completed);

    let throwaway = throwaway_in_bench_log(&root, &site);
    assert_eq!(http.login(&site, EMAIL, &throwaway).await, 401);

    tests::drop_tenant(&db_step::database_name(&subdomain)).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_password_is_rejected_at_signup_with_advice_and_nothing_is_created() {
    let mut h = Harness::new().await;
    h.start_orchestrator();
    let journal = h.start_steps(&[]);
    let subdomain = h.subdomain("weak");
    let id = Uuid::new_v4();
    let mut signup = h.signup(id, &subdomain);
    let weak = "abcdefgh1";
    signup["admin_password"] = serde_json::json!(weak);
    h.publish_signup(&signup).await;
    assert_eq!(h.wait_terminal(id, 30).await, SagaStatus::Rejected);

    let timeline = h.timeline(id, 1).await;
    assert_eq!(timeline.len(), 1, "rejected at once: {timeline:#?}");
    let error = timeline[0].error.as_ref().expect("error");
    assert_eq!(error.code, "invalid_password");
    assert!(
        error
            .message
            .contains("Sequences like abc or 6543 are easy to guess."),
        "zxcvbn's advice: {}",
        error.message
    );
    assert!(!error.message.contains(weak), "{}", error.message);
    assert!(journal.lines(id).is_empty(), "no step ran");
    assert_eq!(
        tests::mariadb_has(&db_step::database_name(&subdomain)).await,
        (false, false),
        "no database"
    );
    // The subdomain stays free.
    let reply: serde_json::Value = h
        .request(
            h.subjects.subdomain_check(),
            &serde_json::json!({ "subdomain": subdomain }),
        )
        .await;
    assert_eq!(reply["available"], true, "{reply}");
    let stored = h.get(id).await.saga.expect("saga");
    assert!(!serde_json::to_string(&stored).expect("json").contains(weak));

    h.finish().await;
}
