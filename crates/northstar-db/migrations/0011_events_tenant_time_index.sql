-- `events` trades its primary key (tenant_id, time, message_id) for a plain
-- index on (tenant_id, time) (docs/adr/0015-events-without-a-primary-key.md).
-- The key's uniqueness repeated what `event_message_ids` already guarantees
-- for every stored message, and its text column made the table's only
-- b-tree about twice as wide as the (tenant, time) that queries, rollup
-- rebuilds and retention search by. Partitions follow the parent: the old
-- key goes from each, and each gets the index (existing ones now, new ones
-- when `ensure_event_partitions` creates them).
ALTER TABLE events DROP CONSTRAINT events_pkey;
CREATE INDEX events_tenant_time_idx ON events (tenant_id, time);
