//! The Master site's settings, read through a key lookup (the environment in
//! production) so tests need no environment variables.

use crate::Master;

/// A required setting is missing.
#[derive(Debug, thiserror::Error)]
#[error("{0} is required")]
pub struct Missing(pub &'static str);

impl Master {
    /// Reads `MASTER_SITE_URL`, `MASTER_SITE_NAME`, `MASTER_API_KEY`,
    /// `MASTER_API_SECRET` (all required) and `MASTER_TENANT_DOCTYPE` (default
    /// `SaaS Tenant`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Missing> {
        let required = |name: &'static str| lookup(name).ok_or(Missing(name));
        Ok(Self {
            url: required("MASTER_SITE_URL")?,
            site_name: required("MASTER_SITE_NAME")?,
            api_key: required("MASTER_API_KEY")?,
            api_secret: required("MASTER_API_SECRET")?.into(),
            doctype: lookup("MASTER_TENANT_DOCTYPE").unwrap_or_else(|| "SaaS Tenant".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrets::ExposeSecret;

    use step_runtime::lookup_in as lookup;

    const SETTINGS: [(&str, &str); 4] = [
        (
            "MASTER_SITE_URL",
            "https://ops:Basic-Pw-5@master.example.com",
        ),
        ("MASTER_SITE_NAME", "master.example.com"),
        ("MASTER_API_KEY", "Key-Id-0f3a"),
        ("MASTER_API_SECRET", "Api-Secret-9c1d"),
    ];

    #[test]
    fn the_master_debug_shows_no_secret() {
        let master = Master::from_lookup(lookup(&SETTINGS)).expect("settings");
        assert_eq!(master.api_secret.expose_secret(), "Api-Secret-9c1d");
        assert_eq!(master.doctype, "SaaS Tenant");
        for shown in [format!("{master:?}"), format!("{master:#?}")] {
            for secret in ["Basic-Pw-5", "Key-Id-0f3a", "Api-Secret-9c1d"] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
            assert!(shown.contains("ops:***@master.example.com"), "{shown}");
        }
    }

    #[test]
    fn a_missing_setting_is_named() {
        for (name, _) in SETTINGS {
            let without: Vec<_> = SETTINGS.into_iter().filter(|(n, _)| *n != name).collect();
            let error = Master::from_lookup(lookup(&without)).expect_err("missing");
            assert_eq!(error.to_string(), format!("{name} is required"));
        }
    }
}
