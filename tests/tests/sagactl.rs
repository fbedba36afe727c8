//! `sagactl` as operators run it, a process against a real orchestrator (its HTTP API
//! and NATS with the deployment's users), the real db-step and scripted steps:
//!
//! - a signup sent over HTTP and watched to its end (rolled back: exit 4), whose site
//!   command site-step gave up on (a dead letter), requeued once the step is back
//!   (sent again, same command), and requeued again doing nothing more;
//! - a signup sent over NATS as the web app (an operator is refused, told to be the
//!   web app), watched over HTTP; its dead letter requeued replays it;
//! - list, show, `--json` over both ways, the same answers; bulk replay's dry run lists
//!   and changes nothing; a replay recorded with who and why, watched to completion;
//!   a signup's dead letter refused (the user signs up again); subdomain checks;
//!   errors that say what to do.

use std::time::Duration;

use contracts::admin::{DeadLetterEntry, DeadLettersReply, GetReply, ListReply, RequeueReply};
use contracts::{SagaStatus, StepAction};
use tests::sagactl::{Sagactl, Way};
use tests::steps::command;
use tests::{Behaviour, Harness, Journal, ScriptedStep};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The id in `signup sent: saga <id>`.
fn saga_of(line: &str) -> Uuid {
    line.rsplit(' ')
        .next()
        .expect("id")
        .parse()
        .expect("a saga id")
}

/// The dead letter of `saga` on `subject`, as `sagactl dead-letters list --json` shows it.
fn letter_of(list: &DeadLettersReply, subject: &str, saga: Uuid) -> DeadLetterEntry {
    list.letters
        .iter()
        .find(|l| l.subject == subject && l.letter["saga_id"] == saga.to_string())
        .unwrap_or_else(|| panic!("no letter of {saga} on {subject}: {list:#?}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_follow_replay_and_requeue_with_sagactl_over_nats_and_http() {
    let mut h = Harness::new().await;
    // Time enough for the operator to requeue before the site attempt times out.
    let api = h.start_api(&[("SAGA_STEP_TIMEOUT_SECS", "60".into())]);
    h.start_db_step();
    let journal = Journal::default();
    h.start_scripted(ScriptedStep::new(
        "admin_user",
        Behaviour::default(),
        journal.clone(),
    ));
    // The first two registrations fail for good: those sagas roll back.
    h.start_scripted(ScriptedStep::new(
        "registration",
        Behaviour {
            fail_executes: 2,
            permanent: true,
            ..Behaviour::default()
        },
        journal.clone(),
    ));
    // A site-step that gives a command up at its first delivery, and works slowly.
    let slow_stop = CancellationToken::new();
    let mut slow_config = h.runtime_config("site");
    slow_config.max_deliver = 1;
    slow_config.shutdown_grace = Duration::from_secs(1);
    let slow = tokio::spawn(step_runtime::run(
        ScriptedStep::new(
            "site",
            Behaviour {
                delay: Duration::from_secs(300),
                ..Behaviour::default()
            },
            journal.clone(),
        ),
        slow_config,
        slow_stop.clone(),
    ));
    h.wait_step_consumer("site").await;
    let ctl = Sagactl::new(&h);
    let (nats, http) = (Way::Nats("operator"), Way::Http(api.clone()));
    tests::http_api::wait_for_role(&reqwest::Client::new(), &api, "leader").await;

    // A signup over HTTP, watched. Site-step is stopped while it works on it: the
    // command is set aside (its last delivery), and the saga waits on the site step.
    let a = h.subdomain("ctl-a");
    let (line, signup_a) = ctl
        .start(
            &http,
            &[
                "signup",
                "--org",
                "Ctl A Org",
                "--email",
                "ann@ctl-a.test",
                "--name",
                "Ann Admin",
                "--subdomain",
                &a,
            ],
            "signup sent: saga ",
        )
        .await;
    let saga_a = saga_of(&line);
    let commands =
        h.js.get_stream(h.subjects.commands_stream())
            .await
            .expect("commands");
    tests::assert_eventually!(
        30,
        "site-step holds the site command",
        commands
            .consumer_info(h.subjects.consumer("step-site"))
            .await
            .is_ok_and(|c| c.num_ack_pending == 1)
    );
    slow_stop.cancel();
    slow.await.expect("join").expect("the slow site-step stops");
    tests::assert_eventually!(
        20,
        "site-step's dead letter",
        !h.step_dead_letters("site").await.is_empty()
    );
    // Site-step is back (mended).
    h.start_scripted(ScriptedStep::new(
        "site",
        Behaviour::default(),
        journal.clone(),
    ));

    // The operator finds the letter, over NATS and over HTTP alike.
    let listed = ctl.run(&nats, &["dead-letters", "list"]).await;
    assert_eq!(listed.code, 0, "{listed:#?}");
    assert!(
        listed.stdout.contains("saga.dead_letter.site"),
        "{listed:#?}"
    );
    assert!(listed.stdout.contains(&saga_a.to_string()), "{listed:#?}");
    let letters: DeadLettersReply = ctl
        .run(&http, &["dead-letters", "list", "--json"])
        .await
        .json();
    let letter_a = letter_of(&letters, "saga.dead_letter.site", saga_a);
    let seq_a = letter_a.sequence.to_string();
    let shown = ctl.run(&nats, &["dead-letters", "show", &seq_a]).await;
    assert_eq!(shown.code, 0, "{shown:#?}");
    assert!(shown.stdout.contains("released on shutdown"), "{shown:#?}");
    let one: DeadLetterEntry = ctl
        .run(&http, &["dead-letters", "show", &seq_a, "--json"])
        .await
        .json();
    assert_eq!(one, letter_a);

    // Requeued: the same site command goes again, the saga goes on (and fails at the
    // registration, whose first attempts are scripted to fail: rolled back).
    let requeued = ctl
        .run(
            &nats,
            &[
                "dead-letters",
                "requeue",
                &seq_a,
                "--reason",
                "site-step restarted",
            ],
        )
        .await;
    assert_eq!(requeued.code, 0, "{requeued:#?}");
    assert!(requeued.stdout.contains("was sent again"), "{requeued:#?}");
    let watched_a = ctl.end(signup_a).await;
    assert_eq!(
        watched_a.code, 4,
        "the signup's watch ends rolled back: {watched_a:#?}"
    );
    assert!(
        watched_a.stdout.contains("rolled back in"),
        "{watched_a:#?}"
    );
    assert!(
        watched_a
            .stdout
            .contains("scripted_failure at registration"),
        "{watched_a:#?}"
    );
    // Requeued again (over HTTP): nothing more happens.
    let again: RequeueReply = ctl
        .run(
            &http,
            &[
                "dead-letters",
                "requeue",
                &seq_a,
                "--reason",
                "twice",
                "--json",
            ],
        )
        .await
        .json();
    assert!(!again.accepted, "{again:#?}");
    assert!(
        again.message.contains("requeued already, by ops-ann"),
        "{again:#?}"
    );
    let site_runs = |saga| {
        journal
            .entries()
            .iter()
            .filter(|e| e.saga_id == saga && e.step == "site" && e.action == StepAction::Execute)
            .count()
    };
    assert_eq!(site_runs(saga_a), 1, "the site command ran once");
    // ... and it was the requeued one, not a retry after the attempt timed out (a copy
    // under the command's own message id would have been dropped by JetStream).
    let site = h
        .get(saga_a)
        .await
        .steps
        .into_iter()
        .find(|s| s.step == "site")
        .expect("site");
    assert_eq!((site.attempts, site.retries), (1, 0), "{site:#?}");
    assert_eq!(
        h.get(saga_a).await.saga.expect("saga").run,
        1,
        "not replayed by the second requeue"
    );

    // Watched after its end (NATS: history by direct gets): the end, exit 4.
    let rewatched = ctl.run(&nats, &["watch", &a]).await;
    assert_eq!(rewatched.code, 4, "{rewatched:#?}");
    assert!(
        rewatched.stdout.contains("Requeued by ops-ann"),
        "{rewatched:#?}"
    );

    // A signup over NATS: an operator may not publish one and is told whom to be...
    let b = h.subdomain("ctl-b");
    let signup_b = [
        "signup",
        "--org",
        "Ctl B Org",
        "--email",
        "bo@ctl-b.test",
        "--name",
        "Bo Admin",
        "--subdomain",
        &b,
        "--no-watch",
    ];
    let refused = ctl.run(&nats, &signup_b).await;
    assert_eq!(refused.code, 3, "{refused:#?}");
    assert!(refused.stderr.contains("web-app"), "{refused:#?}");
    // ... the web app's user may; watched over HTTP (SSE): rolled back too.
    let sent = ctl.run(&Way::Nats("web-app"), &signup_b).await;
    assert_eq!(sent.code, 0, "{sent:#?}");
    let saga_b: Uuid = sent.stdout.trim().parse().expect("the saga id");
    let watched_b = ctl.run(&http, &["watch", &saga_b.to_string()]).await;
    assert_eq!(watched_b.code, 4, "{watched_b:#?}");
    // A command of it that reached the wrong step service, set aside there.
    let stray = command(saga_b, "site", StepAction::Execute, 1, &b);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "stray-1");
    h.js.publish_with_headers(
        h.subjects.step_command("admin_user"),
        headers,
        serde_json::to_vec(&stray).expect("json").into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stored");
    tests::assert_eventually!(
        20,
        "user-step's dead letter",
        !h.step_dead_letters("admin_user").await.is_empty()
    );

    // Lists: the same over both ways; a table by default.
    let table = ctl.run(&nats, &["list", "--status", "rolled_back"]).await;
    assert_eq!(table.code, 0, "{table:#?}");
    assert!(
        table.stdout.contains(&a) && table.stdout.contains(&b),
        "{table:#?}"
    );
    let by_nats: ListReply = ctl
        .run(&nats, &["list", "--status", "rolled_back", "--json"])
        .await
        .json();
    let by_http: ListReply = ctl
        .run(&http, &["list", "--status", "rolled_back", "--json"])
        .await
        .json();
    assert_eq!(by_nats.sagas, by_http.sagas);
    assert_eq!(by_nats.sagas.len(), 2, "{by_nats:#?}");
    let paged: ListReply = ctl
        .run(&http, &["list", "--limit", "1", "--all", "--json"])
        .await
        .json();
    assert_eq!(paged.sagas.len(), 2, "every page: {paged:#?}");
    let first_page = ctl.run(&nats, &["list", "--limit", "1"]).await;
    assert!(
        first_page.stdout.contains("more: add --cursor"),
        "{first_page:#?}"
    );

    // Bulk replay, dry run: lists both, changes nothing.
    let dry = ctl
        .run(
            &http,
            &[
                "replay",
                "--bulk",
                "--error-code",
                "scripted_failure",
                "--since",
                "1h",
                "--dry-run",
            ],
        )
        .await;
    assert_eq!(dry.code, 0, "{dry:#?}");
    assert!(dry.stdout.contains("would replay 2 saga(s)"), "{dry:#?}");
    assert!(
        dry.stdout.contains(&a) && dry.stdout.contains(&b),
        "{dry:#?}"
    );
    for saga in [saga_a, saga_b] {
        let now = h.get(saga).await.saga.expect("saga");
        assert_eq!(
            (now.status, now.run),
            (SagaStatus::RolledBack, 1),
            "the dry run changed {saga}"
        );
    }

    // A replayed by alice over NATS, watched over HTTP to completion (exit 0); who
    // and why are in its timeline.
    let replayed = ctl
        .run(
            &nats,
            &[
                "replay",
                &a,
                "--reason",
                "registry fixed",
                "--operator",
                "alice",
            ],
        )
        .await;
    assert_eq!(replayed.code, 0, "{replayed:#?}");
    let done_a = ctl.run(&http, &["watch", &a]).await;
    assert_eq!(done_a.code, 0, "{done_a:#?}");
    assert!(done_a.stdout.contains("completed in"), "{done_a:#?}");
    let shown = ctl.run(&nats, &["show", &a]).await;
    assert_eq!(shown.code, 0, "{shown:#?}");
    for expected in [
        "completed (run 2)",
        "Replayed by alice: registry fixed",
        "replay by alice: registry fixed",
        &format!("requeue by ops-ann of dead letter {seq_a}: site-step restarted"),
    ] {
        assert!(
            shown.stdout.contains(expected),
            "{expected:?} missing: {shown:#?}"
        );
    }
    let detail: GetReply = ctl
        .run(&http, &["show", &saga_a.to_string(), "--json"])
        .await
        .json();
    let by_nats: GetReply = ctl.run(&nats, &["show", &a, "--json"]).await.json();
    assert_eq!(detail.timeline, by_nats.timeline);
    assert_eq!(detail.operator_actions.len(), 2, "{detail:#?}");
    assert_eq!(detail.steps.len(), 4, "{detail:#?}");

    // B's stray command's letter requeued (over HTTP): B ended rolled back, so it is
    // replayed; watched over NATS to completion.
    let letters: DeadLettersReply = ctl
        .run(&nats, &["dead-letters", "list", "--json"])
        .await
        .json();
    let seq_b = letter_of(&letters, "saga.dead_letter.admin_user", saga_b)
        .sequence
        .to_string();
    let requeued_b = ctl
        .run(
            &http,
            &[
                "dead-letters",
                "requeue",
                &seq_b,
                "--reason",
                "registry fixed",
                "--operator",
                "bob",
            ],
        )
        .await;
    assert_eq!(requeued_b.code, 0, "{requeued_b:#?}");
    assert!(requeued_b.stdout.contains("replayed"), "{requeued_b:#?}");
    let done_b = ctl.run(&nats, &["watch", &b]).await;
    assert_eq!(done_b.code, 0, "{done_b:#?}");
    let actions = h.get(saga_b).await.operator_actions;
    assert_eq!(actions.len(), 1, "{actions:#?}");
    assert_eq!(
        (actions[0].operator.as_str(), actions[0].dead_letter),
        ("bob", Some(seq_b.parse().expect("seq")))
    );

    // A signup's dead letter cannot be requeued: the user signs up again.
    h.publish_raw(br#"{"organization_name": "#.to_vec(), None)
        .await;
    let letters: DeadLettersReply = ctl
        .run(&http, &["dead-letters", "list", "--json"])
        .await
        .json();
    let signup_letter = letters
        .letters
        .iter()
        .find(|l| l.subject == "tenant.signup.dead_letter")
        .expect("the signup's dead letter")
        .sequence
        .to_string();
    let refused = ctl
        .run(
            &nats,
            &["dead-letters", "requeue", &signup_letter, "--reason", "try"],
        )
        .await;
    assert_eq!(refused.code, 1, "{refused:#?}");
    assert!(
        refused.stderr.contains("must sign up again"),
        "{refused:#?}"
    );

    // Subdomains.
    let taken = ctl.run(&nats, &["check", &a]).await;
    assert_eq!(taken.code, 1, "{taken:#?}");
    assert!(taken.stdout.contains("already taken"), "{taken:#?}");
    let free = ctl.run(&http, &["check", &h.subdomain("ctl-free")]).await;
    assert_eq!(free.code, 0, "{free:#?}");
    let reserved = ctl.run(&http, &["check", "www", "--json"]).await;
    assert_eq!(reserved.code, 1, "{reserved:#?}");
    assert!(reserved.stdout.contains("\"reserved\""), "{reserved:#?}");

    // Errors say what to do.
    let unknown = ctl.run(&nats, &["show", "no-such-subdomain"]).await;
    assert_eq!(unknown.code, 1, "{unknown:#?}");
    assert!(unknown.stderr.contains("sagactl list"), "{unknown:#?}");
    let wrong_token = ctl
        .run_with(
            &http,
            &[
                ("PROVISIONING_READ_TOKEN", "not-the-read-token-0123"),
                ("PROVISIONING_API_SECRET", ""),
            ],
            &["list"],
        )
        .await;
    assert_eq!(wrong_token.code, 3, "{wrong_token:#?}");
    assert!(
        wrong_token.stderr.contains("set PROVISIONING_READ_TOKEN"),
        "{wrong_token:#?}"
    );
    let down = ctl
        .run(&nats, &["list", "--nats-url", "nats://127.0.0.1:1"])
        .await;
    assert_eq!(down.code, 3, "{down:#?}");
    assert!(down.stderr.contains("is NATS running there"), "{down:#?}");
    let bad = ctl.run(&nats, &["list", "--since", "yesterday"]).await;
    assert_eq!(bad.code, 2, "{bad:#?}");
    let ages_ago = ctl
        .run(&nats, &["list", "--since", "99999999999999d"])
        .await;
    assert_eq!(
        ages_ago.code, 2,
        "a usage error, not a panic: {ages_ago:#?}"
    );
    assert!(ages_ago.stderr.contains("too long ago"), "{ages_ago:#?}");

    // Secrets are never arguments: the flags are gone, a NATS URL holding a password
    // is refused (and not repeated); the token is read from a file instead.
    let flag = ctl
        .run(
            &http,
            &["list", "--read-token", tests::http_api::READ_TOKEN],
        )
        .await;
    assert_eq!(flag.code, 2, "{flag:#?}");
    let in_url = ctl
        .run(
            &nats,
            &[
                "list",
                "--nats-url",
                "nats://operator:hunter2@127.0.0.1:4222",
            ],
        )
        .await;
    assert_eq!(in_url.code, 2, "{in_url:#?}");
    assert!(in_url.stderr.contains("NATS_PASSWORD"), "{in_url:#?}");
    assert!(!in_url.stderr.contains("hunter2"), "{in_url:#?}");
    let token_file = h.logs.join("read-token");
    std::fs::write(&token_file, format!("{}\n", tests::http_api::READ_TOKEN)).expect("write");
    let from_file = ctl
        .run_with(
            &http,
            &[
                ("PROVISIONING_READ_TOKEN", ""),
                ("PROVISIONING_API_SECRET", ""),
            ],
            &[
                "list",
                "--read-token-file",
                token_file.to_str().expect("path"),
                "--limit",
                "1",
            ],
        )
        .await;
    assert_eq!(from_file.code, 0, "{from_file:#?}");
    std::fs::remove_file(&token_file).expect("remove the token file");

    // A bulk replay with no filter is refused unless --all says so.
    let unfiltered = ctl
        .run(&http, &["replay", "--bulk", "--reason", "everything"])
        .await;
    assert_eq!(unfiltered.code, 2, "{unfiltered:#?}");
    assert!(unfiltered.stderr.contains("--all"), "{unfiltered:#?}");
    let everything = ctl
        .run(&http, &["replay", "--bulk", "--all", "--dry-run", "--json"])
        .await;
    assert_eq!(everything.code, 0, "{everything:#?}");

    // No orchestrator: said so, and where it was looked for.
    h.stop_services().await;
    let alone = ctl.run(&nats, &["list"]).await;
    assert_eq!(alone.code, 3, "{alone:#?}");
    assert!(alone.stderr.contains("is it running?"), "{alone:#?}");

    for subdomain in [&a, &b] {
        tests::drop_tenant(&db_step::database_name(subdomain)).await;
    }
    h.finish().await;
}
