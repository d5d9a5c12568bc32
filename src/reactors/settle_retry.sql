-- A transient failure: try again at $2.
UPDATE email_deliveries SET attempts = attempts + 1, next_attempt_at = $2, claimed_by = NULL, lease_until = '-infinity'
WHERE email_key = $1
