-- The schedule's cursor: the end of the last scheduled run that completed.
-- Failed runs are in the same stream but never move it.
SELECT payload->>'window_to' FROM events
WHERE stream_id = $1 AND event_type = 'ReconciliationCompleted'
ORDER BY stream_version DESC
LIMIT 1
