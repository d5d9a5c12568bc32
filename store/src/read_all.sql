-- The gap-safe global order: only rows of transactions older than every
-- transaction still running, so nothing can later commit behind the reader.
SELECT position, transaction_id, stream_id, stream_version, event_id,
       event_type, payload, metadata, recorded_at
FROM events
WHERE (transaction_id, position) > ($1, $2)
  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
ORDER BY transaction_id, position
LIMIT $3
