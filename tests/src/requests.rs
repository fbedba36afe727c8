//! What the tests ask the orchestrator (request/reply) and read from the progress
//! stream, as operators and dashboards would.

use std::time::Duration;

use contracts::admin::{GetReply, SagaRef};
use contracts::{ProgressEvent, SagaStatus};

use uuid::Uuid;

use crate::Harness;

impl Harness {
    /// Sends a request/reply call as an operator and decodes the answer.
    pub async fn request<T: serde::de::DeserializeOwned>(
        &self,
        subject: String,
        body: &serde_json::Value,
    ) -> T {
        self.request_as(&self.operator, subject, body).await
    }

    /// Sends a request/reply call as `client`'s user and decodes the answer.
    pub async fn request_as<T: serde::de::DeserializeOwned>(
        &self,
        client: &async_nats::Client,
        subject: String,
        body: &serde_json::Value,
    ) -> T {
        let reply = tokio::time::timeout(
            Duration::from_secs(10),
            client.request(
                subject.clone(),
                serde_json::to_vec(body).expect("json").into(),
            ),
        )
        .await
        .unwrap_or_else(|_| panic!("no reply on {subject}"))
        .unwrap_or_else(|e| panic!("request on {subject}: {e}"));
        serde_json::from_slice(&reply.payload).unwrap_or_else(|e| panic!("reply on {subject}: {e}"))
    }

    /// `saga.admin.replay`.
    pub async fn replay(&self, saga_id: Uuid) -> contracts::admin::ReplayReply {
        self.request(
            self.subjects.admin_replay(),
            &serde_json::json!({ "saga_id": saga_id }),
        )
        .await
    }

    /// `saga.admin.list` for one status.
    pub async fn list(&self, status: SagaStatus) -> contracts::admin::ListReply {
        self.request(
            self.subjects.admin_list(),
            &serde_json::json!({ "status": status }),
        )
        .await
    }

    /// `tenant.subdomain.check`, as the web app.
    pub async fn check_subdomain(
        &self,
        subdomain: &str,
    ) -> contracts::subdomain::SubdomainCheckReply {
        self.request_as(
            &self.web_app,
            self.subjects.subdomain_check(),
            &serde_json::json!({ "subdomain": subdomain }),
        )
        .await
    }

    /// `saga.admin.get` as an operator, retried while the orchestrator is not
    /// answering yet.
    pub async fn get(&self, saga_id: Uuid) -> GetReply {
        let body = serde_json::to_value(SagaRef { saga_id }).expect("json");
        for _ in 0..100 {
            let reply = tokio::time::timeout(
                Duration::from_secs(2),
                self.operator.request(
                    self.subjects.admin_get(),
                    serde_json::to_vec(&body).expect("json").into(),
                ),
            )
            .await;
            if let Ok(Ok(reply)) = reply {
                return serde_json::from_slice(&reply.payload).expect("GetReply");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("saga.admin.get never answered")
    }

    /// Waits until the saga reaches a terminal status; returns its status.
    pub async fn wait_terminal(&self, saga_id: Uuid, secs: u64) -> SagaStatus {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(saga) = self.get(saga_id).await.saga {
                if saga.status.is_terminal() {
                    return saga.status;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "saga {saga_id} not finished after {secs}s: {:#?}",
                self.get(saga_id).await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Reads a saga's timeline from the progress stream, as the web app joining late
    /// would (its NATS user, which may not make consumers: a subscription and direct
    /// gets, `step_runtime::bus::SagaProgress`): from the first event, until
    /// `terminals` terminal events were read (one per run) or 10 s pass.
    pub async fn timeline(&self, saga_id: Uuid, terminals: usize) -> Vec<ProgressEvent> {
        let mut progress =
            step_runtime::bus::SagaProgress::start(&self.web_app, &self.subjects, saga_id)
                .await
                .expect("following the saga's progress");
        let mut events: Vec<ProgressEvent> = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while events.iter().filter(|e| e.status.is_terminal()).count() < terminals {
            match tokio::time::timeout_at(deadline, progress.next()).await {
                Ok(event) => events.push(event.expect("progress event")),
                Err(_) => break,
            }
        }
        events
    }
}
