//! `saga-keys`: makes the key pairs secrets are sealed to (README, "Security"), and
//! prints the public halves of a keyring, which are not secret.
//!
//! ```text
//! saga-keys new 2026-12          # a new key pair named 2026-12
//! saga-keys public < keyring     # the public keys of SAGA_SECRETS_KEYS (or stdin)
//! ```

use std::io::Read as _;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use secrets::ExposeSecret as _;

/// Key pairs for sealed secrets: the services' (SAGA_SECRETS_KEYS, whose public half
/// the web app seals signup passwords to as SAGA_PUBLIC_KEY) and the web app's (whose
/// public half the services seal API secrets to as WEB_APP_PUBLIC_KEY).
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A new key pair: prints its private entry (secret: an entry of SAGA_SECRETS_KEYS,
    /// or of the web app's keyring) and its public key.
    New {
        /// The pair's id, carried in every value sealed to it: 1 to 32 of letters,
        /// digits, '.', '_', '-' (a date such as 2026-12 reads well).
        id: String,
    },
    /// The public key of every entry of a keyring, first the one that seals: read from
    /// SAGA_SECRETS_KEYS when set, else from standard input.
    Public,
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("saga-keys: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::New { id } => {
            let id = secrets::KeyId::parse(&id)?;
            let entry = secrets::Keyring::generate_entry(&id);
            let ring = secrets::Keyring::parse(entry.expose_secret())?;
            println!("private {}", entry.expose_secret());
            println!("public  {}", ring.recipient().to_text());
        }
        Command::Public => {
            let text = match std::env::var("SAGA_SECRETS_KEYS") {
                Ok(text) => text,
                Err(_) => {
                    let mut text = String::new();
                    std::io::stdin()
                        .read_to_string(&mut text)
                        .context("reading a keyring from standard input")?;
                    text
                }
            };
            let ring = secrets::Keyring::parse(text.trim())?;
            for recipient in ring.recipients() {
                println!("{}", recipient.to_text());
            }
        }
    }
    Ok(())
}
