-- `apply_alias` (0004) checked that the previous id had no link, then
-- inserted one: two batch writers aliasing the same previous id at once
-- both passed the check, and the second failed on the primary key (its
-- batch was then written again one request at a time). The insert now
-- yields to the link that won, which is what the check meant: an id
-- already merged into a person stays with it.
CREATE OR REPLACE FUNCTION apply_alias(p_tenant uuid, p_previous text, p_user text, p_at timestamptz)
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
    ON CONFLICT (tenant_id, alias_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE identity_links SET person_id = target
    WHERE tenant_id = p_tenant AND person_id = p_previous;
END $$;
