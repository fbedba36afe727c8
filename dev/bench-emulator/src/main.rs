//! `bench-emulator`: an EMULATOR of a Frappe v15 bench, for development and tests only.
//! It is not Frappe. It behaves like the real `bench` for the commands the step
//! services use, as `FACTS.md` beside this crate records them: same options (anything
//! v15 lacks is a usage error, exit 2 with Click's message), same exit codes and
//! messages, same residue on failure, a prompt-needing call aborts like a TTY-less
//! bench, `new-site` really connects to MariaDB with the given credentials, and the
//! admin user's rules (the last System Manager can be neither deleted nor disabled
//! through the document API) hold. `bench serve --port N` answers the sites' login and
//! token checks over HTTP.
//!
//! Run it with the bench folder as working directory (like `BENCH_PATH`). State:
//! `sites/<site>/site_config.json`, and the emulator's own `sites/<site>/emulator/*.json`
//! (apps, users, the `__Auth` table, deleted documents). Every command line is appended
//! to `logs/bench.log`, secrets included, as the real bench does.
//!
//! Failure injection, for tests: `<bench>/emulator.json`, for example
//! `{"delay_ms": 20, "fail": [{"command": "install-app", "site": "x.localhost"}]}`
//! (`site`, `app` and, for `execute`, `method` are optional filters; `"hang": true`
//! makes the command hang; `exception` replaces the last line of the traceback).
//! `"durations": "real"` makes every command last as long as on a quiet 2-core machine
//! (module `durations`), times `duration_scale`.

mod cli;
mod durations;
mod execute;
mod http;
mod password_policy;
mod pyliteral;
mod resource;
mod site;
mod store;
mod users;

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
    /// Only for this method (execute).
    #[serde(default)]
    pub method: Option<String>,
    /// The exception line the traceback ends with, instead of the default
    /// `ValidationError: emulated failure of ...`.
    #[serde(default)]
    pub exception: Option<String>,
    /// Hang instead of failing (to test timeouts).
    #[serde(default)]
    pub hang: bool,
}

/// `emulator.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Pause between progress lines.
    #[serde(default = "default_delay")]
    pub delay_ms: u64,
    /// Scripted failures.
    #[serde(default)]
    pub fail: Vec<Fault>,
    /// How long every command lasts at least (tests that watch `ps`).
    #[serde(default)]
    pub command_ms: u64,
    /// `"real"`: every command lasts as long as on a quiet 2-core machine.
    #[serde(default)]
    pub durations: durations::Durations,
    /// Multiplies the real durations (a test runs the same shape faster).
    #[serde(default = "default_scale")]
    pub duration_scale: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            delay_ms: default_delay(),
            fail: Vec::new(),
            command_ms: 0,
            durations: durations::Durations::Fast,
            duration_scale: default_scale(),
        }
    }
}

fn default_delay() -> u64 {
    30
}

fn default_scale() -> f64 {
    1.0
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

    /// The scripted fault for this command, if any. `detail` is the app of
    /// `install-app` or the method of `execute`.
    pub fn fault(&self, command: &str, site: Option<&str>, detail: Option<&str>) -> Option<Fault> {
        self.settings
            .fail
            .iter()
            .find(|f| {
                f.command == command
                    && f.site.as_deref().is_none_or(|s| Some(s) == site)
                    && f.app.as_deref().is_none_or(|a| Some(a) == detail)
                    && f.method.as_deref().is_none_or(|m| Some(m) == detail)
            })
            .cloned()
    }

    /// The durations `emulator.json` asks for.
    pub fn timing(&self) -> durations::Timing {
        durations::Timing {
            durations: self.settings.durations,
            scale: self.settings.duration_scale,
        }
    }

    /// Pauses between two of `segments` progress lines of work that lasts `work` in
    /// real durations (`delay_ms` otherwise).
    pub fn pause(&self, work: std::time::Duration, segments: u32) {
        let pause = if self.timing().real() {
            work / segments.max(1)
        } else {
            std::time::Duration::from_millis(self.settings.delay_ms)
        };
        std::thread::sleep(pause);
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

/// Writes a JSON file the way Frappe does (indented), through a rename, so that a
/// reader (`bench serve` answering a request) never sees half a file.
pub fn write_json(path: &Path, value: &serde_json::Value) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(format!(".{}.partial", std::process::id()));
    std::fs::write(
        &partial,
        serde_json::to_string_pretty(value).unwrap_or_default() + "\n",
    )?;
    std::fs::rename(&partial, path)
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

/// A Python exception raised by an emulated Frappe function: printed as the
/// traceback bench shows, and exit 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raised {
    /// The frame it was raised in, as `file", line N, in function`.
    pub frame: &'static str,
    /// The last line, such as `frappe.exceptions.ValidationError: ...`.
    pub exception: String,
}

impl Raised {
    /// `frappe.exceptions.<class>: <message>` raised in `frame`.
    pub fn frappe(frame: &'static str, class: &str, message: impl std::fmt::Display) -> Self {
        Self {
            frame,
            exception: format!("frappe.exceptions.{class}: {message}"),
        }
    }

    /// Prints the traceback; returns bench's exit code.
    pub fn print(&self) -> u8 {
        traceback(&[self.frame], &self.exception);
        1
    }
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
        .unwrap_or_default();
    let bench = Bench { root, settings };
    log_command(&bench.root, &args);
    // Python starting and importing Frappe, in real durations.
    std::thread::sleep(bench.timing().start());
    std::thread::sleep(std::time::Duration::from_millis(bench.settings.command_ms));

    // bench refuses root unless the bench names its frappe_user.
    if nix::unistd::Uid::effective().is_root() && bench.common_config().get("frappe_user").is_none()
    {
        say("WARN: You should not run this command as root");
        return ExitCode::from(1);
    }
    ExitCode::from(cli::dispatch(&bench, &args))
}
