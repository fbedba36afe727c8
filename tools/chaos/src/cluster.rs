//! A three-node NATS cluster on loopback: three nats-server processes with JetStream,
//! each on its own client and route ports and file store, routed to the other two, with
//! the deployment's users and permissions (`deploy/nats/auth.conf`, built into this
//! tool, plus the tool's own user). A killed node is started again with the same
//! command line, so on the same store.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use contracts::Subjects;

use crate::procs::{Kind, Proc};

/// The deployment's users and permissions, as `deploy/nats/auth.conf` has them.
const AUTH_CONF: &str = include_str!("../../../deploy/nats/auth.conf");

/// The users `AUTH_CONF` defines, each with the variable its password comes from.
const USERS: [(&str, &str); 7] = step_runtime::bus::DEPLOYMENT_USERS;

/// The tool's own user, added to the run's copy of the file only (never to
/// `deploy/`): it publishes the signups and reads every stream for the checks.
pub const TOOL_USER: &str = "chaos";

/// Passwords for every user, made up for one run. A letter first: nats-server parses
/// a variable's value as a config value, and one starting with digits may not read
/// as a string.
pub fn passwords() -> std::collections::BTreeMap<String, String> {
    USERS
        .iter()
        .map(|(user, _)| *user)
        .chain([TOOL_USER])
        .map(|user| {
            let password = format!("p{}", uuid::Uuid::new_v4().simple());
            (user.to_string(), password)
        })
        .collect()
}

/// Writes the nodes' config (`nats.conf` including `auth.conf`, the deployment's
/// with [`TOOL_USER`] added) into `dir`; returns the config's path.
fn write_config(dir: &Path) -> anyhow::Result<PathBuf> {
    let list = "users = [\n";
    anyhow::ensure!(AUTH_CONF.contains(list), "auth.conf has no users list");
    let auth = AUTH_CONF.replacen(
        list,
        &format!("{list}    {{ user: {TOOL_USER}, password: $NATS_CHAOS_PASSWORD }}\n"),
        1,
    );
    let folder = dir.join("nats-config");
    std::fs::create_dir_all(&folder).context("creating the NATS config folder")?;
    std::fs::write(folder.join("auth.conf"), auth).context("writing auth.conf")?;
    let config = folder.join("nats.conf");
    std::fs::write(&config, "include ./auth.conf\n").context("writing nats.conf")?;
    Ok(config)
}

/// Nodes in the cluster: three, so that streams with three replicas keep a quorum
/// while one node is down.
pub const NODES: usize = 3;

/// The nats-server executable: `NATS_CLUSTER_SERVER_BIN` (a current server for the
/// cluster, which dev/test installs: Debian's 2.9 mishandles replicated streams when
/// nodes are killed), else `NATS_SERVER_BIN`, else the one on PATH, else Debian's.
pub fn nats_server_bin() -> anyhow::Result<PathBuf> {
    for variable in ["NATS_CLUSTER_SERVER_BIN", "NATS_SERVER_BIN"] {
        if let Ok(bin) = std::env::var(variable) {
            return Ok(bin.into());
        }
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|p| p.is_file())
    });
    let bin = on_path.unwrap_or_else(|| "/usr/sbin/nats-server".into());
    anyhow::ensure!(
        bin.is_file(),
        "no nats-server executable (dev/test installs one); set NATS_SERVER_BIN"
    );
    Ok(bin)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("a free loopback port")?
        .port())
}

/// The cluster's nodes, as processes not started yet, and the `NATS_URL` naming all
/// three.
pub fn nodes(
    dir: &Path,
    logs: &Path,
    run_id: &str,
    passwords: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<(Vec<Proc>, String)> {
    let bin = nats_server_bin()?;
    let config = write_config(dir)?;
    let env: Vec<(String, String)> = USERS
        .iter()
        .map(|(user, variable)| (variable.to_string(), passwords[*user].clone()))
        .chain([("NATS_CHAOS_PASSWORD".into(), passwords[TOOL_USER].clone())])
        .collect();
    let client: Vec<u16> = (0..NODES).map(|_| free_port()).collect::<Result<_, _>>()?;
    let route: Vec<u16> = (0..NODES).map(|_| free_port()).collect::<Result<_, _>>()?;
    let mut procs = Vec::new();
    for i in 0..NODES {
        let routes: Vec<String> = (0..NODES)
            .filter(|j| *j != i)
            .map(|j| format!("nats://127.0.0.1:{}", route[j]))
            .collect();
        let args = vec![
            "-c".into(),
            config.display().to_string(),
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            client[i].to_string(),
            // A stable server name: JetStream's clustering knows its peers by it.
            "-n".into(),
            format!("chaos-{run_id}-{i}"),
            "-js".into(),
            "-sd".into(),
            dir.join(format!("nats-{i}")).display().to_string(),
            "--cluster_name".into(),
            format!("chaos-{run_id}"),
            "--cluster".into(),
            format!("nats://127.0.0.1:{}", route[i]),
            "--routes".into(),
            routes.join(","),
        ];
        procs.push(Proc::new(
            Kind::Nats,
            format!("nats-{i}"),
            bin.clone(),
            args,
            env.clone(),
            logs,
        ));
    }
    let url = client
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    Ok((procs, url))
}

/// Connects to the cluster (any node) as [`TOOL_USER`].
pub async fn connect(url: &str, password: &str) -> anyhow::Result<async_nats::Client> {
    let servers = step_runtime::bus::servers(url)?;
    let mut last = None;
    for _ in 0..100 {
        match async_nats::ConnectOptions::new()
            .name("chaos")
            .user_and_password(TOOL_USER.into(), password.into())
            .connection_timeout(Duration::from_secs(2))
            .connect(servers.clone())
            .await
        {
            Ok(client) => return Ok(client),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("the NATS cluster does not answer: {last:?}")
}

/// Declares the saga's streams with three replicas, retrying until the cluster has
/// formed (declaring them before JetStream has a meta leader fails).
pub async fn declare_streams(js: &jetstream::Context, subjects: &Subjects) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        match step_runtime::bus::ensure_streams(
            js,
            subjects,
            NODES,
            step_runtime::bus::DEFAULT_REPORT_TTL,
        )
        .await
        {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() > deadline => {
                return Err(e.context("the cluster did not form within 90 s"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}
