-- The rollup inbox holds one row per writer batch and tenant, its calls as
-- parallel arrays (element i of every array is call i), instead of a row
-- per call. The batch writer wrote, and the rollup worker deleted, a heap
-- tuple and an index entry for every stored call; now it is one row (its
-- arrays stored out of line) per batch. The worker reads the rows back with
-- `unnest`.
ALTER TABLE rollup_inbox RENAME TO rollup_inbox_calls;
ALTER SEQUENCE rollup_inbox_id_seq RENAME TO rollup_inbox_calls_id_seq;

CREATE TABLE rollup_inbox (
    tenant_id uuid NOT NULL,
    id bigint GENERATED ALWAYS AS IDENTITY,
    -- The length of every array below.
    calls integer NOT NULL CHECK (calls > 0),
    times timestamptz[] NOT NULL,
    types text[] NOT NULL,
    events text[] NOT NULL,
    user_ids text[] COLLATE "C" NOT NULL,
    anonymous_ids text[] COLLATE "C" NOT NULL,
    previous_ids text[] COLLATE "C" NOT NULL,
    -- Properties of ticket events; NULL for other calls.
    properties text[] NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
SELECT enable_tenant_isolation('rollup_inbox');
-- Out of line without compression: a row is written once and read once,
-- and compressing it would cost the writer more than the bytes saved.
ALTER TABLE rollup_inbox
    ALTER COLUMN times SET STORAGE EXTERNAL,
    ALTER COLUMN types SET STORAGE EXTERNAL,
    ALTER COLUMN events SET STORAGE EXTERNAL,
    ALTER COLUMN user_ids SET STORAGE EXTERNAL,
    ALTER COLUMN anonymous_ids SET STORAGE EXTERNAL,
    ALTER COLUMN previous_ids SET STORAGE EXTERNAL,
    ALTER COLUMN properties SET STORAGE EXTERNAL;

GRANT SELECT, INSERT, DELETE ON rollup_inbox TO northstar_app;

-- Calls not applied yet, in order, as runs of at most 5,000.
INSERT INTO rollup_inbox (tenant_id, calls, times, types, events, user_ids, anonymous_ids,
                          previous_ids, properties)
SELECT tenant_id, count(*), array_agg(time ORDER BY id), array_agg(type ORDER BY id),
       array_agg(event ORDER BY id), array_agg(user_id ORDER BY id),
       array_agg(anonymous_id ORDER BY id), array_agg(previous_id ORDER BY id),
       array_agg(properties ORDER BY id)
FROM (SELECT *, (row_number() OVER (PARTITION BY tenant_id ORDER BY id) - 1) / 5000 AS run
      FROM rollup_inbox_calls) c
GROUP BY tenant_id, run
ORDER BY tenant_id, run;

DROP TABLE rollup_inbox_calls;
