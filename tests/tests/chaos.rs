//! The chaos run's short version: `chaos --sagas 30` (tools/chaos) with the debug
//! binaries, on its own three-node NATS cluster, two orchestrators on one MariaDB store
//! (with a standby pool of 2, the tool's default) and two instances of each step
//! service, processes SIGKILLed all along. The run
//! checks what is left itself; this test holds it to its verdict: exit 0 and a last
//! line `chaos: ok ...`, with every check printed `ok`.

use std::process::Command;

#[test]
fn thirty_signups_under_kills_leave_exactly_what_their_sagas_own() {
    let chaos = tests::binary("chaos");
    // The run's folder (logs, bench, NATS stores) goes here and stays when a check
    // fails; a run that passes removes it.
    let folder = tests::test_log_folder();
    let output = Command::new(chaos)
        .args(["--sagas", "30", "--no-build", "--dir"])
        .arg(&folder)
        .output()
        .expect("chaos runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        output.status.success() && last.starts_with("chaos: ok sagas=30 "),
        "the chaos run failed ({}); stderr:\n{stderr}\nstdout:\n{stdout}",
        output.status
    );
    let checks: Vec<&str> = stdout
        .lines()
        .skip_while(|l| *l != "checks:")
        .skip(1)
        .filter(|l| !l.trim_start().starts_with('-'))
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert_eq!(checks.len(), 10, "every check printed: {checks:#?}");
    assert!(
        checks.iter().all(|l| l.trim_start().starts_with("ok ")),
        "{checks:#?}"
    );
}
