-- The hash chain, written by one sealer that follows the gap-safe global
-- order a moment behind the writers, so appends never wait for a chain lock.
CREATE TABLE event_chain (
    seq             BIGINT PRIMARY KEY CHECK (seq >= 1),
    position        BIGINT NOT NULL,
    transaction_id  BIGINT NOT NULL,
    -- SHA-256(previous hash || canonical bytes of the event); see src/store/chain.rs.
    hash            BYTEA NOT NULL CHECK (length(hash) = 32),
    sealed_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The events table's key, so verification joins link to event directly.
    UNIQUE (transaction_id, position)
);

CREATE TRIGGER event_chain_refuse_update_delete
    BEFORE UPDATE OR DELETE ON event_chain
    FOR EACH ROW EXECUTE FUNCTION payledger_refuse_change();

CREATE TRIGGER event_chain_refuse_truncate
    BEFORE TRUNCATE ON event_chain
    FOR EACH STATEMENT EXECUTE FUNCTION payledger_refuse_change();

REVOKE UPDATE, DELETE, TRUNCATE ON event_chain FROM PUBLIC;
GRANT SELECT ON event_chain TO payledger_auditor;
