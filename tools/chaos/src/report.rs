//! What a run prints at its end: the figures, each check with what it found, and the
//! summary line (`chaos: ok ...` or `chaos: FAILED <checks> ...`), always the last.

use std::collections::BTreeMap;
use std::time::Duration;

use contracts::SagaStatus;

use crate::checks::Check;
use crate::faults::Signup;
use crate::kills::Figures;
use crate::observe::Observed;
use crate::procs::Kind;

/// Findings printed per check at most (the rest are counted).
const SHOWN: usize = 12;

/// Everything the end of a run reports.
pub struct Report {
    /// The run's seed.
    pub seed: u64,
    /// The signups sent.
    pub signups: Vec<Signup>,
    /// The run's end state.
    pub observed: Observed,
    /// What the kill loop did.
    pub figures: Figures,
    /// From the first signup until every saga ended (or the deadline).
    pub time: Duration,
    /// The checks.
    pub checks: Vec<Check>,
    /// Remarks that are no check (a slow settle, say).
    pub notes: Vec<String>,
}

impl Report {
    /// Whether every check holds.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(Check::ok)
    }

    fn outcomes(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for s in &self.signups {
            let status = self
                .observed
                .sagas
                .get(&s.id)
                .and_then(|e| e.status)
                .map_or("unknown", SagaStatus::as_str);
            *counts.entry(status).or_default() += 1;
        }
        counts
    }

    /// The summary line.
    pub fn last_line(&self) -> String {
        let outcomes = self.outcomes();
        let count = |s: &str| outcomes.get(s).copied().unwrap_or(0);
        let figures = format!(
            "sagas={} completed={} rolled_back={} kills={} seed={} time={:.1}s",
            self.signups.len(),
            count("completed"),
            count("rolled_back"),
            self.figures.total_kills(),
            self.seed,
            self.time.as_secs_f64()
        );
        if self.ok() {
            format!("chaos: ok {figures}")
        } else {
            let failed: Vec<&str> = self
                .checks
                .iter()
                .filter(|c| !c.ok())
                .map(|c| c.name)
                .collect();
            format!("chaos: FAILED {} {figures}", failed.join(","))
        }
    }

    /// Prints the figures and the checks (not the last line).
    pub fn print(&self) {
        let mut faults: BTreeMap<&str, usize> = BTreeMap::new();
        for f in self.signups.iter().filter_map(|s| s.fault) {
            *faults.entry(f.name()).or_default() += 1;
        }
        println!("figures:");
        println!(
            "  sagas          {} (injected faults: {})",
            self.signups.len(),
            listed(&faults)
        );
        println!("  outcomes       {}", listed(&self.outcomes()));
        let per_kind = |counts: &BTreeMap<Kind, u32>| -> String {
            let named: BTreeMap<&str, u32> = Kind::ALL
                .iter()
                .filter_map(|k| counts.get(k).map(|n| (k.name(), *n)))
                .collect();
            listed(&named)
        };
        let f = &self.figures;
        println!(
            "  kills          {} ({})",
            f.total_kills(),
            per_kind(&f.kills)
        );
        println!(
            "                 during an undo {}, of an orchestrator with sagas in flight {}, of the leader {}",
            f.kills_in_undo,
            f.orchestrator_kills_in_flight,
            if f.leader_seen {
                f.leader_kills.to_string()
            } else {
                "? (no orchestrator logged `leading sagas`)".into()
            }
        );
        println!("  exits (unkilled) {}", per_kind(&f.exits));
        let mut failovers: Vec<f64> = f.failovers.iter().map(Duration::as_secs_f64).collect();
        failovers.sort_by(f64::total_cmp);
        if failovers.is_empty() {
            println!("  failover       none measured");
        } else {
            println!(
                "  failover       {} measured (leader killed → next progress event): median {:.2} s, max {:.2} s",
                failovers.len(),
                failovers[failovers.len() / 2],
                failovers[failovers.len() - 1]
            );
        }
        println!("  time to finish {:.1} s", self.time.as_secs_f64());
        for note in &self.notes {
            println!("  note           {note}");
        }
        println!("checks:");
        for check in &self.checks {
            let verdict = if check.ok() { "ok    " } else { "FAILED" };
            println!("  {verdict} {:<14} {}", check.name, check.what);
            for failure in check.failures.iter().take(SHOWN) {
                println!("           - {failure}");
            }
            if check.failures.len() > SHOWN {
                println!("           … and {} more", check.failures.len() - SHOWN);
            }
        }
    }
}

fn listed<K: std::fmt::Display, V: std::fmt::Display>(counts: &BTreeMap<K, V>) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
