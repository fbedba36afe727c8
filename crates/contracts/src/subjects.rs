//! Subject and stream names.
//!
//! Production uses the contract's names as they are. A namespace (`NATS_NAMESPACE`)
//! prefixes every subject and stream, so that several deployments or tests can share
//! one NATS server without seeing each other's messages.

/// Subject and stream names of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    subject_prefix: String,
    stream_prefix: String,
}

impl Default for Subjects {
    fn default() -> Self {
        Self::new("")
    }
}

impl Subjects {
    /// Names under `namespace`; an empty namespace gives the contract's names.
    ///
    /// A namespace is made of `[A-Za-z0-9_-]`; other characters are replaced by `_`
    /// because subjects and stream names may not contain them.
    pub fn new(namespace: &str) -> Self {
        let clean: String = namespace
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if clean.is_empty() {
            Self {
                subject_prefix: String::new(),
                stream_prefix: String::new(),
            }
        } else {
            Self {
                subject_prefix: format!("{clean}."),
                stream_prefix: format!("{}_", clean.to_ascii_uppercase()),
            }
        }
    }

    fn subject(&self, name: &str) -> String {
        format!("{}{name}", self.subject_prefix)
    }

    fn stream(&self, name: &str) -> String {
        format!("{}{name}", self.stream_prefix)
    }

    /// `tenant.signup.requested`: signups published by the web app.
    pub fn signup_requested(&self) -> String {
        self.subject("tenant.signup.requested")
    }

    /// `tenant.signup.dead_letter`: signups that could not even be read.
    pub fn signup_dead_letter(&self) -> String {
        self.subject("tenant.signup.dead_letter")
    }

    /// `tenant.progress.<saga_id>`: the timeline of one saga.
    pub fn progress(&self, saga_id: &uuid::Uuid) -> String {
        self.subject(&format!("tenant.progress.{saga_id}"))
    }

    /// `tenant.progress.*`: every saga's timeline.
    pub fn progress_all(&self) -> String {
        self.subject("tenant.progress.*")
    }

    /// `tenant.subdomain.check`: request/reply availability check.
    pub fn subdomain_check(&self) -> String {
        self.subject("tenant.subdomain.check")
    }

    /// `saga.admin.get`: one saga with its timeline.
    pub fn admin_get(&self) -> String {
        self.subject("saga.admin.get")
    }

    /// `saga.admin.list`: sagas, newest first.
    pub fn admin_list(&self) -> String {
        self.subject("saga.admin.list")
    }

    /// `saga.admin.dead_letters`: what was set aside, newest first.
    pub fn admin_dead_letters(&self) -> String {
        self.subject("saga.admin.dead_letters")
    }

    /// `saga.admin.dead_letters.requeue`: re-drive the saga a dead letter names.
    pub fn admin_requeue(&self) -> String {
        self.subject("saga.admin.dead_letters.requeue")
    }

    /// `saga.admin.pool`: the standby pool's size, standbys and hourly figures.
    pub fn admin_pool(&self) -> String {
        self.subject("saga.admin.pool")
    }

    /// `saga.admin.pool.set`: set the standby pool's size, or clear it (the leader).
    pub fn admin_pool_set(&self) -> String {
        self.subject("saga.admin.pool.set")
    }

    /// `saga.admin.replay`: run a rolled-back saga again, or resume a failed undo.
    pub fn admin_replay(&self) -> String {
        self.subject("saga.admin.replay")
    }

    /// `saga.admin.replay_bulk`: replay every saga a filter picks (or list them: dry
    /// run).
    pub fn admin_replay_bulk(&self) -> String {
        self.subject("saga.admin.replay_bulk")
    }

    /// `saga.cmd.<step>`: commands from the orchestrator to one step service.
    pub fn step_command(&self, step: &str) -> String {
        self.subject(&format!("saga.cmd.{step}"))
    }

    /// `saga.cmd.>`: every step command.
    pub fn step_commands_all(&self) -> String {
        self.subject("saga.cmd.>")
    }

    /// `saga.evt.<step>`: reports from one step service to the orchestrator.
    pub fn step_event(&self, step: &str) -> String {
        self.subject(&format!("saga.evt.{step}"))
    }

    /// `saga.evt.>`: every step report.
    pub fn step_events_all(&self) -> String {
        self.subject("saga.evt.>")
    }

    /// `saga.probe.<step>`: request/reply, does this step see a subdomain as held?
    pub fn step_probe(&self, step: &str) -> String {
        self.subject(&format!("saga.probe.{step}"))
    }

    /// `saga.dead_letter.<source>`: inputs that `source` (a step's name) gave up on:
    /// unreadable, or failing until the consumer's `max_deliver`.
    pub fn dead_letter(&self, source: &str) -> String {
        self.subject(&format!("saga.dead_letter.{source}"))
    }

    /// `saga.dead_letter.>`: every source's dead letters.
    pub fn dead_letters_all(&self) -> String {
        self.subject("saga.dead_letter.>")
    }

    /// Key-value bucket `SAGA_FINISHED_COMMANDS`: the final report of every finished
    /// command by command id, so that a redelivered command is answered, not run again.
    pub fn finished_commands_bucket(&self) -> String {
        self.stream("SAGA_FINISHED_COMMANDS")
    }

    /// Stream `TENANT_SIGNUPS` (work queue: a signup leaves it once accepted).
    pub fn signups_stream(&self) -> String {
        self.stream("TENANT_SIGNUPS")
    }

    /// Stream `TENANT_PROGRESS` (kept, so late subscribers read whole timelines).
    pub fn progress_stream(&self) -> String {
        self.stream("TENANT_PROGRESS")
    }

    /// Stream `TENANT_DEAD_LETTERS`: `tenant.signup.dead_letter` and
    /// `saga.dead_letter.>`.
    pub fn dead_letter_stream(&self) -> String {
        self.stream("TENANT_DEAD_LETTERS")
    }

    /// Stream `SAGA_COMMANDS` (work queue, one consumer per step).
    pub fn commands_stream(&self) -> String {
        self.stream("SAGA_COMMANDS")
    }

    /// Stream `SAGA_EVENTS` (work queue, consumed by the orchestrator).
    pub fn events_stream(&self) -> String {
        self.stream("SAGA_EVENTS")
    }

    /// Every stream of the saga, for set-up and clean-up; the last one holds the
    /// finished-commands bucket (a key-value bucket is a stream `KV_<bucket>`).
    pub fn streams(&self) -> [String; 6] {
        [
            self.signups_stream(),
            self.progress_stream(),
            self.dead_letter_stream(),
            self.commands_stream(),
            self.events_stream(),
            format!("KV_{}", self.finished_commands_bucket()),
        ]
    }

    /// Name prefix for durable consumers, so that namespaces do not share them.
    pub fn consumer(&self, name: &str) -> String {
        format!("{}{name}", self.stream_prefix.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_the_contracts() {
        let s = Subjects::default();
        assert_eq!(s.signup_requested(), "tenant.signup.requested");
        assert_eq!(s.subdomain_check(), "tenant.subdomain.check");
        assert_eq!(s.admin_replay(), "saga.admin.replay");
        assert_eq!(s.admin_pool_set(), "saga.admin.pool.set");
        assert_eq!(s.signups_stream(), "TENANT_SIGNUPS");
        assert_eq!(s.progress_stream(), "TENANT_PROGRESS");
        assert_eq!(s.step_probe("registration"), "saga.probe.registration");
        assert_eq!(s.dead_letters_all(), "saga.dead_letter.>");
        assert_eq!(s.finished_commands_bucket(), "SAGA_FINISHED_COMMANDS");
        let id = uuid::Uuid::nil();
        assert_eq!(
            s.progress(&id),
            "tenant.progress.00000000-0000-0000-0000-000000000000"
        );
    }

    #[test]
    fn namespace_prefixes_subjects_and_streams() {
        let s = Subjects::new("t1.x");
        assert_eq!(s.signup_requested(), "t1_x.tenant.signup.requested");
        assert_eq!(s.step_command("site"), "t1_x.saga.cmd.site");
        assert_eq!(s.signups_stream(), "T1_X_TENANT_SIGNUPS");
        assert_eq!(s.consumer("orchestrator"), "t1_x_orchestrator");
        assert_eq!(s.step_probe("site"), "t1_x.saga.probe.site");
        assert_eq!(s.dead_letter("site"), "t1_x.saga.dead_letter.site");
        assert_eq!(s.finished_commands_bucket(), "T1_X_SAGA_FINISHED_COMMANDS");
        assert_eq!(s.streams()[5], "KV_T1_X_SAGA_FINISHED_COMMANDS");
    }
}
