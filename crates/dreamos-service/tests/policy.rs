//! The policy against an independent statement of it: random principals and random
//! submissions (fan-outs nested in fan-outs included), each answer checked against the rules
//! as docs/security.md states them. No principal may submit what its role and scopes do not
//! allow, however the request is wrapped.

use dreamos_queue::{KindRegistry, KindSpec};
use dreamos_service::policy::{self, Submitter};
use dreamos_service::{Principal, Role};
use proptest::prelude::*;
use serde_json::{Value, json};

const WORKSPACES: [&str; 3] = ["alpha", "beta", "gamma"];
const KINDS: [&str; 5] = ["noop", "exec", "search", "index", "fanout"];

fn principal() -> impl Strategy<Value = Principal> {
    let role = prop::sample::select(Role::ALL.to_vec());
    let scope = prop::option::of(prop::sample::subsequence(WORKSPACES.to_vec(), 1..=3));
    (role, scope, "[a-z]{1,6}").prop_map(|(role, scope, id)| Principal {
        token_id: id,
        role,
        label: "someone".into(),
        workspaces: scope.map(|s| s.into_iter().map(String::from).collect()),
    })
}

/// A task: a leaf of some kind, maybe naming a workspace, or a fan-out of up to three tasks.
fn task() -> impl Strategy<Value = (String, Value)> {
    let leaf = (
        prop::sample::select(KINDS[..4].to_vec()),
        prop::option::of(prop::sample::select(WORKSPACES.to_vec())),
    )
        .prop_map(|(kind, ws)| {
            let payload = match ws {
                Some(w) => json!({ "workspace": w, "query": "x" }),
                None => json!({}),
            };
            (kind.to_string(), payload)
        });
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop::collection::vec(inner, 1..=3).prop_map(|children| {
            let tasks: Vec<Value> =
                children.into_iter().map(|(k, p)| json!({ "kind": k, "payload": p })).collect();
            ("fanout".to_string(), json!({ "tasks": tasks }))
        })
    })
}

/// Every task a submission would run: itself, or for a fan-out all it carries.
fn leaves(kind: &str, payload: &Value, out: &mut Vec<(String, Option<String>)>) {
    if kind == "fanout" {
        for t in payload["tasks"].as_array().unwrap() {
            leaves(t["kind"].as_str().unwrap(), &t["payload"], out);
        }
    } else {
        out.push((kind.into(), payload["workspace"].as_str().map(String::from)));
    }
}

/// Every kind a submission holds, fan-outs included.
fn every_kind(kind: &str, payload: &Value, out: &mut Vec<String>) {
    out.push(kind.into());
    if kind == "fanout" {
        for t in payload["tasks"].as_array().unwrap() {
            every_kind(t["kind"].as_str().unwrap(), &t["payload"], out);
        }
    }
}

/// The node's kinds as far as policy goes: the built-in ones, `search` (which only reads) and
/// `index` (which writes an index).
fn kinds() -> KindRegistry {
    let mut kinds = KindRegistry::builtin();
    let any = json!({ "type": "object" });
    kinds.register(KindSpec::new("search", "reads", any.clone(), false).unwrap().reads_only());
    kinds.register(KindSpec::new("index", "writes", any, false).unwrap());
    kinds
}

/// The rules, stated once more from the documentation rather than from the code: viewers
/// submit only kinds that read (`search`), operators anything but `exec`, admins anything;
/// a fan-out needs its own right and that of everything it carries.
fn allowed(who: &Principal, kind: &str, payload: &Value) -> bool {
    let mut kinds = Vec::new();
    every_kind(kind, payload, &mut kinds);
    let role_ok = kinds.iter().all(|k| match k.as_str() {
        "search" => matches!(who.role, Role::Viewer | Role::Operator | Role::Admin),
        "exec" => who.role == Role::Admin,
        _ => matches!(who.role, Role::Operator | Role::Admin),
    });
    let mut all = Vec::new();
    leaves(kind, payload, &mut all);
    // A scoped principal sees only its workspaces' tasks, and no code task without one.
    role_ok
        && all.iter().all(|(k, ws)| match (&who.workspaces, ws) {
            (None, _) => true,
            (Some(scope), Some(w)) => scope.contains(w),
            (Some(_), None) => !["search", "index", "analyze"].contains(&k.as_str()),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn submissions_follow_the_policy_table(who in principal(), (kind, payload) in task()) {
        let kinds = kinds();
        let answer = policy::may_submit(Submitter::User(&who), &kinds, &kind, &payload);
        prop_assert_eq!(answer.is_ok(), allowed(&who, &kind, &payload), "{:?} {} {}", who, kind, payload);
        // Whatever it may not submit, it may not see either if scoped away from it.
        if who.workspaces.is_some() && !policy::sees_task(&who, &kind, &payload) {
            prop_assert!(answer.is_err());
        }
    }

    #[test]
    fn agents_spawn_only_what_they_were_granted(
        granted in prop::sample::subsequence(KINDS.to_vec(), 0..=5),
        (kind, payload) in task(),
    ) {
        let kinds = kinds();
        let agent = Principal { token_id: "t".into(), role: Role::Agent, label: "ag_1".into(), workspaces: None };
        let granted: Vec<String> = granted.into_iter().map(String::from).collect();
        let answer = policy::may_submit(Submitter::Agent { agent: &agent, granted: &granted }, &kinds, &kind, &payload);
        let mut all = Vec::new();
        every_kind(&kind, &payload, &mut all);
        let expected = if granted.is_empty() {
            !all.iter().any(|k| k == "exec")
        } else {
            all.iter().all(|k| granted.contains(k))
        };
        prop_assert_eq!(answer.is_ok(), expected, "{:?} {} {}", granted, kind, payload);
    }

    #[test]
    fn tokens_are_minted_within_the_minters_role_and_scope(
        who in principal(),
        role in prop::sample::select(Role::ALL.to_vec()),
        scope in prop::option::of(prop::sample::subsequence(WORKSPACES.to_vec(), 1..=3)),
    ) {
        let scope: Option<Vec<String>> = scope.map(|s| s.into_iter().map(String::from).collect());
        let answer = policy::may_mint(&who, role, scope.as_deref());
        let within = match (&who.workspaces, &scope) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(mine), Some(theirs)) => theirs.iter().all(|w| mine.contains(w)),
        };
        let expected = who.role == Role::Admin && role != Role::Agent && within;
        prop_assert_eq!(answer.is_ok(), expected);
    }
}

#[test]
fn idempotency_keys_live_in_their_owners_namespace() {
    let a = Principal {
        token_id: "aaa".into(),
        role: Role::Operator,
        label: "x".into(),
        workspaces: None,
    };
    let b = Principal { token_id: "bbb".into(), ..a.clone() };
    let (ka, kb) = (policy::own_idempotency_key(&a, "k"), policy::own_idempotency_key(&b, "k"));
    assert_ne!(ka, kb);
    assert_eq!(policy::shown_idempotency_key(&ka), "k");
    assert_eq!(policy::shown_idempotency_key("fanout:1:0"), "fanout:1:0");
    // A key that looks like another's namespace is still inside the caller's own.
    let forged = policy::own_idempotency_key(&a, &kb);
    assert_ne!(forged, kb);
}
