//! The orchestrator's dispatch transaction: every waiting agent offered work at once, least
//! loaded first, within slots and per-kind limits counted in the same transaction.

use std::collections::{BTreeMap, HashMap};

use dreamos_core::Task;

use crate::Result;
use crate::agents::*;
use crate::conn::{Arg, Conn, Dialect, RowLike, args, dynamic, fixed, placeholders};
use crate::ops::Ctx;
use crate::types::ClaimRequest;

pub(crate) async fn dispatch<C: Conn>(
    c: &mut C,
    ctx: &Ctx,
    waiters: &[Waiter],
    kind_limits: &BTreeMap<String, usize>,
) -> Result<Vec<Vec<Task>>> {
    let mut answers: Vec<Vec<Task>> = vec![Vec::new(); waiters.len()];
    if waiters.is_empty() {
        return Ok(answers);
    }
    if C::DIALECT == Dialect::Postgres && !kind_limits.is_empty() {
        // Per-kind limits count running tasks across nodes: dispatches take turns.
        c.fetch_optional(fixed("SELECT pg_advisory_xact_lock(7242001)"), args![]).await?;
    }
    let rows = c
        .fetch_all(
            fixed(
                "SELECT lease_holder, kind, COUNT(*) AS n FROM tasks WHERE state = 'running' \
                 GROUP BY lease_holder, kind",
            ),
            args![],
        )
        .await?;
    let mut by_holder: HashMap<String, usize> = HashMap::new();
    let mut by_kind: HashMap<String, usize> = HashMap::new();
    for r in &rows {
        let n = r.int("n")?.max(0) as usize;
        *by_holder.entry(r.opt_text("lease_holder")?.unwrap_or_default()).or_default() += n;
        *by_kind.entry(r.text("kind")?).or_default() += n;
    }
    // Which agents may take work now.
    let ids: Vec<&str> = waiters.iter().filter_map(|w| w.agent_id.as_deref()).collect();
    let mut states: HashMap<String, AgentState> = HashMap::new();
    for chunk in ids.chunks(500) {
        let rows = c
            .fetch_all(
                dynamic(format!(
                    "SELECT id, state FROM agents WHERE id IN ({})",
                    placeholders(1, chunk.len())
                )),
                chunk.iter().map(|id| Arg::from(*id)).collect(),
            )
            .await?;
        for r in &rows {
            states.insert(r.text("id")?, AgentState::parse(&r.text("state")?)?);
        }
    }
    // Least-loaded first; ties keep the order the waiters arrived in.
    let mut order: Vec<usize> = (0..waiters.len()).collect();
    let load = |i: &usize| {
        let w = &waiters[*i];
        let running = by_holder.get(&w.claim.holder).copied().unwrap_or(0);
        (running * 1_000_000) / w.slots.max(1)
    };
    order.sort_by_key(load);
    // Requirement sets already found to have no claimable work in this transaction: other
    // waiters with the same set are skipped (with many idle agents, most share one).
    let mut exhausted: std::collections::HashSet<(Vec<String>, Vec<String>)> = Default::default();
    for i in order {
        let w = &waiters[i];
        if let Some(id) = &w.agent_id
            && !states.get(id).is_some_and(|s| s.takes_work())
        {
            continue;
        }
        let running = by_holder.get(&w.claim.holder).copied().unwrap_or(0);
        let mut free = w.slots.saturating_sub(running).min(w.claim.max);
        if free == 0 {
            continue;
        }
        let wanted: Vec<&String> = match &w.claim.kinds {
            Some(k) => k.iter().filter(|k| w.claim.capabilities.contains(k)).collect(),
            None => w.claim.capabilities.iter().collect(),
        };
        let (limited, open): (Vec<&String>, Vec<&String>) =
            wanted.into_iter().partition(|k| kind_limits.contains_key(k.as_str()));
        let mut plan: Vec<(Vec<String>, usize)> = Vec::new();
        if !open.is_empty() {
            plan.push((open.into_iter().cloned().collect(), usize::MAX));
        }
        for k in limited {
            let left = kind_limits[k.as_str()].saturating_sub(by_kind.get(k).copied().unwrap_or(0));
            if left > 0 {
                plan.push((vec![k.clone()], left));
            }
        }
        for (kinds, cap) in plan {
            if free == 0 {
                break;
            }
            let mut caps = w.claim.capabilities.clone();
            caps.sort();
            let set = (caps, kinds.clone());
            if exhausted.contains(&set) {
                continue;
            }
            let want = free.min(cap);
            let request = ClaimRequest { kinds: Some(kinds), max: want, ..w.claim.clone() };
            let got = crate::batch::claim_many(c, ctx, &[&request]).await?.remove(0);
            if got.len() < want {
                exhausted.insert(set);
            }
            free -= got.len();
            *by_holder.entry(w.claim.holder.clone()).or_default() += got.len();
            for t in &got {
                *by_kind.entry(t.kind.clone()).or_default() += 1;
            }
            answers[i].extend(got);
        }
    }
    Ok(answers)
}
