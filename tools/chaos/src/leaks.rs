//! The secret scan: every secret the run can know (the signups' passwords, and what is
//! kept sealed or in the sites: database passwords, API secrets, Administrator's
//! passwords, plus the run's own keys) searched for in every service log. bench's own
//! `logs/bench.log` is not scanned: Frappe writes every command line there, passwords
//! included (a known issue of bench, not of the services).

use std::path::Path;

use aho_corasick::AhoCorasick;
use secrets::ExposeSecret as _;

use crate::faults::Signup;
use crate::observe::Observed;

/// A secret and what it is (the value is never printed).
pub struct Secret {
    /// Such as "signup password of c1a2b3-7".
    pub what: String,
    /// The clear value.
    pub value: String,
}

/// The keys that open what the run's services sealed.
pub struct Keys {
    /// The services' keyring (`SAGA_SECRETS_KEYS`).
    pub services: secrets::Keyring,
    /// The web app's keyring (the API secrets are sealed to it).
    pub web_app: secrets::Keyring,
}

impl Keys {
    /// Opens `sealed`, a value of saga `saga` (any field, either key), if it is one.
    fn open(&self, sealed: &str, saga: Option<uuid::Uuid>) -> Option<String> {
        use secrets::Field;
        let saga = saga?;
        let sealed = contracts::Sealed(sealed.to_string());
        let fields = [
            Field::AdminPassword,
            Field::DbPassword,
            Field::AdministratorPassword,
            Field::ApiSecret,
        ];
        [&self.services, &self.web_app].iter().find_map(|ring| {
            fields.iter().find_map(|field| {
                ring.open(&sealed, secrets::Binding::new(saga, *field))
                    .ok()
                    .map(|s| s.expose_secret().to_string())
            })
        })
    }
}

/// Every secret the run knows of, each once.
pub fn collect(
    signups: &[Signup],
    observed: &Observed,
    keys: &Keys,
    run_secrets: &[(&str, String)],
) -> Vec<Secret> {
    let open = |sealed: &str, saga: Option<uuid::Uuid>| keys.open(sealed, saga);
    let saga_of = |text: Option<&str>| text.and_then(|t| uuid::Uuid::parse_str(t).ok());
    let mut all: Vec<Secret> = Vec::new();
    let mut add = |what: String, value: Option<String>| {
        if let Some(value) = value.filter(|v| v.len() >= 8) {
            if !all.iter().any(|s| s.value == value) {
                all.push(Secret { what, value });
            }
        }
    };
    for (what, value) in run_secrets {
        add((*what).to_string(), Some(value.clone()));
    }
    for s in signups {
        add(
            format!("signup password of {}", s.subdomain),
            Some(s.password.clone()),
        );
        if let Some(sealed) = observed
            .sagas
            .get(&s.id)
            .and_then(|e| e.sealed_api_secret.as_deref())
        {
            add(
                format!("API secret of {}", s.subdomain),
                open(sealed, Some(s.id)),
            );
        }
    }
    // Every sealed value any step reported, for sagas rolled back too (their ledger
    // rows and sites are gone by now): database passwords, API secrets.
    for (saga, report) in &observed.finished_reports {
        let mut strings = Vec::new();
        strings_in(report, &mut strings);
        for value in strings.into_iter().filter(|v| v.starts_with("v2:")) {
            add(
                "a sealed value in a step's finished report".to_string(),
                open(value, *saga),
            );
        }
    }
    for row in &observed.ledger {
        if let Some(sealed) = &row.sealed_password {
            add(
                format!("password of database {}", row.db_name),
                open(sealed, saga_of(Some(&row.saga_id))),
            );
        }
    }
    for site in observed.sites.iter().chain(&observed.archived) {
        add(
            format!("database password in {}", site.name),
            site.db_password.clone(),
        );
        if let Some(sealed) = &site.sealed_admin_password {
            add(
                format!("Administrator's password of {}", site.name),
                open(sealed, saga_of(site.marker.as_deref())),
            );
        }
        for secret in &site.api_secrets {
            add(format!("API secret in {}", site.name), Some(secret.clone()));
        }
    }
    all
}

/// Every string inside `value`.
fn strings_in<'v>(value: &'v serde_json::Value, out: &mut Vec<&'v str>) {
    match value {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings_in(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| strings_in(v, out)),
        _ => {}
    }
}

/// Every `*.log` file in `logs` that holds a secret: `"<file>: <what>"`.
pub fn scan(logs: &Path, secrets: &[Secret]) -> anyhow::Result<Vec<String>> {
    if secrets.is_empty() {
        return Ok(Vec::new());
    }
    let matcher = AhoCorasick::new(secrets.iter().map(|s| s.value.as_bytes()))?;
    let mut found = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(logs)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    for file in files {
        let reader = std::io::BufReader::new(std::fs::File::open(&file)?);
        let mut seen = std::collections::BTreeSet::new();
        for hit in matcher.stream_find_iter(reader) {
            seen.insert(hit?.pattern().as_usize());
        }
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        found.extend(
            seen.into_iter()
                .map(|i| format!("{name}: {}", secrets[i].what)),
        );
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_in_any_log_is_found_and_named_not_shown() {
        let dir = std::env::temp_dir().join(format!("chaos-leaks-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("db-step-0.log"), "clean line\n").expect("log");
        std::fs::write(dir.join("site-step-1.log"), "x password=Zq8sKp2wLm y\n").expect("log");
        std::fs::write(dir.join("notes.txt"), "Zq8sKp2wLm").expect("not a log");
        let secrets = [Secret {
            what: "signup password of a".into(),
            value: "Zq8sKp2wLm".into(),
        }];
        let found = scan(&dir, &secrets).expect("scan");
        std::fs::remove_dir_all(&dir).expect("cleanup");
        assert_eq!(found, ["site-step-1.log: signup password of a"]);
    }

    fn keys() -> Keys {
        let id = secrets::KeyId::parse("t").expect("id");
        Keys {
            services: secrets::Keyring::random(&id),
            web_app: secrets::Keyring::random(&id),
        }
    }

    #[test]
    fn sealed_values_are_opened_before_the_search() {
        let keys = keys();
        let key_text = "the run's key text".to_string();
        let saga = uuid::Uuid::new_v4();
        let binding = secrets::Binding::new(saga, secrets::Field::DbPassword);
        let observed = Observed {
            ledger: vec![crate::observe::LedgerRow {
                db_name: "t_x".into(),
                saga_id: saga.to_string(),
                sealed_password: Some(keys.services.seal("OpenedPassword1", binding).0),
            }],
            ..Default::default()
        };
        let all = collect(&[], &observed, &keys, &[("the key", key_text.clone())]);
        let values: Vec<&str> = all.iter().map(|s| s.value.as_str()).collect();
        assert_eq!(values, [key_text.as_str(), "OpenedPassword1"]);
    }

    /// A rolled-back saga's secrets are gone from the ledger and the sites by the end,
    /// but its steps' finished reports still hold them sealed.
    #[test]
    fn secrets_of_undone_sagas_come_from_the_finished_reports() {
        let keys = keys();
        let saga = uuid::Uuid::new_v4();
        let binding = secrets::Binding::new(saga, secrets::Field::DbPassword);
        let observed = Observed {
            finished_reports: vec![(
                Some(saga),
                serde_json::json!({
                    "status": "completed",
                    "output": {"db_name": "t_gone", "db_password": keys.services.seal("GonePassword42", binding).0},
                }),
            )],
            ..Default::default()
        };
        let all = collect(&[], &observed, &keys, &[]);
        let values: Vec<&str> = all.iter().map(|s| s.value.as_str()).collect();
        assert_eq!(values, ["GonePassword42"]);
    }
}
