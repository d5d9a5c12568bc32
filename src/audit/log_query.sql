-- The audit log in log order; each filter applies only when given. Read
-- through a portal, a page at a time.
SELECT position, transaction_id, recorded_at, stream_id, stream_version, event_type, event_id, metadata, payload
FROM events
WHERE ($1::text IS NULL OR stream_id = $1)
  AND ($2::text IS NULL OR event_type = $2)
  AND ($3::text IS NULL OR metadata->>'actor' = $3)
  AND ($4::timestamptz IS NULL OR recorded_at >= $4)
  AND ($5::timestamptz IS NULL OR recorded_at <= $5)
ORDER BY transaction_id, position
