//! Taking over a standby site: a complete site built ahead of time under a placeholder
//! name by its own saga, renamed to the signup's site name (what Frappe Press does to
//! serve signups in seconds; a renamed site keeps working, its database keeps the
//! standby's name).
//!
//! Under the per-site locks of both names: the tenant's folder must be absent (or
//! already this claim's: the standby's marker after an interrupted claim, this saga's
//! after a finished one); the placeholder must pass the readiness check (folder there,
//! the standby's marker, built with the same apps and bench version, its kept
//! Administrator password readable); then one `mv -n -T` (a single `rename(2)`: after
//! a SIGKILL exactly one of the two names exists) checked afterwards, since `mv -n -T`
//! exits 0 and moves nothing when the target exists. Then Administrator's password is
//! sealed again for this saga, the marker moved to this saga (in that order, as on the
//! usual path) and `host_name` set.

use bench::{Bench, CommandLine};
use contracts::{StandbyRef, StepCommand, STANDBY_UNUSABLE};
use secrets::{ExposeSecret, SecretString};
use serde_json::json;
use step_runtime::{StepContext, StepError};

use crate::{owner_of, sites, SiteStep};

/// The key in a standby's `site_config.json` of what it was built with (apps and bench
/// version): a standby built otherwise than a new site would be now is not handed out.
pub(crate) const BUILT_WITH: &str = "provisioning_built_with";

fn unusable(message: String) -> StepError {
    StepError::permanent(STANDBY_UNUSABLE, message)
}

/// Administrator's password kept in a standby's config, opened with the standby's
/// binding.
fn kept_administrator_password(
    config: Option<&serde_json::Value>,
    standby: &StandbyRef,
    context: &StepContext,
) -> Result<SecretString, StepError> {
    let kept = sites::text(config, sites::KEPT_ADMIN_PASSWORD)
        .ok_or_else(|| unusable("the standby site keeps no Administrator password".to_string()))?;
    context
        .secrets()
        .open(
            &contracts::Sealed(kept),
            secrets::Binding::new(standby.saga_id, secrets::Field::AdministratorPassword),
        )
        .map_err(|_| {
            unusable(
                "the standby's Administrator password cannot be opened with these SAGA_SECRETS_KEYS"
                    .to_string(),
            )
        })
}

impl<B: Bench> SiteStep<B> {
    /// What a site built now is built with: `FRAPPE_APPS` and `bench version`'s output.
    pub(crate) async fn built_with(&self) -> Result<String, StepError> {
        let finished = self.quiet(CommandLine::bench(["version"])).await?;
        if finished.exit_code != 0 {
            return Err(StepError::transient(
                "bench_unavailable",
                format!("`bench version` failed: {}", finished.summary(2)),
            ));
        }
        let version = finished
            .stdout()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(", ");
        Ok(format!(
            "apps: {}; bench: {version}",
            self.settings.apps.join(", ")
        ))
    }

    /// The effect of a signup that claimed `standby` (see the module documentation).
    pub(crate) async fn claim(
        &self,
        command: &StepCommand,
        standby: &StandbyRef,
        context: &StepContext,
    ) -> Result<serde_json::Value, StepError> {
        let target = command.tenant.site_name.clone();
        let placeholder = standby.site_name.clone();
        if !sites::valid_site_name(&placeholder) || placeholder == target {
            return Err(unusable(format!(
                "{placeholder:?} is not a standby site name"
            )));
        }
        let saga = command.saga_id.to_string();
        let standby_saga = standby.saga_id.to_string();
        // Both names locked, always in the same order, so two claims never deadlock.
        let (first, second) = if placeholder < target {
            (&placeholder, &target)
        } else {
            (&target, &placeholder)
        };
        let (first, second) = (self.lock_for(first), self.lock_for(second));
        let _first = first.lock().await;
        let _second = second.lock().await;
        let owner = owner_of(&saga);
        self.stop_leftovers(&owner, context).await?;

        let config = self.site_config(&target).await?;
        let marker = sites::text(config.as_ref(), sites::MARKER);
        let renamed = matches!(marker.as_deref(), Some(m) if m == saga || m == standby_saga);
        if !renamed {
            if self.site_folder_exists(&target).await? {
                return Err(StepError::permanent(
                    "site_conflict",
                    format!("a site folder {target} already exists and is not this signup's; it was left untouched"),
                ));
            }
            self.check_ready(&placeholder, standby, context).await?;
            context
                .output(
                    format!("Using a prepared workspace: renaming {placeholder} to {target}"),
                    Some(20),
                )
                .await;
            self.rename(&placeholder, &target).await?;
        } else {
            context
                .output(
                    format!("Site {target} was renamed from the prepared workspace: finishing what is missing"),
                    Some(20),
                )
                .await;
        }

        let config = self.site_config(&target).await?;
        let administrator_password = if sites::text(config.as_ref(), sites::MARKER).as_deref()
            == Some(saga.as_str())
        {
            sites::text(config.as_ref(), sites::KEPT_ADMIN_PASSWORD)
        } else {
            // Sealed again for this saga first, then the marker: a site with this
            // saga's marker always has a password this saga's binding opens.
            let password = kept_administrator_password(config.as_ref(), standby, context)?;
            let sealed = context
                .secrets()
                .seal(
                    password.expose_secret(),
                    secrets::Binding::new(command.saga_id, secrets::Field::AdministratorPassword),
                )
                .0;
            for set_config in [
                CommandLine::bench(["--site", &target, "set-config"]).secret(
                    sites::KEPT_ADMIN_PASSWORD,
                    &SecretString::from(sealed.clone()),
                ),
                CommandLine::bench(["--site", &target, "set-config", sites::MARKER, &saga]),
            ] {
                self.expect_ok(context, set_config.owned_by(&owner), (40, 60))
                    .await?;
            }
            Some(sealed)
        };
        self.expect_ok(
            context,
            CommandLine::bench([
                "--site",
                &target,
                "set-config",
                "host_name",
                &format!("https://{target}"),
            ])
            .owned_by(&owner),
            (60, 100),
        )
        .await?;
        Ok(json!({
            "site_name": target,
            "apps": self.settings.apps,
            "administrator_password": administrator_password,
            "standby": standby.saga_id,
        }))
    }

    /// Whether the placeholder can be handed out: there, the standby's, built as a new
    /// site would be now, its password readable.
    async fn check_ready(
        &self,
        placeholder: &str,
        standby: &StandbyRef,
        context: &StepContext,
    ) -> Result<(), StepError> {
        let Some(config) = self.site_config(placeholder).await? else {
            return Err(unusable(format!(
                "the standby site {placeholder} is missing"
            )));
        };
        let marker = sites::text(Some(&config), sites::MARKER);
        if marker.as_deref() != Some(standby.saga_id.to_string().as_str()) {
            return Err(unusable(format!(
                "the standby site {placeholder} is not the standby's (marker {marker:?})"
            )));
        }
        let built = sites::text(Some(&config), BUILT_WITH);
        let now = self.built_with().await?;
        if built.as_deref() != Some(now.as_str()) {
            return Err(unusable(format!(
                "the standby site {placeholder} was built with {}, a new site now gets {now}",
                built.as_deref().unwrap_or("unknown apps")
            )));
        }
        kept_administrator_password(Some(&config), standby, context).map(drop)
    }

    /// `mv -n -T sites/<from> sites/<to>`, then checked: `-n -T` never replaces or
    /// nests, but exits 0 having moved nothing when `<to>` exists.
    async fn rename(&self, from: &str, to: &str) -> Result<(), StepError> {
        let moved = self
            .quiet(CommandLine::new("mv").args([
                "-n",
                "-T",
                format!("sites/{from}").as_str(),
                format!("sites/{to}").as_str(),
            ]))
            .await?;
        let from_left = self.site_folder_exists(from).await?;
        let to_there = self.site_folder_exists(to).await?;
        match (from_left, to_there) {
            (false, true) => Ok(()),
            (true, true) => Err(StepError::permanent(
                "site_conflict",
                format!("a site folder {to} appeared before the rename; neither was touched"),
            )),
            (true, false) => Err(StepError::transient(
                "rename_failed",
                format!(
                    "could not rename sites/{from} to sites/{to} (mv exited {}): {}",
                    moved.exit_code,
                    moved.summary(2)
                ),
            )),
            (false, false) => Err(unusable(format!(
                "the standby site {from} vanished during the rename"
            ))),
        }
    }
}
