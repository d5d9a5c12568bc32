-- read_all.sql, with the payload of the types in $4 left out (JSON null):
-- a reader that never looks at those events does not pay for their bodies
-- (the processor's verbatim callbacks are the log's biggest rows).
SELECT position, transaction_id, stream_id, stream_version, event_id,
       event_type,
       CASE WHEN event_type = ANY($4::text[]) THEN 'null'::jsonb ELSE payload END AS payload,
       metadata, recorded_at
FROM events
WHERE (transaction_id, position) > ($1, $2)
  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
ORDER BY transaction_id, position
LIMIT $3
