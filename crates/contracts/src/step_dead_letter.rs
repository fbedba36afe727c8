//! `saga.dead_letter.<source>`: inputs a consumer gave up on.
//!
//! A step command that could not be read, or that kept failing to be handled or
//! reported until its consumer's `max_deliver`, is set aside here and terminated, so it
//! never loops. A dead letter holds no payload as it came: only its size, a hash and an
//! excerpt in which every value is masked, so that a secret in clear (a message
//! published by mistake) never sits in the dead-letter stream.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A payload described without being kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PayloadSummary {
    /// Its size in bytes.
    pub bytes: usize,
    /// SHA-256 of the payload, lowercase hex: tells two copies apart, or finds the
    /// original where it is still kept.
    pub sha256: String,
    /// The start of the payload with every value masked (`"***"`, `***`); field names
    /// and punctuation are kept, so its shape can be seen.
    pub excerpt: String,
}

/// What goes to `saga.dead_letter.<source>` (stream `TENANT_DEAD_LETTERS`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StepDeadLetter {
    /// Who gave up: a step's name, such as `database`.
    pub source: String,
    /// The subject the input arrived on.
    pub subject: String,
    /// Why it was set aside, free of secrets.
    pub reason: String,
    /// How many times it had been delivered.
    pub deliveries: u64,
    /// The command's id, when it could be read.
    #[serde(default)]
    pub command_id: Option<String>,
    /// Its saga, when it could be read.
    #[serde(default)]
    pub saga_id: Option<Uuid>,
    /// The input, described.
    pub payload: PayloadSummary,
    /// When it was set aside.
    pub at: DateTime<Utc>,
}

impl StepDeadLetter {
    /// The letter for a message on `subject` that `source` gives up on; the payload is
    /// kept only as its [`summary`](crate::dead_letter::summarize), `ids` are the
    /// command's id and saga when they could be read.
    pub fn new(
        source: &str,
        subject: &str,
        reason: String,
        deliveries: u64,
        ids: Option<(String, Uuid)>,
        payload: &[u8],
        at: DateTime<Utc>,
    ) -> Self {
        let (command_id, saga_id) = ids.map_or((None, None), |(c, s)| (Some(c), Some(s)));
        Self {
            source: source.to_string(),
            subject: subject.to_string(),
            reason,
            deliveries,
            command_id,
            saga_id,
            payload: crate::dead_letter::summarize(payload),
            at,
        }
    }

    /// The step whose command (or report) this was: read from the command id
    /// (`<saga>:<run>:<step>:<action>:<attempt>`) when it names one, else the
    /// source when a step gave up on it.
    pub fn step(&self) -> Option<&str> {
        let from_id = self
            .command_id
            .as_deref()
            .and_then(|id| id.split(':').nth(2))
            .filter(|s| !s.is_empty());
        from_id.or((self.source != "orchestrator").then_some(self.source.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_comes_from_the_command_id_else_from_a_step_source() {
        let saga = Uuid::new_v4();
        let id = crate::StepCommand::id_for(saga, 2, "site", crate::StepAction::Compensate, 3);
        let at = Utc::now();
        let letter = StepDeadLetter::new(
            "admin_user",
            "s",
            "r".into(),
            1,
            Some((id, saga)),
            b"{}",
            at,
        );
        assert_eq!(letter.step(), Some("site"));
        let unreadable = StepDeadLetter::new("database", "s", "r".into(), 1, None, b"x", at);
        assert_eq!(unreadable.step(), Some("database"));
        let report = StepDeadLetter::new("orchestrator", "s", "r".into(), 1, None, b"x", at);
        assert_eq!(report.step(), None);
    }
}
