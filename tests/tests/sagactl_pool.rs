//! `sagactl pool` as operators run it, a process against a real orchestrator (its HTTP
//! API and NATS with the deployment's users; no step services: the builds it starts
//! only wait): the pool shown, its size set over HTTP (the orchestrator passes it to
//! the leader over NATS, as its NATS user may) and cleared over NATS, who and why
//! recorded, bad input refused before anything is sent.

use contracts::pool::{PoolReply, PoolSizeSource};
use tests::sagactl::{Sagactl, Way};
use tests::Harness;

/// `sagactl pool show --json`.
async fn shown_pool(ctl: &Sagactl, way: &Way) -> PoolReply {
    ctl.run(way, &["pool", "show", "--json"]).await.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_show_set_and_clear_the_pool_size_with_sagactl() {
    let mut h = Harness::new().await;
    // Three builds may be under way at once, so that a size of 3 shows three building.
    let api = h.start_api(&[("STANDBY_BUILDS_AT_ONCE", "3".to_string())]);
    tests::http_api::wait_for_role(&reqwest::Client::new(), &api, "leader").await;
    let ctl = Sagactl::new(&h);
    let (nats, http) = (Way::Nats("operator"), Way::Http(api.clone()));

    let shown = ctl.run(&nats, &["pool", "show"]).await;
    assert_eq!(shown.code, 0, "{shown:#?}");
    assert!(
        shown.stdout.contains("size        0 (STANDBY_POOL_SIZE)"),
        "{shown:#?}"
    );

    // Refused before anything is sent: out of bounds, or no reason.
    let big = ctl
        .run(&http, &["pool", "set", "1001", "--reason", "many"])
        .await;
    assert_eq!(big.code, 2, "{big:#?}");
    assert!(big.stderr.contains("0 to 1000"), "{big:#?}");
    let why = ctl.run(&http, &["pool", "set", "3"]).await;
    assert_eq!(why.code, 2, "{why:#?}");

    // Set over HTTP: the leader records who and why; every way reads it.
    let set = ctl
        .run(&http, &["pool", "set", "3", "--reason", "launch day"])
        .await;
    assert_eq!(set.code, 0, "{set:#?}");
    assert!(
        set.stdout
            .contains("size        3 (set by an operator; STANDBY_POOL_SIZE is 0)"),
        "{set:#?}"
    );
    assert!(
        set.stdout.contains("set by ops-ann") && set.stdout.contains(": launch day"),
        "{set:#?}"
    );
    tests::assert_eventually!(
        30,
        "three standbys building",
        shown_pool(&ctl, &nats).await.counts.building == 3
    );
    let reply = shown_pool(&ctl, &nats).await;
    assert_eq!((reply.size, reply.source), (3, PoolSizeSource::Operator));
    let table = ctl.run(&http, &["pool", "show"]).await;
    assert_eq!(table.code, 0, "{table:#?}");
    assert_eq!(
        table
            .stdout
            .lines()
            .filter(|l| l.contains(" building "))
            .count(),
        3,
        "each standby listed: {table:#?}"
    );

    // Cleared over NATS: back to the configured size.
    let cleared = ctl
        .run(&nats, &["pool", "clear", "--reason", "launch over"])
        .await;
    assert_eq!(cleared.code, 0, "{cleared:#?}");
    let reply = shown_pool(&ctl, &http).await;
    assert_eq!((reply.size, reply.source), (0, PoolSizeSource::Configured));
    let action = reply.last_action.expect("recorded");
    assert_eq!(
        (
            action.action.as_str(),
            action.operator.as_str(),
            action.reason.as_str()
        ),
        ("pool_size_cleared", "ops-ann", "launch over")
    );

    h.finish().await;
}
