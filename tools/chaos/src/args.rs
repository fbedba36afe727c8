//! The command line: `--sagas N`, `--seed S` and the knobs of the run, parsed by hand
//! like the other tools of the workspace (no argument crate for a handful of flags).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

/// What one run does.
#[derive(Debug, Clone)]
pub struct Args {
    /// Signups to send.
    pub sagas: usize,
    /// Seed of every random choice the tool makes (faults, kills, pauses, passwords).
    pub seed: u64,
    /// Keep the run's folder (bench, NATS stores, logs) even when every check holds.
    pub keep: bool,
    /// Mean time between two kills.
    pub kill_every: Duration,
    /// Time between two signups.
    pub signup_every: Duration,
    /// Share of the signups that get an injected failure, in percent.
    pub fault_percent: u32,
    /// How long the sagas may take to end before the run is FAILED.
    pub deadline: Duration,
    /// Where the run's folder goes (a `chaos-<id>` folder is made inside).
    pub dir: PathBuf,
    /// MariaDB admin URL (store, ledger and tenant databases); its password shows as
    /// `***` when printed.
    pub mysql: step_runtime::redact::SecretUrl,
    /// Skip the `cargo build` of the service binaries (they must be built already).
    pub no_build: bool,
    /// `RUST_LOG` of the services.
    pub log_level: String,
    /// `STANDBY_POOL_SIZE` of the orchestrators (0: no standby pool).
    pub pool: u32,
}

const USAGE: &str = "usage: chaos [--sagas N] [--seed S] [--keep] [--kill-every-ms MS] \
[--signup-every-ms MS] [--fault-percent P] [--deadline-secs S] [--dir PATH] \
[--mysql URL] [--log-level FILTER] [--pool N] [--no-build]";

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Args> {
    let mut sagas = 200;
    let mut seed = None;
    let mut keep = false;
    let mut kill_every_ms = 1500;
    let mut signup_every_ms = 150;
    let mut fault_percent = 30;
    let mut deadline_secs = None;
    let mut dir = std::env::temp_dir();
    let mut mysql = "mysql://root@127.0.0.1:3306".to_string();
    let mut no_build = false;
    let mut log_level = "debug".to_string();
    let mut pool = 2;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{flag} needs a value; {USAGE}"))
        };
        match flag.as_str() {
            "--sagas" => sagas = value()?.parse().context("--sagas")?,
            "--seed" => seed = Some(value()?.parse().context("--seed")?),
            "--keep" => keep = true,
            "--kill-every-ms" => kill_every_ms = value()?.parse().context("--kill-every-ms")?,
            "--signup-every-ms" => {
                signup_every_ms = value()?.parse().context("--signup-every-ms")?
            }
            "--fault-percent" => fault_percent = value()?.parse().context("--fault-percent")?,
            "--deadline-secs" => deadline_secs = Some(value()?.parse().context("--deadline-secs")?),
            "--dir" => dir = value()?.into(),
            "--mysql" => mysql = value()?,
            "--log-level" => log_level = value()?,
            "--pool" => pool = value()?.parse().context("--pool")?,
            "--no-build" => no_build = true,
            "-h" | "--help" => anyhow::bail!("{USAGE}"),
            other => anyhow::bail!("unknown argument {other}; {USAGE}"),
        }
    }
    anyhow::ensure!(sagas > 0, "--sagas must be at least 1");
    anyhow::ensure!(fault_percent <= 100, "--fault-percent is 0 to 100");
    anyhow::ensure!(kill_every_ms >= 100, "--kill-every-ms must be at least 100");
    Ok(Args {
        sagas,
        seed: seed.unwrap_or_else(rand::random),
        keep,
        kill_every: Duration::from_millis(kill_every_ms),
        signup_every: Duration::from_millis(signup_every_ms),
        fault_percent,
        // Room for the signups to be sent, then for the slowest rollbacks under kills.
        deadline: Duration::from_secs(
            deadline_secs.unwrap_or(180 + 2 * sagas as u64 + sagas as u64 * signup_every_ms / 1000),
        ),
        dir,
        mysql: step_runtime::redact::SecretUrl::new(mysql),
        no_build,
        log_level,
        pool,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> anyhow::Result<Args> {
        parse(line.split_whitespace().map(str::to_string))
    }

    #[test]
    fn defaults_and_flags() {
        let args = parsed("--seed 7").expect("args");
        assert_eq!(
            (args.sagas, args.seed, args.keep, args.pool),
            (200, 7, false, 2)
        );
        let args = parsed("--sagas 30 --seed 1 --keep --kill-every-ms 800 --pool 0").expect("args");
        assert_eq!(
            (args.sagas, args.keep, args.kill_every, args.pool),
            (30, true, Duration::from_millis(800), 0)
        );
    }

    #[test]
    fn the_args_debug_shows_no_password() {
        let args = parsed("--seed 1 --mysql mysql://chaos:Chaos-Pw-3@db:3306").expect("args");
        assert_eq!(args.mysql.expose(), "mysql://chaos:Chaos-Pw-3@db:3306");
        let shown = format!("{args:?}");
        assert!(!shown.contains("Chaos-Pw-3"), "{shown}");
        assert!(shown.contains("chaos:***@db:3306"), "{shown}");
    }

    #[test]
    fn unknown_or_incomplete_flags_are_refused() {
        assert!(parsed("--sagas").is_err());
        assert!(parsed("--what").is_err());
        assert!(parsed("--sagas 0").is_err());
    }
}
