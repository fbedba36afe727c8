//! The subdomain probe responder: answers `saga.probe.<step>` with the step's
//! [`Step::holds`], in queue group `probe-<step>` (any instance answers), each request
//! in its own task so a slow answer (the Master site taking its time) holds up no other.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use contracts::{ProbeReply, SubdomainProbe};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::Step;

/// Longest a probe may take: the asker has given up long before.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// Subscribes to `subject` now (so that the service answers once it says it is ready)
/// and serves probes until `shutdown`.
pub(crate) async fn serve<S: Step>(
    client: async_nats::Client,
    subject: String,
    step: Arc<S>,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let group = format!("probe-{}", step.name());
    let mut requests = client
        .queue_subscribe(subject.clone(), group)
        .await
        .with_context(|| format!("subscribing to {subject}"))?;
    Ok(tokio::spawn(async move {
        loop {
            let request = tokio::select! {
                () = shutdown.cancelled() => break,
                next = requests.next() => match next {
                    Some(request) => request,
                    None => break,
                },
            };
            let Some(reply_to) = request.reply.clone() else {
                continue;
            };
            let (step, client) = (step.clone(), client.clone());
            tokio::spawn(async move {
                let reply = answer(step.as_ref(), &request.payload).await;
                let payload = serde_json::to_vec(&reply).unwrap_or_default();
                if let Err(e) = client.publish(reply_to, payload.into()).await {
                    tracing::warn!(error = %e, "could not answer a subdomain probe");
                }
            });
        }
        let _ = requests.unsubscribe().await;
    }))
}

async fn answer<S: Step>(step: &S, payload: &[u8]) -> ProbeReply {
    let probe: SubdomainProbe = match serde_json::from_slice(payload) {
        Ok(probe) => probe,
        Err(e) => return ProbeReply::failed(format!("unreadable probe: {e}")),
    };
    // Steps put these names in paths and URLs: nothing else reaches them.
    if let Err(e) = probe.check() {
        return ProbeReply::failed(format!("refused probe: {e}"));
    }
    let span = tracing::info_span!("probe", subdomain = %probe.subdomain);
    let held = tokio::time::timeout(PROBE_TIMEOUT, step.holds(&probe))
        .instrument(span.clone())
        .await;
    match held {
        Ok(Ok(reason)) => {
            tracing::debug!(parent: &span, held = reason.is_some(), "probe answered");
            ProbeReply::answer(reason)
        }
        Ok(Err(e)) => {
            tracing::warn!(parent: &span, error = %e, "probe could not tell");
            ProbeReply::failed(e.to_string())
        }
        Err(_) => ProbeReply::failed(format!(
            "{} did not answer within {}s",
            step.name(),
            PROBE_TIMEOUT.as_secs()
        )),
    }
}
