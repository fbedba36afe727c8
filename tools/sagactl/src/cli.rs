//! The command line: every command and option, with its `--help` and examples.

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
How it connects:
  --api URL (or SAGACTL_API): the orchestrator's HTTP API; reads send PROVISIONING_READ_TOKEN
  (or the content of --read-token-file), writes PROVISIONING_API_SECRET (or --secret-file).
  Otherwise NATS: NATS_URL (or --nats-url), as the user of NATS_USER + NATS_PASSWORD,
  NATS_CREDS or NATS_NKEY (operators: NATS_USER=operator), with NATS_CA/NATS_CERT/NATS_KEY
  for TLS and NATS_NAMESPACE where a namespace is used.
  Tokens and passwords are never arguments (those show in `ps` and shell history): sagactl
  takes them from the environment or a file only, and refuses a --nats-url holding one.

Exit codes:
  0  done; watch and signup: the saga completed; check: the subdomain is available
  1  refused by the orchestrator (not found, not replayable, ...); check: not available
  2  wrong command line
  3  the orchestrator could not be reached or did not answer, or the credentials were refused;
     watch and signup: or the saga's events stopped before its end (watch it again)
  4  watch and signup: the saga rolled back
  5  watch and signup: the saga was rejected
  6  watch and signup: the saga ended compensation_failed (an operator must look)";

/// The operators' CLI of the tenant-provisioning saga orchestrator.
#[derive(Debug, Parser)]
#[command(name = "sagactl", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// The orchestrator's HTTP API (http://127.0.0.1:8001); without it, NATS.
    #[arg(long, env = "SAGACTL_API", global = true, value_name = "URL")]
    pub api: Option<String>,
    /// A file holding the HTTP API's read token (Authorization: Bearer), `-` for
    /// standard input; else PROVISIONING_READ_TOKEN. Never the token itself here:
    /// arguments show in `ps` and shell history.
    #[arg(long, global = true, value_name = "FILE")]
    pub read_token_file: Option<std::path::PathBuf>,
    /// A file holding the HTTP API's write secret (X-Provisioning-Secret), for
    /// replays, requeues and signups (it reads too), `-` for standard input; else
    /// PROVISIONING_API_SECRET.
    #[arg(long, global = true, value_name = "FILE")]
    pub secret_file: Option<std::path::PathBuf>,
    /// NATS server(s), comma separated; else NATS_URL, else nats://127.0.0.1:4222.
    /// Without credentials: those go in NATS_USER/NATS_PASSWORD or NATS_CREDS.
    #[arg(long, global = true, value_name = "URL")]
    pub nats_url: Option<String>,
    /// How long to wait for an answer, in seconds.
    #[arg(long, default_value_t = 5, global = true, value_name = "SECS")]
    pub timeout: u64,
    /// Print the API's JSON instead of tables (watch: one event per line).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sagas, newest first, as a table (or --json).
    #[command(after_help = "\
Examples:
  sagactl list --status rolled_back --since 24h
  sagactl list --step registration --error-code registry_unreachable --all
  sagactl list --subdomain acme --json
  sagactl list --kind signup --since 24h                # leave the standby pool's builds out
  sagactl list --limit 20 --cursor 1796545368188.c1609ab0-3763-545a-b960-f6f4fd53e0c3")]
    List(ListArgs),
    /// One saga: its summary, each step's time, attempts, retries and undos, the
    /// timeline and what operators did.
    #[command(after_help = "\
Examples:
  sagactl show acme                                    # the newest saga of subdomain acme
  sagactl show c1609ab0-3763-545a-b960-f6f4fd53e0c3 --json")]
    Show {
        /// The saga's id, or a subdomain (its newest saga).
        saga: String,
    },
    /// Follows a saga live, one progress bar per step, until it ends; the exit code
    /// says how it ended (0 completed, 4 rolled back, 5 rejected, 6
    /// compensation_failed).
    #[command(after_help = "\
Examples:
  sagactl watch acme
  SAGACTL_API=http://127.0.0.1:8001 sagactl watch c1609ab0-3763-545a-b960-f6f4fd53e0c3

Over NATS it reads with a subscription and direct gets (operators may not make consumers);
over HTTP it reads the saga's Server-Sent Events.")]
    Watch {
        /// The saga's id, or a subdomain (its newest saga).
        saga: String,
    },
    /// Replays a rolled_back saga from the start, or resumes the undo of a
    /// compensation_failed one; --bulk replays every one a filter picks.
    #[command(after_help = "\
Examples:
  sagactl replay acme --reason \"registry fixed\"
  sagactl replay --bulk --step registration --error-code registry_unreachable --since 24h --dry-run
  sagactl replay --bulk --step registration --error-code registry_unreachable --since 24h --reason \"registry fixed\"
  sagactl replay --bulk --all --dry-run

--bulk needs a filter (--step, --error-code, --status, --since, --until), or --all to mean
every replayable saga; a bulk run that is not a dry run needs --reason.

Who asked (--operator, else $USER) and why are kept in each saga's timeline.")]
    Replay(ReplayArgs),
    /// What was set aside: signups that could not be read, step commands a step gave
    /// up on, reports the orchestrator gave up on; requeue one once its cause is fixed.
    #[command(
        subcommand,
        after_help = "\
Examples:
  sagactl dead-letters list
  sagactl dead-letters show 12
  sagactl dead-letters requeue 12 --reason \"site-step restarted\""
    )]
    DeadLetters(DeadLettersCommand),
    /// Sends a test signup and follows it to its end (exit code as for watch).
    #[command(after_help = "\
Examples:
  SAGACTL_API=http://127.0.0.1:8001 PROVISIONING_API_SECRET=... \\
    sagactl signup --org \"Test Org\" --email admin@test.org --name \"Test Admin\"
  NATS_USER=web-app NATS_PASSWORD=... SAGA_PUBLIC_KEY=... \\
    sagactl signup --org \"Test Org\" --email admin@test.org --name \"Test Admin\" --subdomain test-org

The admin's password is SAGACTL_SIGNUP_PASSWORD when set, else generated (strong enough for
the sites' password policy); it is never printed. Over HTTP it goes to POST /api/v1/provision.
Over NATS it is sealed to SAGA_PUBLIC_KEY (the services' public key: saga-keys public) as the
web app seals it, and only the web-app user may publish signups: run it as that user.")]
    Signup(SignupArgs),
    /// The standby pool: its size in force and where it comes from, its standbys by
    /// state, claims and misses of the last hour; set its size without a restart, or
    /// go back to STANDBY_POOL_SIZE.
    #[command(
        subcommand,
        after_help = "\
Examples:
  sagactl pool show
  sagactl pool set 3 --reason \"launch day\"
  sagactl pool set 0 --reason \"backend maintenance\"    # drains the pool
  sagactl pool clear --reason \"launch over\"           # back to STANDBY_POOL_SIZE"
    )]
    Pool(PoolCommand),
    /// Whether a subdomain is free (exit 0) or not (exit 1: taken, reserved, invalid).
    #[command(after_help = "\
Examples:
  sagactl check acme
  sagactl check www --json")]
    Check {
        /// The subdomain.
        subdomain: String,
    },
}

/// `list`'s filters and paging.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this status: accepted, running, compensating, completed, rolled_back,
    /// rejected, compensation_failed.
    #[arg(long)]
    pub status: Option<String>,
    /// Only sagas at, or stopped at, this step (database, site, admin_user, registration).
    #[arg(long)]
    pub step: Option<String>,
    /// Only sagas whose error has this code.
    #[arg(long)]
    pub error_code: Option<String>,
    /// Only the sagas of this subdomain.
    #[arg(long)]
    pub subdomain: Option<String>,
    /// Only sagas created since then: a time (2026-12-06T00:00:00Z) or an age (90m,
    /// 24h, 7d).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only signups (`signup`) or only the standby pool's builds (`standby_build`).
    #[arg(long, value_parser = ["signup", "standby_build"])]
    pub kind: Option<String>,
    /// At most this many per page (1 to 500; default 50).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Start after this cursor (the previous page's next cursor).
    #[arg(long, conflicts_with = "all")]
    pub cursor: Option<String>,
    /// Every page, not just the first.
    #[arg(long)]
    pub all: bool,
}

/// `replay`'s arguments.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The saga's id, or a subdomain (its newest saga).
    #[arg(required_unless_present = "bulk", conflicts_with = "bulk")]
    pub saga: Option<String>,
    /// Replay every replayable saga (rolled_back, compensation_failed) the filters pick.
    #[arg(long)]
    pub bulk: bool,
    /// With --bulk: only sagas that stopped at this step.
    #[arg(long, requires = "bulk")]
    pub step: Option<String>,
    /// With --bulk: only sagas whose error has this code.
    #[arg(long, requires = "bulk")]
    pub error_code: Option<String>,
    /// With --bulk: only rolled_back or only compensation_failed sagas.
    #[arg(long, requires = "bulk")]
    pub status: Option<String>,
    /// With --bulk: only sagas created since then (a time, or an age: 24h).
    #[arg(long, requires = "bulk", value_name = "WHEN")]
    pub since: Option<String>,
    /// With --bulk: only sagas created before then (a time, or an age).
    #[arg(long, requires = "bulk", value_name = "WHEN")]
    pub until: Option<String>,
    /// With --bulk and no filter: every replayable saga (up to --limit). Without
    /// it, a bulk replay with no filter is refused.
    #[arg(long, requires = "bulk")]
    pub all: bool,
    /// With --bulk: at most this many (default 100, at most 500).
    #[arg(long, requires = "bulk")]
    pub limit: Option<u32>,
    /// With --bulk: only list what would be replayed; nothing changes.
    #[arg(long, requires = "bulk")]
    pub dry_run: bool,
    /// Why (kept in the timeline): what was fixed. Required unless --dry-run.
    #[arg(long, required_unless_present = "dry_run")]
    pub reason: Option<String>,
    /// Who asks (kept in the timeline).
    #[arg(long, env = "USER", default_value = "sagactl")]
    pub operator: String,
}

/// `dead-letters`' commands.
#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// The newest dead letters.
    #[command(after_help = "\
Examples:
  sagactl dead-letters list
  sagactl dead-letters list --limit 200 --json")]
    List {
        /// At most this many, newest first (default 50, at most 500).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// One dead letter in full (it never holds a secret: a payload shows only its
    /// shape, size and SHA-256).
    #[command(after_help = "\
Examples:
  sagactl dead-letters show 12")]
    Show {
        /// Its sequence (the first column of the list).
        sequence: u64,
    },
    /// Re-drives the saga a step's dead letter names, once its cause is fixed: a saga
    /// that ended rolled_back or compensation_failed is replayed; one still waiting on
    /// the letter's step gets that step's command again (same command id). Recorded in
    /// the saga's timeline; the same letter requeued again does nothing more. A
    /// signup's letter cannot be requeued (it keeps no password): the user signs up
    /// again.
    #[command(after_help = "\
Examples:
  sagactl dead-letters requeue 12 --reason \"site-step restarted\"")]
    Requeue {
        /// Its sequence.
        sequence: u64,
        /// Why (kept in the timeline): what was fixed.
        #[arg(long)]
        reason: String,
        /// Who asks (kept in the timeline).
        #[arg(long, env = "USER", default_value = "sagactl")]
        operator: String,
    },
}

/// `pool`'s commands.
#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// The pool now: size and its source, counts by state, taken and missed in the
    /// last hour, each standby.
    #[command(after_help = "\
Examples:
  sagactl pool show
  SAGACTL_API=http://127.0.0.1:8001 sagactl pool show --json")]
    Show,
    /// Keeps this many standbys building or ready, on every orchestrator and across
    /// restarts, until cleared: a larger size builds more, a smaller one discards the
    /// ready ones beyond it (signups still take them until then), 0 drains the pool.
    #[command(after_help = "\
Examples:
  sagactl pool set 3 --reason \"launch day\"
  sagactl pool set 0 --reason \"backend maintenance\"

Who (--operator, else $USER), when and why are recorded and shown by sagactl pool show.")]
    Set {
        /// The size, 0 to 1000.
        size: u32,
        /// Why (recorded).
        #[arg(long)]
        reason: String,
        /// Who asks (recorded).
        #[arg(long, env = "USER", default_value = "sagactl")]
        operator: String,
    },
    /// Goes back to the configured size (STANDBY_POOL_SIZE).
    #[command(after_help = "\
Examples:
  sagactl pool clear --reason \"launch over\"")]
    Clear {
        /// Why (recorded).
        #[arg(long)]
        reason: Option<String>,
        /// Who asks (recorded).
        #[arg(long, env = "USER", default_value = "sagactl")]
        operator: String,
    },
}

/// `signup`'s arguments.
#[derive(Debug, Args)]
pub struct SignupArgs {
    /// The organization.
    #[arg(long, value_name = "NAME")]
    pub org: String,
    /// The first admin's email.
    #[arg(long)]
    pub email: String,
    /// The first admin's full name.
    #[arg(long, value_name = "FULL NAME")]
    pub name: String,
    /// The subdomain; derived from the organization when absent.
    #[arg(long)]
    pub subdomain: Option<String>,
    /// Print the saga's id and return without following it.
    #[arg(long)]
    pub no_watch: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every command an operator types (and `dead-letters` itself) shows examples in
    /// its `--help`.
    #[test]
    fn every_command_has_examples() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            // clap's own `help` commands are no operator's.
            for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
                let path = format!("{path} {}", sub.get_name());
                let help = sub
                    .get_after_long_help()
                    .or(sub.get_after_help())
                    .map(ToString::to_string)
                    .unwrap_or_default();
                if !(help.contains("Examples:\n") && help.contains("sagactl ")) {
                    missing.push(path.clone());
                }
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        let mut command = Cli::command();
        command.build();
        walk(&command, "sagactl", &mut missing);
        assert!(missing.is_empty(), "no examples in: {missing:?}");
    }

    #[test]
    fn secrets_are_no_arguments() {
        for flag in ["--read-token", "--secret"] {
            let parsed = Cli::try_parse_from(["sagactl", flag, "s3cret-value", "list"]);
            assert!(parsed.is_err(), "{flag} is still accepted");
        }
        let parsed = Cli::try_parse_from([
            "sagactl",
            "--read-token-file",
            "/run/secrets/read",
            "--secret-file",
            "-",
            "list",
        ])
        .expect("files are");
        assert_eq!(
            parsed.secret_file.as_deref(),
            Some(std::path::Path::new("-"))
        );
    }
}
