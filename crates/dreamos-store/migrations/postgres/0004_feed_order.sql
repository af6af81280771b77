-- The live feed in commit order (PostgreSQL). An identity id is taken at insert time, not at
-- commit, so a transaction that commits late would hide events below a reader's cursor for
-- good. Each event records its transaction id; the feed reads only events of transactions
-- older than every transaction still in progress (the snapshot's xmin), in (tx, id) order, so
-- nothing can ever appear behind its cursor.
ALTER TABLE task_events ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id();
ALTER TABLE agent_events ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX task_events_feed ON task_events (tx, id);
CREATE INDEX agent_events_feed ON agent_events (tx, id);
