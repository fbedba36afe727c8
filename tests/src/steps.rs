//! Talking to step services directly, without the orchestrator: building and
//! publishing step commands, reading what the services published on their event and
//! dead-letter subjects (without consuming it), asking their subdomain probes.

use std::collections::BTreeMap;
use std::time::Duration;

use contracts::step_dead_letter::StepDeadLetter;
use contracts::{ProbeReply, StepAction, StepCommand, StepEvent, StepReport, TenantContext};
use uuid::Uuid;

use crate::Harness;

/// A command for `step` about `subdomain` (site `<subdomain>.example.test`), due in a
/// minute, as the orchestrator would send it.
pub fn command(
    saga_id: Uuid,
    step: &str,
    action: StepAction,
    attempt: u32,
    subdomain: &str,
) -> StepCommand {
    StepCommand {
        command_id: StepCommand::id_for(saga_id, 1, step, action, attempt),
        saga_id,
        run: 1,
        step: step.into(),
        action,
        attempt,
        deadline: chrono::Utc::now() + chrono::Duration::seconds(60),
        tenant: TenantContext {
            subdomain: subdomain.into(),
            site_name: format!("{subdomain}.example.test"),
            organization_name: format!("Org {subdomain}"),
            admin_email: "admin@test.com".into(),
            admin_full_name: "Test Admin".into(),
            auth_provider: contracts::signup::AuthProvider::Password,
            admin_password: None,
            standby: None,
            standby_build: false,
        },
        outputs: BTreeMap::new(),
    }
}

impl Harness {
    /// The step runtime's settings of this world for the service of `step` (its NATS
    /// user), to adjust before [`step_runtime::run`].
    pub fn runtime_config(&self, step: &str) -> step_runtime::RuntimeConfig {
        step_runtime::config_from(self.lookup(crate::private_nats::step_user(step)))
            .expect("runtime config")
    }

    /// Publishes `command` on its step's subject with `Nats-Msg-Id: msg_id` (the
    /// orchestrator uses the command id; another id is the same command sent again
    /// after the duplicate window, marked as the orchestrator marks it).
    pub async fn publish_command(&self, command: &StepCommand, msg_id: &str) {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id);
        if msg_id != command.command_id {
            headers.insert(contracts::SENT_AGAIN_HEADER, "1");
        }
        self.js
            .publish_with_headers(
                self.subjects.step_command(&command.step),
                headers,
                serde_json::to_vec(command).expect("json").into(),
            )
            .await
            .expect("publish")
            .await
            .expect("command stored in SAGA_COMMANDS");
    }

    /// Every message now in stream `stream` on `subject`, oldest first, read without
    /// consuming them (the event stream is a work queue).
    pub async fn stored(&self, stream: &str, subject: &str) -> Vec<Vec<u8>> {
        let mut stream = self.js.get_stream(stream).await.expect("stream");
        let state = &stream.info().await.expect("stream info").state;
        let (messages, first, last) = (state.messages, state.first_sequence, state.last_sequence);
        let mut found = Vec::new();
        if messages == 0 {
            return found;
        }
        for seq in first..=last {
            if let Ok(raw) = stream.get_raw_message(seq).await {
                if raw.subject.as_str() == subject {
                    found.push(raw.payload.to_vec());
                }
            }
        }
        found
    }

    /// The events `step` published so far (output lines and reports).
    pub async fn step_events(&self, step: &str) -> Vec<StepEvent> {
        self.stored(
            &self.subjects.events_stream(),
            &self.subjects.step_event(step),
        )
        .await
        .iter()
        .map(|p| serde_json::from_slice(p).expect("StepEvent"))
        .collect()
    }

    /// Sends `command` as the orchestrator first does (its id as message id) and waits
    /// up to `secs` seconds for its final report.
    pub async fn run_command(&self, command: &StepCommand, secs: u64) -> StepReport {
        self.publish_command(command, &command.command_id).await;
        self.final_report(&command.step, &command.command_id, secs)
            .await
    }

    /// The final report of `command_id`, waiting up to `secs` seconds for it.
    pub async fn final_report(&self, step: &str, command_id: &str, secs: u64) -> StepReport {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let report = self
                .step_events(step)
                .await
                .into_iter()
                .find(|e| {
                    e.command_id == command_id && !matches!(e.report, StepReport::Output { .. })
                })
                .map(|e| e.report);
            if let Some(report) = report {
                return report;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no report of {command_id} after {secs}s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The dead letters `source` published so far.
    pub async fn step_dead_letters(&self, source: &str) -> Vec<StepDeadLetter> {
        self.stored(
            &self.subjects.dead_letter_stream(),
            &self.subjects.dead_letter(source),
        )
        .await
        .iter()
        .map(|p| serde_json::from_slice(p).expect("StepDeadLetter"))
        .collect()
    }

    /// Messages left in the command stream (a work queue: handled ones leave it).
    pub async fn commands_left(&self) -> u64 {
        let mut stream = self
            .js
            .get_stream(self.subjects.commands_stream())
            .await
            .expect("command stream");
        stream.info().await.expect("info").state.messages
    }

    /// Asks `step`'s subdomain probe about `subdomain` (site `<subdomain>.example.test`),
    /// retried while no instance answers yet.
    pub async fn probe(&self, step: &str, subdomain: &str) -> ProbeReply {
        let body = serde_json::json!({
            "subdomain": subdomain,
            "site_name": format!("{subdomain}.example.test"),
        });
        for _ in 0..100 {
            let reply = tokio::time::timeout(
                Duration::from_secs(5),
                self.client.request(
                    self.subjects.step_probe(step),
                    serde_json::to_vec(&body).expect("json").into(),
                ),
            )
            .await;
            if let Ok(Ok(reply)) = reply {
                return serde_json::from_slice(&reply.payload).expect("ProbeReply");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("saga.probe.{step} never answered")
    }

    /// Waits until `step`'s service has declared its consumer (it then handles
    /// commands; its streams and bucket exist).
    pub async fn wait_step_consumer(&self, step: &str) {
        let stream = self
            .js
            .get_stream(self.subjects.commands_stream())
            .await
            .expect("command stream");
        let name = self.subjects.consumer(&format!("step-{step}"));
        crate::assert_eventually!(
            20,
            format!("consumer {name} declared"),
            stream.consumer_info(&name).await.is_ok()
        );
    }
}
