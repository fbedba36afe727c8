//! The site step: the tenant's Frappe site, made with bench as a Frappe v15 bench
//! behaves (options, exit codes, residue), through the [`bench::Bench`] port (so the same
//! code runs bench locally or in the frappe_docker backend container).
//!
//! Effect, in order: record a claim (`sites/.provisioning/<site>/<saga_id>`), then
//! `bench new-site <site> --no-setup-db --db-name <db> --db-password <pw>
//! --admin-password <generated>`, `set-config provisioning_admin_password <sealed>`
//! (Administrator's password sealed with the saga's key, so a run after completion
//! reports the same result), the marker `set-config provisioning_saga_id <saga>`,
//! `install-app` per app of `FRAPPE_APPS`, `enable-scheduler`, and
//! `set-config host_name https://<site>`. Only options Frappe v15 has; never `--force`.
//!
//! Ownership: a site folder carrying this saga's marker is this saga's, and a retry
//! finishes what is missing (each later call is idempotent). A folder without the
//! marker is someone else's: the step fails for good and never touches it, unless this
//! saga's claim shows that it made the folder itself and stopped before the marker
//! (then the step fails and the undo archives that residue). The claim is only for
//! that gap: once the step completed, the marker proves ownership and the claim (with
//! the site's claim folder, when empty) is removed, so no bookkeeping stays in
//! `sites/`.
//!
//! Undo: move the folder to `sites/archived/<site>-<time>` (what drop-site does with
//! it), only when it is this saga's, then remove the claim. The database and its user
//! are the database step's.
//!
//! One bench per site at a time, across restarts: bench commands carry the owner tag
//! `<saga_id>/site`, and every attempt and every undo first kills what a predecessor
//! that died mid-command (SIGKILL, OOM, a lost node) left running under that tag, so
//! no orphan keeps writing into a folder being finished or archived.

mod claim;
pub mod queue;
mod sites;

use std::sync::Arc;
use std::time::Duration;

use bench::{Bench, CommandLine, Finished, Line};
use contracts::StepCommand;
use secrets::{ExposeSecret, SecretString};
use serde_json::json;
use step_runtime::{Step, StepContext, StepError};
use tokio::sync::mpsc;

/// Folder (under `sites/`) of the claims that record which saga made which site.
pub const CLAIMS: &str = ".provisioning";

/// The site step's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Apps installed on each new site (`FRAPPE_APPS`).
    pub apps: Vec<String>,
    /// `new-site` runs at once (`SITE_CONCURRENCY`).
    pub concurrency: usize,
    /// Longest any single bench call may take.
    pub command_timeout: Duration,
}

/// The `site` step over any [`Bench`].
pub struct SiteStep<B> {
    bench: B,
    settings: Settings,
    queue: queue::Queue,
    /// The same site twice at once fails with misleading errors: one at a time.
    site_locks: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// What a bench call showed.
struct Outcome {
    finished: Finished,
}

/// The place of a waiting signup, as its progress shows it.
fn queued_message(in_line: usize, limit: usize) -> String {
    format!("Queued: place {in_line} in line (at most {limit} sites are created at once)")
}

impl<B: Bench> SiteStep<B> {
    /// A site step running bench through `bench`.
    pub fn new(bench: B, settings: Settings) -> Self {
        Self {
            queue: queue::Queue::new(settings.concurrency),
            bench,
            settings,
            site_locks: Default::default(),
        }
    }

    fn lock_for(&self, site: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.site_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(site.to_string())
            .or_default()
            .clone()
    }

    /// Runs a command, forwarding its lines as progress with `percent` (within the step).
    async fn run(
        &self,
        context: &StepContext,
        command: CommandLine,
        percent: (u8, u8),
    ) -> Result<Outcome, StepError> {
        tracing::info!(command = %command, "bench");
        let (tx, mut rx) = mpsc::unbounded_channel::<Line>();
        let forward = async {
            while let Some(line) = rx.recv().await {
                let within = progress_percent(&line.text)
                    .map(|p| percent.0 + ((percent.1 - percent.0) as u32 * p as u32 / 100) as u8);
                context.output(line.text, within.or(Some(percent.0))).await;
            }
        };
        let (result, ()) = tokio::join!(
            self.bench.run(&command, self.settings.command_timeout, tx),
            forward
        );
        match result {
            Ok(finished) => Ok(Outcome { finished }),
            Err(e) => Err(bench_error(&e)),
        }
    }

    /// Runs a plain file command quietly (no progress lines).
    pub(crate) async fn quiet(&self, command: CommandLine) -> Result<Finished, StepError> {
        let (tx, _rx) = mpsc::unbounded_channel();
        self.bench
            .run(&command, self.settings.command_timeout, tx)
            .await
            .map_err(|e| bench_error(&e))
    }

    /// Kills the bench processes an earlier attempt of this saga left running when its
    /// service died under them (see the module documentation).
    async fn stop_leftovers(&self, owner: &str, context: &StepContext) -> Result<(), StepError> {
        let killed = self
            .bench
            .stop_owned(owner)
            .await
            .map_err(|e| bench_error(&e))?;
        if killed > 0 {
            tracing::warn!(
                owner,
                killed,
                "stopped bench processes an earlier attempt left running"
            );
            context
                .output(
                    format!("Stopped {killed} bench process(es) an earlier attempt of this signup left running"),
                    None,
                )
                .await;
        }
        Ok(())
    }

    async fn expect_ok(
        &self,
        context: &StepContext,
        command: CommandLine,
        percent: (u8, u8),
    ) -> Result<(), StepError> {
        let shown = command.to_string();
        let outcome = self.run(context, command, percent).await?;
        classify(&shown, &outcome.finished)
    }
}

/// The owner tag of a saga's bench commands in this step.
fn owner_of(saga: &str) -> String {
    format!("{saga}/site")
}

/// Percent from a bench progress line such as `Updating DocTypes for erpnext : [===] 42%`.
fn progress_percent(line: &str) -> Option<u8> {
    let digits = line
        .trim_end()
        .strip_suffix('%')?
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()?;
    digits.parse::<u8>().ok().filter(|p| *p <= 100)
}

/// Turns a finished bench call into the step's policy.
fn classify(command: &str, finished: &Finished) -> Result<(), StepError> {
    finished
        .verdict(command)
        .map_err(|f| StepError::new(f.permanent, f.code, f.message))
}

/// A command that did not run to an exit code: the driver knows whether retrying helps.
fn bench_error(error: &bench::Error) -> StepError {
    StepError::new(error.is_permanent(), error.code(), error.to_string())
}

fn database_credentials(
    command: &StepCommand,
    context: &StepContext,
) -> Result<(String, SecretString), StepError> {
    let database = command.outputs.get("database").ok_or_else(|| {
        StepError::permanent("missing_input", "the database step's output is missing")
    })?;
    let name = database
        .get("db_name")
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            StepError::permanent(
                "missing_input",
                "db_name missing from the database step's output",
            )
        })?;
    let sealed = database
        .get("db_password")
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            StepError::permanent(
                "missing_input",
                "db_password missing from the database step's output",
            )
        })?;
    let password = context
        .secrets()
        .open(
            &contracts::Sealed(sealed.to_string()),
            secrets::Binding::new(command.saga_id, secrets::Field::DbPassword),
        )
        .map_err(|e| StepError::permanent("sealed_secret", e.to_string()))?;
    Ok((name.to_string(), password))
}

impl<B: Bench> Step for SiteStep<B> {
    async fn drain(&self) {
        self.bench.settle().await;
    }

    async fn readiness(&self) -> Vec<step_runtime::health::Check> {
        vec![step_runtime::health::Check::within("bench", self.bench.check()).await]
    }

    /// Any folder of the site's name holds the subdomain: a site made by hand, by
    /// another tool, or left from before; a signup for it is refused before anything
    /// is created.
    async fn holds(&self, probe: &contracts::SubdomainProbe) -> Result<Option<String>, StepError> {
        Ok(self
            .site_folder_exists(&probe.site_name)
            .await?
            .then(|| "an existing site folder".to_string()))
    }

    fn name(&self) -> &str {
        "site"
    }

    async fn execute(
        &self,
        command: &StepCommand,
        context: &StepContext,
    ) -> Result<serde_json::Value, StepError> {
        let site = command.tenant.site_name.clone();
        let saga = command.saga_id.to_string();
        if !sites::valid_site_name(&site) {
            return Err(StepError::permanent(
                "invalid_site_name",
                format!("{site:?} is not a site name; nothing was created"),
            ));
        }
        if let Some(standby) = &command.tenant.standby {
            return self.claim(command, standby, context).await;
        }
        let lock = self.lock_for(&site);
        let _one_at_a_time = lock.lock().await;
        let owner = owner_of(&saga);
        self.stop_leftovers(&owner, context).await?;

        let config = self.site_config(&site).await?;
        let marker_ok = match sites::text(config.as_ref(), sites::MARKER) {
            Some(marker) if marker == saga => true,
            _ if self.site_folder_exists(&site).await? => {
                if self.claimed(&site, &saga).await? {
                    return Err(StepError::permanent(
                        "site_incomplete",
                        format!("an earlier attempt of this signup stopped while creating {site}; the rollback archives what it left"),
                    ));
                }
                return Err(StepError::permanent("site_conflict", format!("a site folder {site} already exists and is not this signup's; it was left untouched")));
            }
            _ => false,
        };

        let mut administrator_password = if marker_ok {
            // Frappe keeps only a hash: the first run's sealed copy is the result.
            sites::text(config.as_ref(), sites::KEPT_ADMIN_PASSWORD)
        } else {
            None
        };
        if !marker_ok {
            let admin_password = secrets::generate_password(24);
            let (db_name, db_password) = database_credentials(command, context)?;
            let limit = self.settings.concurrency;
            let place = if command.tenant.standby_build {
                context
                    .output(
                        "Waiting until no signup needs the place".to_string(),
                        Some(0),
                    )
                    .await;
                self.queue.enter_when_idle().await
            } else {
                self.queue
                    .enter(|in_line| {
                        tracing::info!(in_line, limit, "waiting for a place to run new-site");
                        let context = context.clone();
                        tokio::spawn(async move {
                            context
                                .output(queued_message(in_line, limit), Some(0))
                                .await;
                        });
                    })
                    .await
            };
            self.record_claim(&site, &saga).await?;
            let new_site =
                CommandLine::bench(["new-site", &site, "--no-setup-db", "--db-name", &db_name])
                    .secret("--db-password", &db_password)
                    .secret("--admin-password", &admin_password)
                    .owned_by(&owner);
            let shown = new_site.to_string();
            let outcome = self.run(context, new_site, (0, 40)).await?;
            drop(place);
            if outcome.finished.exit_code != 0 {
                // new-site leaves residue on failure; retrying on it cannot work, so the
                // saga rolls back (the undo archives it) unless bench itself was missing.
                return Err(match classify(&shown, &outcome.finished) {
                    Err(StepError::Transient { code, message }) => {
                        StepError::permanent(&code, message)
                    }
                    Err(e) => e,
                    Ok(()) => StepError::permanent("bench_error", "new-site failed".to_string()),
                });
            }
            // The sealed password first, then the marker: a site with the marker always
            // has it, so a run after completion reports the same result. Sealed, it is
            // no secret, but logs and progress show it as `***` all the same.
            let sealed = context
                .secrets()
                .seal(
                    admin_password.expose_secret(),
                    secrets::Binding::new(command.saga_id, secrets::Field::AdministratorPassword),
                )
                .0;
            for set_config in [
                CommandLine::bench(["--site", &site, "set-config"]).secret(
                    sites::KEPT_ADMIN_PASSWORD,
                    &SecretString::from(sealed.clone()),
                ),
                CommandLine::bench(["--site", &site, "set-config", sites::MARKER, &saga]),
            ] {
                self.expect_ok(context, set_config.owned_by(&owner), (40, 41))
                    .await?;
            }
            administrator_password = Some(sealed);
        } else {
            context
                .output(
                    format!("Site {site} is this signup's: finishing what is missing"),
                    Some(40),
                )
                .await;
        }

        let apps = self.settings.apps.clone();
        let span = 50 / apps.len().max(1) as u8;
        for (i, app) in apps.iter().enumerate() {
            let start = 41 + span * i as u8;
            context
                .output(format!("Installing {app} on {site}"), Some(start))
                .await;
            self.expect_ok(
                context,
                CommandLine::bench(["--site", &site, "install-app", app]).owned_by(&owner),
                (start, start + span),
            )
            .await?;
        }
        self.expect_ok(
            context,
            CommandLine::bench(["--site", &site, "enable-scheduler"]).owned_by(&owner),
            (92, 95),
        )
        .await?;
        self.expect_ok(
            context,
            CommandLine::bench([
                "--site",
                &site,
                "set-config",
                "host_name",
                &format!("https://{site}"),
            ])
            .owned_by(&owner),
            (95, 100),
        )
        .await?;
        if command.tenant.standby_build {
            // Last: only a standby built to the end records it, and the claim's
            // readiness check wants it equal to what a new site would get now.
            let built_with = self.built_with().await?;
            self.expect_ok(
                context,
                CommandLine::bench([
                    "--site",
                    &site,
                    "set-config",
                    claim::BUILT_WITH,
                    &built_with,
                ])
                .owned_by(&owner),
                (99, 100),
            )
            .await?;
        }
        // Done: from here the marker alone proves the site is this saga's. A leftover
        // claim is harmless (only read when there is no marker), so failing to remove
        // it must not roll back a finished site; a retry removes it.
        if let Err(e) = self.drop_claim(&site, &saga).await {
            tracing::warn!(error = %e, "could not remove the claim of a finished site");
        }

        Ok(json!({
            "site_name": site,
            "apps": apps,
            // Administrator's password (sealed), for operators; the tenant uses its own
            // account. Null only for a site made before the step kept a copy.
            "administrator_password": administrator_password,
        }))
    }

    async fn compensate(
        &self,
        command: &StepCommand,
        context: &StepContext,
    ) -> Result<(), StepError> {
        let site = command.tenant.site_name.clone();
        let saga = command.saga_id.to_string();
        if !sites::valid_site_name(&site) {
            // The effect refuses such a name before doing anything: nothing to undo.
            return Ok(());
        }
        let lock = self.lock_for(&site);
        let _one_at_a_time = lock.lock().await;
        self.stop_leftovers(&owner_of(&saga), context).await?;

        let config = self.site_config(&site).await?;
        let marked = sites::text(config.as_ref(), sites::MARKER);
        // A claim interrupted after the rename leaves the standby's marker on the
        // tenant's folder: this signup's all the same.
        let standby_saga = command
            .tenant
            .standby
            .as_ref()
            .map(|s| s.saga_id.to_string());
        let ours = marked.as_deref() == Some(saga.as_str())
            || (marked.is_some() && marked == standby_saga)
            || (marked.is_none() && self.claimed(&site, &saga).await?);
        let exists = self.site_folder_exists(&site).await?;
        if ours && exists {
            let tag = format!("{}-r{}", &saga[..8.min(saga.len())], command.run);
            let archived = self.archive(&site, &tag).await?;
            context
                .output(format!("Moved {site} to {archived}"), None)
                .await;
        } else if exists {
            context
                .output(
                    format!("Site {site} is not this signup's: left untouched"),
                    None,
                )
                .await;
        }
        // The claim goes last: until then a retry still knows the residue is ours.
        self.drop_claim(&site, &saga).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_progress_percentages() {
        assert_eq!(
            progress_percent("Updating DocTypes for erpnext : [====    ] 42%"),
            Some(42)
        );
        assert_eq!(progress_percent("Installing erpnext..."), None);
        assert_eq!(progress_percent("100%"), Some(100));
    }
}
