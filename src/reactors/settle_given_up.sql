-- Given up in this generation (opens email_undeliverable through EmailFailed).
UPDATE email_deliveries SET given_up_generation = $2, attempts = 0, claimed_by = NULL, lease_until = '-infinity',
    next_attempt_at = 'infinity'
WHERE email_key = $1
