//! `saga.probe.<step>`: does a step service see a subdomain as held?
//!
//! The orchestrator cannot see the bench or the Master site, so before it accepts a
//! subdomain it asks the step services that can (core NATS request/reply, queue group
//! `probe-<step>`: any instance answers). A step that knows nothing about subdomains
//! answers `held: false`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Request on `saga.probe.<step>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SubdomainProbe {
    /// The subdomain asked about.
    pub subdomain: String,
    /// Its site name, `<subdomain>.<PARENT_DOMAIN>`.
    pub site_name: String,
}

impl SubdomainProbe {
    /// Refuses names a step could not safely put in a path or URL: the subdomain must
    /// be `[a-z0-9-]` (1-63 characters) and the site name that subdomain followed by
    /// `.` and a domain of `[a-z0-9.-]`, without empty labels. (Reserved or short
    /// subdomains pass: whether they are allowed is the orchestrator's rule.)
    pub fn check(&self) -> Result<(), String> {
        let label_ok = |label: &str| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if !label_ok(&self.subdomain) {
            return Err(format!("{:?} is not a subdomain", self.subdomain));
        }
        let site_ok = self
            .site_name
            .strip_prefix(&self.subdomain)
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|domain| domain.split('.').all(label_ok))
            && self.site_name.len() <= 253;
        if !site_ok {
            return Err(format!(
                "{:?} is not a site name of subdomain {:?}",
                self.site_name, self.subdomain
            ));
        }
        Ok(())
    }
}

/// Reply on `saga.probe.<step>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ProbeReply {
    /// Whether something this step sees holds the subdomain.
    pub held: bool,
    /// What holds it, a short phrase for people ("a registered tenant", "an existing
    /// site folder"); absent when free.
    #[serde(default)]
    pub reason: Option<String>,
    /// Set when the step could not tell (Master unreachable, bench down); `held` is
    /// then false and means nothing.
    #[serde(default)]
    pub error: Option<String>,
}

impl ProbeReply {
    /// Held by `reason`, or free when `None`.
    pub fn answer(reason: Option<String>) -> Self {
        Self {
            held: reason.is_some(),
            reason,
            error: None,
        }
    }

    /// The step could not tell.
    pub fn failed(error: impl Into<String>) -> Self {
        Self {
            held: false,
            reason: None,
            error: Some(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_read_the_way_they_are_written() {
        let held = ProbeReply::answer(Some("a registered tenant".into()));
        assert!(held.held);
        let text = serde_json::to_string(&held).expect("json");
        assert_eq!(
            text,
            r#"{"held":true,"reason":"a registered tenant","error":null}"#
        );
        let free: ProbeReply = serde_json::from_str(r#"{"held":false}"#).expect("minimal reply");
        assert_eq!(free, ProbeReply::answer(None));
        assert!(ProbeReply::failed("master down").error.is_some());
    }

    #[test]
    fn only_names_safe_in_paths_pass() {
        let probe = |subdomain: &str, site_name: &str| SubdomainProbe {
            subdomain: subdomain.into(),
            site_name: site_name.into(),
        };
        assert_eq!(probe("test-org", "test-org.example.com").check(), Ok(()));
        assert_eq!(probe("ab", "ab.localhost").check(), Ok(()));
        for (subdomain, site_name) in [
            ("../x", "../x.example.com"),
            ("a/b", "a/b.example.com"),
            ("Test", "Test.example.com"),
            ("", ".example.com"),
            ("test-org", "other.example.com"),
            ("test-org", "test-org..com"),
            ("test-org", "test-org"),
            ("test-org", "test-org.example.com/../../etc"),
        ] {
            assert!(
                probe(subdomain, site_name).check().is_err(),
                "{subdomain} {site_name}"
            );
        }
    }
}
