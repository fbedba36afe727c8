//! The orchestrator's HTTP API against real services (NATS with its users, the saga
//! store, the db step): the old service's endpoints, operators' reads with filters and
//! paging, live events resumed with Last-Event-ID, replays recorded with who and why,
//! and who may call what.

use std::time::Duration;

use serde_json::{json, Value};
use tests::{Behaviour, Harness};

use tests::http_api::{
    read_sse, read_sse_until, wait_for_role, API_SECRET as SECRET, READ_TOKEN as TOKEN,
};

/// `GET /api/v1/sagas/{id}` with the read token: the saga and its timeline.
async fn saga_of(client: &reqwest::Client, base: &str, id: &str) -> Value {
    client
        .get(format!("{base}/api/v1/sagas/{id}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_provisions_reads_follows_and_replays() {
    let mut h = Harness::new().await;
    // Registration fails, after a second's work: a replayed saga is still running
    // when a second replay is asked for.
    h.start_steps(&[(
        "registration",
        Behaviour {
            delay: Duration::from_secs(1),
            ..Behaviour::fail()
        },
    )]);
    let base = h.start_api(&[]);
    let client = reqwest::Client::new();
    wait_for_role(&client, &base, "leader").await;

    // Health, as the old service answered it, plus the role.
    let health: Value = client
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["master_site"], "master.example.test");
    assert!(health["timestamp"].is_string());

    // Who may call what: 401 with a JSON error, never a server error.
    let subdomain = h.subdomain("httpapi");
    let body = json!({
        "organization_name": "Http Api Org",
        "admin_email": "admin@test.com",
        "password": "TestPass123!-long enough",
        "full_name": "Test Admin",
        "subdomain": subdomain,
    });
    let refused = client
        .post(format!("{base}/api/v1/provision"))
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.json::<Value>().await.expect("json")["error"]["code"],
        "unauthorized"
    );
    let wrong = client
        .get(format!("{base}/api/v1/sagas"))
        .bearer_auth("nope")
        .send()
        .await
        .expect("get");
    assert_eq!(wrong.status(), 401);
    let none = client
        .get(format!("{base}/api/v1/sagas"))
        .send()
        .await
        .expect("get");
    assert_eq!(none.status(), 401);
    let read_token_writes = client
        .post(format!("{base}/api/v1/provision"))
        .header("X-Provisioning-Secret", TOKEN)
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(
        read_token_writes.status(),
        401,
        "the read token does not write"
    );

    // A malformed body is refused without quoting what was sent.
    let malformed = client
        .post(format!("{base}/api/v1/provision"))
        .header("X-Provisioning-Secret", SECRET)
        .json(&json!({"organization_name": "O", "admin_email": "a@b.co", "full_name": "A", "password": 98765432123_u64}))
        .send()
        .await
        .expect("post");
    assert_eq!(malformed.status(), 422);
    let text = malformed.text().await.expect("body");
    assert!(
        text.contains("invalid_payload") && !text.contains("98765432123"),
        "{text}"
    );

    // A password the site would refuse is told at once; no saga is made.
    let weak = client
        .post(format!("{base}/api/v1/provision"))
        .header("X-Provisioning-Secret", SECRET)
        .json(&json!({"organization_name": "Weak Org", "admin_email": "a@b.co", "full_name": "A", "password": "password1"}))
        .send()
        .await
        .expect("post");
    assert_eq!(weak.status(), 422);
    let weak: Value = weak.json().await.expect("json");
    assert_eq!(weak["error"]["code"], "invalid_password", "{weak}");

    // Provision twice: one saga.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let accepted = client
            .post(format!("{base}/api/v1/provision"))
            .header("X-Provisioning-Secret", SECRET)
            .json(&body)
            .send()
            .await
            .expect("post");
        assert_eq!(accepted.status(), 202);
        let accepted: Value = accepted.json().await.expect("json");
        assert_eq!(
            accepted["status_url"],
            format!(
                "/api/v1/sagas/{}",
                accepted["saga_id"].as_str().expect("id")
            )
        );
        ids.push(accepted["saga_id"].as_str().expect("id").to_string());
    }
    assert_eq!(ids[0], ids[1], "the same request is the same saga");
    let id = ids[0].clone();

    // Live: the saga's events to its end (registration fails: rolled back), 1..N.
    let events = client
        .get(format!("{base}/api/v1/sagas/{id}/events"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("events");
    assert_eq!(events.status(), 200);
    let seen = read_sse(events).await;
    let sequences: Vec<u64> = seen.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        sequences,
        (1..=sequences.len() as u64).collect::<Vec<_>>(),
        "no gap, no repeat"
    );
    assert_eq!(seen.last().expect("events").1["status"], "rolled_back");
    for (sequence, event) in &seen {
        assert_eq!(event["sequence"], *sequence);
    }

    // Resumed after event 2: exactly the rest.
    let resumed = client
        .get(format!("{base}/api/v1/sagas/{id}/events"))
        .bearer_auth(TOKEN)
        .header("Last-Event-ID", "2")
        .send()
        .await
        .expect("events");
    let rest: Vec<u64> = read_sse(resumed).await.iter().map(|(id, _)| *id).collect();
    assert_eq!(rest, sequences[2..].to_vec());

    // The password rests nowhere in clear: not in the timeline.
    let saga = saga_of(&client, &base, &id).await;
    assert!(!saga.to_string().contains("TestPass123!-long enough"));
    assert_eq!(saga["saga"]["status"], "rolled_back");
    let steps: Vec<&str> = saga["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["step"].as_str().expect("step"))
        .collect();
    assert_eq!(
        steps,
        ["database", "site", "admin_user", "registration"],
        "{saga}"
    );
    assert!(
        saga["steps"][0]["undos"].as_u64().expect("undos") >= 1,
        "{saga}"
    );

    // Filters and paging.
    let page = |query: String| {
        let client = client.clone();
        let url = format!("{base}/api/v1/sagas?{query}");
        async move {
            let r = client
                .get(url)
                .header("X-Provisioning-Secret", SECRET)
                .send()
                .await
                .expect("list");
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.expect("json")
        }
    };
    let found = page(format!(
        "status=rolled_back&subdomain={subdomain}&step=registration"
    ))
    .await;
    assert_eq!(
        found["sagas"].as_array().expect("sagas").len(),
        1,
        "{found}"
    );
    assert_eq!(
        page(format!("status=completed&subdomain={subdomain}")).await["sagas"],
        json!([])
    );
    let code = saga["saga"]["error"]["code"]
        .as_str()
        .expect("code")
        .to_string();
    assert_eq!(
        page(format!("error_code={code}&subdomain={subdomain}")).await["sagas"][0]["saga_id"],
        id.as_str()
    );
    let bad = client
        .get(format!("{base}/api/v1/sagas?cursor=junk"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("list");
    assert_eq!(bad.status(), 400);

    // Every saga's events, from now on: the second saga's, to its end.
    let all = client
        .get(format!("{base}/api/v1/events"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("all events");
    assert_eq!(all.status(), 200);

    // A second saga, then pages of one.
    let other = json!({ "organization_name": "Other Org", "admin_email": "b@test.com", "password": "TestPass123!-long enough", "full_name": "B", "subdomain": h.subdomain("httpapi2") });
    let second: Value = client
        .post(format!("{base}/api/v1/provision"))
        .header("X-Provisioning-Secret", SECRET)
        .json(&other)
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    let second_id = second["saga_id"].as_str().expect("id").to_string();
    for _ in 0..200 {
        let r = client
            .get(format!("{base}/api/v1/sagas/{second_id}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("get");
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 404, "not stored yet");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = |events: &[(u64, Value)]| {
        events
            .iter()
            .any(|(_, e)| e["saga_id"] == second["saga_id"] && e["status"] == "rolled_back")
    };
    let live = read_sse_until(all, done).await;
    assert!(done(&live), "{live:?}");
    assert!(
        live.iter().all(|(_, e)| e["saga_id"] == second["saga_id"]),
        "only what happened since: {live:?}"
    );
    assert!(live.windows(2).all(|w| w[0].0 < w[1].0), "in order");
    let resumed = client
        .get(format!("{base}/api/v1/events"))
        .bearer_auth(TOKEN)
        .header("Last-Event-ID", live[2].0.to_string())
        .send()
        .await
        .expect("all events");
    let next = read_sse_until(resumed, |e| !e.is_empty()).await;
    assert_eq!(next[0], live[3], "resumed right after the event named");
    let first_page = page("limit=1".into()).await;
    assert_eq!(first_page["sagas"][0]["saga_id"], second["saga_id"]);
    let cursor = first_page["next_cursor"]
        .as_str()
        .expect("a cursor")
        .to_string();
    let second_page = page(format!("limit=1&cursor={cursor}")).await;
    assert_eq!(second_page["sagas"][0]["saga_id"], id.as_str());

    // Bulk replay, dry run: lists, changes nothing.
    let dry: Value = client
        .post(format!("{base}/api/v1/sagas/replay"))
        .header("X-Provisioning-Secret", SECRET)
        .json(&json!({"step": "registration", "error_code": code, "dry_run": true}))
        .send()
        .await
        .expect("bulk")
        .json()
        .await
        .expect("json");
    assert!(
        dry["matched"]
            .as_array()
            .expect("matched")
            .iter()
            .any(|s| s["saga_id"] == id.as_str()),
        "{dry}"
    );
    assert_eq!(dry["replays"], json!([]));
    // A real bulk replay without any filter would replay every failed saga: refused
    // unless it says "all", and nothing replayed.
    let unfiltered = client
        .post(format!("{base}/api/v1/sagas/replay"))
        .header("X-Provisioning-Secret", SECRET)
        .json(&json!({}))
        .send()
        .await
        .expect("bulk");
    assert_eq!(unfiltered.status(), 400);
    let unfiltered: Value = unfiltered.json().await.expect("json");
    assert_eq!(unfiltered["error"]["code"], "bad_request", "{unfiltered}");
    assert_eq!(
        saga_of(&client, &base, &id).await["saga"]["run"],
        1,
        "not replayed"
    );

    // Replay, recorded with who and why, visible in the timeline.
    let replayed = client
        .post(format!("{base}/api/v1/sagas/{id}/replay"))
        .header("X-Provisioning-Secret", SECRET)
        .header("X-Operator", "alice")
        .json(&json!({"reason": "registry fixed"}))
        .send()
        .await
        .expect("replay");
    assert_eq!(replayed.status(), 202);
    // A replay of a saga that is running again is refused with 409, not an error.
    let again = client
        .post(format!("{base}/api/v1/sagas/{id}/replay"))
        .header("X-Provisioning-Secret", SECRET)
        .send()
        .await
        .expect("replay");
    assert_eq!(again.status(), 409);
    let again: Value = again.json().await.expect("json");
    assert_eq!(again["accepted"], false, "{again}");
    let saga = saga_of(&client, &base, &id).await;
    let action = &saga["operator_actions"][0];
    assert_eq!(action["operator"], "alice", "{saga}");
    assert_eq!(action["reason"], "registry fixed");
    assert_eq!(action["action"], "replay");
    assert!(
        saga["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .any(|e| e["message"]
                .as_str()
                .expect("message")
                .starts_with("Replayed by alice: registry fixed")),
        "{saga}"
    );

    // After the replay's run ends, the saga's stream ends with that run's end, not
    // with the first run's.
    assert_eq!(
        h.wait_terminal(id.parse().expect("uuid"), 60).await,
        contracts::SagaStatus::RolledBack
    );
    let whole = read_sse(
        client
            .get(format!("{base}/api/v1/sagas/{id}/events"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("events"),
    )
    .await;
    let ends = whole
        .iter()
        .filter(|(_, e)| e["status"] == "rolled_back")
        .count();
    assert_eq!(ends, 2, "both runs' ends");
    assert_eq!(whole.last().expect("events").1["status"], "rolled_back");
    assert_eq!(
        whole.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        (1..=whole.len() as u64).collect::<Vec<_>>()
    );

    let missing = client
        .post(format!(
            "{base}/api/v1/sagas/{}/replay",
            uuid::Uuid::new_v4()
        ))
        .header("X-Provisioning-Secret", SECRET)
        .send()
        .await
        .expect("replay");
    assert_eq!(missing.status(), 404);

    // The subdomain check answers as tenant.subdomain.check does.
    let check: Value = client
        .get(format!("{base}/api/check-subdomain?subdomain=www"))
        .send()
        .await
        .expect("check")
        .json()
        .await
        .expect("json");
    assert_eq!(check["available"], false);
    assert_eq!(check["reason"], "reserved");
    let openapi: Value = client
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    assert!(openapi["paths"]["/api/v1/provision"].is_object());
    h.finish().await;
}
