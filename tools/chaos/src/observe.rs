//! What is there at the end of a run, read where a user would look: each saga's status
//! from the orchestrator (`saga.admin.get`), the ledger and the server's databases and
//! users in MariaDB, the bench's `sites/` folder, the Master's records, bench's own log,
//! and the processes still running in the bench folder.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context as _;
use contracts::{SagaStatus, Subjects};
use sqlx::Row as _;
use uuid::Uuid;

use crate::faults::Signup;

/// How a saga ended, as the orchestrator tells it.
#[derive(Debug, Clone, Default)]
pub struct SagaEnd {
    /// `None`: no orchestrator answered, or it knows no such saga.
    pub status: Option<SagaStatus>,
    /// The sealed API secret of a completed saga's result.
    pub sealed_api_secret: Option<String>,
}

/// A folder in `sites/` (or `sites/archived/`) and what the checks need of it.
#[derive(Debug, Clone, Default)]
pub struct SiteFolder {
    /// Its name (the site, or the archive's folder name).
    pub name: String,
    /// `provisioning_saga_id` of its `site_config.json`.
    pub marker: Option<String>,
    /// The tenant database's password, as Frappe keeps it (in clear).
    pub db_password: Option<String>,
    /// Administrator's password, sealed (`provisioning_admin_password`).
    pub sealed_admin_password: Option<String>,
    /// The emulator's users: `(email, enabled)`, standard users left out.
    pub users: Vec<(String, bool)>,
    /// The API secrets in the emulator's `__Auth` table (in clear, as a site can read
    /// them back).
    pub api_secrets: Vec<String>,
}

/// A row of db-step's ledger.
#[derive(Debug, Clone)]
pub struct LedgerRow {
    /// The tenant database.
    pub db_name: String,
    /// The saga that made it.
    pub saga_id: String,
    /// Its user's password, sealed.
    pub sealed_password: Option<String>,
}

/// A row of the standby pool (the saga store's `standbys` table).
#[derive(Debug, Clone, Default)]
pub struct StandbyRow {
    /// Its build saga.
    pub id: String,
    /// The placeholder site it was built under.
    pub site_name: String,
    /// Its database, as the row names it: empty until its build's database step said
    /// it (see [`StandbyRow::database`]).
    pub db_name: String,
    /// `building`, `ready`, `claimed`, `discarding` or `gone`.
    pub state: String,
    /// The signup that took it.
    pub claimed_by: Option<String>,
}

impl StandbyRow {
    /// Its database: the row's, or, before its build said it, the one its placeholder
    /// subdomain gets.
    pub fn database(&self) -> String {
        if self.db_name.is_empty() {
            let subdomain = self.site_name.split('.').next().unwrap_or_default();
            db_step::database_name(subdomain)
        } else {
            self.db_name.clone()
        }
    }

    /// Whether it still holds what its build made (its folder, database and ledger
    /// row are its build saga's): every state but `gone`.
    pub fn live(&self) -> bool {
        self.state != "gone"
    }
}

/// Everything the checks look at.
#[derive(Debug, Default)]
pub struct Observed {
    /// Each planned signup's saga.
    pub sagas: HashMap<Uuid, SagaEnd>,
    /// The ledger.
    pub ledger: Vec<LedgerRow>,
    /// `(database exists, user exists)` by name, for every tenant database name the run
    /// could have made and every name in the ledger.
    pub mariadb: HashMap<String, (bool, bool)>,
    /// Site folders in `sites/`.
    pub sites: Vec<SiteFolder>,
    /// Folders in `sites/archived/`.
    pub archived: Vec<SiteFolder>,
    /// What is left under `sites/.provisioning/` (relative paths).
    pub claims: Vec<String>,
    /// The Master's records: name → `saga_id`.
    pub master: HashMap<String, String>,
    /// bench's `logs/bench.log`.
    pub bench_log: String,
    /// Processes still running in the bench folder: `<pid> <program>`.
    pub bench_processes: Vec<String>,
    /// The final reports the steps remembered (bucket `SAGA_FINISHED_COMMANDS`): the
    /// results of every finished step, rolled back or not, with their sealed secrets.
    pub finished_reports: Vec<(Option<uuid::Uuid>, serde_json::Value)>,
    /// The standby pool's rows, every state (read last: a build started while the
    /// rest was read is listed).
    pub standbys: Vec<StandbyRow>,
}

/// Reads every saga's end, retrying while no orchestrator answers.
pub async fn sagas(
    client: &async_nats::Client,
    subjects: &Subjects,
    signups: &[Signup],
) -> HashMap<Uuid, SagaEnd> {
    let mut ends = HashMap::new();
    for s in signups {
        let mut reply = None;
        for _ in 0..10 {
            reply = crate::signups::get(client, subjects, s.id).await;
            if reply.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        let end = reply.map(|r| SagaEnd {
            status: r.saga.map(|saga| saga.status),
            sealed_api_secret: r.timeline.iter().rev().find_map(|e| {
                e.result
                    .as_ref()?
                    .get("api_secret")?
                    .as_str()
                    .map(str::to_string)
            }),
        });
        ends.insert(s.id, end.unwrap_or_default());
    }
    ends
}

/// Every report in the finished-commands bucket, read from its stream without
/// consuming it.
pub async fn finished_reports(
    client: &async_nats::Client,
    subjects: &Subjects,
) -> anyhow::Result<Vec<(Option<uuid::Uuid>, serde_json::Value)>> {
    use async_nats::jetstream::consumer::{pull, DeliverPolicy};
    use futures::StreamExt as _;
    let js = async_nats::jetstream::new(client.clone());
    let stream_name = format!("KV_{}", subjects.finished_commands_bucket());
    let mut stream = js
        .get_stream(&stream_name)
        .await
        .map_err(|e| anyhow::anyhow!("opening {stream_name}: {e}"))?;
    let total = stream
        .info()
        .await
        .map_err(|e| anyhow::anyhow!("reading {stream_name}: {e}"))?
        .state
        .messages;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("reading {stream_name}: {e}"))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| anyhow::anyhow!("reading {stream_name}: {e}"))?;
    let mut reports = Vec::new();
    while (reports.len() as u64) < total {
        match tokio::time::timeout(std::time::Duration::from_secs(5), messages.next()).await {
            Ok(Some(Ok(message))) => {
                // The key is the command id, `<saga id>:...`, escaped: the id's hex
                // digits and hyphens come through as they are.
                let saga = message
                    .subject
                    .rsplit('.')
                    .next()
                    .and_then(|key| key.get(..36))
                    .and_then(|id| uuid::Uuid::parse_str(id).ok());
                reports.push((
                    saga,
                    serde_json::from_slice(&message.payload).unwrap_or_default(),
                ))
            }
            _ => anyhow::bail!("{stream_name}: read {} of {total} reports", reports.len()),
        }
    }
    Ok(reports)
}

/// The standby pool's rows, read from the saga store's database `store`.
pub async fn standbys(pool: &sqlx::MySqlPool, store: &str) -> anyhow::Result<Vec<StandbyRow>> {
    let rows = sqlx::query(&format!(
        "SELECT standby_id, site_name, db_name, state, claimed_by FROM `{store}`.standbys ORDER BY created_at"
    ))
    .fetch_all(pool)
    .await
    .context("reading the standby pool")?;
    Ok(rows
        .iter()
        .map(|r| StandbyRow {
            id: r.get("standby_id"),
            site_name: r.get("site_name"),
            db_name: r.get("db_name"),
            state: r.get("state"),
            claimed_by: r.get("claimed_by"),
        })
        .collect())
}

/// The standby databases a pool's rows name, to look for as well: those of the pool
/// as it is while the databases are read (a row's `database()`).
pub async fn standby_databases(pool: &sqlx::MySqlPool, store: &str) -> Vec<String> {
    standbys(pool, store)
        .await
        .map(|rows| rows.iter().map(StandbyRow::database).collect())
        .unwrap_or_default()
}

/// Reads the ledger and which databases and users exist: those of the signups'
/// names, of the ledger's rows and `more`.
pub async fn mariadb(
    pool: &sqlx::MySqlPool,
    ledger: &str,
    signups: &[Signup],
    more: &[String],
) -> anyhow::Result<(Vec<LedgerRow>, HashMap<String, (bool, bool)>)> {
    let rows = sqlx::query(&format!(
        "SELECT db_name, saga_id, db_password FROM `{ledger}`.tenant_databases"
    ))
    .fetch_all(pool)
    .await
    .context("reading the ledger")?;
    let ledger: Vec<LedgerRow> = rows
        .iter()
        .map(|r| LedgerRow {
            db_name: r.get("db_name"),
            saga_id: r.get("saga_id"),
            sealed_password: r.get("db_password"),
        })
        .collect();
    let mut names: Vec<String> = signups
        .iter()
        .map(|s| db_step::database_name(&s.subdomain))
        .collect();
    names.extend(ledger.iter().map(|r| r.db_name.clone()));
    names.extend(more.iter().cloned());
    let mut found = HashMap::new();
    for name in names {
        let db: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        )
        .bind(&name)
        .fetch_one(pool)
        .await
        .context("reading the databases")?;
        let user: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mysql.user WHERE User = ?")
            .bind(&name)
            .fetch_one(pool)
            .await
            .context("reading the users")?;
        found.insert(name, (db > 0, user > 0));
    }
    Ok((ledger, found))
}

fn folder(path: &Path) -> SiteFolder {
    let read = |file: &str| -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(path.join(file)).ok()?).ok()
    };
    let config = read("site_config.json");
    let text = |key: &str| {
        config
            .as_ref()
            .and_then(|c| c.get(key)?.as_str().map(str::to_string))
    };
    let users = read("emulator/users.json")
        .and_then(|u| u.as_object().cloned())
        .map(|users| {
            users
                .iter()
                .filter(|(email, _)| !matches!(email.as_str(), "Administrator" | "Guest"))
                .map(|(email, row)| (email.clone(), row["enabled"].as_i64() == Some(1)))
                .collect()
        })
        .unwrap_or_default();
    let api_secrets = read("emulator/auth.json")
        .and_then(|a| a.as_object().cloned())
        .map(|auth| {
            auth.values()
                .filter_map(|row| row.get("api_secret")?.as_str().map(str::to_string))
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    SiteFolder {
        api_secrets,
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        marker: text("provisioning_saga_id"),
        db_password: text("db_password"),
        sealed_admin_password: text("provisioning_admin_password"),
        users,
    }
}

fn subfolders(path: &Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(path)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Reads the run's bench folder: site folders, archives, claims, bench's log, and the
/// bench commands still running in it.
pub fn bench(world: &crate::world::World, observed: &mut Observed) {
    let root = world.bench.as_path();
    let sites = root.join("sites");
    for path in subfolders(&sites) {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        // `archived` and `.provisioning` are the step's own folders; `assets` is bench's.
        if !matches!(
            name.as_deref(),
            Some("archived" | ".provisioning" | "assets")
        ) {
            observed.sites.push(folder(&path));
        }
    }
    observed.archived = subfolders(&sites.join("archived"))
        .iter()
        .map(|p| folder(p))
        .collect();
    for claim in subfolders(&sites.join(".provisioning")) {
        let inside: Vec<String> = std::fs::read_dir(&claim)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let name = claim.file_name().unwrap_or_default().to_string_lossy();
        observed.claims.push(format!("{name}/{}", inside.join(",")));
    }
    observed.bench_log = std::fs::read_to_string(root.join("logs/bench.log")).unwrap_or_default();
    observed.bench_processes = world
        .bench_commands_running()
        .into_iter()
        .map(|pid| format!("{pid} {}", crate::procs::program_name(pid)))
        .collect();
}

/// The Master stand-in's records: name → `saga_id`.
pub fn master(master: &master_standin::Shared) -> HashMap<String, String> {
    master
        .lock()
        .expect("master")
        .records
        .iter()
        .map(|(name, record)| {
            (
                name.clone(),
                record["saga_id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}
