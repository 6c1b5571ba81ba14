-- Billing: customers, plans, invoices with line items (ChartMogul's import
-- model), subscription cancellations, exchange rates, Stripe webhook
-- secrets and receipts, and the revenue rollups derived from them.
--
-- Money is stored in minor units of the invoice's currency (cents; yen for
-- JPY), as billing systems send it. Rollups are in micro-units (1e-6) of the
-- tenant's reporting currency, so that annual ÷ 12 loses nothing visible.

-- The tenant's reporting currency and the time zone that decides its day
-- boundaries. Changing either rebuilds the tenant's revenue rollups.
ALTER TABLE tenants
    ADD COLUMN reporting_currency text NOT NULL DEFAULT 'USD'
        CHECK (reporting_currency ~ '^[A-Z]{3}$'),
    ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC';

CREATE TABLE billing_customers (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    external_id text COLLATE "C" NOT NULL,
    name text,
    email text,
    company text,
    country text CHECK (country ~ '^[A-Z]{2}$'),
    -- The product user (Segment `userId`) this customer is, if known.
    user_id text COLLATE "C",
    attributes jsonb NOT NULL DEFAULT '{}',
    lead_created_at timestamptz,
    free_trial_started_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, external_id)
);
SELECT enable_tenant_isolation('billing_customers');

CREATE TABLE billing_plans (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    external_id text COLLATE "C" NOT NULL,
    name text NOT NULL,
    interval_unit text NOT NULL CHECK (interval_unit IN ('day', 'week', 'month', 'year')),
    interval_count integer NOT NULL CHECK (interval_count > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, external_id)
);
SELECT enable_tenant_isolation('billing_plans');

CREATE TABLE billing_invoices (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    external_id text COLLATE "C" NOT NULL,
    customer_id uuid NOT NULL,
    issued_at timestamptz NOT NULL,
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- Where it came from: 'api', 'csv' or 'stripe'.
    source text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, external_id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES billing_customers (tenant_id, id)
);
SELECT enable_tenant_isolation('billing_invoices');
CREATE INDEX billing_invoices_customer ON billing_invoices (tenant_id, customer_id);

-- An invoice's lines are replaced whole when the invoice is sent again.
CREATE TABLE billing_line_items (
    tenant_id uuid NOT NULL,
    invoice_id uuid NOT NULL,
    position integer NOT NULL,
    external_id text COLLATE "C",
    kind text NOT NULL CHECK (kind IN ('subscription', 'one_time')),
    subscription_external_id text COLLATE "C",
    plan_id uuid,
    service_period_start timestamptz,
    service_period_end timestamptz,
    quantity integer NOT NULL DEFAULT 1 CHECK (quantity >= 0),
    -- What was charged for the line: after discount, tax included.
    -- Bounded so that MRR sums stay far from 64-bit overflow.
    amount_minor bigint NOT NULL CHECK (abs(amount_minor) <= 100000000000),
    discount_minor bigint NOT NULL DEFAULT 0 CHECK (discount_minor BETWEEN 0 AND 100000000000),
    tax_minor bigint NOT NULL DEFAULT 0 CHECK (tax_minor BETWEEN 0 AND 100000000000),
    prorated boolean NOT NULL DEFAULT false,
    description text,
    PRIMARY KEY (tenant_id, invoice_id, position),
    FOREIGN KEY (tenant_id, invoice_id) REFERENCES billing_invoices (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, plan_id) REFERENCES billing_plans (tenant_id, id),
    CHECK (kind = 'one_time' OR (subscription_external_id IS NOT NULL
        AND service_period_start IS NOT NULL AND service_period_end > service_period_start))
);
SELECT enable_tenant_isolation('billing_line_items');

-- A subscription cancelled at `cancelled_at`: its revenue ends with the paid
-- service period that contains that instant.
CREATE TABLE billing_subscription_cancellations (
    tenant_id uuid NOT NULL,
    customer_id uuid NOT NULL,
    subscription_external_id text COLLATE "C" NOT NULL,
    cancelled_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, customer_id, subscription_external_id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES billing_customers (tenant_id, id) ON DELETE CASCADE
);
SELECT enable_tenant_isolation('billing_subscription_cancellations');

-- Units of `quote_currency` per unit of `currency`, from `day` on. Only
-- rates quoted in the tenant's current reporting currency are used.
CREATE TABLE exchange_rates (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    quote_currency text NOT NULL CHECK (quote_currency ~ '^[A-Z]{3}$'),
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    day date NOT NULL,
    rate numeric NOT NULL CHECK (rate > 0),
    PRIMARY KEY (tenant_id, quote_currency, currency, day)
);
SELECT enable_tenant_isolation('exchange_rates');

-- Stripe webhook signing secrets (`whsec_…`), kept in clear because HMAC
-- verification needs them; several may be live while one is rotated.
CREATE TABLE stripe_webhook_secrets (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    secret text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
SELECT enable_tenant_isolation('stripe_webhook_secrets');

-- Every Stripe event accepted, by its id: a replay of the same id is a no-op.
CREATE TABLE stripe_webhook_events (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    event_id text COLLATE "C" NOT NULL,
    event_type text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, event_id)
);
SELECT enable_tenant_isolation('stripe_webhook_events');

-- Revenue rollups. One row per customer and local day on which the
-- customer's MRR changed, classified as ChartMogul does.
CREATE TABLE mrr_movements (
    tenant_id uuid NOT NULL,
    customer_id uuid NOT NULL,
    day date NOT NULL,
    kind text NOT NULL CHECK (kind IN ('new_business', 'expansion', 'contraction', 'churn',
                                       'reactivation', 'fx_drift')),
    mrr_before bigint NOT NULL,
    mrr_after bigint NOT NULL,
    -- The change the movement explains; `fx_drift` the change due to rates.
    movement bigint NOT NULL,
    fx_drift bigint NOT NULL,
    PRIMARY KEY (tenant_id, customer_id, day),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES billing_customers (tenant_id, id) ON DELETE CASCADE
);
SELECT enable_tenant_isolation('mrr_movements');

-- The movements summed per local day; the MRR on a day is the sum of every
-- day up to it. Maintained by deltas, so concurrent writers commute.
CREATE TABLE mrr_daily (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day date NOT NULL,
    new_business bigint NOT NULL DEFAULT 0,
    expansion bigint NOT NULL DEFAULT 0,
    contraction bigint NOT NULL DEFAULT 0,
    churn bigint NOT NULL DEFAULT 0,
    reactivation bigint NOT NULL DEFAULT 0,
    fx_drift bigint NOT NULL DEFAULT 0,
    new_customers integer NOT NULL DEFAULT 0,
    expansion_customers integer NOT NULL DEFAULT 0,
    contraction_customers integer NOT NULL DEFAULT 0,
    churned_customers integer NOT NULL DEFAULT 0,
    reactivated_customers integer NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
);
SELECT enable_tenant_isolation('mrr_daily');

GRANT SELECT, INSERT, UPDATE ON billing_customers, billing_plans, billing_invoices TO northstar_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON billing_line_items, billing_subscription_cancellations,
    exchange_rates, mrr_movements, mrr_daily TO northstar_app;
GRANT SELECT, INSERT, UPDATE ON stripe_webhook_secrets TO northstar_app;
GRANT SELECT, INSERT ON stripe_webhook_events TO northstar_app;
