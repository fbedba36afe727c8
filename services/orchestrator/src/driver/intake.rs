//! Signups in: read far enough to route, dedup, validate (a password also against the
//! site's password policy), claim the subdomain, start, or reject before anything is
//! created. Step reports are routed here too.

use anyhow::Context as _;
use contracts::signup::{parse_signup, DeadLetter, ParsedSignup, SignupPassword};
use contracts::step_dead_letter::StepDeadLetter;
use contracts::{
    Rejection, SagaStatus, Sealed, StandbyRef, StepEvent, SubdomainProbe, TenantContext,
    TraceParent, ValidSignup,
};
use secrets::{ExposeSecret as _, SecretString};
use uuid::Uuid;

use super::{Cache, Core, ParsedSignupRead, Work};
use crate::bus::{Bus, Inbound, SetAside, Settle};
use crate::password_policy::{check_password_strength, PasswordOwner};
use crate::saga::{Input, Saga, SagaDefinition};
use crate::store::{Inserted, SagaStore};

impl<S: SagaStore, B: Bus> Core<S, B> {
    /// A signup: dedup, validate, claim the subdomain, start.
    pub(super) async fn intake(
        &self,
        cache: &mut Cache,
        saga_id: Uuid,
        parsed: ParsedSignupRead,
        trace: Option<TraceParent>,
    ) -> anyhow::Result<()> {
        // The web app's trace when it sent one, else one of the saga's own; the saga
        // keeps it (a redelivered signup finds its saga stored with the first one).
        let trace = trace.unwrap_or_else(TraceParent::new_root);
        // A saga in flight is in the cache; an older one is found by the insert below
        // (`Duplicate`), which spares a read per signup.
        if cache.0.contains_key(&saga_id) {
            tracing::info!("signup seen before: same request, no second saga");
            return Ok(());
        }
        let signup = match parsed.outcome {
            Ok(signup) => signup,
            Err(rejection) => {
                let subdomain: String = parsed.raw_subdomain.chars().take(64).collect();
                return self
                    .reject(
                        saga_id,
                        self.tenant_for_rejection(&subdomain),
                        &rejection,
                        trace,
                    )
                    .await;
            }
        };
        let admin_password = match self.password_for_the_saga(saga_id, &signup) {
            Ok(sealed) => sealed,
            Err(rejection) => {
                let tenant = TenantContext {
                    organization_name: signup.organization_name.clone(),
                    admin_email: signup.admin_email.clone(),
                    admin_full_name: signup.admin_full_name.clone(),
                    ..self.tenant_for_rejection(&signup.subdomain)
                };
                return self.reject(saga_id, tenant, &rejection, trace).await;
            }
        };
        let claimed = self.claim_standby(saga_id).await;
        let tenant = TenantContext {
            site_name: format!("{}.{}", signup.subdomain, self.parent_domain),
            subdomain: signup.subdomain.clone(),
            organization_name: signup.organization_name.clone(),
            admin_email: signup.admin_email.clone(),
            admin_full_name: signup.admin_full_name.clone(),
            auth_provider: signup.auth_provider,
            admin_password,
            standby: claimed.as_ref().map(|s| StandbyRef {
                saga_id: s.id,
                site_name: s.site_name.clone(),
                db_name: s.db_name.clone(),
            }),
            standby_build: false,
        };
        let saga = Saga {
            trace: Some(trace),
            ..Saga::accepted(saga_id, tenant.clone(), self.clock.now())
        };
        match self
            .store
            .insert(&saga, &[])
            .await
            .context("storing the new saga")?
        {
            Inserted::Stored => {
                tracing::info!(subdomain = %signup.subdomain, standby = ?claimed.as_ref().map(|s| s.id), "signup accepted");
                crate::observe::accepted();
                self.start_unless_held(cache, &saga).await
            }
            Inserted::Duplicate => {
                tracing::info!("signup seen before: same request, no second saga");
                // A redelivery after the saga was stored but before it started (the
                // start failed): start it now rather than at the next sweep.
                if let Some(stored) = self.load(cache, saga_id).await? {
                    if let Some(standby) = &claimed {
                        if stored.tenant.standby.as_ref().map(|s| s.saga_id) != Some(standby.id) {
                            // Claimed now, but the saga was stored without it.
                            self.release_standby(standby.id, saga_id).await;
                        }
                    }
                    if stored.status == SagaStatus::Accepted {
                        self.start_unless_held(cache, &stored).await?;
                    }
                }
                Ok(())
            }
            Inserted::SubdomainTaken(holder) => {
                tracing::info!(subdomain = %signup.subdomain, %holder, "subdomain taken");
                if let Some(standby) = &claimed {
                    self.release_standby(standby.id, saga_id).await;
                }
                let rejection = Rejection {
                    code: "subdomain_taken",
                    message: format!(
                        "the subdomain \"{}\" is already taken; please choose another",
                        signup.subdomain
                    ),
                };
                self.reject(
                    saga_id,
                    TenantContext {
                        admin_password: None,
                        standby: None,
                        ..tenant
                    },
                    &rejection,
                    saga.trace.clone().unwrap_or_else(TraceParent::new_root),
                )
                .await
            }
        }
    }

    /// A ready standby for signup `saga_id` (the one it took before, if it comes
    /// again), when the pool is on or still holds ready standbys while it shrinks.
    /// Never holds the signup up: with none ready, or the pool's rows unreadable, the
    /// signup takes the usual path. Finding none while the pool is on is a miss, kept
    /// in the store for the pool's hourly figures.
    async fn claim_standby(&self, saga_id: Uuid) -> Option<crate::store::Standby> {
        if !self.pool.claimable() {
            return None;
        }
        let now = self.clock.now();
        match self.store.claim_standby(saga_id, now).await {
            // Its claim was withdrawn since (discarded after the grace, used up): the
            // usual path, and no other standby for it.
            Ok(Some(standby)) if standby.state != crate::store::StandbyState::Claimed => {
                tracing::info!(standby = %standby.id, state = standby.state.as_str(), "this signup's standby claim was withdrawn: the usual path");
                None
            }
            Ok(Some(standby)) => {
                tracing::info!(standby = %standby.id, site = %standby.site_name, "signup takes a standby site");
                crate::observe::standby_claim(true);
                Some(standby)
            }
            Ok(None) => {
                if self.pool.size() > 0 {
                    tracing::info!("no standby site ready: the usual path");
                    crate::observe::standby_claim(false);
                    if let Err(e) = self.store.standby_missed(saga_id, now).await {
                        tracing::warn!(error = %format!("{e:#}"), "standby miss not recorded");
                    }
                }
                None
            }
            Err(crate::store::Error::Refused(_)) => {
                self.pool.mark_absent();
                None
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "standby pool not read: the usual path");
                None
            }
        }
    }

    /// Gives a standby this signup claimed but does not use back to the pool.
    async fn release_standby(&self, standby: Uuid, saga_id: Uuid) {
        match self.store.release_standby(standby, saga_id).await {
            Ok(_) => tracing::info!(%standby, "standby not used: back in the pool"),
            // Left claimed: the pool's upkeep finds the signup went on without it.
            Err(e) => tracing::warn!(error = %format!("{e:#}"), %standby, "standby not given back"),
        }
    }

    /// Starts an accepted saga, unless a step service sees its subdomain held outside
    /// the saga store (a registered tenant, a site folder): then it ends rejected
    /// before anything is created. A step that cannot tell (down, Master unreachable)
    /// does not hold the signup up: the steps themselves never touch a foreign site
    /// folder or record, so such a signup is then refused by its rollback instead.
    pub(super) async fn start_unless_held(
        &self,
        cache: &mut Cache,
        saga: &Saga,
    ) -> anyhow::Result<()> {
        let probe = SubdomainProbe {
            subdomain: saga.tenant.subdomain.clone(),
            site_name: saga.tenant.site_name.clone(),
        };
        let input = match held_elsewhere(&self.bus, &self.definition, &probe).await {
            Ok(None) => Input::Start,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "subdomain not checked outside the saga store; starting, the steps refuse what is not theirs");
                Input::Start
            }
            Ok(Some(holder)) => {
                tracing::info!(subdomain = %saga.tenant.subdomain, %holder, "subdomain held outside the saga store");
                Input::Refuse(Rejection {
                    code: "subdomain_taken",
                    message: format!(
                        "the subdomain \"{}\" is already taken ({holder}); please choose another",
                        saga.tenant.subdomain
                    ),
                })
            }
        };
        self.transition(cache, saga, input).await?;
        Ok(())
    }

    /// The signup's password as the saga keeps it: sealed to the services' current key
    /// for this saga's `admin_password`. A clear one (older clients) is sealed here, so
    /// it never reaches the store or the bus again; a sealed one is opened, checked
    /// with the contract's rules, and kept as it came when sealed to the current key
    /// (sealed again to it when the client used an older one). Either is held to the
    /// sites' password policy.
    fn password_for_the_saga(
        &self,
        saga_id: Uuid,
        signup: &ValidSignup,
    ) -> Result<Option<Sealed>, Rejection> {
        let binding = secrets::Binding::new(saga_id, secrets::Field::AdminPassword);
        let mut kept = None;
        let clear = match &signup.admin_password {
            None => return Ok(None),
            Some(SignupPassword::Clear(clear)) => SecretString::from(clear.clone()),
            // Only the v2 format binds a value to its signup: a `v1:` value (which the
            // legacy key would open) could be one copied from anywhere.
            Some(SignupPassword::Sealed(sealed)) if !sealed.0.starts_with("v2:") => {
                return Err(Rejection {
                    code: "password_unreadable",
                    message: "admin_password_sealed must be in the v2 format (HPKE to SAGA_PUBLIC_KEY, bound to this signup_id)".into(),
                })
            }
            Some(SignupPassword::Sealed(sealed)) => {
                // Sealed to the current key already, and (below) opened for this very
                // signup: kept as it came, which spares a key agreement per signup.
                if !self.key.is_stale(sealed) {
                    kept = Some(sealed.clone());
                }
                let clear = self.key.open(sealed, binding).map_err(|e| Rejection {
                    code: "password_unreadable",
                    message: format!(
                        "admin_password_sealed cannot be opened ({e}); seal it to the key SAGA_PUBLIC_KEY names, for this signup_id and the field admin_password"
                    ),
                })?;
                contracts::signup::check_password(clear.expose_secret())?;
                clear
            }
        };
        let owner = PasswordOwner {
            full_name: &signup.admin_full_name,
            email: &signup.admin_email,
        };
        check_password_strength(clear.expose_secret(), owner)?;
        Ok(Some(kept.unwrap_or_else(|| {
            self.key.seal(clear.expose_secret(), binding)
        })))
    }

    fn tenant_for_rejection(&self, subdomain: &str) -> TenantContext {
        let valid = contracts::signup::check_subdomain(subdomain).is_ok();
        TenantContext {
            subdomain: subdomain.to_string(),
            site_name: if valid {
                format!("{subdomain}.{}", self.parent_domain)
            } else {
                String::new()
            },
            organization_name: String::new(),
            admin_email: String::new(),
            admin_full_name: String::new(),
            auth_provider: contracts::signup::AuthProvider::Password,
            admin_password: None,
            standby: None,
            standby_build: false,
        }
    }

    async fn reject(
        &self,
        saga_id: Uuid,
        tenant: TenantContext,
        rejection: &Rejection,
        trace: TraceParent,
    ) -> anyhow::Result<()> {
        tracing::info!(code = rejection.code, message = %rejection.message, "signup rejected");
        let (mut saga, event) = Saga::rejected(saga_id, tenant, rejection, self.clock.now());
        saga.trace = Some(trace);
        match self
            .store
            .insert(&saga, std::slice::from_ref(&event))
            .await
            .context("storing the rejection")?
        {
            Inserted::Stored => {
                crate::observe::rejected_at_intake(&saga, self.clock.now());
                self.publish_progress(&[event], saga.trace.as_ref()).await
            }
            Inserted::Duplicate | Inserted::SubdomainTaken(_) => {}
        }
        Ok(())
    }
}

/// What holds `probe`'s subdomain outside the saga store, as the step services see
/// it (every step that can see one, `sees_subdomains`, is asked, at once).
/// An error when a step could not tell or did not answer.
pub(crate) async fn held_elsewhere<B: Bus>(
    bus: &B,
    definition: &SagaDefinition,
    probe: &SubdomainProbe,
) -> anyhow::Result<Option<String>> {
    let replies = futures::future::join_all(
        definition
            .steps
            .iter()
            .filter(|step| step.sees_subdomains)
            .map(|step| async move { (step.name.as_str(), bus.probe(&step.name, probe).await) }),
    )
    .await;
    for (step, reply) in replies {
        let reply = reply.with_context(|| format!("asking the {step} step about the subdomain"))?;
        if let Some(error) = reply.error {
            anyhow::bail!("the {step} step could not tell whether the subdomain is free: {error}");
        }
        if reply.held {
            return Ok(Some(
                reply
                    .reason
                    .unwrap_or_else(|| format!("held according to the {step} step")),
            ));
        }
    }
    Ok(None)
}

/// Reads a signup far enough to route it; unreadable ones go to the dead-letter subject.
pub(crate) async fn route_signup<S: SagaStore, B: Bus>(core: &Core<S, B>, message: Inbound) {
    match parse_signup(&message.payload) {
        ParsedSignup::Unreadable { error } => {
            tracing::warn!(%error, bytes = message.payload.len(), "unreadable signup: sent to the dead-letter subject");
            let letter =
                DeadLetter::new(&message.subject, error, &message.payload, core.clock.now());
            core.set_aside(message, &SetAside::Signup(letter), Settle::Ack)
                .await;
        }
        ParsedSignup::Read { signup_id, outcome } => {
            let raw_subdomain = serde_json::from_slice::<serde_json::Value>(&message.payload)
                .ok()
                .and_then(|v| {
                    v.get("subdomain")
                        .and_then(|s| s.as_str())
                        .map(str::to_string)
                })
                .unwrap_or_default();
            core.router
                .send(
                    signup_id,
                    Work::Signup(
                        message,
                        Box::new(ParsedSignupRead {
                            outcome,
                            raw_subdomain,
                        }),
                    ),
                )
                .await;
        }
    }
}

/// Reads a step report and routes it; a malformed one, or one on another step's
/// subject, is set aside as a dead letter (never redelivered).
pub(crate) async fn route_event<S: SagaStore, B: Bus>(core: &Core<S, B>, message: Inbound) {
    let reason = match serde_json::from_slice::<StepEvent>(&message.payload) {
        // A step reports on its own subject only: a report of another step's work
        // there was delivered where it does not belong (a broker that lost a
        // consumer's filter has been seen doing so) and is not that step's word.
        Ok(event) if message.subject == core.subjects.step_event(&event.step) => {
            return core
                .router
                .send(event.saga_id, Work::Event(message, Box::new(event)))
                .await;
        }
        Ok(event) => format!(
            "a report of step {:?} on another step's subject",
            event.step
        ),
        Err(e) => format!(
            "not a step event ({})",
            contracts::dead_letter::where_it_broke(&e)
        ),
    };
    tracing::error!(%reason, subject = %message.subject, "step event not accepted: set aside");
    let letter = SetAside::Input(StepDeadLetter::new(
        crate::bus::DEAD_LETTER_SOURCE,
        &message.subject,
        reason,
        message.delivered,
        None,
        &message.payload,
        core.clock.now(),
    ));
    core.set_aside(message, &letter, Settle::Term).await;
}
