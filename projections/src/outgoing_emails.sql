-- The outbox: one row per message that should exist, keyed by what it is
-- about, so one fact can never ask for two emails.
CREATE TABLE outgoing_emails (
    email_key        TEXT PRIMARY KEY,
    -- confirmation | rescue_confirmation | refund_confirmation | status_link
    kind             TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    payment_id       TEXT,
    -- pending | sent | failed (will retry) | undeliverable
    status           TEXT NOT NULL,
    attempts         INT NOT NULL DEFAULT 0,
    last_error       TEXT,
    message_id       TEXT,
    resends          INT NOT NULL DEFAULT 0,
    requested_at     TIMESTAMPTZ NOT NULL,
    updated_position BIGINT NOT NULL
);
CREATE INDEX outgoing_emails_status ON outgoing_emails (status);
