//! Where NATS is and who a process is on it: `NATS_URL`, `NATS_STREAM_REPLICAS` and the
//! credentials, read by one pure function over a key lookup and turned into the
//! client's connect options. Every service and tool connects through here.
//!
//! The variables are the NATS ecosystem's usual ones (the `nats` CLI's contexts and
//! nats.go's examples name them so): `NATS_CREDS` (a `.creds` file: JWT and nkey
//! seed), `NATS_USER` + `NATS_PASSWORD`, `NATS_NKEY` (a file holding an nkey seed),
//! `NATS_CA` (the CA that signed the server's certificate; TLS is then required),
//! `NATS_CERT` + `NATS_KEY` (a client certificate), `NATS_INBOX_PREFIX`.

use std::fmt;
use std::path::PathBuf;

use anyhow::Context as _;

/// The variables of the credentials and TLS settings, for tools that start services
/// and hand them on.
pub const CREDENTIAL_VARIABLES: [&str; 8] = [
    "NATS_CREDS",
    "NATS_USER",
    "NATS_PASSWORD",
    "NATS_NKEY",
    "NATS_CA",
    "NATS_CERT",
    "NATS_KEY",
    "NATS_INBOX_PREFIX",
];

/// How a process proves who it is to the server.
#[derive(Clone, PartialEq, Eq)]
pub enum NatsAuth {
    /// No credentials (a server without authorization, as in development).
    Anonymous,
    /// `NATS_USER` and `NATS_PASSWORD`.
    UserPassword {
        /// The user's name.
        user: String,
        /// Its password; never printed.
        password: String,
    },
    /// `NATS_CREDS`: a credentials file (JWT and nkey seed) of a decentralised setup.
    Creds(PathBuf),
    /// `NATS_NKEY`: a file holding the user's nkey seed (`SU…`).
    NKey(PathBuf),
}

impl fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous => f.write_str("Anonymous"),
            Self::UserPassword { user, .. } => f
                .debug_struct("UserPassword")
                .field("user", user)
                .field("password", &"***")
                .finish(),
            // Paths only: the files' contents are read when connecting.
            Self::Creds(path) => f.debug_tuple("Creds").field(path).finish(),
            Self::NKey(path) => f.debug_tuple("NKey").field(path).finish(),
        }
    }
}

/// The users `deploy/nats/auth.conf` defines, each with the server's environment
/// variable its password comes from: what a tool or test that starts its own
/// nats-server on that file must set.
pub const DEPLOYMENT_USERS: [(&str, &str); 7] = [
    ("orchestrator", "NATS_ORCHESTRATOR_PASSWORD"),
    ("web-app", "NATS_WEB_APP_PASSWORD"),
    ("operator", "NATS_OPERATOR_PASSWORD"),
    ("db-step", "NATS_DB_STEP_PASSWORD"),
    ("site-step", "NATS_SITE_STEP_PASSWORD"),
    ("user-step", "NATS_USER_STEP_PASSWORD"),
    ("registry-step", "NATS_REGISTRY_STEP_PASSWORD"),
];

/// A client certificate and its key (`NATS_CERT`, `NATS_KEY`), for servers that
/// verify clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key (a path; never read into logs).
    pub key: PathBuf,
}

/// Where NATS is, who this process is on it, and how the saga's streams are declared:
/// the settings every service and tool shares. Its `Debug` never shows a password,
/// neither `NATS_PASSWORD` nor one written into `NATS_URL`.
#[derive(Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// `NATS_URL`: one server or a comma-separated list of a cluster's servers, as the
    /// NATS tools take it. The client also learns the cluster's other members from the
    /// server, and moves to another one when its server goes.
    pub url: String,
    /// `NATS_STREAM_REPLICAS`: replicas of every stream and of the key-value bucket
    /// (1 on a single server, 3 on a three-node cluster).
    pub stream_replicas: usize,
    /// `NATS_CREDS`, `NATS_USER` + `NATS_PASSWORD` or `NATS_NKEY`: at most one.
    pub auth: NatsAuth,
    /// `NATS_CA`: the CA file that signed the server's certificate. When set, TLS is
    /// required: the client refuses a server that does not speak it.
    pub ca: Option<PathBuf>,
    /// `NATS_CERT` + `NATS_KEY`: a client certificate, both or neither.
    pub client_cert: Option<ClientCert>,
    /// `NATS_INBOX_PREFIX`: where replies to this process's requests arrive. Default
    /// `_INBOX_<NATS_USER>` with a user (the deployment's permissions let each user
    /// subscribe to its own prefix only, so no party reads another's replies), else
    /// the client's usual `_INBOX`.
    pub inbox_prefix: String,
}

impl std::fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsConfig")
            .field("url", &redacted_urls(&self.url))
            .field("stream_replicas", &self.stream_replicas)
            .field("auth", &self.auth)
            .field("ca", &self.ca)
            .field("client_cert", &self.client_cert)
            .field("inbox_prefix", &self.inbox_prefix)
            .finish()
    }
}

/// A `NATS_URL` (one server or a comma-separated list) with every password in it
/// masked, for logs and errors.
pub fn redacted_urls(url: &str) -> String {
    url.split(',')
        .map(|one| crate::redact::redact_url(one.trim()))
        .collect::<Vec<_>>()
        .join(",")
}

impl NatsConfig {
    /// Reads the settings through `lookup` (the environment in production). An empty
    /// value counts as unset, so a compose file's `${X:-}` means "not given".
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let url = get("NATS_URL").unwrap_or_else(|| "nats://127.0.0.1:4222".into());
        servers(&url)?;
        let stream_replicas = match get("NATS_STREAM_REPLICAS") {
            None => 1,
            Some(v) => match v.parse::<usize>() {
                Ok(n @ 1..=5) => n,
                _ => anyhow::bail!("NATS_STREAM_REPLICAS must be 1 to 5, got {v:?}"),
            },
        };
        let user = get("NATS_USER");
        let password = lookup("NATS_PASSWORD").filter(|v| !v.is_empty());
        let mut given = Vec::new();
        let mut auth = NatsAuth::Anonymous;
        if let Some(path) = get("NATS_CREDS") {
            given.push("NATS_CREDS");
            auth = NatsAuth::Creds(path.into());
        }
        if let Some(path) = get("NATS_NKEY") {
            given.push("NATS_NKEY");
            auth = NatsAuth::NKey(path.into());
        }
        match (&user, password) {
            (Some(user), Some(password)) => {
                given.push("NATS_USER");
                auth = NatsAuth::UserPassword {
                    user: user.clone(),
                    password,
                };
            }
            (Some(_), None) => anyhow::bail!("NATS_USER is set but NATS_PASSWORD is not"),
            (None, Some(_)) => anyhow::bail!("NATS_PASSWORD is set but NATS_USER is not"),
            (None, None) => {}
        }
        anyhow::ensure!(
            given.len() <= 1,
            "give one way to authenticate to NATS, not {}",
            given.join(" and ")
        );
        let client_cert = match (get("NATS_CERT"), get("NATS_KEY")) {
            (Some(cert), Some(key)) => Some(ClientCert {
                cert: cert.into(),
                key: key.into(),
            }),
            (None, None) => None,
            _ => anyhow::bail!("NATS_CERT and NATS_KEY go together: set both or neither"),
        };
        let inbox_prefix = match get("NATS_INBOX_PREFIX") {
            Some(prefix) => prefix,
            None => match &user {
                Some(user) => format!("_INBOX_{user}"),
                None => "_INBOX".into(),
            },
        };
        anyhow::ensure!(
            is_plain_subject(&inbox_prefix),
            "NATS_INBOX_PREFIX (or the default from NATS_USER) must be subject tokens \
             without wildcards or blanks, got {inbox_prefix:?}"
        );
        Ok(Self {
            url,
            stream_replicas,
            auth,
            ca: get("NATS_CA").map(PathBuf::from),
            client_cert,
            inbox_prefix,
        })
    }

    /// A config for `url` with no credentials and one replica (tests, tools).
    pub fn anonymous(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream_replicas: 1,
            auth: NatsAuth::Anonymous,
            ca: None,
            client_cert: None,
            inbox_prefix: "_INBOX".into(),
        }
    }

    /// The client's connect options for these settings: credentials read from their
    /// files now (an unreadable file is named, its content never), TLS as configured.
    pub async fn connect_options(&self) -> anyhow::Result<async_nats::ConnectOptions> {
        let mut options = async_nats::ConnectOptions::new();
        options = match &self.auth {
            NatsAuth::Anonymous => options,
            NatsAuth::UserPassword { user, password } => {
                options.user_and_password(user.clone(), password.clone())
            }
            NatsAuth::Creds(path) => options
                .credentials_file(path)
                .await
                .with_context(|| format!("reading NATS_CREDS {}", path.display()))?,
            NatsAuth::NKey(path) => {
                let seed = std::fs::read_to_string(path)
                    .with_context(|| format!("reading NATS_NKEY {}", path.display()))?;
                let seed = seed
                    .lines()
                    .map(str::trim)
                    .find(|line| line.starts_with("SU"))
                    .with_context(|| {
                        format!("NATS_NKEY {} holds no user seed (SU…)", path.display())
                    })?
                    .to_string();
                options.nkey(seed)
            }
        };
        if let Some(ca) = &self.ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let Some(ClientCert { cert, key }) = &self.client_cert {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        Ok(options.custom_inbox_prefix(&self.inbox_prefix))
    }
}

/// Whether `s` is a subject without wildcards, blanks or empty tokens.
fn is_plain_subject(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|token| {
            !token.is_empty()
                && token
                    .chars()
                    .all(|c| !c.is_whitespace() && c != '*' && c != '>')
        })
}

/// The servers of a `NATS_URL` (comma-separated, blanks around commas ignored).
pub fn servers(url: &str) -> anyhow::Result<Vec<async_nats::ServerAddr>> {
    let servers = url
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<async_nats::ServerAddr>().with_context(|| {
                format!(
                    "NATS_URL holds {:?}, which is not a server address such as nats://host:4222",
                    crate::redact::redact_url(s)
                )
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!servers.is_empty(), "NATS_URL names no server");
    Ok(servers)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::lookup_in as lookup;

    #[test]
    fn nats_url_takes_a_cluster_as_a_comma_separated_list() {
        let config = NatsConfig::from_lookup(lookup(&[
            ("NATS_URL", "nats://n1:4222, nats://n2:4222,nats://n3:4222"),
            ("NATS_STREAM_REPLICAS", "3"),
        ]))
        .expect("config");
        assert_eq!(config.stream_replicas, 3);
        let hosts: Vec<String> = servers(&config.url)
            .expect("servers")
            .iter()
            .map(|s| format!("{}:{}", s.host(), s.port()))
            .collect();
        assert_eq!(hosts, ["n1:4222", "n2:4222", "n3:4222"]);
        let default = NatsConfig::from_lookup(lookup(&[])).expect("defaults");
        assert_eq!(default, NatsConfig::anonymous("nats://127.0.0.1:4222"));
    }

    #[test]
    fn a_bad_server_or_replica_count_is_named() {
        let bad = NatsConfig::from_lookup(lookup(&[("NATS_URL", "nats://n1:4222,http://[x")]))
            .expect_err("bad url");
        assert!(format!("{bad:#}").contains("http://[x"), "{bad:#}");
        let bad = NatsConfig::from_lookup(lookup(&[("NATS_URL", " , ")])).expect_err("empty");
        assert!(format!("{bad:#}").contains("no server"), "{bad:#}");
        let bad = NatsConfig::from_lookup(lookup(&[("NATS_STREAM_REPLICAS", "0")]))
            .expect_err("zero replicas");
        assert!(bad.to_string().contains("NATS_STREAM_REPLICAS"));
    }

    #[test]
    fn a_user_gets_its_own_inbox_prefix_and_debug_hides_the_password() {
        let config = NatsConfig::from_lookup(lookup(&[
            ("NATS_USER", "db-step"),
            ("NATS_PASSWORD", "hunter2-very-secret"),
        ]))
        .expect("config");
        assert_eq!(config.inbox_prefix, "_INBOX_db-step");
        assert_eq!(
            config.auth,
            NatsAuth::UserPassword {
                user: "db-step".into(),
                password: "hunter2-very-secret".into()
            }
        );
        let shown = format!("{config:?} {config:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("db-step"), "{shown}");
        // A password written into NATS_URL (as the NATS tools allow) is hidden too.
        let in_url = NatsConfig::from_lookup(lookup(&[(
            "NATS_URL",
            "nats://a:Url-Secret-9@n1:4222, nats://b:Url-Secret-8@n2:4222",
        )]))
        .expect("config");
        let shown = format!("{in_url:?}");
        assert!(!shown.contains("Url-Secret"), "{shown}");
        assert!(
            shown.contains("n1:4222") && shown.contains("n2:4222"),
            "{shown}"
        );
        let custom = NatsConfig::from_lookup(lookup(&[
            ("NATS_USER", "web-app"),
            ("NATS_PASSWORD", "x"),
            ("NATS_INBOX_PREFIX", "_INBOX_web.replies"),
        ]))
        .expect("config");
        assert_eq!(custom.inbox_prefix, "_INBOX_web.replies");
    }

    #[test]
    fn credentials_tls_and_their_mistakes() {
        let config = NatsConfig::from_lookup(lookup(&[
            ("NATS_NKEY", "/run/secrets/seed.nk"),
            ("NATS_CA", "/etc/nats/ca.pem"),
            ("NATS_CERT", "/etc/nats/client.pem"),
            ("NATS_KEY", "/etc/nats/client-key.pem"),
        ]))
        .expect("config");
        assert_eq!(config.auth, NatsAuth::NKey("/run/secrets/seed.nk".into()));
        assert_eq!(config.ca, Some("/etc/nats/ca.pem".into()));
        assert!(config.client_cert.is_some());
        let creds =
            NatsConfig::from_lookup(lookup(&[("NATS_CREDS", "/x/user.creds")])).expect("creds");
        assert_eq!(creds.auth, NatsAuth::Creds("/x/user.creds".into()));
        for (pairs, named) in [
            (&[("NATS_USER", "a")][..], "NATS_PASSWORD"),
            (&[("NATS_PASSWORD", "a")][..], "NATS_USER"),
            (
                &[
                    ("NATS_CREDS", "/a"),
                    ("NATS_USER", "u"),
                    ("NATS_PASSWORD", "p"),
                ][..],
                "NATS_CREDS and NATS_USER",
            ),
            (&[("NATS_CERT", "/a")][..], "NATS_KEY"),
            (
                &[("NATS_INBOX_PREFIX", "_INBOX.>")][..],
                "NATS_INBOX_PREFIX",
            ),
        ] {
            let e = NatsConfig::from_lookup(lookup(pairs)).expect_err("refused");
            assert!(e.to_string().contains(named), "{pairs:?}: {e}");
            assert!(!e.to_string().contains("p\""), "{e}");
        }
    }

    #[tokio::test]
    async fn an_unreadable_seed_file_is_named_not_shown() {
        let dir = std::env::temp_dir().join(format!("nkey-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("seed.nk");
        std::fs::write(&path, "not a seed at all\n").expect("write");
        let config = NatsConfig {
            auth: NatsAuth::NKey(path.clone()),
            ..NatsConfig::anonymous("nats://127.0.0.1:1")
        };
        let e = config.connect_options().await.expect_err("no seed");
        assert!(format!("{e:#}").contains("seed.nk"), "{e:#}");
        assert!(!format!("{e:#}").contains("not a seed at all"), "{e:#}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
