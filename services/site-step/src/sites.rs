//! What the step reads and writes in the bench's `sites/` besides running bench: the
//! site folder and its marker, the claims under `sites/.provisioning/`, the archive.
//! Plain tools (`cat`, `test`, `mkdir`, `rm`, `rmdir`, `mv`) run through the same
//! [`Bench`] port as bench itself, so this works the same in a container.

use bench::{Bench, CommandLine};
use serde_json::json;
use step_runtime::StepError;

use crate::{SiteStep, CLAIMS};

/// The key of the marker in `site_config.json`: the saga that made the site.
pub(crate) const MARKER: &str = "provisioning_saga_id";

/// The key in `site_config.json` of Administrator's password, sealed with the saga's
/// key (Frappe keeps only a hash of it): what a run after completion reports again.
pub(crate) const KEPT_ADMIN_PASSWORD: &str = "provisioning_admin_password";

/// The string at `key` of a site's config.
pub(crate) fn text(config: Option<&serde_json::Value>, key: &str) -> Option<String> {
    config?.get(key)?.as_str().map(str::to_string)
}

/// Whether `site` can be a folder name in `sites/` made by this step: a host name
/// (letters, digits, `-`, `.`), so that no path built from it leaves `sites/`.
pub(crate) fn valid_site_name(site: &str) -> bool {
    !site.is_empty()
        && site.len() <= 253
        && !site.starts_with(['.', '-'])
        && !site.contains("..")
        && site
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

impl<B: Bench> SiteStep<B> {
    /// Whether `sites/<site_name>` exists on the bench (a folder or anything else of
    /// that name): whoever made it, a site there holds the name. An error when the
    /// bench cannot tell (unreachable, refused), and for a name that is no site name.
    pub async fn site_folder_exists(&self, site_name: &str) -> Result<bool, StepError> {
        if !valid_site_name(site_name) {
            return Err(StepError::permanent(
                "invalid_site_name",
                format!("{site_name:?} is not a site name (letters, digits, '-' and '.')"),
            ));
        }
        let finished = self
            .quiet(CommandLine::new("test").args(["-e", format!("sites/{site_name}").as_str()]))
            .await?;
        // `test`: 0 true, 1 false, anything else an error.
        match finished.exit_code {
            0 => Ok(true),
            1 => Ok(false),
            code => Err(StepError::transient(
                "bench_unavailable",
                format!(
                    "cannot tell whether sites/{site_name} exists (`test -e` exited {code}): {}",
                    finished.summary(2)
                ),
            )),
        }
    }

    /// `sites/<site>/site_config.json`, `None` when there is none; an unreadable one is
    /// `{}` (it carries no marker then).
    pub(crate) async fn site_config(
        &self,
        site: &str,
    ) -> Result<Option<serde_json::Value>, StepError> {
        let finished = self
            .quiet(
                CommandLine::new("cat").args([format!("sites/{site}/site_config.json").as_str()]),
            )
            .await?;
        if finished.exit_code != 0 {
            return Ok(None);
        }
        Ok(Some(
            serde_json::from_str(&finished.stdout()).unwrap_or_else(|_| json!({})),
        ))
    }

    fn claim_of(site: &str, saga: &str) -> String {
        format!("sites/{CLAIMS}/{site}/{saga}")
    }

    /// Whether `saga` recorded a claim on `site` (it was about to run `new-site`).
    pub(crate) async fn claimed(&self, site: &str, saga: &str) -> Result<bool, StepError> {
        Ok(self
            .quiet(CommandLine::new("test").args(["-d", Self::claim_of(site, saga).as_str()]))
            .await?
            .exit_code
            == 0)
    }

    /// Records `saga`'s claim on `site`, before `new-site`: until the marker is written,
    /// it is what tells this saga's residue from someone else's folder.
    pub(crate) async fn record_claim(&self, site: &str, saga: &str) -> Result<(), StepError> {
        let finished = self
            .quiet(CommandLine::new("mkdir").args(["-p", Self::claim_of(site, saga).as_str()]))
            .await?;
        if finished.exit_code == 0 {
            Ok(())
        } else {
            Err(StepError::transient(
                "bench_unavailable",
                format!("cannot record the claim on {site}: {}", finished.summary(2)),
            ))
        }
    }

    /// Removes `saga`'s claim on `site`, then the site's claim folder if no other claim
    /// is in it (`rmdir` removes only an empty folder, so another saga's claim stays).
    /// Idempotent: nothing to remove is success.
    pub(crate) async fn drop_claim(&self, site: &str, saga: &str) -> Result<(), StepError> {
        let claim = Self::claim_of(site, saga);
        let finished = self
            .quiet(CommandLine::new("rm").args(["-rf", claim.as_str()]))
            .await?;
        if finished.exit_code != 0 {
            return Err(StepError::transient(
                "claim_cleanup_failed",
                format!("cannot remove {claim}: {}", finished.summary(2)),
            ));
        }
        // Fails when the folder holds another claim or is already gone: both fine.
        self.quiet(CommandLine::new("rmdir").args([format!("sites/{CLAIMS}/{site}").as_str()]))
            .await?;
        Ok(())
    }

    /// Moves `sites/<site>` to `sites/archived/<site>-<time>-<tag>` (what drop-site
    /// does with it); returns where it went. The tag (the saga and its run) keeps two
    /// archives of one site within a second apart: `mv` onto an existing folder would
    /// nest the site inside it.
    pub(crate) async fn archive(&self, site: &str, tag: &str) -> Result<String, StepError> {
        let archived = format!(
            "sites/archived/{site}-{}-{tag}",
            chrono::Utc::now().format("%Y%m%d%H%M%S")
        );
        for step in [
            CommandLine::new("mkdir").args(["-p", "sites/archived"]),
            CommandLine::new("mv").args([format!("sites/{site}").as_str(), archived.as_str()]),
        ] {
            let shown = step.to_string();
            let finished = self.quiet(step).await?;
            if finished.exit_code != 0 {
                return Err(StepError::transient(
                    "archive_failed",
                    format!("`{shown}` failed: {}", finished.summary(2)),
                ));
            }
        }
        Ok(archived)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_host_names_are_site_names() {
        for good in ["acme.example.com", "a-1.localhost", "x"] {
            assert!(valid_site_name(good), "{good}");
        }
        for bad in [
            "",
            ".provisioning",
            "..",
            "a/../../etc",
            "a/b",
            "-rf",
            "a..b",
            "a b",
            "archived/x",
        ] {
            assert!(!valid_site_name(bad), "{bad}");
        }
    }
}
