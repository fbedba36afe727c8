//! The saga end to end: real orchestrator, real db-step, scripted positions 2-4,
//! real NATS JetStream and MariaDB.

use contracts::{SagaStatus, StepStatus};
use tests::{mariadb_has, Behaviour, Harness};
use uuid::Uuid;

const STEPS: [&str; 4] = ["database", "site", "admin_user", "registration"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signup_becomes_a_completed_saga_with_a_real_database() {
    let mut h = Harness::new().await;
    h.start_orchestrator();
    let journal = h.start_steps(&[]);
    let id = Uuid::new_v4();
    let subdomain = h.subdomain("happy");
    h.publish_signup(&h.signup(id, &subdomain)).await;

    assert_eq!(h.wait_terminal(id, 30).await, SagaStatus::Completed);
    let timeline = h.timeline(id, 1).await;
    let sequences: Vec<u64> = timeline.iter().map(|e| e.sequence).collect();
    assert_eq!(
        sequences,
        (1..=timeline.len() as u64).collect::<Vec<_>>(),
        "a late subscriber reads the whole timeline in order"
    );
    let last = timeline.last().expect("events");
    assert_eq!(last.status, SagaStatus::Completed);
    assert_eq!(last.percent, 100);
    let result = last.result.as_ref().expect("result");
    assert_eq!(
        result["site_url"],
        format!("https://{subdomain}.example.test")
    );
    assert_eq!(result["admin_email"], "admin@test.com");
    let completed: Vec<&str> = timeline
        .iter()
        .filter(|e| e.step_status == Some(StepStatus::Completed))
        .filter_map(|e| e.step.as_deref())
        .collect();
    assert_eq!(completed, STEPS);

    // The database and its user exist, and the user logs in with the password the
    // later steps received (sealed) - the one bench new-site will be given.
    let db_name = db_step::database_name(&subdomain);
    assert_eq!(mariadb_has(&db_name).await, (true, true));
    let site_input = journal
        .entries()
        .into_iter()
        .find(|e| e.step == "site")
        .expect("site ran");
    let database = &site_input.outputs["database"];
    assert_eq!(database["db_name"], db_name.as_str());
    let sealed = contracts::Sealed(
        database["db_password"]
            .as_str()
            .expect("sealed password")
            .to_string(),
    );
    let password = h
        .key
        .open(
            &sealed,
            secrets::Binding::new(site_input.saga_id, secrets::Field::DbPassword),
        )
        .expect("opens with the services' key");
    use secrets::ExposeSecret;
    let url = format!(
        "mysql://{db_name}:{}@127.0.0.1:3306/{db_name}",
        password.expose_secret()
    );
    let mut conn = <sqlx::MySqlConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("tenant user logs in");
    sqlx::query("CREATE TABLE t (id INT)")
        .execute(&mut conn)
        .await
        .expect("tenant user owns its database");

    // Secrets never show in progress events.
    let text = serde_json::to_string(&timeline).expect("json");
    assert!(!text.contains("TestPass123!") && !text.contains(password.expose_secret()));

    tests::drop_tenant(&db_name).await;
    h.finish().await;
}

/// Fails the step at `failing` (1-3: scripted) and checks the rollback.
async fn rollback_at(failing: usize) {
    let mut h = Harness::new().await;
    h.start_orchestrator();
    let journal = h.start_steps(&[(STEPS[failing], Behaviour::fail())]);
    let id = Uuid::new_v4();
    let subdomain = h.subdomain(&format!("fail{failing}"));
    h.publish_signup(&h.signup(id, &subdomain)).await;

    assert_eq!(h.wait_terminal(id, 30).await, SagaStatus::RolledBack);
    let timeline = h.timeline(id, 1).await;
    let undone: Vec<&str> = timeline
        .iter()
        .filter(|e| e.step_status == Some(StepStatus::Compensated))
        .filter_map(|e| e.step.as_deref())
        .collect();
    let expected: Vec<&str> = STEPS[..=failing].iter().rev().copied().collect();
    assert_eq!(
        undone, expected,
        "every started step undone, in reverse order"
    );
    let last = timeline.last().expect("events");
    assert_eq!(last.status, SagaStatus::RolledBack);
    let error = last.error.as_ref().expect("the failure is reported");
    assert_eq!(error.step.as_deref(), Some(STEPS[failing]));
    assert_eq!(error.code, "scripted_failure");

    // The scripted services saw their undo after their effect, latest first.
    let scripted: Vec<String> = journal.lines(id);
    let mut expected_journal: Vec<String> = STEPS[1..failing]
        .iter()
        .map(|s| format!("{s} execute"))
        .collect();
    expected_journal.extend(
        STEPS[1..=failing]
            .iter()
            .rev()
            .map(|s| format!("{s} compensate")),
    );
    assert_eq!(scripted, expected_journal);

    // Nothing is left in MariaDB, and the subdomain is free again.
    assert_eq!(
        mariadb_has(&db_step::database_name(&subdomain)).await,
        (false, false)
    );
    let check = h.check_subdomain(&subdomain).await;
    assert!(check.available, "{check:?}");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_at_the_site_step_rolls_back_the_database() {
    rollback_at(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_at_the_admin_user_step_rolls_back_site_and_database() {
    rollback_at(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_at_the_registration_step_rolls_back_everything_in_reverse() {
    rollback_at(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_database_fails_the_first_step_and_is_left_untouched() {
    let mut h = Harness::new().await;
    let subdomain = h.subdomain("foreign");
    let db_name = db_step::database_name(&subdomain);
    let pool = tests::admin_pool().await;
    sqlx::raw_sql(&format!("CREATE DATABASE `{db_name}`; CREATE TABLE `{db_name}`.precious (id INT); INSERT INTO `{db_name}`.precious VALUES (42);"))
        .execute(&pool)
        .await
        .expect("foreign database");

    h.start_orchestrator();
    let journal = h.start_steps(&[]);
    let id = Uuid::new_v4();
    h.publish_signup(&h.signup(id, &subdomain)).await;
    assert_eq!(h.wait_terminal(id, 30).await, SagaStatus::RolledBack);

    let saga = h.get(id).await.saga.expect("saga");
    let error = saga.error.expect("error");
    assert_eq!(error.code, "database_conflict");
    assert_eq!(error.step.as_deref(), Some("database"));
    assert!(
        error.message.contains("left untouched"),
        "{}",
        error.message
    );
    let kept: i64 = sqlx::query_scalar(&format!("SELECT id FROM `{db_name}`.precious"))
        .fetch_one(&pool)
        .await
        .expect("foreign data intact");
    assert_eq!(kept, 42);
    assert_eq!(
        mariadb_has(&db_name).await,
        (true, false),
        "no user was created beside it"
    );
    assert!(journal.lines(id).is_empty(), "no later step ran");

    sqlx::raw_sql(&format!("DROP DATABASE `{db_name}`"))
        .execute(&pool)
        .await
        .expect("cleanup");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_signup_id_twice_gives_one_saga() {
    let mut h = Harness::new().await;
    h.start_orchestrator();
    let journal = h.start_steps(&[]);
    let id = Uuid::new_v4();
    let subdomain = h.subdomain("dup");
    let signup = h.signup(id, &subdomain);
    h.publish_signup(&signup).await;
    h.publish_signup(&signup).await; // deduplicated by JetStream (Nats-Msg-Id)
    assert_eq!(h.wait_terminal(id, 30).await, SagaStatus::Completed);

    // A client that forgets the header, and even changes the subdomain: still the same request.
    let mut again = signup.clone();
    again["subdomain"] = serde_json::json!(h.subdomain("dup-other"));
    h.publish_raw(serde_json::to_vec(&again).expect("json"), None)
        .await;
    let witness = Uuid::new_v4();
    h.publish_signup(&h.signup(witness, &h.subdomain("witness")))
        .await;
    assert_eq!(h.wait_terminal(witness, 30).await, SagaStatus::Completed);

    let executes = journal
        .lines(id)
        .iter()
        .filter(|l| l.ends_with("execute"))
        .count();
    assert_eq!(executes, 3, "each scripted step ran once for the signup");
    let accepted = h
        .timeline(id, 1)
        .await
        .iter()
        .filter(|e| e.status == SagaStatus::Accepted)
        .count();
    assert_eq!(accepted, 1);
    let check = h.check_subdomain(&h.subdomain("dup-other")).await;
    assert!(check.available, "the duplicate claimed nothing");

    tests::drop_tenant(&db_step::database_name(&subdomain)).await;
    tests::drop_tenant(&db_step::database_name(&h.subdomain("witness"))).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_subdomain_is_rejected_and_nothing_is_created() {
    let mut h = Harness::new().await;
    h.start_orchestrator();
    let journal = h.start_steps(&[]);
    let subdomain = h.subdomain("taken");
    let first = Uuid::new_v4();
    h.publish_signup(&h.signup(first, &subdomain)).await;
    assert_eq!(h.wait_terminal(first, 30).await, SagaStatus::Completed);

    let second = Uuid::new_v4();
    h.publish_signup(&h.signup(second, &subdomain)).await;
    assert_eq!(h.wait_terminal(second, 30).await, SagaStatus::Rejected);
    let timeline = h.timeline(second, 1).await;
    assert_eq!(timeline.len(), 1, "rejected at once: {timeline:#?}");
    let error = timeline[0].error.as_ref().expect("error");
    assert_eq!(error.code, "subdomain_taken");
    assert!(error.message.contains(&subdomain));
    assert!(journal.lines(second).is_empty());
    assert_eq!(
        mariadb_has(&db_step::database_name(&subdomain)).await,
        (true, true),
        "the first tenant keeps its database"
    );

    // The availability check agrees, and explains the other refusals.
    for (candidate, available, reason) in [
        (subdomain.as_str(), false, Some("taken")),
        ("admin", false, Some("reserved")),
        ("No_Way", false, Some("invalid")),
        ("free-one-of-a-kind", true, None),
    ] {
        let reply: serde_json::Value = h
            .request(
                h.subjects.subdomain_check(),
                &serde_json::json!({ "subdomain": candidate }),
            )
            .await;
        assert_eq!(reply["available"], available, "{reply}");
        assert_eq!(reply["reason"].as_str(), reason, "{reply}");
        assert!(!reply["message"].as_str().unwrap_or_default().is_empty());
    }

    tests::drop_tenant(&db_step::database_name(&subdomain)).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_signups_go_to_the_dead_letter_subject_and_service_goes_on() {
    let mut h = Harness::new().await;
    h.start_orchestrator();
    h.start_steps(&[]);
    h.publish_raw(b"\xff\xfe not json at all".to_vec(), None)
        .await;
    h.publish_raw(
        br#"{"signup_id": 42, "admin_password": "Leaky-Secret-1"}"#.to_vec(),
        None,
    )
    .await;
    let invalid = Uuid::new_v4();
    let mut bad_email = h.signup(invalid, &h.subdomain("bademail"));
    bad_email["admin_email"] = serde_json::json!("not-an-email");
    h.publish_signup(&bad_email).await;
    let valid = Uuid::new_v4();
    let subdomain = h.subdomain("after-garbage");
    h.publish_signup(&h.signup(valid, &subdomain)).await;

    assert_eq!(h.wait_terminal(valid, 30).await, SagaStatus::Completed);
    assert_eq!(h.wait_terminal(invalid, 30).await, SagaStatus::Rejected);
    let rejected = h
        .get(invalid)
        .await
        .saga
        .expect("saga")
        .error
        .expect("error");
    assert_eq!(rejected.code, "invalid_email");
    assert!(rejected.message.contains("not-an-email"));

    let mut stream =
        h.js.get_stream(h.subjects.dead_letter_stream())
            .await
            .expect("dead letters");
    tests::assert_eventually!(
        10,
        "two dead letters",
        stream.info().await.expect("info").state.messages == 2
    );
    let mut letters = Vec::new();
    for seq in 1..=2 {
        let raw = stream.get_raw_message(seq).await.expect("dead letter");
        letters.push(
            serde_json::from_slice::<contracts::signup::DeadLetter>(&raw.payload)
                .expect("DeadLetter"),
        );
    }
    assert!(letters[0].error.contains("not JSON"), "{letters:?}");
    assert!(letters[1].error.contains("signup_id"), "{letters:?}");
    assert!(
        !letters[1].payload.contains("Leaky-Secret-1"),
        "secrets are masked in dead letters"
    );
    assert_eq!(letters[0].payload_bytes, 18);
    assert!(letters[0].payload_sha256.is_some(), "{letters:?}");

    // Operators see them, newest first, without reading the stream themselves.
    let listed: contracts::admin::DeadLettersReply = h
        .request(
            h.subjects.admin_dead_letters(),
            &serde_json::json!({ "limit": 10 }),
        )
        .await;
    assert_eq!(listed.error, None);
    let sequences: Vec<u64> = listed.letters.iter().map(|l| l.sequence).collect();
    assert_eq!(sequences, [2, 1]);
    assert!(listed.letters[0].letter["error"]
        .as_str()
        .is_some_and(|e| e.contains("signup_id")));
    assert!(!serde_json::to_string(&listed)
        .expect("json")
        .contains("Leaky-Secret-1"));

    tests::drop_tenant(&db_step::database_name(&subdomain)).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_saga_replayed_by_an_operator_completes() {
    let mut h = Harness::new().await;
    h.start_orchestrator();
    let failing_once = Behaviour {
        fail_executes: 1,
        permanent: true,
        ..Behaviour::default()
    };
    let journal = h.start_steps(&[("site", failing_once)]);
    let id = Uuid::new_v4();
    let subdomain = h.subdomain("replay");
    h.publish_signup(&h.signup(id, &subdomain)).await;
    assert_eq!(h.wait_terminal(id, 30).await, SagaStatus::RolledBack);

    let listed = h.list(SagaStatus::RolledBack).await;
    assert!(
        listed.sagas.iter().any(|s| s.saga_id == id),
        "operators find the failed saga"
    );

    let reply = h.replay(id).await;
    assert!(reply.accepted, "{reply:?}");
    tests::assert_eventually!(
        30,
        "replayed saga completes",
        h.get(id)
            .await
            .saga
            .is_some_and(|s| s.status == SagaStatus::Completed)
    );
    let saga = h.get(id).await.saga.expect("saga");
    assert_eq!(saga.run, 2);
    assert_eq!(saga.error, None);
    assert_eq!(
        mariadb_has(&db_step::database_name(&subdomain)).await,
        (true, true)
    );
    let second_run: Vec<_> = journal
        .entries()
        .into_iter()
        .filter(|e| e.saga_id == id && e.run == 2 && e.ok)
        .collect();
    assert_eq!(
        second_run.len(),
        3,
        "run 2 executed the scripted steps once each"
    );

    // A completed saga is not replayed.
    let refused = h.replay(id).await;
    assert!(!refused.accepted);
    assert_eq!(refused.error.expect("error").code, "not_replayable");

    tests::drop_tenant(&db_step::database_name(&subdomain)).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_undo_ends_compensation_failed_and_replay_resumes_it() {
    let mut h = Harness::new().await;
    h.start_orchestrator();
    let undo_fails_once = Behaviour {
        fail_compensations: 1,
        ..Behaviour::default()
    };
    h.start_steps(&[
        ("registration", Behaviour::fail()),
        ("admin_user", undo_fails_once),
    ]);
    let id = Uuid::new_v4();
    let subdomain = h.subdomain("undo");
    h.publish_signup(&h.signup(id, &subdomain)).await;
    assert_eq!(
        h.wait_terminal(id, 30).await,
        SagaStatus::CompensationFailed
    );
    // The undo's error, with the failure that started the rollback beside it: in the
    // admin reply (read from the store) and on the saga's last progress event.
    let error = h.get(id).await.saga.expect("saga").error.expect("error");
    assert_eq!(error.step.as_deref(), Some("admin_user"));
    let cause = error.cause.expect("the root cause is kept");
    assert_eq!(cause.step.as_deref(), Some("registration"), "{cause:?}");
    let last = h.timeline(id, 1).await.pop().expect("progress");
    assert_eq!(last.status, SagaStatus::CompensationFailed);
    let published = last.error.expect("error on the progress event");
    assert_eq!(
        published.cause.and_then(|c| c.step),
        Some("registration".to_string())
    );
    assert_eq!(
        mariadb_has(&db_step::database_name(&subdomain)).await,
        (true, true),
        "undo stopped before the database"
    );

    let reply = h.replay(id).await;
    assert!(reply.accepted, "{reply:?}");
    tests::assert_eventually!(
        30,
        "resumed undo finishes",
        h.get(id)
            .await
            .saga
            .is_some_and(|s| s.status == SagaStatus::RolledBack)
    );
    assert_eq!(
        mariadb_has(&db_step::database_name(&subdomain)).await,
        (false, false)
    );
    // The resumed undo ran at once, as a new run: not answered with the failed
    // undo's remembered report, not dropped as a duplicate and left to time out.
    let timeline = h.timeline(id, 2).await;
    let resumed: Vec<_> = timeline
        .iter()
        .skip_while(|e| e.status != SagaStatus::CompensationFailed)
        .skip(1)
        .collect();
    assert!(
        resumed
            .iter()
            .all(|e| e.error.as_ref().is_none_or(|x| x.code != "step_timeout")),
        "{resumed:#?}"
    );
    assert!(
        resumed
            .iter()
            .any(|e| e.step.as_deref() == Some("admin_user")
                && e.step_status == Some(contracts::StepStatus::Compensated)
                && e.attempt == 1),
        "{resumed:#?}"
    );
    h.finish().await;
}
