//! The driver over a fake bus and the memory store, with tokio's clock paused: the
//! paths where an error strands a saga unless the driver repairs it.

mod pool;
mod requeue;
mod rig;

use std::sync::atomic::Ordering;
use std::time::Duration;

use contracts::{SagaStatus, StepAction, StepReport};
use uuid::Uuid;

use super::recovery::SWEEP_EVERY;
use super::*;
use crate::bus::SetAside;
use crate::saga::Phase;
use rig::*;

#[tokio::test(start_paused = true)]
async fn a_command_not_sent_because_nats_was_away_is_sent_by_the_sweep() {
    let rig = Rig::new();
    let id = Uuid::new_v4();
    rig.bus.set_down(true);
    rig.signup(id).await;
    within(Duration::from_secs(1), "the saga is stored running", async || {
        matches!(rig.core.store.get(id).await, Ok(Some(s)) if s.status == SagaStatus::Running)
    })
    .await;
    assert!(rig.bus.commands().is_empty(), "NATS is away");
    assert_eq!(
        rig.settled.0.lock().expect("lock").as_slice(),
        &[Settle::Ack],
        "the stored signup is acknowledged: its effects are the driver's to deliver"
    );

    rig.bus.set_down(false);
    within(
        SWEEP_EVERY * 2,
        "the sweep sends the first command again",
        async || rig.sent_to("database", StepAction::Execute) == vec![1],
    )
    .await;
    finish_every_step(&rig, id).await;
}

#[tokio::test(start_paused = true)]
async fn a_command_whose_ack_never_came_is_sent_again() {
    let rig = Rig::new();
    let id = Uuid::new_v4();
    rig.bus.0.lock().expect("lock").acks_lost = true;
    rig.signup(id).await;
    within(Duration::from_secs(1), "the first command", async || {
        rig.sent_to("database", StepAction::Execute) == vec![1]
    })
    .await;
    rig.bus.0.lock().expect("lock").acks_lost = false;
    within(SWEEP_EVERY * 2, "the same command again", async || {
        rig.sent_to("database", StepAction::Execute) == vec![1, 1]
    })
    .await;
    // Marked as sent again, so the step looks up whether it finished it already;
    // the first send was not (the step runs it straight away).
    assert_eq!(
        rig.bus.0.lock().expect("lock").sent_again,
        [false, true],
        "the first send plain, the second marked"
    );
    finish_every_step(&rig, id).await;
    let sent_again = rig.bus.0.lock().expect("lock").sent_again.clone();
    assert!(
        sent_again[2..].iter().all(|again| !again),
        "the later steps' first sends are plain: {sent_again:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_saga_whose_command_was_lost_still_has_its_timer() {
    let rig = Rig::new();
    let id = Uuid::new_v4();
    rig.bus.set_down(true);
    rig.signup(id).await;
    // NATS stays away past the step's deadline: the armed timer moves the saga on
    // (a timed-out attempt is retried), and once NATS is back it ends.
    tokio::time::sleep(STEP_TIMEOUT + Duration::from_secs(1)).await;
    let saga = rig.saga(id).await;
    assert!(
        !matches!(saga.phase, Phase::Executing { attempt: 1, .. }),
        "the deadline of attempt 1 fired: {:?}",
        saga.phase
    );
    rig.bus.set_down(false);
    within(STEP_TIMEOUT * 2, "a database command is sent", async || {
        !rig.sent_to("database", StepAction::Execute).is_empty()
    })
    .await;
    finish_every_step(&rig, id).await;
}

#[tokio::test(start_paused = true)]
async fn an_undo_dispatched_by_a_timer_while_nats_is_away_is_sent_again() {
    let rig = Rig::new();
    let id = Uuid::new_v4();
    rig.signup(id).await;
    rig.command_sent("database", StepAction::Execute).await;
    rig.complete("database").await;
    rig.command_sent("site", StepAction::Execute).await;
    let failed = StepReport::Failed {
        code: "boom".into(),
        message: "site broke".into(),
        retryable: false,
    };
    rig.bus.set_down(true);
    rig.report("site", failed, 1).await;
    rig.reaches(id, SagaStatus::Compensating).await;
    assert!(rig.sent_to("site", StepAction::Compensate).is_empty());
    rig.bus.set_down(false);
    within(SWEEP_EVERY * 2, "the undo is sent", async || {
        rig.sent_to("site", StepAction::Compensate) == vec![1]
    })
    .await;
    rig.complete("site").await;
    rig.command_sent("database", StepAction::Compensate).await;
    rig.complete("database").await;
    rig.reaches(id, SagaStatus::RolledBack).await;
}

#[tokio::test(start_paused = true)]
async fn a_replay_while_nats_is_away_still_runs() {
    let rig = Rig::new();
    let id = Uuid::new_v4();
    rig.signup(id).await;
    rig.command_sent("database", StepAction::Execute).await;
    let failed = StepReport::Failed {
        code: "boom".into(),
        message: "database broke".into(),
        retryable: false,
    };
    rig.report("database", failed, 1).await;
    rig.command_sent("database", StepAction::Compensate).await;
    rig.complete("database").await;
    rig.reaches(id, SagaStatus::RolledBack).await;

    rig.bus.set_down(true);
    let (tx, rx) = tokio::sync::oneshot::channel();
    rig.core.router.send(id, Work::Replay(None, tx)).await;
    assert_eq!(rx.await.expect("reply"), Ok(SagaStatus::Running));
    rig.bus.set_down(false);
    within(SWEEP_EVERY * 2, "run 2's first command", async || {
        rig.bus.commands().iter().any(|c| c.run == 2)
    })
    .await;
    finish_every_step(&rig, id).await;
}

#[tokio::test(start_paused = true)]
async fn an_input_that_keeps_failing_becomes_a_dead_letter_instead_of_looping() {
    let rig = Rig::new();
    let id = Uuid::new_v4();
    rig.signup(id).await;
    rig.command_sent("database", StepAction::Execute).await;
    rig.core.store.failing.store(true, Ordering::SeqCst);
    let done = || StepReport::Completed {
        output: serde_json::json!({}),
    };
    rig.report("database", done(), 3).await;
    rig.report("database", done(), MAX_DELIVER).await;
    within(Duration::from_secs(1), "both settled", async || {
        rig.settled.0.lock().expect("lock").len() == 3
    })
    .await;
    let settled = rig.settled.0.lock().expect("lock").clone();
    assert_eq!(
        settled[1..],
        [Settle::Retry(Duration::from_secs(4)), Settle::Term],
        "redelivered later each time, then set aside"
    );
    let letters = rig.bus.dead_letters();
    let [SetAside::Input(letter)] = letters.as_slice() else {
        panic!("one dead letter of a step report: {letters:?}");
    };
    assert!(
        letter.reason.contains("not applied after 100 deliveries")
            && letter.reason.contains("the disk is on fire"),
        "{}",
        letter.reason
    );
    assert_eq!(letter.source, "orchestrator");
    assert_eq!(letter.saga_id, Some(id));
    assert_eq!(letter.deliveries, MAX_DELIVER);
}

#[test]
fn redelivery_waits_longer_each_time_up_to_a_minute() {
    let delays: Vec<u64> = [1, 2, 3, 4, 7, 8, 50]
        .into_iter()
        .map(|n| retry_delay(n).as_secs())
        .collect();
    assert_eq!(delays, [1, 2, 4, 8, 60, 60, 60]);
}

#[tokio::test(start_paused = true)]
async fn a_subdomain_held_by_a_registered_tenant_is_rejected_before_anything_is_created() {
    let rig = Rig::new();
    rig.bus.0.lock().expect("lock").held =
        Some(("registration".into(), "a registered tenant".into()));
    let id = Uuid::new_v4();
    rig.signup(id).await;
    within(Duration::from_secs(1), "rejected", async || {
        matches!(rig.core.store.get(id).await, Ok(Some(s)) if s.status == SagaStatus::Rejected)
    })
    .await;
    let saga = rig.saga(id).await;
    let error = saga.error.expect("the reason");
    assert_eq!(error.code, "subdomain_taken");
    assert!(
        error.message.contains("a registered tenant"),
        "{}",
        error.message
    );
    assert!(rig.bus.commands().is_empty(), "no step ran");
    assert_eq!(
        rig.core
            .store
            .subdomain_holder(&saga.tenant.subdomain)
            .await
            .expect("store"),
        None,
        "the saga store does not keep the subdomain for a rejected signup"
    );
}

#[tokio::test(start_paused = true)]
async fn a_password_sealed_to_the_current_key_is_kept_as_it_came() {
    let rig = Rig::new();
    let id = Uuid::new_v4();
    let sealed = rig.signup_sealed(id).await;
    rig.command_sent("database", StepAction::Execute).await;
    let kept = rig.saga(id).await.tenant.admin_password.expect("password");
    assert_eq!(kept.0, sealed.0, "not sealed again");
    // A clear one (older clients) is sealed here.
    let clear = Uuid::new_v4();
    rig.signup(clear).await;
    within(Duration::from_secs(1), "stored", async || {
        matches!(rig.core.store.get(clear).await, Ok(Some(_)))
    })
    .await;
    let sealed_here = rig
        .saga(clear)
        .await
        .tenant
        .admin_password
        .expect("password");
    assert!(sealed_here.0.starts_with("v2:test:"), "{}", sealed_here.0);
}

#[tokio::test(start_paused = true)]
async fn only_the_steps_that_can_see_a_subdomain_are_asked_about_it() {
    let rig = Rig::new();
    let id = Uuid::new_v4();
    rig.signup(id).await;
    rig.command_sent("database", StepAction::Execute).await;
    // The database and admin user steps would always say free: not asked.
    assert_eq!(
        rig.bus.0.lock().expect("lock").probed,
        ["site", "registration"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_signup_whose_subdomain_cannot_be_checked_is_not_held_up() {
    let rig = Rig::new();
    rig.bus.0.lock().expect("lock").probes_unanswered = true;
    let id = Uuid::new_v4();
    rig.signup(id).await;
    // A step service that is down cannot say the subdomain is held: the saga runs,
    // and its steps refuse a foreign folder or record (then it rolls back).
    finish_every_step(&rig, id).await;
    assert_eq!(
        rig.settled.0.lock().expect("lock")[0],
        Settle::Ack,
        "the signup is not redelivered"
    );
}

#[tokio::test(start_paused = true)]
async fn a_report_on_another_steps_subject_is_set_aside() {
    let rig = Rig::new();
    let id = Uuid::new_v4();
    rig.signup(id).await;
    rig.command_sent("database", StepAction::Execute).await;
    let done = StepReport::Completed {
        output: serde_json::json!({}),
    };
    // The database step's completion, as another step's consumer would publish it
    // had the broker handed it the database's command.
    rig.report_on("saga.evt.admin_user", "database", done, 1)
        .await;
    let letters = rig.bus.dead_letters();
    let [SetAside::Input(letter)] = letters.as_slice() else {
        panic!("one dead letter: {letters:?}");
    };
    assert!(
        letter.reason.contains("another step's subject"),
        "{}",
        letter.reason
    );
    assert_eq!(
        rig.settled.0.lock().expect("lock").last(),
        Some(&Settle::Term)
    );
    assert!(
        rig.sent_to("site", StepAction::Execute).is_empty(),
        "the saga did not move on"
    );
    // The same report on its own subject moves it on.
    rig.complete("database").await;
    rig.command_sent("site", StepAction::Execute).await;
}

#[tokio::test(start_paused = true)]
async fn a_malformed_report_is_set_aside_without_its_content() {
    let rig = Rig::new();
    let payload = br#"{"saga_id": "x", "api_secret": "TopSecret1!""#.to_vec();
    route_event(&rig.core, rig.inbound("saga.evt.site", payload, 1)).await;
    let letters = rig.bus.dead_letters();
    let [SetAside::Input(letter)] = letters.as_slice() else {
        panic!("one dead letter: {letters:?}");
    };
    assert!(
        letter.reason.starts_with("not a step event"),
        "{}",
        letter.reason
    );
    assert!(!format!("{letter:?}").contains("TopSecret1!"));
    assert_eq!(
        rig.settled.0.lock().expect("lock").as_slice(),
        &[Settle::Term]
    );
}
