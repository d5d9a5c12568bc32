CREATE TABLE subscriptions (
    email        TEXT PRIMARY KEY,
    plan         TEXT NOT NULL,
    -- active | past_due | canceled | ended | refunded | revoked | disputed
    status       TEXT NOT NULL,
    period_start TIMESTAMPTZ NOT NULL,
    period_end   TIMESTAMPTZ NOT NULL,
    -- checkout | rescue | grant
    activation   TEXT NOT NULL,
    -- the payment behind it; NULL for a grant
    payment_id   TEXT,
    reason       TEXT,
    updated_position BIGINT NOT NULL,
    -- a renewing plan: the processor's subscription, when it charges next
    -- (NULL once it will not), whether it ends at the period's end, and
    -- while past due until when the processor keeps retrying
    subscription_id      TEXT,
    renews_at            TIMESTAMPTZ,
    cancel_at_period_end BOOLEAN NOT NULL,
    grace_until          TIMESTAMPTZ
);
