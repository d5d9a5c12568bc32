-- What a customer can ask about, keyed by the reference code they hold: a
-- checkout they started, or a payment no checkout knows (the orphan).
CREATE TABLE customer_status (
    reference    TEXT PRIMARY KEY,
    checkout_id  TEXT UNIQUE,
    payment_id   TEXT UNIQUE,
    session_id   TEXT,
    email        TEXT,
    plan         TEXT,
    amount       BIGINT,
    currency     TEXT,
    started_at   TIMESTAMPTZ NOT NULL,
    returned_at  TIMESTAMPTZ,
    paid_at      TIMESTAMPTZ,
    -- awaiting_payment | paid_unmatched | active | needs_attention |
    -- refunded | disputed | expired | failed
    state        TEXT NOT NULL,
    activation   TEXT,
    period_end   TIMESTAMPTZ,
    -- minor units refunded so far (partial refunds leave the state as it was)
    refunded_amount BIGINT NOT NULL DEFAULT 0,
    -- open | won | lost, when the payment was disputed
    dispute      TEXT,
    updated_position BIGINT NOT NULL
);
CREATE INDEX customer_status_email ON customer_status (email);
CREATE INDEX customer_status_session ON customer_status (session_id);
-- the rules find rows by these (Table::find): without them each lookup
-- read the whole table
CREATE INDEX customer_status_checkout ON customer_status (checkout_id);
CREATE INDEX customer_status_payment ON customer_status (payment_id);
