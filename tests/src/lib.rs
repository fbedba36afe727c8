//! End-to-end harness: every test gets its own nats-server (JetStream, the deployment's
//! users and permissions from `deploy/nats/auth.conf`; subjects and streams without a
//! namespace, as in production), its own saga store file and its own tenant names, runs
//! the real orchestrator and step runtime against it and the machine's MariaDB, every
//! service as its own NATS user, and cleans up.
//!
//! Positions 2-4 of the saga (site, admin_user, registration) are served here by
//! [`ScriptedStep`]s, which journal what they were asked to do and fail on request.

mod bench_http;
pub mod docker;
pub mod http_api;
mod in_process;
mod leftovers;
pub mod node;
pub mod pool_world;
pub mod private_nats;
mod process;
mod requests;
pub mod sagactl;
pub mod scripted;
pub mod steps;
mod tenants;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};

use async_nats::jetstream;
use contracts::Subjects;
use secrets::ExposeSecret as _;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use bench_http::BenchHttp;
pub use leftovers::{admin_pool, assert_no_claims, assert_nothing_left, drop_tenant, mariadb_has};
pub use process::{test_log_folder, Processes, Service};
pub use scripted::{Behaviour, Journal, ScriptedStep};
pub use tenants::LEDGER;

/// MariaDB admin URL the tests use (`TEST_MYSQL_URL`).
pub fn mysql_url() -> String {
    std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// Retries `$check` (an async expression returning `bool`) every 50 ms until it holds
/// or `$secs` seconds pass, then panics with `$what`.
#[macro_export]
macro_rules! assert_eventually {
    ($secs:expr, $what:expr, $check:expr) => {{
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs($secs);
        loop {
            if $check {
                break;
            }
            if std::time::Instant::now() > deadline {
                panic!("not true after {}s: {}", $secs, $what);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }};
}

/// A key id for tests.
pub fn key_id(id: &str) -> secrets::KeyId {
    secrets::KeyId::parse(id).expect("key id")
}

/// One test's private world.
pub struct Harness {
    /// Namespace of subjects and streams: empty, the server being this world's own
    /// (the deployment's permissions name subjects without a namespace).
    pub namespace: String,
    /// Names under that namespace.
    pub subjects: Subjects,
    /// This world's nats-server, with the deployment's users.
    pub nats: private_nats::PrivateNats,
    /// Core NATS client of the harness's own user ([`private_nats::TEST_USER`]: may
    /// do anything, to look inside streams).
    pub client: async_nats::Client,
    /// JetStream context of that client.
    pub js: jetstream::Context,
    /// `SAGA_SECRETS_KEYS` of this world: the services' keyring, one key (secret).
    pub keys_text: String,
    /// That keyring, to open what the services sealed.
    pub key: secrets::Keyring,
    /// The web app's keyring: opens the API secret the user step seals to it
    /// (`WEB_APP_PUBLIC_KEY` is its public half).
    pub web_app_key: secrets::Keyring,
    /// Connected as the web app (`web-app`): signups, subdomain checks, progress.
    pub web_app: async_nats::Client,
    /// Connected as an operator (`operator`): `saga.admin.*`.
    pub operator: async_nats::Client,
    /// Holds the store file.
    pub dir: tempfile::TempDir,
    /// Short unique suffix for tenant names.
    pub suffix: String,
    /// Where the service processes of this test write their output:
    /// `target/test-logs/<test binary>/<test>/`, emptied when the test starts and
    /// kept afterwards (its path is printed when the test fails).
    pub logs: PathBuf,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// `bench serve` per bench folder, started when first needed.
    servers: Mutex<Vec<Arc<BenchHttp>>>,
    /// The tenant databases this world's names may get, dropped when it finishes or
    /// drops.
    tenants: tenants::Tenants,
}

impl Harness {
    /// A fresh namespace with its streams declared.
    pub async fn new() -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .with_test_writer()
            .try_init();
        let id = Uuid::new_v4().simple().to_string();
        let namespace = String::new();
        let subjects = Subjects::new(&namespace);
        let dir = tempfile::tempdir().expect("tempdir");
        let nats = private_nats::PrivateNats::start_with_auth(&dir.path().join("nats"));
        // Declared as the orchestrator declares them (steps started first wait for them).
        let orchestrator = nats.connect_as("orchestrator").await;
        step_runtime::bus::ensure_streams(
            &jetstream::new(orchestrator),
            &subjects,
            1,
            step_runtime::bus::DEFAULT_REPORT_TTL,
        )
        .await
        .expect("declare streams");
        let client = nats.connect_as(private_nats::TEST_USER).await;
        let js = jetstream::new(client.clone());
        let keys_text = secrets::Keyring::generate_entry(&key_id("services"))
            .expose_secret()
            .to_string();
        Self {
            key: secrets::Keyring::parse(&keys_text).expect("keyring"),
            keys_text,
            web_app_key: secrets::Keyring::random(&key_id("web-app")),
            namespace,
            subjects,
            web_app: nats.connect_as("web-app").await,
            operator: nats.connect_as("operator").await,
            nats,
            client,
            js,
            dir,
            suffix: id[..6].to_string(),
            logs: process::test_log_folder(),
            stop: CancellationToken::new(),
            tasks: Vec::new(),
            servers: Mutex::default(),
            tenants: tenants::Tenants::default(),
        }
    }

    /// A subdomain unique to this test, recorded: its tenant database, user and ledger
    /// row are dropped when the harness finishes or drops.
    pub fn subdomain(&self, name: &str) -> String {
        let subdomain = format!("{name}-{}", self.suffix);
        self.track_subdomain(&subdomain);
        subdomain
    }

    /// The environment the services of this world run with, without NATS credentials
    /// ([`Harness::env_for`] adds a user's).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("NATS_URL", self.nats.url()),
            ("NATS_NAMESPACE", self.namespace.clone()),
            ("SAGA_SECRETS_KEYS", self.keys_text.clone()),
            ("WEB_APP_PUBLIC_KEY", self.web_app_key.recipient().to_text()),
            (
                "SAGA_STORE_URL",
                format!("sqlite://{}/orchestrator.db", self.dir.path().display()),
            ),
            ("PARENT_DOMAIN", "example.test".into()),
            ("TENANT_DB_ADMIN_URL", mysql_url()),
            ("TENANT_DB_LEDGER", LEDGER.into()),
            ("SAGA_STEP_TIMEOUT_SECS", "15".into()),
            ("SAGA_RETRY_BASE_MS", "100".into()),
            ("STEP_ACK_WAIT_SECS", "5".into()),
            ("STEP_SHUTDOWN_GRACE_SECS", "2".into()),
            // No standby pool unless a test is about it (it would build sites of its
            // own beside the test's).
            ("STANDBY_POOL_SIZE", "0".into()),
            // Every service of every test on a free port of its own.
            ("HTTP_ADDR", "127.0.0.1:0".into()),
            ("HEALTH_ADDR", "127.0.0.1:0".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// [`Harness::env`] with NATS user `user`'s credentials (`NATS_USER`,
    /// `NATS_PASSWORD`).
    pub fn env_for(&self, user: &str) -> Vec<(String, String)> {
        let mut env = self.env();
        env.extend(self.nats.env_for(user));
        env
    }

    /// A lookup over [`Harness::env_for`] `user`.
    pub fn lookup(&self, user: &str) -> impl Fn(&str) -> Option<String> + '_ {
        let env = self.env_for(user);
        move |k| {
            env.iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        }
    }

    /// Starts service binary `name` as a process of this world, its output in
    /// `<name>-<tag>.log` under [`Harness::logs`], connected as the NATS user of its
    /// name (the deployment's); `extra` adds or overrides variables.
    /// Services log at `RUST_LOG=debug` (unless `extra` says otherwise), so the tests
    /// that look for secrets in logs see everything a debug log says.
    pub fn spawn_service(&self, name: &str, tag: &str, extra: &[(&str, String)]) -> Service {
        let path = self.logs.join(format!("{name}-{tag}.log"));
        let log = std::fs::File::create(&path).expect("log file");
        let env = if private_nats::DEPLOY_USERS
            .iter()
            .any(|(user, _)| *user == name)
        {
            self.env_for(name)
        } else {
            self.env()
        };
        let child = std::process::Command::new(binary(name))
            .envs(env)
            .env("RUST_LOG", "debug")
            .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        Service::new(name, path, child)
    }

    /// The variables the Frappe steps' processes need, for a bench folder `root` and a
    /// Master stand-in at `master_url` (as [`Harness::start_master`] sets it up); the
    /// bench's web server ([`Harness::bench_http`]) is started for `root`.
    pub fn frappe_env(
        &self,
        root: &std::path::Path,
        master_url: &str,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("BENCH_DRIVER", "local".into()),
            ("BENCH_BIN", binary("bench-emulator").display().to_string()),
            ("BENCH_PATH", root.display().to_string()),
            ("BENCH_HTTP_URL", self.bench_http(root).url.clone()),
            ("FRAPPE_APPS", "erpnext".into()),
            ("SITE_CONCURRENCY", "2".into()),
            ("MASTER_SITE_URL", master_url.into()),
            ("MASTER_SITE_NAME", "master.example.test".into()),
            ("MASTER_API_KEY", "key123".into()),
            ("MASTER_API_SECRET", "secret456".into()),
        ]
    }

    /// Starts the five services as processes; they are killed when the returned
    /// [`Processes`] drops.
    pub fn spawn_all(&self, env: &[(&str, String)]) -> Processes {
        let children = [
            "orchestrator",
            "db-step",
            "site-step",
            "user-step",
            "registry-step",
        ]
        .into_iter()
        .map(|name| (name.to_string(), self.spawn_service(name, "0", env)))
        .collect();
        Processes { children }
    }

    /// Everything the services' processes wrote so far.
    pub fn service_logs(&self) -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(&self.logs).expect("log folder").flatten() {
            if entry.file_name().to_string_lossy().ends_with(".log") {
                all.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        all
    }

    /// Starts the real db-step plus scripted services for positions 2-4; returns
    /// their shared journal.
    pub fn start_steps(&mut self, behaviours: &[(&str, Behaviour)]) -> Journal {
        let journal = Journal::default();
        self.start_db_step();
        for name in ["site", "admin_user", "registration"] {
            let behaviour = behaviours
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, b)| b.clone())
                .unwrap_or_default();
            self.start_scripted(ScriptedStep::new(name, behaviour, journal.clone()));
        }
        journal
    }

    /// A valid signup payload for `subdomain`.
    pub fn signup(&self, id: Uuid, subdomain: &str) -> serde_json::Value {
        serde_json::json!({
            "signup_id": id,
            "organization_name": format!("Org {subdomain}"),
            "subdomain": subdomain,
            "admin_email": "admin@test.com",
            "admin_full_name": "Test Admin",
            "admin_password": "TestPass123!",
            "auth_provider": "password",
        })
    }

    /// Publishes raw bytes on the signup subject as the web app (its NATS user), with
    /// `Nats-Msg-Id` when given.
    pub async fn publish_raw(&self, bytes: Vec<u8>, msg_id: Option<&str>) {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(id) = msg_id {
            headers.insert("Nats-Msg-Id", id);
        }
        jetstream::new(self.web_app.clone())
            .publish_with_headers(self.subjects.signup_requested(), headers, bytes.into())
            .await
            .expect("publish")
            .await
            .expect("signup stored in TENANT_SIGNUPS");
    }

    /// Publishes a signup as the web app does (`Nats-Msg-Id: <signup_id>`).
    pub async fn publish_signup(&self, signup: &serde_json::Value) {
        let id = signup["signup_id"].as_str().expect("signup_id").to_string();
        self.publish_raw(serde_json::to_vec(signup).expect("json"), Some(&id))
            .await;
    }

    /// Stops the in-process services and waits for them.
    pub async fn stop_services(&mut self) {
        self.stop.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        self.stop = CancellationToken::new();
    }

    /// Stops everything and drops the tenants of this world's names (their databases,
    /// users and ledger rows); this world's nats-server, its streams with it, goes when
    /// the harness drops.
    pub async fn finish(mut self) {
        self.stop_services().await;
        let failed = self.tenants.drop_all().await;
        assert!(failed.is_empty(), "tenants not dropped: {failed:?}");
    }
}

/// Builds a workspace binary once per test process and returns its path.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .to_path_buf();
    BUILT.get_or_init(|| {
        let status = demo::programs::workspace_build(false)
            .stdout(Stdio::null())
            .status()
            .expect("cargo build");
        assert!(status.success(), "building the service binaries failed");
    });
    dir.join(name)
}
