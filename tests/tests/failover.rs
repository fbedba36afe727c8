//! Two orchestrators on one shared MariaDB store: one leads, the other stands by and
//! answers reads; when the leader is SIGKILLed the standby takes over, and when the
//! leader is frozen past its lease and then thawed, it finds itself deposed and stands
//! down. Either way every saga completes once: each step ran once per saga, and each
//! timeline is whole, in order, and ends once. The orchestrators run as processes;
//! the steps run in the test process (they are not the ones being killed).

use std::time::Duration;

use contracts::{ProgressEvent, SagaStatus};
use futures::StreamExt;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tests::{assert_eventually, Behaviour, Harness, Journal, Service};
use uuid::Uuid;

/// A MariaDB store of its own for this test (created by the orchestrator, which
/// creates a missing database), dropped when the test ends.
struct SharedStore {
    database: String,
}

impl SharedStore {
    fn new(h: &Harness) -> Self {
        Self {
            database: format!("saga_failover_{}", h.suffix),
        }
    }

    fn url(&self) -> String {
        format!("{}/{}", tests::mysql_url(), self.database)
    }

    async fn drop(self) {
        let pool = tests::admin_pool().await;
        sqlx::query(&format!("DROP DATABASE IF EXISTS `{}`", self.database))
            .execute(&pool)
            .await
            .expect("drop the test's store");
    }
}

fn orchestrator(h: &Harness, store: &SharedStore, tag: &str, lease_ms: u64) -> Service {
    h.spawn_service(
        "orchestrator",
        tag,
        &[
            ("SAGA_STORE_URL", store.url()),
            ("LEADER_LEASE_MS", lease_ms.to_string()),
        ],
    )
}

fn log_of(service: &Service) -> String {
    std::fs::read_to_string(&service.log).unwrap_or_default()
}

fn signal(service: &Service, signal: Signal) {
    kill(Pid::from_raw(service.id() as i32), signal).expect("signal the orchestrator");
}

/// Starts `first` and waits until it leads, then `second` and waits until it stands by.
async fn leader_and_standby(h: &Harness, store: &SharedStore, lease_ms: u64) -> (Service, Service) {
    let first = orchestrator(h, store, "first", lease_ms);
    assert_eventually!(
        30,
        "the first orchestrator leads",
        log_of(&first).contains("leading sagas")
    );
    let second = orchestrator(h, store, "second", lease_ms);
    assert_eventually!(
        30,
        "the second orchestrator stands by",
        log_of(&second).contains("standing by")
    );
    (first, second)
}

/// The steps, each taking a while, so sagas are mid-way when the leader goes.
fn slow_steps(h: &mut Harness) -> Journal {
    let slow = Behaviour {
        delay: Duration::from_millis(400),
        ..Behaviour::default()
    };
    h.start_steps(&[
        ("site", slow.clone()),
        ("admin_user", slow.clone()),
        ("registration", slow),
    ])
}

/// Publishes `n` signups a little apart; returns their saga ids and subdomains.
async fn signups(h: &Harness, name: &str, n: usize) -> Vec<(Uuid, String)> {
    let mut sagas = Vec::new();
    for i in 0..n {
        let (id, subdomain) = (Uuid::new_v4(), h.subdomain(&format!("{name}{i}")));
        h.publish_signup(&h.signup(id, &subdomain)).await;
        sagas.push((id, subdomain));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    sagas
}

/// Every saga completed; each scripted step ran once for it, on its first attempt;
/// its timeline is whole and ends once.
async fn assert_completed_once(h: &Harness, journal: &Journal, sagas: &[(Uuid, String)]) {
    for (id, subdomain) in sagas {
        assert_eq!(
            h.wait_terminal(*id, 90).await,
            SagaStatus::Completed,
            "{subdomain}"
        );
        let steps: Vec<String> = journal
            .entries()
            .into_iter()
            .filter(|e| e.saga_id == *id)
            .map(|e| e.step)
            .collect();
        assert_eq!(steps, ["site", "admin_user", "registration"], "{subdomain}");
        let timeline = h.timeline(*id, 1).await;
        let sequences: Vec<u64> = timeline.iter().map(|e| e.sequence).collect();
        assert_eq!(
            sequences,
            (1..=timeline.len() as u64).collect::<Vec<_>>(),
            "{subdomain}"
        );
        let ends = timeline.iter().filter(|e| e.status.is_terminal()).count();
        assert_eq!(ends, 1, "{subdomain}: {timeline:#?}");
    }
}

async fn clean_up(h: Harness, store: SharedStore, sagas: &[(Uuid, String)]) {
    for (_, subdomain) in sagas {
        tests::drop_tenant(&db_step::database_name(subdomain)).await;
    }
    store.drop().await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_when_the_leader_is_killed() {
    let mut h = Harness::new().await;
    let store = SharedStore::new(&h);
    let journal = slow_steps(&mut h);
    let (mut first, second) = leader_and_standby(&h, &store, 3000).await;

    // Every progress event as it is published, to see when driving resumes.
    let mut progress = h
        .client
        .subscribe(h.subjects.progress_all())
        .await
        .expect("subscribe to progress");
    let sagas = signups(&h, "failover", 6).await;

    // The standby answers reads on its own: with the leader frozen (within its
    // lease, so nothing else changes), a read still comes back.
    let (id, _) = sagas[0];
    signal(&first, Signal::SIGSTOP);
    let read = h.get(id).await;
    signal(&first, Signal::SIGCONT);
    assert!(read.saga.is_some(), "the standby answered: {read:?}");

    first.kill().expect("SIGKILL the leader");
    first.wait().expect("reaped");
    let killed = chrono::Utc::now();
    // The first transition made after the kill (events are stamped when their
    // transition is made; the dead leader's are all older, some still in the buffer).
    let mut failover = None;
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_secs(30), progress.next()).await
    {
        let event: ProgressEvent = serde_json::from_slice(&message.payload).expect("event");
        if event.at > killed && sagas.iter().any(|(id, _)| *id == event.saga_id) {
            failover = (event.at - killed).to_std().ok();
            break;
        }
    }
    let failover = failover.expect("a saga moves on after the leader was killed");
    println!(
        "failover: the next saga step was driven {} ms after the leader was SIGKILLed (lease 3000 ms)",
        failover.as_millis()
    );
    assert!(
        log_of(&second).contains("leading sagas"),
        "the standby took the lead"
    );

    assert_completed_once(&h, &journal, &sagas).await;
    drop(second);
    clean_up(h, store, &sagas).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_frozen_past_its_lease_is_deposed_and_stands_down() {
    let mut h = Harness::new().await;
    let store = SharedStore::new(&h);
    let journal = slow_steps(&mut h);
    let (first, second) = leader_and_standby(&h, &store, 1000).await;
    let sagas = signups(&h, "deposed", 4).await;

    // Frozen mid-saga (as a long pause or a partition would): it cannot renew, the
    // standby takes the lead; thawed, the old leader still believes it leads until
    // the store refuses it.
    signal(&first, Signal::SIGSTOP);
    assert_eventually!(
        30,
        "the standby takes the lead",
        log_of(&second).contains("leading sagas")
    );
    let more = signups(&h, "after", 2).await;
    signal(&first, Signal::SIGCONT);
    assert_eventually!(
        30,
        "the thawed leader stands down",
        log_of(&first).contains("standing by")
    );

    let all: Vec<_> = sagas.into_iter().chain(more).collect();
    assert_completed_once(&h, &journal, &all).await;
    drop(first);
    drop(second);
    clean_up(h, store, &all).await;
}
