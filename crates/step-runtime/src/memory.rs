//! Finished commands, remembered: the final report of each command by step and command
//! id, in a JetStream key-value bucket (`SAGA_FINISHED_COMMANDS`, namespaced like the
//! streams, declared by the orchestrator, entries expiring after
//! `STEP_REPORT_TTL_HOURS`).
//!
//! A command delivered again after it finished (its ack lost, its report's publish
//! failed, the orchestrator re-sending it after a restart) is answered with the stored
//! report instead of being run again: a step's second run could otherwise make a
//! second, different result (a new password) while the saga keeps the first. Reports
//! carry secrets only sealed (the steps seal them), so the bucket holds none in clear.
//! The bucket is an optimisation over the steps' own idempotence: when it cannot be
//! read or written, the command runs (again) as before.

use anyhow::Context as _;
use async_nats::jetstream::{self, kv};
use contracts::StepReport;

/// The bucket of finished commands.
#[derive(Clone)]
pub(crate) struct FinishedCommands {
    store: kv::Store,
    js: jetstream::Context,
    step: String,
}

impl FinishedCommands {
    /// Opens the bucket, which the orchestrator declares (`bus::ensure_streams`): a
    /// step service may read and write it, not declare or reconfigure it. `step`'s
    /// keys are its own (`<step>.<command id>`), so the bus's permissions can give
    /// each step service its own keys and no other's.
    pub(crate) async fn open(
        js: &jetstream::Context,
        bucket: &str,
        step: &str,
    ) -> anyhow::Result<Self> {
        let store = js
            .get_key_value(bucket)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("opening the key-value bucket {bucket}"))?;
        Ok(Self {
            store,
            js: js.clone(),
            step: step.to_string(),
        })
    }

    /// The stored report of `command_id`, if it finished before.
    pub(crate) async fn recall(&self, command_id: &str) -> anyhow::Result<Option<StepReport>> {
        let Some(bytes) = self
            .store
            .get(key(&self.step, command_id))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("reading the finished-commands bucket")?
        else {
            return Ok(None);
        };
        let report = serde_json::from_slice(&bytes).context("decoding a remembered report")?;
        Ok(Some(report))
    }

    /// Sends `report` as the final one of `command_id`; the returned future resolves
    /// once the bucket has it. Sent, not awaited, so that the report can follow at
    /// once on the same connection: the server takes them in that order, and the
    /// command is acked only once both are confirmed.
    pub(crate) async fn remember(
        &self,
        command_id: &str,
        report: &StepReport,
    ) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>>> {
        let bytes = serde_json::to_vec(report).context("encoding the report")?;
        // The subject `kv::Store::put` writes to (this bucket has no JetStream prefix).
        let subject = format!(
            "{}{}",
            self.store.put_prefix.as_ref().unwrap_or(&self.store.prefix),
            key(&self.step, command_id)
        );
        let ack = self
            .js
            .publish(subject, bytes.into())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("writing the finished-commands bucket")?;
        Ok(async move {
            ack.await
                .map_err(|e| anyhow::anyhow!("{e}"))
                .context("confirming the finished-commands bucket's write")?;
            Ok(())
        })
    }
}

/// Whether a report is kept in memory: every report that ends the command's handling,
/// a retryable failure too. The orchestrator never runs one attempt twice (a retry is a
/// new attempt with a command id of its own), so an attempt delivered again after its
/// report went out is a late copy: run again, it could redo an effect the saga has
/// already undone since (a failed attempt's `new-site` run again after the rollback).
pub(crate) fn is_final(report: &StepReport) -> bool {
    !matches!(report, StepReport::Output { .. })
}

/// The bucket key of a command id of `step`: `<step>.<id>`, the step first so that one
/// permission (`$KV.<bucket>.<step>.>`) covers a step's keys and no other's. Keys allow
/// `[-/_=.a-zA-Z0-9]` only, and a command id holds `:`: every byte of the id outside
/// `[-_a-zA-Z0-9]` is written `=XX` (hex), so distinct ids stay distinct and no key has
/// an empty `.` token. (Keys of releases before the step prefix are no longer found:
/// such a command runs again, which steps are made for.)
pub(crate) fn key(step: &str, command_id: &str) -> String {
    let mut out = String::with_capacity(step.len() + command_id.len() + 9);
    out.push_str(step);
    out.push('.');
    for byte in command_id.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("={byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_and_distinct() {
        let id = "0192f1b4-0000-7000-8000-000000000001:1:database:execute:2";
        let k = key("database", id);
        assert_eq!(
            k,
            "database.0192f1b4-0000-7000-8000-000000000001=3A1=3Adatabase=3Aexecute=3A2"
        );
        assert!(k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-/_=.".contains(c)));
        // `=` itself is escaped, so an id that looks like an escape stays distinct.
        assert_ne!(key("s", "a:b"), key("s", "a=3Ab"));
        assert_ne!(key("s", "a.b"), key("s", "a:b"));
        assert!(key("admin_user", "x").starts_with("admin_user."));
    }

    #[test]
    fn every_ending_report_is_remembered_a_retryable_failure_too() {
        let failed = |retryable| StepReport::Failed {
            code: "x".into(),
            message: "y".into(),
            retryable,
        };
        assert!(is_final(&StepReport::Completed {
            output: serde_json::Value::Null
        }));
        assert!(is_final(&failed(false)));
        assert!(is_final(&failed(true)));
        assert!(!is_final(&StepReport::Output {
            line: "working".into(),
            percent: None
        }));
    }
}
