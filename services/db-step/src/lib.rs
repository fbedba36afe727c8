//! The database step: an isolated MariaDB database and user for each tenant.
//!
//! The database and its user share one deterministic name derived from the subdomain
//! (Frappe v15 connects with user = database name), so an undo finds them even when
//! nothing else is left. A ledger table records which saga created which database,
//! and the password it gave its user (sealed): a retry finds its own work done and
//! answers with the same password, and a database or user that exists without a
//! ledger entry of this saga is someone else's and is never touched.
//!
//! The password is chosen once and kept before the user is made, so running the step
//! again never rotates it under a site that already uses it. A ledger entry without a
//! password (made by a release before passwords were kept) or with one this
//! `SAGA_SECRETS_KEYS` cannot open is answered by a new password only when the user does
//! not exist yet (nobody can be using it); when it does, the step fails permanently
//! (`database_password_unknown`) and leaves the user as it is: a site that reached its
//! database keeps reaching it.

pub mod mariadb;
pub mod settings;

use std::future::Future;

use contracts::{Sealed, StepCommand};
use secrets::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use step_runtime::{Step, StepContext, StepError};
use uuid::Uuid;

/// Longest database name we produce: MySQL user names stop at 32 characters.
pub const NAME_MAX_LEN: usize = 32;

/// The database (and user) name of a tenant: `t_<subdomain, `-` as `_`, at most 21
/// characters>_<8 hex digits of SHA-256(subdomain)>`. Matches Frappe's rule
/// (`[a-z0-9_]`, starts with a letter) and stays within 32 characters.
pub fn database_name(subdomain: &str) -> String {
    let readable: String = subdomain
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(21)
        .collect();
    let digest = Sha256::digest(subdomain.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("t_{readable}_{hash}")
}

/// What the step hands to later steps: the site step passes these to `bench new-site`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseOutput {
    /// Database name (`--db-name`).
    pub db_name: String,
    /// User name; equals the database name (Frappe v15 assumes so).
    pub db_user: String,
    /// The user's password, sealed (`--db-password` once opened).
    pub db_password: contracts::Sealed,
}

/// Failures of the MariaDB adapter, classified for the retry policy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Worth retrying: connection lost, deadlock, lock wait timeout, server busy.
    #[error("MariaDB is unavailable: {0}")]
    Unavailable(String),
    /// Retrying cannot help: privileges missing, statement refused.
    #[error("MariaDB refused: {0}")]
    Refused(String),
}

impl From<Error> for StepError {
    fn from(e: Error) -> Self {
        match e {
            Error::Unavailable(m) => StepError::transient("database_unavailable", m),
            Error::Refused(m) => StepError::permanent("database_refused", m),
        }
    }
}

/// Who holds a database name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// The ledger says this saga created it.
    Saga(Uuid),
    /// Nothing in the ledger, but a database or user of that name exists.
    Foreign,
    /// Nothing anywhere.
    Nobody,
}

/// What the step needs from the database server.
pub trait TenantDatabases: Send + Sync + 'static {
    /// Who holds `name`.
    fn holder(&self, name: &str) -> impl Future<Output = Result<Holder, Error>> + Send;
    /// Records `name` as created by `saga`, with its user's `password` (sealed); returns
    /// the holder when another was first.
    fn record(
        &self,
        name: &str,
        saga: Uuid,
        password: &Sealed,
    ) -> impl Future<Output = Result<Option<Uuid>, Error>> + Send;
    /// The sealed password kept with `saga`'s entry for `name`, if any.
    fn kept_password(
        &self,
        name: &str,
        saga: Uuid,
    ) -> impl Future<Output = Result<Option<Sealed>, Error>> + Send;
    /// Keeps `password` (sealed) with `saga`'s entry for `name`, replacing any.
    fn keep_password(
        &self,
        name: &str,
        saga: Uuid,
        password: &Sealed,
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// Whether a database user `name` exists.
    fn user_exists(&self, name: &str) -> impl Future<Output = Result<bool, Error>> + Send;
    /// Creates the database, the user with `password` (or sets it when the user
    /// exists already) and grants the user all on that database only. Idempotent.
    fn create(
        &self,
        name: &str,
        password: &SecretString,
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// Drops the database and the user if they exist, then forgets the ledger entry.
    fn drop_and_forget(
        &self,
        name: &str,
        saga: Uuid,
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// Moves the ledger entry of `name` from saga `from` to saga `to`, with the
    /// password `password` (sealed for `to`), in one conditional write: `false` when
    /// the entry did not name `from` (someone else moved or dropped it first).
    fn adopt(
        &self,
        name: &str,
        from: Uuid,
        to: Uuid,
        password: &Sealed,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
    /// Whether user `name` can log in to database `name` with `password`: `false`
    /// when the server refuses the login or has no such database.
    fn login_works(
        &self,
        name: &str,
        password: &SecretString,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
    /// Whether the server answers (for readiness probes).
    fn ping(&self) -> impl Future<Output = Result<(), Error>> + Send;
}

/// The `database` step over any [`TenantDatabases`].
pub struct DatabaseStep<D> {
    databases: D,
}

impl<D: TenantDatabases> DatabaseStep<D> {
    /// A step that manages tenant databases through `databases`.
    pub fn new(databases: D) -> Self {
        Self { databases }
    }
}

/// A standby that cannot be taken over: the signup takes the usual path instead.
fn unusable(message: String) -> StepError {
    StepError::permanent(contracts::STANDBY_UNUSABLE, message)
}

/// The database name a command's saga works on: the claimed standby's (a claimed site
/// keeps its database), else the one derived from the subdomain.
fn name_for(command: &StepCommand) -> String {
    match &command.tenant.standby {
        Some(standby) => standby.db_name.clone(),
        None => database_name(&command.tenant.subdomain),
    }
}

fn conflict(name: &str, holder: &str) -> StepError {
    StepError::permanent(
        "database_conflict",
        format!("a database or user named {name} already exists and belongs to {holder}; it was left untouched"),
    )
}

impl<D: TenantDatabases> DatabaseStep<D> {
    /// The password this saga's ledger entry keeps for `name`, or a new one (kept) when
    /// the entry has none this key opens and no user exists yet that could be using an
    /// unknown one.
    async fn kept_or_new_password(
        &self,
        name: &str,
        saga: Uuid,
        context: &StepContext,
    ) -> Result<(SecretString, Sealed), StepError> {
        let binding = secrets::Binding::new(saga, secrets::Field::DbPassword);
        let kept = self.databases.kept_password(name, saga).await?;
        let unkept = match &kept {
            Some(sealed) => match context.secrets().open(sealed, binding) {
                Ok(password) => return Ok((password, sealed.clone())),
                Err(_) => "cannot be opened with these SAGA_SECRETS_KEYS",
            },
            None => "was not kept (the database predates kept passwords)",
        };
        if self.databases.user_exists(name).await? {
            return Err(StepError::permanent(
                "database_password_unknown",
                format!("database {name} was made by this signup, but its user's password {unkept}; the user was left as it is, so whatever uses it keeps working"),
            ));
        }
        tracing::info!(db = %name, reason = unkept, "no usable kept password and no user yet: choosing one");
        let password = secrets::generate_password(32);
        let sealed = context.secrets().seal(password.expose_secret(), binding);
        self.databases.keep_password(name, saga, &sealed).await?;
        Ok((password, sealed))
    }
}

impl<D: TenantDatabases> DatabaseStep<D> {
    /// Takes over the database of the standby `standby` for this saga: its kept
    /// password opened with the standby's binding and sealed again with this saga's,
    /// the login checked, then the ledger entry moved in one conditional write. Run
    /// again (a retry after any crash), it finds the entry already this saga's.
    async fn adopt(
        &self,
        command: &StepCommand,
        standby: &contracts::StandbyRef,
        context: &StepContext,
    ) -> Result<(SecretString, Sealed), StepError> {
        let name = &standby.db_name;
        let saga = command.saga_id;
        match self.databases.holder(name).await? {
            Holder::Saga(id) if id == saga => {
                tracing::info!(db = %name, "standby database already this saga's");
                return self.kept_or_new_password(name, saga, context).await;
            }
            Holder::Saga(id) if id == standby.saga_id => {}
            Holder::Saga(other) => {
                return Err(unusable(format!(
                    "the standby's database {name} belongs to another saga ({other})"
                )))
            }
            Holder::Foreign | Holder::Nobody => {
                return Err(unusable(format!(
                    "the standby's database {name} is not in the ledger"
                )))
            }
        }
        let kept = self
            .databases
            .kept_password(name, standby.saga_id)
            .await?
            .ok_or_else(|| unusable(format!("the standby's database {name} kept no password")))?;
        let password = context
            .secrets()
            .open(
                &kept,
                secrets::Binding::new(standby.saga_id, secrets::Field::DbPassword),
            )
            .map_err(|_| {
                unusable(format!(
                    "the standby's password for {name} cannot be opened with these SAGA_SECRETS_KEYS"
                ))
            })?;
        // Checked before the ledger moves: a standby that fails it stays the
        // standby's, and its own undo drops it.
        if !self.databases.login_works(name, &password).await? {
            return Err(unusable(format!(
                "database login refused for the standby's database {name}"
            )));
        }
        let sealed = context.secrets().seal(
            password.expose_secret(),
            secrets::Binding::new(saga, secrets::Field::DbPassword),
        );
        if self
            .databases
            .adopt(name, standby.saga_id, saga, &sealed)
            .await?
        {
            context
                .output(format!("Took over the prepared database {name}"), Some(80))
                .await;
            return Ok((password, sealed));
        }
        // Lost a race: only this saga's own earlier attempt may have won it.
        match self.databases.holder(name).await? {
            Holder::Saga(id) if id == saga => self.kept_or_new_password(name, saga, context).await,
            _ => Err(unusable(format!(
                "the standby's database {name} was taken by someone else"
            ))),
        }
    }
}

impl<D: TenantDatabases> Step for DatabaseStep<D> {
    async fn readiness(&self) -> Vec<step_runtime::health::Check> {
        let answer = async { self.databases.ping().await.map_err(|e| e.to_string()) };
        vec![step_runtime::health::Check::within("mariadb", answer).await]
    }

    fn name(&self) -> &str {
        "database"
    }

    async fn execute(
        &self,
        command: &StepCommand,
        context: &StepContext,
    ) -> Result<serde_json::Value, StepError> {
        if let Some(standby) = &command.tenant.standby {
            let (_, sealed) = self.adopt(command, standby, context).await?;
            context
                .output(
                    format!("Database {} and its user are ready", standby.db_name),
                    Some(100),
                )
                .await;
            let output = DatabaseOutput {
                db_name: standby.db_name.clone(),
                db_user: standby.db_name.clone(),
                db_password: sealed,
            };
            return serde_json::to_value(output)
                .map_err(|e| StepError::permanent("internal", e.to_string()));
        }
        let name = database_name(&command.tenant.subdomain);
        let (password, sealed) = match self.databases.holder(&name).await? {
            Holder::Saga(id) if id == command.saga_id => {
                tracing::info!(db = %name, "database recorded for this saga: making sure it is complete, with its first password");
                self.kept_or_new_password(&name, command.saga_id, context)
                    .await?
            }
            Holder::Saga(other) => {
                return Err(conflict(&name, &format!("another signup (saga {other})")))
            }
            Holder::Foreign => return Err(conflict(&name, "someone else (no saga created it)")),
            Holder::Nobody => {
                // Kept before the user exists: whatever happens next, a retry finds it.
                let password = secrets::generate_password(32);
                let sealed = context.secrets().seal(
                    password.expose_secret(),
                    secrets::Binding::new(command.saga_id, secrets::Field::DbPassword),
                );
                if let Some(other) = self
                    .databases
                    .record(&name, command.saga_id, &sealed)
                    .await?
                {
                    return Err(conflict(&name, &format!("another signup (saga {other})")));
                }
                (password, sealed)
            }
        };
        context
            .output(format!("Creating database {name}"), Some(30))
            .await;
        self.databases.create(&name, &password).await?;
        context
            .output(format!("Database {name} and its user are ready"), Some(100))
            .await;
        let output = DatabaseOutput {
            db_name: name.clone(),
            db_user: name,
            db_password: sealed,
        };
        serde_json::to_value(output).map_err(|e| StepError::permanent("internal", e.to_string()))
    }

    async fn compensate(
        &self,
        command: &StepCommand,
        context: &StepContext,
    ) -> Result<(), StepError> {
        // A claimed standby's database keeps the standby's name; until the signup
        // adopted it the ledger names the standby, which then keeps it (its own undo
        // drops it).
        let name = name_for(command);
        match self.databases.holder(&name).await? {
            Holder::Saga(id) if id == command.saga_id => {
                self.databases
                    .drop_and_forget(&name, command.saga_id)
                    .await?;
                context
                    .output(format!("Dropped database {name} and its user"), None)
                    .await;
            }
            Holder::Saga(_) | Holder::Foreign => {
                tracing::info!(db = %name, "database is not this saga's: left untouched");
                context
                    .output(
                        format!("Database {name} is not this signup's: left untouched"),
                        None,
                    )
                    .await;
            }
            Holder::Nobody => tracing::info!(db = %name, "no database to drop"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_deterministic_valid_and_short() {
        for sub in [
            "abc",
            "test-org",
            "a-very-long-subdomain-name-32-ch",
            "x1-2-3",
        ] {
            let name = database_name(sub);
            assert_eq!(name, database_name(sub));
            assert!(name.len() <= NAME_MAX_LEN, "{name}");
            assert!(name.starts_with("t_"));
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
        }
        assert_eq!(database_name("test-org").len(), "t_test_org_".len() + 8);
        // Long subdomains sharing a prefix still get distinct names.
        assert_ne!(
            database_name("a-very-long-subdomain-name-one"),
            database_name("a-very-long-subdomain-name-two")
        );
    }
}
