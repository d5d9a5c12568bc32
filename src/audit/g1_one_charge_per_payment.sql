SELECT payload->>'payment_id', count(*) FROM events
WHERE event_type = 'ChargeSucceeded'
GROUP BY 1 HAVING count(*) > 1
