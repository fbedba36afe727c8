//! The operators' reads of every store: pages of a filtered list that neither repeat
//! nor skip a saga, and who replayed a saga and why, kept in its timeline.

use chrono::Utc;
use contracts::{OperatorAction, SagaStatus};
use orchestrator::saga::Input;
use orchestrator::store::{ListCursor, ListQuery, SagaStore};

use super::{advance, fail_first_step_and_roll_back, started};

/// Three sagas of one subdomain prefix; pages of one walk through all of them.
pub async fn pages_and_filters(store: &impl SagaStore, prefix: &str) {
    let mut made = Vec::new();
    for n in 0..3 {
        made.push(started(store, &format!("{prefix}-{n}")).await.id);
        // Distinct milliseconds, so the newest-first order is known.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let one = |subdomain: String| ListQuery {
        subdomain: Some(subdomain),
        limit: 10,
        ..ListQuery::default()
    };
    let found = store
        .list_page(&one(format!("{prefix}-1")))
        .await
        .expect("list");
    assert_eq!(found.iter().map(|s| s.id).collect::<Vec<_>>(), [made[1]]);

    // Since the first of them: the three (and nothing older), newest first, one a page.
    let first = store.get(made[0]).await.expect("get").expect("saga");
    let mut query = ListQuery {
        since: Some(first.created_at),
        status: Some(SagaStatus::Running),
        limit: 1,
        ..ListQuery::default()
    };
    let mut walked = Vec::new();
    loop {
        let page = store.list_page(&query).await.expect("page");
        let Some(last) = page.last() else { break };
        query.after = Some(ListCursor::of(last));
        walked.extend(page.iter().map(|s| s.id));
    }
    let mine: Vec<_> = walked
        .iter()
        .filter(|id| made.contains(id))
        .copied()
        .collect();
    assert_eq!(
        mine,
        made.iter().rev().copied().collect::<Vec<_>>(),
        "no repeat, no gap"
    );

    // Until the first was created: none of them.
    let before = store
        .list_page(&ListQuery {
            until: Some(first.created_at),
            limit: 500,
            ..ListQuery::default()
        })
        .await
        .expect("list");
    assert!(before.iter().all(|s| !made.contains(&s.id)));
}

/// A requeue's (a replay here: the saga rolled back) who, why and letter come back
/// with the timeline.
pub async fn operator_actions_are_kept(store: &impl SagaStore, subdomain: &str) {
    let rolled_back = fail_first_step_and_roll_back(store, &started(store, subdomain).await).await;
    let action = OperatorAction {
        action: "requeue".into(),
        operator: "alice".into(),
        reason: "the registry is back".into(),
        at: Utc::now(),
        dead_letter: None,
    };
    let requeue = Input::Requeue {
        action: action.clone(),
        letter: 7,
        step: Some("database".into()),
    };
    let (replayed, _) = advance(store, &rolled_back, requeue).await;
    let timeline = store.timeline(replayed.id).await.expect("timeline");
    let noted: Vec<_> = timeline
        .iter()
        .filter_map(|e| e.operator_action.as_deref())
        .collect();
    assert_eq!(noted.len(), 1);
    // Stored times keep what JSON keeps; compare the rest exactly.
    assert_eq!(
        (
            &noted[0].operator,
            &noted[0].reason,
            &noted[0].action,
            noted[0].dead_letter
        ),
        (&action.operator, &action.reason, &action.action, Some(7))
    );
    let event = timeline
        .iter()
        .find(|e| e.operator_action.is_some())
        .expect("the replay's event");
    assert!(
        event
            .message
            .starts_with("Requeued by alice (dead letter 7): the registry is back. Replaying"),
        "{}",
        event.message
    );
}
