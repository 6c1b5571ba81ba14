-- The product rollups are no longer maintained in the transaction that
-- stores the events: that transaction records what the rollups need in
-- `rollup_inbox`, and a rollup worker applies it in large chunks
-- (src/product/inbox.rs). Events and their inbox rows commit together, and
-- the worker deletes inbox rows in the transaction that applies them, so
-- every stored call is applied exactly once.

-- A stored call, narrowed to what the product rollups read: track, page
-- and screen calls (activity, first uses, tickets: `properties` is kept for
-- ticket events only), identify calls with both ids and alias calls
-- (merges).
-- No foreign key to `tenants`, as for `events`: its per-row check locks the
-- tenant's row from every writer at once, which cost the writers as much
-- as the insert itself (measured with the ingest benchmark).
CREATE TABLE rollup_inbox (
    tenant_id uuid NOT NULL,
    id bigint GENERATED ALWAYS AS IDENTITY,
    time timestamptz NOT NULL,
    type text NOT NULL,
    event text,
    user_id text COLLATE "C",
    anonymous_id text COLLATE "C",
    previous_id text COLLATE "C",
    properties text,
    PRIMARY KEY (tenant_id, id)
);
SELECT enable_tenant_isolation('rollup_inbox');
ALTER SEQUENCE rollup_inbox_id_seq CACHE 1000;

-- Set when the product rollups must be recomputed from the stored events
-- (the time zone changed); cleared by the rebuild.
ALTER TABLE tenants ADD COLUMN rollups_rebuild_requested boolean NOT NULL DEFAULT false;

-- The tenants with work for the rollup worker: inbox rows, or a rebuild
-- requested. The worker's only cross-tenant question.
CREATE FUNCTION rollup_work() RETURNS TABLE (tenant_id uuid, rebuild boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT t.id, t.rollups_rebuild_requested
    FROM tenants t
    WHERE t.rollups_rebuild_requested
       OR EXISTS (SELECT 1 FROM rollup_inbox i WHERE i.tenant_id = t.id)
$$;

GRANT SELECT, INSERT, DELETE ON rollup_inbox TO northstar_app;
REVOKE ALL ON FUNCTION rollup_work() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rollup_work() TO northstar_app;
