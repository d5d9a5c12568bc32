-- Where each projection stands. Its read-model tables live in a schema per
-- generation (pl_<name>_g<n>); public views point at the active generation,
-- so a rebuild fills a fresh generation and swaps the views in one
-- transaction.
CREATE TABLE projection_state (
    name             TEXT PRIMARY KEY,
    version          INT NOT NULL,
    generation       INT NOT NULL,
    checkpoint_tx    BIGINT NOT NULL DEFAULT 0,
    checkpoint_pos   BIGINT NOT NULL DEFAULT 0,
    -- running | stopped (a poison event; see last_error)
    status           TEXT NOT NULL DEFAULT 'running',
    last_error       TEXT,
    error_position   BIGINT,
    error_event_type TEXT,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
GRANT SELECT ON projection_state TO payledger_auditor;
