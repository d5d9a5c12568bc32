-- The stored events among these ids (the rest are not in the log).
SELECT position, transaction_id, stream_id, stream_version, event_id,
       event_type, payload, metadata, recorded_at
FROM events WHERE event_id = ANY($1)
