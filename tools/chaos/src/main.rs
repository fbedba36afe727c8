//! `chaos`: signups through every real service while processes die.
//!
//! Starts a three-node NATS cluster on loopback (streams with three replicas), two
//! orchestrators on one MariaDB saga store, two instances of each step service (bench
//! being the bench EMULATOR, the Master site its STAND-IN served in this process), then
//! sends `--sagas N` signups, some with failures injected at a random step, while a
//! loop SIGKILLs random processes at random moments, undos included, and starts them
//! again. When every saga has ended it checks what is left (see `checks.rs`), prints
//! the figures and the checks, and ends with one line: `chaos: ok ...` or
//! `chaos: FAILED <checks> ...`. It exits 0 only when every check holds. The same
//! `--seed` draws the same faults, kills and pauses (their moments still follow the
//! system's pace).
//!
//! ```sh
//! cargo run --release -p chaos -- --sagas 200 --seed 7
//! ```

mod args;
mod checks;
mod cluster;
mod faults;
mod kills;
mod leaks;
mod observe;
mod procs;
mod report;
mod run;
mod signups;
mod world;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::from(2);
        }
    };
    match run::run(args).await {
        Ok(report) => {
            report.print();
            println!("{}", report.last_line());
            if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            println!("chaos: FAILED run: {e:#}");
            ExitCode::FAILURE
        }
    }
}
