-- A charge is accounted for by its customer's row (active, refunded,
-- disputed), a refund in its stream, a discrepancy about it, or — a
-- renewal's charge — the paid invoice of a subscription that names it.
SELECT e.payload->>'payment_id' FROM events e
WHERE e.event_type = 'ChargeSucceeded'
  AND NOT EXISTS (SELECT 1 FROM customer_status c
                  WHERE c.payment_id = e.payload->>'payment_id' AND c.state IN ('active', 'refunded', 'disputed'))
  AND NOT EXISTS (SELECT 1 FROM events r WHERE r.stream_id = e.stream_id AND r.event_type = 'ChargeRefunded')
  AND NOT EXISTS (SELECT 1 FROM discrepancies d WHERE split_part(d.subject, ':', 1) = e.payload->>'payment_id')
  AND NOT EXISTS (SELECT 1 FROM events i WHERE i.event_type = 'InvoicePaid'
                  AND i.payload->>'payment_id' = e.payload->>'payment_id'
                  AND i.payload->>'billing_reason' <> 'subscription_create')
ORDER BY 1
