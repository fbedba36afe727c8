//! The five services as processes against this machine's NATS and MariaDB, with the
//! bench EMULATOR (dev/bench-emulator) in a temporary bench folder and the Master
//! site's STAND-IN (dev/master-standin): what the demo and the pool benchmark run.
//!
//! Whatever a run made on the shared MariaDB is found again by exact name, never by
//! pattern: the signups' databases (named after their subdomains, or after the standby
//! a signup took over) and the standbys' (the `standbys` rows of the run's own saga
//! store, each naming its database).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use contracts::{ProgressEvent, Subjects};
use futures::StreamExt;
use secrets::ExposeSecret as _;
use uuid::Uuid;

use crate::programs::{kill_running_in, sibling, spawn, spawn_bench_serve, Service};

/// What a run is made of.
pub struct Options {
    /// Prefix of every subject and stream; empty for a web app's backend.
    pub namespace: String,
    /// The orchestrator's HTTP address (a free port when taken).
    pub http_addr: std::net::SocketAddr,
    /// `STANDBY_POOL_SIZE`.
    pub pool_size: usize,
    /// `emulator.json` of the bench.
    pub emulator: serde_json::Value,
    /// `FRAPPE_APPS`.
    pub apps: Vec<String>,
    /// `TENANT_DB_LEDGER`.
    pub ledger: String,
    /// Prefix of the temporary folder.
    pub folder_prefix: &'static str,
}

/// A running set of services and what they need.
pub struct World {
    /// The run's folder: logs, the bench, the saga store.
    pub dir: tempfile::TempDir,
    /// The bench folder.
    pub bench: PathBuf,
    /// Subjects and streams of the run's namespace.
    pub subjects: Subjects,
    /// JetStream of the run's connection.
    pub js: jetstream::Context,
    /// The NATS settings the services and this process use.
    pub nats: step_runtime::bus::NatsConfig,
    /// `NATS_URL`.
    pub nats_url: String,
    /// The tenants' MariaDB, as db-step's account.
    pub admin: sqlx::MySqlPool,
    /// The MariaDB URL (`TENANT_DB_ADMIN_URL`).
    pub mysql_url: String,
    /// The ledger database db-step keeps.
    pub ledger: String,
    /// The services' keyring entry (`SAGA_SECRETS_KEYS`).
    pub services_keys: secrets::SecretString,
    /// The web app's private key entry; its public half is `WEB_APP_PUBLIC_KEY`.
    pub web_app_private: secrets::SecretString,
    /// Where the orchestrator's dashboard and API answer.
    pub http_addr: std::net::SocketAddr,
    /// `PROVISIONING_READ_TOKEN`.
    pub read_token: String,
    /// `PROVISIONING_API_SECRET`.
    pub api_secret: String,
    services: Vec<Service>,
    existing_streams: Vec<String>,
}

/// `wanted` when it can be bound, else a free port on its host.
pub fn free_addr(wanted: std::net::SocketAddr) -> anyhow::Result<std::net::SocketAddr> {
    let probe = std::net::TcpListener::bind(wanted)
        .or_else(|_| std::net::TcpListener::bind((wanted.ip(), 0)))?;
    Ok(probe.local_addr()?)
}

/// A random token of 32 hex characters, for the API's read token and write secret.
pub fn token() -> String {
    Uuid::new_v4().simple().to_string()
}

impl World {
    /// Makes the bench folder, starts the services and connects.
    pub async fn start(options: Options) -> anyhow::Result<Self> {
        let nats_url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
        let mysql_url = std::env::var("TENANT_DB_ADMIN_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
        let dir = tempfile::Builder::new()
            .prefix(options.folder_prefix)
            .tempdir()?;
        let bench = dir.path().join("frappe-bench");
        std::fs::create_dir_all(bench.join("sites"))?;
        std::fs::write(
            bench.join("sites/common_site_config.json"),
            r#"{"frappe_user": "frappe", "db_host": "127.0.0.1", "db_port": 3306}"#,
        )?;
        let mut apps_txt = String::from("frappe\n");
        for app in &options.apps {
            apps_txt.push_str(&format!("{app}\n"));
        }
        std::fs::write(bench.join("sites/apps.txt"), apps_txt)?;
        std::fs::write(
            bench.join("emulator.json"),
            serde_json::to_string(&options.emulator)?,
        )?;
        let master_addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        // The web app's key pair: the user step seals the API secret to its public half.
        let web_app_private = secrets::Keyring::generate_entry(&secrets::KeyId::parse("demo-web")?);
        let web_app = secrets::Keyring::parse(web_app_private.expose_secret())?;
        let services_keys = secrets::Keyring::generate_entry(&secrets::KeyId::parse("demo")?);
        let bench_http_port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let http_addr = free_addr(options.http_addr)?;
        let (read_token, api_secret) = (token(), token());
        let env: Vec<(&str, String)> = vec![
            ("NATS_URL", nats_url.clone()),
            ("NATS_NAMESPACE", options.namespace.clone()),
            (
                "SAGA_SECRETS_KEYS",
                services_keys.expose_secret().to_string(),
            ),
            ("WEB_APP_PUBLIC_KEY", web_app.recipient().to_text()),
            (
                "SAGA_STORE_URL",
                format!("sqlite://{}/orchestrator.db", dir.path().display()),
            ),
            ("PARENT_DOMAIN", "localhost".into()),
            ("SAGA_RETRY_BASE_MS", "300".into()),
            ("TENANT_DB_ADMIN_URL", mysql_url.clone()),
            ("TENANT_DB_LEDGER", options.ledger.clone()),
            ("BENCH_DRIVER", "local".into()),
            (
                "BENCH_BIN",
                sibling("bench-emulator")?.display().to_string(),
            ),
            ("BENCH_PATH", bench.display().to_string()),
            (
                "BENCH_HTTP_URL",
                format!("http://127.0.0.1:{bench_http_port}"),
            ),
            ("FRAPPE_APPS", options.apps.join(",")),
            ("STANDBY_POOL_SIZE", options.pool_size.to_string()),
            ("MASTER_STANDIN_ADDR", master_addr.to_string()),
            ("MASTER_SITE_URL", format!("http://{master_addr}")),
            ("MASTER_SITE_NAME", "master.localhost".into()),
            ("MASTER_API_KEY", "demo-key".into()),
            ("MASTER_API_SECRET", "demo-secret".into()),
            // The orchestrator's API and dashboard; the steps' health endpoints on free
            // ports: a deployment on this host keeps its own.
            ("HTTP_ADDR", http_addr.to_string()),
            ("PROVISIONING_READ_TOKEN", read_token.clone()),
            ("PROVISIONING_API_SECRET", api_secret.clone()),
            ("HEALTH_ADDR", "127.0.0.1:0".into()),
        ];
        let mut services = vec![
            spawn(dir.path(), "master-standin", &env)?,
            spawn_bench_serve(dir.path(), &bench, bench_http_port)?,
        ];
        for name in [
            "orchestrator",
            "db-step",
            "site-step",
            "user-step",
            "registry-step",
        ] {
            services.push(spawn(dir.path(), name, &env)?);
        }

        // Credentials from the environment (NATS_USER, NATS_CREDS, ...), which the
        // services started above inherit too.
        let nats = step_runtime::bus::NatsConfig::from_lookup(|k| match k {
            "NATS_URL" => Some(nats_url.clone()),
            _ => std::env::var(k).ok(),
        })?;
        let client = step_runtime::bus::connect(&nats, "demo").await?;
        let js = jetstream::new(client);
        let subjects = Subjects::new(&options.namespace);
        // Without a namespace the streams may be there already (an earlier `--web-app`):
        // those are left as found; the ones made here are deleted at the end.
        // (`get_stream`, which asks the server: `get_stream_no_info` answers Ok for
        // any name, so every stream counted as found and none was ever deleted.)
        let mut existing_streams = Vec::new();
        for stream in subjects.streams() {
            if js.get_stream(&stream).await.is_ok() {
                existing_streams.push(stream);
            }
        }
        step_runtime::bus::ensure_streams(&js, &subjects, 1, step_runtime::bus::DEFAULT_REPORT_TTL)
            .await?;
        let admin = sqlx::MySqlPool::connect(&mysql_url)
            .await
            .context("MariaDB")?;
        Ok(Self {
            dir,
            bench,
            subjects,
            js,
            nats,
            nats_url,
            admin,
            mysql_url,
            ledger: options.ledger,
            services_keys,
            web_app_private,
            http_addr,
            read_token,
            api_secret,
            services,
            existing_streams,
        })
    }

    /// Publishes a signup as the web app does (`Nats-Msg-Id`: its `signup_id`).
    pub async fn publish_signup(&self, signup: &serde_json::Value) -> anyhow::Result<()> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Nats-Msg-Id",
            signup["signup_id"].as_str().unwrap_or_default(),
        );
        self.js
            .publish_with_headers(
                self.subjects.signup_requested(),
                headers,
                serde_json::to_vec(signup)?.into(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }

    /// Follows one saga's progress subject from its first event to its end, handing
    /// each event to `seen`.
    pub async fn follow(
        &self,
        saga_id: Uuid,
        mut seen: impl FnMut(&ProgressEvent),
    ) -> anyhow::Result<ProgressEvent> {
        let stream = self
            .js
            .get_stream(self.subjects.progress_stream())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                filter_subject: self.subjects.progress(&saga_id),
                deliver_policy: jetstream::consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        loop {
            let message = tokio::time::timeout(Duration::from_secs(120), messages.next())
                .await
                .context("no progress for 120 s")?
                .context("progress stream ended")?
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let event: ProgressEvent = serde_json::from_slice(&message.payload)?;
            seen(&event);
            if event.status.is_terminal() {
                return Ok(event);
            }
        }
    }

    /// The orchestrator's saga store (SQLite), which this process only reads (not
    /// opened read-only: a reader of a WAL database needs its shared-memory file, which
    /// a killed orchestrator may have left in any state).
    async fn store(&self) -> anyhow::Result<sqlx::SqlitePool> {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(self.dir.path().join("orchestrator.db"))
            .create_if_missing(false);
        Ok(sqlx::SqlitePool::connect_with(options).await?)
    }

    /// How many standbys are ready, from the store's `standbys` rows (0 while the
    /// orchestrator has not made its store yet).
    pub async fn ready_standbys(&self) -> i64 {
        let Ok(store) = self.store().await else {
            return 0;
        };
        let ready = sqlx::query_scalar("SELECT COUNT(*) FROM standbys WHERE state = 'ready'")
            .fetch_one(&store)
            .await
            .unwrap_or(0);
        store.close().await;
        ready
    }

    /// Waits until `wanted` standbys are ready, at most `limit`.
    pub async fn wait_for_ready_standbys(
        &self,
        wanted: i64,
        limit: Duration,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        while self.ready_standbys().await < wanted {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "fewer than {wanted} standbys ready after {limit:?} (logs in {})",
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(())
    }

    /// The database of every standby the pool made, whatever its state: building,
    /// ready, taken over by a signup (whose database it then is), discarded. With
    /// `unclaimed`, only those no signup took over. A row names its database once the
    /// standby is ready; before, the name is the one db-step derives from the
    /// standby's placeholder subdomain (`sb-<8 hex>`, its site's first label).
    pub async fn standby_databases(&self, unclaimed: bool) -> anyhow::Result<Vec<String>> {
        let store = self.store().await?;
        let rows: Vec<(String, String)> = sqlx::query_as(if unclaimed {
            "SELECT site_name, db_name FROM standbys WHERE claimed_by IS NULL"
        } else {
            "SELECT site_name, db_name FROM standbys"
        })
        .fetch_all(&store)
        .await
        .unwrap_or_default();
        store.close().await;
        let mut names = Vec::new();
        for (site_name, db_name) in rows {
            let placeholder = site_name.split('.').next().unwrap_or_default();
            if !placeholder.is_empty() {
                names.push(db_step::database_name(placeholder));
            }
            if !db_name.is_empty() {
                names.push(db_name);
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Stops the services, then the bench commands a killed step service left
    /// running (every process whose working directory is in the bench folder).
    pub fn stop_services(&mut self) {
        self.services.clear();
        kill_running_in(&self.bench);
    }

    /// Drops each database of `names`, its user and its ledger row, by exact name.
    pub async fn drop_databases(&self, names: &[String]) -> anyhow::Result<()> {
        let ledger = &self.ledger;
        for name in names.iter().filter(|n| !n.is_empty()) {
            sqlx::raw_sql(&format!(
                "DROP DATABASE IF EXISTS `{name}`; DROP USER IF EXISTS '{name}'@'%';"
            ))
            .execute(&self.admin)
            .await
            .with_context(|| format!("dropping {name}"))?;
            let deleted = sqlx::query(&format!(
                "DELETE FROM `{ledger}`.tenant_databases WHERE db_name = ?"
            ))
            .bind(name)
            .execute(&self.admin)
            .await;
            // A ledger db-step never made (it stopped before) has no rows to delete.
            if let Err(e) = deleted {
                if !e.to_string().contains("doesn't exist") {
                    return Err(e).context("deleting a ledger row");
                }
            }
        }
        Ok(())
    }

    /// The databases the ledger names (all of them: for a ledger of the run's own).
    pub async fn ledger_databases(&self) -> Vec<String> {
        sqlx::query_scalar(&format!(
            "SELECT db_name FROM `{}`.tenant_databases",
            self.ledger
        ))
        .fetch_all(&self.admin)
        .await
        .unwrap_or_default()
    }

    /// The databases the ledger names for the sagas `ids` (a signup's own, or the
    /// standby it took over).
    pub async fn ledger_databases_of(&self, ids: &[Uuid]) -> Vec<String> {
        let mut names = Vec::new();
        for id in ids {
            let found: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT db_name FROM `{}`.tenant_databases WHERE saga_id = ?",
                self.ledger
            ))
            .bind(id.to_string())
            .fetch_all(&self.admin)
            .await
            .unwrap_or_default();
            names.extend(found);
        }
        names
    }

    /// Deletes the streams this run made (not those it found).
    pub async fn delete_streams(&self) {
        for stream in self.subjects.streams() {
            if !self.existing_streams.contains(&stream) {
                let _ = self.js.delete_stream(&stream).await;
            }
        }
    }
}
