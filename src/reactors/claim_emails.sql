-- Claims due outbox rows for one sender: not sent nor given up in their
-- current generation (a resend is a new one), due, and not claimed by a
-- live lease. SKIP LOCKED: two senders never take the same row at once.
UPDATE email_deliveries d
SET claimed_by = $1, lease_until = $2
FROM (
    SELECT d2.email_key, o.kind, o.recipient, o.payment_id, o.resends
    FROM email_deliveries d2
    JOIN outgoing_emails o ON o.email_key = d2.email_key
    WHERE o.status = ANY($5)
      AND o.resends > d2.sent_generation
      AND o.resends > d2.given_up_generation
      AND d2.next_attempt_at <= $3
      AND d2.lease_until <= $3
    ORDER BY d2.next_attempt_at, d2.email_key
    LIMIT $4
    FOR UPDATE OF d2 SKIP LOCKED
) due
WHERE d.email_key = due.email_key
RETURNING d.email_key, due.kind, due.recipient, due.payment_id, due.resends AS generation, d.attempts
