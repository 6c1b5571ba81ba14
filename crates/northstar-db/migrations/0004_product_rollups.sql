-- Product and support rollups, maintained by the batch writer in the
-- transaction that stores the events (src/product/maintain.rs), so that the
-- users and support dashboards read rows in proportion to days.
--
-- A "person" is a merged identity: coalesce(identity_links.person_id, id)
-- where id is the message's userId, else its anonymousId. Days are local
-- days in the tenant's time zone; changing it rebuilds these rollups.

-- An alias merges `p_previous` into `p_user`'s person, as before (0002),
-- except that an id already merged into another person stays with it: the
-- rollups keep each merged id's history under its person, and cannot tell
-- it apart again (PostHog and Mixpanel refuse such merges likewise).
CREATE OR REPLACE FUNCTION apply_alias(p_tenant uuid, p_previous text, p_user text, p_at timestamptz)
RETURNS void LANGUAGE plpgsql SECURITY INVOKER SET search_path = public, pg_temp
AS $$
DECLARE
    target text := coalesce(
        (SELECT person_id FROM identity_links WHERE tenant_id = p_tenant AND alias_id = p_user),
        p_user);
BEGIN
    IF target = p_previous OR EXISTS (
        SELECT 1 FROM identity_links WHERE tenant_id = p_tenant AND alias_id = p_previous
    ) THEN
        RETURN;
    END IF;
    INSERT INTO identity_links (tenant_id, alias_id, person_id, linked_at)
    VALUES (p_tenant, p_previous, target, p_at);
    UPDATE identity_links SET person_id = target
    WHERE tenant_id = p_tenant AND person_id = p_previous;
END $$;

-- What the tenant counts as a sign-up, and its onboarding steps (event
-- names, in the order the product presents them).
ALTER TABLE tenants
    ADD COLUMN signup_event text NOT NULL DEFAULT 'Signed Up'
        CHECK (length(signup_event) BETWEEN 1 AND 200),
    ADD COLUMN onboarding_steps text[] NOT NULL DEFAULT '{}'
        CHECK (cardinality(onboarding_steps) <= 20);

-- The local days on which each person sent a track, page or screen call.
-- Never keyed by an id that identity_links merges into another person.
CREATE TABLE activity_days (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    person_id text COLLATE "C" NOT NULL,
    day date NOT NULL,
    PRIMARY KEY (tenant_id, person_id, day)
);
SELECT enable_tenant_isolation('activity_days');

-- Distinct active persons per window, keyed by the window's last day
-- (`day`, `7d`, `30d`: the day and the 6 or 29 before it) or first day
-- (`week`: Monday to Sunday, `month`: calendar month); `new`: persons whose
-- first active day it is.
CREATE TABLE active_users (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    window_kind text NOT NULL CHECK (window_kind IN ('day', '7d', '30d', 'week', 'month', 'new')),
    day date NOT NULL,
    users bigint NOT NULL,
    PRIMARY KEY (tenant_id, window_kind, day)
);
SELECT enable_tenant_isolation('active_users');

-- Calls per local day, type and name (the event name of a track, the page
-- or screen name, '' when there is none).
CREATE TABLE event_counts (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day date NOT NULL,
    type text NOT NULL,
    name text COLLATE "C" NOT NULL,
    count bigint NOT NULL,
    PRIMARY KEY (tenant_id, type, day, name)
);
SELECT enable_tenant_isolation('event_counts');

-- When each person first sent each track event.
CREATE TABLE event_firsts (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    person_id text COLLATE "C" NOT NULL,
    event text COLLATE "C" NOT NULL,
    first_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, person_id, event)
);
SELECT enable_tenant_isolation('event_firsts');

-- Persons who sent a track event for the first time, per local day: feature
-- adoption, and sign-ups (the tenant's sign-up event).
CREATE TABLE event_adopters (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day date NOT NULL,
    event text COLLATE "C" NOT NULL,
    adopters bigint NOT NULL,
    PRIMARY KEY (tenant_id, event, day)
);
SELECT enable_tenant_isolation('event_adopters');

-- One row per signed-up person: when they signed up, when they first did
-- each onboarding step (in the tenant's order), and when the last of them
-- was done.
CREATE TABLE onboarding (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    person_id text COLLATE "C" NOT NULL,
    signed_up_at timestamptz NOT NULL,
    signup_day date NOT NULL,
    step_times timestamptz[] NOT NULL,
    completed_at timestamptz,
    PRIMARY KEY (tenant_id, person_id)
);
CREATE INDEX onboarding_cohort_idx ON onboarding (tenant_id, signup_day);
SELECT enable_tenant_isolation('onboarding');

-- Support tickets from `Ticket Created`, `Ticket Replied` and
-- `Ticket Resolved` track events carrying a `ticket_id` property.
CREATE TABLE tickets (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    ticket_id text COLLATE "C" NOT NULL,
    created_at timestamptz,
    created_day date,
    first_reply_at timestamptz,
    resolved_at timestamptz,
    PRIMARY KEY (tenant_id, ticket_id)
);
CREATE INDEX tickets_created_idx ON tickets (tenant_id, created_day);
SELECT enable_tenant_isolation('tickets');

-- Tickets opened and resolved per local day (a ticket counts once its
-- `Ticket Created` has arrived).
CREATE TABLE ticket_counts (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day date NOT NULL,
    opened bigint NOT NULL DEFAULT 0,
    resolved bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
);
SELECT enable_tenant_isolation('ticket_counts');

GRANT SELECT, INSERT, UPDATE, DELETE ON activity_days, active_users, event_counts, event_firsts,
    event_adopters, onboarding, tickets, ticket_counts TO northstar_app;
