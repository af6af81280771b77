-- The hash-chained audit log (ids assigned by the appender so the hash covers them), and
-- workspace scopes of API tokens (a JSON list; NULL: every workspace).
CREATE TABLE audit_log (
    id BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    request_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
ALTER TABLE api_tokens ADD COLUMN workspaces TEXT;
