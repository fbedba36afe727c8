//! Real durations (`"durations": "real"`, FACTS.md "Durations"): each command lasts at
//! least its figure times `duration_scale`. Only lower bounds: a loaded machine makes
//! any command slower, never faster.

use std::time::{Duration, Instant};

use super::{bench, drop_db, execute, fixture, new_site, Run};

/// Runs `f`, returning what it returned and how long it took.
fn timed(f: impl FnOnce() -> Run) -> (Run, Duration) {
    let started = Instant::now();
    let run = f();
    (run, started.elapsed())
}

#[test]
fn real_durations_make_each_command_last_its_scaled_figure() {
    // A tenth of the real figures: new-site 1.43 s, install-app 3 s, generate_keys 0.07 s.
    let (dir, db) = fixture(r#"{"delay_ms": 0, "durations": "real", "duration_scale": 0.1}"#);
    let root = dir.path();
    let site = "d.localhost";
    let (made, took) = timed(|| new_site(root, site, &db));
    assert_eq!(made.code, 0, "{}", made.stderr);
    assert!(
        took >= Duration::from_millis(1_430),
        "new-site took {took:?}, less than a tenth of 14.3 s"
    );
    // The progress lines are spread over the work, not printed at once at the end.
    assert!(made.stdout.contains("Updating DocTypes for frappe"));

    let (installed, took) = timed(|| bench(root, &["--site", site, "install-app", "erpnext"]));
    assert_eq!(installed.code, 0, "{}", installed.stderr);
    assert!(
        took >= Duration::from_millis(3_000),
        "install-app took {took:?}, less than a tenth of 30 s"
    );

    let (added, took) = timed(|| {
        bench(
            root,
            &[
                "--site",
                site,
                "add-system-manager",
                "a@b.co",
                "--first-name",
                "A",
                "--password",
                "Pw1-long-enough",
            ],
        )
    });
    assert_eq!(added.code, 0, "{}", added.stderr);
    assert!(
        took >= Duration::from_millis(120),
        "add-system-manager took {took:?}, less than a tenth of 1.2 s"
    );
    let (keys, took) = timed(|| {
        execute(
            root,
            site,
            "frappe.core.doctype.user.user.generate_keys",
            Some("['a@b.co']"),
            None,
        )
    });
    assert_eq!(keys.code, 0, "{}", keys.stderr);
    assert!(
        took >= Duration::from_millis(70),
        "generate_keys took {took:?}, less than a tenth of 0.7 s"
    );
    drop_db(&db);
}

#[test]
fn without_a_scale_commands_last_their_whole_figure() {
    // `set-config`: 0.25 s of start and 0.05 s of work.
    let (dir, db) = fixture(r#"{"delay_ms": 0, "durations": "real"}"#);
    let root = dir.path();
    let site = "s.localhost";
    std::fs::create_dir_all(root.join("sites").join(site)).expect("site folder");
    std::fs::write(root.join("sites").join(site).join("site_config.json"), "{}")
        .expect("site config");
    let (set, took) = timed(|| bench(root, &["--site", site, "set-config", "k", "v"]));
    assert_eq!(set.code, 0, "{}", set.stderr);
    assert!(
        took >= Duration::from_millis(300),
        "set-config took {took:?}, less than 0.3 s"
    );
    drop_db(&db);
}
