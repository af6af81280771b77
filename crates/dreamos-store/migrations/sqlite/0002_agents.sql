-- Agents, their state history, messages between agents and operators, and named leases
-- (the orchestrator's leader lease) (SQLite). Times are milliseconds since the Unix epoch.
CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_id TEXT,
    capabilities TEXT NOT NULL,
    labels TEXT NOT NULL,
    slots INTEGER NOT NULL,
    state TEXT NOT NULL,
    control TEXT,
    protocol INTEGER,
    heartbeat_ms INTEGER NOT NULL,
    last_seen_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX agents_live ON agents (last_seen_at) WHERE state IN ('starting', 'idle', 'busy', 'draining');

CREATE TABLE agent_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX agent_events_agent ON agent_events (agent_id, id);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    correlation_id TEXT,
    reply_to INTEGER,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    visible_at INTEGER NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 0,
    acked_at INTEGER
);
CREATE INDEX messages_inbox ON messages (recipient, id) WHERE acked_at IS NULL;
CREATE INDEX messages_expiry ON messages (expires_at) WHERE acked_at IS NULL;

CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    epoch INTEGER NOT NULL
);

-- Fairness across submitters: where each submitter's next task of each priority is placed in
-- the claim order (see ops::fair_bases).
CREATE TABLE submitter_clocks (
    submitter TEXT NOT NULL,
    priority INTEGER NOT NULL,
    next_at INTEGER NOT NULL,
    PRIMARY KEY (submitter, priority)
);

-- Fan-out / fan-in: a task that spawned children waits (state `pending`, its children as
-- dependencies) and succeeds with their results when the last one succeeds.
ALTER TABLE tasks ADD COLUMN fan_in INTEGER NOT NULL DEFAULT 0;
