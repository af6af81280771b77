//! Agents, messages, leader leases and the orchestrator's dispatch, on both backends.

use std::collections::BTreeMap;
use std::sync::Arc;

use dreamos_core::{Completion, NewTask, Outcome, Task, TaskState};
use dreamos_store::{
    AgentAnswer, AgentOp, AgentRecord, AgentState, Audience, Capability, ClaimRequest, Control,
    Heartbeat, Message, NewMessage, Store, StoreError, Waiter, claim_capabilities,
    label_requirement,
};
use serde_json::json;

use crate::both_backends;
use crate::common::{Harness, START_MS};

const BEAT_MS: i64 = 1_000;

fn record(id: &str, caps: &[&str]) -> AgentRecord {
    AgentRecord {
        id: id.into(),
        name: format!("name-{id}"),
        token_id: None,
        capabilities: caps.iter().map(|c| Capability::parse(c)).collect(),
        labels: BTreeMap::new(),
        slots: 4,
        state: AgentState::Starting,
        control: None,
        protocol: None,
        heartbeat_ms: BEAT_MS,
        last_seen_at_ms: None,
        created_at_ms: 0,
        updated_at_ms: 0,
    }
}

async fn agent(s: &Arc<dyn Store>, op: AgentOp) -> AgentRecord {
    match s.agent(op).await.unwrap() {
        AgentAnswer::Agent(a) | AgentAnswer::Beat(a) => a,
        other => panic!("expected an agent, got {other:?}"),
    }
}

async fn register(
    s: &Arc<dyn Store>,
    id: &str,
    caps: &[&str],
    labels: &[(&str, &str)],
    slots: u32,
) {
    agent(s, AgentOp::Create(record(id, caps))).await;
    agent(
        s,
        AgentOp::Register {
            id: id.into(),
            capabilities: caps.iter().map(|c| Capability::parse(c)).collect(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            slots,
            heartbeat_ms: BEAT_MS,
            protocol: 1,
        },
    )
    .await;
}

fn waiter(id: &str, caps: &[&str], labels: &[(&str, &str)], slots: usize) -> Waiter {
    let caps: Vec<Capability> = caps.iter().map(|c| Capability::parse(c)).collect();
    let labels: BTreeMap<String, String> =
        labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Waiter {
        agent_id: Some(id.into()),
        claim: ClaimRequest {
            holder: format!("agent:{id}"),
            capabilities: claim_capabilities(&caps, &labels),
            kinds: None,
            max: slots,
            lease_ms: 30_000,
        },
        slots,
    }
}

async fn dispatch(
    s: &Arc<dyn Store>,
    waiters: Vec<Waiter>,
    limits: &[(&str, usize)],
) -> Vec<Vec<Task>> {
    let kind_limits = limits.iter().map(|(k, n)| (k.to_string(), *n)).collect();
    match s.agent(AgentOp::Dispatch { waiters, kind_limits }).await.unwrap() {
        AgentAnswer::Dispatched(d) => d,
        other => panic!("{other:?}"),
    }
}

async fn states(s: &Arc<dyn Store>, id: &str) -> Vec<(Option<AgentState>, AgentState)> {
    match s.agent(AgentOp::Events { id: id.into() }).await.unwrap() {
        AgentAnswer::Events(e) => e.into_iter().map(|e| (e.from, e.to)).collect(),
        other => panic!("{other:?}"),
    }
}

async fn lifecycle_is_tracked_with_history(h: &Harness) {
    let s = &h.store;
    register(s, "a1", &["noop"], &[], 2).await;
    let a = agent(s, AgentOp::Get { id: "a1".into() }).await;
    assert_eq!(a.state, AgentState::Idle);
    assert_eq!(a.last_seen_at_ms, Some(START_MS));

    assert_eq!(
        agent(s, AgentOp::Beat { id: "a1".into(), running: 1 }).await.state,
        AgentState::Busy
    );
    let drained = AgentOp::Control { id: "a1".into(), control: Control::Drain, actor: "op".into() };
    assert_eq!(agent(s, drained).await.state, AgentState::Draining);
    // A heartbeat does not end draining.
    assert_eq!(
        agent(s, AgentOp::Beat { id: "a1".into(), running: 0 }).await.state,
        AgentState::Draining
    );
    let resumed =
        AgentOp::Control { id: "a1".into(), control: Control::Resume, actor: "op".into() };
    assert_eq!(agent(s, resumed).await.state, AgentState::Idle);

    // Three missed intervals make it lost; a later heartbeat brings it back.
    h.clock.advance_ms(3 * BEAT_MS);
    match s.agent(AgentOp::MarkLost { missed: 3 }).await.unwrap() {
        AgentAnswer::Ids(ids) => assert!(ids.is_empty(), "exactly three intervals is not yet lost"),
        other => panic!("{other:?}"),
    }
    h.clock.advance_ms(1);
    match s.agent(AgentOp::MarkLost { missed: 3 }).await.unwrap() {
        AgentAnswer::Ids(ids) => assert_eq!(ids, vec!["a1".to_string()]),
        other => panic!("{other:?}"),
    }
    assert_eq!(agent(s, AgentOp::Get { id: "a1".into() }).await.state, AgentState::Lost);
    assert_eq!(
        agent(s, AgentOp::Beat { id: "a1".into(), running: 0 }).await.state,
        AgentState::Idle
    );

    let stop = AgentOp::Control { id: "a1".into(), control: Control::Stop, actor: "op".into() };
    let stopped = agent(s, stop).await;
    assert_eq!((stopped.state, stopped.control.as_deref()), (AgentState::Stopped, Some("stop")));
    let resume = AgentOp::Control { id: "a1".into(), control: Control::Resume, actor: "op".into() };
    assert!(matches!(s.agent(resume).await, Err(StoreError::Conflict(_))));

    use AgentState::*;
    assert_eq!(
        states(s, "a1").await,
        vec![
            (None, Starting),
            (Some(Starting), Idle),
            (Some(Idle), Busy),
            (Some(Busy), Draining),
            (Some(Draining), Idle),
            (Some(Idle), Lost),
            (Some(Lost), Idle),
            (Some(Idle), Stopped),
        ]
    );
    assert!(matches!(
        s.agent(AgentOp::Get { id: "nobody".into() }).await,
        Err(StoreError::AgentNotFound(_))
    ));
    assert!(matches!(s.agent(AgentOp::Create(record("a2", &[]))).await, Ok(AgentAnswer::Agent(_))));
    let mut dup = record("a3", &[]);
    dup.name = "name-a2".into();
    assert!(matches!(s.agent(AgentOp::Create(dup)).await, Err(StoreError::Conflict(_))));
}

async fn dispatch_matches_capabilities_and_labels(h: &Harness) {
    let s = &h.store;
    register(s, "linux", &["build"], &[("os", "linux")], 4).await;
    register(s, "mac", &["build", "sign@2"], &[("os", "macos")], 4).await;
    let mut on_mac = NewTask::new("build", json!({"n": 1}));
    on_mac.capabilities = vec![label_requirement("os", "macos")];
    let mut signed = NewTask::new("build", json!({"n": 2}));
    signed.capabilities = vec!["sign@2".into()];
    let mut old_sign = NewTask::new("build", json!({"n": 3}));
    old_sign.capabilities = vec!["sign@1".into()];
    s.submit(vec![on_mac, signed, old_sign]).await.unwrap();

    let got = dispatch(
        s,
        vec![
            waiter("linux", &["build"], &[("os", "linux")], 4),
            waiter("mac", &["build", "sign@2"], &[("os", "macos")], 4),
        ],
        &[],
    )
    .await;
    assert!(got[0].is_empty(), "linux has neither the label nor the capability: {:?}", got[0]);
    let ns: Vec<i64> = got[1].iter().map(|t| t.payload["n"].as_i64().unwrap()).collect();
    assert_eq!(ns, vec![1, 2], "sign@1 matches no agent");
}

async fn dispatch_prefers_the_least_loaded_and_honours_slots_and_kind_limits(h: &Harness) {
    let s = &h.store;
    register(s, "busy", &["noop", "exec"], &[], 4).await;
    register(s, "free", &["noop", "exec"], &[], 4).await;
    s.submit((0..3).map(|i| NewTask::new("noop", json!({ "i": i }))).collect()).await.unwrap();
    // `busy` takes three tasks first.
    let first = dispatch(s, vec![waiter("busy", &["noop", "exec"], &[], 4)], &[]).await;
    assert_eq!(first[0].len(), 3);

    s.submit(vec![NewTask::new("noop", json!({}))]).await.unwrap();
    // Both wait, `busy` first in line: the task goes to the less loaded one.
    let got = dispatch(
        s,
        vec![waiter("busy", &["noop", "exec"], &[], 4), waiter("free", &["noop", "exec"], &[], 4)],
        &[],
    )
    .await;
    assert_eq!((got[0].len(), got[1].len()), (0, 1));

    // Slots: `busy` has 3 running of 4, so it gets one more however much waits.
    s.submit((0..5).map(|i| NewTask::new("noop", json!({ "more": i }))).collect()).await.unwrap();
    let got = dispatch(s, vec![waiter("busy", &["noop", "exec"], &[], 4)], &[]).await;
    assert_eq!(got[0].len(), 1);

    // Per-kind limit: at most two `exec` running in all, whoever asks.
    s.submit((0..4).map(|i| NewTask::new("exec", json!({ "e": i }))).collect()).await.unwrap();
    let mut free = waiter("free", &["exec"], &[], 4);
    free.claim.kinds = Some(vec!["exec".into()]);
    let got = dispatch(s, vec![free.clone()], &[("exec", 2)]).await;
    assert_eq!(got[0].len(), 2);
    let got = dispatch(s, vec![free], &[("exec", 2)]).await;
    assert!(got[0].is_empty(), "the limit counts what is already running");
}

async fn draining_and_stopped_agents_get_no_work(h: &Harness) {
    let s = &h.store;
    register(s, "d", &["noop"], &[], 4).await;
    s.submit(vec![NewTask::new("noop", json!({}))]).await.unwrap();
    agent(s, AgentOp::Control { id: "d".into(), control: Control::Drain, actor: "op".into() })
        .await;
    assert!(dispatch(s, vec![waiter("d", &["noop"], &[], 4)], &[]).await[0].is_empty());
    agent(s, AgentOp::Control { id: "d".into(), control: Control::Stop, actor: "op".into() }).await;
    assert!(dispatch(s, vec![waiter("d", &["noop"], &[], 4)], &[]).await[0].is_empty());
    agent(s, AgentOp::Control { id: "d".into(), control: Control::Restart, actor: "op".into() })
        .await;
    assert!(
        dispatch(s, vec![waiter("d", &["noop"], &[], 4)], &[]).await[0].is_empty(),
        "restarting: not registered yet"
    );
    register_again(s, "d").await;
    assert_eq!(dispatch(s, vec![waiter("d", &["noop"], &[], 4)], &[]).await[0].len(), 1);
}

async fn register_again(s: &Arc<dyn Store>, id: &str) {
    agent(
        s,
        AgentOp::Register {
            id: id.into(),
            capabilities: vec![Capability::new("noop")],
            labels: BTreeMap::new(),
            slots: 4,
            heartbeat_ms: BEAT_MS,
            protocol: 1,
        },
    )
    .await;
}

fn direct(from: &str, to: &str, text: &str, ttl_ms: i64) -> AgentOp {
    AgentOp::Send(NewMessage {
        sender: from.into(),
        to: Audience::Direct(to.into()),
        correlation_id: None,
        reply_to: None,
        body: json!({ "text": text }),
        ttl_ms,
    })
}

async fn inbox(s: &Arc<dyn Store>, who: &str) -> Vec<Message> {
    match s
        .agent(AgentOp::Inbox { recipient: who.into(), max: 100, redeliver_ms: 5_000 })
        .await
        .unwrap()
    {
        AgentAnswer::Messages(m) => m,
        other => panic!("{other:?}"),
    }
}

fn texts(m: &[Message]) -> Vec<&str> {
    m.iter().map(|m| m.body["text"].as_str().unwrap()).collect()
}

async fn messages_are_ordered_acknowledged_redelivered_and_expire(h: &Harness) {
    let s = &h.store;
    register(s, "x", &["index"], &[], 1).await;
    register(s, "y", &["search"], &[], 1).await;
    for t in ["one", "two", "three"] {
        s.agent(direct("x", "y", t, 60_000)).await.unwrap();
    }
    s.agent(direct("x", "y", "short-lived", 1_000)).await.unwrap();
    let first = inbox(s, "y").await;
    assert_eq!(texts(&first), vec!["one", "two", "three", "short-lived"]);
    assert!(first.iter().all(|m| m.deliveries == 1 && m.sender == "x"));
    // Handed out, not acknowledged: not shown again until the redelivery time.
    assert!(inbox(s, "y").await.is_empty());
    let ack = AgentOp::Ack { recipient: "y".into(), ids: vec![first[0].id] };
    assert!(matches!(s.agent(ack).await.unwrap(), AgentAnswer::Count(1)));
    // Someone else cannot acknowledge y's messages.
    let wrong = AgentOp::Ack { recipient: "x".into(), ids: vec![first[1].id] };
    assert!(matches!(s.agent(wrong).await.unwrap(), AgentAnswer::Count(0)));

    h.clock.advance_ms(5_000);
    let again = inbox(s, "y").await;
    assert_eq!(texts(&again), vec!["two", "three"], "acknowledged and expired ones are gone");
    assert!(again.iter().all(|m| m.deliveries == 2));
    assert!(matches!(s.agent(AgentOp::ExpireMessages).await.unwrap(), AgentAnswer::Count(2)));

    assert!(matches!(
        s.agent(direct("x", "ghost", "hi", 1_000)).await,
        Err(StoreError::AgentNotFound(_))
    ));
}

async fn broadcast_reaches_agents_by_capability(h: &Harness) {
    let s = &h.store;
    register(s, "i1", &["index"], &[], 1).await;
    register(s, "i2", &["index", "search"], &[], 1).await;
    register(s, "s1", &["search"], &[], 1).await;
    let to_index = AgentOp::Send(NewMessage {
        sender: "user:op".into(),
        to: Audience::Broadcast { capability: Some("index".into()) },
        correlation_id: Some("c-1".into()),
        reply_to: None,
        body: json!({ "text": "reindex" }),
        ttl_ms: 60_000,
    });
    match s.agent(to_index).await.unwrap() {
        AgentAnswer::Sent(ids) => assert_eq!(ids.len(), 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(texts(&inbox(s, "i1").await), vec!["reindex"]);
    assert_eq!(inbox(s, "i2").await[0].correlation_id.as_deref(), Some("c-1"));
    assert!(inbox(s, "s1").await.is_empty());
    let all = AgentOp::Send(NewMessage {
        sender: "i1".into(),
        to: Audience::Broadcast { capability: None },
        correlation_id: None,
        reply_to: None,
        body: json!({ "text": "hello all" }),
        ttl_ms: 60_000,
    });
    match s.agent(all).await.unwrap() {
        AgentAnswer::Sent(ids) => assert_eq!(ids.len(), 2, "everyone but the sender"),
        other => panic!("{other:?}"),
    }
}

async fn lease(s: &Arc<dyn Store>, holder: &str) -> (bool, String, i64) {
    let op = AgentOp::Lease { name: "leader".into(), holder: holder.into(), ttl_ms: 3_000 };
    match s.agent(op).await.unwrap() {
        AgentAnswer::Lease { held, holder, epoch } => (held, holder, epoch),
        other => panic!("{other:?}"),
    }
}

async fn one_leader_at_a_time(h: &Harness) {
    let s = &h.store;
    assert_eq!(lease(s, "n1").await, (true, "n1".into(), 1));
    assert_eq!(lease(s, "n2").await, (false, "n1".into(), 1));
    h.clock.advance_ms(2_000);
    assert_eq!(lease(s, "n1").await, (true, "n1".into(), 1), "renewed");
    h.clock.advance_ms(2_000);
    assert_eq!(lease(s, "n2").await, (false, "n1".into(), 1), "the renewal counts");
    h.clock.advance_ms(1_001);
    assert_eq!(lease(s, "n2").await, (true, "n2".into(), 2), "taken over after expiry");
    assert_eq!(lease(s, "n1").await, (false, "n2".into(), 2));
    s.agent(AgentOp::ReleaseLease { name: "leader".into(), holder: "n2".into() }).await.unwrap();
    assert_eq!(lease(s, "n1").await, (true, "n1".into(), 3), "released: free at once");
}

async fn an_agent_reports_only_on_its_own_leases(h: &Harness) {
    let s = &h.store;
    s.submit(vec![NewTask::new("noop", json!({}))]).await.unwrap();
    let got = dispatch(s, vec![waiter("a", &["noop"], &[], 1)], &[]).await;
    assert!(got[0].is_empty(), "unregistered agents get nothing");
    register(s, "a", &["noop"], &[], 1).await;
    let task = dispatch(s, vec![waiter("a", &["noop"], &[], 1)], &[]).await.remove(0).remove(0);
    let fence = task.lease.as_ref().unwrap().fence;
    let done =
        Completion { task_id: task.id, fence, outcome: Outcome::Succeeded { result: json!({}) } };
    let beat = |holder: &str| Heartbeat {
        task_id: task.id,
        fence,
        lease_ms: 30_000,
        progress: None,
        holder: Some(holder.into()),
    };
    assert!(matches!(
        s.heartbeat(vec![beat("agent:b")]).await.unwrap()[0],
        Err(StoreError::StaleLease { .. })
    ));
    assert!(s.heartbeat(vec![beat("agent:a")]).await.unwrap()[0].is_ok());
    let forged = s.complete("agent:b", vec![done.clone()]).await.unwrap();
    assert!(matches!(forged[0], Err(StoreError::NotHolder { .. })), "{forged:?}");
    let own = s.complete("agent:a", vec![done]).await.unwrap();
    assert_eq!(own[0].as_ref().unwrap(), &TaskState::Succeeded);
}

async fn a_busy_submitter_does_not_starve_another(h: &Harness) {
    let s = &h.store;
    let from = |who: &str, n: usize| -> Vec<NewTask> {
        (0..n)
            .map(|i| NewTask { submitter: who.into(), ..NewTask::new("noop", json!({ "i": i })) })
            .collect()
    };
    s.submit(from("alice", 200)).await.unwrap();
    h.clock.advance_ms(1);
    s.submit(from("bob", 10)).await.unwrap();
    s.submit(from("alice", 50)).await.unwrap();
    let mut order = Vec::new();
    for _ in 0..30 {
        let req = ClaimRequest {
            holder: "w".into(),
            capabilities: vec!["noop".into()],
            kinds: None,
            max: 1,
            lease_ms: 30_000,
        };
        let t = s.claim(req).await.unwrap().remove(0);
        order.push((t.submitter.clone(), t.payload["i"].as_i64().unwrap()));
    }
    let bob: Vec<i64> = order.iter().filter(|(w, _)| w == "bob").map(|(_, i)| *i).collect();
    assert_eq!(bob, (0..10).collect::<Vec<_>>(), "bob's tasks run early, in order: {order:?}");
    let alice: Vec<i64> = order.iter().filter(|(w, _)| w == "alice").map(|(_, i)| *i).collect();
    assert_eq!(alice, (0..20).collect::<Vec<_>>(), "alice keeps her own order: {order:?}");
}

fn worker(max: usize) -> ClaimRequest {
    ClaimRequest {
        holder: "w".into(),
        capabilities: vec!["noop".into(), "split".into()],
        kinds: None,
        max,
        lease_ms: 30_000,
    }
}

async fn fan_out_then_fan_in_gathers_the_children_s_results(h: &Harness) {
    let s = &h.store;
    let parent = s.submit(vec![NewTask::new("split", json!({}))]).await.unwrap()[0].id;
    let task = s.claim(worker(1)).await.unwrap().remove(0);
    let fence = task.lease.unwrap().fence;
    let kids: Vec<NewTask> = (0..3).map(|i| NewTask::new("noop", json!({ "part": i }))).collect();
    assert!(matches!(
        s.fan_out(parent, fence + 1, "w", kids.clone()).await,
        Err(StoreError::StaleLease { .. })
    ));
    assert!(matches!(
        s.fan_out(parent, fence, "someone-else", kids.clone()).await,
        Err(StoreError::NotHolder { .. })
    ));
    let children = s.fan_out(parent, fence, "w", kids).await.unwrap();
    assert_eq!(children.len(), 3);
    assert_eq!(s.get(parent).await.unwrap().unwrap().state, TaskState::Pending);
    // The parent's old attempt can no longer report.
    let late =
        Completion { task_id: parent, fence, outcome: Outcome::Succeeded { result: json!(1) } };
    assert!(matches!(
        s.complete("w", vec![late]).await.unwrap()[0],
        Err(StoreError::StaleLease { .. })
    ));
    let claimed = s.claim(worker(10)).await.unwrap();
    assert_eq!(claimed.len(), 3, "the children run; the parent waits");
    for (n, t) in claimed.iter().rev().enumerate() {
        assert_eq!(s.get(parent).await.unwrap().unwrap().state, TaskState::Pending, "after {n}");
        let done = Completion {
            task_id: t.id,
            fence: t.lease.as_ref().unwrap().fence,
            outcome: Outcome::Succeeded {
                result: json!({ "part": t.payload["part"], "ok": true }),
            },
        };
        s.complete("w", vec![done]).await.unwrap()[0].as_ref().unwrap();
    }
    let p = s.get(parent).await.unwrap().unwrap();
    assert_eq!(p.state, TaskState::Succeeded);
    let gathered: Vec<i64> = p.result.unwrap()["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["result"]["part"].as_i64().unwrap())
        .collect();
    assert_eq!(gathered, vec![0, 1, 2], "results in the children's order");
    let kinds: Vec<_> = s.events(parent).await.unwrap().into_iter().map(|e| e.kind).collect();
    use dreamos_core::EventKind::*;
    assert_eq!(kinds, vec![Submitted, Claimed, FannedOut, Succeeded]);

    // A failing child fails its parent.
    let parent =
        s.submit(vec![NewTask::new("split", json!({ "second": true }))]).await.unwrap()[0].id;
    let task = s.claim(worker(1)).await.unwrap().remove(0);
    let mut kid = NewTask::new("noop", json!({}));
    kid.retry.max_attempts = 1;
    s.fan_out(parent, task.lease.unwrap().fence, "w", vec![kid]).await.unwrap();
    let child = s.claim(worker(1)).await.unwrap().remove(0);
    let boom = Completion {
        task_id: child.id,
        fence: child.lease.unwrap().fence,
        outcome: Outcome::Failed {
            error: dreamos_core::TaskError { class: "boom".into(), message: "no".into() },
            retryable: false,
        },
    };
    s.complete("w", vec![boom]).await.unwrap();
    let p = s.get(parent).await.unwrap().unwrap();
    assert_eq!(p.state, TaskState::Failed);
}

both_backends!(
    fan_out_then_fan_in_gathers_the_children_s_results,
    a_busy_submitter_does_not_starve_another,
    an_agent_reports_only_on_its_own_leases,
    lifecycle_is_tracked_with_history,
    dispatch_matches_capabilities_and_labels,
    dispatch_prefers_the_least_loaded_and_honours_slots_and_kind_limits,
    draining_and_stopped_agents_get_no_work,
    messages_are_ordered_acknowledged_redelivered_and_expire,
    broadcast_reaches_agents_by_capability,
    one_leader_at_a_time,
);
