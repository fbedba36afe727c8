//! `bench-emulator`: an EMULATOR of a Frappe v15 bench, for development and tests only.
//! It is not Frappe. It behaves like the real `bench` for the commands the step
//! services use, as `../shared/frappe-facts.md` records them: same options (anything
//! v15 lacks is a usage error, exit 2 with Click's message), same exit codes and
//! messages, same residue on failure, a prompt-needing call aborts like a TTY-less
//! bench, and `new-site` really connects to MariaDB with the given credentials.
//!
//! Run it with the bench folder as working directory (like `BENCH_PATH`). State:
//! `sites/<site>/site_config.json`, and the emulator's own `sites/<site>/emulator/*.json`
//! (apps, users and keys). Every command line is appended to `logs/bench.log`, secrets
//! included, as the real bench does.
//!
//! Failure injection, for tests: `<bench>/emulator.json`, for example
//! `{"delay_ms": 20, "fail": [{"command": "install-app", "site": "x.localhost"}]}`
//! (`site` and `app` are optional filters; `"hang": true` makes the command hang).

mod cli;
mod site;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Deserialize;

/// A scripted failure.
#[derive(Debug, Clone, Deserialize)]
pub struct Fault {
    /// Command name, such as `new-site` or `install-app`.
    pub command: String,
    /// Only for this site.
    #[serde(default)]
    pub site: Option<String>,
    /// Only for this app (install-app).
    #[serde(default)]
    pub app: Option<String>,
    /// Hang instead of failing (to test timeouts).
    #[serde(default)]
    pub hang: bool,
}

/// `emulator.json`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Settings {
    /// Pause between progress lines.
    #[serde(default = "default_delay")]
    pub delay_ms: u64,
    /// Scripted failures.
    #[serde(default)]
    pub fail: Vec<Fault>,
}

fn default_delay() -> u64 {
    30
}

/// What every command can use.
pub struct Bench {
    /// The bench folder.
    pub root: PathBuf,
    /// `emulator.json`.
    pub settings: Settings,
}

impl Bench {
    /// `sites/`.
    pub fn sites(&self) -> PathBuf {
        self.root.join("sites")
    }

    /// `sites/common_site_config.json`, or `{}`.
    pub fn common_config(&self) -> serde_json::Value {
        read_json(&self.sites().join("common_site_config.json"))
            .unwrap_or_else(|| serde_json::json!({}))
    }

    /// The scripted fault for this command, if any.
    pub fn fault(&self, command: &str, site: Option<&str>, app: Option<&str>) -> Option<Fault> {
        self.settings
            .fail
            .iter()
            .find(|f| {
                f.command == command
                    && f.site.as_deref().is_none_or(|s| Some(s) == site)
                    && f.app.as_deref().is_none_or(|a| Some(a) == app)
            })
            .cloned()
    }

    /// Pauses like a working bench.
    pub fn pause(&self) {
        std::thread::sleep(std::time::Duration::from_millis(self.settings.delay_ms));
    }
}

/// `json.dumps(value)` as Python prints it (`", "` and `": "` separators).
pub fn python_dumps(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(python_dumps)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        serde_json::Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!(
                    "{}: {}",
                    serde_json::Value::String(k.clone()),
                    python_dumps(v)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> Option<serde_json::Value> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

/// Writes a JSON file the way Frappe does (indented).
pub fn write_json(path: &Path, value: &serde_json::Value) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(
        path,
        serde_json::to_string_pretty(value).unwrap_or_default() + "\n",
    )
}

/// Prints to stdout now (bench output is read line by line by the caller).
pub fn say(text: &str) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Prints a progress segment ended by `\r`, as Frappe's progress bars do.
pub fn say_segment(text: &str) {
    let mut out = std::io::stdout();
    let _ = write!(out, "{text}\r");
    let _ = out.flush();
}

/// Prints a Python-style traceback ending in `exception` to stderr.
pub fn traceback(frames: &[&str], exception: &str) {
    let mut err = std::io::stderr();
    let _ = writeln!(err, "Traceback (most recent call last):");
    for frame in frames {
        let _ = writeln!(err, "  File \"{frame}");
    }
    let _ = writeln!(err, "{exception}");
}

fn log_command(root: &Path, args: &[String]) {
    let logs = root.join("logs");
    let _ = std::fs::create_dir_all(&logs);
    append_line(
        &logs.join("bench.log"),
        &format!(
            "{} INFO bench {}",
            chrono::Utc::now().format("%Y-%m-%d %H:%M:%S,%3f"),
            args.join(" ")
        ),
    );
}

/// Appends `line` to `path` in one `write`, so that lines of bench processes running
/// at once never interleave (`writeln!` on a file writes each piece separately).
pub fn append_line(path: &Path, line: &str) {
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = file.write_all(format!("{line}\n").as_bytes());
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let settings = std::fs::read_to_string(root.join("emulator.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Settings {
            delay_ms: default_delay(),
            fail: Vec::new(),
        });
    let bench = Bench { root, settings };
    log_command(&bench.root, &args);

    // bench refuses root unless the bench names its frappe_user.
    if nix::unistd::Uid::effective().is_root() && bench.common_config().get("frappe_user").is_none()
    {
        say("WARN: You should not run this command as root");
        return ExitCode::from(1);
    }
    ExitCode::from(cli::dispatch(&bench, &args))
}
