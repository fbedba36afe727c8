//! `sagactl`: the operators' CLI of the tenant-provisioning saga orchestrator (README,
//! "Operations", "sagactl"). It lists, shows, watches and replays sagas, reads and
//! requeues dead letters, sends a test signup and checks a subdomain, over NATS (as
//! the `operator` user, or whoever `NATS_USER` names) or the HTTP API (`--api`).
//!
//! `cli.rs` is the command line, `commands.rs` what each command does, `client/` the
//! two ways to the orchestrator, `render.rs` the tables, `watch.rs` the live view,
//! `signup.rs` the test signup, `credentials.rs` where secrets come from (never
//! arguments), `error.rs` the errors and exit codes.

mod cli;
mod client;
mod commands;
mod credentials;
mod error;
mod render;
mod signup;
mod watch;

use clap::Parser as _;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(&cli).await {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("sagactl: {e}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}
