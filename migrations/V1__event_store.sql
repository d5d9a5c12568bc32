-- The event log: append-only, gap-safe, idempotent by event id.
CREATE TABLE events (
    position        BIGINT GENERATED ALWAYS AS IDENTITY,
    -- The appending transaction's id. Readers follow (transaction_id, position)
    -- and only read below the oldest running transaction, so a transaction that
    -- commits a lower position late can never be skipped.
    transaction_id  BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    stream_id       TEXT NOT NULL,
    stream_version  BIGINT NOT NULL CHECK (stream_version >= 1),
    event_id        UUID NOT NULL,
    event_type      TEXT NOT NULL,
    payload         JSONB NOT NULL,
    metadata        JSONB NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL,
    CONSTRAINT events_event_id_unique UNIQUE (event_id),
    CONSTRAINT events_stream_version_unique UNIQUE (stream_id, stream_version),
    -- The key is the global read order itself: one index fewer to maintain on
    -- every append than a separate key on position.
    CONSTRAINT events_pkey PRIMARY KEY (transaction_id, position)
);

-- Immutability is the database's job, not only the code's.
CREATE FUNCTION payledger_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'payledger: % on % is refused: the log is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_refuse_update_delete
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION payledger_refuse_change();

CREATE TRIGGER events_refuse_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION payledger_refuse_change();

REVOKE UPDATE, DELETE, TRUNCATE ON events FROM PUBLIC;

-- Auditors read everything and write nothing. Roles are cluster-wide, so
-- several databases (and parallel migrations) may try to create it at once.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'payledger_auditor') THEN
        CREATE ROLE payledger_auditor LOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END;
$$;

GRANT USAGE ON SCHEMA public TO payledger_auditor;
GRANT SELECT ON events TO payledger_auditor;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO payledger_auditor;
