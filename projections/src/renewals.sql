-- What the renewal rules know of each processor subscription: enough to
-- recompute its standing from any order of its facts.
CREATE TABLE renewal_subscriptions (
    subscription_id     TEXT PRIMARY KEY,
    -- SubscriptionStarted seen
    started             BOOLEAN NOT NULL,
    -- the checkout that bought it: whose access it is, for which plan
    checkout_reference  TEXT,
    customer_email      TEXT,
    -- the span the paid invoices cover
    paid_from           TIMESTAMPTZ,
    paid_until          TIMESTAMPTZ,
    -- paid invoice ids, space-separated: a failure of a paid invoice is old news
    paid_invoices       TEXT,
    last_payment_id     TEXT,
    -- the latest cancellation asked for, and the latest undo
    cancel_requested_at TIMESTAMPTZ,
    cancel_at           TIMESTAMPTZ,
    undone_at           TIMESTAMPTZ,
    ended_at            TIMESTAMPTZ,
    ended_reason        TEXT,
    -- the unpaid invoice the processor is retrying
    failing_invoice     TEXT,
    failed_attempt      INT4 NOT NULL,
    next_attempt        TIMESTAMPTZ,
    -- emails owed while the customer was not known yet (`kind|key|payment`,
    -- space-separated): asked for once the subscription's customer is known
    unannounced         TEXT,
    -- the price it is on since its latest plan change (NULL: the
    -- checkout's plan), and when that change was made
    price_id            TEXT,
    price_changed_at    TIMESTAMPTZ
);
CREATE INDEX renewal_subscriptions_checkout ON renewal_subscriptions (checkout_reference);

-- Which plan a processor price is (PlanOffered): a plan change names only
-- the price.
CREATE TABLE renewal_prices (
    price_id TEXT PRIMARY KEY,
    plan     TEXT NOT NULL
);
