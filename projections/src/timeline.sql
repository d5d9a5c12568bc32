CREATE TABLE timeline (
    email       TEXT NOT NULL,
    position    BIGINT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    event_type  TEXT NOT NULL,
    stream_id   TEXT NOT NULL,
    actor       TEXT NOT NULL,
    summary     TEXT NOT NULL,
    PRIMARY KEY (email, position)
);
-- Which customer an outbox key is about, for EmailSent/EmailFailed.
CREATE TABLE timeline_email_keys (
    email_key TEXT PRIMARY KEY,
    email     TEXT NOT NULL
);
