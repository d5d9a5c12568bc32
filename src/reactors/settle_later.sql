-- The message cannot be written yet (the read model it is written from is
-- behind the outbox): asked again at $2, no attempt spent.
UPDATE email_deliveries SET next_attempt_at = $2, claimed_by = NULL, lease_until = '-infinity'
WHERE email_key = $1
