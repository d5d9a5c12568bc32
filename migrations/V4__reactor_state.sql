-- Working state of the reactors. Not history (that is the event log): which
-- worker holds which outbox row, when to try again, which discrepancies
-- support has been told about.

-- One row per outbox row the sender has seen. `generation` is the outbox
-- row's `resends` counter: a resend is a new generation, due again.
CREATE TABLE email_deliveries (
    email_key        TEXT PRIMARY KEY,
    sent_generation  INT NOT NULL DEFAULT -1,
    given_up_generation INT NOT NULL DEFAULT -1,
    attempts         INT NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
    -- a claim: the worker holding it, until when (a crashed worker's claim
    -- simply expires)
    claimed_by       TEXT,
    lease_until      TIMESTAMPTZ NOT NULL DEFAULT '-infinity'
);

CREATE TABLE alert_deliveries (
    discrepancy_id   TEXT PRIMARY KEY,
    alerted_at       TIMESTAMPTZ NOT NULL
);

-- When the last grouped alert went out, so a burst becomes one message a minute.
CREATE TABLE alert_schedule (
    id               BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
    last_sent_at     TIMESTAMPTZ NOT NULL
);
