-- Sent in this generation: not due again until a resend.
UPDATE email_deliveries SET sent_generation = $2, attempts = 0, claimed_by = NULL, lease_until = '-infinity',
    next_attempt_at = 'infinity'
WHERE email_key = $1
