-- The next events to seal, in the gap-safe global order (see projections/src/feed/read_all.sql).
SELECT position, transaction_id, stream_id, stream_version, event_id, event_type,
       payload::text AS payload_text, metadata::text AS metadata_text, recorded_at
FROM events
WHERE (transaction_id, position) > ($1, $2)
  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
ORDER BY transaction_id, position
LIMIT $3
