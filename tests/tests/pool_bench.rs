//! The standby pool's benchmark (tools/pool-bench), short: two signups per path with
//! bench's real durations at a twentieth, on a NATS server of the test's own. It holds
//! the run to its outcomes, never its times: it exits 0 and says `ok`, both signups of
//! the pool's run took a standby over, none with the pool off did, and every database
//! it says it made (tenants, standbys, the two ledgers) is gone from MariaDB afterwards.

use std::process::Command;

#[tokio::test(flavor = "multi_thread")]
async fn two_signups_per_path_complete_the_pool_ones_from_standbys_and_nothing_is_left() {
    let pool_bench = tests::binary("pool-bench");
    let folder = tests::test_log_folder();
    let nats = tests::private_nats::PrivateNats::start(&folder);
    let output = Command::new(pool_bench)
        .args(["--signups", "2", "--scale", "0.05", "--no-build"])
        .env("NATS_URL", nats.url())
        .env("TENANT_DB_ADMIN_URL", tests::mysql_url())
        .env("TMPDIR", &folder)
        .output()
        .expect("pool-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        output.status.success() && last.starts_with("pool-bench: ok signups=2 "),
        "the benchmark failed ({}); stderr:\n{stderr}\nstdout:\n{stdout}",
        output.status
    );
    let line = |prefix: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .unwrap_or_else(|| panic!("a line `{prefix}...` in:\n{stdout}"))
            .to_string()
    };
    assert!(
        line("from the pool (standby ready):").contains("(2 completed, 2 took a standby over)"),
        "{stdout}"
    );
    assert!(
        line("usual path (pool off)        :").contains("(2 completed, 0 took a standby over)"),
        "{stdout}"
    );
    let dropped: Vec<String> = line("cleaned up:")
        .trim_start_matches("cleaned up:")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    // Two tenants per path, at least two standbys built (the pool refills after each
    // claim), and the two ledgers.
    assert!(dropped.len() >= 8, "{dropped:?}");
    for name in &dropped {
        assert_eq!(
            tests::mariadb_has(name).await,
            (false, false),
            "{name} (database, user) left behind"
        );
    }
}
