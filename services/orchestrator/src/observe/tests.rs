//! The gauges across leadership changes, and the counters of transitions, rendered by
//! a Prometheus recorder of the test's own (the global one is shared by every test).

use chrono::{TimeZone, Utc};
use contracts::signup::AuthProvider;
use contracts::{ErrorInfo, SagaStatus, StepAction, StepEvent, StepReport, TenantContext};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use uuid::Uuid;

use super::*;
use crate::store::{MemoryStore, SagaStore};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0)
        .single()
        .expect("valid time")
}

fn saga(subdomain: &str) -> Saga {
    let tenant = TenantContext {
        subdomain: subdomain.into(),
        site_name: format!("{subdomain}.localhost"),
        organization_name: "Org".into(),
        admin_email: "admin@example.com".into(),
        admin_full_name: "Admin".into(),
        auth_provider: AuthProvider::Google,
        admin_password: None,
        standby: None,
        standby_build: false,
    };
    Saga::accepted(Uuid::new_v4(), tenant, t0())
}

/// `saga` moved on to `status` and `phase` (a stored transition).
fn moved(saga: &Saga, status: SagaStatus, phase: Phase) -> Saga {
    let mut after = saga.clone();
    after.status = status;
    after.phase = phase;
    after.sequence += 1;
    after
}

/// The value of the sample `series` (name with labels, as rendered).
fn value(recorder: &PrometheusRecorder, series: &str) -> Option<f64> {
    recorder
        .handle()
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn gauges(recorder: &PrometheusRecorder) -> [Option<f64>; 4] {
    [
        value(recorder, "saga_leader"),
        value(recorder, "saga_in_flight"),
        value(
            recorder,
            r#"saga_needing_attention{reason="compensation_failed"}"#,
        ),
        value(recorder, r#"saga_needing_attention{reason="stuck"}"#),
    ]
}

/// A store with a running saga, one stuck (its deadline long past), one that ended
/// `compensation_failed` and one completed.
async fn store_with_sagas() -> (MemoryStore, Saga) {
    let store = MemoryStore::default();
    let deadline = t0() + chrono::Duration::minutes(1);
    let running = moved(
        &saga("running"),
        SagaStatus::Running,
        Phase::Executing {
            step: 1,
            attempt: 1,
            deadline,
        },
    );
    let stuck = moved(
        &saga("stuck"),
        SagaStatus::Running,
        Phase::Executing {
            step: 0,
            attempt: 1,
            deadline: t0() - chrono::Duration::minutes(30),
        },
    );
    let failed = moved(
        &saga("failed"),
        SagaStatus::CompensationFailed,
        Phase::Finished,
    );
    let done = moved(&saga("done"), SagaStatus::Completed, Phase::Finished);
    for saga in [&running, &stuck, &failed, &done] {
        store.insert(saga, &[]).await.expect("stored");
    }
    (store, running)
}

#[tokio::test]
async fn a_new_leader_reports_the_stores_sagas_and_a_deposed_one_reports_none() {
    let (store, running) = store_with_sagas().await;
    let now = t0();

    // Instance A, before it leads: nothing in flight as far as it reports.
    let a = PrometheusBuilder::new().build_recorder();
    metrics::with_local_recorder(&a, stand_by);
    assert_eq!(gauges(&a), [Some(0.0); 4]);

    // A takes the lead: the gauges come from the store, not from what A counted.
    let in_flight = store.in_flight().await.expect("listed");
    let snapshot = Snapshot::read(&store, &in_flight, now).await.expect("read");
    metrics::with_local_recorder(&a, || snapshot.publish());
    assert_eq!(gauges(&a), [Some(1.0), Some(2.0), Some(1.0), Some(1.0)]);

    // A completes the running saga: one fewer in flight at once.
    let completed = moved(&running, SagaStatus::Completed, Phase::Finished);
    store
        .update(&running, &completed, &[])
        .await
        .expect("stored");
    let definition = SagaDefinition::tenant_provisioning();
    let report = Input::Reported(StepEvent {
        command_id: "c".into(),
        saga_id: running.id,
        run: 1,
        step: "site".into(),
        action: StepAction::Execute,
        attempt: 1,
        report: StepReport::Completed {
            output: serde_json::Value::Null,
        },
        at: now,
    });
    metrics::with_local_recorder(&a, || {
        transition(&definition, &running, &completed, &report, &[], now)
    });
    assert_eq!(value(&a, "saga_in_flight"), Some(1.0));

    // A loses the lead: it reports nothing in flight any more.
    metrics::with_local_recorder(&a, stand_by);
    assert_eq!(gauges(&a), [Some(0.0); 4]);

    // B (a standby, or A restarted) takes over: it reads what is left from the store.
    let b = PrometheusBuilder::new().build_recorder();
    let in_flight = store.in_flight().await.expect("listed");
    let snapshot = Snapshot::read(&store, &in_flight, now).await.expect("read");
    metrics::with_local_recorder(&b, || snapshot.publish());
    assert_eq!(gauges(&b), [Some(1.0), Some(1.0), Some(1.0), Some(1.0)]);
}

#[test]
fn a_transition_counts_its_end_its_step_and_its_undos_once() {
    let definition = SagaDefinition::tenant_provisioning();
    let start = t0();
    let mut before = moved(
        &saga("org"),
        SagaStatus::Running,
        Phase::Executing {
            step: 1,
            attempt: 3,
            // Dispatched at start + 50 s: the deadline is the step's timeout later.
            deadline: start + chrono::Duration::seconds(50) + chrono::Duration::seconds(900),
        },
    );
    before.created_at = start;
    let mut after = moved(
        &before,
        SagaStatus::Compensating,
        Phase::Compensating {
            step: 0,
            attempt: 1,
            deadline: start + chrono::Duration::seconds(200),
        },
    );
    after.error = Some(ErrorInfo {
        code: "site_failed".into(),
        message: "no".into(),
        step: Some("site".into()),
        cause: None,
    });
    let failed = Input::TimerFired(before.timer().expect("a timer"));
    let undo = Action::Dispatch {
        step: "database".into(),
        action: StepAction::Compensate,
        attempt: 1,
        deadline: start + chrono::Duration::seconds(200),
    };
    let now = start + chrono::Duration::seconds(80);
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
            &[10.0, 30.0, 60.0],
        )
        .expect("buckets")
        .build_recorder();
    metrics::with_local_recorder(&recorder, || {
        transition(&definition, &before, &after, &failed, &[undo], now);
        let mut ended = moved(&after, SagaStatus::RolledBack, Phase::Finished);
        ended.error = after.error.clone();
        transition(&definition, &after, &ended, &Input::Replay(None), &[], now);
    });
    let series = |s: &str| value(&recorder, s);
    assert_eq!(series(r#"saga_undos_total{step="database"}"#), Some(1.0));
    // The site attempt ran 30 s (dispatched at 50 s, timed out at 80 s).
    assert_eq!(
        series(
            r#"saga_step_duration_seconds_bucket{step="site",action="execute",outcome="timed_out",le="10"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        series(
            r#"saga_step_duration_seconds_bucket{step="site",action="execute",outcome="timed_out",le="30"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        series(
            r#"saga_ended_total{kind="signup",run="first",outcome="rolled_back",error_code="site_failed"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        series(r#"saga_duration_seconds_count{kind="signup",run="first",outcome="rolled_back"}"#),
        Some(1.0)
    );
    assert_eq!(series("saga_started_total"), None, "counted at intake only");
}
