//! What each command does with the orchestrator's answers, and what it prints.

use chrono::{DateTime, Utc};
use contracts::admin::{
    BulkReplayRequest, DeadLettersRequest, ListReply, ListRequest, RequeueOutcome, RequeueRequest,
};
use contracts::pool::PoolSetRequest;
use contracts::SagaStatus;

use crate::cli::{Cli, Command, DeadLettersCommand, ListArgs, PoolCommand, ReplayArgs, SignupArgs};
use crate::client::Client;
use crate::error::{self, code, Error};
use crate::render;
use crate::signup::TestSignup;

/// Runs the command line; the exit code when it did its work.
pub async fn run(cli: &Cli) -> Result<u8, Error> {
    // Bad input is told before anything is sent.
    match &cli.command {
        Command::List(args) => {
            let request = list_request(args)?;
            let client = Client::connect(cli).await?;
            list(&client, request, args.all, cli.json).await
        }
        Command::Show { saga } => {
            let client = Client::connect(cli).await?;
            let id = client.resolve(saga).await?;
            let reply = client.get(id).await?;
            error::check(&reply.error)?;
            if cli.json {
                print_json(&reply);
            } else {
                print!("{}", render::saga(&reply));
            }
            Ok(code::OK)
        }
        Command::Watch { saga } => {
            let client = Client::connect(cli).await?;
            let id = client.resolve(saga).await?;
            // Known to the orchestrator: else the watch would wait for nothing. A
            // signup sent a moment ago may not be accepted yet: wait for it a while.
            let known = known_saga(&client, id).await?;
            let latest = known.timeline.last().map_or(0, |e| e.sequence);
            crate::watch::watch(&client, id, latest, cli.json).await
        }
        Command::Replay(args) => replay(cli, args).await,
        Command::DeadLetters(command) => dead_letters(cli, command).await,
        Command::Signup(args) => signup(cli, args).await,
        Command::Pool(command) => pool(cli, command).await,
        Command::Check { subdomain } => {
            let client = Client::connect(cli).await?;
            let reply = client.check(subdomain).await?;
            if cli.json {
                print_json(&reply);
            } else {
                println!("{}", reply.message);
            }
            Ok(if reply.available {
                code::OK
            } else {
                code::REFUSED
            })
        }
    }
}

fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// A status as the contract spells it.
fn status(text: &str) -> Result<SagaStatus, Error> {
    serde_json::from_value(serde_json::Value::String(text.trim().to_lowercase())).map_err(|_| {
        Error::Usage(format!(
            "{text:?} is no saga status: accepted, running, compensating, completed, rolled_back, rejected, compensation_failed"
        ))
    })
}

/// A time: RFC 3339 (`2026-12-06T00:00:00Z`), or an age (`90m`, `24h`, `7d`, `30s`).
fn when(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, Error> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let bad = || {
        Error::Usage(format!(
            "{text:?} is neither a time (2026-12-06T00:00:00Z) nor an age (90m, 24h, 7d)"
        ))
    };
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().map_err(|_| bad())?;
    if number < 0 {
        return Err(Error::Usage(format!(
            "{text:?}: an age cannot be negative (24h means 24 hours ago)"
        )));
    }
    let age = match unit {
        "s" => chrono::Duration::try_seconds(number),
        "m" => chrono::Duration::try_minutes(number),
        "h" => chrono::Duration::try_hours(number),
        "d" => chrono::Duration::try_days(number),
        _ => return Err(bad()),
    };
    age.and_then(|age| now.checked_sub_signed(age))
        .ok_or_else(|| Error::Usage(format!("{text:?} is too long ago to be a time")))
}

fn list_request(args: &ListArgs) -> Result<ListRequest, Error> {
    if let Some(limit) = args.limit.filter(|l| !(1..=500).contains(l)) {
        return Err(Error::Usage(format!(
            "--limit must be 1 to 500, not {limit}"
        )));
    }
    Ok(ListRequest {
        status: args.status.as_deref().map(status).transpose()?,
        limit: args.limit,
        step: args.step.clone(),
        error_code: args.error_code.clone(),
        subdomain: args.subdomain.clone(),
        since: args
            .since
            .as_deref()
            .map(|s| when(s, Utc::now()))
            .transpose()?,
        kind: match args.kind.as_deref() {
            Some("standby_build") => Some(contracts::admin::SagaKind::StandbyBuild),
            Some(_) => Some(contracts::admin::SagaKind::Signup),
            None => None,
        },
        cursor: args.cursor.clone(),
    })
}

async fn list(
    client: &Client,
    mut request: ListRequest,
    all: bool,
    json: bool,
) -> Result<u8, Error> {
    let mut sagas = Vec::new();
    let next = loop {
        let reply = client.list(&request).await?;
        error::check(&reply.error)?;
        sagas.extend(reply.sagas);
        match reply.next_cursor {
            Some(cursor) if all => request.cursor = Some(cursor),
            next => break next,
        }
    };
    if json {
        print_json(&ListReply {
            sagas,
            next_cursor: next,
            error: None,
        });
        return Ok(code::OK);
    }
    if sagas.is_empty() {
        println!("no saga matches");
    } else {
        println!("{}", render::sagas(&sagas));
    }
    if let Some(cursor) = next {
        println!("\nmore: add --cursor {cursor} (or --all)");
    }
    Ok(code::OK)
}

/// Refuses a bulk replay that would replay more than the operator meant: one with
/// no filter (unless `--all` says so), a real one with no reason.
fn check_bulk(args: &ReplayArgs) -> Result<(), Error> {
    let filtered = args.step.is_some()
        || args.error_code.is_some()
        || args.status.is_some()
        || args.since.is_some()
        || args.until.is_some();
    if !filtered && !args.all {
        return Err(Error::Usage(
            "replay --bulk with no filter would replay every replayable saga: add --step, --error-code, --status, --since or --until, or --all if that is what you mean (try --dry-run first)".into(),
        ));
    }
    if !args.dry_run && args.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        return Err(Error::Usage(
            "replay --bulk needs --reason (what was fixed; kept in each saga's timeline), or --dry-run".into(),
        ));
    }
    Ok(())
}

async fn replay(cli: &Cli, args: &ReplayArgs) -> Result<u8, Error> {
    if args.bulk {
        check_bulk(args)?;
        let now = Utc::now();
        let request = BulkReplayRequest {
            step: args.step.clone(),
            error_code: args.error_code.clone(),
            status: args.status.as_deref().map(status).transpose()?,
            since: args.since.as_deref().map(|s| when(s, now)).transpose()?,
            until: args.until.as_deref().map(|s| when(s, now)).transpose()?,
            limit: args.limit,
            dry_run: args.dry_run,
            all: args.all,
            operator: Some(args.operator.clone()),
            reason: args.reason.clone(),
        };
        let client = Client::connect(cli).await?;
        let reply = client.replay_bulk(&request).await?;
        error::check(&reply.error)?;
        if cli.json {
            print_json(&reply);
            return Ok(code::OK);
        }
        if reply.matched.is_empty() {
            println!("no replayable saga matches");
            return Ok(code::OK);
        }
        if reply.dry_run {
            println!(
                "would replay {} saga(s) (dry run: nothing changed):\n{}",
                reply.matched.len(),
                render::sagas(&reply.matched)
            );
            return Ok(code::OK);
        }
        let started = reply.replays.iter().filter(|r| r.accepted).count();
        println!("replayed {started} of {} saga(s):", reply.matched.len());
        for answer in &reply.replays {
            let mark = if answer.accepted {
                "ok     "
            } else {
                "refused"
            };
            println!("  {mark} {}  {}", answer.saga_id, answer.message);
        }
        return Ok(if started == reply.replays.len() {
            code::OK
        } else {
            code::REFUSED
        });
    }
    let client = Client::connect(cli).await?;
    let saga = args.saga.as_deref().unwrap_or_default();
    let id = client.resolve(saga).await?;
    let reply = client
        .replay(id, &args.operator, args.reason.as_deref())
        .await?;
    if cli.json {
        print_json(&reply);
    }
    error::check(&reply.error)?;
    if !cli.json {
        println!("saga {id}: {}", reply.message);
        println!("follow it: sagactl watch {id}");
    }
    Ok(code::OK)
}

async fn dead_letters(cli: &Cli, command: &DeadLettersCommand) -> Result<u8, Error> {
    let client = Client::connect(cli).await?;
    match command {
        DeadLettersCommand::List { limit } => {
            let request = DeadLettersRequest {
                limit: *limit,
                sequence: None,
            };
            let reply = client.dead_letters(&request).await?;
            error::check(&reply.error)?;
            if cli.json {
                print_json(&reply);
            } else if reply.letters.is_empty() {
                println!("no dead letters");
            } else {
                println!("{}", render::dead_letters(&reply.letters));
            }
        }
        DeadLettersCommand::Show { sequence } => {
            let request = DeadLettersRequest {
                limit: None,
                sequence: Some(*sequence),
            };
            let reply = client.dead_letters(&request).await?;
            error::check(&reply.error)?;
            let Some(letter) = reply.letters.first() else {
                return Err(Error::Refused(format!(
                    "no dead letter at sequence {sequence}: see sagactl dead-letters list"
                )));
            };
            if cli.json {
                print_json(letter);
            } else {
                print!("{}", render::dead_letter(letter));
            }
        }
        DeadLettersCommand::Requeue {
            sequence,
            reason,
            operator,
        } => {
            let request = RequeueRequest {
                sequence: *sequence,
                operator: Some(operator.clone()),
                reason: Some(reason.clone()),
            };
            let reply = client.requeue(&request).await?;
            if cli.json {
                print_json(&reply);
            }
            error::check(&reply.error)?;
            if !cli.json {
                println!("{}", reply.message);
                if let (Some(id), Some(RequeueOutcome::Replayed | RequeueOutcome::Resent)) =
                    (reply.saga_id, reply.outcome)
                {
                    println!("follow it: sagactl watch {id}");
                }
            }
        }
    }
    Ok(code::OK)
}

async fn pool(cli: &Cli, command: &PoolCommand) -> Result<u8, Error> {
    let request = match command {
        PoolCommand::Show => None,
        PoolCommand::Set {
            size,
            reason,
            operator,
        } => {
            if *size > contracts::pool::MAX_POOL_SIZE {
                return Err(Error::Usage(format!(
                    "the pool size must be 0 to {}, not {size}",
                    contracts::pool::MAX_POOL_SIZE
                )));
            }
            if reason.trim().is_empty() {
                return Err(Error::Usage(
                    "pool set needs --reason (why; it is recorded)".into(),
                ));
            }
            Some(PoolSetRequest {
                size: Some(*size),
                clear: false,
                operator: Some(operator.clone()),
                reason: Some(reason.clone()),
            })
        }
        PoolCommand::Clear { reason, operator } => Some(PoolSetRequest {
            size: None,
            clear: true,
            operator: Some(operator.clone()),
            reason: reason.clone(),
        }),
    };
    let client = Client::connect(cli).await?;
    let reply = match &request {
        None => client.pool().await?,
        Some(request) => client.pool_set(request).await?,
    };
    if cli.json {
        print_json(&reply);
    }
    error::check(&reply.error)?;
    if !cli.json {
        print!("{}", render::pool(&reply));
    }
    Ok(code::OK)
}

/// How long `watch` waits for a saga the orchestrator does not know yet (a signup
/// still on its way to being accepted).
const ACCEPT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The saga `id` once the orchestrator knows it; `not_found` only after
/// [`ACCEPT_WAIT`], any other refusal at once.
async fn known_saga(client: &Client, id: uuid::Uuid) -> Result<contracts::admin::GetReply, Error> {
    let deadline = tokio::time::Instant::now() + ACCEPT_WAIT;
    loop {
        let reply = client.get(id).await?;
        let not_found = reply.error.as_ref().is_some_and(|e| e.code == "not_found");
        if !not_found || tokio::time::Instant::now() >= deadline {
            error::check(&reply.error)?;
            return Ok(reply);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn signup(cli: &Cli, args: &SignupArgs) -> Result<u8, Error> {
    let signup = TestSignup::new(args)?;
    let client = Client::connect(cli).await?;
    let id = client.signup(&signup).await?;
    if args.no_watch {
        println!("{id}");
        return Ok(code::OK);
    }
    if !cli.json {
        println!("signup sent: saga {id}");
    }
    crate::watch::watch(&client, id, 0, cli.json).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_ages() {
        let now = Utc::now();
        assert_eq!(
            when("24h", now).expect("age"),
            now - chrono::Duration::hours(24)
        );
        assert_eq!(
            when("7d", now).expect("age"),
            now - chrono::Duration::days(7)
        );
        assert_eq!(
            when("2026-12-06T00:00:00Z", now)
                .expect("time")
                .to_rfc3339(),
            "2026-12-06T00:00:00+00:00"
        );
        for bad in ["", "h", "12", "3w", "yesterday"] {
            assert!(matches!(when(bad, now), Err(Error::Usage(_))), "{bad}");
        }
    }

    /// Ages past what a time can hold, or negative, are usage errors, not a panic.
    #[test]
    fn out_of_range_or_negative_ages_are_refused() {
        let now = Utc::now();
        for bad in [
            "99999999999999d",
            "9223372036854775807s",
            "9223372036854775807m",
            "999999999999h",
            "-5d",
            "-1h",
        ] {
            assert!(matches!(when(bad, now), Err(Error::Usage(_))), "{bad}");
        }
        assert_eq!(when("0s", now).expect("now"), now);
    }

    fn replay_args(args: &[&str]) -> ReplayArgs {
        use clap::Parser as _;
        let cli = Cli::try_parse_from(["sagactl", "replay"].iter().chain(args)).expect("parses");
        match cli.command {
            Command::Replay(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bulk_replay_needs_a_filter_or_all_and_a_reason() {
        let refused =
            |args: &[&str]| matches!(check_bulk(&replay_args(args)), Err(Error::Usage(_)));
        assert!(refused(&["--bulk", "--dry-run"]), "no filter");
        assert!(refused(&["--bulk", "--reason", "fixed"]), "no filter");
        assert!(
            refused(&["--bulk", "--step", "site", "--reason", "  "]),
            "a blank reason"
        );
        for fine in [
            &["--bulk", "--all", "--dry-run"][..],
            &["--bulk", "--all", "--reason", "fixed"],
            &["--bulk", "--step", "site", "--dry-run"],
            &["--bulk", "--since", "24h", "--reason", "fixed"],
        ] {
            assert!(check_bulk(&replay_args(fine)).is_ok(), "{fine:?}");
        }
    }

    #[test]
    fn statuses_are_the_contracts() {
        assert_eq!(
            status("rolled_back").expect("status"),
            SagaStatus::RolledBack
        );
        assert!(matches!(status("failed"), Err(Error::Usage(_))));
    }
}
