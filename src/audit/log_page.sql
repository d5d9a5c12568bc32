-- One page of the audit log after (transaction_id, position) = ($1, $2), in
-- log order; each filter applies only when given.
SELECT position, transaction_id, recorded_at, stream_id, stream_version, event_type, event_id, metadata, payload
FROM events
WHERE (transaction_id, position) > ($1, $2)
  AND ($3::text IS NULL OR stream_id = $3)
  AND ($4::text IS NULL OR event_type = $4)
  AND ($5::text IS NULL OR metadata->>'actor' = $5)
  AND ($6::timestamptz IS NULL OR recorded_at >= $6)
  AND ($7::timestamptz IS NULL OR recorded_at <= $7)
ORDER BY transaction_id, position
LIMIT $8
