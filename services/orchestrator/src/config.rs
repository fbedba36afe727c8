//! The orchestrator's settings, parsed by a pure function over a key lookup.

use std::time::Duration;

use anyhow::Context as _;

use crate::saga::SagaDefinition;

/// Everything the orchestrator needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// `NATS_URL`, `NATS_STREAM_REPLICAS`, the credentials.
    pub nats: step_runtime::bus::NatsConfig,
    /// `NATS_NAMESPACE`: prefix of subjects and streams; empty in production.
    pub namespace: String,
    /// `SAGA_STORE_URL`: `sqlite://...` (embedded) or `mysql://...` (shared); its
    /// password shows as `***` when the config is printed.
    pub store_url: step_runtime::redact::SecretUrl,
    /// `PARENT_DOMAIN`: site name = `<subdomain>.<PARENT_DOMAIN>`.
    pub parent_domain: String,
    /// `SAGA_SECRETS_KEYS` (and the legacy `SAGA_SECRETS_KEY`).
    pub secrets_key: secrets::Keyring,
    /// `HTTP_ADDR`: the HTTP port, serving `/healthz`, `/readyz` and the HTTP API.
    pub http_addr: std::net::SocketAddr,
    /// `PROVISIONING_API_SECRET`: what HTTP writes (provision, replays) must send as
    /// `X-Provisioning-Secret`; it reads too. Unset: HTTP writes are refused.
    pub api_secret: Option<secrecy::SecretString>,
    /// `PROVISIONING_READ_TOKEN`: what HTTP reads may send as `Authorization: Bearer`.
    pub read_token: Option<secrecy::SecretString>,
    /// `MASTER_SITE_NAME`: shown by `GET /health` as `master_site` (old clients read it).
    pub master_site: Option<String>,
    /// The saga, with `SAGA_STEP_TIMEOUT_SECS` / `SAGA_RETRY_BASE_MS` applied when set.
    pub definition: SagaDefinition,
    /// This instance's name in the lead's lease: host, process id and a random part,
    /// so no two running instances (nor a restarted one) share it.
    pub instance: String,
    /// `LEADER_LEASE_MS`: how long the lead lasts unrenewed; a standby takes over this
    /// long after the leader died at most (plus its poll, a sixth of it).
    pub lease: Duration,
    /// `STEP_REPORT_TTL_HOURS`: how long the finished-commands bucket, which the
    /// orchestrator declares, remembers the steps' final reports; longer than any
    /// redelivery (the command stream keeps a command 7 days).
    pub report_ttl: Duration,
    /// `STANDBY_POOL_SIZE`: standby sites kept built ahead of time for signups to
    /// take over (README, "Standby pool"). 0 turns the pool off.
    pub standby_pool_size: u32,
    /// `STANDBY_BUILDS_AT_ONCE`: standby builds under way at most at a time. A build
    /// waiting inside site-step for a `new-site` place holds one of its
    /// `STEP_CONCURRENCY` command slots, so more builds than site-step can run would
    /// hold up signups' commands behind them.
    pub standby_builds_at_once: u32,
}

/// Standby builds under way at once when `STANDBY_BUILDS_AT_ONCE` is unset: 1. With
/// site-step's default `SITE_CONCURRENCY` of 2, builds may hold one `new-site` place
/// (never the last); a second build would only wait, holding a command slot.
pub const DEFAULT_STANDBY_BUILDS_AT_ONCE: u32 = 1;

/// The pool's size when `STANDBY_POOL_SIZE` is unset: 1. One standby covers the
/// signup at hand on a single backend, while its build (a `bench new-site`, 14 to 29 s
/// of CPU on two cores) never competes with more than one signup for the bench; a
/// standby the pool no longer wants is discarded, never left (README, "Standby pool").
pub const DEFAULT_STANDBY_POOL_SIZE: u32 = 1;

/// Reads the configuration through `lookup` (the environment in production).
pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
    let secrets_key = secrets::Keyring::from_lookup(&lookup)?;
    let parent_domain = lookup("PARENT_DOMAIN").unwrap_or_else(|| "localhost".into());
    if parent_domain.is_empty()
        || !parent_domain.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    {
        anyhow::bail!(
            "PARENT_DOMAIN must be a domain name such as example.com, got {parent_domain:?}"
        );
    }
    let mut definition = SagaDefinition::tenant_provisioning();
    let number = |name: &str| -> anyhow::Result<Option<u64>> {
        lookup(name)
            .map(|v| {
                v.parse::<u64>()
                    .with_context(|| format!("{name} must be a whole number, got {v:?}"))
            })
            .transpose()
    };
    if let Some(secs) = number("SAGA_STEP_TIMEOUT_SECS")? {
        for step in &mut definition.steps {
            step.timeout = Duration::from_secs(secs.max(1));
            step.undo_timeout = Duration::from_secs(secs.max(1));
        }
    }
    if let Some(ms) = number("SAGA_RETRY_BASE_MS")? {
        for step in &mut definition.steps {
            step.retry.initial_delay = Duration::from_millis(ms);
            step.undo_retry.initial_delay = Duration::from_millis(ms);
        }
    }
    // A secret shorter than 16 characters is refused: it guards replays of every saga.
    let secret = |name: &str| -> anyhow::Result<Option<secrecy::SecretString>> {
        match lookup(name).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) if v.chars().count() < 16 => {
                anyhow::bail!("{name} must be at least 16 characters long")
            }
            Some(v) => Ok(Some(secrecy::SecretString::from(v))),
        }
    };
    Ok(Config {
        nats: step_runtime::bus::NatsConfig::from_lookup(&lookup)?,
        namespace: lookup("NATS_NAMESPACE").unwrap_or_default(),
        store_url: step_runtime::redact::SecretUrl::new(
            lookup("SAGA_STORE_URL").unwrap_or_else(|| "sqlite://data/orchestrator.db".into()),
        ),
        parent_domain: parent_domain.to_ascii_lowercase(),
        secrets_key,
        http_addr: lookup("HTTP_ADDR")
            .unwrap_or_else(|| "127.0.0.1:8001".into())
            .parse()
            .context("HTTP_ADDR must be host:port, such as 127.0.0.1:8001")?,
        api_secret: secret("PROVISIONING_API_SECRET")?,
        read_token: secret("PROVISIONING_READ_TOKEN")?,
        master_site: lookup("MASTER_SITE_NAME").filter(|s| !s.is_empty()),
        definition,
        instance: crate::leadership::instance_name(),
        lease: Duration::from_millis(number("LEADER_LEASE_MS")?.unwrap_or(3000).max(300)),
        report_ttl: match number("STEP_REPORT_TTL_HOURS")? {
            Some(hours) => Duration::from_secs(3600 * hours.max(1)),
            None => step_runtime::bus::DEFAULT_REPORT_TTL,
        },
        standby_pool_size: match number("STANDBY_POOL_SIZE")? {
            Some(size) if size > 1000 => {
                anyhow::bail!("STANDBY_POOL_SIZE must be at most 1000, got {size}")
            }
            Some(size) => size as u32,
            None => DEFAULT_STANDBY_POOL_SIZE,
        },
        standby_builds_at_once: match number("STANDBY_BUILDS_AT_ONCE")? {
            Some(n) if !(1..=1000).contains(&n) => {
                anyhow::bail!("STANDBY_BUILDS_AT_ONCE must be from 1 to 1000, got {n}")
            }
            Some(n) => n as u32,
            None => DEFAULT_STANDBY_BUILDS_AT_ONCE,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use step_runtime::lookup_in as lookup;

    fn test_keyring() -> String {
        use secrets::ExposeSecret as _;
        let id = secrets::KeyId::parse("test").expect("id");
        secrets::Keyring::generate_entry(&id)
            .expose_secret()
            .to_string()
    }

    #[test]
    fn defaults_follow_the_contract() {
        let key = test_keyring();
        let config = from_lookup(lookup(&[("SAGA_SECRETS_KEYS", &key)])).expect("config");
        assert_eq!(config.nats.url, "nats://127.0.0.1:4222");
        assert_eq!(config.store_url.expose(), "sqlite://data/orchestrator.db");
        assert_eq!(config.parent_domain, "localhost");
        assert_eq!(config.definition, SagaDefinition::tenant_provisioning());
        assert_eq!(config.lease, Duration::from_secs(3));
        assert_eq!(config.report_ttl, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(
            config.standby_pool_size, 1,
            "one standby suits a single backend"
        );
        assert_eq!(config.standby_builds_at_once, 1);
        let other = from_lookup(lookup(&[("SAGA_SECRETS_KEYS", &key)])).expect("config");
        assert_ne!(
            config.instance, other.instance,
            "each instance is its own holder"
        );
    }

    #[test]
    fn the_config_debug_shows_no_secret() {
        // 32 bytes of 0xAB: neither the base64 nor the bytes (`171, 171`) may show.
        let key = "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=";
        let keys = format!("k1:{key}");
        let config = from_lookup(lookup(&[
            ("SAGA_SECRETS_KEYS", &keys),
            ("SAGA_SECRETS_KEY", key),
            (
                "SAGA_STORE_URL",
                "mysql://saga:Store-Pw-77@db.internal:3306/saga",
            ),
            ("PROVISIONING_API_SECRET", "Write-Secret-0123456789"),
            ("PROVISIONING_READ_TOKEN", "Read-Token-0123456789"),
        ]))
        .expect("config");
        assert_eq!(
            config.store_url.expose(),
            "mysql://saga:Store-Pw-77@db.internal:3306/saga",
            "the store still gets the password"
        );
        for shown in [format!("{config:?}"), format!("{config:#?}")] {
            assert!(!shown.contains("Store-Pw-77"), "{shown}");
            assert!(!shown.contains("Write-Secret-0123456789"), "{shown}");
            assert!(!shown.contains("Read-Token-0123456789"), "{shown}");
            assert!(!shown.contains(key) && !shown.contains("171"), "{shown}");
            assert!(shown.contains("saga:***@db.internal:3306/saga"), "{shown}");
        }
    }

    #[test]
    fn overrides_and_errors() {
        let key = test_keyring();
        let config = from_lookup(lookup(&[
            ("SAGA_SECRETS_KEYS", &key),
            ("PARENT_DOMAIN", "Example.COM"),
            ("SAGA_STEP_TIMEOUT_SECS", "7"),
        ]))
        .expect("config");
        assert_eq!(config.parent_domain, "example.com");
        assert!(config
            .definition
            .steps
            .iter()
            .all(|s| s.timeout == Duration::from_secs(7)));
        assert!(from_lookup(lookup(&[])).is_err());
        assert!(from_lookup(lookup(&[
            ("SAGA_SECRETS_KEYS", &key),
            ("PARENT_DOMAIN", "bad domain")
        ]))
        .is_err());
        assert!(from_lookup(lookup(&[
            ("SAGA_SECRETS_KEYS", &key),
            ("SAGA_RETRY_BASE_MS", "soon")
        ]))
        .is_err());
        let off = from_lookup(lookup(&[
            ("SAGA_SECRETS_KEYS", &key),
            ("STANDBY_POOL_SIZE", "0"),
        ]));
        assert_eq!(off.expect("config").standby_pool_size, 0);
        for bad in ["0", "-1", "many", "5000"] {
            assert!(from_lookup(lookup(&[
                ("SAGA_SECRETS_KEYS", &key),
                ("STANDBY_BUILDS_AT_ONCE", bad)
            ]))
            .is_err());
        }
        for bad in ["-1", "two", "5000"] {
            assert!(from_lookup(lookup(&[
                ("SAGA_SECRETS_KEYS", &key),
                ("STANDBY_POOL_SIZE", bad)
            ]))
            .is_err());
        }
    }
}
