-- Revenue cohorts: customers grouped by the local month of their first
-- payment (their `new_business` movement), and how many of them pay, and
-- how much, in each month since. Maintained with `mrr_movements` by
-- src/billing/rollup.rs, in the transaction that changes billing data, so
-- that the cohort table reads rows in proportion to cohorts × months.
--
-- Rows hold changes, not levels: the cohort's paying customers (+1 for new
-- business and reactivation, −1 for churn) and MRR (movements + fx drift,
-- micro-units of the reporting currency) at the end of a month are the sum
-- of its rows up to that month. Maintained by deltas, so concurrent writers
-- commute; rows whose change nets to zero are deleted.

-- Per cohort and month of movements.
CREATE TABLE revenue_cohorts (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    cohort_month date NOT NULL CHECK (extract(day FROM cohort_month) = 1),
    month date NOT NULL CHECK (extract(day FROM month) = 1 AND month >= cohort_month),
    customers bigint NOT NULL DEFAULT 0,
    mrr bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, cohort_month, month)
);
SELECT enable_tenant_isolation('revenue_cohorts');

-- The same changes per local day, read only for the month that contains a
-- report's last day: movements are recorded ahead of time (a churn at the
-- end of a paid period not yet renewed), so the month's row would count
-- changes after that day.
CREATE TABLE revenue_cohort_days (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    cohort_month date NOT NULL CHECK (extract(day FROM cohort_month) = 1),
    day date NOT NULL CHECK (day >= cohort_month),
    customers bigint NOT NULL DEFAULT 0,
    mrr bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, cohort_month, day)
);
SELECT enable_tenant_isolation('revenue_cohort_days');

GRANT SELECT, INSERT, UPDATE, DELETE ON revenue_cohorts, revenue_cohort_days TO northstar_app;
