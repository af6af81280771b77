-- The live feed in commit order (SQLite). One writer commits one transaction at a time, so ids
-- already follow commit order; `tx` is always 0 and keeps the feed's cursor the same shape on
-- both backends.
ALTER TABLE task_events ADD COLUMN tx INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agent_events ADD COLUMN tx INTEGER NOT NULL DEFAULT 0;
