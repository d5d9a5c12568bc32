-- What every projection that reasons about payments needs to know: the
-- checkouts and the payments, and how each payment stands. Each projection
-- keeps its own copy in its own schema, so each rebuilds on its own.
CREATE TABLE ledger_checkouts (
    checkout_id     TEXT PRIMARY KEY,
    email           TEXT NOT NULL,
    plan            TEXT NOT NULL,
    amount          BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    started_at      TIMESTAMPTZ NOT NULL,
    paid_payment_id TEXT,
    -- month | year: how long one paid period of the plan lasts
    period          TEXT NOT NULL,
    renews          BOOLEAN NOT NULL
);

CREATE TABLE ledger_payments (
    payment_id         TEXT PRIMARY KEY,
    -- false while only a refund or a match has been seen
    charge_seen        BOOLEAN NOT NULL,
    checkout_reference TEXT,
    customer_email     TEXT,
    amount             BIGINT,
    currency           TEXT,
    paid_at            TIMESTAMPTZ,
    source             TEXT,
    -- unmatched | active | duplicate | mismatch | pending (no charge yet)
    -- | awaiting_invoice | renewal
    state              TEXT NOT NULL,
    account_email      TEXT,
    plan               TEXT,
    activation         TEXT,
    refunded           BIGINT NOT NULL DEFAULT 0,
    -- refund ids seen before the charge, space-separated: announced to the
    -- customer once the charge (and so their address) is known
    refunds_before_charge TEXT,
    -- disputes already closed, space-separated: an opening that arrives
    -- after its closing opens nothing
    closed_disputes    TEXT,
    -- disputes open now, space-separated: an activation that comes after
    -- the opening still ends disputed
    open_disputes      TEXT,
    -- disputes lost, space-separated: an activation after it is revoked
    lost_disputes      TEXT
);
CREATE INDEX ledger_payments_reference ON ledger_payments (checkout_reference);
CREATE INDEX ledger_payments_account ON ledger_payments (account_email, plan);
