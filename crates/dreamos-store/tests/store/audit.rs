//! The audit log's hash chain detects edits and deletions, on both backends.

use dreamos_store::{AuditEntry, AuditFilter, AuditKey, GENESIS, entry_hash, keyed_hash};

use crate::both_backends;
use crate::common::Harness;

fn entry(n: usize) -> AuditEntry {
    AuditEntry {
        request_id: format!("r{n}"),
        actor: if n.is_multiple_of(2) { "admin:admin".into() } else { "operator:ci".into() },
        action: "POST /api/v1/tasks".into(),
        target: format!("/api/v1/tasks/{n}"),
        outcome: "201".into(),
        detail: None,
    }
}

async fn fill(h: &Harness, n: usize) {
    for i in 1..=n {
        h.store.audit(vec![entry(i)]).await.unwrap();
        h.clock.advance_ms(1);
    }
}

async fn the_chain_verifies_and_reads_back(h: &Harness) {
    let s = &h.store;
    assert_eq!(s.verify_audit().await.unwrap().unwrap(), (0, GENESIS.to_string()));
    fill(h, 6).await;
    let (len, head) = s.verify_audit().await.unwrap().unwrap();
    assert_eq!(len, 6);
    let all = s.read_audit(AuditFilter { limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(all[5].hash, head);
    assert_eq!(all[0].prev_hash, GENESIS);
    assert!(all.windows(2).all(|w| w[1].prev_hash == w[0].hash));
    let newest =
        s.read_audit(AuditFilter { limit: 2, newest: true, ..Default::default() }).await.unwrap();
    assert_eq!(newest.iter().map(|r| r.id).collect::<Vec<_>>(), vec![5, 6]);
    let ops = AuditFilter { actor: Some("operator:ci".into()), limit: 100, ..Default::default() };
    assert_eq!(s.read_audit(ops).await.unwrap().len(), 3);
}

async fn actor_and_action_filters_match_text_they_contain(h: &Harness) {
    let s = &h.store;
    fill(h, 6).await;
    s.audit(vec![AuditEntry {
        actor: "agent:build_1".into(),
        action: "auth.failed".into(),
        ..entry(7)
    }])
    .await
    .unwrap();
    let count = |actor: Option<&str>, action: Option<&str>| {
        let filter = AuditFilter {
            actor: actor.map(Into::into),
            action: action.map(Into::into),
            limit: 100,
            ..Default::default()
        };
        async move { s.read_audit(filter).await.unwrap().len() }
    };
    // `--actor admin` finds `admin:admin`; case does not matter; a part of a name is enough.
    assert_eq!(count(Some("admin"), None).await, 3);
    assert_eq!(count(Some("OPERATOR"), None).await, 3);
    assert_eq!(count(Some("ci"), None).await, 3);
    assert_eq!(count(Some("admin"), Some("/tasks")).await, 3);
    assert_eq!(count(None, Some("AUTH.")).await, 1);
    // LIKE's wildcards in the text match only themselves.
    assert_eq!(count(Some("build_1"), None).await, 1);
    assert_eq!(count(Some("build%"), None).await, 0);
    assert_eq!(count(Some("_"), None).await, 1);
    assert_eq!(count(Some("\\"), None).await, 0);
    assert_eq!(count(Some("!"), None).await, 0);
    assert_eq!(count(Some("'"), None).await, 0);
    assert_eq!(count(Some("nobody"), None).await, 0);
}

async fn an_edited_entry_is_detected(h: &Harness) {
    fill(h, 5).await;
    h.tamper("audit_log", "UPDATE TABLE SET outcome = '200' WHERE id = 3").await;
    let broken = h.store.verify_audit().await.unwrap().unwrap_err();
    assert_eq!(broken.id, 3, "{broken:?}");
    assert!(broken.reason.contains("edited"), "{broken:?}");
}

async fn a_deleted_entry_is_detected(h: &Harness) {
    fill(h, 5).await;
    h.tamper("audit_log", "DELETE FROM TABLE WHERE id = 2").await;
    let broken = h.store.verify_audit().await.unwrap().unwrap_err();
    assert_eq!(broken.id, 3, "{broken:?}");
    assert!(broken.reason.contains("missing"), "{broken:?}");
    // Renumbering to hide the gap breaks the link instead.
    h.tamper("audit_log", "UPDATE TABLE SET id = id - 1 WHERE id > 2").await;
    let broken = h.store.verify_audit().await.unwrap().unwrap_err();
    assert_eq!(broken.id, 2, "{broken:?}");
}

/// Someone with write access to the database but not the key edits entry 3 and recomputes
/// every hash after it, unkeyed or under a key of their own: the chain no longer verifies.
async fn a_rewritten_history_is_detected_without_the_key(h: &Harness) {
    fill(h, 5).await;
    let all = h.store.read_audit(AuditFilter { limit: 100, ..Default::default() }).await.unwrap();
    assert!(all.iter().all(|r| r.hash.starts_with("k1:")), "a keyed store writes keyed hashes");
    let forged_key = AuditKey::new(&[9u8; 32], 0);
    for forge in [None, Some(&forged_key)] {
        let mut prev = all[1].hash.clone();
        for r in &all[2..] {
            let mut entry = r.entry.clone();
            if r.id == 3 {
                entry.outcome = "200".into();
            }
            let hash = match forge {
                None => entry_hash(&prev, r.id, r.at_ms, &entry),
                Some(k) => keyed_hash(Some(k), &prev, r.id, r.at_ms, &entry),
            };
            let sql = format!(
                "UPDATE TABLE SET outcome = '{}', prev_hash = '{prev}', hash = '{hash}' WHERE id = {}",
                entry.outcome, r.id
            );
            h.tamper("audit_log", &sql).await;
            prev = hash;
        }
        let broken = h.store.verify_audit().await.unwrap().unwrap_err();
        assert_eq!(broken.id, 3, "{forge:?}: {broken:?}");
    }
}

both_backends!(
    a_rewritten_history_is_detected_without_the_key,
    the_chain_verifies_and_reads_back,
    actor_and_action_filters_match_text_they_contain,
    an_edited_entry_is_detected,
    a_deleted_entry_is_detected
);
