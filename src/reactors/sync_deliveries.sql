-- What the outbox asks for that the sender does not know yet — new outbox
-- rows, rows done in an earlier generation that a resend revived — and
-- deliveries parked at 'infinity' that the outbox no longer asks for (the
-- outbox caught up with an EmailSent, say), so claims never walk over
-- them. All three read the same snapshot: a row is fresh, revived or
-- parked, never two of them. $1: the due statuses, $2: now.
WITH fresh AS (
    INSERT INTO email_deliveries (email_key)
    SELECT o.email_key FROM outgoing_emails o
    WHERE o.status = ANY($1)
      AND NOT EXISTS (SELECT 1 FROM email_deliveries d WHERE d.email_key = o.email_key)
    ON CONFLICT DO NOTHING
    RETURNING 1
), revived AS (
    UPDATE email_deliveries d SET next_attempt_at = '-infinity', attempts = 0
    FROM outgoing_emails o
    WHERE o.email_key = d.email_key
      AND d.next_attempt_at = 'infinity'
      AND o.status = ANY($1)
      AND o.resends > d.sent_generation
      AND o.resends > d.given_up_generation
    RETURNING 1
), parked AS (
    UPDATE email_deliveries d SET next_attempt_at = 'infinity'
    WHERE d.next_attempt_at < 'infinity'
      AND d.lease_until <= $2
      AND NOT EXISTS (
          SELECT 1 FROM outgoing_emails o
          WHERE o.email_key = d.email_key
            AND o.status = ANY($1)
            AND o.resends > d.sent_generation
            AND o.resends > d.given_up_generation)
    RETURNING 1
)
SELECT (SELECT count(*) FROM fresh) + (SELECT count(*) FROM revived)
