-- Daily rollups of the onboarding and ticket rows, so that the users,
-- support and overview dashboards read rows in proportion to days, medians
-- included: each day keeps its durations sorted, and the median of a run of
-- days is taken from their merged arrays (exactly what `percentile_cont(0.5)`
-- over the underlying rows gives). Maintained by src/product/maintain.rs in
-- the statements that maintain `onboarding` and `tickets`: the days a batch
-- touches are recomputed from those tables' rows of the day.

-- Per local sign-up day: the persons who signed up (see `onboarding`), how
-- many of them have done every step, each step, and how long completing
-- took them.
CREATE TABLE onboarding_days (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    signup_day date NOT NULL,
    signups bigint NOT NULL,
    completed bigint NOT NULL,
    -- Per onboarding step, in the tenant's order: sign-ups who have done it.
    step_counts bigint[] NOT NULL,
    -- Seconds from sign-up to the last step, per completed sign-up, ascending.
    completion_seconds float8[] NOT NULL,
    PRIMARY KEY (tenant_id, signup_day)
);
SELECT enable_tenant_isolation('onboarding_days');

-- Per local day of ticket creation: seconds from creation to the first agent
-- reply and to the first resolution, per ticket that has one, ascending.
CREATE TABLE ticket_days (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    created_day date NOT NULL,
    first_response_seconds float8[] NOT NULL,
    resolution_seconds float8[] NOT NULL,
    PRIMARY KEY (tenant_id, created_day)
);
SELECT enable_tenant_isolation('ticket_days');

-- Free trials per local day of their start, and how many of those customers
-- have paid since (they have a `new_business` movement), so that a period's
-- trial-to-paid rate reads its days rather than every customer. Maintained
-- by src/billing/rollup.rs with the customer's movements, by deltas.
CREATE TABLE trial_days (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day date NOT NULL,
    trials bigint NOT NULL DEFAULT 0,
    converted bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
);
SELECT enable_tenant_isolation('trial_days');

-- What `trial_days` counts for each customer with a trial: the day of its
-- start and whether they have paid. A recompute compares the customer's
-- current state with this row and moves the difference.
CREATE TABLE trial_customers (
    tenant_id uuid NOT NULL,
    customer_id uuid NOT NULL,
    day date NOT NULL,
    converted boolean NOT NULL,
    PRIMARY KEY (tenant_id, customer_id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES billing_customers (tenant_id, id) ON DELETE CASCADE
);
SELECT enable_tenant_isolation('trial_customers');

GRANT SELECT, INSERT, UPDATE, DELETE ON onboarding_days, ticket_days, trial_days, trial_customers
    TO northstar_app;

-- The currencies a tenant invoices in, found by skipping through this index
-- (a handful of probes) rather than by reading every invoice.
CREATE INDEX billing_invoices_currency_idx ON billing_invoices (tenant_id, currency);

-- Existing tenants' rows, as the maintenance statements compute them.
INSERT INTO onboarding_days (tenant_id, signup_day, signups, completed, step_counts,
                             completion_seconds)
SELECT o.tenant_id, o.signup_day, count(*), count(o.completed_at),
       coalesce((SELECT array_agg(n ORDER BY k)
                 FROM (SELECT s.k, count(s.t) AS n
                       FROM onboarding x CROSS JOIN LATERAL unnest(x.step_times) WITH ORDINALITY AS s(t, k)
                       WHERE x.tenant_id = o.tenant_id AND x.signup_day = o.signup_day
                       GROUP BY s.k) steps), '{}'),
       coalesce(array_agg(extract(epoch FROM o.completed_at - o.signed_up_at)::float8
                          ORDER BY extract(epoch FROM o.completed_at - o.signed_up_at)::float8)
                    FILTER (WHERE o.completed_at IS NOT NULL), '{}')
FROM onboarding o
GROUP BY o.tenant_id, o.signup_day;

INSERT INTO ticket_days (tenant_id, created_day, first_response_seconds, resolution_seconds)
SELECT tenant_id, created_day,
       coalesce(array_agg(extract(epoch FROM first_reply_at - created_at)::float8
                          ORDER BY extract(epoch FROM first_reply_at - created_at)::float8)
                    FILTER (WHERE first_reply_at IS NOT NULL), '{}'),
       coalesce(array_agg(extract(epoch FROM resolved_at - created_at)::float8
                          ORDER BY extract(epoch FROM resolved_at - created_at)::float8)
                    FILTER (WHERE resolved_at IS NOT NULL), '{}')
FROM tickets
WHERE created_day IS NOT NULL
GROUP BY tenant_id, created_day;

INSERT INTO trial_customers (tenant_id, customer_id, day, converted)
SELECT c.tenant_id, c.id, (c.free_trial_started_at AT TIME ZONE t.time_zone)::date,
       EXISTS (SELECT 1 FROM mrr_movements m
               WHERE m.tenant_id = c.tenant_id AND m.customer_id = c.id AND m.kind = 'new_business')
FROM billing_customers c JOIN tenants t ON t.id = c.tenant_id
WHERE c.free_trial_started_at IS NOT NULL;

INSERT INTO trial_days (tenant_id, day, trials, converted)
SELECT tenant_id, day, count(*), count(*) FILTER (WHERE converted)
FROM trial_customers
GROUP BY tenant_id, day;
