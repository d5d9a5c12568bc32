CREATE TABLE discrepancies (
    id               TEXT PRIMARY KEY,
    -- unmatched_charge | duplicate_charge | amount_mismatch | dispute_opened |
    -- refund_without_charge | email_undeliverable | unparsed_processor_event |
    -- processor_disagreement (subject <payment id>:<kind>)
    kind             TEXT NOT NULL,
    subject          TEXT NOT NULL,
    amount           BIGINT,
    currency         TEXT,
    customer_email   TEXT,
    -- the recorded time of the event that opened it; "overdue" is computed
    -- when read, never stored
    first_seen       TIMESTAMPTZ NOT NULL,
    -- open | acknowledged | resolved
    status           TEXT NOT NULL,
    suggested_action TEXT NOT NULL,
    resolution       TEXT,
    resolved_by      TEXT,
    updated_position BIGINT NOT NULL
);
CREATE INDEX discrepancies_open ON discrepancies (status, first_seen);
