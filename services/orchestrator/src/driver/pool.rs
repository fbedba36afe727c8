//! The standby pool, kept by the leader: standby sites built ahead of time by sagas of
//! their own (`tenant.standby_build`, the database and site steps under a placeholder
//! name `sb-<8 hex>`), so that a signup can take one over instead of waiting for
//! `bench new-site`.
//!
//! The pool's rows live in the saga store (`standbys`); this task keeps `building +
//! ready` at the configured size and brings the rows in line with the sagas: a build
//! that completed makes its standby ready, one that rolled back makes it gone, and a
//! standby whose claiming signup ended is gone (used up, or undone with the signup).
//! The driver makes the same changes at once when it stores such a transition
//! ([`Core::follow_pool`]); this task repairs what a crash in between left undone.

use std::sync::Arc;
use std::time::Duration;

use contracts::{SagaStatus, TenantContext};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Core, Work};
use crate::bus::Bus;
use crate::saga::Saga;
use crate::store::{SagaStore, Standby, StandbyState};

/// How often the pool is looked after.
pub(crate) const POOL_EVERY: Duration = Duration::from_secs(2);

/// How long a `building` row may go without its saga before it counts as lost: the
/// row is stored first, the saga right after, so only a crash between leaves one.
const ORPHAN_GRACE: chrono::Duration = chrono::Duration::seconds(60);

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

/// Every [`POOL_EVERY`], while this instance leads: brings the pool's rows in line
/// with the sagas, then starts builds until `building + ready` is the pool's size.
pub(crate) async fn pool_loop<S: SagaStore, B: Bus>(
    core: Arc<Core<S, B>>,
    stop: CancellationToken,
) {
    if core.pool_size == 0 {
        return;
    }
    let mut tick = tokio::time::interval(POOL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = core.tend_pool().await {
            tracing::warn!(error = %format!("{e:#}"), "standby pool not tended; trying again");
        }
    }
}

impl<S: SagaStore, B: Bus> Core<S, B> {
    /// One round of the pool's upkeep.
    pub(crate) async fn tend_pool(&self) -> anyhow::Result<()> {
        let mut live = 0usize;
        for standby in self.store.standbys(None).await? {
            if self.reconcile(&standby).await? {
                live += 1;
            }
        }
        let wanted = self.pool_size as usize;
        for _ in live..wanted {
            self.start_standby_build().await?;
        }
        Ok(())
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
                if let Some(saga) = self.store.get(signup).await? {
                    if saga.tenant.standby.as_ref().map(|s| s.saga_id) == Some(standby.id) {
                        self.follow_claim(&saga).await?;
                    } else if self.store.standby_gone(standby.id).await? {
                        // Its signup went on without it (found it unusable).
                        tracing::info!(standby = %standby.id, %signup, "standby dropped by its signup");
                    }
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
            if self.store.standby_gone(dropped.saga_id).await? {
                tracing::info!(standby = %dropped.saga_id, "standby unusable: dropped from the pool");
            }
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
            }
        } else if status.is_terminal() && self.store.standby_gone(build.id).await? {
            tracing::warn!(standby = %build.id, status = status.as_str(), "standby build failed: not in the pool");
        }
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
        } else if status.is_terminal() && self.store.standby_gone(standby.saga_id).await? {
            tracing::info!(standby = %standby.saga_id, status = status.as_str(), "standby used up by its signup");
        }
        Ok(())
    }
}
