CREATE TABLE subscriptions (
    email        TEXT PRIMARY KEY,
    plan         TEXT NOT NULL,
    -- active | refunded | revoked | disputed
    status       TEXT NOT NULL,
    period_start TIMESTAMPTZ NOT NULL,
    period_end   TIMESTAMPTZ NOT NULL,
    -- checkout | rescue | grant
    activation   TEXT NOT NULL,
    -- the payment behind it; NULL for a grant
    payment_id   TEXT,
    reason       TEXT,
    updated_position BIGINT NOT NULL
);
