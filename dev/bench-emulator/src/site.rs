//! The site commands, emulated after `../shared/frappe-facts.md`.

use std::path::PathBuf;

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{json, Value};

use crate::cli::Parsed;
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
fn scripted(bench: &Bench, command: &str, site: Option<&str>, app: Option<&str>) -> Option<u8> {
    let fault = bench.fault(command, site, app)?;
    if fault.hang {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    traceback(
        &["apps/frappe/frappe/commands/site.py\", line 1, in emulated"],
        &format!("frappe.exceptions.ValidationError: emulated failure of {command} (scripted in emulator.json)"),
    );
    Some(1)
}

fn progress(bench: &Bench, app: &str) {
    say(&format!("Installing {app}..."));
    for pct in [10, 35, 60, 85, 100] {
        bench.pause();
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
    progress(bench, "frappe");
    let admin = json!({ "Administrator": { "first_name": "Administrator", "roles": ["Administrator", "System Manager"], "enabled": true, "password_set": !admin_password.is_empty() } });
    let _ = write_json(&emulator_file(bench, site, "users.json"), &admin);
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
        progress(bench, app);
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

fn users(bench: &Bench, site: &str) -> serde_json::Map<String, Value> {
    read_json(&emulator_file(bench, site, "users.json"))
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
}

fn save_users(bench: &Bench, site: &str, users: serde_json::Map<String, Value>) {
    let _ = write_json(
        &emulator_file(bench, site, "users.json"),
        &Value::Object(users),
    );
}

/// Parses a Python list literal of strings such as `['User', 'a@b.co']`.
fn python_list(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut items = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let Some(quote) = chars.next() else { break };
        if quote != '\'' && quote != '"' {
            // A bare token: None, a number, True/False.
            let mut token = String::from(quote);
            while chars.peek().is_some_and(|c| *c != ',') {
                token.push(chars.next()?);
            }
            items.push(token.trim().to_string());
            continue;
        }
        let mut item = String::new();
        loop {
            match chars.next()? {
                '\\' => item.push(chars.next()?),
                c if c == quote => break,
                c => item.push(c),
            }
        }
        items.push(item);
    }
    Some(items)
}

fn does_not_exist(what: &str) -> u8 {
    traceback(
        &["apps/frappe/frappe/model/document.py\", line 1, in load_from_db"],
        &format!("frappe.exceptions.DoesNotExistError: {what} not found"),
    );
    1
}

/// `bench --site SITE execute METHOD --args "[...]"`: prints `json.dumps(result)` only
/// for a truthy result, as Frappe does.
pub fn execute(bench: &Bench, site: &str, p: Parsed) -> u8 {
    let method = p.positionals[0].as_str();
    let args = match p.value("--args").map(python_list) {
        Some(Some(args)) => args,
        Some(None) => {
            traceback(&["<string>\", line 1"], "SyntaxError: invalid syntax");
            return 1;
        }
        None => Vec::new(),
    };
    if let Some(code) = scripted(bench, "execute", Some(site), None) {
        return code;
    }
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
    let mut users = users(bench, site);
    let result: Value = match method {
        "frappe.db.exists" if arg(0) == "User" => {
            if users.contains_key(arg(1)) {
                json!(arg(1))
            } else {
                Value::Null
            }
        }
        "frappe.db.get_value" if arg(0) == "User" => users
            .get(arg(1))
            .and_then(|u| u.get(arg(2)))
            .cloned()
            .unwrap_or(Value::Null),
        "frappe.core.doctype.user.user.generate_keys" => {
            let Some(user) = users.get_mut(arg(0)) else {
                return does_not_exist(&format!("User {}", arg(0)));
            };
            if user.get("api_key").is_none_or(Value::is_null) {
                user["api_key"] = json!(random(15).to_lowercase());
            }
            let secret = random(15).to_lowercase();
            user["api_secret"] = json!(secret);
            save_users(bench, site, users);
            json!({ "api_secret": secret })
        }
        "frappe.db.set_value" if arg(0) == "User" => {
            let Some(user) = users.get_mut(arg(1)) else {
                return does_not_exist(&format!("User {}", arg(1)));
            };
            let value = match arg(3) {
                "None" => Value::Null,
                "0" | "False" => json!(false),
                "1" | "True" => json!(true),
                other => json!(other),
            };
            let field = if arg(2) == "enabled" {
                "enabled"
            } else {
                arg(2)
            };
            user[field] = value;
            save_users(bench, site, users);
            Value::Null
        }
        "frappe.delete_doc" if arg(0) == "User" => {
            if ["Administrator", "Guest"].contains(&arg(1)) {
                traceback(
                    &["apps/frappe/frappe/core/doctype/user/user.py\", line 1, in on_trash"],
                    &format!(
                        "frappe.exceptions.PermissionError: User {} cannot be deleted",
                        arg(1)
                    ),
                );
                return 1;
            }
            // ignore_missing defaults to True.
            users.remove(arg(1));
            save_users(bench, site, users);
            Value::Null
        }
        other => {
            traceback(
                &["apps/frappe/frappe/__init__.py\", line 1, in get_attr"],
                &format!("AttributeError: the emulator does not know {other}"),
            );
            return 1;
        }
    };
    let truthy =
        !(result.is_null() || result == json!("") || result == json!(false) || result == json!(0));
    if truthy {
        say(&crate::python_dumps(&result));
    }
    0
}

/// `bench --site SITE add-system-manager EMAIL --first-name F --last-name L --password P`.
pub fn add_system_manager(bench: &Bench, site: &str, p: Parsed) -> u8 {
    let email = p.positionals[0].clone();
    if let Some(code) = scripted(bench, "add-system-manager", Some(site), None) {
        return code;
    }
    let mut users = users(bench, site);
    if users.contains_key(&email) {
        traceback(
            &["apps/frappe/frappe/database/database.py\", line 1, in sql"],
            &format!("frappe.exceptions.DuplicateEntryError: ('User', '{email}', IntegrityError(1062, \"Duplicate entry '{email}' for key 'PRIMARY'\"))"),
        );
        return 1;
    }
    let roles: Vec<&str> = vec![
        "System Manager",
        "Accounts Manager",
        "Sales Manager",
        "Purchase Manager",
        "Stock Manager",
        "HR Manager",
    ];
    users.insert(
        email.clone(),
        json!({
            "first_name": p.value("--first-name").unwrap_or(&email),
            "last_name": p.value("--last-name"),
            "roles": roles,
            "enabled": true,
            "password_set": p.value("--password").is_some_and(|v| !v.is_empty()),
            "api_key": null,
        }),
    );
    save_users(bench, site, users);
    0
}

/// `bench --site SITE disable-user EMAIL`: refuses the last System Manager.
pub fn disable_user(bench: &Bench, site: &str, p: Parsed) -> u8 {
    let email = p.positionals[0].clone();
    let mut users = users(bench, site);
    let managers = users
        .iter()
        .filter(|(name, u)| name.as_str() != "Administrator" && u["enabled"] == json!(true))
        .filter(|(_, u)| {
            u["roles"]
                .as_array()
                .is_some_and(|r| r.contains(&json!("System Manager")))
        })
        .count();
    let Some(user) = users.get_mut(&email) else {
        return does_not_exist(&format!("User {email}"));
    };
    if managers <= 1
        && user["roles"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("System Manager")))
    {
        traceback(&["apps/frappe/frappe/core/doctype/user/user.py\", line 1, in check_enable_disable_system_manager"], "frappe.exceptions.ValidationError: There should remain at least one System Manager");
        return 1;
    }
    user["enabled"] = json!(false);
    save_users(bench, site, users);
    0
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_python_lists() {
        assert_eq!(
            super::python_list("['User', 'a@b.co']"),
            Some(vec!["User".to_string(), "a@b.co".to_string()])
        );
        assert_eq!(
            super::python_list("[\"User\", 'it\\'s', 'api_key']").map(|v| v.len()),
            Some(3)
        );
        assert_eq!(super::python_list("[]"), Some(vec![]));
        assert_eq!(super::python_list("User"), None);
        assert_eq!(
            super::python_list("['User', 'a@b.co', 'api_key', None]").map(|v| v[3].clone()),
            Some("None".to_string())
        );
    }
}
