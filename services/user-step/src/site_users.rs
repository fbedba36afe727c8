//! The users of one site, through bench: each method is one bench call whose form,
//! output and exit code Frappe v15 is known to give (dev/bench-emulator/FACTS.md).
//!
//! `bench execute` prints `json.dumps(result)` only for a truthy result, so "printed
//! nothing" means `None`, `""`, `0` or `False`.

use std::time::Duration;

use bench::{Bench, CommandLine, Finished};
use secrets::SecretString;
use step_runtime::StepError;
use tokio::sync::mpsc;

/// The message Frappe refuses to delete or disable the last System Manager with.
pub const LAST_SYSTEM_MANAGER: &str = "There should remain at least one System Manager";

/// A Python literal for `--args` and `--kwargs`.
#[derive(Debug, Clone, Copy)]
pub enum Py<'a> {
    /// A string, quoted and escaped.
    Str(&'a str),
    /// `None`.
    None,
    /// `True` or `False`.
    Bool(bool),
    /// An integer.
    Int(i64),
}

impl Py<'_> {
    fn render(self) -> String {
        match self {
            Self::Str(text) => python_str(text),
            Self::None => "None".into(),
            Self::Bool(true) => "True".into(),
            Self::Bool(false) => "False".into(),
            Self::Int(n) => n.to_string(),
        }
    }
}

/// A Python string literal (single quotes; `'` and `\` escaped).
pub fn python_str(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `[a, b, ...]`.
fn python_list(items: &[Py<'_>]) -> String {
    let items: Vec<String> = items.iter().map(|i| i.render()).collect();
    format!("[{}]", items.join(", "))
}

/// `{'k': v, ...}`.
fn python_dict(items: &[(&str, Py<'_>)]) -> String {
    let items: Vec<String> = items
        .iter()
        .map(|(k, v)| format!("{}: {}", python_str(k), v.render()))
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// One site's users, reached through `bench`.
pub struct SiteUsers<'a, B> {
    /// Runs bench.
    pub bench: &'a B,
    /// Each call's timeout.
    pub timeout: Duration,
    /// The site.
    pub site: &'a str,
}

impl<B: Bench> SiteUsers<'_, B> {
    /// Runs a command, whatever its exit code.
    pub async fn call(&self, command: CommandLine) -> Result<Finished, StepError> {
        tracing::info!(command = %command, "bench");
        let (tx, _rx) = mpsc::unbounded_channel();
        self.bench
            .run(&command, self.timeout, tx)
            .await
            .map_err(|e| StepError::new(e.is_permanent(), e.code(), e.to_string()))
    }

    /// Runs a command that must exit 0.
    pub async fn checked(&self, command: CommandLine) -> Result<Finished, StepError> {
        let shown = command.to_string();
        let finished = self.call(command).await?;
        finished
            .verdict(&shown)
            .map_err(|f| StepError::new(f.permanent, f.code, f.message))?;
        Ok(finished)
    }

    /// `bench --site S execute METHOD [--args LIST] [--kwargs DICT]`.
    pub fn execute_line(
        &self,
        method: &str,
        args: &[Py<'_>],
        kwargs: &[(&str, Py<'_>)],
    ) -> CommandLine {
        let mut line = CommandLine::bench(["--site", self.site, "execute", method]);
        if !args.is_empty() {
            line = line.args(["--args", &python_list(args)]);
        }
        if !kwargs.is_empty() {
            line = line.args(["--kwargs", &python_dict(kwargs)]);
        }
        line
    }

    /// Runs `execute` (exit 0 required) and returns what it printed: the JSON of a
    /// truthy result, or `None`.
    pub async fn execute(
        &self,
        method: &str,
        args: &[Py<'_>],
        kwargs: &[(&str, Py<'_>)],
    ) -> Result<Option<serde_json::Value>, StepError> {
        let finished = self
            .checked(self.execute_line(method, args, kwargs))
            .await?;
        Ok(printed(&finished))
    }

    /// Whether the user exists.
    pub async fn exists(&self, email: &str) -> Result<bool, StepError> {
        Ok(self
            .execute("frappe.db.exists", &[Py::Str("User"), Py::Str(email)], &[])
            .await?
            .is_some())
    }

    /// A field of the user's row; `None` when unset (or falsy).
    pub async fn get_value(
        &self,
        email: &str,
        field: &str,
    ) -> Result<Option<serde_json::Value>, StepError> {
        self.execute(
            "frappe.db.get_value",
            &[Py::Str("User"), Py::Str(email), Py::Str(field)],
            &[],
        )
        .await
    }

    /// Writes a field of the user's row, without the document's checks.
    pub async fn set_value(
        &self,
        email: &str,
        field: &str,
        value: Py<'_>,
    ) -> Result<(), StepError> {
        self.execute(
            "frappe.db.set_value",
            &[Py::Str("User"), Py::Str(email), Py::Str(field), value],
            &[],
        )
        .await
        .map(drop)
    }

    /// The API secret the site holds for the user, read back without rotating it;
    /// `None` when none was ever generated.
    pub async fn stored_secret(&self, email: &str) -> Result<Option<SecretString>, StepError> {
        let printed = self
            .execute(
                "frappe.utils.password.get_decrypted_password",
                &[Py::Str("User"), Py::Str(email), Py::Str("api_secret")],
                &[("raise_exception", Py::Bool(false))],
            )
            .await?;
        Ok(printed
            .as_ref()
            .and_then(|p| p.as_str())
            .filter(|s| !s.is_empty())
            .map(|s| SecretString::from(s.to_string())))
    }

    /// A new API secret (and a key when the user has none); the previous secret stops
    /// working.
    pub async fn generate_keys(&self, email: &str) -> Result<SecretString, StepError> {
        let printed = self
            .execute(
                "frappe.core.doctype.user.user.generate_keys",
                &[Py::Str(email)],
                &[],
            )
            .await?;
        printed
            .as_ref()
            .and_then(|k| k.get("api_secret"))
            .and_then(|s| s.as_str())
            .map(|s| SecretString::from(s.to_string()))
            .ok_or_else(|| {
                StepError::transient("keys_missing", "generate_keys printed no api_secret")
            })
    }

    /// Deletes the user without its `on_trash` hook, which refuses the last System
    /// Manager. Returns how bench ended (the caller reads a refusal).
    pub async fn delete_without_on_trash(&self, email: &str) -> Result<Finished, StepError> {
        self.call(self.execute_line(
            "frappe.delete_doc",
            &[],
            &[
                ("doctype", Py::Str("User")),
                ("name", Py::Str(email)),
                ("ignore_on_trash", Py::Bool(true)),
            ],
        ))
        .await
    }

    /// Ends the user's sessions (also fine when the user is gone).
    pub async fn clear_sessions(&self, email: &str) -> Result<(), StepError> {
        self.execute(
            "frappe.sessions.clear_sessions",
            &[],
            &[("user", Py::Str(email)), ("force", Py::Bool(true))],
        )
        .await
        .map(drop)
    }
}

/// The JSON bench printed last on stdout, if any.
fn printed(finished: &Finished) -> Option<serde_json::Value> {
    let stdout = finished.stdout();
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
    last.and_then(|l| serde_json::from_str(l.trim()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_literals() {
        assert_eq!(python_str("o'brien@x.io"), "'o\\'brien@x.io'");
        assert_eq!(python_str("a\\b"), "'a\\\\b'");
        assert_eq!(
            python_list(&[Py::Str("User"), Py::Str("a@b.co"), Py::Int(0), Py::None]),
            "['User', 'a@b.co', 0, None]"
        );
        assert_eq!(
            python_dict(&[("user", Py::Str("a@b.co")), ("force", Py::Bool(true))]),
            "{'user': 'a@b.co', 'force': True}"
        );
    }
}
