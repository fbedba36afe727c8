//! The services run inside the test process: the orchestrator and each step service
//! with their real code, against the test's own NATS and MariaDB (a bench emulator
//! folder for the Frappe steps, the Master stand-in for the registration).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{binary, mysql_url, BenchHttp, Harness, ScriptedStep};

impl Harness {
    /// Runs the orchestrator in this process until the harness drops.
    pub fn start_orchestrator(&mut self) {
        self.start_orchestrator_with(&[]);
    }

    /// [`Harness::start_orchestrator`] with some settings set or replaced.
    pub fn start_orchestrator_with(&mut self, settings: &[(&str, String)]) {
        let base = self.lookup("orchestrator");
        let lookup = |k: &str| {
            settings
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.clone())
                .or_else(|| base(k))
        };
        let config = orchestrator::config::from_lookup(lookup).expect("orchestrator config");
        drop(base);
        let stop = self.stop.clone();
        self.tasks.push(tokio::spawn(async move {
            if let Err(e) = orchestrator::run(config, stop).await {
                panic!("orchestrator failed: {e:#}");
            }
        }));
    }

    /// Runs the real database step in this process.
    pub fn start_db_step(&mut self) {
        let config = step_runtime::config_from(self.lookup("db-step")).expect("runtime config");
        let databases =
            db_step::mariadb::MariaDb::new(&mysql_url(), crate::LEDGER).expect("mariadb");
        let stop = self.stop.clone();
        self.tasks.push(tokio::spawn(async move {
            databases.prepare().await.expect("ledger");
            step_runtime::run(db_step::DatabaseStep::new(databases), config, stop)
                .await
                .expect("db-step");
        }));
    }

    /// Serves a step with a scripted test service.
    pub fn start_scripted(&mut self, step: ScriptedStep) {
        let config = self.runtime_config(step_runtime::Step::name(&step));
        let stop = self.stop.clone();
        self.tasks.push(tokio::spawn(async move {
            step_runtime::run(step, config, stop)
                .await
                .expect("scripted step");
        }));
    }

    /// Serves a step with a scripted service that stops on its own token, with a
    /// shutdown grace of `grace` (to test graceful shutdown).
    pub fn start_scripted_until(
        &mut self,
        step: ScriptedStep,
        stop: CancellationToken,
        grace: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let mut config = self.runtime_config(step_runtime::Step::name(&step));
        config.shutdown_grace = grace;
        tokio::spawn(async move {
            step_runtime::run(step, config, stop)
                .await
                .expect("scripted step");
        })
    }

    /// A bench folder for the emulator: `frappe_user` set (tests run as root), apps
    /// `frappe` and `erpnext`, and `emulator` as `emulator.json` (faults, delay).
    pub fn bench_folder(&self, emulator: serde_json::Value) -> PathBuf {
        let root = self.dir.path().join("frappe-bench");
        std::fs::create_dir_all(root.join("sites")).expect("bench folder");
        std::fs::write(
            root.join("sites/common_site_config.json"),
            r#"{"frappe_user": "frappe", "db_host": "127.0.0.1", "db_port": 3306}"#,
        )
        .expect("common config");
        std::fs::write(root.join("sites/apps.txt"), "frappe\nerpnext\n").expect("apps.txt");
        std::fs::write(root.join("emulator.json"), emulator.to_string()).expect("emulator.json");
        root
    }

    /// Runs the real site step in this process, bench being the emulator in `root`.
    pub fn start_site_step(&mut self, root: &std::path::Path, concurrency: usize) {
        let config = self.runtime_config("site");
        let bench =
            bench::local::LocalBench::new(binary("bench-emulator").display().to_string(), root);
        let settings = site_step::Settings {
            apps: vec!["erpnext".into()],
            concurrency,
            command_timeout: Duration::from_secs(60),
        };
        let stop = self.stop.clone();
        self.tasks.push(tokio::spawn(async move {
            step_runtime::run(site_step::SiteStep::new(bench, settings), config, stop)
                .await
                .expect("site-step");
        }));
    }

    /// The bench's web server for bench folder `root` (`bench serve` of the emulator),
    /// started the first time it is asked for and stopped with the harness; its output
    /// goes to `bench-serve-<n>.log` under [`Harness::logs`].
    pub fn bench_http(&self, root: &std::path::Path) -> Arc<BenchHttp> {
        let mut servers = self.servers.lock().expect("servers");
        if let Some(server) = servers.iter().find(|s| s.root == root) {
            return server.clone();
        }
        let log = self.logs.join(format!("bench-serve-{}.log", servers.len()));
        let server = Arc::new(BenchHttp::start(root, &log));
        servers.push(server.clone());
        server
    }

    /// Runs the real admin user step in this process, bench being the emulator in
    /// `root` and its web server [`Harness::bench_http`].
    pub fn start_user_step(&mut self, root: &std::path::Path) {
        let config = self.runtime_config("admin_user");
        let bench =
            bench::local::LocalBench::new(binary("bench-emulator").display().to_string(), root);
        let http = user_step::frappe_http::FrappeHttp::new(&self.bench_http(root).url)
            .expect("bench serve url");
        let web_app = self.web_app_key.recipient().clone();
        let stop = self.stop.clone();
        self.tasks.push(tokio::spawn(async move {
            step_runtime::run(
                user_step::UserStep::new(bench, http, Duration::from_secs(60), web_app),
                config,
                stop,
            )
            .await
            .expect("user-step");
        }));
    }

    /// Runs the Master site stand-in on a free port; returns its URL and state.
    pub async fn start_master(&mut self) -> (String, master_standin::Shared) {
        let state = std::sync::Arc::new(std::sync::Mutex::new(master_standin::Master {
            site_name: "master.example.test".into(),
            api_key: "key123".into(),
            api_secret: "secret456".into(),
            doctype: "SaaS Tenant".into(),
            ..Default::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let serving = state.clone();
        let stop = self.stop.clone();
        self.tasks.push(tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                _ = master_standin::serve(listener, serving) => {}
            }
        }));
        (url, state)
    }

    /// Runs the real registration step in this process against `url`.
    pub fn start_registry_step(&mut self, url: &str) {
        let config = self.runtime_config("registration");
        let master = registry_step::Master {
            url: url.into(),
            site_name: "master.example.test".into(),
            api_key: "key123".into(),
            api_secret: "secret456".to_string().into(),
            doctype: "SaaS Tenant".into(),
        };
        let step = registry_step::RegistryStep::new(master).expect("http client");
        let stop = self.stop.clone();
        self.tasks.push(tokio::spawn(async move {
            step_runtime::run(step, config, stop)
                .await
                .expect("registry-step");
        }));
    }
}
