//! The site commands: `new-site`, `install-app`, `enable-scheduler`, `set-config`.

use std::path::PathBuf;

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{json, Value};

use crate::cli::Parsed;
use crate::store::SiteUsers;
use crate::{read_json, say, say_segment, traceback, write_json, Bench};

fn site_dir(bench: &Bench, site: &str) -> PathBuf {
    bench.sites().join(site)
}

fn emulator_file(bench: &Bench, site: &str, name: &str) -> PathBuf {
    site_dir(bench, site).join("emulator").join(name)
}

fn random(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Honours a scripted fault: hangs, or fails with a traceback. `None` = no fault.
/// `detail` is the app of `install-app` or the method of `execute`.
pub fn scripted(
    bench: &Bench,
    command: &str,
    site: Option<&str>,
    detail: Option<&str>,
) -> Option<u8> {
    let fault = bench.fault(command, site, detail)?;
    if fault.hang {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    let exception = fault.exception.unwrap_or_else(|| format!(
        "frappe.exceptions.ValidationError: emulated failure of {command} (scripted in emulator.json)"
    ));
    traceback(
        &["apps/frappe/frappe/commands/site.py\", line 1, in emulated"],
        &exception,
    );
    Some(1)
}

/// The progress of installing `app`, spread over `work` in real durations.
fn progress(bench: &Bench, app: &str, work: std::time::Duration) {
    say(&format!("Installing {app}..."));
    const SEGMENTS: [usize; 5] = [10, 35, 60, 85, 100];
    for pct in SEGMENTS {
        bench.pause(work, SEGMENTS.len() as u32);
        let bar = "=".repeat(pct * 40 / 100);
        say_segment(&format!(
            "Updating DocTypes for {app:<20}: [{bar:<40}] {pct}%"
        ));
    }
    say("");
    say(&format!("Updating Dashboard for {app}"));
}

async fn connect(
    bench: &Bench,
    db_name: &str,
    password: &str,
) -> Result<sqlx::MySqlConnection, String> {
    use sqlx::Connection;
    let common = bench.common_config();
    let host = common
        .get("db_host")
        .and_then(Value::as_str)
        .unwrap_or("127.0.0.1")
        .to_string();
    let port = common
        .get("db_port")
        .and_then(Value::as_u64)
        .unwrap_or(3306) as u16;
    let options = sqlx::mysql::MySqlConnectOptions::new()
        .host(&host)
        .port(port)
        .username(db_name)
        .password(password)
        .database(db_name);
    sqlx::MySqlConnection::connect_with(&options)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(db) => {
                let number = db
                    .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                    .map(|e| e.number())
                    .unwrap_or(0);
                format!("({number}, \"{}\")", db.message())
            }
            other => format!("(2003, \"Can't connect to MySQL server on '{host}' ({other})\")"),
        })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// `bench new-site SITE --no-setup-db --db-name D --db-password P --admin-password A`.
pub fn new_site(bench: &Bench, p: Parsed) -> u8 {
    let site = &p.positionals[0];
    let dir = site_dir(bench, site);
    let config_path = dir.join("site_config.json");
    if config_path.exists() && !p.flag("--force") {
        say(&format!(
            "Site {site} already exists, use `--force` to proceed anyway"
        ));
        return 1;
    }
    if !p.flag("--no-setup-db") {
        // Creating the database needs root credentials, which the steps never pass.
        match p.value("--db-root-password") {
            Some(pw) if !pw.is_empty() => {}
            _ => {
                say("MySQL root password: ");
                eprintln!("Aborted!");
                return 1;
            }
        }
    }
    let db_name = p
        .value("--db-name")
        .map(str::to_string)
        .unwrap_or_else(|| format!("_{}", random(16).to_lowercase()));
    // Without a password Frappe makes one up, which the pre-created user does not have.
    let db_password = p
        .value("--db-password")
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| random(16));
    // Residue comes first, as in Frappe: the folder and its config exist before anything can fail.
    let config = json!({ "db_name": db_name, "db_password": db_password, "db_type": p.value("--db-type").unwrap_or("mariadb") });
    if let Err(e) = write_json(&config_path, &config) {
        traceback(
            &["apps/frappe/frappe/installer.py\", line 1, in make_site_config"],
            &format!("OSError: {e}"),
        );
        return 1;
    }
    let _ = std::fs::create_dir_all(dir.join("public/files"));
    let _ = std::fs::create_dir_all(dir.join("private/backups"));
    let _ = std::fs::create_dir_all(dir.join("locks"));

    let rt = runtime();
    let mut conn = match rt.block_on(connect(bench, &db_name, &db_password)) {
        Ok(conn) => conn,
        Err(error) => {
            traceback(
                &["apps/frappe/frappe/database/mariadb/database.py\", line 111, in get_connection"],
                &format!("pymysql.err.OperationalError: {error}"),
            );
            return 1;
        }
    };
    let Some(admin_password) = p.value("--admin-password").filter(|v| !v.is_empty()) else {
        // Part of the work is done by now; the prompt cannot be answered without a TTY.
        say("Set Administrator password: ");
        eprintln!("Aborted!");
        return 1;
    };
    if let Some(code) = scripted(bench, "new-site", Some(site), None) {
        return code;
    }
    // For tests: when each new-site ran, to check how many ran at once.
    let _timeline = RunRecord::start(bench, site);
    let filled = rt.block_on(async {
        sqlx::raw_sql("CREATE TABLE IF NOT EXISTS `tabInstalled Application` (app_name VARCHAR(140) PRIMARY KEY, app_version VARCHAR(140))")
            .execute(&mut conn)
            .await?;
        sqlx::query("INSERT IGNORE INTO `tabInstalled Application` VALUES ('frappe', '15.44.2')").execute(&mut conn).await
    });
    if let Err(e) = filled {
        traceback(
            &["apps/frappe/frappe/installer.py\", line 1, in install_db"],
            &format!("pymysql.err.OperationalError: {e}"),
        );
        return 1;
    }
    progress(bench, "frappe", bench.timing().work("new-site", None));
    let mut users = SiteUsers::load(bench, site);
    users.users.insert(
        "Administrator".into(),
        json!({ "first_name": "Administrator", "roles": ["Administrator", "System Manager"], "enabled": 1, "api_key": null, "api_secret": null }),
    );
    users.set_password("Administrator", admin_password);
    users.save();
    let _ = write_json(&emulator_file(bench, site, "apps.json"), &json!(["frappe"]));
    say("*** Scheduler is disabled ***");
    0
}

/// Appends `start`/`end` lines with milliseconds to `logs/new-site-runs.log`.
struct RunRecord {
    path: PathBuf,
    site: String,
}

impl RunRecord {
    fn start(bench: &Bench, site: &str) -> Self {
        let record = Self {
            path: bench.root.join("logs/new-site-runs.log"),
            site: site.to_string(),
        };
        record.write("start");
        record
    }

    fn write(&self, what: &str) {
        crate::append_line(
            &self.path,
            &format!(
                "{} {what} {}",
                chrono::Utc::now().timestamp_millis(),
                self.site
            ),
        );
    }
}

impl Drop for RunRecord {
    fn drop(&mut self) {
        self.write("end");
    }
}

fn installed_apps(bench: &Bench, site: &str) -> Vec<String> {
    read_json(&emulator_file(bench, site, "apps.json"))
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

/// `bench --site SITE install-app APP...`.
pub fn install_app(bench: &Bench, site: &str, p: Parsed) -> u8 {
    // Apps of the bench: sites/apps.txt, one per line (frappe always).
    let available: Vec<String> = std::fs::read_to_string(bench.sites().join("apps.txt"))
        .unwrap_or_else(|_| "frappe\n".into())
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    for app in &p.positionals {
        if !available.contains(app) {
            say(&format!("Could not find app \"{app}\""));
            return 1;
        }
        let mut apps = installed_apps(bench, site);
        if apps.contains(app) {
            say(&format!("App {app} already installed"));
            continue;
        }
        if let Some(code) = scripted(bench, "install-app", Some(site), Some(app)) {
            say(&format!("Installing {app}..."));
            return code;
        }
        progress(bench, app, bench.timing().work("install-app", Some(app)));
        apps.push(app.clone());
        let _ = write_json(&emulator_file(bench, site, "apps.json"), &json!(apps));
    }
    0
}

/// `bench --site SITE enable-scheduler`.
pub fn enable_scheduler(bench: &Bench, site: &str) -> u8 {
    if let Some(code) = scripted(bench, "enable-scheduler", Some(site), None) {
        return code;
    }
    set_key(bench, site, "pause_scheduler", json!(0));
    say(&format!("Enabled for {site}"));
    0
}

fn set_key(bench: &Bench, site: &str, key: &str, value: Value) {
    let path = site_dir(bench, site).join("site_config.json");
    let mut config = read_json(&path).unwrap_or_else(|| json!({}));
    config[key] = value;
    let _ = write_json(&path, &config);
}

/// `bench --site SITE set-config [-p] KEY VALUE`: strings unless parsed.
pub fn set_config(bench: &Bench, site: &str, p: Parsed) -> u8 {
    if let Some(code) = scripted(bench, "set-config", Some(site), None) {
        return code;
    }
    let (key, raw) = (&p.positionals[0], &p.positionals[1]);
    let value = if p.flag("-p") || p.flag("--parse") {
        serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.clone()))
    } else {
        Value::String(raw.clone())
    };
    set_key(bench, site, key, value);
    0
}
