//! The standby pool, kept by the leader: standby sites built ahead of time by sagas of
//! their own (`tenant.standby_build`, the database and site steps under a placeholder
//! name `sb-<8 hex>`), so that a signup can take one over instead of waiting for
//! `bench new-site`.
//!
//! The pool's rows live in the saga store (`standbys`); this task keeps `building +
//! ready` at the configured size and brings the rows in line with the sagas: a build
//! that completed makes its standby ready, one that rolled back makes it gone, and a
//! standby whose claiming signup completed is gone (used up).
//!
//! A standby the pool no longer wants is discarded: its row turns `discarding` (by
//! compare-and-set, so a signup claiming it at the same instant gets it or not, never
//! both), then its build saga is undone ([`Input::Discard`](crate::saga::Input)), and
//! the row is `gone` once that undo rolled back. That happens to ready standbys beyond
//! the size (newest first), and to a claimed one whose signup rolled back or found it
//! unusable: before the rename its placeholder folder and database are the standby's,
//! and the steps' undo of the build removes exactly what is still the standby's.
//! The driver makes these changes at once when it stores such a transition
//! ([`Core::follow_pool`]); this task repairs, from the rows, what a crash in between
//! left undone: a `discarding` row whose build is still completed is discarded again.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use contracts::{SagaStatus, TenantContext};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Core, Work};
use crate::bus::Bus;
use crate::saga::{Saga, STANDBY_DISCARDED};
use crate::store::{PoolSetting, SagaStore, Standby, StandbyState};

/// How often the pool is looked after.
pub(crate) const POOL_EVERY: Duration = Duration::from_secs(2);

/// How long a `building` row may go without its saga before it counts as lost: the
/// row is stored first, the saga right after, so only a crash between leaves one.
const ORPHAN_GRACE: chrono::Duration = chrono::Duration::seconds(60);

/// How long a standby stays claimed by a signup the store never got (its message
/// dead-lettered, say) before it is discarded: well past the signup's redelivery
/// window (100 deliveries, each at most a minute apart: about an hour and a half). It
/// is never given back to the pool: a late signup stored with it would then share it.
pub(crate) const CLAIM_GRACE: chrono::Duration = chrono::Duration::hours(3);

/// The pool's size as this instance applies it, shared by the pool's upkeep (which
/// reads the operators' setting from the store each round) and the intake.
#[derive(Debug)]
pub(crate) struct PoolLive {
    /// `STANDBY_POOL_SIZE`.
    configured: u32,
    /// `STANDBY_BUILDS_AT_ONCE`.
    builds_at_once: u32,
    /// The size in force: the operators' setting, else the configured one.
    size: AtomicU32,
    /// Whether a signup looks for a ready standby: the pool is on, or some were left
    /// ready while it shrinks (using one beats discarding it).
    claimable: AtomicBool,
    /// The store keeps no pool: nothing is ever looked for.
    absent: AtomicBool,
    /// Wakes the upkeep at once (an operator changed the size).
    nudge: tokio::sync::Notify,
    /// Builds failed in a row, and when the last one did: the next waits
    /// ([`build_backoff`]), so a pool whose builds cannot succeed (apps that fail to
    /// install, say) does not make and undo a site every round.
    failed_builds: std::sync::Mutex<(u32, Option<chrono::DateTime<chrono::Utc>>)>,
}

/// How long the next build waits after `failures` builds failed in a row: 10 s,
/// doubling with each, at most 10 minutes.
pub(crate) fn build_backoff(failures: u32) -> chrono::Duration {
    if failures == 0 {
        return chrono::Duration::zero();
    }
    let secs = 10i64.saturating_mul(1i64 << (failures - 1).min(6));
    chrono::Duration::seconds(secs.min(600))
}

impl PoolLive {
    /// The pool of `STANDBY_POOL_SIZE` `configured`, until the store says otherwise.
    /// At most `builds_at_once` builds are under way at a time.
    pub(crate) fn new(configured: u32, builds_at_once: u32) -> Self {
        Self {
            configured,
            builds_at_once: builds_at_once.max(1),
            size: AtomicU32::new(configured),
            claimable: AtomicBool::new(configured > 0),
            absent: AtomicBool::new(false),
            nudge: tokio::sync::Notify::new(),
            failed_builds: std::sync::Mutex::new((0, None)),
        }
    }

    /// A build failed at `now`.
    fn build_failed(&self, now: chrono::DateTime<chrono::Utc>) -> u32 {
        let mut failed = self.failed_builds.lock().unwrap_or_else(|e| e.into_inner());
        *failed = (failed.0.saturating_add(1), Some(now));
        failed.0
    }

    /// A build completed: the next starts without waiting.
    fn build_completed(&self) {
        *self.failed_builds.lock().unwrap_or_else(|e| e.into_inner()) = (0, None);
    }

    /// Until when new builds wait after failed ones, if they do.
    fn builds_wait_until(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let failed = *self.failed_builds.lock().unwrap_or_else(|e| e.into_inner());
        failed.1.map(|last| last + build_backoff(failed.0))
    }

    /// `STANDBY_POOL_SIZE`.
    pub(crate) fn configured(&self) -> u32 {
        self.configured
    }

    /// The size in force.
    pub(crate) fn size(&self) -> u32 {
        self.size.load(Ordering::Relaxed)
    }

    /// Whether a signup should look for a ready standby.
    pub(crate) fn claimable(&self) -> bool {
        !self.absent.load(Ordering::Relaxed) && self.claimable.load(Ordering::Relaxed)
    }

    /// The store keeps no pool: said once, then never looked for again.
    pub(crate) fn mark_absent(&self) {
        if !self.absent.swap(true, Ordering::Relaxed) && self.configured > 0 {
            tracing::warn!(
                "this saga store keeps no standby pool: the pool is off (STANDBY_POOL_SIZE ignored)"
            );
        }
    }

    /// Has the upkeep run now rather than at its next tick.
    pub(crate) fn nudge(&self) {
        self.nudge.notify_one();
    }
}

/// The size in force: the operators' setting, else `configured`.
pub(crate) fn effective_size(configured: u32, setting: Option<&PoolSetting>) -> u32 {
    setting.and_then(|s| s.size).unwrap_or(configured)
}

/// The placeholder subdomain of the standby built by saga `id`.
pub(crate) fn placeholder_subdomain(id: Uuid) -> String {
    format!("sb-{}", &id.simple().to_string()[..8])
}

/// What a standby build saga works on: a placeholder tenant with no one to sign in
/// (Google-like, so no password is ever made or kept for it).
pub(crate) fn placeholder_tenant(id: Uuid, parent_domain: &str) -> TenantContext {
    let subdomain = placeholder_subdomain(id);
    TenantContext {
        site_name: format!("{subdomain}.{parent_domain}"),
        admin_email: format!("{subdomain}@{parent_domain}"),
        subdomain,
        organization_name: "Standby".into(),
        admin_full_name: "Standby".into(),
        auth_provider: contracts::signup::AuthProvider::Google,
        admin_password: None,
        standby: None,
        standby_build: true,
    }
}

/// Every [`POOL_EVERY`] (or at once when an operator changed the size), while this
/// instance leads: reads the size in force, brings the pool's rows in line with the
/// sagas, then starts builds until `building + ready` is that size. With a size of 0
/// it still runs: it discards the standbys left ready (draining the pool) and
/// finishes discards under way. It publishes the pool's gauges each round.
pub(crate) async fn pool_loop<S: SagaStore, B: Bus>(
    core: Arc<Core<S, B>>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(POOL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
            () = core.pool.nudge.notified() => {}
        }
        match core.tend_pool().await {
            Ok(()) => {}
            // A store without a pool: nothing to tend, ever.
            Err(e) if refused(&e) => {
                core.pool.mark_absent();
                return;
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "standby pool not tended; trying again")
            }
        }
    }
}

impl<S: SagaStore, B: Bus> Core<S, B> {
    /// One round of the pool's upkeep.
    pub(crate) async fn tend_pool(&self) -> anyhow::Result<()> {
        let setting = self.store.pool_setting().await?;
        let wanted = effective_size(self.pool.configured, setting.as_ref());
        if self.pool.size.swap(wanted, Ordering::Relaxed) != wanted {
            tracing::info!(size = wanted, "standby pool size in force");
        }
        let rows = self.store.standbys(None).await?;
        // While it shrinks, signups still take what is ready (before it is discarded).
        let any_ready = rows.iter().any(|s| s.state == StandbyState::Ready);
        self.pool
            .claimable
            .store(wanted > 0 || any_ready, Ordering::Relaxed);
        let mut live = 0usize;
        let mut building = 0usize;
        let mut ready = Vec::new();
        for standby in &rows {
            if self.reconcile(standby).await? {
                live += 1;
                match standby.state {
                    StandbyState::Ready => ready.push(standby.id),
                    // (One whose build completed just now counts until the next round.)
                    StandbyState::Building => building += 1,
                    _ => {}
                }
            }
        }
        let wanted = wanted as usize;
        // Beyond the size: the newest ready ones go (the oldest are claimed first, so
        // the pool keeps turning over). Builds under way finish first and go then.
        let why = format!("the pool keeps {wanted}");
        for id in ready.iter().rev() {
            if live <= wanted {
                break;
            }
            if self.discard(*id, StandbyState::Ready, &why).await? {
                live -= 1;
            }
        }
        // A few at a time: a build waiting in site-step for a `new-site` place holds
        // one of its command slots, which signups' commands need.
        let mut room = (self.pool.builds_at_once as usize).saturating_sub(building);
        if let Some(until) = self.pool.builds_wait_until() {
            if self.clock.now() < until && live < wanted {
                tracing::debug!(%until, "standby builds failed lately: the next waits");
                room = 0;
            }
        }
        for _ in live..wanted.min(live + room) {
            self.start_standby_build().await?;
        }
        // The gauges, as the store has the rows now.
        let now_rows = self.store.standbys(None).await?;
        crate::observe::pool_gauges(wanted as u32, &now_rows);
        Ok(())
    }

    /// Marks standby `id` discarding if it is still `from`, then has its build saga
    /// undone; whether it was this call that discarded it.
    async fn discard(&self, id: Uuid, from: StandbyState, why: &str) -> anyhow::Result<bool> {
        if !self.store.discard_standby(id, from).await? {
            return Ok(false);
        }
        tracing::info!(standby = %id, why, "standby discarded");
        self.router.send(id, Work::Discard(why.to_string())).await;
        Ok(true)
    }

    /// Brings one row in line with its sagas; whether it still counts towards the
    /// pool's size (building or ready).
    async fn reconcile(&self, standby: &Standby) -> anyhow::Result<bool> {
        match standby.state {
            StandbyState::Building => {
                let Some(build) = self.store.get(standby.id).await? else {
                    if self.clock.now() - standby.created_at > ORPHAN_GRACE {
                        tracing::warn!(standby = %standby.id, "standby build never stored: forgotten");
                        self.store.standby_gone(standby.id).await?;
                        return Ok(false);
                    }
                    return Ok(true);
                };
                self.follow_build(&build).await?;
                Ok(!build.status.is_terminal() || build.status == SagaStatus::Completed)
            }
            StandbyState::Ready => Ok(true),
            StandbyState::Claimed => {
                // A claim whose signup is not stored yet is the intake's (the signup
                // comes again until its saga is stored, and then finds its claim).
                let Some(signup) = standby.claimed_by else {
                    return Ok(false);
                };
                match self.store.get(signup).await? {
                    Some(saga) => {
                        if saga.tenant.standby.as_ref().map(|s| s.saga_id) == Some(standby.id) {
                            self.follow_claim(&saga).await?;
                        } else {
                            // Its signup went on without it (found it unusable).
                            self.discard(standby.id, StandbyState::Claimed, UNUSABLE)
                                .await?;
                        }
                    }
                    None => {
                        // Its signup never got stored (dead-lettered, say) and will not
                        // come again now: discarded, never given back (a late signup
                        // stored with it would share it; the steps check ownership).
                        let claimed = standby.claimed_at.unwrap_or(standby.since);
                        if self.clock.now() - claimed > CLAIM_GRACE {
                            self.discard(standby.id, StandbyState::Claimed, NEVER_STORED)
                                .await?;
                        }
                    }
                }
                Ok(false)
            }
            StandbyState::Discarding => {
                match self.store.get(standby.id).await? {
                    // Never built: nothing to undo.
                    None => {
                        self.store.standby_gone(standby.id).await?;
                    }
                    Some(build) => match build.status {
                        // Marked, but the undo never started (a crash, or the input
                        // lost): again. The saga takes it once.
                        SagaStatus::Completed => {
                            self.router
                                .send(standby.id, Work::Discard(NOT_WANTED.into()))
                                .await;
                        }
                        SagaStatus::RolledBack => {
                            self.store.standby_gone(standby.id).await?;
                        }
                        // Undoing; or its undo failed, which an operator replays (the
                        // row stays discarding until it rolled back).
                        _ => {}
                    },
                }
                Ok(false)
            }
            StandbyState::Gone => Ok(false),
        }
    }

    /// Stores a building row, then its build saga, and has it started.
    async fn start_standby_build(&self) -> anyhow::Result<()> {
        let id = Uuid::new_v4();
        let tenant = placeholder_tenant(id, &self.parent_domain);
        let now = self.clock.now();
        self.store
            .add_standby(&Standby::building(id, tenant.site_name.clone(), now))
            .await?;
        let saga = Saga::accepted(id, tenant, now);
        match self.store.insert(&saga, &[]).await? {
            crate::store::Inserted::Stored => {
                tracing::info!(standby = %id, site = %saga.tenant.site_name, "standby build started");
                crate::observe::standby_build_started();
                self.router.send(id, Work::Resume).await;
            }
            other => {
                // A placeholder subdomain taken already (a tenant signed up as one):
                // this row is dropped, the next round picks another name.
                tracing::warn!(standby = %id, outcome = ?other, "standby build not stored");
                self.store.standby_gone(id).await?;
            }
        }
        Ok(())
    }

    /// What a stored transition means for the pool: a build that completed makes its
    /// standby ready, one that ended otherwise makes it gone; a claiming signup that
    /// ended uses its standby up. Called by the driver after each transition that ends
    /// a saga, and by the pool's upkeep.
    pub(crate) async fn follow_pool(&self, before: &Saga, after: &Saga) -> anyhow::Result<()> {
        if after.tenant.standby_build {
            return self.follow_build(after).await;
        }
        if let (Some(dropped), None) = (&before.tenant.standby, &after.tenant.standby) {
            // The signup found its standby unusable and goes on the usual way.
            self.discard(dropped.saga_id, StandbyState::Claimed, UNUSABLE)
                .await?;
        }
        self.follow_claim(after).await
    }

    async fn follow_build(&self, build: &Saga) -> anyhow::Result<()> {
        let status = build.status;
        if status == SagaStatus::Completed {
            let db_name = build
                .outputs
                .get("database")
                .and_then(|o| o.get("db_name"))
                .and_then(|n| n.as_str())
                .unwrap_or_default();
            let now = self.clock.now();
            if self.store.standby_ready(build.id, db_name, now).await? {
                tracing::info!(standby = %build.id, site = %build.tenant.site_name, "standby ready");
                self.pool.build_completed();
            }
        } else if status == SagaStatus::RolledBack && discarded(build) {
            if self.store.standby_gone(build.id).await? {
                tracing::info!(standby = %build.id, "standby discarded: removed");
            }
        } else if status.is_terminal()
            && !discarded(build)
            && self.store.standby_gone(build.id).await?
        {
            let failures = self.pool.build_failed(self.clock.now());
            tracing::warn!(
                standby = %build.id,
                status = status.as_str(),
                failures_in_a_row = failures,
                next_in_secs = build_backoff(failures).num_seconds(),
                "standby build failed: not in the pool; the next build waits"
            );
        }
        // A discard whose undo failed stays discarding: an operator replays it.
        Ok(())
    }

    async fn follow_claim(&self, signup: &Saga) -> anyhow::Result<()> {
        let Some(standby) = &signup.tenant.standby else {
            return Ok(());
        };
        let status = signup.status;
        if status == SagaStatus::Rejected {
            // Refused before any step ran: the standby was never touched.
            if self
                .store
                .release_standby(standby.saga_id, signup.id)
                .await?
            {
                tracing::info!(standby = %standby.saga_id, "signup refused: standby back in the pool");
            }
        } else if status == SagaStatus::Completed
            && self.store.standby_gone(standby.saga_id).await?
        {
            tracing::info!(standby = %standby.saga_id, "standby used up by its signup");
        } else if status == SagaStatus::RolledBack {
            // Whatever of the standby its signup did not take over (before the
            // rename: the folder; before the adoption: the database) is undone now.
            self.discard(standby.saga_id, StandbyState::Claimed, ROLLED_BACK)
                .await?;
        }
        // compensation_failed: the signup's undo is an operator's; its standby stays
        // claimed until a replay ends it.
        Ok(())
    }
}

/// Why a standby is discarded, as its build saga's progress says.
const UNUSABLE: &str = "its signup found it unusable";
const ROLLED_BACK: &str = "its signup rolled back";
const NOT_WANTED: &str = "the pool no longer wants it";
const NEVER_STORED: &str = "its signup was never stored";

/// Whether a build saga's undo is a discard (its error, or the cause of its undo's
/// failure, says so), not a failed build.
fn discarded(build: &Saga) -> bool {
    let mut error = build.error.as_ref();
    while let Some(e) = error {
        if e.code == STANDBY_DISCARDED {
            return true;
        }
        error = e.cause.as_deref();
    }
    false
}

/// Whether the store refused because it keeps no pool.
fn refused(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<crate::store::Error>(),
        Some(crate::store::Error::Refused(_))
    )
}
