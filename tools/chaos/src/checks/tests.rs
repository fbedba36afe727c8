//! The checks catch what they are for: each test plants one wrong thing in an
//! otherwise clean observation.

use rand::SeedableRng;

use super::*;
use crate::observe::{LedgerRow, SagaEnd, SiteFolder, StandbyRow};

const PARENT: &str = "chaos.test";

/// Two signups, the first completed with all four effects, the second rolled back and
/// clean.
fn clean() -> (Vec<Signup>, Observed) {
    let signups = crate::faults::plan(&mut rand::rngs::StdRng::seed_from_u64(3), 2, "t", 0);
    let done = &signups[0];
    let mut observed = Observed::default();
    for (s, st) in signups
        .iter()
        .zip([SagaStatus::Completed, SagaStatus::RolledBack])
    {
        observed.sagas.insert(
            s.id,
            SagaEnd {
                status: Some(st),
                sealed_api_secret: None,
            },
        );
        observed
            .mariadb
            .insert(db_step::database_name(&s.subdomain), (false, false));
    }
    let db = db_step::database_name(&done.subdomain);
    observed.mariadb.insert(db.clone(), (true, true));
    observed.ledger.push(LedgerRow {
        db_name: db,
        saga_id: done.id.to_string(),
        sealed_password: None,
    });
    observed.sites.push(SiteFolder {
        name: done.site(PARENT),
        marker: Some(done.id.to_string()),
        users: vec![(done.admin_email(), true)],
        ..Default::default()
    });
    observed
        .master
        .insert(done.subdomain.clone(), done.id.to_string());
    (signups, observed)
}

fn failed(signups: &[Signup], observed: &Observed) -> Vec<&'static str> {
    all(signups, PARENT, observed, &Figures::default(), Vec::new())
        .into_iter()
        .filter(|c| !c.ok() && c.name != "coverage")
        .map(|c| c.name)
        .collect()
}

#[test]
fn a_clean_run_passes() {
    let (signups, observed) = clean();
    assert_eq!(failed(&signups, &observed), Vec::<&str>::new());
}

#[test]
fn a_saga_still_running_fails() {
    let (signups, mut observed) = clean();
    observed.sagas.get_mut(&signups[1].id).expect("saga").status = Some(SagaStatus::Compensating);
    assert_eq!(failed(&signups, &observed), ["terminal"]);
}

#[test]
fn a_completed_saga_without_its_master_record_fails() {
    let (signups, mut observed) = clean();
    observed.master.clear();
    assert_eq!(failed(&signups, &observed), ["completed"]);
}

#[test]
fn a_database_left_by_a_rollback_fails() {
    let (signups, mut observed) = clean();
    observed
        .mariadb
        .insert(db_step::database_name(&signups[1].subdomain), (true, false));
    assert_eq!(failed(&signups, &observed), ["undone", "orphans"]);
}

#[test]
fn a_stray_folder_record_or_process_is_an_orphan() {
    let (signups, mut observed) = clean();
    observed.sites.push(SiteFolder {
        name: "stray.chaos.test".into(),
        ..Default::default()
    });
    observed.master.insert("stray".into(), "nobody".into());
    observed.bench_processes.push("42 bench-emulator".into());
    let orphans = &all(&signups, PARENT, &observed, &Figures::default(), Vec::new())[4];
    assert_eq!(orphans.name, "orphans");
    assert_eq!(orphans.failures.len(), 3, "{:?}", orphans.failures);
}

#[test]
fn a_fault_at_every_attempt_must_not_complete() {
    let (mut signups, observed) = clean();
    signups[0].fault = Some(crate::faults::Fault::NewSite);
    assert_eq!(failed(&signups, &observed), ["faults"]);
    signups[0].fault = Some(crate::faults::Fault::MasterUnavailable);
    assert_eq!(failed(&signups, &observed), Vec::<&str>::new());
}

#[test]
fn new_site_twice_is_caught_unless_archived_between() {
    let log = "2026-01-02 10:00:00,100 INFO bench new-site a.chaos.test --no-setup-db\n\
               2026-01-02 10:00:01,000 INFO bench --site a.chaos.test install-app erpnext\n\
               2026-01-02 10:00:05,100 INFO bench new-site a.chaos.test --no-setup-db\n\
               2026-01-02 10:00:06,100 INFO bench new-site b.chaos.test --no-setup-db\n";
    let found = new_site_twice(log, &[]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("a.chaos.test"));
    let at = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").expect("time");
    let between = [("a.chaos.test".to_string(), at("2026-01-02 10:00:03"))];
    assert_eq!(new_site_twice(log, &between), Vec::<String>::new());
    let after = [("a.chaos.test".to_string(), at("2026-01-02 10:00:09"))];
    assert_eq!(new_site_twice(log, &after).len(), 1);
}

#[test]
fn coverage_needs_undo_and_leader_kills() {
    let (signups, observed) = clean();
    let mut figures = Figures {
        orchestrator_kills_in_flight: 1,
        leader_seen: true,
        ..Default::default()
    };
    let coverage = |f: &Figures| {
        all(&signups, PARENT, &observed, f, Vec::new())[9]
            .failures
            .len()
    };
    assert_eq!(coverage(&figures), 2);
    figures.kills_in_undo = 1;
    figures.leader_kills = 1;
    assert_eq!(coverage(&figures), 0);
}

#[test]
fn a_run_where_nothing_completed_or_a_saga_was_rejected_fails() {
    let (signups, mut observed) = clean();
    observed.sagas.get_mut(&signups[1].id).expect("saga").status = Some(SagaStatus::Rejected);
    assert!(failed(&signups, &observed).contains(&"terminal"));

    let (signups, mut observed) = clean();
    observed.sagas.get_mut(&signups[0].id).expect("saga").status = Some(SagaStatus::RolledBack);
    assert!(failed(&signups, &observed).contains(&"terminal"));
}

/// [`clean`] where the completed signup took a standby over (its database keeps the
/// standby's name, the row is used up), with a second standby ready in the pool.
fn with_standbys() -> (Vec<Signup>, Observed) {
    let (signups, mut observed) = clean();
    let done = &signups[0];
    let used = StandbyRow {
        id: uuid::Uuid::from_u128(1).to_string(),
        site_name: "sb-00000001.chaos.test".into(),
        db_name: db_step::database_name("sb-00000001"),
        state: "gone".into(),
        claimed_by: Some(done.id.to_string()),
    };
    let own = db_step::database_name(&done.subdomain);
    observed.mariadb.insert(own.clone(), (false, false));
    observed.mariadb.insert(used.db_name.clone(), (true, true));
    observed.ledger[0].db_name = used.db_name.clone();
    let ready = StandbyRow {
        id: uuid::Uuid::from_u128(2).to_string(),
        site_name: "sb-00000002.chaos.test".into(),
        db_name: db_step::database_name("sb-00000002"),
        state: "ready".into(),
        claimed_by: None,
    };
    observed.mariadb.insert(ready.db_name.clone(), (true, true));
    observed.ledger.push(LedgerRow {
        db_name: ready.db_name.clone(),
        saga_id: ready.id.clone(),
        sealed_password: None,
    });
    observed.sites.push(SiteFolder {
        name: ready.site_name.clone(),
        marker: Some(ready.id.clone()),
        ..Default::default()
    });
    observed.standbys = vec![used, ready];
    (signups, observed)
}

#[test]
fn a_standby_taken_over_and_one_ready_are_owned() {
    let (signups, observed) = with_standbys();
    assert_eq!(failed(&signups, &observed), Vec::<&str>::new());
    assert_eq!(took_a_standby(&signups, &observed), 1);
}

#[test]
fn a_gone_standbys_leftovers_are_orphans() {
    let (signups, mut observed) = with_standbys();
    observed.standbys[1].state = "gone".into();
    let orphans = &all(&signups, PARENT, &observed, &Figures::default(), Vec::new())[4];
    // Its ledger row, its database and its folder.
    assert_eq!(orphans.failures.len(), 3, "{:?}", orphans.failures);
}

#[test]
fn a_signup_with_its_own_database_besides_the_standbys_fails() {
    let (signups, mut observed) = with_standbys();
    let own = db_step::database_name(&signups[0].subdomain);
    observed.mariadb.insert(own.clone(), (true, true));
    observed.ledger.push(LedgerRow {
        db_name: own,
        saga_id: signups[0].id.to_string(),
        sealed_password: None,
    });
    assert_eq!(failed(&signups, &observed), ["completed", "orphans"]);
}

#[test]
fn a_standby_left_claimed_or_discarding_fails() {
    let (signups, mut observed) = with_standbys();
    observed.standbys[0].state = "claimed".into();
    assert_eq!(failed(&signups, &observed), ["standbys"]);
    let (signups, mut observed) = with_standbys();
    observed.standbys[1].state = "discarding".into();
    assert_eq!(failed(&signups, &observed), ["standbys"]);
}

#[test]
fn coverage_with_a_pool_needs_a_signup_that_claimed_a_standby() {
    let figures = Figures {
        orchestrator_kills_in_flight: 1,
        kills_in_undo: 1,
        ..Default::default()
    };
    let coverage = |signups: &[Signup], observed: &Observed| {
        all(signups, PARENT, observed, &figures, Vec::new())[9]
            .failures
            .len()
    };
    let (signups, mut observed) = with_standbys();
    assert_eq!(coverage(&signups, &observed), 0);
    observed.standbys[0].claimed_by = None;
    assert_eq!(coverage(&signups, &observed), 1);
}

#[test]
fn a_build_fault_does_not_count_for_a_signup_that_took_a_standby() {
    let (mut signups, observed) = with_standbys();
    signups[0].fault = Some(crate::faults::Fault::NewSite);
    assert_eq!(failed(&signups, &observed), Vec::<&str>::new());
    signups[0].fault = Some(crate::faults::Fault::AddSystemManager);
    assert_eq!(failed(&signups, &observed), ["faults"]);
}
