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
}
