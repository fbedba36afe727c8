//! db-step's own settings, read through a key lookup (the environment in production)
//! so tests need no environment variables.

use step_runtime::redact::SecretUrl;

/// What db-step needs beyond the runtime's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `TENANT_DB_ADMIN_URL`: the MariaDB account that creates databases and users;
    /// its password shows as `***` when printed.
    pub admin_url: SecretUrl,
    /// `TENANT_DB_LEDGER`: the database holding the ledger.
    pub ledger: String,
}

impl Settings {
    /// Reads `TENANT_DB_ADMIN_URL` (default `mysql://root@127.0.0.1:3306`) and
    /// `TENANT_DB_LEDGER` (default `saga_provisioning`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            admin_url: SecretUrl::new(
                lookup("TENANT_DB_ADMIN_URL")
                    .unwrap_or_else(|| "mysql://root@127.0.0.1:3306".into()),
            ),
            ledger: lookup("TENANT_DB_LEDGER").unwrap_or_else(|| "saga_provisioning".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let settings = Settings::from_lookup(|_| None);
        assert_eq!(settings.admin_url.expose(), "mysql://root@127.0.0.1:3306");
        assert_eq!(settings.ledger, "saga_provisioning");
    }

    #[test]
    fn the_settings_debug_shows_no_password() {
        let url = "mysql://provisioner:Adm1n-Pw-42@db.internal:3306";
        let settings = Settings::from_lookup(|k| (k == "TENANT_DB_ADMIN_URL").then(|| url.into()));
        assert_eq!(settings.admin_url.expose(), url, "MariaDB still gets it");
        for shown in [format!("{settings:?}"), format!("{settings:#?}")] {
            assert!(!shown.contains("Adm1n-Pw-42"), "{shown}");
            assert!(
                shown.contains("provisioner:***@db.internal:3306"),
                "{shown}"
            );
        }
    }
}
