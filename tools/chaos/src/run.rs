//! One run from start to cleanup: world, cluster and services up, signups sent while
//! the kill loop runs, every saga waited for, kills stopped and everything restarted,
//! the system left to settle, what is left observed and checked, then everything the
//! run made removed (its folder kept when a check failed, or with `--keep`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream;
use contracts::SagaStatus;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::watch;

use crate::args::Args;
use crate::faults::{Fault, Signup};
use crate::kills::Supervisor;
use crate::observe::Observed;
use crate::procs::Kind;
use crate::report::Report;
use crate::signups::{SharedTracker, Statuses};
use crate::world::{World, PARENT};
use crate::{checks, cluster, leaks, observe, signups};

/// Runs the whole thing and returns its report.
pub async fn run(args: Args) -> anyhow::Result<Report> {
    demo::programs::build_services(args.no_build)?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..6].to_string();
    let signups = crate::faults::plan(
        &mut StdRng::seed_from_u64(args.seed),
        args.sagas,
        &run_id,
        args.fault_percent,
    );
    let world = World::new(&args.dir, args.mysql.expose(), &signups, run_id)?;
    println!(
        "chaos: seed={} sagas={} folder={}",
        args.seed,
        args.sagas,
        world.dir.display()
    );
    let pool = world.pool().await?;
    world.create_store(&pool).await?;
    let (stop_tx, _) = watch::channel(false);
    let outcome = tokio::select! {
        outcome = drive(&args, &world, &signups, &pool, &stop_tx) => outcome,
        () = interrupted() => Err(anyhow::anyhow!("interrupted")),
    };
    // Whatever happened, nothing of the run keeps running: the kill loop stops
    // restarting, and every process with its working directory in the run's folder
    // (services, nodes, benches) is killed.
    let _ = stop_tx.send(true);
    tokio::time::sleep(Duration::from_millis(200)).await;
    crate::procs::kill_running_in(&world.dir);
    let mut names: Vec<String> = signups
        .iter()
        .map(|s| db_step::database_name(&s.subdomain))
        .collect();
    if let Ok(report) = &outcome {
        names.extend(report.observed.ledger.iter().map(|r| r.db_name.clone()));
    }
    // The standbys' databases, whatever became of the run (read from the store).
    names.extend(observe::standby_databases(&pool, &world.store_db).await);
    names.sort();
    names.dedup();
    let dropped = world.drop_databases(&pool, &names).await;
    pool.close().await;
    let keep = args.keep || !outcome.as_ref().is_ok_and(Report::ok);
    if keep {
        println!("chaos: the run's folder is kept: {}", world.dir.display());
    } else {
        std::fs::remove_dir_all(&world.dir)
            .with_context(|| format!("removing {}", world.dir.display()))?;
    }
    dropped?;
    outcome
}

async fn interrupted() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn drive(
    args: &Args,
    world: &World,
    signups: &[Signup],
    pool: &sqlx::MySqlPool,
    stop: &watch::Sender<bool>,
) -> anyhow::Result<Report> {
    let (master_url, master) = world.start_master().await?;
    master.lock().expect("master").refuse_names.extend(
        signups
            .iter()
            .filter(|s| s.fault == Some(Fault::MasterRefusal))
            .map(|s| s.subdomain.clone()),
    );
    let (mut procs, nats_url) = cluster::nodes(
        &world.dir,
        &world.logs,
        &world.run_id,
        &world.nats_passwords,
    )?;
    let (_bench_http, bench_http_url) = world.start_bench_http()?;
    procs.extend(world.services(
        &nats_url,
        &master_url,
        &bench_http_url,
        &args.log_level,
        args.pool,
    ));
    let mut supervisor = Supervisor::new(procs, args.seed, args.kill_every);
    supervisor.start_kind(Kind::Nats)?;
    let client = cluster::connect(&nats_url, &world.nats_passwords[cluster::TOOL_USER]).await?;
    let js = jetstream::new(client.clone());
    cluster::declare_streams(&js, &world.subjects).await?;
    supervisor.start_all_down()?;
    wait_for_orchestrator(&client, world).await?;
    // The first signups find the pool full, so the kills land inside claims from the
    // start (later ones take what the pool rebuilds between `new-site` runs).
    let mut notes = Vec::new();
    if let Some(note) = wait_for_pool(pool, world, args.pool).await {
        notes.push(note);
    }

    let tracker = SharedTracker::default();
    tokio::spawn(signups::follow_progress(
        client.clone(),
        world.subjects.clone(),
        Arc::clone(&tracker),
    ));
    let started = Instant::now();
    let killer = tokio::spawn(supervisor.run(Arc::clone(&tracker), stop.subscribe()));
    let publisher = tokio::spawn(signups::publish_all(
        js.clone(),
        world.subjects.clone(),
        signups.to_vec(),
        master.clone(),
        args.signup_every,
    ));
    let mut statuses: Statuses = signups.iter().map(|s| (s.id, None)).collect();
    let deadline = started + args.deadline;
    let mut shown = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        signups::refresh(&client, &world.subjects, &mut statuses).await;
        let ended = statuses
            .values()
            .filter(|s| s.is_some_and(SagaStatus::is_terminal))
            .count();
        if ended == signups.len() {
            break;
        }
        if Instant::now() > deadline {
            notes.push(format!(
                "deadline of {} s passed with {} sagas not ended",
                args.deadline.as_secs(),
                signups.len() - ended
            ));
            break;
        }
        if shown.elapsed() > Duration::from_secs(10) {
            let undoing = tracker.lock().expect("tracker").compensating_steps().len();
            println!(
                "chaos: {:>5.0} s: {ended}/{} ended, {undoing} compensating",
                started.elapsed().as_secs_f64(),
                signups.len()
            );
            shown = Instant::now();
        }
    }
    let time = started.elapsed();
    if publisher.is_finished() {
        if let Ok(Err(e)) = publisher.await {
            notes.push(format!("publishing failed: {e:#}"));
        }
    } else {
        publisher.abort();
    }

    // Stop killing, bring everything back, and let the system settle before looking.
    let _ = stop.send(true);
    let mut supervisor = killer.await.context("the kill loop panicked")?;
    supervisor.start_all_down()?;
    if let Some(note) = settle(&js, world).await {
        notes.push(note);
    }

    let mut observed = Observed {
        sagas: observe::sagas(&client, &world.subjects, signups).await,
        master: observe::master(&master),
        ..Default::default()
    };
    let standby_dbs = observe::standby_databases(pool, &world.store_db).await;
    (observed.ledger, observed.mariadb) =
        observe::mariadb(pool, &world.ledger_db, signups, &standby_dbs).await?;
    observe::bench(world, &mut observed);
    observed.finished_reports = observe::finished_reports(&client, &world.subjects).await?;
    observed.standbys = observe::standbys(pool, &world.store_db).await?;
    supervisor.kill_all();
    let figures = supervisor.figures.clone();

    let keys = leaks::Keys {
        services: secrets::Keyring::parse(&world.keys_text)?,
        web_app: world.web_app.clone(),
    };
    let mut run_secrets = vec![
        ("SAGA_SECRETS_KEYS", world.keys_text.clone()),
        ("MASTER_API_SECRET", world.master_secret.clone()),
    ];
    run_secrets.extend(
        world
            .nats_passwords
            .values()
            .map(|password| ("a NATS password", password.clone())),
    );
    let all_secrets = leaks::collect(signups, &observed, &keys, &run_secrets);
    let found = leaks::scan(&world.logs, &all_secrets)?;
    notes.push(format!(
        "secret scan: {} secrets over every service and node log; bench's own logs/bench.log not scanned (Frappe writes command lines there, passwords included)",
        all_secrets.len()
    ));
    if args.pool > 0 {
        notes.push(format!(
            "standby pool of {}: {} signups claimed a standby, {} completed with it, {} standbys built",
            args.pool,
            checks::claimed_a_standby(signups, &observed),
            checks::took_a_standby(signups, &observed),
            observed.standbys.len()
        ));
    }
    let checks = checks::all(signups, PARENT, &observed, &figures, found);
    Ok(Report {
        seed: args.seed,
        signups: signups.to_vec(),
        observed,
        figures,
        time,
        checks,
        notes,
    })
}

/// Waits until an orchestrator answers `saga.admin.list` (it has its store and streams).
async fn wait_for_orchestrator(client: &async_nats::Client, world: &World) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let asked = tokio::time::timeout(
            Duration::from_secs(2),
            client.request(world.subjects.admin_list(), "{}".into()),
        )
        .await;
        if let Ok(Ok(_)) = asked {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    anyhow::bail!("no orchestrator answered saga.admin.list within 120 s (see the logs)")
}

/// Waits (120 s at most) until `size` standbys are ready; a note when they never were.
async fn wait_for_pool(pool: &sqlx::MySqlPool, world: &World, size: u32) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut ready = 0;
    while Instant::now() < deadline {
        ready = observe::standbys(pool, &world.store_db)
            .await
            .map(|rows| rows.iter().filter(|r| r.state == "ready").count())
            .unwrap_or(0);
        if ready >= size as usize {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Some(format!(
        "the standby pool had {ready} of {size} ready when the signups started"
    ))
}

/// Waits (60 s at most) until the command and event streams are empty and no bench
/// runs, three seconds in a row; a note when they never were.
async fn settle(js: &jetstream::Context, world: &World) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet_since: Option<Instant> = None;
    let mut last = String::new();
    while Instant::now() < deadline {
        let benches = world.bench_commands_running().len();
        let mut busy = benches > 0;
        last = format!("{benches} bench processes");
        for name in [
            world.subjects.commands_stream(),
            world.subjects.events_stream(),
        ] {
            let messages = match js.get_stream(&name).await {
                Ok(mut stream) => stream.info().await.map(|i| i.state.messages).ok(),
                Err(_) => None,
            };
            busy |= messages != Some(0);
            last.push_str(&format!(", {name}: {messages:?} messages"));
        }
        if busy {
            quiet_since = None;
        } else if quiet_since.get_or_insert_with(Instant::now).elapsed() >= Duration::from_secs(3) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Some(format!(
        "the command and event streams or the bench did not settle within 60 s (last: {last})"
    ))
}
