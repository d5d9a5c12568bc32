SELECT s.email, s.activation FROM subscriptions s
WHERE s.status = 'active'
  AND NOT (s.activation <> 'grant' AND EXISTS (
        SELECT 1 FROM events e WHERE e.stream_id = 'payment-' || s.payment_id AND e.event_type = 'ChargeSucceeded'))
  AND NOT (s.activation = 'grant' AND EXISTS (
        SELECT 1 FROM events g WHERE g.event_type = 'SubscriptionGranted' AND lower(g.payload->>'email') = s.email))
ORDER BY 1
