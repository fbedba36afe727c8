//! The emulator against the facts it must reproduce (`FACTS.md` beside this crate),
//! with a real MariaDB for `new-site`. Each test has its own bench folder and database.
//! The admin user's rules: `facts/users.rs`; `bench serve`: `facts/http.rs`; real
//! durations: `facts/durations.rs`.

use std::path::Path;
use std::process::Command;

#[path = "facts/durations.rs"]
mod durations;
#[path = "facts/http.rs"]
mod http;
#[path = "facts/users.rs"]
mod users;

/// A short unique suffix for database names.
fn unique() -> String {
    static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}{nanos:x}{n}", std::process::id())
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn bench(root: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_bench-emulator"))
        .args(args)
        .current_dir(root)
        .output()
        .expect("emulator runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn mysql(sql: &str) {
    let status = Command::new("mariadb")
        .args(["-h127.0.0.1", "-uroot", "-e", sql])
        .status()
        .expect("mariadb client");
    assert!(status.success(), "{sql}");
}

/// A bench folder, plus a database and user as the database step makes them.
fn fixture(emulator_json: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("sites")).expect("sites");
    std::fs::write(
        dir.path().join("sites/common_site_config.json"),
        r#"{"frappe_user": "frappe", "db_host": "127.0.0.1", "db_port": 3306}"#,
    )
    .expect("common config");
    std::fs::write(dir.path().join("sites/apps.txt"), "frappe\nerpnext\n").expect("apps.txt");
    std::fs::write(dir.path().join("emulator.json"), emulator_json).expect("emulator.json");
    let db = format!("emu_{}", unique());
    mysql(&format!("CREATE DATABASE {db}; CREATE USER '{db}'@'%' IDENTIFIED BY 'Right1'; GRANT ALL ON {db}.* TO '{db}'@'%';"));
    (dir, db)
}

/// `bench new-site SITE` on database `db` (from [`fixture`]), with its right password
/// and the admin password `Adm1n`.
fn new_site(root: &Path, site: &str, db: &str) -> Run {
    bench(
        root,
        &[
            "new-site",
            site,
            "--no-setup-db",
            "--db-name",
            db,
            "--db-password",
            "Right1",
            "--admin-password",
            "Adm1n",
        ],
    )
}

/// A new site `site` on database `db` (from [`fixture`]) whose only System Manager
/// besides Administrator is `email`, with login password `password`.
fn site_with_admin(root: &Path, db: &str, site: &str, email: &str, password: &str) {
    let made = new_site(root, site, db);
    assert_eq!(made.code, 0, "{}", made.stderr);
    let add = bench(
        root,
        &[
            "--site",
            site,
            "add-system-manager",
            email,
            "--first-name",
            "A",
            "--password",
            password,
        ],
    );
    assert_eq!(add.code, 0, "{}", add.stderr);
}

/// `bench --site SITE execute METHOD [--args ARGS] [--kwargs KWARGS]`.
fn execute(root: &Path, site: &str, method: &str, args: Option<&str>, kwargs: Option<&str>) -> Run {
    let mut words = vec!["--site", site, "execute", method];
    if let Some(args) = args {
        words.extend(["--args", args]);
    }
    if let Some(kwargs) = kwargs {
        words.extend(["--kwargs", kwargs]);
    }
    bench(root, &words)
}

/// The last line of a run's stderr (the exception of a traceback).
fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
}

fn drop_db(db: &str) {
    mysql(&format!(
        "DROP DATABASE IF EXISTS {db}; DROP USER IF EXISTS '{db}'@'%';"
    ));
}

#[test]
fn new_site_connects_for_real_and_leaves_residue_on_failure() {
    let (dir, db) = fixture(r#"{"delay_ms": 1}"#);
    let root = dir.path();
    let wrong = bench(
        root,
        &[
            "new-site",
            "a.localhost",
            "--no-setup-db",
            "--db-name",
            &db,
            "--db-password",
            "Wrong1",
            "--admin-password",
            "Adm1n",
        ],
    );
    assert_eq!(wrong.code, 1);
    assert!(
        wrong.stderr.contains("Access denied for user"),
        "{}",
        wrong.stderr
    );
    let residue: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("sites/a.localhost/site_config.json")).expect("residue"),
    )
    .expect("json");
    assert_eq!(
        residue["db_password"], "Wrong1",
        "the failed attempt leaves its config behind"
    );

    let again = new_site(root, "a.localhost", &db);
    assert_eq!(again.code, 1);
    assert!(
        again.stdout.contains("Site a.localhost already exists"),
        "{}",
        again.stdout
    );

    let ok = new_site(root, "b.localhost", &db);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(ok.stdout.contains("Installing frappe..."));
    assert!(
        ok.stdout.contains("] 100%\r"),
        "progress segments end with \\r"
    );
    assert!(ok.stdout.contains("*** Scheduler is disabled ***"));
    let log = std::fs::read_to_string(root.join("logs/bench.log")).expect("bench.log");
    assert!(
        log.contains("--admin-password Adm1n"),
        "bench logs full command lines, secrets included"
    );
    drop_db(&db);
}

#[test]
fn usage_errors_prompts_and_root_match_bench() {
    let (dir, db) = fixture("{}");
    let root = dir.path();
    let scope = bench(
        root,
        &[
            "new-site",
            "c.localhost",
            "--no-setup-db",
            "--mariadb-user-host-login-scope",
            "%",
        ],
    );
    assert_eq!(scope.code, 2);
    assert!(scope
        .stderr
        .contains("Error: No such option: --mariadb-user-host-login-scope"));
    assert!(
        !root.join("sites/c.localhost").exists(),
        "a usage error creates nothing"
    );
    let dangling = bench(root, &["new-site", "c.localhost", "--db-name"]);
    assert_eq!(
        (
            dangling.code,
            dangling
                .stderr
                .contains("Option '--db-name' requires an argument.")
        ),
        (2, true)
    );

    let empty = bench(
        root,
        &[
            "new-site",
            "d.localhost",
            "--no-setup-db",
            "--db-name",
            &db,
            "--db-password",
            "Right1",
            "--admin-password",
            "",
        ],
    );
    assert_eq!(empty.code, 1);
    assert!(
        empty.stdout.contains("Set Administrator password:") && empty.stderr.contains("Aborted!")
    );
    assert!(
        root.join("sites/d.localhost/site_config.json").exists(),
        "aborted after part of the work"
    );

    std::fs::write(root.join("sites/common_site_config.json"), "{}").expect("no frappe_user");
    let as_root = bench(root, &["--site", "d.localhost", "enable-scheduler"]);
    if nix_is_root() {
        assert_eq!(as_root.code, 1);
        assert!(as_root
            .stdout
            .contains("You should not run this command as root"));
    }
    drop_db(&db);
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn apps_users_keys_and_scripted_failures() {
    let (dir, db) = fixture(
        r#"{"delay_ms": 1, "fail": [{"command": "install-app", "site": "f.localhost", "app": "erpnext"}]}"#,
    );
    let root = dir.path();
    for site in ["e.localhost", "f.localhost"] {
        let made = new_site(root, site, &db);
        assert_eq!(made.code, 0, "{}", made.stderr);
    }
    assert_eq!(
        bench(root, &["--site", "e.localhost", "install-app", "erpnext"]).code,
        0
    );
    let twice = bench(root, &["--site", "e.localhost", "install-app", "erpnext"]);
    assert_eq!(
        (twice.code, twice.stdout.trim()),
        (0, "App erpnext already installed")
    );
    let unknown = bench(root, &["--site", "e.localhost", "install-app", "hrms"]);
    assert_eq!(
        (unknown.code, unknown.stdout.trim()),
        (1, "Could not find app \"hrms\"")
    );
    assert_eq!(
        bench(root, &["--site", "f.localhost", "install-app", "erpnext"]).code,
        1,
        "scripted failure"
    );
    let missing = bench(
        root,
        &["--site", "nope.localhost", "install-app", "erpnext"],
    );
    assert_eq!(
        (missing.code, missing.stdout.trim()),
        (1, "Site nope.localhost does not exist!")
    );

    let exists = |email: &str| {
        bench(
            root,
            &[
                "--site",
                "e.localhost",
                "execute",
                "frappe.db.exists",
                "--args",
                &format!("['User', '{email}']"),
            ],
        )
        .stdout
    };
    assert_eq!(exists("a@b.co"), "", "nothing printed for a falsy result");
    let add = bench(
        root,
        &[
            "--site",
            "e.localhost",
            "add-system-manager",
            "a@b.co",
            "--first-name",
            "A",
            "--last-name",
            "B",
            "--password",
            "Pw1",
        ],
    );
    assert_eq!((add.code, add.stdout.as_str()), (0, ""));
    assert_eq!(exists("a@b.co").trim(), "\"a@b.co\"");
    let dup = bench(
        root,
        &["--site", "e.localhost", "add-system-manager", "a@b.co"],
    );
    assert_eq!(dup.code, 1);
    assert!(dup.stderr.contains("DuplicateEntryError"));
    let keys = bench(
        root,
        &[
            "--site",
            "e.localhost",
            "execute",
            "frappe.core.doctype.user.user.generate_keys",
            "--args",
            "['a@b.co']",
        ],
    );
    assert!(
        keys.stdout.starts_with("{\"api_secret\": \""),
        "{}",
        keys.stdout
    );
    let key = bench(
        root,
        &[
            "--site",
            "e.localhost",
            "execute",
            "frappe.db.get_value",
            "--args",
            "['User', 'a@b.co', 'api_key']",
        ],
    );
    assert!(key.stdout.trim().starts_with('"') && key.stdout.trim().len() > 5);
    drop_db(&db);
}
