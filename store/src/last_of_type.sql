-- A stream's newest event of one type (a cursor kept as events, e.g. the
-- reconciliation schedule's last completed run).
SELECT position, transaction_id, stream_id, stream_version, event_id,
       event_type, payload, metadata, recorded_at
FROM events
WHERE stream_id = $1 AND event_type = $2
ORDER BY stream_version DESC
LIMIT 1
