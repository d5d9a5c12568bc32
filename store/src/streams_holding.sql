-- Which of these streams hold at least one event of this type.
SELECT DISTINCT stream_id FROM events
WHERE stream_id = ANY($1) AND event_type = $2
