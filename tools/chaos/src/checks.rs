//! The end checks, as pure functions of what was observed: each returns what it found
//! wrong, one line per finding (names and ids, never a secret).

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use contracts::SagaStatus;

use crate::faults::Signup;
use crate::kills::Figures;
use crate::observe::{Observed, StandbyRow};

/// One check and what it found wrong (nothing: it holds).
pub struct Check {
    /// Short name, as the last line lists failed ones.
    pub name: &'static str,
    /// What it asserts, in words.
    pub what: &'static str,
    /// What it found wrong.
    pub failures: Vec<String>,
}

impl Check {
    /// Whether it holds.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

fn status(observed: &Observed, s: &Signup) -> Option<SagaStatus> {
    observed.sagas.get(&s.id).and_then(|e| e.status)
}

/// Every check, in the order they are printed.
pub fn all(
    signups: &[Signup],
    parent: &str,
    observed: &Observed,
    figures: &Figures,
    leaks: Vec<String>,
) -> Vec<Check> {
    vec![
        Check {
            name: "terminal",
            what: "every saga ended, none rejected (every subdomain is new), some completed",
            failures: terminal(signups, observed),
        },
        Check {
            name: "completed",
            what: "a completed saga has its database (its own or the standby's it took), site folder with marker, admin user and Master record, once each",
            failures: completed(signups, parent, observed),
        },
        Check {
            name: "undone",
            what: "a rolled_back (or rejected) saga left none of them",
            failures: undone(signups, parent, observed),
        },
        Check {
            name: "undo-finished",
            what: "no saga ended compensation_failed",
            failures: signups
                .iter()
                .filter(|s| status(observed, s) == Some(SagaStatus::CompensationFailed))
                .map(|s| format!("{} ({}) ended compensation_failed", s.subdomain, s.id))
                .collect(),
        },
        Check {
            name: "orphans",
            what: "no database, user, ledger row, site folder, claim, Master record or bench process that no saga owns (a standby not gone owns its own)",
            failures: orphans(signups, parent, observed),
        },
        Check {
            name: "standbys",
            what: "a standby a signup took is used up (gone), one whose signup rolled back or went the usual way is discarded (gone); none left claimed or discarding",
            failures: standbys(signups, observed),
        },
        Check {
            name: "new-site-once",
            what: "no new-site run twice for one site, except after an archive of it",
            failures: new_site_twice(&observed.bench_log, &archives(signups, parent, observed)),
        },
        Check {
            name: "faults",
            what: "a signup whose step fails at every attempt did not complete (a fault in building the site does not count for one that took a standby over)",
            failures: signups
                .iter()
                .filter(|s| s.fault.is_some_and(|f| f.fails_every_attempt()))
                .filter(|s| !(s.fault.is_some_and(|f| f.in_the_build()) && taken(observed, s).is_some()))
                .filter(|s| status(observed, s) == Some(SagaStatus::Completed))
                .map(|s| {
                    let fault = s.fault.map(|f| f.name()).unwrap_or_default();
                    format!("{} completed despite its {fault} fault", s.subdomain)
                })
                .collect(),
        },
        Check {
            name: "secrets",
            what: "no secret in any service log (bench's own logs/bench.log excluded: Frappe logs command lines)",
            failures: leaks,
        },
        Check {
            name: "coverage",
            what: "kills hit orchestrators with sagas in flight, undos, and the leader when one is known; with a pool, signups claimed standbys",
            failures: coverage(signups, observed, figures),
        },
    ]
}

fn terminal(signups: &[Signup], observed: &Observed) -> Vec<String> {
    let mut wrong: Vec<String> = signups
        .iter()
        .filter_map(|s| match status(observed, s) {
            None => Some(format!("{} ({}): no saga known", s.subdomain, s.id)),
            Some(st) if !st.is_terminal() => {
                Some(format!("{} ({}): still {}", s.subdomain, s.id, st.as_str()))
            }
            // Every subdomain of a run is new and no fault is a refusal at intake: a
            // rejection means the run checked nothing of that saga's effects.
            Some(SagaStatus::Rejected) => Some(format!("{} ({}): rejected", s.subdomain, s.id)),
            Some(_) => None,
        })
        .collect();
    let completed = signups
        .iter()
        .filter(|s| status(observed, s) == Some(SagaStatus::Completed))
        .count();
    if !signups.is_empty() && completed == 0 {
        wrong.push("no saga completed: the effects of a completed saga were never checked".into());
    }
    wrong
}

/// The standby signup `s` took over: the one it claimed whose database the ledger now
/// gives to `s`.
fn taken<'o>(observed: &'o Observed, s: &Signup) -> Option<&'o StandbyRow> {
    let id = s.id.to_string();
    observed.standbys.iter().find(|r| {
        r.claimed_by.as_deref() == Some(id.as_str())
            && observed
                .ledger
                .iter()
                .any(|l| l.saga_id == id && l.db_name == r.database())
    })
}

/// The database signup `s` owns: its standby's, when it took one, else its own name's.
fn database_of(observed: &Observed, s: &Signup) -> String {
    taken(observed, s).map_or_else(
        || db_step::database_name(&s.subdomain),
        StandbyRow::database,
    )
}

fn completed(signups: &[Signup], parent: &str, observed: &Observed) -> Vec<String> {
    let mut wrong = Vec::new();
    for s in signups
        .iter()
        .filter(|s| status(observed, s) == Some(SagaStatus::Completed))
    {
        let id = s.id.to_string();
        let db = database_of(observed, s);
        let rows: Vec<_> = observed.ledger.iter().filter(|r| r.db_name == db).collect();
        if rows.len() != 1 || rows[0].saga_id != id {
            wrong.push(format!(
                "{}: ledger rows for {db}: {}",
                s.subdomain,
                rows.len()
            ));
        }
        let held = observed.ledger.iter().filter(|r| r.saga_id == id).count();
        if held != 1 {
            wrong.push(format!(
                "{}: the ledger gives {held} databases to this saga",
                s.subdomain
            ));
        }
        if observed.mariadb.get(&db) != Some(&(true, true)) {
            wrong.push(format!("{}: database or user {db} missing", s.subdomain));
        }
        let site = s.site(parent);
        match observed.sites.iter().find(|f| f.name == site) {
            None => wrong.push(format!("{}: no site folder {site}", s.subdomain)),
            Some(folder) => {
                if folder.marker.as_deref() != Some(id.as_str()) {
                    wrong.push(format!("{}: {site} lacks its saga's marker", s.subdomain));
                }
                if folder.users != [(s.admin_email(), true)] {
                    let users: Vec<&str> = folder.users.iter().map(|(e, _)| e.as_str()).collect();
                    wrong.push(format!(
                        "{}: users of {site} are {users:?}, not one enabled {}",
                        s.subdomain,
                        s.admin_email()
                    ));
                }
            }
        }
        if observed.master.get(&s.subdomain) != Some(&id) {
            wrong.push(format!("{}: no Master record of this saga", s.subdomain));
        }
    }
    wrong
}

fn undone(signups: &[Signup], parent: &str, observed: &Observed) -> Vec<String> {
    let mut wrong = Vec::new();
    for s in signups.iter().filter(|s| {
        matches!(
            status(observed, s),
            Some(SagaStatus::RolledBack | SagaStatus::Rejected)
        )
    }) {
        let db = db_step::database_name(&s.subdomain);
        if observed.ledger.iter().any(|r| r.db_name == db) {
            wrong.push(format!("{}: ledger row {db} left", s.subdomain));
        }
        if let Some((db_left, user_left)) = observed.mariadb.get(&db).filter(|f| f.0 || f.1) {
            wrong.push(format!(
                "{}: {db} left (database {db_left}, user {user_left})",
                s.subdomain
            ));
        }
        let site = s.site(parent);
        if observed.sites.iter().any(|f| f.name == site) {
            wrong.push(format!("{}: site folder {site} left", s.subdomain));
        }
        if observed
            .claims
            .iter()
            .any(|c| c.starts_with(&format!("{site}/")))
        {
            wrong.push(format!("{}: claim on {site} left", s.subdomain));
        }
        if observed.master.contains_key(&s.subdomain) {
            wrong.push(format!("{}: Master record left", s.subdomain));
        }
    }
    wrong
}

fn orphans(signups: &[Signup], parent: &str, observed: &Observed) -> Vec<String> {
    // A saga whose undo could not finish still owns what it made (an operator replays
    // it); `undo-finished` reports it.
    let completed: HashMap<String, &Signup> = signups
        .iter()
        .filter(|s| {
            matches!(
                status(observed, s),
                Some(SagaStatus::Completed | SagaStatus::CompensationFailed)
            )
        })
        .map(|s| (s.id.to_string(), s))
        .collect();
    // A standby not gone still holds what its build made: its database, ledger row
    // and placeholder folder are its build saga's (a build under way may not have
    // marked its folder yet). Once a signup took it, they are the signup's.
    let live: Vec<&StandbyRow> = observed.standbys.iter().filter(|r| r.live()).collect();
    let mut owned_dbs: HashSet<String> = completed
        .values()
        .map(|s| database_of(observed, s))
        .collect();
    owned_dbs.extend(live.iter().map(|r| r.database()));
    let mut wrong = Vec::new();
    for row in &observed.ledger {
        let owner = completed
            .get(&row.saga_id)
            .is_some_and(|s| database_of(observed, s) == row.db_name)
            || live
                .iter()
                .any(|r| r.id == row.saga_id && r.database() == row.db_name);
        if !owner {
            wrong.push(format!(
                "ledger row {} of saga {}, which owns nothing",
                row.db_name, row.saga_id
            ));
        }
    }
    let mut names: Vec<_> = observed.mariadb.iter().collect();
    names.sort();
    for (name, (db, user)) in names {
        if (*db || *user) && !owned_dbs.contains(name) {
            wrong.push(format!(
                "{name} exists (database {db}, user {user}) and no saga owns it"
            ));
        }
    }
    for folder in &observed.sites {
        let owner = folder
            .marker
            .as_ref()
            .and_then(|m| completed.get(m))
            .is_some_and(|s| s.site(parent) == folder.name)
            || live.iter().any(|r| {
                r.site_name == folder.name && folder.marker.as_ref().is_none_or(|m| *m == r.id)
            });
        if !owner {
            wrong.push(format!(
                "site folder {} that no saga owns (marker {:?})",
                folder.name, folder.marker
            ));
        }
    }
    wrong.extend(
        observed
            .claims
            .iter()
            .filter(|c| {
                // A build under way holds its placeholder's claim.
                !live
                    .iter()
                    .any(|r| r.state == "building" && c.starts_with(&format!("{}/", r.site_name)))
            })
            .map(|c| format!("claim left: sites/.provisioning/{c}")),
    );
    let mut records: Vec<_> = observed.master.iter().collect();
    records.sort();
    for (name, saga) in records {
        if completed.get(saga).is_none_or(|s| &s.subdomain != name) {
            wrong.push(format!(
                "Master record {name} of saga {saga}, which owns nothing"
            ));
        }
    }
    wrong.extend(
        observed
            .bench_processes
            .iter()
            .map(|p| format!("process still running in the bench folder: {p}")),
    );
    wrong
}

fn standbys(signups: &[Signup], observed: &Observed) -> Vec<String> {
    let mut wrong = Vec::new();
    for row in &observed.standbys {
        let claimant = row
            .claimed_by
            .as_ref()
            .map(|c| (c, signups.iter().find(|s| s.id.to_string() == *c)));
        match (row.state.as_str(), claimant) {
            ("discarding", _) => wrong.push(format!(
                "standby {} ({}) still discarding: its undo did not finish",
                row.id, row.site_name
            )),
            ("claimed", None) => wrong.push(format!("standby {} claimed, by no one", row.id)),
            (_, Some((by, None))) => wrong.push(format!(
                "standby {} claimed by {by}, no signup of the run",
                row.id
            )),
            ("gone", _) => {}
            // Its signup's undo failed: it stays claimed until that signup is replayed
            // (`undo-finished` reports the signup).
            ("claimed", Some((_, Some(s))))
                if status(observed, s) == Some(SagaStatus::CompensationFailed) => {}
            (state, Some((_, Some(s)))) => wrong.push(format!(
                "standby {} still {state}, its signup {} ended {}",
                row.id,
                s.subdomain,
                status(observed, s).map_or("unknown", SagaStatus::as_str)
            )),
            _ => {}
        }
    }
    wrong
}

/// The signups that claimed a standby, whatever became of them (a claim found
/// unusable or undone included).
pub fn claimed_a_standby(signups: &[Signup], observed: &Observed) -> usize {
    signups
        .iter()
        .filter(|s| {
            let id = s.id.to_string();
            observed
                .standbys
                .iter()
                .any(|r| r.claimed_by.as_deref() == Some(id.as_str()))
        })
        .count()
}

/// The signups that completed with a standby taken over.
pub fn took_a_standby(signups: &[Signup], observed: &Observed) -> usize {
    signups
        .iter()
        .filter(|s| status(observed, s) == Some(SagaStatus::Completed))
        .filter(|s| taken(observed, s).is_some())
        .count()
}

/// The archives of each signup's site: `(site, time of the archive)`, read from the
/// archive folders' names (`<site>-<%Y%m%d%H%M%S>-<tag>`).
fn archives(signups: &[Signup], parent: &str, observed: &Observed) -> Vec<(String, NaiveDateTime)> {
    let sites: Vec<String> = signups.iter().map(|s| s.site(parent)).collect();
    observed
        .archived
        .iter()
        .filter_map(|a| {
            let site = sites
                .iter()
                .find(|site| a.name.starts_with(&format!("{site}-")))?;
            let time = a.name.get(site.len() + 1..site.len() + 15)?;
            let at = NaiveDateTime::parse_from_str(time, "%Y%m%d%H%M%S").ok()?;
            Some((site.clone(), at))
        })
        .collect()
}

/// Sites `new-site` ran for more than once with no archive of the site in between
/// (bench.log lines: `<%Y-%m-%d %H:%M:%S,%3f> INFO bench <arguments>`; archive times
/// have whole seconds, so an archive in the same second as either run counts).
pub fn new_site_twice(bench_log: &str, archives: &[(String, NaiveDateTime)]) -> Vec<String> {
    let mut runs: HashMap<&str, Vec<NaiveDateTime>> = HashMap::new();
    for line in bench_log.lines() {
        let Some((stamp, rest)) = line.split_at_checked(23) else {
            continue;
        };
        let Some(args) = rest.strip_prefix(" INFO bench ") else {
            continue;
        };
        let mut words = args.split_whitespace();
        if words.next() != Some("new-site") {
            continue;
        }
        let (Some(site), Ok(at)) = (
            words.next(),
            NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S,%3f"),
        ) else {
            continue;
        };
        runs.entry(site).or_default().push(at);
    }
    let mut wrong = Vec::new();
    let mut sites: Vec<_> = runs.into_iter().collect();
    sites.sort();
    for (site, mut times) in sites {
        times.sort();
        for pair in times.windows(2) {
            let whole_second = |t: NaiveDateTime| t.format("%Y%m%d%H%M%S").to_string();
            let (first, second) = (whole_second(pair[0]), whole_second(pair[1]));
            let archived_between = archives.iter().any(|(s, at)| {
                let at = whole_second(*at);
                s == site && first <= at && at <= second
            });
            if !archived_between {
                wrong.push(format!(
                    "new-site {site} ran at {} and again at {} with no archive between",
                    pair[0].format("%H:%M:%S%.3f"),
                    pair[1].format("%H:%M:%S%.3f")
                ));
            }
        }
    }
    wrong
}

fn coverage(signups: &[Signup], observed: &Observed, figures: &Figures) -> Vec<String> {
    let mut wrong = Vec::new();
    if figures.orchestrator_kills_in_flight == 0 {
        wrong.push("no orchestrator was killed while sagas were in flight".into());
    }
    let undone = signups.iter().any(|s| {
        matches!(
            status(observed, s),
            Some(SagaStatus::RolledBack | SagaStatus::CompensationFailed)
        )
    });
    if undone && figures.kills_in_undo == 0 {
        wrong.push("sagas were undone, but no kill landed during an undo".into());
    }
    if !observed.standbys.is_empty() && claimed_a_standby(signups, observed) == 0 {
        wrong.push("the pool built standbys, but no signup claimed one".into());
    }
    if figures.leader_seen && figures.leader_kills == 0 {
        wrong.push("the leading orchestrator was never killed".into());
    }
    wrong
}

#[cfg(test)]
mod tests;
