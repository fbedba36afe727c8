//! `demo`: provisions "Test Org" the usual way and "Quick Org" from the standby pool,
//! prints both signup-to-ready times, and shows a rollback, live, the way a dashboard
//! following `tenant.progress.<saga_id>` sees it.
//!
//! Starts the five services as processes (orchestrator, db-step, site-step, user-step,
//! registry-step) against the NATS and MariaDB of this machine (module `world` of the
//! crate). Frappe cannot be installed here, so bench is the bench EMULATOR
//! (dev/bench-emulator) in a temporary bench folder, playing the durations observed on
//! a quiet 2-core machine (its FACTS.md, "Durations"), and the Master site is its
//! STAND-IN (dev/master-standin). The pool keeps one standby: "Test Org" signs up
//! while it is still being built, so it takes the usual path; "Quick Org" signs up
//! once it is ready and takes it over. The third signup's `new-site` fails on purpose
//! (a scripted emulator fault) so the rollback can be seen.
//!
//! It prints the orchestrator's dashboard address first, so the sagas can be watched
//! there too. At the end it stops the services and drops what they made on MariaDB,
//! by exact name: the tenants' databases and every standby's (the standby rows of the
//! demo's own saga store name them), their users and ledger rows. `--keep` leaves the
//! services and the dashboard up until Ctrl-C, and the demo tenants' databases and
//! bench folder in place afterwards (the standbys no signup took are dropped still).
//! `--web-app` (with `--keep`) runs them without a namespace, as a backend for a web
//! app, and writes the environment that app needs (module `web_app`).

mod web_app;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use contracts::{ProgressEvent, SagaStatus, StepStatus};
use demo::world::{Options, World};
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

/// Provisions a tenant the usual way and one from the standby pool, and shows a
/// rollback, live.
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

/// The first event of a signup that took a standby over says so.
const FROM_THE_POOL: &str = "using a prepared workspace";

/// One signup followed to its end: its last event, how long from publishing it to
/// that event, and whether it took a standby over.
struct Followed {
    end: ProgressEvent,
    took: Duration,
    from_pool: bool,
}

async fn sign_up(world: &World, signup: serde_json::Value) -> anyhow::Result<Followed> {
    let id: Uuid = serde_json::from_value(signup["signup_id"].clone())?;
    let published = Instant::now();
    world.publish_signup(&signup).await?;
    let mut from_pool = false;
    let end = world
        .follow(id, |event| {
            from_pool |= event.message.contains(FROM_THE_POOL);
            print_event(event);
        })
        .await?;
    Ok(Followed {
        end,
        took: published.elapsed(),
        from_pool,
    })
}

/// Prints a completed signup's workspace, or how it ended.
async fn show_workspace(world: &World, name: &str, followed: &Followed) -> anyhow::Result<()> {
    let end = &followed.end;
    if end.status != SagaStatus::Completed {
        println!(
            "\n  {RED}ended {}{RESET}: {:?}",
            end.status.as_str(),
            end.error
        );
        return Ok(());
    }
    let result = end.result.clone().unwrap_or_default();
    println!(
        "\n  {GREEN}{BOLD}{name} ready{RESET} {} in {BOLD}{:.1}s{RESET}: {} (admin {}, API key {})",
        if followed.from_pool {
            "from the pool"
        } else {
            "the usual way"
        },
        followed.took.as_secs_f64(),
        result["site_url"].as_str().unwrap_or_default(),
        result["admin_email"].as_str().unwrap_or_default(),
        result["api_key"].as_str().unwrap_or("-"),
    );
    let config = std::fs::read_to_string(
        world
            .bench
            .join(format!("sites/{}/site_config.json", end.site_name)),
    )
    .unwrap_or_default();
    let db_name = serde_json::from_str::<serde_json::Value>(&config)
        .ok()
        .and_then(|c| c["db_name"].as_str().map(str::to_string))
        .unwrap_or_default();
    let (db, user) = database_state(&world.admin, &db_name).await?;
    println!(
        "  MariaDB: database {db_name} exists: {db}, its user exists: {user}{}",
        if followed.from_pool {
            " (the standby's name: the ledger, not the name, says whose it is)"
        } else {
            ""
        }
    );
    println!(
        "  site folder sites/{} carries this saga's marker: {}",
        end.site_name,
        config.contains(&end.saga_id.to_string())
    );
    Ok(())
}

/// The demo's three signups.
struct Signups {
    usual: Uuid,
    pooled: Uuid,
    broken: Uuid,
}

/// The three signups, shown live, and both times side by side; then, with `--keep`,
/// the services stay up until Ctrl-C.
async fn show(world: &World, args: &Args, ids: &Signups) -> anyhow::Result<()> {
    let dir = world.dir.path();
    // 1. The pool's standby is still being built: the usual path.
    println!("{BOLD}1. Signup for \"Test Org\"{RESET} while the pool's standby is still being built (saga {})", ids.usual);
    let usual = sign_up(world, serde_json::json!({
        "signup_id": ids.usual, "organization_name": "Test Org", "admin_email": "admin@test.com",
        "admin_full_name": "Test Admin", "admin_password": "TestPass123!", "auth_provider": "password",
    }))
    .await?;
    show_workspace(world, "Workspace", &usual).await?;

    // 2. Once the standby is ready: taken over.
    println!("\n{DIM}  waiting for the pool's standby to be ready...{RESET}");
    world
        .wait_for_ready_standbys(1, Duration::from_secs(180))
        .await?;
    println!(
        "{BOLD}2. Signup for \"Quick Org\"{RESET}, with a standby ready (saga {})",
        ids.pooled
    );
    let pooled = sign_up(world, serde_json::json!({
        "signup_id": ids.pooled, "organization_name": "Quick Org", "admin_email": "owner@quick.org",
        "admin_full_name": "Quick Owner", "admin_password": "QuickPass123!", "auth_provider": "password",
    }))
    .await?;
    show_workspace(world, "Workspace", &pooled).await?;

    // 3. A signup whose site step fails: everything made is undone.
    println!(
        "\n{BOLD}3. Signup for \"Broken Org\"{RESET}, whose new-site fails (saga {})",
        ids.broken
    );
    let broken = sign_up(world, serde_json::json!({
        "signup_id": ids.broken, "organization_name": "Broken Org", "admin_email": "owner@broken.org",
        "admin_full_name": "Broken Owner", "auth_provider": "google",
    }))
    .await?;
    let (db, user) = database_state(&world.admin, &db_step::database_name("broken-org")).await?;
    let site_left = world.bench.join("sites/broken-org.localhost").exists();
    println!(
        "\n  {}{BOLD}{}{RESET}: {}\n  database left: {db}, user left: {user}, site folder left in sites/: {site_left} (archived under sites/archived/)",
        if broken.end.status == SagaStatus::RolledBack { YELLOW } else { RED },
        broken.end.status.as_str(),
        broken.end.error.clone().map(|e| e.message).unwrap_or_default()
    );

    let time = |f: &Followed| {
        if f.end.status == SagaStatus::Completed {
            format!("{:.1} s", f.took.as_secs_f64())
        } else {
            format!("did not complete ({})", f.end.status.as_str())
        }
    };
    println!(
        "\n{BOLD}Signup to ready{RESET}  the usual way: {BOLD}{}{RESET}   from the pool: {BOLD}{}{RESET}{}",
        time(&usual),
        time(&pooled),
        if pooled.from_pool { "" } else { "  (Quick Org found no standby ready: it took the usual way)" }
    );

    if args.web_app {
        web_app::WebAppEnv {
            nats_url: world.nats_url.clone(),
            nats_auth: !matches!(world.nats.auth, step_runtime::bus::NatsAuth::Anonymous),
            saga_public_key: secrets::Keyring::parse(world.services_keys.expose_secret())?
                .recipient()
                .to_text(),
            web_app_private_keys: world.web_app_private.expose_secret().to_string(),
            parent_domain: "localhost".into(),
        }
        .announce(dir)?;
    }
    if args.keep {
        println!(
            "\n{BOLD}--keep:{RESET} the services and the dashboard stay up at {BOLD}http://{}/{RESET} (read token {}); Ctrl-C stops them",
            world.http_addr, world.read_token
        );
        tokio::signal::ctrl_c().await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // A namespace of its own, so that the demo disturbs nothing on a shared server;
    // none for a web app, whose client names subjects as a deployment does.
    let namespace = if args.web_app {
        String::new()
    } else {
        format!("demo{}", &Uuid::new_v4().simple().to_string()[..6])
    };
    let mut world = World::start(Options {
        namespace: namespace.clone(),
        http_addr: args.http_addr,
        pool_size: 1,
        emulator: serde_json::json!({
            "delay_ms": 150,
            "durations": "real",
            "fail": [{"command": "new-site", "site": "broken-org.localhost"}],
        }),
        apps: vec!["erpnext".into()],
        ledger: "saga_provisioning".into(),
        folder_prefix: "saga-demo-",
    })
    .await?;
    let dir = world.dir.path().to_path_buf();
    println!("{BOLD}Tenant provisioning demo{RESET} {DIM}(NATS {}, MariaDB {}, namespace {namespace}){RESET}", world.nats_url, world.mysql_url.split('@').next_back().unwrap_or_default());
    println!("{DIM}  five services as processes; bench = the bench EMULATOR in {}, playing real durations (new-site 14.3 s, install-app erpnext 30 s, each bench call 0.25 s or more: dev/bench-emulator/FACTS.md); Master site = its STAND-IN; a standby pool of 1; logs in {}{RESET}", world.bench.display(), dir.display());
    // The write secret goes to a file only the user can read, not to the terminal.
    let secret_file = dir.join("provisioning-api-secret");
    write_private(&secret_file, &world.api_secret)?;
    println!(
        "{DIM}  dashboard: {BOLD}http://{}/{RESET}{DIM} (read token {}; the secret replays ask for is in {}){RESET}\n",
        world.http_addr,
        world.read_token,
        secret_file.display()
    );
    let ids = Signups {
        usual: Uuid::new_v4(),
        pooled: Uuid::new_v4(),
        broken: Uuid::new_v4(),
    };
    let shown = show(&world, &args, &ids).await;
    // Whatever happened: the services stop, and what they made on MariaDB goes, by
    // exact name: the databases the ledger names for the demo's signups (a standby
    // taken over is its signup's by then), unless --keep, and the standbys' (with
    // --keep, only those no signup took over: a taken one is its tenant's).
    let keep = args.keep && shown.is_ok();
    world.stop_services();
    let tenants = world
        .ledger_databases_of(&[ids.usual, ids.pooled, ids.broken])
        .await;
    let mut dropped = world.standby_databases(keep).await.unwrap_or_default();
    if !keep {
        dropped.extend(tenants.iter().cloned());
    }
    let cleaned = world.drop_databases(&dropped).await;
    world.delete_streams().await;
    shown?;
    cleaned?;
    if keep {
        println!(
            "\n{DIM}--keep: databases {} and {} left in place; the standbys no signup took were dropped{RESET}",
            tenants.join(", "),
            dir.display()
        );
        let _ = world.dir.keep();
    } else {
        println!("\n{DIM}demo tenants and the pool's standbys removed (run with --keep to keep the tenants){RESET}");
    }
    Ok(())
}
