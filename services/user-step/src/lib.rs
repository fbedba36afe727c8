//! The admin user step: the tenant's System Manager on its new site, and API keys the
//! web app uses to act for them.
//!
//! Effect: `execute frappe.db.exists` (a retry finds its user made), then
//! `add-system-manager <email> --first-name F [--last-name L] --password P` (the
//! signup's password, or a generated one for Google sign-ups), then
//! `execute ...generate_keys` and `execute frappe.db.get_value` for the key. The key
//! and the sealed secret go into the saga's `completed` result.
//!
//! Undo: delete the user (`frappe.delete_doc`). A disabled user's token still works and
//! `disable-user` refuses the last System Manager, so disabling is no undo; should the
//! delete fail, the keys are cleared and the user disabled through `frappe.db.set_value`
//! before the failure is reported. Nothing to do when the site is already gone or is
//! not this saga's.

use std::time::Duration;

use bench::{Bench, CommandLine, Finished};
use contracts::StepCommand;
use secrets::SecretString;
use serde_json::json;
use step_runtime::{Step, StepContext, StepError};
use tokio::sync::mpsc;

/// The `admin_user` step over any [`Bench`].
pub struct UserStep<B> {
    bench: B,
    timeout: Duration,
}

impl<B: Bench> UserStep<B> {
    /// A user step running bench through `bench`; each call may take `timeout`.
    pub fn new(bench: B, timeout: Duration) -> Self {
        Self { bench, timeout }
    }

    async fn call(&self, command: CommandLine) -> Result<Finished, StepError> {
        tracing::info!(command = %command, "bench");
        let (tx, _rx) = mpsc::unbounded_channel();
        self.bench
            .run(&command, self.timeout, tx)
            .await
            .map_err(|e| StepError::new(e.is_permanent(), e.code(), e.to_string()))
    }

    async fn checked(&self, command: CommandLine) -> Result<Finished, StepError> {
        let shown = command.to_string();
        let finished = self.call(command).await?;
        finished
            .verdict(&shown)
            .map_err(|f| StepError::new(f.permanent, f.code, f.message))?;
        Ok(finished)
    }

    /// `bench --site S execute METHOD --args "[...]"`, returning what it printed (JSON
    /// of a truthy result, or nothing).
    async fn execute_method(
        &self,
        site: &str,
        method: &str,
        args: &[&str],
    ) -> Result<Option<serde_json::Value>, StepError> {
        let list = format!(
            "[{}]",
            args.iter()
                .map(|a| python_str(a))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let finished = self
            .checked(CommandLine::bench([
                "--site", site, "execute", method, "--args", &list,
            ]))
            .await?;
        let printed = finished.stdout();
        let last = printed.lines().rev().find(|l| !l.trim().is_empty());
        Ok(last.and_then(|l| serde_json::from_str(l.trim()).ok()))
    }

    /// Whether the site exists and carries this saga's marker.
    async fn site_is_ours(&self, site: &str, saga: &str) -> Result<bool, StepError> {
        let finished = self
            .call(CommandLine::new("cat").args([format!("sites/{site}/site_config.json").as_str()]))
            .await?;
        if finished.exit_code != 0 {
            return Ok(false);
        }
        let config: serde_json::Value =
            serde_json::from_str(&finished.stdout()).unwrap_or_default();
        Ok(config.get("provisioning_saga_id").and_then(|v| v.as_str()) == Some(saga))
    }
}

/// A Python string literal (single quotes; `'` and `\` escaped).
fn python_str(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Splits a full name into first and last name at the first space.
fn split_name(full: &str) -> (String, Option<String>) {
    match full.trim().split_once(char::is_whitespace) {
        Some((first, last)) if !last.trim().is_empty() => {
            (first.to_string(), Some(last.trim().to_string()))
        }
        _ => (full.trim().to_string(), None),
    }
}

impl<B: Bench> Step for UserStep<B> {
    async fn drain(&self) {
        self.bench.settle().await;
    }

    async fn readiness(&self) -> Vec<step_runtime::health::Check> {
        vec![step_runtime::health::Check::within("bench", self.bench.check()).await]
    }

    fn name(&self) -> &str {
        "admin_user"
    }

    async fn execute(
        &self,
        command: &StepCommand,
        context: &StepContext,
    ) -> Result<serde_json::Value, StepError> {
        let site = command.tenant.site_name.as_str();
        let email = command.tenant.admin_email.as_str();
        if !self
            .site_is_ours(site, &command.saga_id.to_string())
            .await?
        {
            return Err(StepError::permanent(
                "site_missing",
                format!("site {site} is missing or not this signup's"),
            ));
        }
        let exists = self
            .execute_method(site, "frappe.db.exists", &["User", email])
            .await?
            .is_some();
        if exists {
            context
                .output(
                    format!("User {email} already exists on {site} (an earlier attempt)"),
                    Some(50),
                )
                .await;
        } else {
            let password: SecretString = match &command.tenant.admin_password {
                Some(sealed) => context
                    .secrets()
                    .open(sealed)
                    .map_err(|e| StepError::permanent("sealed_secret", e.to_string()))?,
                None => secrets::generate_password(24),
            };
            let (first, last) = split_name(&command.tenant.admin_full_name);
            let mut add = CommandLine::bench([
                "--site",
                site,
                "add-system-manager",
                email,
                "--first-name",
                &first,
            ]);
            if let Some(last) = &last {
                add = add.args(["--last-name", last]);
            }
            self.checked(add.secret("--password", &password)).await?;
            context
                .output(
                    format!("System Manager {email} created on {site}"),
                    Some(50),
                )
                .await;
        }
        // Each call rotates the secret: the one returned here is the one that works.
        let keys = self
            .execute_method(
                site,
                "frappe.core.doctype.user.user.generate_keys",
                &[email],
            )
            .await?;
        let secret = keys
            .as_ref()
            .and_then(|k| k.get("api_secret"))
            .and_then(|s| s.as_str())
            .ok_or_else(|| {
                StepError::transient("keys_missing", "generate_keys printed no api_secret")
            })?;
        let key = self
            .execute_method(site, "frappe.db.get_value", &["User", email, "api_key"])
            .await?;
        let key = key.as_ref().and_then(|k| k.as_str()).ok_or_else(|| {
            StepError::transient(
                "keys_missing",
                "the user has no api_key after generate_keys",
            )
        })?;
        context
            .output(format!("API keys issued for {email}"), Some(100))
            .await;
        let sealed_secret = context.secrets().seal(secret);
        Ok(json!({
            "admin_email": email,
            "result": { "api_key": key, "api_secret": sealed_secret.0 },
        }))
    }

    async fn compensate(
        &self,
        command: &StepCommand,
        context: &StepContext,
    ) -> Result<(), StepError> {
        let site = command.tenant.site_name.as_str();
        let email = command.tenant.admin_email.as_str();
        if !self
            .site_is_ours(site, &command.saga_id.to_string())
            .await?
        {
            context
                .output(
                    format!("Site {site} is gone or not this signup's: no user to remove"),
                    None,
                )
                .await;
            return Ok(());
        }
        let shown = format!("bench --site {site} execute frappe.delete_doc");
        let list = format!("[{}, {}]", python_str("User"), python_str(email));
        let deleted = self
            .call(CommandLine::bench([
                "--site",
                site,
                "execute",
                "frappe.delete_doc",
                "--args",
                &list,
            ]))
            .await?;
        if deleted.exit_code == 0 {
            context
                .output(format!("Removed user {email} from {site}"), None)
                .await;
            return Ok(());
        }
        // Could not delete: at least take its access away, then report.
        for (field, value) in [
            ("api_key", "None"),
            ("api_secret", "None"),
            ("enabled", "0"),
        ] {
            let args = format!(
                "[{}, {}, {}, {value}]",
                python_str("User"),
                python_str(email),
                python_str(field)
            );
            let _ = self
                .call(CommandLine::bench([
                    "--site",
                    site,
                    "execute",
                    "frappe.db.set_value",
                    "--args",
                    &args,
                ]))
                .await?;
        }
        Err(StepError::transient(
            "user_delete_failed",
            format!(
                "`{shown}` failed: {}; keys cleared and user disabled meanwhile",
                deleted.summary(2)
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_literals() {
        assert_eq!(
            split_name("Test Admin"),
            ("Test".into(), Some("Admin".into()))
        );
        assert_eq!(split_name("Madonna"), ("Madonna".into(), None));
        assert_eq!(
            split_name(" Jean  de la Fontaine "),
            ("Jean".into(), Some("de la Fontaine".into()))
        );
        assert_eq!(python_str("o'brien@x.io"), "'o\\'brien@x.io'");
    }
}
