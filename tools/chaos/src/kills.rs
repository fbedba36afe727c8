//! The kill loop: SIGKILLs a random process at random moments, restarts it after a
//! random short pause, and counts. One extra kill aims at the service of each step
//! being undone (once per saga and step, so that an undo is hit but can still finish),
//! and every fifth scheduled kill (the third, the eighth, ...) takes the leading
//! orchestrator, so that undos and failovers are hit, not
//! only forward work. At most one NATS node is down at a time: the streams have three
//! replicas and need two for a quorum.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use crate::procs::{Kind, Proc};
use crate::signups::SharedTracker;

/// What the kill loop did.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    /// SIGKILLs per kind.
    pub kills: BTreeMap<Kind, u32>,
    /// Processes that exited without being killed (then restarted), per kind.
    pub exits: BTreeMap<Kind, u32>,
    /// Kills made while at least one saga was compensating.
    pub kills_in_undo: u32,
    /// Kills of the orchestrator that had logged `leading sagas` last.
    pub leader_kills: u32,
    /// Kills of an orchestrator while sagas were in flight.
    pub orchestrator_kills_in_flight: u32,
    /// Whether any orchestrator logged `leading sagas` (the leader lease is on).
    pub leader_seen: bool,
    /// From killing the leader to the next progress event, one per measured failover.
    pub failovers: Vec<Duration>,
}

impl Figures {
    /// Every kill.
    pub fn total_kills(&self) -> u32 {
        self.kills.values().sum()
    }
}

/// The run's processes and the loop that kills them.
pub struct Supervisor {
    /// Every process of the run: NATS nodes first, then the services.
    pub procs: Vec<Proc>,
    restart_at: Vec<Option<Instant>>,
    log_offsets: Vec<u64>,
    leader: Option<usize>,
    pending_failover: Option<chrono::DateTime<chrono::Utc>>,
    rng: StdRng,
    every: Duration,
    /// What it did so far.
    pub figures: Figures,
}

impl Supervisor {
    /// Supervises `procs` (not started yet), its choices drawn from `seed`.
    pub fn new(procs: Vec<Proc>, seed: u64, every: Duration) -> Self {
        let n = procs.len();
        Self {
            procs,
            restart_at: vec![None; n],
            log_offsets: vec![0; n],
            leader: None,
            pending_failover: None,
            rng: StdRng::seed_from_u64(seed),
            every,
            figures: Figures::default(),
        }
    }

    /// Starts every process of kind `kind` that is not running.
    pub fn start_kind(&mut self, kind: Kind) -> anyhow::Result<()> {
        for (i, proc) in self.procs.iter_mut().enumerate() {
            if proc.kind == kind && !proc.running() {
                proc.start()?;
                self.restart_at[i] = None;
            }
        }
        Ok(())
    }

    /// Starts whatever is not running (after the kills stopped).
    pub fn start_all_down(&mut self) -> anyhow::Result<()> {
        for kind in Kind::ALL {
            self.start_kind(kind)?;
        }
        Ok(())
    }

    /// SIGKILLs every process (end of the run).
    pub fn kill_all(&mut self) {
        for proc in &mut self.procs {
            proc.kill();
        }
    }

    /// Kills and restarts until `stop` turns true; returns itself for the checks.
    pub async fn run(mut self, tracker: SharedTracker, mut stop: watch::Receiver<bool>) -> Self {
        let mut next_kill = Instant::now() + self.every;
        let mut scheduled = 0u32;
        let mut undos_hit: HashSet<(uuid::Uuid, String)> = HashSet::new();
        loop {
            tokio::select! {
                _ = stop.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            if *stop.borrow() {
                return self;
            }
            let now = Instant::now();
            self.restart_due(now);
            self.watch_leader();
            let (undoing, in_flight, last_event) = {
                let t = tracker.lock().expect("tracker");
                (t.compensating_steps(), t.in_flight(), t.last_event)
            };
            if let Some(killed_at) = self.pending_failover {
                match last_event.filter(|e| *e > killed_at) {
                    Some(driven) => {
                        self.figures
                            .failovers
                            .push((driven - killed_at).to_std().unwrap_or_default());
                        self.pending_failover = None;
                    }
                    None if chrono::Utc::now() - killed_at > chrono::Duration::seconds(120) => {
                        self.pending_failover = None;
                    }
                    None => {}
                }
            }
            if now >= next_kill {
                scheduled += 1;
                let target = if scheduled % 5 == 3 && in_flight > 0 {
                    self.leader_or_active()
                } else {
                    self.random_target(None)
                };
                if let Some(i) = target {
                    self.kill(i, !undoing.is_empty(), in_flight);
                }
                let ms = self.every.as_millis() as u64;
                next_kill = now + Duration::from_millis(self.rng.gen_range(ms / 2..=ms * 3 / 2));
            } else if let Some(undo) = undoing.iter().find(|u| !undos_hit.contains(*u)) {
                // Aim at the service of a step being undone right now.
                if let Some(i) = self.random_target(Kind::of_step(&undo.1)) {
                    self.kill(i, true, in_flight);
                }
                undos_hit.insert(undo.clone());
            }
        }
    }

    fn restart_due(&mut self, now: Instant) {
        for i in 0..self.procs.len() {
            match self.restart_at[i] {
                Some(at) if now >= at => {
                    if let Err(e) = self.procs[i].start() {
                        eprintln!("chaos: {} does not start again: {e:#}", self.procs[i].name);
                        self.restart_at[i] = Some(now + Duration::from_secs(1));
                    } else {
                        self.restart_at[i] = None;
                        self.log_offsets[i] = file_len(&self.procs[i]);
                    }
                }
                Some(_) => {}
                None => {
                    let proc = &mut self.procs[i];
                    if proc.started() && !proc.running() {
                        // Exited on its own: restarted as compose's `restart:` would.
                        *self.figures.exits.entry(proc.kind).or_default() += 1;
                        self.restart_at[i] = Some(now + Duration::from_millis(500));
                        if self.leader == Some(i) {
                            self.leader = None;
                        }
                    }
                }
            }
        }
    }

    /// Reads what the orchestrators logged since the last look: the latest to log
    /// `leading sagas` leads.
    fn watch_leader(&mut self) {
        for i in 0..self.procs.len() {
            if self.procs[i].kind != Kind::Orchestrator || self.restart_at[i].is_some() {
                continue;
            }
            let Ok(mut file) = std::fs::File::open(&self.procs[i].log) else {
                continue;
            };
            let mut fresh = String::new();
            if file.seek(SeekFrom::Start(self.log_offsets[i])).is_ok()
                && file.read_to_string(&mut fresh).is_ok()
            {
                // Only whole lines are consumed, so a line written in two pieces is
                // read once it is complete.
                let whole = fresh.rfind('\n').map_or(0, |n| n + 1);
                if fresh[..whole].contains("leading sagas") {
                    self.leader = Some(i);
                    self.figures.leader_seen = true;
                }
                self.log_offsets[i] += whole as u64;
            }
        }
    }

    /// The leader when one is known, else the first orchestrator that runs.
    fn leader_or_active(&mut self) -> Option<usize> {
        self.leader.or_else(|| {
            (0..self.procs.len())
                .find(|i| self.procs[*i].kind == Kind::Orchestrator && self.is_up(*i))
        })
    }

    fn is_up(&mut self, i: usize) -> bool {
        self.restart_at[i].is_none() && self.procs[i].running()
    }

    /// A random process that runs (of `kind` when given); a NATS node only when every
    /// node runs.
    fn random_target(&mut self, kind: Option<Kind>) -> Option<usize> {
        let up: Vec<bool> = (0..self.procs.len()).map(|i| self.is_up(i)).collect();
        let nats_down = (0..self.procs.len()).any(|i| self.procs[i].kind == Kind::Nats && !up[i]);
        let candidates: Vec<usize> = (0..self.procs.len())
            .filter(|i| kind.is_none_or(|k| self.procs[*i].kind == k))
            .filter(|i| !(nats_down && self.procs[*i].kind == Kind::Nats))
            .filter(|i| up[*i])
            .collect();
        (!candidates.is_empty()).then(|| candidates[self.rng.gen_range(0..candidates.len())])
    }

    fn kill(&mut self, i: usize, during_undo: bool, in_flight: usize) {
        let kind = self.procs[i].kind;
        self.procs[i].kill();
        *self.figures.kills.entry(kind).or_default() += 1;
        if during_undo {
            self.figures.kills_in_undo += 1;
        }
        if kind == Kind::Orchestrator && in_flight > 0 {
            self.figures.orchestrator_kills_in_flight += 1;
        }
        if self.leader == Some(i) {
            self.leader = None;
            self.figures.leader_kills += 1;
            if in_flight > 0 {
                self.pending_failover = Some(chrono::Utc::now());
            }
        }
        let pause = match kind {
            Kind::Nats => self.rng.gen_range(500..3000),
            _ => self.rng.gen_range(200..2000),
        };
        self.restart_at[i] = Some(Instant::now() + Duration::from_millis(pause));
    }
}

fn file_len(proc: &Proc) -> u64 {
    std::fs::metadata(&proc.log).map_or(0, |m| m.len())
}
