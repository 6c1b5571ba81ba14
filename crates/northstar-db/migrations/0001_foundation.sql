-- Foundation: the RLS helper, tenants, users, memberships, sessions, API keys,
-- one-time user tokens and the audit log.
--
-- Runs as `northstar_owner` (see src/roles.rs), which owns every object here.
-- The app connects as `northstar_app`: no superuser, no owner, no BYPASSRLS.

-- The tenant of the current transaction, as set by
-- `select set_config('app.tenant_id', $1, true)`; NULL without one, so a
-- query without tenant context matches no row.
CREATE FUNCTION current_tenant_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT nullif(current_setting('app.tenant_id', true), '')::uuid $$;

-- The one way a tenant-scoped table is protected: RLS enabled and forced,
-- with a policy whose USING and WITH CHECK both compare the table's tenant
-- column with the transaction's tenant. The sub-select makes PostgreSQL
-- evaluate the setting once per statement, not once per row.
CREATE FUNCTION enable_tenant_isolation(tbl regclass, tenant_column name DEFAULT 'tenant_id')
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format(
        'CREATE POLICY tenant_isolation ON %s USING (%I = (SELECT current_tenant_id())) '
        'WITH CHECK (%I = (SELECT current_tenant_id()))',
        tbl, tenant_column, tenant_column);
END $$;
REVOKE ALL ON FUNCTION enable_tenant_isolation(regclass, name) FROM PUBLIC;

CREATE TABLE tenants (
    id uuid PRIMARY KEY,
    slug text NOT NULL,
    name text NOT NULL,
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    plan text NOT NULL DEFAULT 'free',
    branding jsonb NOT NULL DEFAULT '{}',
    settings jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- Slugs are a global namespace by design: they appear in URLs.
CREATE UNIQUE INDEX tenants_slug_key ON tenants (slug);
SELECT enable_tenant_isolation('tenants', 'id');

-- Global identities: one person, any number of tenants.
CREATE TABLE users (
    id uuid PRIMARY KEY,
    email text NOT NULL,
    name text NOT NULL DEFAULT '',
    -- argon2id PHC string; NULL until the user sets a password.
    password_hash text,
    is_superadmin boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- Server-side browser sessions. The cookie carries a random token; only its
-- SHA-256 is stored, so a leaked table does not yield usable sessions.
CREATE TABLE sessions (
    token_hash bytea PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);

-- One-time tokens mailed or handed to a user (set the first password).
CREATE TABLE user_tokens (
    token_hash bytea PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose text NOT NULL CHECK (purpose IN ('set_password')),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX user_tokens_user_id_idx ON user_tokens (user_id);

CREATE TABLE memberships (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role text NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);
-- Read only by `user_tenants` and `member_tenant` (below), which look a user's
-- tenants up across tenants. Not unique, so it reveals nothing through conflicts.
CREATE INDEX memberships_user_id_idx ON memberships (user_id);
SELECT enable_tenant_isolation('memberships');

CREATE TABLE api_keys (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL,
    -- 'write': ingestion only (Segment write key); 'secret': the REST API with `role`.
    kind text NOT NULL CHECK (kind IN ('write', 'secret')),
    name text NOT NULL,
    -- The first characters of the key, shown to people to tell keys apart.
    prefix text NOT NULL,
    -- SHA-256 of the whole key: keys are 192-bit random, so a fast hash is safe.
    key_hash bytea NOT NULL,
    role text CHECK (role IN ('admin', 'editor', 'viewer')),
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz,
    PRIMARY KEY (tenant_id, id),
    CHECK ((kind = 'secret') = (role IS NOT NULL))
);
-- Read only by `authenticate_api_key`; not unique (see memberships_user_id_idx).
CREATE INDEX api_keys_key_hash_idx ON api_keys (key_hash);
SELECT enable_tenant_isolation('api_keys');

CREATE TABLE audit_log (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id bigint GENERATED ALWAYS AS IDENTITY,
    at timestamptz NOT NULL DEFAULT now(),
    -- Who acted: 'user:<email>', 'api_key:<key id>', 'cli' or 'demo'.
    actor text NOT NULL,
    actor_user_id uuid,
    action text NOT NULL,
    target text,
    details jsonb NOT NULL DEFAULT '{}',
    request_id text,
    PRIMARY KEY (tenant_id, id)
);
SELECT enable_tenant_isolation('audit_log');

-- Cross-tenant look-ups the app needs before it knows a tenant. Each is
-- SECURITY DEFINER (runs as the owner, which bypasses RLS), answers one narrow
-- question, and is the only cross-tenant path the app role has.

-- The tenant behind `p_slug` if `p_user` is a member of it.
CREATE FUNCTION member_tenant(p_slug text, p_user uuid)
RETURNS TABLE (tenant_id uuid, slug text, name text, status text, role text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT t.id, t.slug, t.name, t.status, m.role
    FROM tenants t JOIN memberships m ON m.tenant_id = t.id
    WHERE t.slug = p_slug AND m.user_id = p_user
$$;

-- Every tenant `p_user` belongs to, for `GET /api/v1/me`.
CREATE FUNCTION user_tenants(p_user uuid)
RETURNS TABLE (tenant_id uuid, slug text, name text, status text, role text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT t.id, t.slug, t.name, t.status, m.role
    FROM tenants t JOIN memberships m ON m.tenant_id = t.id
    WHERE m.user_id = p_user
    ORDER BY t.name, t.slug
$$;

-- The live key whose SHA-256 is `p_hash`, marking it used (at most once a minute).
CREATE FUNCTION authenticate_api_key(p_hash bytea)
RETURNS TABLE (tenant_id uuid, tenant_slug text, tenant_status text, key_id uuid, kind text, role text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    UPDATE api_keys k SET last_used_at = now()
    WHERE k.key_hash = p_hash AND k.revoked_at IS NULL
      AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute');
    RETURN QUERY
        SELECT t.id, t.slug, t.status, k.id, k.kind, k.role
        FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
        WHERE k.key_hash = p_hash AND k.revoked_at IS NULL;
END $$;

-- Platform (super-admin) views. The caller's super-admin status is checked by
-- the app before it calls these; every change they lead to is audited.
CREATE FUNCTION platform_tenants()
RETURNS TABLE (id uuid, slug text, name text, status text, plan text,
               created_at timestamptz, member_count bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT t.id, t.slug, t.name, t.status, t.plan, t.created_at,
           (SELECT count(*) FROM memberships m WHERE m.tenant_id = t.id)
    FROM tenants t ORDER BY t.created_at, t.slug
$$;

CREATE FUNCTION platform_tenant_id(p_slug text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$ SELECT id FROM tenants WHERE slug = p_slug $$;

REVOKE ALL ON FUNCTION member_tenant(text, uuid), user_tenants(uuid), authenticate_api_key(bytea),
    platform_tenants(), platform_tenant_id(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION member_tenant(text, uuid), user_tenants(uuid), authenticate_api_key(bytea),
    platform_tenants(), platform_tenant_id(text), current_tenant_id() TO northstar_app;

-- What the app role may do. Nothing else: no DDL, no TRUNCATE, and the audit
-- log is append-only.
GRANT SELECT, INSERT, UPDATE ON tenants TO northstar_app;
GRANT SELECT, INSERT, UPDATE ON users TO northstar_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON sessions, user_tokens TO northstar_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON memberships TO northstar_app;
GRANT SELECT, INSERT, UPDATE ON api_keys TO northstar_app;
GRANT SELECT, INSERT ON audit_log TO northstar_app;
