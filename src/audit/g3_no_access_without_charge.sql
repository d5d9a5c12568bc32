-- Access comes from a charge, a recorded grant, or — a renewing plan — a
-- paid invoice of its subscription whose period reaches the access's end.
SELECT s.email, s.activation FROM subscriptions s
WHERE s.status = 'active'
  AND NOT (s.activation <> 'grant' AND EXISTS (
        SELECT 1 FROM events e WHERE e.stream_id = 'payment-' || s.payment_id AND e.event_type = 'ChargeSucceeded'))
  AND NOT (s.activation = 'grant' AND EXISTS (
        SELECT 1 FROM events g WHERE g.event_type = 'SubscriptionGranted' AND lower(g.payload->>'email') = s.email))
  AND NOT (s.subscription_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM events i WHERE i.event_type = 'InvoicePaid'
          AND i.payload->>'subscription_id' = s.subscription_id
          AND (i.payload->>'period_end')::timestamptz >= s.period_end))
ORDER BY 1
