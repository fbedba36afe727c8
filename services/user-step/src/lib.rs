//! The admin user step: the tenant's System Manager on its new site, and API keys the
//! web app uses to act for them.
//!
//! Effect: `execute frappe.db.exists` (a retry finds its user made), then
//! `add-system-manager <email> --first-name F [--last-name L] --password T` with a
//! throwaway password `T` (bench logs every command line in `logs/bench.log` and it
//! shows in `ps`), then `execute ...generate_keys` and `execute frappe.db.get_value`
//! for the key. Then the password the user chose (for a Google sign-up, a fresh random
//! one that is never kept) is set through the site's HTTP API with the user's own
//! token ([`SitePasswords`]), which makes the throwaway worthless. The key and the
//! secret, sealed to the web app's key (`WEB_APP_PUBLIC_KEY`), go into the saga's
//! `completed` result.
//!
//! Run again after it completed (a lost report, a retry after a timeout), the step
//! gives the same result and changes nothing: `generate_keys` would make a new secret
//! and kill the one the saga already handed on, so when the user exists its key is read
//! with `get_value` and its secret with `get_decrypted_password` (which does not
//! rotate); keys are generated only when either is missing. The password is set again
//! on every run (setting it twice is harmless, and a run that stopped between the keys
//! and the password must still set it).
//!
//! Undo: Frappe refuses to delete or disable the last System Manager besides
//! Administrator ("There should remain at least one System Manager", every time), and on
//! a site this saga made the admin user always is that one. So the undo first takes the
//! user's access away with `frappe.db.set_value` (no document checks): `api_key` and
//! `api_secret` cleared (a token is looked up by its key, so it stops working; the
//! `Deleted Document` Frappe keeps then holds no key either) and `enabled` 0 (password
//! login refused). Then `frappe.delete_doc` with `ignore_on_trash`, which skips that
//! check (a plain delete would always fail here, and `on_trash`'s other work, ToDos,
//! shares and the like of a user who never logged in, is nothing on a fresh site), and
//! `clear_sessions`. Should Frappe still refuse the delete as the last System Manager,
//! the undo counts as done only once the user is seen disabled and without a key. It
//! never touches a site that is not this saga's.

pub mod frappe_http;
pub mod site_password;
mod site_users;

use std::time::Duration;

use bench::{Bench, CommandLine};
use contracts::StepCommand;
use secrets::{ExposeSecret, SecretString};
use serde_json::json;
use site_password::{ApiToken, SitePasswords};
use site_users::{Py, SiteUsers, LAST_SYSTEM_MANAGER};
use step_runtime::{Step, StepContext, StepError};

/// The `admin_user` step over any [`Bench`], setting passwords through `P`.
pub struct UserStep<B, P> {
    bench: B,
    passwords: P,
    timeout: Duration,
    /// `WEB_APP_PUBLIC_KEY`: the API secret is sealed to the web app, which alone opens
    /// it; the services' keys never open it.
    web_app: secrets::Recipient,
}

/// `WEB_APP_PUBLIC_KEY` through `lookup`: `<key id>:<base64 X25519 public key>`, the
/// public half of the web app's key pair (`saga-keys new` prints both).
pub fn web_app_key(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<secrets::Recipient> {
    let text = lookup("WEB_APP_PUBLIC_KEY").ok_or_else(|| {
        anyhow::anyhow!(
            "WEB_APP_PUBLIC_KEY is required: the web app's public key, `<key id>:<base64>` \
             (`saga-keys new <id>` makes a key pair); the API secret is sealed to it"
        )
    })?;
    secrets::Recipient::parse(&text).map_err(|e| anyhow::anyhow!("WEB_APP_PUBLIC_KEY: {e}"))
}

/// What the undo did with the admin user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undone {
    /// Deleted, after its keys were revoked and it was disabled.
    Removed,
    /// Frappe kept it as the last System Manager: it stays disabled, without API keys.
    KeptLockedOut,
    /// It was not on the site (never made, or removed by an earlier attempt).
    NoUser,
    /// The site is gone or is not this saga's: nothing was touched.
    NotOurSite,
}

impl Undone {
    /// The progress line that says what was done.
    pub fn describe(self, email: &str, site: &str) -> String {
        match self {
            Self::Removed => format!("Removed user {email} from {site} (API keys revoked first)"),
            Self::KeptLockedOut => format!(
                "Kept user {email} on {site} disabled with its API keys revoked (Frappe keeps the last System Manager)"
            ),
            Self::NoUser => format!("User {email} is not on {site}: nothing to remove"),
            Self::NotOurSite => {
                format!("Site {site} is gone or not this signup's: no user to remove")
            }
        }
    }
}

impl<B: Bench, P: SitePasswords> UserStep<B, P> {
    /// A user step running bench through `bench` (each call may take `timeout`),
    /// setting passwords through `passwords`, and sealing the API secret to `web_app`.
    pub fn new(bench: B, passwords: P, timeout: Duration, web_app: secrets::Recipient) -> Self {
        Self {
            bench,
            passwords,
            timeout,
            web_app,
        }
    }

    fn users<'a>(&'a self, site: &'a str) -> SiteUsers<'a, B> {
        SiteUsers {
            bench: &self.bench,
            timeout: self.timeout,
            site,
        }
    }

    /// Whether the site exists and carries this saga's marker.
    async fn site_is_ours(&self, site: &str, saga: &str) -> Result<bool, StepError> {
        let finished = self
            .users(site)
            .call(CommandLine::new("cat").args([format!("sites/{site}/site_config.json").as_str()]))
            .await?;
        if finished.exit_code != 0 {
            return Ok(false);
        }
        let config: serde_json::Value =
            serde_json::from_str(&finished.stdout()).unwrap_or_default();
        Ok(config.get("provisioning_saga_id").and_then(|v| v.as_str()) == Some(saga))
    }

    /// The user's API key and secret: the ones it has when both are set, else new ones.
    /// `fresh` = the user was just made (it has no keys yet: no need to look).
    async fn keys(
        &self,
        users: &SiteUsers<'_, B>,
        email: &str,
        fresh: bool,
    ) -> Result<(String, SecretString, bool), StepError> {
        if !fresh {
            let key = users.get_value(email, "api_key").await?;
            if let Some(key) = key.as_ref().and_then(|k| k.as_str()) {
                if let Some(secret) = users.stored_secret(email).await? {
                    return Ok((key.to_string(), secret, true));
                }
            }
        }
        let secret = users.generate_keys(email).await?;
        let key = users.get_value(email, "api_key").await?;
        let key = key.as_ref().and_then(|k| k.as_str()).ok_or_else(|| {
            StepError::transient(
                "keys_missing",
                "the user has no api_key after generate_keys",
            )
        })?;
        Ok((key.to_string(), secret, false))
    }

    /// Takes the user's access away, deletes it where Frappe lets it, ends its sessions.
    async fn remove(&self, site: &str, email: &str) -> Result<Undone, StepError> {
        let users = self.users(site);
        if !users.exists(email).await? {
            // An earlier attempt may have deleted it and stopped before this.
            users.clear_sessions(email).await?;
            return Ok(Undone::NoUser);
        }
        users.set_value(email, "api_key", Py::None).await?;
        users.set_value(email, "api_secret", Py::None).await?;
        users.set_value(email, "enabled", Py::Int(0)).await?;
        let deleted = users.delete_without_on_trash(email).await?;
        let undone = if deleted.exit_code == 0 {
            Undone::Removed
        } else if deleted.mentions(LAST_SYSTEM_MANAGER) && self.locked_out(&users, email).await? {
            Undone::KeptLockedOut
        } else {
            return Err(StepError::transient(
                "user_delete_failed",
                format!(
                    "`bench --site {site} execute frappe.delete_doc` failed (exit {}): {}",
                    deleted.exit_code,
                    deleted.summary(1)
                ),
            ));
        };
        users.clear_sessions(email).await?;
        Ok(undone)
    }

    /// Whether the user can no longer get in: disabled (no password login) and without
    /// an API key (no token).
    async fn locked_out(&self, users: &SiteUsers<'_, B>, email: &str) -> Result<bool, StepError> {
        Ok(users.get_value(email, "enabled").await?.is_none()
            && users.get_value(email, "api_key").await?.is_none())
    }
}

impl<B: Bench, P: SitePasswords> Step for UserStep<B, P> {
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
        // Opened first: a password that cannot be opened changes nothing.
        let chosen: SecretString = match &command.tenant.admin_password {
            Some(sealed) => context
                .secrets()
                .open(
                    sealed,
                    secrets::Binding::new(command.saga_id, secrets::Field::AdminPassword),
                )
                .map_err(|e| StepError::permanent("sealed_secret", e.to_string()))?,
            // A Google sign-up has no password: a random one nobody knows, never kept,
            // so the throwaway from bench.log does not stay valid either.
            None => secrets::generate_password(24),
        };
        let users = self.users(site);
        let exists = users.exists(email).await?;
        if exists {
            context
                .output(
                    format!("User {email} already exists on {site} (an earlier attempt)"),
                    Some(40),
                )
                .await;
        } else {
            // bench.log and `ps` see this one; it stops working once the chosen
            // password is set below.
            let throwaway = secrets::generate_password(24);
            let (first, last) = contracts::signup::split_full_name(&command.tenant.admin_full_name);
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
            users.checked(add.secret("--password", &throwaway)).await?;
            context
                .output(
                    format!("System Manager {email} created on {site}"),
                    Some(40),
                )
                .await;
        }
        let (key, secret, kept) = self.keys(&users, email, !exists).await?;
        let said = if kept {
            format!("API keys of {email} kept (issued by an earlier attempt)")
        } else {
            format!("API keys issued for {email}")
        };
        context.output(said, Some(70)).await;
        let token = ApiToken {
            key: &key,
            secret: &secret,
        };
        self.passwords
            .set_password(site, email, token, &chosen)
            .await?;
        context
            .output(format!("Password of {email} set on {site}"), Some(100))
            .await;
        let sealed_secret = self.web_app.seal(
            secret.expose_secret(),
            secrets::Binding::new(command.saga_id, secrets::Field::ApiSecret),
        );
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
        let undone = if self
            .site_is_ours(site, &command.saga_id.to_string())
            .await?
        {
            self.remove(site, email).await?
        } else {
            Undone::NotOurSite
        };
        context.output(undone.describe(email, site), None).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
