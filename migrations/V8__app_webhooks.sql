-- Telling the product's application (spec §13). The endpoints' history is
-- in the log (AppWebhookEndpoint*); these are the working state the sender
-- needs: where to post, with which secrets, what is owed, what happened.

CREATE TABLE app_webhook_endpoints (
    endpoint_id     TEXT PRIMARY KEY,
    url             TEXT NOT NULL,
    -- message types wanted; empty: all
    types           TEXT[] NOT NULL,
    enabled         BOOLEAN NOT NULL,
    disabled_reason TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    -- the subscription_changes position up to which messages are queued
    synced_position BIGINT NOT NULL,
    -- since when every attempt has failed (NULL after a success)
    failing_since   TIMESTAMPTZ
);

-- The secrets that sign: the newest always; an older one until valid_until.
CREATE TABLE app_webhook_secrets (
    endpoint_id TEXT NOT NULL REFERENCES app_webhook_endpoints (endpoint_id),
    secret      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    valid_until TIMESTAMPTZ,
    PRIMARY KEY (endpoint_id, secret)
);

-- One message per change of access per endpoint; the body is fixed when it
-- is queued, so every retry and replay sends the same bytes under the same id.
CREATE TABLE app_webhook_deliveries (
    endpoint_id     TEXT NOT NULL REFERENCES app_webhook_endpoints (endpoint_id),
    email           TEXT NOT NULL,
    version         BIGINT NOT NULL,
    message_id      TEXT NOT NULL,
    message_type    TEXT NOT NULL,
    body            TEXT NOT NULL,
    changed_at      TIMESTAMPTZ NOT NULL,
    -- pending | sent | failed (every retry used)
    status          TEXT NOT NULL,
    attempts        INT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
    claimed_by      TEXT,
    lease_until     TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
    PRIMARY KEY (endpoint_id, email, version)
);
CREATE INDEX app_webhook_deliveries_due ON app_webhook_deliveries (status, next_attempt_at);

-- Every attempt, for `app-webhooks deliveries`.
CREATE TABLE app_webhook_attempts (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id   TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    attempt       INT NOT NULL,
    attempted_at  TIMESTAMPTZ NOT NULL,
    status_code   INT,
    latency_ms    BIGINT NOT NULL,
    error         TEXT,
    -- the first bytes of the answer
    response      TEXT
);
CREATE INDEX app_webhook_attempts_endpoint ON app_webhook_attempts (endpoint_id, id);
