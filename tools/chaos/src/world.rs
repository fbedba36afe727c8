//! The run's world: its folder (bench, NATS stores, logs), its names (store
//! and ledger databases, subdomains), the Master stand-in served in this process, the
//! service binaries and the environment they run with; and the cleanup that drops
//! exactly what the run made.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use contracts::Subjects;
use secrets::ExposeSecret as _;

use crate::faults::Signup;
use crate::procs::{Kind, Proc};

/// `PARENT_DOMAIN` of the run's services.
pub const PARENT: &str = "chaos.test";

/// Instances of each step service and of the orchestrator.
pub const INSTANCES: usize = 2;

const MASTER_SITE: &str = "master.chaos.test";
const MASTER_KEY: &str = "chaoskey";

/// A running `bench serve`, killed on drop.
pub struct BenchServe(std::process::Child);

impl Drop for BenchServe {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Names and places of one run.
pub struct World {
    /// Short random id in every name the run makes.
    pub run_id: String,
    /// The run's folder.
    pub dir: PathBuf,
    /// Where every process logs.
    pub logs: PathBuf,
    /// The bench folder.
    pub bench: PathBuf,
    /// Subjects and streams, without a namespace: the cluster is the run's own, and
    /// the bus's permissions (`deploy/nats/auth.conf`) name subjects without one.
    pub subjects: Subjects,
    /// The NATS users' passwords, made up for the run: the deployment's users, and
    /// the tool's own ([`crate::cluster::TOOL_USER`]).
    pub nats_passwords: std::collections::BTreeMap<String, String>,
    /// `SAGA_SECRETS_KEYS`: the services' keyring, one key (secret).
    pub keys_text: String,
    /// The web app's keyring: `WEB_APP_PUBLIC_KEY` is its public half.
    pub web_app: secrets::Keyring,
    /// The Master stand-in's API secret.
    pub master_secret: String,
    /// The saga store's database.
    pub store_db: String,
    /// db-step's ledger database.
    pub ledger_db: String,
    /// MariaDB admin URL.
    pub mysql: String,
    /// Where the service binaries are.
    pub bin_dir: PathBuf,
    /// The pid of the run's `bench serve` (0 before it starts): the bench's web server,
    /// not a bench command, so never counted as one left running.
    pub bench_http_pid: std::sync::atomic::AtomicI32,
}

impl World {
    /// Makes the folder (bench with its `emulator.json`, logs) under `parent_dir`.
    pub fn new(
        parent_dir: &Path,
        mysql: &str,
        signups_plan: &[Signup],
        run_id: String,
    ) -> anyhow::Result<Self> {
        let dir = parent_dir.join(format!("chaos-{run_id}"));
        let logs = dir.join("logs");
        let bench = dir.join("frappe-bench");
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        std::fs::create_dir_all(bench.join("sites"))?;
        std::fs::write(
            bench.join("sites/common_site_config.json"),
            r#"{"frappe_user": "frappe", "db_host": "127.0.0.1", "db_port": 3306}"#,
        )?;
        std::fs::write(bench.join("sites/apps.txt"), "frappe\nerpnext\n")?;
        std::fs::write(
            bench.join("emulator.json"),
            crate::faults::emulator_settings(signups_plan, PARENT).to_string(),
        )?;
        let keys_text = secrets::Keyring::generate_entry(&secrets::KeyId::parse("chaos")?)
            .expose_secret()
            .to_string();
        Ok(Self {
            subjects: Subjects::new(""),
            nats_passwords: crate::cluster::passwords(),
            keys_text,
            web_app: secrets::Keyring::random(&secrets::KeyId::parse("chaos-web")?),
            master_secret: secrets::generate_password(24).expose_secret().to_string(),
            store_db: format!("chaos_{run_id}_store"),
            ledger_db: format!("chaos_{run_id}_ledger"),
            mysql: mysql.trim_end_matches('/').to_string(),
            bin_dir: bin_dir()?,
            bench_http_pid: std::sync::atomic::AtomicI32::new(0),
            run_id,
            dir,
            logs,
            bench,
        })
    }

    /// A pool with the MariaDB admin account.
    pub async fn pool(&self) -> anyhow::Result<sqlx::MySqlPool> {
        sqlx::MySqlPool::connect(&self.mysql)
            .await
            .with_context(|| {
                format!(
                    "connecting to MariaDB at {}",
                    step_runtime::redact::redact_url(&self.mysql)
                )
            })
    }

    /// Runs the Master stand-in on a free port; returns its URL and state.
    pub async fn start_master(&self) -> anyhow::Result<(String, master_standin::Shared)> {
        let state = std::sync::Arc::new(std::sync::Mutex::new(master_standin::Master {
            site_name: MASTER_SITE.into(),
            api_key: MASTER_KEY.into(),
            api_secret: self.master_secret.clone(),
            doctype: "SaaS Tenant".into(),
            ..Default::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(master_standin::serve(listener, state.clone()));
        Ok((url, state))
    }

    /// `bench serve` of the emulator in the run's bench folder (the bench's web server,
    /// which user-step sets passwords through); returns it (stopped on drop) and its
    /// URL. Its output goes to `bench-serve.log` with the other logs.
    pub fn start_bench_http(&self) -> anyhow::Result<(BenchServe, String)> {
        let log = self.logs.join("bench-serve.log");
        let (child, url) =
            demo::programs::bench_serve(&self.bin_dir.join("bench-emulator"), &self.bench, &log)?;
        let pid = i32::try_from(child.id()).unwrap_or_default();
        self.bench_http_pid
            .store(pid, std::sync::atomic::Ordering::Relaxed);
        Ok((BenchServe(child), url))
    }

    /// The environment of every service of the run.
    fn env(
        &self,
        nats_url: &str,
        master_url: &str,
        bench_http_url: &str,
        log_level: &str,
        pool_size: u32,
    ) -> Vec<(String, String)> {
        let bench_bin = self.bin_dir.join("bench-emulator").display().to_string();
        [
            ("NATS_URL", nats_url.to_string()),
            ("NATS_STREAM_REPLICAS", crate::cluster::NODES.to_string()),
            ("SAGA_SECRETS_KEYS", self.keys_text.clone()),
            ("WEB_APP_PUBLIC_KEY", self.web_app.recipient().to_text()),
            (
                "SAGA_STORE_URL",
                format!("{}/{}", self.mysql, self.store_db),
            ),
            ("PARENT_DOMAIN", PARENT.into()),
            ("TENANT_DB_ADMIN_URL", self.mysql.clone()),
            ("TENANT_DB_LEDGER", self.ledger_db.clone()),
            // Short enough that a step whose service was killed is retried soon.
            ("SAGA_STEP_TIMEOUT_SECS", "20".into()),
            ("SAGA_RETRY_BASE_MS", "200".into()),
            ("STEP_ACK_WAIT_SECS", "5".into()),
            ("STEP_SHUTDOWN_GRACE_SECS", "2".into()),
            ("HTTP_ADDR", "127.0.0.1:0".into()),
            ("HEALTH_ADDR", "127.0.0.1:0".into()),
            ("LOG_FORMAT", "json".into()),
            // The secret scan then sees all that a debug log says.
            ("RUST_LOG", log_level.into()),
            ("BENCH_DRIVER", "local".into()),
            ("BENCH_BIN", bench_bin),
            ("BENCH_PATH", self.bench.display().to_string()),
            ("BENCH_HTTP_URL", bench_http_url.into()),
            ("FRAPPE_APPS", "erpnext".into()),
            ("SITE_CONCURRENCY", "2".into()),
            // The standby pool (`--pool`): the kills land inside claims too; the
            // checks count what a standby holds as its build saga's or, once a signup
            // took it, as the signup's.
            ("STANDBY_POOL_SIZE", pool_size.to_string()),
            ("MASTER_SITE_URL", master_url.into()),
            ("MASTER_SITE_NAME", MASTER_SITE.into()),
            ("MASTER_API_KEY", MASTER_KEY.into()),
            ("MASTER_API_SECRET", self.master_secret.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Two instances of the orchestrator and of each step service, not started yet.
    pub fn services(
        &self,
        nats_url: &str,
        master_url: &str,
        bench_http_url: &str,
        log_level: &str,
        pool_size: u32,
    ) -> Vec<Proc> {
        let env = self.env(nats_url, master_url, bench_http_url, log_level, pool_size);
        let mut procs = Vec::new();
        for kind in &Kind::ALL[..5] {
            // Each service as its own NATS user, named like its binary.
            let mut env = env.clone();
            env.push(("NATS_USER".into(), kind.name().into()));
            env.push((
                "NATS_PASSWORD".into(),
                self.nats_passwords[kind.name()].clone(),
            ));
            for i in 0..INSTANCES {
                procs.push(Proc::new(
                    *kind,
                    format!("{}-{i}", kind.name()),
                    self.bin_dir.join(kind.name()),
                    Vec::new(),
                    env.clone(),
                    &self.logs,
                ));
            }
        }
        procs
    }

    /// The bench commands running in the bench folder (its web server left out).
    pub fn bench_commands_running(&self) -> Vec<i32> {
        let server = self
            .bench_http_pid
            .load(std::sync::atomic::Ordering::Relaxed);
        crate::procs::running_in(&self.bench)
            .into_iter()
            .filter(|pid| *pid != server)
            .collect()
    }

    /// Creates the saga store's database (the orchestrator creates its tables).
    pub async fn create_store(&self, pool: &sqlx::MySqlPool) -> anyhow::Result<()> {
        sqlx::raw_sql(&format!("CREATE DATABASE `{}`", self.store_db))
            .execute(pool)
            .await
            .context("creating the saga store's database")?;
        Ok(())
    }

    /// Drops what the run made in MariaDB: the store, the ledger, and each tenant
    /// database and user by the exact names the run's sagas had (`names`).
    pub async fn drop_databases(
        &self,
        pool: &sqlx::MySqlPool,
        names: &[String],
    ) -> anyhow::Result<()> {
        for name in names {
            sqlx::raw_sql(&format!(
                "DROP DATABASE IF EXISTS `{name}`; DROP USER IF EXISTS '{name}'@'%';"
            ))
            .execute(pool)
            .await
            .with_context(|| format!("dropping {name}"))?;
        }
        for db in [&self.store_db, &self.ledger_db] {
            sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS `{db}`"))
                .execute(pool)
                .await
                .with_context(|| format!("dropping {db}"))?;
        }
        Ok(())
    }
}

/// The folder of this executable, where cargo puts the workspace's other binaries.
fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this executable")?;
    Ok(exe
        .parent()
        .context("the executable's folder")?
        .to_path_buf())
}
