-- Tasks, their dependencies, their history, the archive and API tokens (SQLite).
-- Times are milliseconds since the Unix epoch. sort_key = available_at - priority * aging,
-- so ordering by it gives priority with aging from one index.
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    backoff_base_ms INTEGER NOT NULL,
    backoff_max_ms INTEGER NOT NULL,
    available_at INTEGER NOT NULL,
    sort_key INTEGER NOT NULL,
    timeout_ms INTEGER,
    lease_holder TEXT,
    fence INTEGER NOT NULL DEFAULT 0,
    lease_expires_at INTEGER,
    progress_percent REAL,
    progress_message TEXT,
    result TEXT,
    error_class TEXT,
    error_message TEXT,
    depends_on TEXT NOT NULL DEFAULT '[]',
    pending_deps INTEGER NOT NULL DEFAULT 0,
    idempotency_key TEXT,
    submitter TEXT NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX tasks_ready ON tasks (sort_key, id) WHERE state = 'queued';
CREATE INDEX tasks_available ON tasks (available_at) WHERE state = 'queued';
CREATE INDEX tasks_leases ON tasks (lease_expires_at) WHERE state = 'running';
CREATE INDEX tasks_finished ON tasks (finished_at) WHERE finished_at IS NOT NULL;
CREATE UNIQUE INDEX tasks_idempotency ON tasks (idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE task_deps (
    depends_on INTEGER NOT NULL,
    task_id INTEGER NOT NULL,
    PRIMARY KEY (depends_on, task_id)
) WITHOUT ROWID;

CREATE TABLE task_events (
    id INTEGER PRIMARY KEY,
    task_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    actor TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX task_events_task ON task_events (task_id, id);

CREATE TABLE tasks_archive (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    backoff_base_ms INTEGER NOT NULL,
    backoff_max_ms INTEGER NOT NULL,
    available_at INTEGER NOT NULL,
    sort_key INTEGER NOT NULL,
    timeout_ms INTEGER,
    lease_holder TEXT,
    fence INTEGER NOT NULL,
    lease_expires_at INTEGER,
    progress_percent REAL,
    progress_message TEXT,
    result TEXT,
    error_class TEXT,
    error_message TEXT,
    depends_on TEXT NOT NULL,
    pending_deps INTEGER NOT NULL,
    idempotency_key TEXT,
    submitter TEXT NOT NULL,
    cancel_requested INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX tasks_archive_state ON tasks_archive (state, id);
CREATE INDEX tasks_archive_idempotency ON tasks_archive (idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
);
