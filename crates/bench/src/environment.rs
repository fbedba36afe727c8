//! What of the step service's environment reaches bench under the `local` driver: an
//! allow-list, never the whole of it. The service holds `SAGA_SECRETS_KEY` and other
//! secrets in its environment; bench, its Python, its children and anyone who can read
//! their `/proc/<pid>/environ` must not see them.
//!
//! Bench needs little: `PATH` (its venv's python, node, yarn, the `mariadb` client),
//! `HOME` (`~/.cache/bench`, yarn's cache; bench resets it itself when it drops root),
//! `USER`/`LOGNAME`, the locale (`LANG`, `LANGUAGE`, `LC_*`: click refuses to run under
//! an ASCII locale on older Pythons), `TZ`, `TMPDIR`, `SHELL`, and Python's and pyenv's
//! own settings (`PYTHON*`, `PYENV_*`, `VIRTUAL_ENV`). Frappe's `FRAPPE_DB_*` and
//! `FRAPPE_REDIS_*` are deliberately left out: Frappe lets them override every site's
//! own configuration (`FRAPPE_DB_NAME`, `FRAPPE_DB_PASSWORD` would point each new
//! site at one database); a bench that needs one names it in `BENCH_ENV_PASS`.
//!
//! The `docker` driver needs none of this: its exec runs with the container's own
//! environment, to which it adds only its markers.

use std::ffi::OsString;

/// Variables passed by name.
const NAMES: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "VIRTUAL_ENV",
];

/// Variables passed by prefix: the locale's categories, Python's and pyenv's settings.
const PREFIXES: &[&str] = &["LC_", "PYTHON", "PYENV_"];

/// Names `BENCH_ENV_PASS` may not list: the service's keys and credentials, and the
/// markers the drivers set themselves per command.
const REFUSED: &[&str] = &[
    "SAGA_SECRETS_KEY",
    "SAGA_SECRETS_KEYS",
    "NATS_PASSWORD",
    "NATS_CREDS",
    "NATS_NKEY",
    "NATS_KEY",
    "MASTER_API_SECRET",
    "PROVISIONING_API_SECRET",
    crate::OWNER_VARIABLE,
    "BENCH_EXEC_ID",
];

/// Which variables of the service's environment bench gets: the allow-list above
/// plus the names `BENCH_ENV_PASS` adds. Holds names only, never values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvPass {
    extra: Vec<String>,
}

/// `BENCH_ENV_PASS` is not a list of variable names bench may get.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvPassError {
    /// Not a variable name.
    #[error("BENCH_ENV_PASS must list variable names separated by commas (letters, digits, _), got {0:?}")]
    NotAName(String),
    /// A variable bench must never get.
    #[error("BENCH_ENV_PASS may not pass {0} to bench")]
    Refused(String),
}

impl EnvPass {
    /// The allow-list plus the comma-separated names of `list` (`BENCH_ENV_PASS`);
    /// blanks around names and empty entries are ignored.
    pub fn parse(list: &str) -> Result<Self, EnvPassError> {
        let mut extra = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let valid = !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(EnvPassError::NotAName(name.into()));
            }
            if REFUSED.contains(&name) {
                return Err(EnvPassError::Refused(name.into()));
            }
            extra.push(name.to_string());
        }
        Ok(Self { extra })
    }

    /// Whether bench gets the variable `name`.
    pub fn passes(&self, name: &str) -> bool {
        NAMES.contains(&name)
            || PREFIXES.iter().any(|prefix| name.starts_with(prefix))
            || self.extra.iter().any(|extra| extra == name)
    }

    /// The variables of `service` (the step service's environment) that bench gets.
    pub fn select(
        &self,
        service: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Vec<(OsString, OsString)> {
        service
            .into_iter()
            .filter(|(name, _)| name.to_str().is_some_and(|name| self.passes(name)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn only_what_bench_needs_passes() {
        let service = vars(&[
            ("PATH", "/home/frappe/frappe-bench/env/bin:/usr/bin"),
            ("HOME", "/home/frappe"),
            ("LC_ALL", "C.UTF-8"),
            ("PYTHONUNBUFFERED", "1"),
            ("SAGA_SECRETS_KEY", "k"),
            ("MASTER_API_SECRET", "s"),
            ("TENANT_DB_ADMIN_URL", "mysql://root:pw@db"),
            ("FRAPPE_DB_PASSWORD", "pw"),
            ("FRAPPE_REDIS_CACHE", "redis://cache:6379"),
        ]);
        let names = |pass: &EnvPass| -> Vec<String> {
            pass.select(service.clone())
                .into_iter()
                .map(|(k, _)| k.into_string().expect("utf-8"))
                .collect()
        };
        assert_eq!(
            names(&EnvPass::default()),
            ["PATH", "HOME", "LC_ALL", "PYTHONUNBUFFERED"]
        );
        let with_redis = EnvPass::parse(" FRAPPE_REDIS_CACHE ,").expect("names");
        assert_eq!(
            names(&with_redis),
            [
                "PATH",
                "HOME",
                "LC_ALL",
                "PYTHONUNBUFFERED",
                "FRAPPE_REDIS_CACHE"
            ]
        );
    }

    #[test]
    fn bad_lists_are_refused_with_the_reason() {
        assert_eq!(EnvPass::parse("").expect("empty"), EnvPass::default());
        for (list, shown) in [
            ("A=B", "\"A=B\""),
            ("1ST", "\"1ST\""),
            ("NAME WITH SPACE", "\"NAME WITH SPACE\""),
        ] {
            let error = EnvPass::parse(list).expect_err(list).to_string();
            assert!(error.contains(shown), "{error}");
            assert!(
                error.contains("variable names separated by commas"),
                "{error}"
            );
        }
        for refused in [
            "SAGA_SECRETS_KEY",
            "SAGA_SECRETS_KEYS",
            "NATS_PASSWORD",
            "MASTER_API_SECRET",
            "BENCH_OWNER",
        ] {
            let error = EnvPass::parse(&format!("TZ,{refused}")).expect_err(refused);
            assert_eq!(
                error.to_string(),
                format!("BENCH_ENV_PASS may not pass {refused} to bench")
            );
        }
    }
}
