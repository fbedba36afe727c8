//! `demo`: provisions "Test Org" end to end and shows a rollback, live, the way a
//! dashboard following `tenant.progress.<saga_id>` sees it.
//!
//! Starts the five services as processes (orchestrator, db-step, site-step, user-step,
//! registry-step) against the NATS and MariaDB of this machine. Frappe cannot be
//! installed here, so bench is the bench EMULATOR (dev/bench-emulator) in a temporary
//! bench folder and the Master site is its STAND-IN (dev/master-standin). The second
//! signup's app install fails on purpose (a scripted emulator fault) so the rollback
//! can be seen.
//!
//! It prints the orchestrator's dashboard address first, so the two sagas can be
//! watched there too. `--keep` leaves the services and the dashboard up until Ctrl-C,
//! and the demo tenant's database and bench folder in place afterwards. `--web-app`
//! (with `--keep`) runs them without a namespace, as a backend for a web app, and
//! writes the environment that app needs (module `web_app`).

mod web_app;

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use clap::Parser;
use contracts::{ProgressEvent, SagaStatus, StepStatus, Subjects};
use futures::StreamExt;
use secrets::ExposeSecret as _;
use uuid::Uuid;

const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

fn print_event(e: &ProgressEvent) {
    let colour = match (e.status, e.step_status) {
        (SagaStatus::Completed, _) => GREEN,
        (SagaStatus::RolledBack | SagaStatus::Rejected | SagaStatus::CompensationFailed, _) => RED,
        (_, Some(StepStatus::Failed)) => RED,
        (SagaStatus::Compensating, _) => YELLOW,
        _ => "",
    };
    let step = e.step.as_deref().unwrap_or("-");
    let step_status = e
        .step_status
        .map(|s| format!("{s:?}").to_lowercase())
        .unwrap_or_default();
    println!(
        "  {DIM}#{:<3}{RESET} [{:>3}%] {colour}{:<13}{RESET} {:<13} {:<12} {}",
        e.sequence,
        e.percent,
        e.status.as_str(),
        step,
        step_status,
        e.message
    );
}

/// Follows one saga's progress subject from its first event to its end.
async fn follow(
    js: &jetstream::Context,
    subjects: &Subjects,
    saga_id: Uuid,
) -> anyhow::Result<ProgressEvent> {
    let stream = js
        .get_stream(subjects.progress_stream())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: subjects.progress(&saga_id),
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
        let message = tokio::time::timeout(Duration::from_secs(60), messages.next())
            .await
            .context("no progress for 60 s")?
            .context("progress stream ended")?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let event: ProgressEvent = serde_json::from_slice(&message.payload)?;
        print_event(&event);
        if event.status.is_terminal() {
            return Ok(event);
        }
    }
}

async fn publish_signup(
    js: &jetstream::Context,
    subjects: &Subjects,
    signup: &serde_json::Value,
) -> anyhow::Result<()> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        "Nats-Msg-Id",
        signup["signup_id"].as_str().unwrap_or_default(),
    );
    js.publish_with_headers(
        subjects.signup_requested(),
        headers,
        serde_json::to_vec(signup)?.into(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

async fn database_state(admin: &sqlx::MySqlPool, name: &str) -> anyhow::Result<(bool, bool)> {
    let db: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
    )
    .bind(name)
    .fetch_one(admin)
    .await?;
    let user: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mysql.user WHERE User = ?")
        .bind(name)
        .fetch_one(admin)
        .await?;
    Ok((db > 0, user > 0))
}

/// Writes `text` to a new file at `path` that only its owner may read.
fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// A service process of the demo; killed when dropped.
struct Service(std::process::Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(dir: &std::path::Path, name: &str, env: &[(&str, String)]) -> anyhow::Result<Service> {
    let exe = std::env::current_exe()?.with_file_name(name);
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let child = std::process::Command::new(&exe)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (build the workspace's binaries first: dev/demo does)",
                exe.display()
            )
        })?;
    Ok(Service(child))
}

/// `bench serve` of the emulator in `bench`: the bench's web server, which user-step
/// sets the admin's password through.
fn spawn_bench_serve(
    dir: &std::path::Path,
    bench: &std::path::Path,
    port: u16,
) -> anyhow::Result<Service> {
    let exe = std::env::current_exe()?.with_file_name("bench-emulator");
    let log = std::fs::File::create(dir.join("bench-serve.log"))?;
    let child = std::process::Command::new(&exe)
        .args(["serve", "--port", &port.to_string()])
        .current_dir(bench)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {} serve", exe.display()))?;
    Ok(Service(child))
}

/// Provisions a sample tenant end to end and shows a rollback, live.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Leave the services and the dashboard up until Ctrl-C, and the demo tenant's
    /// database and bench folder in place afterwards.
    #[arg(long)]
    keep: bool,
    /// The orchestrator's HTTP address (dashboard and API); a free port when taken.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http_addr: std::net::SocketAddr,
    /// A backend to develop a web app against (examples/nextjs): subjects and streams
    /// without a namespace, as the TypeScript client names them, on this machine's own
    /// NATS server, and the web app's environment written to a file. Needs `--keep`.
    #[arg(long, requires = "keep")]
    web_app: bool,
}

/// `wanted` when it can be bound, else a free port on its host.
fn free_addr(wanted: std::net::SocketAddr) -> anyhow::Result<std::net::SocketAddr> {
    let probe = std::net::TcpListener::bind(wanted)
        .or_else(|_| std::net::TcpListener::bind((wanted.ip(), 0)))?;
    Ok(probe.local_addr()?)
}

/// A random token of 32 hex characters, for the API's read token and write secret.
fn token() -> String {
    Uuid::new_v4().simple().to_string()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let keep = args.keep;
    let nats_url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let mysql_url = std::env::var("TENANT_DB_ADMIN_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
    // A namespace of its own, so that the demo disturbs nothing on a shared server;
    // none for a web app, whose client names subjects as a deployment does.
    let namespace = if args.web_app {
        String::new()
    } else {
        format!("demo{}", &Uuid::new_v4().simple().to_string()[..6])
    };
    let dir = tempfile::Builder::new().prefix("saga-demo-").tempdir()?;
    let bench = dir.path().join("frappe-bench");
    std::fs::create_dir_all(bench.join("sites"))?;
    std::fs::write(
        bench.join("sites/common_site_config.json"),
        r#"{"frappe_user": "frappe", "db_host": "127.0.0.1", "db_port": 3306}"#,
    )?;
    std::fs::write(bench.join("sites/apps.txt"), "frappe\nerpnext\n")?;
    std::fs::write(
        bench.join("emulator.json"),
        r#"{"delay_ms": 150, "fail": [{"command": "install-app", "site": "broken-org.localhost"}]}"#,
    )?;
    let master_addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?
    };
    // The web app's key pair: the user step seals the API secret to its public half.
    let web_app_private = secrets::Keyring::generate_entry(&secrets::KeyId::parse("demo-web")?);
    let web_app = secrets::Keyring::parse(web_app_private.expose_secret())?;
    let services_keys = secrets::Keyring::generate_entry(&secrets::KeyId::parse("demo")?);
    let bench_http_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let http_addr = free_addr(args.http_addr)?;
    let (read_token, api_secret) = (token(), token());
    let env: Vec<(&str, String)> = vec![
        ("NATS_URL", nats_url.clone()),
        ("NATS_NAMESPACE", namespace.clone()),
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
        ("BENCH_DRIVER", "local".into()),
        (
            "BENCH_BIN",
            std::env::current_exe()?
                .with_file_name("bench-emulator")
                .display()
                .to_string(),
        ),
        ("BENCH_PATH", bench.display().to_string()),
        (
            "BENCH_HTTP_URL",
            format!("http://127.0.0.1:{bench_http_port}"),
        ),
        ("FRAPPE_APPS", "erpnext".into()),
        // Both signups take the usual path (the pool's standbys would be left on
        // this machine's MariaDB when the demo stops).
        ("STANDBY_POOL_SIZE", "0".into()),
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
    let subjects = Subjects::new(&namespace);

    println!("{BOLD}Tenant provisioning demo{RESET} {DIM}(NATS {nats_url}, MariaDB {}, namespace {namespace}){RESET}", mysql_url.split('@').next_back().unwrap_or_default());
    println!("{DIM}  five services as processes; bench = the bench EMULATOR in {}, Master site = its STAND-IN; logs in {}{RESET}", bench.display(), dir.path().display());
    // The write secret goes to a file only the user can read, not to the terminal.
    let secret_file = dir.path().join("provisioning-api-secret");
    write_private(&secret_file, &api_secret)?;
    println!(
        "{DIM}  dashboard: {BOLD}http://{http_addr}/{RESET}{DIM} (read token {read_token}; the secret replays ask for is in {}){RESET}\n",
        secret_file.display()
    );
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
    let nats = step_runtime::bus::NatsConfig::from_lookup(|k| std::env::var(k).ok())?;
    let client = step_runtime::bus::connect(&nats, "demo").await?;
    let js = jetstream::new(client);
    // Without a namespace the streams may be there already (an earlier `--web-app`):
    // those are left as found; the ones made here are deleted at the end.
    let mut existing = Vec::new();
    for stream in subjects.streams() {
        if js.get_stream_no_info(&stream).await.is_ok() {
            existing.push(stream);
        }
    }
    step_runtime::bus::ensure_streams(&js, &subjects, 1, step_runtime::bus::DEFAULT_REPORT_TTL)
        .await?;
    let admin = sqlx::MySqlPool::connect(&mysql_url)
        .await
        .context("MariaDB")?;

    // 1. A signup that becomes a workspace.
    let first = Uuid::new_v4();
    println!("{BOLD}1. Signup for \"Test Org\"{RESET} (saga {first})");
    publish_signup(&js, &subjects, &serde_json::json!({
        "signup_id": first, "organization_name": "Test Org", "admin_email": "admin@test.com",
        "admin_full_name": "Test Admin", "admin_password": "TestPass123!", "auth_provider": "password",
    }))
    .await?;
    let started = std::time::Instant::now();
    let end = follow(&js, &subjects, first).await?;
    let db_name = db_step::database_name(&end.subdomain);
    if end.status == SagaStatus::Completed {
        let result = end.result.clone().unwrap_or_default();
        println!(
            "\n  {GREEN}{BOLD}Workspace ready{RESET} in {:.1}s: {} (admin {}, API key {})",
            started.elapsed().as_secs_f64(),
            result["site_url"].as_str().unwrap_or_default(),
            result["admin_email"].as_str().unwrap_or_default(),
            result["api_key"].as_str().unwrap_or("-"),
        );
        let (db, user) = database_state(&admin, &db_name).await?;
        println!("  MariaDB: database {db_name} exists: {db}, its user exists: {user}");
        let config = std::fs::read_to_string(
            bench.join(format!("sites/{}/site_config.json", end.site_name)),
        )
        .unwrap_or_default();
        println!(
            "  site folder sites/{} carries this saga's marker: {}",
            end.site_name,
            config.contains(&first.to_string())
        );
    } else {
        println!(
            "\n  {RED}ended {}{RESET}: {:?}",
            end.status.as_str(),
            end.error
        );
    }

    // 2. A signup whose site step fails: everything made is undone.
    let second = Uuid::new_v4();
    println!(
        "\n{BOLD}2. Signup for \"Broken Org\"{RESET}, whose app install fails (saga {second})"
    );
    publish_signup(&js, &subjects, &serde_json::json!({
        "signup_id": second, "organization_name": "Broken Org", "admin_email": "owner@broken.org",
        "admin_full_name": "Broken Owner", "auth_provider": "google",
    }))
    .await?;
    let end = follow(&js, &subjects, second).await?;
    let (db, user) = database_state(&admin, &db_step::database_name("broken-org")).await?;
    let site_left = bench.join("sites/broken-org.localhost").exists();
    println!(
        "\n  {}{BOLD}{}{RESET}: {}\n  database left: {db}, user left: {user}, site folder left in sites/: {site_left} (archived under sites/archived/)",
        if end.status == SagaStatus::RolledBack { YELLOW } else { RED },
        end.status.as_str(),
        end.error.map(|e| e.message).unwrap_or_default()
    );

    if args.web_app {
        web_app::WebAppEnv {
            nats_url: nats_url.clone(),
            nats_auth: !matches!(nats.auth, step_runtime::bus::NatsAuth::Anonymous),
            saga_public_key: secrets::Keyring::parse(services_keys.expose_secret())?
                .recipient()
                .to_text(),
            web_app_private_keys: web_app_private.expose_secret().to_string(),
            parent_domain: "localhost".into(),
        }
        .announce(dir.path())?;
    }
    if keep {
        println!(
            "\n{BOLD}--keep:{RESET} the services and the dashboard stay up at {BOLD}http://{http_addr}/{RESET} (read token {read_token}); Ctrl-C stops them"
        );
        tokio::signal::ctrl_c().await?;
    }
    drop(services);
    if keep {
        println!(
            "\n{DIM}--keep: database {db_name} and {} left in place{RESET}",
            dir.path().display()
        );
        let _ = dir.keep();
    } else {
        sqlx::raw_sql(&format!(
            "DROP DATABASE IF EXISTS `{db_name}`; DROP USER IF EXISTS '{db_name}'@'%';"
        ))
        .execute(&admin)
        .await?;
        sqlx::query("DELETE FROM saga_provisioning.tenant_databases WHERE db_name = ?")
            .bind(&db_name)
            .execute(&admin)
            .await?;
        println!("\n{DIM}demo tenant removed (run with --keep to keep it){RESET}");
    }
    for stream in subjects.streams() {
        if !existing.contains(&stream) {
            let _ = js.delete_stream(&stream).await;
        }
    }
    Ok(())
}
