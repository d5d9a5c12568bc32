-- Claims due outbox rows for one sender: not sent nor given up in their
-- current generation (a resend is a new one), due, and not claimed by a
-- live lease. SKIP LOCKED: two senders never take the same row at once.
-- The candidates are walked in `email_deliveries_due` order and the walk
-- stops early (a few batches' worth), so a claim costs the same with ten
-- or a hundred thousand emails due; deliveries that are done wait at
-- 'infinity' (settle_*.sql) and sync_deliveries.sql parks stale ones.
UPDATE email_deliveries d
SET claimed_by = $1, lease_until = $2
FROM (
    SELECT c.email_key, o.kind, o.recipient, o.payment_id, o.resends
    FROM (
        SELECT email_key, sent_generation, given_up_generation, next_attempt_at
        FROM email_deliveries
        WHERE next_attempt_at <= $3
          AND lease_until <= $3
        ORDER BY next_attempt_at, email_key
        LIMIT $4::int8 * 4
        FOR UPDATE SKIP LOCKED
    ) c
    JOIN outgoing_emails o ON o.email_key = c.email_key
    WHERE o.status = ANY($5)
      AND o.resends > c.sent_generation
      AND o.resends > c.given_up_generation
    ORDER BY c.next_attempt_at, c.email_key
    LIMIT $4::int8
) due
WHERE d.email_key = due.email_key
RETURNING d.email_key, due.kind, due.recipient, due.payment_id, due.resends AS generation, d.attempts
