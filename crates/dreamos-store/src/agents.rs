//! Agents, their state and its history, messages, named leases, and the orchestrator's
//! dispatch: every write here is one [`AgentOp`] inside one transaction, written once against
//! [`Conn`] like the task transitions.
//!
//! Agent states: `starting` (created or asked to restart, not yet registered), `idle`, `busy`
//! (running at least one task), `draining` (finishes its work, takes no new work), `stopped`
//! and `lost` (missed its heartbeats). Every change writes an `agent_events` row in the same
//! transaction.

use std::collections::BTreeMap;

use dreamos_core::Task;
use serde::{Deserialize, Serialize};

use crate::conn::{Conn, RowLike, args, dynamic, fixed, placeholders};
use crate::dispatch::dispatch;
use crate::ops::{Ctx, decode, to_json};
use crate::types::ClaimRequest;
use crate::{Result, StoreError};

/// A capability an agent declares: a name (a task kind or a custom skill) and an optional
/// version. A task requiring `name` matches any version; one requiring `name@version` only
/// that version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Capability {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl Capability {
    pub fn new(name: &str) -> Self {
        Self { name: name.into(), version: None }
    }

    /// Parses `name` or `name@version`.
    pub fn parse(text: &str) -> Self {
        match text.split_once('@') {
            Some((name, version)) => Self { name: name.into(), version: Some(version.into()) },
            None => Self::new(text),
        }
    }
}

/// The strings a claim matches task requirements against: each capability by name and by
/// `name@version`, and each label as `label:KEY=VALUE`.
pub fn claim_capabilities(caps: &[Capability], labels: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for c in caps {
        out.push(c.name.clone());
        if let Some(v) = &c.version {
            out.push(format!("{}@{v}", c.name));
        }
    }
    out.extend(labels.iter().map(|(k, v)| label_requirement(k, v)));
    out.sort();
    out.dedup();
    out
}

/// How a task requires a label: a requirement string matched like a capability.
pub fn label_requirement(key: &str, value: &str) -> String {
    format!("label:{key}={value}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    Starting,
    Idle,
    Busy,
    Draining,
    Stopped,
    Lost,
}

impl AgentState {
    pub const ALL: [AgentState; 6] = [
        AgentState::Starting,
        AgentState::Idle,
        AgentState::Busy,
        AgentState::Draining,
        AgentState::Stopped,
        AgentState::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Starting => "starting",
            AgentState::Idle => "idle",
            AgentState::Busy => "busy",
            AgentState::Draining => "draining",
            AgentState::Stopped => "stopped",
            AgentState::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("agent state `{s}`")))
    }

    /// Whether an agent in this state may be given new work.
    pub fn takes_work(self) -> bool {
        matches!(self, AgentState::Idle | AgentState::Busy)
    }
}

/// An agent as the store knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub id: String,
    pub name: String,
    /// The credential bound to this agent (an `api_tokens` id with role `agent`).
    pub token_id: Option<String>,
    pub capabilities: Vec<Capability>,
    pub labels: BTreeMap<String, String>,
    pub slots: u32,
    pub state: AgentState,
    /// An operator's pending instruction the agent has not acted on: `stop` or `restart`.
    pub control: Option<String>,
    pub protocol: Option<i64>,
    pub heartbeat_ms: i64,
    pub last_seen_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// One state change of an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentEvent {
    pub agent_id: String,
    pub at_ms: i64,
    pub from: Option<AgentState>,
    pub to: AgentState,
    pub reason: String,
}

/// An operator's instruction to an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Control {
    Drain,
    Resume,
    Stop,
    Restart,
}

/// A message held for one recipient until acknowledged or expired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: i64,
    pub sender: String,
    pub recipient: String,
    pub correlation_id: Option<String>,
    pub reply_to: Option<i64>,
    pub body: serde_json::Value,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    /// How many times it has been handed out (more than one: redelivered).
    pub deliveries: u32,
}

/// Who a message goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// One agent (by id) or operator address (`user:...`).
    Direct(String),
    /// Every agent that is not stopped, or those with this capability.
    Broadcast { capability: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewMessage {
    pub sender: String,
    pub to: Audience,
    pub correlation_id: Option<String>,
    pub reply_to: Option<i64>,
    pub body: serde_json::Value,
    pub ttl_ms: i64,
}

/// One agent waiting for work, as the orchestrator hands it to [`AgentOp::Dispatch`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waiter {
    /// The registered agent (its state is checked in the transaction), if any.
    pub agent_id: Option<String>,
    pub claim: ClaimRequest,
    /// The agent's slots: it never holds more running tasks than this.
    pub slots: usize,
}

#[derive(Debug, Clone)]
pub enum AgentOp {
    Create(AgentRecord),
    Register {
        id: String,
        capabilities: Vec<Capability>,
        labels: BTreeMap<String, String>,
        slots: u32,
        heartbeat_ms: i64,
        protocol: i64,
    },
    /// A heartbeat: the agent is alive and runs `running` tasks.
    Beat {
        id: String,
        running: u32,
    },
    Control {
        id: String,
        control: Control,
        actor: String,
    },
    /// Deletes an agent that has no session (`starting`, `stopped` or `lost`) and holds no
    /// running task: its record, its history and its unread messages go, and its credential
    /// is revoked. Answers the record as it was.
    Delete {
        id: String,
    },
    /// Marks `lost` every live agent silent for `missed` heartbeat intervals; answers their ids.
    MarkLost {
        missed: i64,
    },
    Get {
        id: String,
    },
    List,
    Events {
        id: String,
    },
    Send(NewMessage),
    /// Hands out up to `max` unacknowledged messages, oldest first; each comes back after
    /// `redeliver_ms` unless acknowledged.
    Inbox {
        recipient: String,
        max: usize,
        redeliver_ms: i64,
    },
    Ack {
        recipient: String,
        ids: Vec<i64>,
    },
    ExpireMessages,
    /// Takes or renews the named lease for `ttl_ms` if it is free, expired or ours.
    Lease {
        name: String,
        holder: String,
        ttl_ms: i64,
    },
    ReleaseLease {
        name: String,
        holder: String,
    },
    /// Claims work for waiting agents: least-loaded first, within their slots and the
    /// per-kind concurrency limits. Answers one list per waiter, in the given order.
    Dispatch {
        waiters: Vec<Waiter>,
        kind_limits: BTreeMap<String, usize>,
    },
}

#[derive(Debug)]
pub enum AgentAnswer {
    Agent(AgentRecord),
    /// The answer to a heartbeat (it never makes work claimable, so it wakes nobody).
    Beat(AgentRecord),
    Agents(Vec<AgentRecord>),
    Events(Vec<AgentEvent>),
    Ids(Vec<String>),
    Sent(Vec<i64>),
    Messages(Vec<Message>),
    Count(u64),
    Lease {
        held: bool,
        holder: String,
        epoch: i64,
    },
    Dispatched(Vec<Vec<Task>>),
}

const AGENT_COLS: &str = "id, name, token_id, capabilities, labels, slots, state, control, \
    protocol, heartbeat_ms, last_seen_at, created_at, updated_at";

fn agent_from_row<R: RowLike>(r: &R) -> Result<AgentRecord> {
    Ok(AgentRecord {
        id: r.text("id")?,
        name: r.text("name")?,
        token_id: r.opt_text("token_id")?,
        capabilities: decode(&r.text("capabilities")?)?,
        labels: decode(&r.text("labels")?)?,
        slots: r.int("slots")?.max(0) as u32,
        state: AgentState::parse(&r.text("state")?)?,
        control: r.opt_text("control")?,
        protocol: r.opt_int("protocol")?,
        heartbeat_ms: r.int("heartbeat_ms")?,
        last_seen_at_ms: r.opt_int("last_seen_at")?,
        created_at_ms: r.int("created_at")?,
        updated_at_ms: r.int("updated_at")?,
    })
}

const MESSAGE_COLS: &str = "id, sender, recipient, correlation_id, reply_to, body, created_at, \
    expires_at, deliveries";

fn message_from_row<R: RowLike>(r: &R) -> Result<Message> {
    Ok(Message {
        id: r.int("id")?,
        sender: r.text("sender")?,
        recipient: r.text("recipient")?,
        correlation_id: r.opt_text("correlation_id")?,
        reply_to: r.opt_int("reply_to")?,
        body: decode(&r.text("body")?)?,
        created_at_ms: r.int("created_at")?,
        expires_at_ms: r.int("expires_at")?,
        deliveries: r.int("deliveries")?.max(0) as u32,
    })
}

fn no_agent(id: &str) -> StoreError {
    StoreError::AgentNotFound(id.to_owned())
}

async fn get<C: Conn>(c: &mut C, id: &str) -> Result<Option<AgentRecord>> {
    let sql = format!("SELECT {AGENT_COLS} FROM agents WHERE id = $1{}", C::DIALECT.for_update());
    c.fetch_optional(dynamic(sql), args![id]).await?.map(|r| agent_from_row(&r)).transpose()
}

async fn set_state<C: Conn>(
    c: &mut C,
    ctx: &Ctx,
    agent: &AgentRecord,
    to: AgentState,
    reason: &str,
) -> Result<()> {
    if agent.state == to {
        return Ok(());
    }
    c.execute(
        fixed("UPDATE agents SET state = $1, updated_at = $2 WHERE id = $3"),
        args![to.as_str(), ctx.now, agent.id.clone()],
    )
    .await?;
    c.execute(
        fixed(
            "INSERT INTO agent_events (agent_id, at, from_state, to_state, reason) \
             VALUES ($1, $2, $3, $4, $5)",
        ),
        args![agent.id.clone(), ctx.now, agent.state.as_str(), to.as_str(), reason],
    )
    .await?;
    Ok(())
}

pub(crate) async fn apply<C: Conn>(c: &mut C, ctx: &Ctx, op: &AgentOp) -> Result<AgentAnswer> {
    Ok(match op {
        AgentOp::Create(a) => {
            let taken = c
                .fetch_optional(
                    fixed("SELECT id FROM agents WHERE name = $1"),
                    args![a.name.clone()],
                )
                .await?;
            if taken.is_some() {
                return Err(StoreError::Conflict(format!(
                    "an agent named `{}` already exists",
                    a.name
                )));
            }
            c.execute(
                dynamic(format!(
                    "INSERT INTO agents ({AGENT_COLS}) VALUES ({})",
                    placeholders(1, 13)
                )),
                args![
                    a.id.clone(),
                    a.name.clone(),
                    a.token_id.clone(),
                    to_json(&a.capabilities),
                    to_json(&a.labels),
                    i64::from(a.slots),
                    a.state.as_str(),
                    a.control.clone(),
                    a.protocol,
                    a.heartbeat_ms,
                    a.last_seen_at_ms,
                    ctx.now,
                    ctx.now
                ],
            )
            .await?;
            c.execute(
                fixed(
                    "INSERT INTO agent_events (agent_id, at, from_state, to_state, reason) \
                     VALUES ($1, $2, NULL, $3, 'created')",
                ),
                args![a.id.clone(), ctx.now, a.state.as_str()],
            )
            .await?;
            AgentAnswer::Agent(get(c, &a.id).await?.ok_or_else(|| no_agent(&a.id))?)
        }
        AgentOp::Register { id, capabilities, labels, slots, heartbeat_ms, protocol } => {
            let agent = get(c, id).await?.ok_or_else(|| no_agent(id))?;
            c.execute(
                fixed(
                    "UPDATE agents SET capabilities = $1, labels = $2, slots = $3, heartbeat_ms = $4, \
                     protocol = $5, last_seen_at = $6, control = NULL, updated_at = $6 WHERE id = $7",
                ),
                args![
                    to_json(capabilities),
                    to_json(labels),
                    i64::from(*slots),
                    *heartbeat_ms,
                    *protocol,
                    ctx.now,
                    id.clone()
                ],
            )
            .await?;
            // Registering starts a new session: a stopped, lost or restarting agent is back.
            // A draining agent stays draining until resumed.
            if agent.state != AgentState::Draining {
                let registered = AgentRecord { state: AgentState::Starting, ..agent.clone() };
                if agent.state != AgentState::Starting {
                    set_state(c, ctx, &agent, AgentState::Starting, "registered").await?;
                }
                set_state(c, ctx, &registered, AgentState::Idle, "registered").await?;
            }
            AgentAnswer::Agent(get(c, id).await?.ok_or_else(|| no_agent(id))?)
        }
        AgentOp::Beat { id, running } => {
            let agent = get(c, id).await?.ok_or_else(|| no_agent(id))?;
            c.execute(
                fixed("UPDATE agents SET last_seen_at = $1 WHERE id = $2"),
                args![ctx.now, id.clone()],
            )
            .await?;
            let to = match agent.state {
                AgentState::Idle | AgentState::Busy | AgentState::Lost | AgentState::Starting => {
                    if *running > 0 {
                        AgentState::Busy
                    } else {
                        AgentState::Idle
                    }
                }
                other => other,
            };
            let reason = if agent.state == AgentState::Lost { "heartbeat resumed" } else { "load" };
            set_state(c, ctx, &agent, to, reason).await?;
            AgentAnswer::Beat(AgentRecord { state: to, last_seen_at_ms: Some(ctx.now), ..agent })
        }
        AgentOp::Control { id, control, actor } => {
            let agent = get(c, id).await?.ok_or_else(|| no_agent(id))?;
            let (to, pending) = match control {
                Control::Drain => match agent.state {
                    AgentState::Stopped | AgentState::Lost => {
                        return Err(StoreError::Conflict(format!(
                            "agent `{}` is {}: nothing to drain",
                            agent.name,
                            agent.state.as_str()
                        )));
                    }
                    _ => (AgentState::Draining, None),
                },
                Control::Resume => match agent.state {
                    AgentState::Draining => (AgentState::Idle, None),
                    AgentState::Idle | AgentState::Busy => (agent.state, None),
                    other => {
                        return Err(StoreError::Conflict(format!(
                            "agent `{}` is {}: only a draining agent can be resumed (restart a stopped one)",
                            agent.name,
                            other.as_str()
                        )));
                    }
                },
                Control::Stop => (AgentState::Stopped, Some("stop")),
                Control::Restart => (AgentState::Starting, Some("restart")),
            };
            c.execute(
                fixed("UPDATE agents SET control = $1, updated_at = $2 WHERE id = $3"),
                args![pending.map(str::to_owned), ctx.now, id.clone()],
            )
            .await?;
            let reason = format!(
                "{} by {actor}",
                match control {
                    Control::Drain => "drain",
                    Control::Resume => "resume",
                    Control::Stop => "stop",
                    Control::Restart => "restart",
                }
            );
            set_state(c, ctx, &agent, to, &reason).await?;
            AgentAnswer::Agent(get(c, id).await?.ok_or_else(|| no_agent(id))?)
        }
        AgentOp::MarkLost { missed } => {
            let rows = c
                .fetch_all(
                    dynamic(format!(
                        "SELECT {AGENT_COLS} FROM agents WHERE state IN ('starting', 'idle', 'busy', 'draining') \
                         AND last_seen_at IS NOT NULL AND last_seen_at + heartbeat_ms * $1 < $2{}",
                        C::DIALECT.for_update()
                    )),
                    args![*missed, ctx.now],
                )
                .await?;
            let mut ids = Vec::new();
            for row in &rows {
                let agent = agent_from_row(row)?;
                let reason = format!("missed {missed} heartbeats");
                set_state(c, ctx, &agent, AgentState::Lost, &reason).await?;
                ids.push(agent.id);
            }
            AgentAnswer::Ids(ids)
        }
        AgentOp::Delete { id } => {
            let agent = get(c, id).await?.ok_or_else(|| no_agent(id))?;
            if matches!(agent.state, AgentState::Idle | AgentState::Busy | AgentState::Draining) {
                return Err(StoreError::AgentBusy(format!(
                    "agent `{}` is {} (connected): stop it first (dreamos agent stop {}), then delete it",
                    agent.name,
                    agent.state.as_str(),
                    agent.name
                )));
            }
            let holding = c
                .fetch_all(
                    fixed("SELECT id FROM tasks WHERE state = 'running' AND lease_holder = $1"),
                    args![format!("agent:{id}")],
                )
                .await?;
            if !holding.is_empty() {
                return Err(StoreError::AgentBusy(format!(
                    "agent `{}` still holds {} running tasks: let their leases lapse, or cancel them, first",
                    agent.name,
                    holding.len()
                )));
            }
            for sql in [
                "DELETE FROM agents WHERE id = $1",
                "DELETE FROM agent_events WHERE agent_id = $1",
                "DELETE FROM messages WHERE recipient = $1",
            ] {
                c.execute(fixed(sql), args![id.clone()]).await?;
            }
            if let Some(token) = &agent.token_id {
                c.execute(
                    fixed("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL"),
                    args![ctx.now, token.clone()],
                )
                .await?;
            }
            AgentAnswer::Agent(agent)
        }
        AgentOp::Get { id } => AgentAnswer::Agent(get(c, id).await?.ok_or_else(|| no_agent(id))?),
        AgentOp::List => {
            let rows = c
                .fetch_all(
                    dynamic(format!("SELECT {AGENT_COLS} FROM agents ORDER BY name")),
                    args![],
                )
                .await?;
            AgentAnswer::Agents(rows.iter().map(agent_from_row).collect::<Result<_>>()?)
        }
        AgentOp::Events { id } => {
            get(c, id).await?.ok_or_else(|| no_agent(id))?;
            let rows = c
                .fetch_all(
                    fixed(
                        "SELECT agent_id, at, from_state, to_state, reason FROM agent_events \
                         WHERE agent_id = $1 ORDER BY id",
                    ),
                    args![id.clone()],
                )
                .await?;
            AgentAnswer::Events(
                rows.iter()
                    .map(|r| {
                        Ok(AgentEvent {
                            agent_id: r.text("agent_id")?,
                            at_ms: r.int("at")?,
                            from: r
                                .opt_text("from_state")?
                                .map(|s| AgentState::parse(&s))
                                .transpose()?,
                            to: AgentState::parse(&r.text("to_state")?)?,
                            reason: r.text("reason")?,
                        })
                    })
                    .collect::<Result<_>>()?,
            )
        }
        AgentOp::Send(m) => AgentAnswer::Sent(send(c, ctx, m).await?),
        AgentOp::Inbox { recipient, max, redeliver_ms } => {
            let rows = c
                .fetch_all(
                    dynamic(format!(
                        "SELECT {MESSAGE_COLS} FROM messages WHERE recipient = $1 AND acked_at IS NULL \
                         AND expires_at > $2 AND visible_at <= $2 ORDER BY id LIMIT $3{}",
                        C::DIALECT.for_update()
                    )),
                    args![recipient.clone(), ctx.now, *max as i64],
                )
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let mut m = message_from_row(row)?;
                m.deliveries += 1;
                c.execute(
                    fixed("UPDATE messages SET deliveries = deliveries + 1, visible_at = $1 WHERE id = $2"),
                    args![ctx.now + *redeliver_ms, m.id],
                )
                .await?;
                out.push(m);
            }
            AgentAnswer::Messages(out)
        }
        AgentOp::Ack { recipient, ids } => {
            let mut n = 0;
            for id in ids {
                n += c
                    .execute(
                        fixed(
                            "UPDATE messages SET acked_at = $1 WHERE id = $2 AND recipient = $3 \
                             AND acked_at IS NULL",
                        ),
                        args![ctx.now, *id, recipient.clone()],
                    )
                    .await?;
            }
            AgentAnswer::Count(n)
        }
        AgentOp::ExpireMessages => {
            let n = c
                .execute(
                    fixed("DELETE FROM messages WHERE expires_at <= $1 OR acked_at IS NOT NULL"),
                    args![ctx.now],
                )
                .await?;
            AgentAnswer::Count(n)
        }
        AgentOp::Lease { name, holder, ttl_ms } => {
            let current = c
                .fetch_optional(
                    dynamic(format!(
                        "SELECT holder, expires_at, epoch FROM leases WHERE name = $1{}",
                        C::DIALECT.for_update()
                    )),
                    args![name.clone()],
                )
                .await?;
            let expires = ctx.now + *ttl_ms;
            match current {
                None => {
                    // Two nodes may race to create the row: the loser's insert does nothing.
                    let n = c
                        .execute(
                            fixed(
                                "INSERT INTO leases (name, holder, expires_at, epoch) VALUES ($1, $2, $3, 1) \
                                 ON CONFLICT (name) DO NOTHING",
                            ),
                            args![name.clone(), holder.clone(), expires],
                        )
                        .await?;
                    AgentAnswer::Lease { held: n == 1, holder: holder.clone(), epoch: 1 }
                }
                Some(row) => {
                    let (owner, until, epoch) =
                        (row.text("holder")?, row.int("expires_at")?, row.int("epoch")?);
                    if owner == *holder || until <= ctx.now {
                        let epoch = if owner == *holder { epoch } else { epoch + 1 };
                        c.execute(
                            fixed("UPDATE leases SET holder = $1, expires_at = $2, epoch = $3 WHERE name = $4"),
                            args![holder.clone(), expires, epoch, name.clone()],
                        )
                        .await?;
                        AgentAnswer::Lease { held: true, holder: holder.clone(), epoch }
                    } else {
                        AgentAnswer::Lease { held: false, holder: owner, epoch }
                    }
                }
            }
        }
        AgentOp::ReleaseLease { name, holder } => {
            let n = c
                .execute(
                    fixed("UPDATE leases SET expires_at = $1 WHERE name = $2 AND holder = $3"),
                    args![ctx.now, name.clone(), holder.clone()],
                )
                .await?;
            AgentAnswer::Count(n)
        }
        AgentOp::Dispatch { waiters, kind_limits } => {
            AgentAnswer::Dispatched(dispatch(c, ctx, waiters, kind_limits).await?)
        }
    })
}

async fn send<C: Conn>(c: &mut C, ctx: &Ctx, m: &NewMessage) -> Result<Vec<i64>> {
    let recipients: Vec<String> = match &m.to {
        Audience::Direct(to) => {
            if !to.starts_with("user:") && get(c, to).await?.is_none() {
                return Err(no_agent(to));
            }
            vec![to.clone()]
        }
        Audience::Broadcast { capability } => {
            let rows = c
                .fetch_all(
                    dynamic(format!(
                        "SELECT {AGENT_COLS} FROM agents WHERE state <> 'stopped' ORDER BY id"
                    )),
                    args![],
                )
                .await?;
            let mut out = Vec::new();
            for row in &rows {
                let a = agent_from_row(row)?;
                let wanted = match capability {
                    None => true,
                    Some(cap) => a.capabilities.iter().any(|c| &c.name == cap),
                };
                if wanted && a.id != m.sender {
                    out.push(a.id);
                }
            }
            out
        }
    };
    let body = to_json(&m.body);
    let mut ids = Vec::with_capacity(recipients.len());
    for to in recipients {
        let row = c
            .fetch_optional(
                fixed(
                    "INSERT INTO messages (sender, recipient, correlation_id, reply_to, body, created_at, \
                     expires_at, visible_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $6) RETURNING id",
                ),
                args![
                    m.sender.clone(),
                    to,
                    m.correlation_id.clone(),
                    m.reply_to,
                    body.clone(),
                    ctx.now,
                    ctx.now + m.ttl_ms
                ],
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("insert returned no id".into()))?;
        ids.push(row.int("id")?);
    }
    Ok(ids)
}
