//! The standby pool's world, shared by its end-to-end tests (`standby_pool.rs`,
//! `standby_pool_live.rs`, `standby_kill.rs`): a [`Harness`], a bench folder, the
//! Master stand-in, the five services as processes with `STANDBY_POOL_SIZE`, and the
//! orchestrator's own store file, read for the pool's rows.
//!
//! The pool names its standbys itself (`sb-<8 hex>`), so the harness never handed
//! their names out: the world tells it of every saga's subdomain and every standby in
//! its store, so their databases, users and ledger rows are dropped by exact name with
//! the harness. [`PoolWorld::finish`] does so; a world dropped unfinished (a failing
//! test) does so in its `Drop`, after stopping the services, before the harness drops
//! its tenants.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use contracts::SagaStatus;
use orchestrator::store::{SagaStore, SqlStore, Standby, StandbyState};
use uuid::Uuid;

use crate::{Harness, Processes};

/// The first progress message of a signup that took a standby.
pub const PREPARED: &str = "Signup accepted: using a prepared workspace";

/// One pool test's world. Fields are declared so that the harness drops last.
pub struct PoolWorld {
    /// The services' logs, the orchestrator's store file and the tenants to drop.
    pub h: Harness,
    /// The bench folder.
    pub root: PathBuf,
    /// The Master stand-in's records.
    pub master: master_standin::Shared,
    /// The orchestrator's store, opened by the test (unfenced).
    pub store: SqlStore,
    /// What the services were started with (and are restarted with).
    pub env: Vec<(&'static str, String)>,
    /// The five services.
    pub services: Processes,
    /// Restarts so far (each restarted process logs to a file of its own).
    generation: usize,
    /// Whether [`PoolWorld::finish`] ran (then `Drop` has nothing left to do).
    finished: bool,
}

impl PoolWorld {
    /// A world whose pool holds `size` standbys.
    pub async fn start(size: u32) -> Self {
        Self::start_with(vec![("STANDBY_POOL_SIZE", size.to_string())]).await
    }

    /// A world whose services get `extra` besides the Frappe steps' variables
    /// (`STANDBY_POOL_SIZE` among them).
    pub async fn start_with(extra: Vec<(&'static str, String)>) -> Self {
        let mut h = Harness::new().await;
        let root = h.bench_folder(serde_json::json!({"delay_ms": 1}));
        let (url, master) = h.start_master().await;
        let mut env = h.frappe_env(&root, &url);
        env.extend(extra);
        let services = h.spawn_all(&env);
        let store = SqlStore::connect(&store_url(&h))
            .await
            .expect("the orchestrator's store");
        Self {
            h,
            root,
            master,
            store,
            env,
            services,
            generation: 0,
            finished: false,
        }
    }

    /// SIGKILLs service `name`.
    pub fn kill(&mut self, name: &str) {
        self.services.kill(name);
    }

    /// Starts service `name` again, with [`PoolWorld::env`].
    pub fn restart(&mut self, name: &str) {
        self.generation += 1;
        let service = self
            .h
            .spawn_service(name, &self.generation.to_string(), &self.env);
        self.services.children.push((name.to_string(), service));
    }

    /// Stops the services (the pool with them, so it starts no other build), tells the
    /// harness of every saga's subdomain and every standby, then finishes it (their
    /// databases, users and ledger rows dropped).
    pub async fn finish(mut self) {
        self.services.children.clear();
        for name in names_in(&self.store)
            .await
            .expect("the orchestrator's store")
        {
            self.h.track_database(&name);
        }
        self.h.stop_services().await;
        let failed = self.h.tenants.drop_all().await;
        self.finished = true;
        assert!(failed.is_empty(), "tenants not dropped: {failed:?}");
    }

    /// Waits for a ready standby other than those in `not`.
    pub async fn ready_standby(&self, not: &[Uuid]) -> Standby {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ready = self
                .store
                .standbys(Some(StandbyState::Ready))
                .await
                .expect("standbys");
            if let Some(standby) = ready.into_iter().find(|s| !not.contains(&s.id)) {
                return standby;
            }
            assert!(
                Instant::now() < deadline,
                "no standby became ready; pool: {:?}\n{}",
                self.store.standbys(None).await,
                self.h.service_logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The stored state of standby `id`.
    pub async fn state_of(&self, id: Uuid) -> StandbyState {
        self.store
            .standby(id)
            .await
            .expect("standby")
            .expect("stored")
            .state
    }

    /// The status of standby `id`'s build saga, as stored.
    pub async fn build_status(&self, id: Uuid) -> SagaStatus {
        self.store
            .get(id)
            .await
            .expect("saga")
            .expect("the standby's build saga")
            .status
    }

    /// Waits until standby `id` is gone (a discard ends there once its build is undone).
    pub async fn wait_gone(&self, id: Uuid) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.state_of(id).await != StandbyState::Gone {
            assert!(
                Instant::now() < deadline,
                "standby {id} never gone: {:?}\n{}",
                self.store.standby(id).await,
                self.h.service_logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// What a discarded standby must leave once gone: its placeholder folder archived
    /// (none in `sites/`), nothing claimed under its name, no database or user, no
    /// ledger row; its build rolled back.
    pub async fn assert_standby_left_nothing(&self, standby: &Standby) {
        assert_eq!(self.build_status(standby.id).await, SagaStatus::RolledBack);
        assert!(
            !self
                .root
                .join(format!("sites/{}", standby.site_name))
                .exists(),
            "placeholder folder left in sites/"
        );
        crate::assert_no_claims(&self.root, placeholder_of(standby));
        assert_eq!(
            crate::mariadb_has(&standby.db_name).await,
            (false, false),
            "the standby's database or user left"
        );
        assert_eq!(ledger_holder(&standby.db_name).await, None);
    }
}

impl Drop for PoolWorld {
    /// An unfinished world (its test failed): the services stopped first (no build
    /// starts after the store is read), then every name in the store told to the
    /// harness, which drops them when it drops right after. Never a panic here: a
    /// second one, during a failing test's unwinding, aborts.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.services.children.clear();
        let url = store_url(&self.h);
        // The test's runtime may be going away: a thread and a runtime of its own.
        let names = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| format!("a runtime to read the store: {e}"))?;
                    runtime.block_on(async {
                        let store = SqlStore::connect(&url)
                            .await
                            .map_err(|e| format!("the orchestrator's store: {e}"))?;
                        names_in(&store).await
                    })
                })
                .join()
                .unwrap_or_else(|_| Err("reading the store panicked".to_string()))
        });
        match names {
            Ok(names) => {
                for name in names {
                    if tenant_name(&name) {
                        self.h.track_database(&name);
                    } else {
                        eprintln!("not a tenant database name, left alone: {name:?}");
                    }
                }
            }
            Err(e) => eprintln!("the pool's tenants could not be told to the harness: {e}"),
        }
    }
}

/// The URL of the orchestrator's store in `h`'s folder (`SAGA_STORE_URL`).
fn store_url(h: &Harness) -> String {
    format!("sqlite://{}/orchestrator.db", h.dir.path().display())
}

/// Every tenant database a world's store names: each saga's subdomain's (a standby's
/// build saga's is its placeholder's; a used-up standby is no longer listed, its build
/// saga is) and each listed standby's.
async fn names_in(store: &SqlStore) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let sagas = store.list(None, 1000).await.map_err(|e| e.to_string())?;
    for saga in sagas {
        names.push(db_step::database_name(&saga.tenant.subdomain));
    }
    for standby in store.standbys(None).await.map_err(|e| e.to_string())? {
        names.push(db_step::database_name(placeholder_of(&standby)));
        if !standby.db_name.is_empty() {
            names.push(standby.db_name);
        }
    }
    Ok(names)
}

/// Whether `name` is one the harness tracks (`[a-z0-9_]+`, as db-step names them).
fn tenant_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A standby's placeholder subdomain (`sb-<8 hex>`), from its site name.
pub fn placeholder_of(standby: &Standby) -> &str {
    standby
        .site_name
        .split_once('.')
        .map_or(standby.site_name.as_str(), |(sub, _)| sub)
}

/// The saga the database ledger names for `db_name`, if any.
pub async fn ledger_holder(db_name: &str) -> Option<String> {
    sqlx::query_scalar("SELECT saga_id FROM saga_provisioning.tenant_databases WHERE db_name = ?")
        .bind(db_name)
        .fetch_optional(&crate::admin_pool().await)
        .await
        .expect("ledger")
}

/// The `site_config.json` of `site` in bench folder `root`.
pub fn site_config(root: &Path, site: &str) -> serde_json::Value {
    let path = root.join(format!("sites/{site}/site_config.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("site_config")).expect("json")
}

/// The first progress message of saga `id`.
pub async fn first_message(h: &Harness, id: Uuid) -> String {
    h.timeline(id, 1)
        .await
        .first()
        .map(|e| e.message.clone())
        .expect("a first event")
}
