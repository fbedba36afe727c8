//! A three-node NATS cluster on loopback: three nats-server processes with JetStream,
//! each on its own client and route ports and file store, routed to the other two.
//! A killed node is started again with the same command line, so on the same store.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use contracts::Subjects;

use crate::procs::{Kind, Proc};

/// Nodes in the cluster: three, so that streams with three replicas keep a quorum
/// while one node is down.
pub const NODES: usize = 3;

/// The nats-server executable: `NATS_SERVER_BIN`, else the one on PATH, else Debian's.
pub fn nats_server_bin() -> anyhow::Result<PathBuf> {
    if let Ok(bin) = std::env::var("NATS_SERVER_BIN") {
        return Ok(bin.into());
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
pub fn nodes(dir: &Path, logs: &Path, run_id: &str) -> anyhow::Result<(Vec<Proc>, String)> {
    let bin = nats_server_bin()?;
    let client: Vec<u16> = (0..NODES).map(|_| free_port()).collect::<Result<_, _>>()?;
    let route: Vec<u16> = (0..NODES).map(|_| free_port()).collect::<Result<_, _>>()?;
    let mut procs = Vec::new();
    for i in 0..NODES {
        let routes: Vec<String> = (0..NODES)
            .filter(|j| *j != i)
            .map(|j| format!("nats://127.0.0.1:{}", route[j]))
            .collect();
        let args = vec![
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
            Vec::new(),
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

/// Connects to the cluster (any node).
pub async fn connect(url: &str) -> anyhow::Result<async_nats::Client> {
    let servers = step_runtime::bus::servers(url)?;
    let mut last = None;
    for _ in 0..100 {
        match async_nats::ConnectOptions::new()
            .name("chaos")
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
