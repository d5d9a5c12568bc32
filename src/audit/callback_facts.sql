-- Every fact the webhook recorded beside a callback, with the callback's
-- stored record: joined through the record's correlation id, which each
-- fact carries as its causation id.
SELECT f.event_id, f.event_type, f.payload, r.payload AS record, r.event_id AS record_id
FROM events f
JOIN events r
  ON r.event_type = 'ProcessorEventReceived'
 AND r.metadata->>'correlation_id' = f.metadata->>'causation_id'
WHERE f.metadata->>'source' = 'webhook'
  AND f.event_type NOT IN ('ProcessorEventReceived', 'ProcessorEventConflict')
ORDER BY r.event_id
