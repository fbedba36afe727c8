//! Where the secrets come from: the environment, or a file an option names (`-`:
//! standard input), never an argument (arguments show in `ps` and shell history).

use std::io::Read as _;
use std::path::Path;

use secrets::SecretString;

use crate::cli::Cli;
use crate::error::Error;

/// The HTTP API's read token's variable.
pub const READ_TOKEN_VARIABLE: &str = "PROVISIONING_READ_TOKEN";
/// The HTTP API's write secret's variable.
pub const SECRET_VARIABLE: &str = "PROVISIONING_API_SECRET";

/// The HTTP API's credentials.
pub struct HttpCredentials {
    /// `Authorization: Bearer`, for reads.
    pub read_token: Option<SecretString>,
    /// `X-Provisioning-Secret`, for writes (it reads too).
    pub secret: Option<SecretString>,
}

impl HttpCredentials {
    /// From the files the command line names, else the environment.
    pub fn load(cli: &Cli) -> Result<Self, Error> {
        Self::load_with(
            cli,
            |name| std::env::var(name).ok(),
            || {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text).map(|_| text)
            },
        )
    }

    /// [`HttpCredentials::load`] with the environment and standard input given, for
    /// tests.
    fn load_with(
        cli: &Cli,
        env: impl Fn(&str) -> Option<String>,
        stdin: impl FnOnce() -> std::io::Result<String>,
    ) -> Result<Self, Error> {
        let dash = |p: &Option<std::path::PathBuf>| p.as_deref() == Some(Path::new("-"));
        if dash(&cli.read_token_file) && dash(&cli.secret_file) {
            return Err(Error::Usage(
                "only one of --read-token-file and --secret-file can be `-` (standard input); give the other as a file".into(),
            ));
        }
        let mut stdin = Some(stdin);
        let mut one = |file: &Option<std::path::PathBuf>, option: &str, variable: &str| {
            let text = match file {
                Some(path) if path == Path::new("-") => {
                    let read = stdin
                        .take()
                        .map(|f| f())
                        .unwrap_or_else(|| Ok(String::new()));
                    read.map_err(|e| {
                        Error::Usage(format!("{option} -: cannot read standard input: {e}"))
                    })?
                }
                Some(path) => std::fs::read_to_string(path).map_err(|e| {
                    Error::Usage(format!("{option} {}: cannot read it: {e}", path.display()))
                })?,
                None => env(variable).unwrap_or_default(),
            };
            // A file's trailing newline is no part of the secret.
            let text = text.trim();
            if text.is_empty() && file.is_some() {
                return Err(Error::Usage(format!("{option}: the file is empty")));
            }
            Ok::<_, Error>((!text.is_empty()).then(|| SecretString::from(text.to_string())))
        };
        Ok(Self {
            read_token: one(
                &cli.read_token_file,
                "--read-token-file",
                READ_TOKEN_VARIABLE,
            )?,
            secret: one(&cli.secret_file, "--secret-file", SECRET_VARIABLE)?,
        })
    }
}

/// Refuses a `--nats-url` that holds credentials (`user:password@`, or a token as
/// `token@`): they would show in `ps` and shell history.
pub fn check_nats_url(url: &str) -> Result<(), Error> {
    let holds_credentials = url.split(',').any(|one| {
        let one = one.trim();
        let rest = one.split_once("://").map_or(one, |(_, rest)| rest);
        rest.split('/').next().unwrap_or_default().contains('@')
    });
    if holds_credentials {
        return Err(Error::Usage(
            "--nats-url must not hold a user, password or token (arguments show in `ps` and shell history): give the server alone, and set NATS_USER and NATS_PASSWORD, or NATS_CREDS, in the environment".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;
    use secrets::ExposeSecret as _;

    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(["sagactl"].iter().chain(args).chain(&["list"])).expect("parses")
    }

    fn exposed(secret: &Option<SecretString>) -> Option<&str> {
        secret.as_ref().map(|s| s.expose_secret())
    }

    #[test]
    fn secrets_come_from_the_environment_or_a_file() {
        let env = |name: &str| match name {
            READ_TOKEN_VARIABLE => Some("read-from-env".to_string()),
            SECRET_VARIABLE => Some("secret-from-env".to_string()),
            _ => None,
        };
        let no_stdin = || -> std::io::Result<String> { panic!("standard input is not read") };
        let loaded = HttpCredentials::load_with(&cli(&[]), env, no_stdin).expect("env");
        assert_eq!(exposed(&loaded.read_token), Some("read-from-env"));
        assert_eq!(exposed(&loaded.secret), Some("secret-from-env"));

        let dir = std::env::temp_dir().join(format!("sagactl-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("secret");
        std::fs::write(&file, "secret-from-file\n").expect("write");
        let path = file.to_str().expect("path");
        let loaded = HttpCredentials::load_with(
            &cli(&["--secret-file", path, "--read-token-file", "-"]),
            env,
            || Ok("read-from-stdin\n".into()),
        )
        .expect("files");
        assert_eq!(exposed(&loaded.read_token), Some("read-from-stdin"));
        assert_eq!(exposed(&loaded.secret), Some("secret-from-file"));

        let both = cli(&["--secret-file", "-", "--read-token-file", "-"]);
        assert!(matches!(
            HttpCredentials::load_with(&both, env, no_stdin),
            Err(Error::Usage(_))
        ));
        let missing = cli(&["--secret-file", "/no/such/sagactl/file"]);
        assert!(matches!(
            HttpCredentials::load_with(&missing, env, no_stdin),
            Err(Error::Usage(_))
        ));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn a_nats_url_holding_credentials_is_refused() {
        for ok in [
            "nats://127.0.0.1:4222",
            "127.0.0.1:4222",
            "tls://nats-1:4222, tls://nats-2:4222",
        ] {
            assert!(check_nats_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "nats://operator:hunter2@127.0.0.1:4222",
            "nats://s3cr3t-token@127.0.0.1:4222",
            "nats://127.0.0.1:4222,nats://u:p@other:4222",
            "u:p@127.0.0.1:4222",
        ] {
            let refused = check_nats_url(bad).expect_err(bad);
            assert!(refused.to_string().contains("NATS_PASSWORD"), "{refused}");
            assert!(!refused.to_string().contains("hunter2"));
        }
    }
}
