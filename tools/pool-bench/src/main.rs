//! `pool-bench`: how long a signup takes, from publishing it to its saga's `completed`
//! event, with a ready standby and with the pool off, bench playing the durations
//! observed on a quiet 2-core machine (the bench EMULATOR's `"durations": "real"`,
//! dev/bench-emulator/FACTS.md "Durations").
//!
//! Two runs of the five services as processes (tools/demo's `world`), each with its own
//! namespace, saga store, bench folder and tenant ledger: one with
//! `STANDBY_POOL_SIZE=N`, whose N standbys are built while the other run, with the pool
//! off, takes its N signups the usual way; then, once all N standbys are ready, the
//! first run's N signups, each taking one over. Signups go one at a time. It prints
//! p50, p99 and max of both, and exits non-zero when a saga did not complete or a
//! signup of the pool's run took no standby. Everything the runs made on MariaDB is
//! dropped by exact name at the end: the ledgers' databases, the standbys' (the `standbys` rows of
//! each run's store), the signups', and the two ledgers.
//!
//! ```sh
//! cargo run --release -p pool-bench -- --signups 10    # --scale 0.1: every duration a tenth
//! ```

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use contracts::SagaStatus;
use demo::world::{Options, World};
use uuid::Uuid;

/// Signup-to-ready with a ready standby and with the pool off.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Signups per path.
    #[arg(long, default_value_t = 10)]
    signups: usize,
    /// Multiplies every bench duration (1: as observed; 0.1: ten times faster).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// `FRAPPE_APPS` (comma separated): each adds its `install-app` to the usual path.
    #[arg(long, default_value = "erpnext")]
    apps: String,
    /// Skip building the workspace's binaries (they must be built already).
    #[arg(long)]
    no_build: bool,
}

/// p50, p99 and max (nearest rank) of `samples`, in seconds.
fn percentiles(samples: &[Duration]) -> (f64, f64, f64) {
    let mut sorted: Vec<f64> = samples.iter().map(Duration::as_secs_f64).collect();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let rank =
        |p: f64| sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
    (rank(0.50), rank(0.99), sorted[sorted.len() - 1])
}

/// What one path measured.
#[derive(Default)]
struct Path {
    /// Signup-to-ready of each completed signup.
    times: Vec<Duration>,
    /// Sagas that ended otherwise, as `<saga> <status>: <error>`.
    failed: Vec<String>,
    /// Completed signups that took a standby over.
    from_pool: usize,
    /// Subdomains signed up for.
    subdomains: Vec<String>,
}

const FROM_THE_POOL: &str = "using a prepared workspace";

async fn sign_up_in_turn(
    world: &World,
    run: &str,
    path: char,
    signups: usize,
    into: &mut Path,
) -> anyhow::Result<()> {
    for i in 0..signups {
        let id = Uuid::new_v4();
        let subdomain = format!("pb{run}-{path}{i}");
        into.subdomains.push(subdomain.clone());
        let signup = serde_json::json!({
            "signup_id": id, "organization_name": format!("Pool bench {path}{i}"),
            "subdomain": subdomain, "admin_email": format!("owner{i}@example.com"),
            "admin_full_name": "Bench Owner", "admin_password": "Quartz-Meadow-42!",
            "auth_provider": "password",
        });
        let published = Instant::now();
        world.publish_signup(&signup).await?;
        let mut took_standby = false;
        let end = world
            .follow(id, |event| {
                took_standby |= event.message.contains(FROM_THE_POOL);
            })
            .await?;
        let took = published.elapsed();
        if end.status == SagaStatus::Completed {
            into.times.push(took);
            into.from_pool += usize::from(took_standby);
        } else {
            into.failed.push(format!(
                "{id} {}: {}",
                end.status.as_str(),
                end.error.map(|e| e.message).unwrap_or_default()
            ));
        }
        println!(
            "  {subdomain}: {} in {:.2} s{}",
            end.status.as_str(),
            took.as_secs_f64(),
            if took_standby {
                " (took a standby over)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// Stops `world` and drops, by exact name, every database it made (with its user and
/// ledger row), then its ledger. Returns the databases dropped.
async fn clean_up(mut world: World, subdomains: &[String]) -> anyhow::Result<Vec<String>> {
    world.stop_services();
    let mut names = world.standby_databases(false).await.unwrap_or_default();
    names.extend(world.ledger_databases().await);
    names.extend(subdomains.iter().map(|s| db_step::database_name(s)));
    names.sort();
    names.dedup();
    let dropped = world.drop_databases(&names).await;
    let ledger = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS `{}`", world.ledger))
        .execute(&world.admin)
        .await
        .context("dropping the ledger");
    world.delete_streams().await;
    dropped?;
    ledger?;
    names.push(world.ledger.clone());
    Ok(names)
}

fn options(run: &str, path: char, pool_size: usize, args: &Args) -> Options {
    Options {
        namespace: format!("pb{run}{path}"),
        // Any free port: the dashboard is not used.
        http_addr: "127.0.0.1:0".parse().expect("address"),
        pool_size,
        emulator: serde_json::json!({
            "delay_ms": 0, "durations": "real", "duration_scale": args.scale,
        }),
        apps: args
            .apps
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect(),
        ledger: format!("pb{run}{path}_ledger"),
        folder_prefix: "pool-bench-",
    }
}

async fn bench(args: &Args, run: &str) -> anyhow::Result<(Path, Path, Vec<String>)> {
    let (mut usual, mut pooled) = (Path::default(), Path::default());
    // The pool's run first: its standbys are built while the usual path is measured.
    // Bench's durations are sleeps, so the two runs do not slow each other.
    let pool_world = World::start(options(run, 'p', args.signups, args)).await?;
    let usual_world = match World::start(options(run, 'u', 0, args)).await {
        Ok(world) => world,
        Err(e) => {
            clean_up(pool_world, &[]).await?;
            return Err(e);
        }
    };
    let mut dropped = Vec::new();
    println!(
        "usual path (pool off), logs in {}:",
        usual_world.dir.path().display()
    );
    let measured = sign_up_in_turn(&usual_world, run, 'u', args.signups, &mut usual).await;
    dropped.extend(clean_up(usual_world, &usual.subdomains).await?);
    let measured = match measured {
        Ok(()) => {
            println!(
                "from the pool (a ready standby each), logs in {}: waiting for {} standbys",
                pool_world.dir.path().display(),
                args.signups
            );
            // A standby build is about new-site plus the apps' installs; two at once.
            let apps = args.apps.split(',').count() as f64;
            let limit = Duration::from_secs_f64(
                120.0 + (15.0 + 30.0 * apps) * args.signups as f64 * args.scale.max(0.01),
            );
            match pool_world
                .wait_for_ready_standbys(args.signups as i64, limit)
                .await
            {
                Ok(()) => sign_up_in_turn(&pool_world, run, 'p', args.signups, &mut pooled).await,
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    dropped.extend(clean_up(pool_world, &pooled.subdomains).await?);
    measured?;
    Ok((usual, pooled, dropped))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Err(e) = demo::programs::build_services(args.no_build) {
        println!("pool-bench: FAILED building: {e:#}");
        return std::process::ExitCode::FAILURE;
    }
    let run = Uuid::new_v4().simple().to_string()[..6].to_string();
    println!(
        "pool-bench: {} signups per path, one at a time; bench = the emulator in real durations x {} (new-site {:.1} s, install-app {:.1} s per app: {}); {} cores",
        args.signups,
        args.scale,
        14.3 * args.scale,
        30.0 * args.scale,
        args.apps,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let (usual, pooled, dropped) = match bench(&args, &run).await {
        Ok(measured) => measured,
        Err(e) => {
            println!("pool-bench: FAILED run: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("signup to ready (publish to the saga's completed event):");
    for (name, path) in [
        ("usual path (pool off)        ", &usual),
        ("from the pool (standby ready)", &pooled),
    ] {
        let (p50, p99, max) = percentiles(&path.times);
        println!(
            "  {name}: p50 {p50:.2} s  p99 {p99:.2} s  max {max:.2} s  ({} completed, {} took a standby over)",
            path.times.len(),
            path.from_pool
        );
    }
    println!("cleaned up: {}", dropped.join(" "));
    let mut problems: Vec<String> = usual.failed.iter().chain(&pooled.failed).cloned().collect();
    if pooled.from_pool < args.signups {
        problems.push(format!(
            "{} of {} signups of the pool's run took a standby over",
            pooled.from_pool, args.signups
        ));
    }
    if usual.from_pool > 0 {
        problems.push("a signup took a standby with the pool off".into());
    }
    let (u50, u99, _) = percentiles(&usual.times);
    let (p50, p99, _) = percentiles(&pooled.times);
    if problems.is_empty() {
        println!(
            "pool-bench: ok signups={} scale={} usual_p50={u50:.2}s usual_p99={u99:.2}s pool_p50={p50:.2}s pool_p99={p99:.2}s",
            args.signups, args.scale
        );
        std::process::ExitCode::SUCCESS
    } else {
        println!("pool-bench: FAILED {}", problems.join("; "));
        std::process::ExitCode::FAILURE
    }
}
