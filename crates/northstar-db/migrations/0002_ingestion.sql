-- Ingestion: time-partitioned events, the message-id dedupe set, profiles,
-- accounts, identity links, per-tenant ingestion counters, and the durable
-- job schedule that creates and drops event partitions.
--
-- The write path (src/ingest/batch.rs) COPYs a batch into a temporary
-- staging table, then inserts it tenant by tenant under that tenant's RLS
-- context: COPY FROM is not allowed on tables with row level security.

-- How long a tenant's events are kept, in days (25 months by default, so
-- that a year is always comparable with the year before).
ALTER TABLE tenants ADD COLUMN event_retention_days integer NOT NULL DEFAULT 760
    CHECK (event_retention_days BETWEEN 1 AND 3660);

-- Every accepted message, whatever its type. Partitioned by month on the
-- event's (skew-corrected) time; the primary key is the only index, so that
-- ingest pays for one b-tree. `properties` holds track/page/screen
-- properties and identify/group traits. JSON columns are `json`, not `jsonb`:
-- the app has already validated them, and `json` costs a fraction of `jsonb`
-- at ingest (DESIGN §9); queries cast to jsonb where they need operators.
CREATE TABLE events (
    tenant_id uuid NOT NULL,
    time timestamptz NOT NULL,
    message_id text COLLATE "C" NOT NULL,
    type text NOT NULL CHECK (type IN ('track', 'page', 'screen', 'identify', 'group', 'alias')),
    -- track: the event name; page/screen: the page or screen name.
    event text,
    user_id text COLLATE "C",
    anonymous_id text COLLATE "C",
    group_id text COLLATE "C",
    previous_id text COLLATE "C",
    properties json,
    context json,
    received_at timestamptz NOT NULL,
    sent_at timestamptz,
    PRIMARY KEY (tenant_id, time, message_id)
) PARTITION BY RANGE (time);
SELECT enable_tenant_isolation('events');

-- Message ids already stored, so a retried message is stored once even when
-- its skew-corrected time differs between attempts (the events key cannot
-- catch that: it must contain the partition column). The key is the MD5 of
-- the message id: fixed width, so the b-tree stays small and fast.
CREATE TABLE event_message_ids (
    tenant_id uuid NOT NULL,
    message_hash uuid NOT NULL,
    PRIMARY KEY (tenant_id, message_hash)
);
SELECT enable_tenant_isolation('event_message_ids');

-- Identified users: traits merged from identify calls (a newer call's keys
-- win), first and last identify.
CREATE TABLE profiles (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id text COLLATE "C" NOT NULL,
    traits jsonb NOT NULL DEFAULT '{}',
    first_seen timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
SELECT enable_tenant_isolation('profiles');

-- Accounts (companies) from group calls.
CREATE TABLE accounts (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    group_id text COLLATE "C" NOT NULL,
    traits jsonb NOT NULL DEFAULT '{}',
    first_seen timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, group_id)
);
SELECT enable_tenant_isolation('accounts');

-- Who belongs to which account: the user id, or the anonymous id when the
-- group call had no user id. (No foreign key to accounts: the writer always
-- upserts the account in the same transaction, and a key check per row
-- would cost ingest.)
CREATE TABLE account_members (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    group_id text COLLATE "C" NOT NULL,
    member_id text COLLATE "C" NOT NULL,
    first_seen timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, group_id, member_id)
);
SELECT enable_tenant_isolation('account_members');

-- Merged identities: `alias_id` (an anonymous id, or a user id merged by
-- alias) counts as `person_id`. An identity is `person_of(id)`:
-- coalesce(the link's person_id, id). Links are kept one hop deep.
CREATE TABLE identity_links (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    alias_id text COLLATE "C" NOT NULL,
    person_id text COLLATE "C" NOT NULL,
    linked_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, alias_id)
);
CREATE INDEX identity_links_person_idx ON identity_links (tenant_id, person_id);
SELECT enable_tenant_isolation('identity_links');

-- Per tenant, per UTC day: messages stored, duplicates of stored ones, and
-- rejections by reason.
CREATE TABLE ingest_counters (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day date NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('stored', 'duplicate', 'rejected')),
    reason text NOT NULL DEFAULT '',
    count bigint NOT NULL,
    PRIMARY KEY (tenant_id, day, outcome, reason)
);
SELECT enable_tenant_isolation('ingest_counters');

-- Merges JSON objects in aggregation order (`ORDER BY time`): later keys win.
CREATE AGGREGATE jsonb_merge_agg(jsonb) (SFUNC = jsonb_concat, STYPE = jsonb, INITCOND = '{}');

-- Merges `p_previous` into the identity of `p_user` (the Segment alias
-- call): the previous id, and every id already merged into it, now count as
-- the user's person. Runs as the caller, so RLS confines it to one tenant.
CREATE FUNCTION apply_alias(p_tenant uuid, p_previous text, p_user text, p_at timestamptz)
RETURNS void LANGUAGE plpgsql SECURITY INVOKER SET search_path = public, pg_temp
AS $$
DECLARE
    target text := coalesce(
        (SELECT person_id FROM identity_links WHERE tenant_id = p_tenant AND alias_id = p_user),
        p_user);
BEGIN
    IF target = p_previous THEN
        RETURN;
    END IF;
    INSERT INTO identity_links (tenant_id, alias_id, person_id, linked_at)
    VALUES (p_tenant, p_previous, target, p_at)
    ON CONFLICT (tenant_id, alias_id) DO UPDATE SET person_id = excluded.person_id,
                                                   linked_at = excluded.linked_at;
    UPDATE identity_links SET person_id = target
    WHERE tenant_id = p_tenant AND person_id = p_previous;
END $$;

-- The ingest scope of a live write key, marking it used (at most once a minute).
CREATE FUNCTION authenticate_write_key(p_hash bytea)
RETURNS TABLE (tenant_id uuid, tenant_status text, plan text, event_retention_days integer, key_id uuid)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    UPDATE api_keys k SET last_used_at = now()
    WHERE k.key_hash = p_hash AND k.kind = 'write' AND k.revoked_at IS NULL
      AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute');
    RETURN QUERY
        SELECT t.id, t.status, t.plan, t.event_retention_days, k.id
        FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
        WHERE k.key_hash = p_hash AND k.kind = 'write' AND k.revoked_at IS NULL;
END $$;

-- Creates the monthly partitions of `events` covering [p_from, p_to] that do
-- not exist yet; returns how many it created. Bounded to 20 years back and 2
-- ahead, so no input can make it create thousands of tables.
CREATE FUNCTION ensure_event_partitions(p_from timestamptz, p_to timestamptz)
RETURNS integer LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    month date := date_trunc('month', greatest(p_from, now() - interval '20 years') AT TIME ZONE 'UTC');
    last date := date_trunc('month', least(p_to, now() + interval '2 years') AT TIME ZONE 'UTC');
    name text;
    created integer := 0;
BEGIN
    -- Serialise creators: concurrent writers may need the same month.
    PERFORM pg_advisory_xact_lock(hashtext('northstar.events.partitions'));
    WHILE month <= last LOOP
        name := 'events_p' || to_char(month, 'YYYYMM');
        IF to_regclass(name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                name, (month::timestamp AT TIME ZONE 'UTC'),
                ((month + interval '1 month')::timestamp AT TIME ZONE 'UTC'));
            created := created + 1;
        END IF;
        month := month + interval '1 month';
    END LOOP;
    RETURN created;
END $$;

-- Drops the partitions of `events` that end before every tenant's retention
-- window (with their message ids); returns the dropped partitions' names.
-- Tenants with a shorter retention have their older rows deleted by the
-- retention job under their own RLS context instead.
CREATE FUNCTION drop_expired_event_partitions()
RETURNS SETOF text LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    keep_days integer := coalesce((SELECT max(event_retention_days) FROM tenants), 760);
    cutoff timestamptz := now() - make_interval(days => keep_days);
    part record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('northstar.events.partitions'));
    FOR part IN
        SELECT c.relname,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'events'::regclass
        ORDER BY 1
    LOOP
        IF part.upper <= cutoff THEN
            EXECUTE format(
                'DELETE FROM event_message_ids m USING %I e '
                'WHERE m.tenant_id = e.tenant_id AND m.message_hash = md5(e.message_id)::uuid',
                part.relname);
            EXECUTE format('DROP TABLE %I', part.relname);
            RETURN NEXT part.relname::text;
        END IF;
    END LOOP;
END $$;

REVOKE ALL ON FUNCTION authenticate_write_key(bytea), ensure_event_partitions(timestamptz, timestamptz),
    drop_expired_event_partitions(), apply_alias(uuid, text, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION authenticate_write_key(bytea), ensure_event_partitions(timestamptz, timestamptz),
    drop_expired_event_partitions(), apply_alias(uuid, text, text, timestamptz) TO northstar_app;

-- Durable schedule of periodic jobs. A runner leases a due job by setting
-- `locked_until` (so several app nodes never run one job twice at once),
-- runs it, and schedules the next run, or a retry with backoff on failure.
CREATE TABLE jobs (
    name text PRIMARY KEY,
    every interval NOT NULL,
    next_run_at timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    last_started_at timestamptz,
    last_finished_at timestamptz,
    last_error text
);
INSERT INTO jobs (name, every) VALUES
    ('create_event_partitions', interval '1 hour'),
    ('apply_event_retention', interval '1 day');

-- Events are append-only for the app, except that retention deletes old
-- rows (under each tenant's RLS context).
GRANT SELECT, INSERT, DELETE ON events, event_message_ids TO northstar_app;
GRANT SELECT, INSERT, UPDATE ON profiles, accounts, identity_links TO northstar_app;
GRANT SELECT, INSERT, UPDATE ON account_members, ingest_counters TO northstar_app;
GRANT SELECT, UPDATE ON jobs TO northstar_app;
