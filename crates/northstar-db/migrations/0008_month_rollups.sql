-- Monthly rollups of `event_counts` and `event_adopters`, so that the users
-- dashboard reads a long period's top events and their adopters in rows
-- per month, plus the days at its edges. A month is the calendar month of
-- the local day (the tenant's time zone), keyed by its first day.
-- Maintained by src/product/months.rs with the same deltas as the daily
-- rows, in the same statements; emptied and refilled by a rebuild.

-- Calls per local calendar month, type and name (see `event_counts`).
CREATE TABLE event_counts_months (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    month date NOT NULL CHECK (extract(day FROM month) = 1),
    type text NOT NULL,
    name text COLLATE "C" NOT NULL,
    count bigint NOT NULL,
    PRIMARY KEY (tenant_id, type, month, name)
);
SELECT enable_tenant_isolation('event_counts_months');

-- Persons who sent a track event for the first time, per local calendar
-- month (see `event_adopters`).
CREATE TABLE event_adopters_months (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    month date NOT NULL CHECK (extract(day FROM month) = 1),
    event text COLLATE "C" NOT NULL,
    adopters bigint NOT NULL,
    PRIMARY KEY (tenant_id, event, month)
);
SELECT enable_tenant_isolation('event_adopters_months');

GRANT SELECT, INSERT, UPDATE, DELETE ON event_counts_months, event_adopters_months TO northstar_app;

-- Existing tenants' rows: their daily rows summed per month.
INSERT INTO event_counts_months (tenant_id, month, type, name, count)
SELECT tenant_id, date_trunc('month', day::timestamp)::date, type, name, sum(count)
FROM event_counts
GROUP BY 1, 2, 3, 4;

INSERT INTO event_adopters_months (tenant_id, month, event, adopters)
SELECT tenant_id, date_trunc('month', day::timestamp)::date, event, sum(adopters)
FROM event_adopters
GROUP BY 1, 2, 3;
