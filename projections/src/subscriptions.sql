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
    grace_until          TIMESTAMPTZ,
    -- how many changes of this customer's access the application was told
    -- of (subscription_changes)
    version              BIGINT NOT NULL
);
-- the rules find rows by it (Table::find): without it each lookup read
-- the whole table
CREATE INDEX subscriptions_payment ON subscriptions (payment_id);

-- Every change of a customer's access, as the product's application is
-- told of it (spec §13): a message per change, `version` increasing per
-- address so an application can drop a stale one.
CREATE TABLE subscription_changes (
    email                TEXT NOT NULL,
    version              BIGINT NOT NULL,
    -- subscription.activated | renewed | past_due | canceled | ended |
    -- refunded | disputed | reactivated | updated
    message_type         TEXT NOT NULL,
    active               BOOLEAN NOT NULL,
    plan                 TEXT NOT NULL,
    status               TEXT NOT NULL,
    period_end           TIMESTAMPTZ NOT NULL,
    activation           TEXT NOT NULL,
    renews_at            TIMESTAMPTZ,
    cancel_at_period_end BOOLEAN NOT NULL,
    -- the payment behind it
    reference            TEXT,
    changed_at           TIMESTAMPTZ NOT NULL,
    position             BIGINT NOT NULL,
    PRIMARY KEY (email, version)
);
CREATE INDEX subscription_changes_position ON subscription_changes (position);
