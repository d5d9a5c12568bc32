-- The auditor reads: it may not create objects, temporary ones included
-- (TEMPORARY is granted to PUBLIC by default). The role that migrates —
-- the application's — keeps it for replays and the invariant checks.
-- NOTIFY cannot be revoked in PostgreSQL; a forged one only wakes workers
-- early, who then read the log as usual (docs/architecture.md).
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO %I', current_database(), current_user);
END
$$;
